//! A user's SMS preferences and consent record (DESIGN §4, §5, §9), as plain data.
//!
//! Stored as one current item per user plus an append-only history of [`ConsentEvent`]s.
//!
//! Consent is bound to a number (§4): a grant records the number it covers; a grant made
//! while the user has no verified number (the opt-in modal sends none) is pending and binds
//! to the first number the user verifies within [`PENDING_GRANT_LIFETIME`]. A verified
//! number other than the consented one has no consent until a new grant: changing the number
//! never carries consent over.

use crate::kinds::Category;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// How long a grant without a number waits for the user to verify one.
pub const PENDING_GRANT_LIFETIME: SignedDuration = SignedDuration::from_hours(30 * 24);

/// The current preferences of one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Preferences {
    pub user_id: String,
    /// E.164, or none.
    pub phone_number: Option<String>,
    pub phone_verified: bool,
    pub phone_verified_at: Option<Timestamp>,
    /// Set when delivery receipts reported repeated hard failures to the number (§8); the phone
    /// is then unverified and must be verified again, which clears this.
    pub phone_undeliverable_at: Option<Timestamp>,
    /// The master switch for promotional messages (`allowSmsInvitations`).
    pub allow_sms_invitations: bool,
    pub toggles: CategoryToggles,
    /// IANA zone (`America/Chicago`), as chosen in the frontend.
    pub time_zone: Option<String>,
    /// A [`crate::locale::Locale`] code (`en`, `es`); `None` reads as `en`.
    pub locale: Option<String>,
    pub prompt: PromptState,
    pub consent: ConsentState,
    /// Bumped on every write; writes are conditional on it (optimistic concurrency).
    pub version: u64,
    pub updated_at: Option<Timestamp>,
}

impl Preferences {
    /// The preferences of a user we have never heard of: nothing on, no consent.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            phone_number: None,
            phone_verified: false,
            phone_verified_at: None,
            phone_undeliverable_at: None,
            allow_sms_invitations: false,
            toggles: CategoryToggles::default(),
            time_zone: None,
            locale: None,
            prompt: PromptState::default(),
            consent: ConsentState::default(),
            version: 0,
            updated_at: None,
        }
    }

    pub fn category_enabled(&self, category: Category) -> bool {
        self.toggles.get(category)
    }

    /// Consent stands for the user's current number (§4).
    pub fn has_consent(&self) -> bool {
        self.phone_number
            .as_deref()
            .is_some_and(|number| self.consent.covers(number))
    }

    /// Consent as the settings page shows it at `now`: it stands for the current number, or
    /// a grant is pending and has not lapsed.
    pub fn has_consent_at(&self, now: Timestamp) -> bool {
        self.has_consent() || self.consent.pending_at(now)
    }

    /// The language of this user's texts.
    pub fn locale(&self) -> crate::locale::Locale {
        crate::locale::Locale::from_stored(self.locale.as_deref())
    }

    /// The number a new grant covers now: the verified number, or none (pending) while the
    /// user has not verified one.
    pub fn number_to_bind(&self) -> Option<String> {
        self.phone_verified
            .then(|| self.phone_number.clone())
            .flatten()
    }
}

impl Default for Preferences {
    fn default() -> Self {
        Self::new("")
    }
}

/// The six category toggles. They default to on: the master switch and consent are what gate
/// promotional texts, and a user who opts in expects to get them until they turn one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CategoryToggles {
    pub battle_invitations: bool,
    pub battle_results: bool,
    pub battle_reminders: bool,
    pub streak_alerts: bool,
    pub direct_messages: bool,
    pub achievements: bool,
}

impl Default for CategoryToggles {
    fn default() -> Self {
        Self {
            battle_invitations: true,
            battle_results: true,
            battle_reminders: true,
            streak_alerts: true,
            direct_messages: true,
            achievements: true,
        }
    }
}

impl CategoryToggles {
    pub fn get(&self, category: Category) -> bool {
        match category {
            Category::BattleInvitations => self.battle_invitations,
            Category::BattleResults => self.battle_results,
            Category::BattleReminders => self.battle_reminders,
            Category::StreakAlerts => self.streak_alerts,
            Category::DirectMessages => self.direct_messages,
            Category::Achievements => self.achievements,
        }
    }

    pub fn set(&mut self, category: Category, on: bool) {
        let slot = match category {
            Category::BattleInvitations => &mut self.battle_invitations,
            Category::BattleResults => &mut self.battle_results,
            Category::BattleReminders => &mut self.battle_reminders,
            Category::StreakAlerts => &mut self.streak_alerts,
            Category::DirectMessages => &mut self.direct_messages,
            Category::Achievements => &mut self.achievements,
        };
        *slot = on;
    }
}

/// State of the opt-in prompt of the frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PromptState {
    pub shown_at: Option<Timestamp>,
    pub dismissed_at: Option<Timestamp>,
    pub remind_after: Option<Timestamp>,
}

/// The current consent, summarised from the history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsentState {
    pub given: bool,
    pub given_at: Option<Timestamp>,
    pub method: Option<ConsentMethod>,
    pub revoked_at: Option<Timestamp>,
    pub revoked_method: Option<ConsentMethod>,
    /// E.164 number the standing grant covers; `None` while a grant is pending or none stands.
    pub phone_number: Option<String>,
    /// A grant without a number binds to the first number verified before this time.
    pub pending_until: Option<Timestamp>,
}

impl ConsentState {
    /// Consent stands for texts to `number` (§4 rule 2).
    pub fn covers(&self, number: &str) -> bool {
        self.given && self.phone_number.as_deref() == Some(number)
    }

    /// A pending grant that a verification at `now` binds.
    pub fn pending_at(&self, now: Timestamp) -> bool {
        self.given && self.phone_number.is_none() && self.pending_until.is_some_and(|t| now <= t)
    }
}

/// How consent was given or revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    OptInModal,
    SettingsPage,
    SmsKeyword,
    PhoneVerification,
    /// AWS or the carrier told us the number opted out (`DESTINATION_PHONE_NUMBER_OPTED_OUT`).
    CarrierOptOut,
}

impl ConsentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::OptInModal => "opt_in_modal",
            ConsentMethod::SettingsPage => "settings_page",
            ConsentMethod::SmsKeyword => "sms_keyword",
            ConsentMethod::PhoneVerification => "phone_verification",
            ConsentMethod::CarrierOptOut => "carrier_opt_out",
        }
    }
}

/// What a consent event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    Grant,
    Revoke,
    /// The phone was verified (evidence that the number belongs to the consenting user).
    PhoneVerified,
    /// A pending grant was bound to the number the user verified.
    Bind,
}

/// One entry of the append-only consent history, kept at least 5 years.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentEvent {
    pub user_id: String,
    pub at: Timestamp,
    pub action: ConsentAction,
    pub method: ConsentMethod,
    /// E.164 number the event concerns.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    /// The exact disclosure text shown when consent was given.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disclosure_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disclosure_version: Option<String>,
    /// For keyword events: the inbound message that carried the keyword.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inbound_message_id: Option<String>,
}

impl ConsentEvent {
    pub fn new(
        user_id: impl Into<String>,
        at: Timestamp,
        action: ConsentAction,
        method: ConsentMethod,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            at,
            action,
            method,
            phone_number: None,
            ip: None,
            user_agent: None,
            disclosure_text: None,
            disclosure_version: None,
            inbound_message_id: None,
        }
    }

    /// Applies this event to the current consent summary. A grant covers its number, or is
    /// pending without one; a binding gives a pending grant its number.
    pub fn apply_to(&self, consent: &mut ConsentState) {
        match self.action {
            ConsentAction::Grant => {
                consent.given = true;
                consent.given_at = Some(self.at);
                consent.method = Some(self.method);
                consent.phone_number = self.phone_number.clone();
                consent.pending_until = self
                    .phone_number
                    .is_none()
                    .then_some(self.at + PENDING_GRANT_LIFETIME);
            }
            ConsentAction::Bind => {
                if consent.pending_at(self.at) {
                    consent.phone_number = self.phone_number.clone();
                    consent.pending_until = None;
                }
            }
            ConsentAction::Revoke => {
                consent.given = false;
                consent.revoked_at = Some(self.at);
                consent.revoked_method = Some(self.method);
                consent.phone_number = None;
                consent.pending_until = None;
            }
            ConsentAction::PhoneVerified => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_user_has_no_consent_and_master_switch_off() {
        let p = Preferences::new("u-1");
        assert!(!p.has_consent());
        assert!(!p.allow_sms_invitations);
        assert!(p.category_enabled(Category::BattleInvitations));
    }

    #[test]
    fn grant_then_revoke_leaves_consent_revoked() {
        let mut consent = ConsentState::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        ConsentEvent::new("u", t0, ConsentAction::Grant, ConsentMethod::OptInModal)
            .apply_to(&mut consent);
        assert!(consent.given);
        ConsentEvent::new("u", t1, ConsentAction::Revoke, ConsentMethod::SmsKeyword)
            .apply_to(&mut consent);
        assert!(!consent.given);
        assert_eq!(consent.given_at, Some(t0));
        assert_eq!(consent.revoked_at, Some(t1));
        assert_eq!(consent.revoked_method, Some(ConsentMethod::SmsKeyword));
    }

    #[test]
    fn a_grant_without_a_number_is_pending_and_binds_within_30_days() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut p = Preferences::new("u");
        let grant = ConsentEvent::new("u", t0, ConsentAction::Grant, ConsentMethod::OptInModal);
        grant.apply_to(&mut p.consent);
        assert!(p.has_consent_at(t0), "pending counts on the settings page");
        assert!(!p.has_consent(), "but is no consent for any number");
        assert!(
            !p.consent.covers("+14155550123"),
            "but covers no number yet"
        );
        let bind = |at: Timestamp, consent: &mut ConsentState| {
            let mut e = ConsentEvent::new(
                "u",
                at,
                ConsentAction::Bind,
                ConsentMethod::PhoneVerification,
            );
            e.phone_number = Some("+14155550123".into());
            e.apply_to(consent);
        };
        let mut late = p.consent.clone();
        bind(t0 + SignedDuration::from_hours(30 * 24 + 1), &mut late);
        assert!(!late.covers("+14155550123"), "30 days have passed");
        bind(t0 + SignedDuration::from_hours(24), &mut p.consent);
        assert!(p.consent.covers("+14155550123"));
        assert!(!p.consent.covers("+14155550124"));
        p.phone_number = Some("+14155550124".into());
        assert!(!p.has_consent(), "a new number has no consent");
    }

    #[test]
    fn a_grant_with_a_number_covers_that_number_and_a_revocation_ends_it() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut c = ConsentState::default();
        let mut grant =
            ConsentEvent::new("u", t0, ConsentAction::Grant, ConsentMethod::SettingsPage);
        grant.phone_number = Some("+14155550123".into());
        grant.apply_to(&mut c);
        assert!(c.covers("+14155550123"));
        assert_eq!(c.pending_until, None);
        ConsentEvent::new("u", t0, ConsentAction::Revoke, ConsentMethod::SmsKeyword)
            .apply_to(&mut c);
        assert!(!c.covers("+14155550123"));
        assert!(!c.pending_at(t0));
    }

    #[test]
    fn toggles_set_and_get_each_category() {
        let mut t = CategoryToggles::default();
        t.set(Category::StreakAlerts, false);
        assert!(!t.get(Category::StreakAlerts));
        assert!(t.get(Category::Achievements));
    }

    #[test]
    fn missing_fields_deserialize_to_defaults() {
        let p: Preferences = serde_json::from_str(r#"{"userId":"u-9"}"#).unwrap();
        assert_eq!(p.user_id, "u-9");
        assert!(p.toggles.direct_messages);
        assert_eq!(p.version, 0);
    }
}
