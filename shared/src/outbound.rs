//! Sending one SMS once (DESIGN §6, §8): the one protocol of the sender, the verification
//! codes and the keyword replies. States and transitions: docs/exactly-once.md.
//!
//! `SendTextMessage` has no idempotency token, so whether a message went out is never
//! guessed. For a record the caller has claimed ([`LogStore::claim`] or
//! [`LogStore::claim_reply`]):
//!
//! 1. **record the attempt** ([`LogStore::begin_send`]): `sending`, its time, the number and
//!    the body, and a fresh lease. A lost claim stops here: nothing is sent;
//! 2. **send** with the log id as `Context`, which every delivery receipt carries back;
//! 3. **finish**: `sent` with the provider's message id; a refusal as the refusal says
//!    (`retry`, `rejected`, `suppressed`). No answer at all (a timeout, a broken connection)
//!    leaves the record `sending` with its lease ended: maybe sent. A receipt settles it
//!    (`delivery-status` applies receipts to `sending` records), or the takeover of the
//!    record's next claim does, after the wait (`unknown` at most once, or one more send for
//!    a transactional request).
//!
//! Nothing here depends on the same process seeing the record again: everything a later
//! invocation needs is in the log.

use crate::clock::Clock;
use crate::consent::SuppressReason;
use crate::kinds::MessageClass;
use crate::sms::{OutboundSms, SentSms, SmsError, SmsSender};
use crate::store::{Attempt, Finish, LogStore, StoreError};
use jiff::SignedDuration;
use tokio::time::Instant;
use tracing::{error, warn};

/// The sending half of the protocol, for one function.
pub struct Outbound<'a, S> {
    pub log: &'a LogStore,
    pub sms: &'a S,
    pub clock: &'a dyn Clock,
    /// The lease of an attempt: longer than the function's timeout, so a live invocation
    /// never loses its record to a takeover.
    pub lease: SignedDuration,
}

/// One claimed message, as sent and as logged.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The log id (also the `Context` of the message).
    pub id: &'a str,
    /// The claim's token.
    pub token: &'a str,
    /// E.164 destination.
    pub to: &'a str,
    /// The body as sent.
    pub body: &'a str,
    /// The body as logged (verification codes redacted).
    pub log_body: &'a str,
    pub segments: u32,
    pub encoding: &'a str,
    pub class: MessageClass,
    pub message_feedback: bool,
    /// Whether something delivers the record again after a transient refusal (SQS, Lambda's
    /// retries): then it ends `retry`, else `rejected`.
    pub redelivered: bool,
    /// No call starts after this (the invocation's deadline less its margin): past it, the
    /// attempt is released as `retry` unsent.
    pub start_by: Option<Instant>,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The provider took it. `recorded`: the log says `sent` (or a receipt said it first);
    /// else the record stays `sending` until a receipt or the takeover settles it.
    Sent { message_id: String, recorded: bool },
    /// The provider refused it; the log records the refusal when `recorded`.
    Refused { error: SmsError, recorded: bool },
    /// No answer: maybe sent. The record stays `sending`.
    InDoubt { error: SmsError },
    /// The claim was gone before the call (a receipt or another invocation settled the
    /// record): nothing was sent.
    ClaimLost,
    /// Recording the attempt took the time up to `start_by`: nothing was sent; the record is
    /// `retry` when `recorded`.
    TooLate { recorded: bool },
}

impl<S: SmsSender> Outbound<'_, S> {
    /// Records the attempt, sends, records the outcome. `Err` only when the attempt could not
    /// be recorded, and then nothing was sent.
    pub async fn send(&self, m: &Message<'_>) -> Result<Sent, StoreError> {
        let attempt = Attempt {
            phone_number: m.to,
            body: m.log_body,
            segments: m.segments,
            encoding: m.encoding,
        };
        if !self
            .log
            .begin_send(m.id, m.token, &attempt, self.clock.now(), self.lease)
            .await?
        {
            warn!(log_id = m.id, "claim lost before sending; not sent");
            return Ok(Sent::ClaimLost);
        }
        self.send_recorded(m).await
    }

    /// [`Outbound::send`] from step 2 on, for a record whose attempt is already recorded under
    /// `m.token` (written fresh in the caller's own transaction:
    /// [`crate::store::fresh_attempt`]).
    pub async fn send_recorded(&self, m: &Message<'_>) -> Result<Sent, StoreError> {
        if m.start_by.is_some_and(|by| Instant::now() > by) {
            let release = Finish::Retry {
                error_code: "deadline",
                error_message: "no time left to send before the invocation's deadline",
            };
            let recorded = self
                .log
                .finish(m.id, m.token, release, self.clock.now())
                .await
                .unwrap_or(false);
            return Ok(Sent::TooLate { recorded });
        }
        let sent = self.sms.send(&m.sms()).await;
        let reason = refusal_reason(&sent);
        let finish = recorded_as(&sent, &reason, m);
        let recorded = match self
            .log
            .finish(m.id, m.token, finish, self.clock.now())
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                // Only a crash between the attempt and here outlives the lease.
                error!(
                    log_id = m.id,
                    "the claim was lost after the call; outcome not recorded"
                );
                false
            }
            Err(e) => {
                error!(error = %e, log_id = m.id, "outcome not recorded; the record stays sending until a receipt or the takeover settles it");
                false
            }
        };
        Ok(match sent {
            Ok(sent) => Sent::Sent {
                message_id: sent.message_id,
                recorded,
            },
            Err(error @ SmsError::InDoubt { .. }) => {
                warn!(
                    log_id = m.id,
                    code = error.code(),
                    "no answer from the provider; in doubt"
                );
                Sent::InDoubt { error }
            }
            Err(error) => Sent::Refused { error, recorded },
        })
    }
}

impl Message<'_> {
    /// The SMS of step 3, with the log id as its `Context`.
    pub fn sms(&self) -> OutboundSms<'_> {
        OutboundSms {
            to: self.to,
            body: self.body,
            class: self.class,
            log_id: self.id,
            message_feedback: self.message_feedback,
        }
    }
}

/// `provider_<code>` of a refusal (what a rejection records); empty for a success.
pub fn refusal_reason(answer: &Result<SentSms, SmsError>) -> String {
    answer
        .as_ref()
        .err()
        .map(|e| format!("provider_{}", e.code()))
        .unwrap_or_default()
}

/// The outcome the provider's answer to step 3 is recorded as (DESIGN §6): `sent` with its
/// message id, or what the refusal says (`reason`: [`refusal_reason`]). One definition for
/// both ways an outcome is written: alone ([`Outbound::send_recorded`]) or with the other
/// outcomes of a batch (the sender, `store::send_batch`).
pub fn recorded_as<'a>(
    answer: &'a Result<SentSms, SmsError>,
    reason: &'a str,
    m: &Message<'a>,
) -> Finish<'a> {
    match answer {
        Ok(sent) => Finish::Sent {
            provider_message_id: &sent.message_id,
            phone_number: m.to,
            body: m.log_body,
            segments: m.segments,
            encoding: m.encoding,
        },
        Err(error) => refusal(error, reason, m),
    }
}

/// The outcome a refusal is recorded as (DESIGN §6).
/// `reason` is `provider_<code>`, what a rejection records.
fn refusal<'a>(error: &'a SmsError, reason: &'a str, m: &Message<'a>) -> Finish<'a> {
    let retry_or_reject = |code: &'a str, message: &'a str| {
        if m.redelivered {
            Finish::Retry {
                error_code: code,
                error_message: message,
            }
        } else {
            Finish::Rejected { reason }
        }
    };
    match error {
        SmsError::InDoubt { code, message } => Finish::InDoubt {
            error_code: code,
            error_message: message,
        },
        SmsError::Transient { code, message } => retry_or_reject(code, message),
        SmsError::OptedOut => Finish::Suppressed {
            reason: SuppressReason::CarrierOptedOut.as_str(),
            phone_number: Some(m.to),
        },
        SmsError::SpendLimitReached if m.class == MessageClass::Promotional => Finish::Suppressed {
            reason: SuppressReason::SpendLimit.as_str(),
            phone_number: Some(m.to),
        },
        // Transactional: retried so it reaches the dead-letter queue and its alarm.
        SmsError::SpendLimitReached => retry_or_reject(error.code(), "monthly spend limit reached"),
        SmsError::Permanent { .. } => Finish::Rejected { reason },
    }
}
