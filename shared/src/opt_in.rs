//! The opt-in confirmation (DESIGN §8): after an opt-in on a verified number, one message with
//! the program name, the message frequency, "Msg & data rates may apply", HELP and STOP
//! (CTIA), once per consent grant.
//!
//! Which opt-ins confirm: a change of the preferences after which consent covers the user's
//! verified number when it did not before ([`grant_to_confirm`]). That is the web opt-in and
//! the settings switch on a verified number, and the verification that binds a pending grant
//! (the modal's, made before the user had a number). A repeated opt-in, or a switch turned on
//! while consent already stands, confirms nothing. START is confirmed by `inbound-sms`'s
//! keyword reply instead (one message to the number, however many users share it).
//!
//! Once per grant: the confirmation is a log record `optin#<user>#<grant ms>` sent by the one
//! send protocol ([`crate::outbound`]), so however often a grant is looked at (an opt-in and a
//! verification racing, a number verified again after it was marked undeliverable), its
//! confirmation is claimed once and sent at most once.

use crate::MessageClass;
use crate::config::Branding;
use crate::outbound::{self, Outbound, Sent};
use crate::phone::{E164, mask};
use crate::preferences::Preferences;
use crate::segments;
use crate::sms::SmsSender;
use crate::store::{Claim, NewConfirmation, StoreError};
use crate::template;
use jiff::Timestamp;
use tracing::{info, warn};

/// Log id of the confirmation of `user_id`'s grant made at `grant_at`.
pub fn confirmation_log_id(user_id: &str, grant_at: Timestamp) -> String {
    format!("optin#{user_id}#{}", grant_at.as_millisecond())
}

/// Consent stands for the user's number, and the number is verified.
fn confirmable(p: &Preferences) -> bool {
    p.phone_verified && p.has_consent()
}

/// The time of the grant to confirm after a change from `before` to `after`: when consent
/// covers the verified number after the change and did not cover that verified number
/// before. `None` otherwise (nothing new to confirm).
pub fn grant_to_confirm(before: &Preferences, after: &Preferences) -> Option<Timestamp> {
    let already = confirmable(before) && before.phone_number == after.phone_number;
    if already || !confirmable(after) {
        return None;
    }
    after.consent.given_at
}

/// The confirmation a change of the preferences from `before` (`None`: a new user) to `after`
/// owes, if any ([`grant_to_confirm`]), sent and logged: the one path of both APIs. Gives the
/// metric to count (`OptInConfirmationsSent` / `...NotSent`), `None` when nothing was owed or
/// the grant was settled before. The caller's request is answered whatever this says.
pub async fn confirm_change<S: SmsSender>(
    outbound: &Outbound<'_, S>,
    branding: &Branding,
    allowed_countries: &[String],
    before: Option<&Preferences>,
    after: &Preferences,
) -> Option<&'static str> {
    let blank = Preferences::new(after.user_id.clone());
    let grant_at = grant_to_confirm(before.unwrap_or(&blank), after)?;
    match confirm(outbound, branding, allowed_countries, after, grant_at).await {
        Ok(Confirmation::Sent) => Some("OptInConfirmationsSent"),
        Ok(Confirmation::AlreadySettled) => None,
        Ok(Confirmation::NotSent(reason)) => {
            warn!(reason, "opt-in confirmation not sent");
            Some("OptInConfirmationsNotSent")
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the opt-in confirmation failed; not sent");
            Some("OptInConfirmationsNotSent")
        }
    }
}

/// What became of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Sent now.
    Sent,
    /// Claimed and settled before (this grant was confirmed, or its attempt ended).
    AlreadySettled,
    /// Not sent, and why (`country_not_allowed`, `busy`, `in_doubt`, `provider_<code>`).
    NotSent(String),
}

/// Sends the confirmation of `prefs`'s grant made at `grant_at`, in the user's language,
/// through the one send protocol. `Err` only when the attempt could not be recorded (nothing
/// was sent). Callers answer their own request whatever this says: the opt-in is done.
pub async fn confirm<S: SmsSender>(
    outbound: &Outbound<'_, S>,
    branding: &Branding,
    allowed_countries: &[String],
    prefs: &Preferences,
    grant_at: Timestamp,
) -> Result<Confirmation, StoreError> {
    let Some(number) = prefs
        .phone_number
        .as_deref()
        .and_then(|n| E164::parse(n).ok())
    else {
        return Ok(Confirmation::NotSent("no_phone_number".into()));
    };
    if !number.is_allowed(allowed_countries) {
        return Ok(Confirmation::NotSent("country_not_allowed".into()));
    }
    let id = confirmation_log_id(&prefs.user_id, grant_at);
    let body = template::opt_in_confirmation(branding, prefs.locale());
    let now = outbound.clock.now();
    let claim = NewConfirmation {
        id: &id,
        user_id: &prefs.user_id,
        phone_number: number.as_str(),
        body: &body,
    };
    let token = match outbound
        .log
        .claim_confirmation(&claim, now, outbound.lease)
        .await?
    {
        Claim::Claimed { token, .. } => token,
        Claim::Done(_) | Claim::SettledUnknown(_) => return Ok(Confirmation::AlreadySettled),
        Claim::Busy { .. } => return Ok(Confirmation::NotSent("busy".into())),
    };
    let count = segments::count(&body);
    let sent = outbound
        .send(&outbound::Message {
            id: &id,
            token: &token,
            to: number.as_str(),
            body: &body,
            log_body: &body,
            segments: count.segments,
            encoding: count.encoding.as_str(),
            class: MessageClass::Transactional,
            message_feedback: false,
            // Nothing delivers an HTTP request again: a transient refusal ends `rejected`.
            redelivered: false,
            start_by: None,
        })
        .await?;
    Ok(match sent {
        Sent::Sent { .. } => {
            info!(log_id = %id, to = %mask(number.as_str()), locale = prefs.locale().as_str(), "opt-in confirmation sent");
            Confirmation::Sent
        }
        Sent::ClaimLost | Sent::TooLate { .. } => Confirmation::AlreadySettled,
        Sent::InDoubt { error } => {
            warn!(log_id = %id, error_code = error.code(), "no answer for the opt-in confirmation; it may arrive");
            Confirmation::NotSent("in_doubt".into())
        }
        Sent::Refused { error, .. } => {
            warn!(log_id = %id, error_code = error.code(), "opt-in confirmation refused by the provider");
            Confirmation::NotSent(format!("provider_{}", error.code()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preferences::{ConsentAction, ConsentEvent, ConsentMethod};

    const PHONE: &str = "+14155550123";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn grant(p: &mut Preferences, when: Timestamp) {
        let mut e = ConsentEvent::new("u", when, ConsentAction::Grant, ConsentMethod::OptInModal);
        e.phone_number = p.number_to_bind();
        e.apply_to(&mut p.consent);
    }

    fn verified() -> Preferences {
        let mut p = Preferences::new("u");
        p.phone_number = Some(PHONE.into());
        p.phone_verified = true;
        p
    }

    #[test]
    fn an_opt_in_on_a_verified_number_confirms_its_grant() {
        let before = verified();
        let mut after = before.clone();
        grant(&mut after, at("2026-11-25T12:00:00Z"));
        assert_eq!(
            grant_to_confirm(&before, &after),
            Some(at("2026-11-25T12:00:00Z"))
        );
        assert_eq!(
            confirmation_log_id("u", at("2026-11-25T12:00:00Z")),
            "optin#u#1795608000000"
        );
    }

    #[test]
    fn a_repeated_opt_in_confirms_nothing() {
        let mut before = verified();
        grant(&mut before, at("2026-11-25T12:00:00Z"));
        let mut after = before.clone();
        grant(&mut after, at("2026-11-25T12:05:00Z"));
        assert_eq!(grant_to_confirm(&before, &after), None);
    }

    #[test]
    fn a_pending_grant_is_confirmed_when_verification_binds_it() {
        let mut pending = Preferences::new("u");
        pending.phone_number = Some(PHONE.into());
        grant(&mut pending, at("2026-11-25T12:00:00Z"));
        let nothing_yet = pending.clone();
        assert_eq!(grant_to_confirm(&Preferences::new("u"), &nothing_yet), None);

        let mut bound = pending.clone();
        bound.phone_verified = true;
        let mut bind = ConsentEvent::new(
            "u",
            at("2026-11-25T12:03:00Z"),
            ConsentAction::Bind,
            ConsentMethod::PhoneVerification,
        );
        bind.phone_number = Some(PHONE.into());
        bind.apply_to(&mut bound.consent);
        // The grant's own time: the confirmation of the modal's grant, not of the binding.
        assert_eq!(
            grant_to_confirm(&pending, &bound),
            Some(at("2026-11-25T12:00:00Z"))
        );
    }

    #[test]
    fn verifying_a_number_that_consent_does_not_cover_confirms_nothing() {
        let mut before = verified();
        grant(&mut before, at("2026-11-25T12:00:00Z"));
        let mut after = before.clone();
        after.phone_number = Some("+14155550199".into());
        assert_eq!(grant_to_confirm(&before, &after), None, "§4: no carry-over");
        let mut unverified = verified();
        unverified.phone_verified = false;
        let mut granted = unverified.clone();
        grant(&mut granted, at("2026-11-25T12:00:00Z"));
        assert_eq!(grant_to_confirm(&unverified, &granted), None, "pending");
    }
}
