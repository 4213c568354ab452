//! Who may be texted (DESIGN §4), as one pure function over what the sender read.
//!
//! [`decide`] runs at send time, every time a message is taken from a queue (a deferred message
//! comes back and is decided again from the start), so it sees the consent and counters of now,
//! not of when the message was queued.

use crate::kinds::MessageKind;
use crate::phone::E164;
use crate::preferences::Preferences;
use crate::quiet_hours::{self, Quiet};
use crate::settings::Limits;
use jiff::Timestamp;

/// Counters read before the decision (§7).
///
/// **The caps have one rule, this one** (the daily cap and the state windows of step 5 below).
/// The sender reads each user's counts with its batch and decides the k-th promotional message
/// of a user in the batch on those counts plus k; its counter writes (`store::send_batch`) do
/// not apply a cap of their own: each is conditional on the count being the one decided on, so
/// a concurrent sender's count cancels the write and the batch is decided again on the count
/// found. Of concurrent senders at the limit, exactly as many succeed as fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Promotional messages counted for this user today (UTC), including the ones decided
    /// before this one in the same batch.
    pub promotional_today: u32,
    /// Promotional messages counted for this user in the last 24 h (state caps are rolling),
    /// likewise.
    pub promotional_last_24h: u32,
    /// The account's spend this month.
    pub monthly_spend_micros: u64,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct SendCheck<'a> {
    pub kind: MessageKind,
    /// `None`: user unknown. `phone_verification` does not need it (the user is the caller and
    /// may have no preferences yet).
    pub prefs: Option<&'a Preferences>,
    /// Only for phone_verification: the number being verified (parsed). Other kinds use
    /// `prefs.phone_number`.
    pub verification_target: Option<&'a E164>,
    /// The number is marked undeliverable after repeated hard failures (§8).
    pub number_undeliverable: bool,
    pub allowed_countries: &'a [String],
    pub usage: Usage,
    pub limits: &'a Limits,
    pub now: Timestamp,
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it to this number (for most kinds, the stored number, parsed once here).
    Send(E164),
    /// Logged `suppressed` with the reason; never retried.
    Suppress(SuppressReason),
    /// Quiet hours: come back at `until` and decide again.
    Defer { until: Timestamp },
}

/// Why a message was not sent. The `snake_case` names go into the log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    UnknownUser,
    NoPhoneNumber,
    InvalidPhoneNumber,
    PhoneNotVerified,
    NoConsent,
    ConsentRevoked,
    /// Consent stands, but for another number (or is still pending): §4.
    NoConsentForNumber,
    MasterSwitchOff,
    CategoryOff,
    CountryNotAllowed,
    NumberUndeliverable,
    DailyCap,
    StateCap,
    SpendLimit,
    HardSpendCap,
    /// AWS answered `DESTINATION_PHONE_NUMBER_OPTED_OUT`; set by the sender, not by [`decide`].
    CarrierOptedOut,
}

impl SuppressReason {
    pub const ALL: [SuppressReason; 16] = [
        SuppressReason::UnknownUser,
        SuppressReason::NoPhoneNumber,
        SuppressReason::InvalidPhoneNumber,
        SuppressReason::PhoneNotVerified,
        SuppressReason::NoConsent,
        SuppressReason::ConsentRevoked,
        SuppressReason::NoConsentForNumber,
        SuppressReason::MasterSwitchOff,
        SuppressReason::CategoryOff,
        SuppressReason::CountryNotAllowed,
        SuppressReason::NumberUndeliverable,
        SuppressReason::DailyCap,
        SuppressReason::StateCap,
        SuppressReason::SpendLimit,
        SuppressReason::HardSpendCap,
        SuppressReason::CarrierOptedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::UnknownUser => "unknown_user",
            SuppressReason::NoPhoneNumber => "no_phone_number",
            SuppressReason::InvalidPhoneNumber => "invalid_phone_number",
            SuppressReason::PhoneNotVerified => "phone_not_verified",
            SuppressReason::NoConsent => "no_consent",
            SuppressReason::ConsentRevoked => "consent_revoked",
            SuppressReason::NoConsentForNumber => "no_consent_for_number",
            SuppressReason::MasterSwitchOff => "master_switch_off",
            SuppressReason::CategoryOff => "category_off",
            SuppressReason::CountryNotAllowed => "country_not_allowed",
            SuppressReason::NumberUndeliverable => "number_undeliverable",
            SuppressReason::DailyCap => "daily_cap",
            SuppressReason::StateCap => "state_cap",
            SuppressReason::SpendLimit => "spend_limit",
            SuppressReason::HardSpendCap => "hard_spend_cap",
            SuppressReason::CarrierOptedOut => "carrier_opted_out",
        }
    }
}

impl std::fmt::Display for SuppressReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies the rules of §4 in order; the first that fails decides.
///
/// Quiet hours come before the limits: a message deferred overnight is decided again in the
/// morning, so tonight's count must not suppress it. Transactional kinds skip the promotional
/// rules, the window and every cap but the hard spend cap; `phone_verification` also skips
/// consent (the user asked for the code) and the undeliverable mark (verifying again is how a
/// number marked undeliverable comes back, §8).
pub fn decide(check: &SendCheck<'_>) -> Decision {
    match evaluate(check) {
        Ok(number) => Decision::Send(number),
        Err(decision) => decision,
    }
}

fn evaluate(c: &SendCheck<'_>) -> Result<E164, Decision> {
    use SuppressReason as R;
    let suppress = |reason| Err(Decision::Suppress(reason));
    let verification = c.kind == MessageKind::PhoneVerification;
    let promotional = c.kind.is_promotional();

    // 1. A number to send to.
    let number = if verification {
        match c.verification_target {
            Some(target) => target.clone(),
            None => return suppress(R::NoPhoneNumber),
        }
    } else {
        let Some(prefs) = c.prefs else {
            return suppress(R::UnknownUser);
        };
        let raw = match prefs.phone_number.as_deref().map(str::trim) {
            Some(raw) if !raw.is_empty() => raw,
            _ => return suppress(R::NoPhoneNumber),
        };
        let Ok(stored) = E164::parse(raw) else {
            return suppress(R::InvalidPhoneNumber);
        };
        if !prefs.phone_verified {
            return suppress(R::PhoneNotVerified);
        }
        stored
    };

    // 2. Consent, and 3. the promotional switches. `prefs` is always set here but for codes.
    if let (false, Some(prefs)) = (verification, c.prefs) {
        if !prefs.consent.given {
            return suppress(if prefs.consent.revoked_at.is_some() {
                R::ConsentRevoked
            } else {
                R::NoConsent
            });
        }
        // Consent is bound to a number: the one a grant covered, or the one a pending grant
        // bound to at verification. Any other number, however verified, has none.
        if !prefs.consent.covers(number.as_str()) {
            return suppress(R::NoConsentForNumber);
        }
        if promotional {
            if !prefs.allow_sms_invitations {
                return suppress(R::MasterSwitchOff);
            }
            if c.kind
                .category()
                .is_some_and(|cat| !prefs.category_enabled(cat))
            {
                return suppress(R::CategoryOff);
            }
        }
    }

    // 4. Where the number is.
    if !number.is_allowed(c.allowed_countries) {
        return suppress(R::CountryNotAllowed);
    }
    if c.number_undeliverable && !verification {
        return suppress(R::NumberUndeliverable);
    }

    // 6. Quiet hours, before the caps (see above).
    if promotional {
        let zone = c.prefs.and_then(|p| p.time_zone.as_deref());
        if let Quiet::ClosedUntil(until) = quiet_hours::check(c.now, &number, zone) {
            return Err(Decision::Defer { until });
        }
    }

    // 5. Limits.
    let usage = &c.usage;
    if promotional {
        if usage.promotional_today >= c.limits.promotional_per_user_per_day {
            return suppress(R::DailyCap);
        }
        if let Some(max) = quiet_hours::rule_for(&number).max_promotional_per_24h
            && usage.promotional_last_24h >= max
        {
            return suppress(R::StateCap);
        }
        if usage.monthly_spend_micros >= c.limits.monthly_spend_cap_micros {
            return suppress(R::SpendLimit);
        }
    }
    if usage.monthly_spend_micros >= c.limits.transactional_hard_cap_micros {
        return suppress(R::HardSpendCap);
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Category;
    use std::collections::HashSet;

    const CHICAGO: &str = "America/Chicago";
    const LIMITS: Limits = Limits {
        promotional_per_user_per_day: 10,
        monthly_spend_cap_micros: 50_000_000,
        transactional_hard_cap_micros: 100_000_000,
        verification_monthly_budget_micros: 20_000_000,
    };

    fn at(civil: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = civil.parse().unwrap();
        jiff::tz::TimeZone::get(CHICAGO)
            .unwrap()
            .to_timestamp(dt)
            .unwrap()
    }

    /// A Wednesday noon in Chicago: inside every window.
    fn noon() -> Timestamp {
        at("2026-06-10T12:00")
    }

    /// An opted-in, verified Chicago user with everything on.
    fn prefs() -> Preferences {
        let mut p = Preferences::new("u-1");
        p.phone_number = Some("+13125550123".into());
        p.phone_verified = true;
        p.allow_sms_invitations = true;
        p.time_zone = Some(CHICAGO.into());
        p.consent.given = true;
        p.consent.given_at = Some("2026-01-01T00:00:00Z".parse().unwrap());
        p.consent.phone_number = p.phone_number.clone();
        p
    }

    /// `p` with a new stored number that its consent covers too.
    fn moved_to(mut p: Preferences, number: &str) -> Preferences {
        p.phone_number = Some(number.into());
        p.consent.phone_number = Some(number.into());
        p
    }

    fn us_ca() -> Vec<String> {
        vec!["US".into(), "CA".into()]
    }

    /// Decides `kind` for `prefs` at `now` with `usage`, nothing else unusual.
    fn run(kind: MessageKind, p: &Preferences, now: Timestamp, usage: Usage) -> Decision {
        let countries = us_ca();
        decide(&SendCheck {
            kind,
            prefs: Some(p),
            verification_target: None,
            number_undeliverable: false,
            allowed_countries: &countries,
            usage,
            limits: &LIMITS,
            now,
        })
    }

    fn promo(p: &Preferences) -> Decision {
        run(MessageKind::BattleInvitation, p, noon(), Usage::default())
    }

    fn alert(p: &Preferences) -> Decision {
        run(MessageKind::SecurityAlert, p, noon(), Usage::default())
    }

    fn suppressed(reason: SuppressReason) -> Decision {
        Decision::Suppress(reason)
    }

    /// Sent, to the number stored in `p`.
    fn sent_to(p: &Preferences) -> Decision {
        Decision::Send(E164::parse(p.phone_number.as_deref().unwrap()).unwrap())
    }

    #[test]
    fn a_consenting_verified_user_gets_every_kind_but_codes() {
        for kind in MessageKind::ALL {
            if kind != MessageKind::PhoneVerification {
                assert_eq!(
                    run(kind, &prefs(), noon(), Usage::default()),
                    sent_to(&prefs()),
                    "{kind}"
                );
            }
        }
    }

    #[test]
    fn unknown_user_is_suppressed() {
        let countries = us_ca();
        let check = SendCheck {
            kind: MessageKind::SecurityAlert,
            prefs: None,
            verification_target: None,
            number_undeliverable: false,
            allowed_countries: &countries,
            usage: Usage::default(),
            limits: &LIMITS,
            now: noon(),
        };
        assert_eq!(decide(&check), suppressed(SuppressReason::UnknownUser));
    }

    #[test]
    fn missing_invalid_or_unverified_numbers_are_suppressed() {
        for kind in [MessageKind::BattleInvitation, MessageKind::SecurityAlert] {
            let mut p = prefs();
            p.phone_number = None;
            assert_eq!(
                run(kind, &p, noon(), Usage::default()),
                suppressed(SuppressReason::NoPhoneNumber)
            );
            p.phone_number = Some("  ".into());
            assert_eq!(
                run(kind, &p, noon(), Usage::default()),
                suppressed(SuppressReason::NoPhoneNumber)
            );
            p.phone_number = Some("not a number".into());
            assert_eq!(
                run(kind, &p, noon(), Usage::default()),
                suppressed(SuppressReason::InvalidPhoneNumber)
            );
            let mut p = prefs();
            p.phone_verified = false;
            assert_eq!(
                run(kind, &p, noon(), Usage::default()),
                suppressed(SuppressReason::PhoneNotVerified)
            );
        }
    }

    #[test]
    fn consent_never_given_or_revoked_is_suppressed_for_every_kind() {
        let mut never = prefs();
        never.consent = Default::default();
        let mut revoked = prefs();
        revoked.consent.given = false;
        revoked.consent.revoked_at = Some("2026-02-01T00:00:00Z".parse().unwrap());
        for kind in [MessageKind::BattleInvitation, MessageKind::SecurityAlert] {
            assert_eq!(
                run(kind, &never, noon(), Usage::default()),
                suppressed(SuppressReason::NoConsent)
            );
            assert_eq!(
                run(kind, &revoked, noon(), Usage::default()),
                suppressed(SuppressReason::ConsentRevoked)
            );
        }
    }

    #[test]
    fn consent_is_bound_to_the_number_it_was_given_for() {
        // The user verified a new number: consent for the old one does not carry over.
        let mut p = prefs();
        p.phone_number = Some("+13125550199".into());
        for decision in [promo(&p), alert(&p)] {
            assert_eq!(decision, suppressed(SuppressReason::NoConsentForNumber));
        }
        // A pending grant (modal, no number yet) covers nothing until it binds.
        let mut pending = prefs();
        pending.consent.phone_number = None;
        pending.consent.pending_until = Some(noon() + jiff::SignedDuration::from_hours(24));
        assert_eq!(
            promo(&pending),
            suppressed(SuppressReason::NoConsentForNumber)
        );
        // Back on the consented number: sent.
        p.phone_number = prefs().phone_number;
        assert_eq!(promo(&p), sent_to(&p));
    }

    #[test]
    fn master_switch_gates_promotional_but_not_security_alerts() {
        let mut p = prefs();
        p.allow_sms_invitations = false;
        assert_eq!(promo(&p), suppressed(SuppressReason::MasterSwitchOff));
        assert_eq!(alert(&p), sent_to(&p));
    }

    #[test]
    fn category_toggle_gates_only_its_own_kind() {
        let mut p = prefs();
        p.toggles.set(Category::BattleInvitations, false);
        assert_eq!(promo(&p), suppressed(SuppressReason::CategoryOff));
        assert_eq!(
            run(MessageKind::BattleResult, &p, noon(), Usage::default()),
            sent_to(&p)
        );
        assert_eq!(alert(&p), sent_to(&p));
    }

    #[test]
    fn countries_off_the_allow_list_are_suppressed_for_every_kind() {
        let mut p = moved_to(prefs(), "+442079460958");
        p.time_zone = Some("Europe/London".into());
        assert_eq!(promo(&p), suppressed(SuppressReason::CountryNotAllowed));
        assert_eq!(alert(&p), suppressed(SuppressReason::CountryNotAllowed));
    }

    #[test]
    fn undeliverable_numbers_are_suppressed() {
        let p = prefs();
        let countries = us_ca();
        for kind in [MessageKind::BattleInvitation, MessageKind::SecurityAlert] {
            let check = SendCheck {
                kind,
                prefs: Some(&p),
                verification_target: None,
                number_undeliverable: true,
                allowed_countries: &countries,
                usage: Usage::default(),
                limits: &LIMITS,
                now: noon(),
            };
            assert_eq!(
                decide(&check),
                suppressed(SuppressReason::NumberUndeliverable),
                "{kind}"
            );
        }
    }

    #[test]
    fn promotional_at_night_is_deferred_to_the_morning() {
        let d = run(
            MessageKind::BattleInvitation,
            &prefs(),
            at("2026-06-10T23:00"),
            Usage::default(),
        );
        assert_eq!(
            d,
            Decision::Defer {
                until: at("2026-06-11T08:00")
            }
        );
    }

    #[test]
    fn quiet_hours_use_the_users_zone() {
        let mut p = prefs();
        p.time_zone = Some("America/Los_Angeles".into());
        // 09:00 Chicago is 07:00 Los Angeles.
        let d = run(
            MessageKind::BattleInvitation,
            &p,
            at("2026-06-10T09:00"),
            Usage::default(),
        );
        assert_eq!(
            d,
            Decision::Defer {
                until: at("2026-06-10T10:00")
            }
        );
    }

    #[test]
    fn security_alert_at_three_in_the_morning_is_sent() {
        let d = run(
            MessageKind::SecurityAlert,
            &prefs(),
            at("2026-06-10T03:00"),
            Usage::default(),
        );
        assert_eq!(d, sent_to(&prefs()));
    }

    #[test]
    fn revoked_user_at_night_is_suppressed_not_deferred() {
        let mut p = prefs();
        p.consent.given = false;
        p.consent.revoked_at = Some("2026-06-10T22:00:00Z".parse().unwrap());
        let d = run(
            MessageKind::BattleInvitation,
            &p,
            at("2026-06-10T23:00"),
            Usage::default(),
        );
        assert_eq!(d, suppressed(SuppressReason::ConsentRevoked));
    }

    #[test]
    fn quiet_hours_come_before_the_caps() {
        let over = Usage {
            promotional_today: 10,
            ..Usage::default()
        };
        // Under the cap at night: deferred.
        let d = run(
            MessageKind::BattleInvitation,
            &prefs(),
            at("2026-06-10T23:00"),
            Usage::default(),
        );
        assert!(matches!(d, Decision::Defer { .. }));
        // Tonight's count does not suppress it; the morning's decision will see the new day.
        let d = run(
            MessageKind::BattleInvitation,
            &prefs(),
            at("2026-06-10T23:00"),
            over,
        );
        assert!(matches!(d, Decision::Defer { .. }));
    }

    #[test]
    fn daily_cap_suppresses_promotional_only() {
        let usage = Usage {
            promotional_today: 10,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &prefs(), noon(), usage),
            suppressed(SuppressReason::DailyCap)
        );
        let under = Usage {
            promotional_today: 9,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &prefs(), noon(), under),
            sent_to(&prefs())
        );
        assert_eq!(
            run(MessageKind::SecurityAlert, &prefs(), noon(), usage),
            sent_to(&prefs())
        );
    }

    #[test]
    fn state_cap_applies_to_florida_numbers_only() {
        let mut fl = moved_to(prefs(), "+13055550123");
        fl.time_zone = Some("America/New_York".into());
        let three = Usage {
            promotional_last_24h: 3,
            promotional_today: 3,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &fl, noon(), three),
            suppressed(SuppressReason::StateCap)
        );
        let two = Usage {
            promotional_last_24h: 2,
            ..three
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &fl, noon(), two),
            sent_to(&fl)
        );
        assert_eq!(
            run(MessageKind::BattleInvitation, &prefs(), noon(), three),
            sent_to(&prefs())
        );
        assert_eq!(
            run(MessageKind::SecurityAlert, &fl, noon(), three),
            sent_to(&fl)
        );
    }

    #[test]
    fn spend_limit_stops_promotional_and_the_hard_cap_stops_everything() {
        let at_cap = Usage {
            monthly_spend_micros: 50_000_000,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &prefs(), noon(), at_cap),
            suppressed(SuppressReason::SpendLimit)
        );
        // Over the spend cap, transactional still goes until the hard cap.
        assert_eq!(
            run(MessageKind::SecurityAlert, &prefs(), noon(), at_cap),
            sent_to(&prefs())
        );
        let at_hard = Usage {
            monthly_spend_micros: 100_000_000,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::SecurityAlert, &prefs(), noon(), at_hard),
            suppressed(SuppressReason::HardSpendCap)
        );
        let below = Usage {
            monthly_spend_micros: 49_999_999,
            ..Usage::default()
        };
        assert_eq!(
            run(MessageKind::BattleInvitation, &prefs(), noon(), below),
            sent_to(&prefs())
        );
    }

    fn verification(
        p: Option<&Preferences>,
        target: Option<&E164>,
        undeliverable: bool,
        usage: Usage,
        now: Timestamp,
    ) -> Decision {
        let countries = us_ca();
        decide(&SendCheck {
            kind: MessageKind::PhoneVerification,
            prefs: p,
            verification_target: target,
            number_undeliverable: undeliverable,
            allowed_countries: &countries,
            usage,
            limits: &LIMITS,
            now,
        })
    }

    #[test]
    fn verification_goes_to_the_target_without_consent_or_stored_number() {
        let target = E164::parse("+14155550123").unwrap();
        let new_user = Preferences::new("u-2");
        let u = Usage::default();
        let night = at("2026-06-10T03:00");
        assert_eq!(
            verification(Some(&new_user), Some(&target), false, u, night),
            Decision::Send(target.clone())
        );
        assert_eq!(
            verification(None, Some(&target), false, u, night),
            Decision::Send(target.clone())
        );
        let mut revoked = prefs();
        revoked.consent.given = false;
        revoked.consent.revoked_at = Some(noon());
        assert_eq!(
            verification(Some(&revoked), Some(&target), false, u, noon()),
            Decision::Send(target.clone())
        );
        // Re-verifying is how an undeliverable number comes back.
        assert_eq!(
            verification(Some(&new_user), Some(&target), true, u, noon()),
            Decision::Send(target.clone())
        );
    }

    #[test]
    fn verification_needs_a_target_in_an_allowed_country_under_the_hard_cap() {
        let u = Usage::default();
        assert_eq!(
            verification(Some(&prefs()), None, false, u, noon()),
            suppressed(SuppressReason::NoPhoneNumber)
        );
        let uk = E164::parse("+442079460958").unwrap();
        assert_eq!(
            verification(None, Some(&uk), false, u, noon()),
            suppressed(SuppressReason::CountryNotAllowed)
        );
        let target = E164::parse("+14155550123").unwrap();
        let over = Usage {
            promotional_today: 99,
            promotional_last_24h: 99,
            monthly_spend_micros: 60_000_000,
        };
        assert_eq!(
            verification(None, Some(&target), false, over, noon()),
            Decision::Send(target.clone())
        );
        let hard = Usage {
            monthly_spend_micros: 100_000_000,
            ..over
        };
        assert_eq!(
            verification(None, Some(&target), false, hard, noon()),
            suppressed(SuppressReason::HardSpendCap)
        );
    }

    #[test]
    fn reason_names_are_snake_case_and_match_serde() {
        let mut seen = HashSet::new();
        for reason in SuppressReason::ALL {
            let name = reason.as_str();
            assert!(seen.insert(name), "{name}");
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(reason.to_string(), name);
        }
        assert_eq!(
            SuppressReason::CarrierOptedOut.as_str(),
            "carrier_opted_out"
        );
    }
}
