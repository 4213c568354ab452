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
//! Once per grant: the confirmation is a log record `optin#<user>#<grant ms>`, written fresh
//! (already `sending`, [`crate::store::fresh_attempt`]) in the same transaction as the
//! preferences save that owes it, then sent and finished by the one send protocol
//! ([`crate::outbound::Outbound::send_recorded`]). However often a grant is looked at (an
//! opt-in and a verification racing, a number verified again after it was marked
//! undeliverable), its record is written once: a save that finds it written goes ahead without
//! it, and sends nothing. That keeps an opt-in with its confirmation at three DynamoDB round
//! trips: read, save (with the record), outcome.
//!
//! Ports (docs/http-api.md): [`PreferencesRead`] and [`ConsentWrites`] for the handlers'
//! reads and changes of preferences, [`ConfirmationSend`] for the send; [`ConsentStore`] and
//! [`ConfirmationSender`] are the DynamoDB / SMS adapters, `memory::MemoryPreferences` (the
//! `fakes` feature) the in-memory fake of all three for unit tests.

use crate::MessageClass;
use crate::clock::Clock;
use crate::config::Branding;
use crate::locale::Locale;
use crate::outbound::{self, Outbound, Sent};
use crate::phone::{E164, mask};
use crate::preferences::{ConsentEvent, Preferences};
use crate::segments;
use crate::sms::SmsSender;
use crate::store::fresh_attempt::FreshAttempt;
use crate::store::log::OPT_IN_CONFIRMATION;
use crate::store::{Attempt, LogStore, PreferencesStore, StoreError, UpdateError, Updated};
use crate::template;
use aws_sdk_dynamodb::types::TransactWriteItem;
use jiff::{SignedDuration, Timestamp};
use std::future::Future;
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

/// The confirmation a change owes, if any, ready to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    Nothing,
    /// Owed, but it cannot go out (`no_phone_number`, `country_not_allowed`).
    Unsendable(&'static str),
    Confirmation(Confirmation),
}

/// One grant's confirmation: its log id, where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub id: String,
    pub user_id: String,
    pub to: String,
    pub body: String,
    pub locale: Locale,
}

/// What the change from `before` to `after` owes ([`grant_to_confirm`]), in the user's
/// language.
pub fn owed(
    branding: &Branding,
    allowed_countries: &[String],
    before: &Preferences,
    after: &Preferences,
) -> Owed {
    let Some(grant_at) = grant_to_confirm(before, after) else {
        return Owed::Nothing;
    };
    let Some(number) = after
        .phone_number
        .as_deref()
        .and_then(|n| E164::parse(n).ok())
    else {
        return Owed::Unsendable("no_phone_number");
    };
    if !number.is_allowed(allowed_countries) {
        return Owed::Unsendable("country_not_allowed");
    }
    Owed::Confirmation(Confirmation {
        id: confirmation_log_id(&after.user_id, grant_at),
        user_id: after.user_id.clone(),
        to: number.as_str().to_owned(),
        body: template::opt_in_confirmation(branding, after.locale()),
        locale: after.locale(),
    })
}

/// A confirmation claimed by the save that owed it: its record is `sending` under `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub confirmation: Confirmation,
    pub token: String,
}

/// What became of the confirmation a saved change owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirming {
    /// Nothing was owed.
    Nothing,
    /// Owed but cannot go out (the reason).
    Unsendable(&'static str),
    /// Claimed before, by an earlier save: settled there.
    AlreadyClaimed,
    /// Claimed with this save: send it ([`ConfirmationSend`]).
    Claimed(Claimed),
}

/// One user's preferences after a change, the state it started from, and its confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub before: Preferences,
    pub updated: Updated,
    pub confirmation: Confirming,
}

/// Port: a user's current preferences (strongly consistent), `None` if never saved.
pub trait PreferencesRead: Send + Sync {
    fn current(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Preferences>, StoreError>> + Send;
}

/// Port: a change of one user's preferences through the one update protocol
/// ([`PreferencesStore::update`]: conditional on the version read, retried, then
/// [`UpdateError::Contended`]), with the opt-in confirmation the change owes claimed in the
/// same write. `read`: the preferences the caller just read (first attempt only).
pub trait ConsentWrites: Send + Sync {
    fn change<E, F>(
        &self,
        user_id: &str,
        now: Timestamp,
        read: Option<Preferences>,
        change: F,
    ) -> impl Future<Output = Result<Change, E>> + Send
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send;
}

/// Port: sends a claimed confirmation. Gives the metric to count (`OptInConfirmationsSent` /
/// `...NotSent`), `None` when it was settled meanwhile. Never fails the caller's request.
pub trait ConfirmationSend: Send + Sync {
    fn send_claimed(&self, claimed: &Claimed) -> impl Future<Output = Option<&'static str>> + Send;
}

/// The metric a saved change's confirmation counts before any send: `Unsendable` is a
/// confirmation not sent.
pub fn unsendable_metric(confirming: &Confirming) -> Option<&'static str> {
    match confirming {
        Confirming::Unsendable(reason) => {
            warn!(reason, "opt-in confirmation not sent");
            Some("OptInConfirmationsNotSent")
        }
        _ => None,
    }
}

/// The DynamoDB adapter of [`PreferencesRead`] and [`ConsentWrites`]: the preferences table,
/// and the log table where confirmations are claimed.
#[derive(Debug, Clone)]
pub struct ConsentStore {
    pub preferences: PreferencesStore,
    pub log_table: String,
    pub branding: Branding,
    pub allowed_countries: Vec<String>,
    /// The lease of a confirmation's attempt (the function's claim lease).
    pub lease: SignedDuration,
}

impl ConsentStore {
    /// [`ConsentWrites::change`] that saves only together with `guards` (conditional writes
    /// of any table, e.g. the verification code's use): [`UpdateError::GuardFailed`] when
    /// one fails.
    pub async fn change_guarded<E, F>(
        &self,
        user_id: &str,
        now: Timestamp,
        read: Option<Preferences>,
        guards: &[TransactWriteItem],
        change: F,
    ) -> Result<Change, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
    {
        let mut owed_now = Owed::Nothing;
        let mut claim: Option<Claimed> = None;
        let carried = self
            .preferences
            .update_carrying(user_id, now, read, guards, change, |before, after| {
                owed_now = owed(&self.branding, &self.allowed_countries, before, after);
                claim = None;
                let Owed::Confirmation(confirmation) = &owed_now else {
                    return Ok(None);
                };
                let segments = segments::count(&confirmation.body);
                let write = FreshAttempt {
                    id: &confirmation.id,
                    user_id: Some(&confirmation.user_id),
                    kind: None,
                    record_type: Some(OPT_IN_CONFIRMATION),
                    class: MessageClass::Transactional,
                    attempt: Attempt {
                        phone_number: &confirmation.to,
                        body: &confirmation.body,
                        segments: segments.segments,
                        encoding: segments.encoding.as_str(),
                    },
                }
                .write(&self.log_table, now, self.lease)
                .map_err(UpdateError::from)?;
                claim = Some(Claimed {
                    confirmation: confirmation.clone(),
                    token: write.token,
                });
                Ok(Some(write.item))
            })
            .await?;
        let confirmation = match (owed_now, claim) {
            (Owed::Nothing, _) => Confirming::Nothing,
            (Owed::Unsendable(reason), _) => Confirming::Unsendable(reason),
            (Owed::Confirmation(_), Some(claimed)) if carried.companion => {
                Confirming::Claimed(claimed)
            }
            (Owed::Confirmation(_), _) => Confirming::AlreadyClaimed,
        };
        Ok(Change {
            before: carried.before,
            updated: carried.updated,
            confirmation,
        })
    }
}

impl PreferencesRead for ConsentStore {
    async fn current(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        self.preferences.get(user_id).await
    }
}

impl ConsentWrites for ConsentStore {
    async fn change<E, F>(
        &self,
        user_id: &str,
        now: Timestamp,
        read: Option<Preferences>,
        change: F,
    ) -> Result<Change, E>
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send,
    {
        self.change_guarded(user_id, now, read, &[], change).await
    }
}

/// The adapter of [`ConfirmationSend`]: the one send protocol over the log and the SMS API.
pub struct ConfirmationSender<S> {
    pub log: LogStore,
    pub sms: S,
    pub clock: std::sync::Arc<dyn Clock>,
    pub lease: SignedDuration,
}

impl<S: SmsSender> ConfirmationSend for ConfirmationSender<S> {
    async fn send_claimed(&self, claimed: &Claimed) -> Option<&'static str> {
        let outbound = Outbound {
            log: &self.log,
            sms: &self.sms,
            clock: self.clock.as_ref(),
            lease: self.lease,
        };
        send_claimed(&outbound, claimed).await
    }
}

/// Sends a claimed confirmation through `outbound` ([`ConfirmationSend::send_claimed`]).
pub async fn send_claimed<S: SmsSender>(
    outbound: &Outbound<'_, S>,
    claimed: &Claimed,
) -> Option<&'static str> {
    match send(outbound, claimed).await {
        // Settled meanwhile (a receipt, or a takeover): nothing more to count.
        Ok(Some(reason)) if reason == CLAIM_LOST => None,
        Ok(Some(reason)) => {
            warn!(reason, "opt-in confirmation not sent");
            Some("OptInConfirmationsNotSent")
        }
        Ok(None) => Some("OptInConfirmationsSent"),
        Err(e) => {
            tracing::error!(error = %e, "recording the opt-in confirmation failed; not sent");
            Some("OptInConfirmationsNotSent")
        }
    }
}

const CLAIM_LOST: &str = "claim_lost";

/// Sends a claimed confirmation from step 2 of the protocol. `Ok(None)`: sent; `Ok(Some)`:
/// not sent, and why (`in_doubt`, `provider_<code>`, `claim_lost`).
async fn send<S: SmsSender>(
    outbound: &Outbound<'_, S>,
    claimed: &Claimed,
) -> Result<Option<String>, StoreError> {
    let c = &claimed.confirmation;
    let count = segments::count(&c.body);
    let sent = outbound
        .send_recorded(&outbound::Message {
            id: &c.id,
            token: &claimed.token,
            to: &c.to,
            body: &c.body,
            log_body: &c.body,
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
            info!(log_id = %c.id, to = %mask(&c.to), locale = c.locale.as_str(), "opt-in confirmation sent");
            None
        }
        Sent::ClaimLost | Sent::TooLate { .. } => Some(CLAIM_LOST.into()),
        Sent::InDoubt { error } => {
            warn!(log_id = %c.id, error_code = error.code(), "no answer for the opt-in confirmation; it may arrive");
            Some("in_doubt".into())
        }
        Sent::Refused { error, .. } => {
            warn!(log_id = %c.id, error_code = error.code(), "opt-in confirmation refused by the provider");
            Some(format!("provider_{}", error.code()))
        }
    })
}

#[cfg(feature = "fakes")]
pub mod memory {
    //! The preferences ports over the in-memory preferences table
    //! ([`crate::store::memory::MemoryPreferences`]), for unit tests of the handlers: the
    //! confirmations claimed (once per grant) and sent, a refusing provider on demand.

    use super::*;
    pub use crate::store::memory::MemoryPreferences;
    use std::collections::HashSet;

    /// The confirmations' side of the fake: claimed log ids, sends.
    #[derive(Debug, Default)]
    pub struct Confirmations {
        claimed: HashSet<String>,
        sent: Vec<Claimed>,
        /// Sends answer "not sent".
        refuse_sends: bool,
    }

    impl MemoryPreferences {
        fn confirmations(&self) -> std::sync::MutexGuard<'_, Confirmations> {
            self.confirmations.lock().unwrap()
        }

        /// Confirmations sent, oldest first.
        pub fn sent(&self) -> Vec<Claimed> {
            self.confirmations().sent.clone()
        }

        /// The SMS provider refuses confirmations.
        pub fn refuse_sends(&self) {
            self.confirmations().refuse_sends = true;
        }

        /// [`ConsentWrites::change`] that saves only when `guard` (called under the store's
        /// lock, as a transaction would) holds: the fake of a guarded save.
        pub fn change_guarded<E, F>(
            &self,
            user_id: &str,
            now: Timestamp,
            mut guard: impl FnMut() -> bool,
            change: F,
        ) -> Result<Change, E>
        where
            E: From<UpdateError>,
            F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
        {
            let mut confirmation = Confirming::Nothing;
            let (before, updated) = self.update(user_id, now, change, |before, after| {
                if !guard() {
                    return Err(UpdateError::GuardFailed.into());
                }
                confirmation = match owed(&self.branding, &self.allowed_countries, before, after) {
                    Owed::Nothing => Confirming::Nothing,
                    Owed::Unsendable(reason) => Confirming::Unsendable(reason),
                    Owed::Confirmation(c) if self.confirmations().claimed.insert(c.id.clone()) => {
                        Confirming::Claimed(Claimed {
                            confirmation: c,
                            token: "fake-token".into(),
                        })
                    }
                    Owed::Confirmation(_) => Confirming::AlreadyClaimed,
                };
                Ok(())
            })?;
            Ok(Change {
                before,
                updated,
                confirmation,
            })
        }
    }

    impl PreferencesRead for MemoryPreferences {
        async fn current(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
            MemoryPreferences::current(self, user_id)
        }
    }

    impl ConsentWrites for MemoryPreferences {
        async fn change<E, F>(
            &self,
            user_id: &str,
            now: Timestamp,
            _read: Option<Preferences>,
            change: F,
        ) -> Result<Change, E>
        where
            E: From<UpdateError> + Send,
            F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send,
        {
            self.change_guarded(user_id, now, || true, change)
        }
    }

    impl ConfirmationSend for MemoryPreferences {
        async fn send_claimed(&self, claimed: &Claimed) -> Option<&'static str> {
            let mut confirmations = self.confirmations();
            if confirmations.refuse_sends {
                return Some("OptInConfirmationsNotSent");
            }
            confirmations.sent.push(claimed.clone());
            Some("OptInConfirmationsSent")
        }
    }
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
