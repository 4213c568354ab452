//! `inbound-sms`: STOP / START / HELP handling of the two-way SMS topic (DESIGN §8).
//!
//! Each SNS record carries one inbound message (`originationNumber`, `destinationNumber`,
//! `messageKeyword`, `messageBody`, `inboundMessageId`, `previousPublishedMessageId`). For each:
//!
//! 1. parse it; a malformed record (not JSON, no inbound message id, an origination number that
//!    is not a phone number) is logged with its SNS message id and skipped, with no write;
//! 2. skip it if its processed-once marker `inbound#<inboundMessageId>` exists;
//! 3. classify it ([`sms_shared::keywords::classify`]);
//! 4. apply it to every user whose phone is that number: an opt-out revokes consent, an opt-in
//!    re-grants it (only to users who had consented before and revoked earlier than this
//!    message was sent), each with a consent-history event (method `sms_keyword`, the inbound
//!    message id, the number); the event time is the SNS publish time (when AWS received the
//!    message), so a START that arrives after a newer STOP does not undo it;
//! 5. reply, unless the provider answers that keyword itself: the help text, the opt-out
//!    confirmation, or the opt-in confirmation (when someone with the number is subscribed
//!    now), in the language of the keyword (`PARAR` is answered in Spanish), else of the
//!    number's users, else English. The provider answers a keyword only when its setting says
//!    so (`PROVIDER_ANSWERS_STOP`, `_HELP`, `_START`) *and* it recognised the keyword
//!    ([`keywords::provider_keyword`]): a plain-language or Spanish opt-out is always
//!    confirmed here. A confirmation (opt-out or opt-in) is sent only while it can still
//!    arrive within 5 minutes of the inbound message ([`CONFIRMATION_WINDOW`], counted from the
//!    SNS publish time): later (a Lambda retry, a dead-letter replay) it is recorded
//!    `suppressed` / `confirmation_late` and never sent. The reply is a log record
//!    `reply#<inboundMessageId>` sent by the one send protocol ([`sms_shared::outbound`]:
//!    claimed, attempt recorded, sent, finished), so it is sent once;
//! 6. write the marker.
//!
//! **Why the marker comes last.** Writing it first would make a crash between the marker and
//! the effects lose a STOP for good. Written last, a retry after a crash redoes steps 3–5,
//! which are idempotent: a user already revoked (or granted) is left alone and gets no second
//! history event, and a reply that reached an outcome is not sent again. A crash (or a lost
//! answer) between `SendTextMessage` and the reply's outcome leaves the reply `sending`: its
//! receipt settles it, or the retry after its lease ends it `unknown`; it is never sent twice
//! (a confirmation is only worth sending within minutes). An opt-out that could not be saved
//! (a store fault, preferences that kept changing) fails the invocation before the marker, so
//! it is retried, never lost. Two concurrent deliveries of one message: the version condition
//! on preferences and the reply claim let one of them act; the other finds the work done (or
//! the reply busy, and fails so Lambda retries it).
//!
//! A transient fault (DynamoDB, a transient SMS error, a reply another invocation is sending)
//! fails the invocation, so Lambda retries it and finally hands it to the on-failure
//! destination: no STOP is lost.

pub mod answer;
pub mod ports;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use jiff::{SignedDuration, Timestamp};
use lambda_runtime::Diagnostic;
use ports::{InboundMarkers, KeywordReplies, LogReplies, NumberPreferences};
/// The parsed inbound message (core, so the fuzz crate needs no AWS).
pub use sms_core::inbound::{InboundMessage, MalformedInbound};
use sms_shared::config::{Branding, ProviderAnswers};
use sms_shared::keywords::{self, Intent, ProviderKeyword};
use sms_shared::locale::Locale;
use sms_shared::metrics::MetricSet;
use sms_shared::outbound::{self, Sent};
use sms_shared::phone::mask;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::segments;
use sms_shared::sms::{SmsError, SmsSender};
use sms_shared::store::inbound::{InboundRecord, reply_log_id};
use sms_shared::store::{
    Claim, DynamoClient, Finish, LogStore, NewReply, PreferencesStore, StoreError, UpdateError,
    Updated,
};
use sms_shared::template;
use sms_shared::{Clock, Config, MessageClass};
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{info, warn};

/// Name used in metrics.
const FUNCTION: &str = "inbound-sms";

/// A confirmation must reach the phone within this time of the inbound message (DESIGN §8;
/// CTIA and the FCC's 2024 rule: one confirmation, within 5 minutes of the opt-out).
pub const CONFIRMATION_WINDOW: SignedDuration = SignedDuration::from_mins(5);

/// What the send itself may take: the call's own timeout (5 s, `sms::SEND_TIMEOUT`) and the
/// carrier's delivery. No confirmation starts later than the window less this.
pub const CONFIRMATION_SEND_ALLOWANCE: SignedDuration = SignedDuration::from_secs(30);

/// The reason a confirmation too late to send is recorded with.
pub const CONFIRMATION_LATE: &str = "confirmation_late";

/// A fault that fails the invocation so Lambda retries it.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("DynamoDB request failed: {0}")]
    Store(#[from] StoreError),
    #[error("the reply could not be sent yet: {0}")]
    Sms(SmsError),
    #[error("another invocation is sending the reply to inbound message {0}")]
    ReplyBusy(String),
    #[error("preferences of the users of a number kept changing")]
    Contended,
}

impl From<UpdateError> for InboundError {
    fn from(err: UpdateError) -> Self {
        match err {
            UpdateError::Store(e) => InboundError::Store(e),
            UpdateError::Contended | UpdateError::GuardFailed => InboundError::Contended,
        }
    }
}

impl From<InboundError> for Diagnostic {
    fn from(error: InboundError) -> Self {
        let error_type = match &error {
            InboundError::Store(_) => "StoreError",
            InboundError::Sms(_) => "SmsTransientError",
            InboundError::ReplyBusy(_) => "ReplyBusy",
            InboundError::Contended => "PreferencesContended",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What became of one SNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    Processed {
        intent: Intent,
        /// Users whose consent changed.
        users_changed: usize,
        /// Whether a reply was sent by this invocation.
        replied: bool,
    },
    Duplicate,
    Malformed,
}

/// The function's state, built once per cold start: the processed-once markers, the
/// preferences and the replies, behind the [`ports`] the handler uses.
pub struct InboundSms<M, P, R> {
    markers: M,
    prefs: P,
    replies: R,
    clock: Arc<dyn Clock>,
    branding: Branding,
    provider_answers: ProviderAnswers,
}

/// The handler on the DynamoDB tables, sending through `S`.
pub type DynamoInboundSms<S> = InboundSms<LogStore, PreferencesStore, LogReplies<S>>;

impl<S: SmsSender> DynamoInboundSms<S> {
    /// The handler on the DynamoDB tables of `config` (what `main` runs, and the integration
    /// tests with it).
    pub fn new(config: &Config, dynamodb: DynamoClient, sms: S, clock: Arc<dyn Clock>) -> Self {
        let log = LogStore::new(dynamodb.clone(), &config.tables.log);
        let replies = LogReplies {
            log: log.clone(),
            sms,
            clock: clock.clone(),
            lease: config.claim_lease,
        };
        let prefs = PreferencesStore::new(dynamodb, &config.tables.preferences);
        Self::with_stores(config, log, prefs, replies, clock)
    }
}

impl<M, P, R> InboundSms<M, P, R>
where
    M: InboundMarkers,
    P: NumberPreferences,
    R: KeywordReplies,
{
    /// The handler on any stores; its texts and who answers which keyword from `config`.
    pub fn with_stores(
        config: &Config,
        markers: M,
        prefs: P,
        replies: R,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            markers,
            prefs,
            replies,
            clock,
            branding: config.branding.clone(),
            provider_answers: config.sms.provider_answers,
        }
    }

    /// Handles one SNS event. `Err` only for transient faults (Lambda retries the event).
    pub async fn handle(&self, event: SnsEvent) -> Result<Vec<InboundOutcome>, InboundError> {
        sms_shared::sns::process_records(&event, FUNCTION, async |sns, metrics| {
            self.process(sns, metrics).await
        })
        .await
    }

    async fn process(
        &self,
        sns: &SnsMessage,
        metrics: &mut MetricSet,
    ) -> Result<InboundOutcome, InboundError> {
        let sns_id = sns.message_id.as_str();
        let message = match InboundMessage::parse(&sns.message) {
            Ok(message) => message,
            Err(e) => {
                warn!(sns_message_id = sns_id, error = %e, "malformed inbound message skipped");
                metrics.add("MalformedEvent", None, 1.0);
                return Ok(InboundOutcome::Malformed);
            }
        };
        let id = message.inbound_message_id.as_str();
        if self.markers.inbound_processed(id).await? {
            info!(
                sns_message_id = sns_id,
                inbound_message_id = id,
                "inbound message already processed"
            );
            return Ok(InboundOutcome::Duplicate);
        }
        let now = self.clock.now();
        let sent_at = Timestamp::from_millisecond(sns.timestamp.timestamp_millis()).unwrap_or(now);
        let keyword = message.keyword.as_deref();
        let intent = keywords::classify(&message.body, keyword);
        let number = message.from.as_str();

        // `users`: the number's users as they are now (for the reply's language).
        let (users_changed, users, reply) = match intent {
            Intent::OptOut => {
                // Contended or failed: the invocation fails before the marker is written, so
                // Lambda retries the STOP; it is never marked processed unapplied.
                let updated = self
                    .prefs
                    .update_by_number(number, now, |p| {
                        if !p.consent.given {
                            return Vec::new();
                        }
                        let event =
                            keyword_event(&p.user_id, sent_at, ConsentAction::Revoke, number, id);
                        event.apply_to(&mut p.consent);
                        vec![event]
                    })
                    .await?;
                let revoked = updated.iter().filter(|u| u.changed).count();
                metrics.add("ConsentRevoked", None, revoked as f64);
                let users = updated.into_iter().map(|u| u.prefs).collect();
                (revoked, users, Some(ReplyKind::OptOutConfirmation))
            }
            Intent::OptIn => {
                let updated = self.grant_for_number(number, sent_at, id, now).await?;
                let granted = updated.iter().filter(|u| u.changed).count();
                metrics.add("ConsentGranted", None, granted as f64);
                let subscribed = updated.iter().any(|u| u.prefs.consent.given);
                let users = updated.into_iter().map(|u| u.prefs).collect();
                (
                    granted,
                    users,
                    subscribed.then_some(ReplyKind::OptInConfirmation),
                )
            }
            Intent::Help => (0, Vec::new(), Some(ReplyKind::Help)),
            Intent::Other => (0, Vec::new(), None),
        };

        // No keyword is answered twice (§8): the provider answers what it recognised, when
        // the deployment says it answers that family.
        let recognised = keywords::provider_keyword(&message.body, keyword);
        let reply = reply.filter(|kind| {
            let answered = self.provider_answers(*kind, recognised);
            if answered {
                info!(
                    inbound_message_id = id,
                    intent = intent.as_str(),
                    "the provider answers this keyword itself; no reply from us"
                );
                metrics.add("ReplyLeftToProvider", Some(intent.as_str()), 1.0);
            }
            !answered
        });

        let reply_id = reply.map(|_| reply_log_id(id));
        let mut replied = false;
        if let (Some(kind), Some(reply_id)) = (reply, &reply_id) {
            let locale = match keywords::language(&message.body, keyword) {
                Some(locale) => locale,
                None if users.is_empty() => {
                    users_locale(&self.prefs.find_by_phone(number).await?).unwrap_or_default()
                }
                None => users_locale(&users).unwrap_or_default(),
            };
            let body = match kind {
                ReplyKind::OptOutConfirmation => {
                    template::opt_out_confirmation(&self.branding, locale)
                }
                ReplyKind::OptInConfirmation => {
                    template::opt_in_confirmation(&self.branding, locale)
                }
                ReplyKind::Help => template::help_text(&self.branding, locale),
            };
            // Confirmations only while they can still arrive within 5 minutes of the inbound
            // message; the help text is an answer to a question, still true later.
            let deadline = kind
                .is_confirmation()
                .then(|| sent_at + CONFIRMATION_WINDOW - CONFIRMATION_SEND_ALLOWANCE);
            let outcome = self
                .send_reply(
                    &Reply {
                        id: reply_id,
                        inbound_id: id,
                        number,
                        body: &body,
                        intent,
                        deadline,
                    },
                    now,
                )
                .await?;
            match outcome {
                ReplyOutcome::Sent => {
                    replied = true;
                    metrics.count("RepliesSent");
                }
                ReplyOutcome::Late => metrics.count("ConfirmationLate"),
                ReplyOutcome::NotSent => {}
            }
        }

        let written = self
            .markers
            .record_inbound(
                &InboundRecord {
                    inbound_message_id: id,
                    phone_number: number,
                    destination_number: message.to.as_deref(),
                    keyword: message.keyword.as_deref(),
                    body: &message.body,
                    intent: intent.as_str(),
                    users_changed: u32::try_from(users_changed).unwrap_or(u32::MAX),
                    received_at_ms: sent_at.as_millisecond(),
                    reply_id: reply_id.as_deref(),
                },
                self.clock.now(),
            )
            .await?;
        metrics.add("Inbound", Some(intent.as_str()), 1.0);
        info!(
            sns_message_id = sns_id,
            inbound_message_id = id,
            from = %message.from,
            intent = intent.as_str(),
            users_changed,
            replied,
            first_delivery = written,
            "inbound message processed"
        );
        Ok(InboundOutcome::Processed {
            intent,
            users_changed,
            replied,
        })
    }

    /// Whether the provider answers a reply of `kind` itself: its setting is on and it
    /// recognised the keyword of that family.
    fn provider_answers(&self, kind: ReplyKind, recognised: Option<ProviderKeyword>) -> bool {
        let answers = self.provider_answers;
        match (kind, recognised) {
            (ReplyKind::OptOutConfirmation, Some(ProviderKeyword::OptOut)) => answers.stop,
            (ReplyKind::Help, Some(ProviderKeyword::Help)) => answers.help,
            (ReplyKind::OptInConfirmation, Some(ProviderKeyword::OptIn)) => answers.start,
            _ => false,
        }
    }

    /// Re-grants consent to every user with `number` who consented before and revoked earlier
    /// than `sent_at`. Returns every user of the number as updated (changed: granted now).
    async fn grant_for_number(
        &self,
        number: &str,
        sent_at: Timestamp,
        inbound_id: &str,
        now: Timestamp,
    ) -> Result<Vec<Updated>, InboundError> {
        let updated = self
            .prefs
            .update_by_number(number, now, |p| {
                let revoked_earlier = p.consent.revoked_at.is_none_or(|at| at < sent_at);
                if p.consent.given || p.consent.given_at.is_none() || !revoked_earlier {
                    return Vec::new();
                }
                let event = keyword_event(
                    &p.user_id,
                    sent_at,
                    ConsentAction::Grant,
                    number,
                    inbound_id,
                );
                event.apply_to(&mut p.consent);
                vec![event]
            })
            .await?;
        Ok(updated)
    }

    /// Sends the reply once, through the one send protocol, unless its deadline has passed.
    async fn send_reply(
        &self,
        reply: &Reply<'_>,
        now: Timestamp,
    ) -> Result<ReplyOutcome, InboundError> {
        if reply.deadline.is_some_and(|deadline| now > deadline) {
            return self.record_late(reply, now).await;
        }
        let token = match self.claim(reply, now).await? {
            Some(token) => token,
            None => return Ok(ReplyOutcome::NotSent),
        };
        let segments = segments::count(reply.body);
        // The deadline as an instant of this process: no call starts after it, even when
        // recording the attempt took the time.
        let start_by = reply.deadline.map(|deadline| {
            let left = (deadline - now).max(SignedDuration::ZERO);
            Instant::now() + left.unsigned_abs()
        });
        let sent = self
            .replies
            .send(&outbound::Message {
                id: reply.id,
                token: &token,
                to: reply.number,
                body: reply.body,
                log_body: reply.body,
                segments: segments.segments,
                encoding: segments.encoding.as_str(),
                class: MessageClass::Transactional,
                message_feedback: false,
                // Lambda retries a failed invocation.
                redelivered: true,
                start_by,
            })
            .await?;
        let inbound_id = reply.inbound_id;
        match sent {
            Sent::Sent { .. } => Ok(ReplyOutcome::Sent),
            Sent::ClaimLost => Ok(ReplyOutcome::NotSent),
            // Released unsent (`retry`) at the deadline: recorded late now.
            Sent::TooLate { .. } => self.record_late(reply, self.clock.now()).await,
            // Maybe sent: the next delivery's takeover settles the reply (never resent).
            Sent::InDoubt { error } => Err(InboundError::Sms(error)),
            Sent::Refused { error, .. } if error.is_transient() => Err(InboundError::Sms(error)),
            Sent::Refused { error, .. } => {
                warn!(inbound_message_id = inbound_id, to = %mask(reply.number), error = %error, "reply refused by the provider; not retried");
                Ok(ReplyOutcome::NotSent)
            }
        }
    }

    /// Claims the reply: its token, or `None` when it was settled before.
    async fn claim(
        &self,
        reply: &Reply<'_>,
        now: Timestamp,
    ) -> Result<Option<String>, InboundError> {
        let new = NewReply {
            id: reply.id,
            inbound_message_id: reply.inbound_id,
            phone_number: reply.number,
            body: reply.body,
            intent: reply.intent.as_str(),
        };
        match self.replies.claim(&new, now).await? {
            Claim::Claimed { token, .. } => Ok(Some(token)),
            Claim::Done(record) | Claim::SettledUnknown(record) => {
                info!(
                    inbound_message_id = reply.inbound_id,
                    status = record.status.as_str(),
                    "reply already settled"
                );
                Ok(None)
            }
            Claim::Busy { .. } => Err(InboundError::ReplyBusy(reply.inbound_id.to_owned())),
        }
    }

    /// A confirmation whose deadline passed: recorded `suppressed` / `confirmation_late` (with
    /// the body it would have had), never sent.
    async fn record_late(
        &self,
        reply: &Reply<'_>,
        now: Timestamp,
    ) -> Result<ReplyOutcome, InboundError> {
        let Some(token) = self.claim(reply, now).await? else {
            return Ok(ReplyOutcome::NotSent);
        };
        let late = Finish::Suppressed {
            reason: CONFIRMATION_LATE,
            phone_number: Some(reply.number),
        };
        self.replies.finish(reply.id, &token, late, now).await?;
        warn!(
            inbound_message_id = reply.inbound_id,
            intent = reply.intent.as_str(),
            to = %mask(reply.number),
            late_by_ms = reply
                .deadline
                .map_or(0, |d| (now - d).as_millis()),
            "{CONFIRMATION_LATE}: the confirmation could no longer arrive within 5 minutes of the message; not sent"
        );
        Ok(ReplyOutcome::Late)
    }
}

/// Which reply an inbound message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    OptOutConfirmation,
    OptInConfirmation,
    Help,
}

impl ReplyKind {
    /// Confirmations must arrive within 5 minutes (§8); the help text has no deadline.
    fn is_confirmation(self) -> bool {
        self != ReplyKind::Help
    }
}

/// A reply about to be sent.
struct Reply<'a> {
    id: &'a str,
    inbound_id: &'a str,
    number: &'a str,
    body: &'a str,
    intent: Intent,
    /// No send starts after this (confirmations).
    deadline: Option<Timestamp>,
}

/// What became of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyOutcome {
    Sent,
    /// Past its deadline: recorded `confirmation_late`, not sent.
    Late,
    /// Settled before, or refused for good.
    NotSent,
}

/// The language the users of a number chose, when those who chose one agree.
fn users_locale(users: &[Preferences]) -> Option<Locale> {
    let mut chosen = users.iter().filter_map(|p| p.locale.as_deref());
    let first = chosen.next()?;
    chosen
        .all(|other| other == first)
        .then(|| Locale::from_stored(Some(first)))
}

fn keyword_event(
    user_id: &str,
    at: Timestamp,
    action: ConsentAction,
    number: &str,
    inbound_id: &str,
) -> ConsentEvent {
    let mut event = ConsentEvent::new(user_id, at, action, ConsentMethod::SmsKeyword);
    event.phone_number = Some(number.to_owned());
    event.inbound_message_id = Some(inbound_id.to_owned());
    event
}
