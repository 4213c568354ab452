//! A user's SMS preferences and consent record (DESIGN §4, §5, §9), as plain data.
//!
//! Stored as one current item per user plus an append-only history of [`ConsentEvent`]s.

use crate::kinds::Category;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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
            prompt: PromptState::default(),
            consent: ConsentState::default(),
            version: 0,
            updated_at: None,
        }
    }

    pub fn category_enabled(&self, category: Category) -> bool {
        self.toggles.get(category)
    }

    /// Consent stands: given and not revoked since.
    pub fn has_consent(&self) -> bool {
        self.consent.given
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

    /// Applies this event to the current consent summary.
    pub fn apply_to(&self, consent: &mut ConsentState) {
        match self.action {
            ConsentAction::Grant => {
                consent.given = true;
                consent.given_at = Some(self.at);
                consent.method = Some(self.method);
            }
            ConsentAction::Revoke => {
                consent.given = false;
                consent.revoked_at = Some(self.at);
                consent.revoked_method = Some(self.method);
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
