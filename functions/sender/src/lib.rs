//! `sender`: turns SQS send requests (DESIGN §6) into at most one SMS each.
//!
//! For each record of a batch:
//! 1. parse and render, in the user's language (the preferences' `locale`); an invalid body
//!    goes to the dead-letter queue with its reason;
//! 2. claim the request id in the log with one conditional write: a duplicate delivery, or a
//!    request another invocation is working on, stops here; an attempt in doubt is taken over
//!    by the rule of §6 ([`LogStore::claim`]);
//! 3. decide consent, preferences, country, quiet hours and spend (§4) with the user's
//!    preferences as they are now (one `BatchGetItem` for the whole batch);
//! 4. reserve the per-user caps with atomic counters (§7);
//! 5. wait for the pacer (the origination identity's rate) unless the send could then not
//!    start before the invocation's deadline less [`Config::sender_deadline_margin`] (the
//!    record goes back to SQS as a retry instead), and send through the one send protocol
//!    ([`sms_shared::outbound`]: record the attempt, send with the request id as `Context`,
//!    record the outcome).
//!
//! Every record ends in exactly one outcome ([`Outcome`]); `retry` and `deferred` records
//! come back from SQS (handed back, or for a wait of known length, a fresh copy: see
//! [`queues`]), the others are acknowledged.

mod outcome;
pub mod queues;

pub use outcome::Outcome;
pub use queues::{Disposition, MAX_DELAY, QueueError, Queues};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use sms_shared::config::{Branding, Limits};
use sms_shared::consent::{self, Decision, SendCheck, SuppressReason, Usage};
use sms_shared::locale::Locale;
use sms_shared::metrics::MetricSet;
use sms_shared::outbound::{self, Outbound};
use sms_shared::pacing::Pacer;
use sms_shared::phone::E164;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::quiet_hours;
use sms_shared::request::{RequestError, SendRequest};
use sms_shared::sms::{SmsError, SmsSender};
use sms_shared::store::batch::read_preferences_and_counters;
use sms_shared::store::log::counter_ids;
use sms_shared::store::{
    Bounded, Claim, Counters, DynamoClient, Finish, LogStatus, LogStore, NewLogRecord,
    PreferencesStore, StoreError,
};
use sms_shared::template::{self, RenderedMessage, TemplateError};
use sms_shared::{Clock, Config, MessageClass};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// When a record handed back after a transient fault comes again.
pub const RETRY_DELAY: SignedDuration = SignedDuration::from_secs(10);

/// Name used in metrics and logs.
const FUNCTION: &str = "sender";

/// The sender's state, built once per cold start.
pub struct Sender<S> {
    log: LogStore,
    prefs: PreferencesStore,
    counters: Counters,
    queues: Queues,
    sms: S,
    pacer: Pacer,
    clock: Arc<dyn Clock>,
    branding: Branding,
    limits: Limits,
    allowed_countries: Vec<String>,
    max_segments: u32,
    concurrency: usize,
    lease: SignedDuration,
    deadline_margin: SignedDuration,
}

/// What became of one record: its outcome, and whether SQS keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub outcome: Outcome,
    pub disposition: Disposition,
}

/// What one batch shares: everyone's preferences and the month's spend.
struct BatchContext {
    prefs: HashMap<String, Preferences>,
    spend_micros: u64,
}

/// Counter slots held for a promotional send, given back if it does not go out.
#[derive(Debug, Default)]
struct Reservation {
    day: Option<String>,
    window: Option<(String, Timestamp)>,
}

impl<S: SmsSender> Sender<S> {
    /// Builds the state from clients made once per cold start.
    pub fn new(
        config: &Config,
        dynamodb: DynamoClient,
        sqs: aws_sdk_sqs::Client,
        sms: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            log: LogStore::new(dynamodb.clone(), &config.tables.log)
                .with_takeover_wait(config.takeover_wait),
            prefs: PreferencesStore::new(dynamodb.clone(), &config.tables.preferences),
            counters: Counters::new(
                dynamodb,
                &config.tables.log,
                sms_shared::store::schema::LOG_KEY,
            ),
            queues: Queues::new(sqs, config),
            sms,
            pacer: Pacer::new(config.sms.parts_per_second, config.sender_max_concurrency),
            clock,
            branding: config.branding.clone(),
            limits: config.limits,
            allowed_countries: config.allowed_countries.clone(),
            max_segments: config.sms.max_segments,
            concurrency: config.sender_concurrency,
            lease: config.claim_lease,
            deadline_margin: config.sender_deadline_margin,
        }
    }

    /// The SMS sender (tests inspect the stub through it).
    pub fn sms(&self) -> &S {
        &self.sms
    }

    /// Handles one SQS batch with no deadline. Never fails as a whole: each record's fate is
    /// in the response.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        self.handle_until(event, None).await
    }

    /// Handles one SQS batch that must be done by `deadline` (the invocation's): no send
    /// starts later than the deadline less the margin; records that cannot are handed back.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let settled = self.settle_batch(&event, deadline).await;
        let mut metrics = MetricSet::default();
        let mut response = SqsBatchResponse::default();
        for (record, settled) in event.records.iter().zip(&settled) {
            settled.outcome.count(&mut metrics);
            if settled.disposition == Disposition::HandBack {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        metrics.emit(FUNCTION);
        Ok(response)
    }

    /// Settles every record of a batch (no deadline); outcomes in record order.
    pub async fn process(&self, event: &SqsEvent) -> Vec<Outcome> {
        self.settle_batch(event, None)
            .await
            .into_iter()
            .map(|s| s.outcome)
            .collect()
    }

    /// Settles every record of a batch; in record order.
    pub async fn settle_batch(&self, event: &SqsEvent, deadline: Option<Instant>) -> Vec<Settled> {
        let latest_start = deadline.map(|d| {
            d.checked_sub(self.deadline_margin.unsigned_abs())
                .unwrap_or_else(Instant::now)
        });
        let parsed: Vec<Result<SendRequest, RequestError>> = event
            .records
            .iter()
            .map(|r| SendRequest::parse(r.body.as_deref().unwrap_or_default()))
            .collect();
        let users: Vec<&str> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .map(|r| r.user_id.as_str())
            .collect();
        let now = self.clock.now();
        let context = if users.is_empty() {
            None
        } else {
            // One BatchGetItem: every user's preferences and the month's spend.
            let spend_id = counter_ids::month_spend(now);
            let read = read_preferences_and_counters(
                &self.prefs,
                &users,
                &self.counters,
                std::slice::from_ref(&spend_id),
                now,
            )
            .await;
            match read {
                Ok(read) => Some(BatchContext {
                    spend_micros: read.counters.get(&spend_id).copied().unwrap_or(0),
                    prefs: read.preferences,
                }),
                Err(e) => {
                    error!(error = %e, "could not read preferences and spend; the batch will be retried");
                    None
                }
            }
        };
        let context = context.as_ref();
        let mut indexed: Vec<(usize, Settled)> =
            futures_util::stream::iter(event.records.iter().zip(parsed).enumerate())
                .map(|(i, (record, parsed))| async move {
                    (i, self.settle(record, parsed, context, latest_start).await)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        indexed.sort_unstable_by_key(|(i, _)| *i);
        indexed.into_iter().map(|(_, o)| o).collect()
    }

    async fn settle(
        &self,
        record: &SqsMessage,
        parsed: Result<SendRequest, RequestError>,
        context: Option<&BatchContext>,
        latest_start: Option<Instant>,
    ) -> Settled {
        let message_id = record.message_id.as_deref().unwrap_or("unknown");
        let step = match parsed {
            Err(err) => Step::Done(self.reject(record, &err.to_string()).await),
            Ok(request) => match context {
                Some(context) => {
                    self.send_request(record, &request, context, latest_start)
                        .await
                }
                None => Step::Done(Outcome::Retry {
                    reason: "store_unavailable",
                }),
            },
        };
        let now = self.clock.now();
        let (outcome, disposition) = match step {
            Step::Done(outcome) => {
                let disposition = match &outcome {
                    Outcome::Retry { reason: "deadline" } => {
                        // Another instance (or the next invocation) takes it at once.
                        self.queues.retry_in(record, SignedDuration::ZERO).await
                    }
                    Outcome::Retry { .. } => self.queues.retry_in(record, RETRY_DELAY).await,
                    Outcome::Deferred { until } => {
                        self.queues.later(record, until.duration_since(now)).await
                    }
                    _ => Disposition::Acknowledge,
                };
                (outcome, disposition)
            }
            Step::Later { outcome, until } => {
                let disposition = self.queues.later(record, until.duration_since(now)).await;
                (outcome, disposition)
            }
        };
        outcome.log(message_id);
        Settled {
            outcome,
            disposition,
        }
    }

    /// An invalid body: to the dead-letter queue at once, or retried if that fails (SQS's
    /// own redrive then moves it after the maximum receives).
    async fn reject(&self, record: &SqsMessage, reason: &str) -> Outcome {
        match self.queues.dead_letter(record, reason).await {
            Ok(()) => Outcome::Rejected {
                reason: reason.to_owned(),
                dead_lettered: true,
            },
            Err(e) => {
                error!(error = %e, reason, "could not move an invalid request to the dead-letter queue");
                Outcome::Retry {
                    reason: "dead_letter_failed",
                }
            }
        }
    }

    async fn send_request(
        &self,
        record: &SqsMessage,
        request: &SendRequest,
        context: &BatchContext,
        latest_start: Option<Instant>,
    ) -> Step {
        // In the user's language (§8). A Spanish body longer than the maximum falls back to
        // English rather than failing a request that is valid.
        let locale = context
            .prefs
            .get(&request.user_id)
            .map(|p| p.locale())
            .unwrap_or_default();
        let render = |locale| {
            template::render_in(
                request.kind,
                &request.params,
                &self.branding,
                self.max_segments,
                locale,
            )
        };
        let rendered = match render(locale) {
            Err(TemplateError::TooLong { .. }) if locale != Locale::En => render(Locale::En),
            other => other,
        };
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(e) => {
                return Step::Done(
                    self.reject(record, &format!("invalid request {}: {e}", request.id))
                        .await,
                );
            }
        };
        if latest_start.is_some_and(|latest| Instant::now() >= latest) {
            // Too late to start anything: not even claimed, so the next delivery may at once.
            return Step::Done(Outcome::Retry { reason: "deadline" });
        }

        let now = self.clock.now();
        let new = NewLogRecord {
            id: &request.id,
            user_id: Some(&request.user_id),
            kind: request.kind,
            related: request.related.as_ref(),
        };
        let token = match self.log.claim(&new, now, self.lease).await {
            Ok(Claim::Claimed { token, .. }) => token,
            Ok(Claim::Done(_)) => return Step::Done(Outcome::Duplicate),
            Ok(Claim::SettledUnknown(_)) => return Step::Done(Outcome::Unknown),
            Ok(Claim::Busy { status, until_ms }) => {
                let until = Timestamp::from_millisecond(until_ms).unwrap_or(now);
                let outcome = match status {
                    LogStatus::Deferred => Outcome::Deferred { until },
                    LogStatus::Sending => Outcome::Retry { reason: "in_doubt" },
                    _ => Outcome::Retry {
                        reason: "in_flight",
                    },
                };
                return Step::Later { outcome, until };
            }
            Err(e) => return Step::Done(store_retry(&e)),
        };
        let claim = ClaimRef {
            id: &request.id,
            token: &token,
        };

        if request.not_after.is_some_and(|t| t <= now) {
            return Step::Done(self.finish(&claim, Finish::Expired, Outcome::Expired).await);
        }

        let prefs = context.prefs.get(&request.user_id);
        let decision = consent::decide(&SendCheck {
            kind: request.kind,
            prefs,
            verification_target: None,
            number_undeliverable: prefs.is_some_and(|p| p.phone_undeliverable_at.is_some()),
            allowed_countries: &self.allowed_countries,
            usage: Usage {
                monthly_spend_micros: context.spend_micros,
                ..Usage::default()
            },
            limits: &self.limits,
            now,
        });
        let phone = prefs.and_then(|p| p.phone_number.as_deref());
        // The number `decide` parsed from the preferences: parsed once per message.
        let number = match decision {
            Decision::Send(number) => number,
            Decision::Suppress(reason) => {
                return Step::Done(self.suppress(&claim, reason, phone).await);
            }
            Decision::Defer { until } => {
                return Step::Done(
                    self.finish(
                        &claim,
                        Finish::Deferred { until },
                        Outcome::Deferred { until },
                    )
                    .await,
                );
            }
        };

        let class = request.kind.class();
        let reservation = if class == MessageClass::Promotional {
            match self.reserve(&request.user_id, &number, now).await {
                Ok(Ok(reservation)) => reservation,
                Ok(Err(reason)) => return Step::Done(self.suppress(&claim, reason, phone).await),
                Err(e) => {
                    return Step::Done(
                        self.finish(
                            &claim,
                            retry_finish("store", &e.to_string()),
                            store_retry(&e),
                        )
                        .await,
                    );
                }
            }
        } else {
            Reservation::default()
        };

        if !self
            .pacer
            .acquire_by(rendered.segments.segments, latest_start)
            .await
        {
            // The pace leaves no room before the deadline: give the record back unsent.
            self.release(reservation, now).await;
            info!(
                request_id = claim.id,
                "no room before the deadline; handed back"
            );
            return Step::Done(
                self.finish(
                    &claim,
                    retry_finish("deadline", "no room before the invocation's deadline"),
                    Outcome::Retry { reason: "deadline" },
                )
                .await,
            );
        }
        Step::Done(
            self.send_claimed(
                &claim,
                &number,
                &rendered,
                class,
                reservation,
                now,
                latest_start,
            )
            .await,
        )
    }

    /// Sends a claimed, decided request through the one send protocol.
    #[allow(clippy::too_many_arguments)]
    async fn send_claimed(
        &self,
        claim: &ClaimRef<'_>,
        number: &E164,
        rendered: &RenderedMessage,
        class: MessageClass,
        reservation: Reservation,
        now: Timestamp,
        latest_start: Option<Instant>,
    ) -> Outcome {
        let outbound = Outbound {
            log: &self.log,
            sms: &self.sms,
            clock: self.clock.as_ref(),
            lease: self.lease,
        };
        let message = outbound::Message {
            id: claim.id,
            token: claim.token,
            to: number.as_str(),
            body: &rendered.body,
            log_body: &rendered.log_body,
            segments: rendered.segments.segments,
            encoding: rendered.segments.encoding.as_str(),
            class,
            message_feedback: false,
            redelivered: true,
            start_by: latest_start,
        };
        match outbound.send(&message).await {
            Err(e) => {
                self.release(reservation, now).await;
                store_retry(&e)
            }
            Ok(outbound::Sent::ClaimLost) => {
                self.release(reservation, now).await;
                Outcome::Duplicate
            }
            Ok(outbound::Sent::TooLate { .. }) => {
                self.release(reservation, now).await;
                Outcome::Retry { reason: "deadline" }
            }
            Ok(outbound::Sent::Sent { recorded, .. }) => {
                self.pacer.succeeded();
                if recorded {
                    Outcome::Sent
                } else {
                    // Not acknowledged: the record stays `sending`; a receipt settles it, or
                    // the takeover of the redelivery does (§6).
                    Outcome::Retry {
                        reason: "sent_not_recorded",
                    }
                }
            }
            // Maybe sent: the counter slots stay taken.
            Ok(outbound::Sent::InDoubt { .. }) => Outcome::Retry { reason: "in_doubt" },
            Ok(outbound::Sent::Refused { error, recorded }) => {
                self.release(reservation, now).await;
                let outcome = self.refused(claim, &error, class, number).await;
                if recorded {
                    outcome
                } else {
                    Outcome::Retry {
                        reason: "store_unavailable",
                    }
                }
            }
        }
    }

    /// The outcome of a refusal the protocol recorded; a carrier opt-out also revokes
    /// consent for the number (§6).
    async fn refused(
        &self,
        claim: &ClaimRef<'_>,
        err: &SmsError,
        class: MessageClass,
        number: &E164,
    ) -> Outcome {
        if err.is_throttling() {
            self.pacer.throttled();
        }
        match err {
            SmsError::Transient { code, .. } => {
                warn!(
                    request_id = claim.id,
                    code, "transient provider error; will retry"
                );
                Outcome::Retry {
                    reason: "provider_transient",
                }
            }
            SmsError::OptedOut => {
                // AWS or the carrier holds an opt-out: treat it as the user's STOP (§6).
                let now = self.clock.now();
                let revoked = self
                    .prefs
                    .revoke_number(number.as_str(), now, |p| {
                        let mut event = ConsentEvent::new(
                            p.user_id.clone(),
                            now,
                            ConsentAction::Revoke,
                            ConsentMethod::CarrierOptOut,
                        );
                        event.phone_number = Some(number.as_str().to_owned());
                        event
                    })
                    .await;
                match revoked {
                    Ok(n) => info!(to = %number, users = n, "carrier opt-out applied"),
                    Err(e) => {
                        // The request is still suppressed; the next send to this number gets
                        // the same answer from AWS and tries again.
                        error!(error = %e, to = %number, "could not revoke consent after a carrier opt-out");
                    }
                }
                Outcome::Suppressed(SuppressReason::CarrierOptedOut)
            }
            SmsError::SpendLimitReached if class == MessageClass::Promotional => {
                Outcome::Suppressed(SuppressReason::SpendLimit)
            }
            SmsError::SpendLimitReached => {
                // Transactional: keep retrying so it reaches the DLQ and its alarm (§6).
                error!(
                    request_id = claim.id,
                    "account spend limit reached for a transactional message"
                );
                Outcome::Retry {
                    reason: "spend_limit",
                }
            }
            SmsError::Permanent { code, message } => {
                warn!(
                    request_id = claim.id,
                    code, message, "provider refused the message"
                );
                Outcome::Rejected {
                    reason: format!("provider_{code}"),
                    dead_lettered: false,
                }
            }
            SmsError::InDoubt { .. } => Outcome::Retry { reason: "in_doubt" },
        }
    }

    /// Reserves the daily cap and, for stricter states, the rolling 24 h cap.
    async fn reserve(
        &self,
        user_id: &str,
        number: &E164,
        now: Timestamp,
    ) -> Result<Result<Reservation, SuppressReason>, StoreError> {
        let mut reservation = Reservation::default();
        let day = counter_ids::user_day(user_id, now);
        let cap = u64::from(self.limits.promotional_per_user_per_day);
        match self
            .counters
            .increment_within(&day, 1, cap, now + SignedDuration::from_hours(48))
            .await?
        {
            Bounded::CapReached => return Ok(Err(SuppressReason::DailyCap)),
            Bounded::Counted(_) => reservation.day = Some(day),
        }
        if let Some(max) = quiet_hours::rule_for(number).max_promotional_per_24h {
            let id = counter_ids::user_rolling_24h(user_id);
            let window = SignedDuration::from_hours(24);
            match self.counters.reserve_in_window(&id, max, window, now).await {
                Ok(Bounded::Counted(_)) => reservation.window = Some((id, now)),
                Ok(Bounded::CapReached) => {
                    self.release(reservation, now).await;
                    return Ok(Err(SuppressReason::StateCap));
                }
                Err(e) => {
                    self.release(reservation, now).await;
                    return Err(e);
                }
            }
        }
        Ok(Ok(reservation))
    }

    /// Gives back counter slots of a message that did not go out. Best effort: a slot that
    /// cannot be returned only makes the cap stricter for the rest of the day.
    async fn release(&self, reservation: Reservation, now: Timestamp) {
        if let Some(day) = reservation.day
            && let Err(e) = self
                .counters
                .add(&day, -1, now + SignedDuration::from_hours(48))
                .await
        {
            warn!(error = %e, "could not release a daily cap slot");
        }
        if let Some((id, at)) = reservation.window
            && let Err(e) = self.counters.release_in_window(&id, at).await
        {
            warn!(error = %e, "could not release a state cap slot");
        }
    }

    async fn suppress(
        &self,
        claim: &ClaimRef<'_>,
        reason: SuppressReason,
        phone: Option<&str>,
    ) -> Outcome {
        self.finish(
            claim,
            Finish::Suppressed {
                reason: reason.as_str(),
                phone_number: phone,
            },
            Outcome::Suppressed(reason),
        )
        .await
    }

    /// Writes the outcome of a claim; `outcome` is what the record ends in if that works.
    async fn finish(&self, claim: &ClaimRef<'_>, finish: Finish<'_>, outcome: Outcome) -> Outcome {
        match self
            .log
            .finish(claim.id, claim.token, finish, self.clock.now())
            .await
        {
            Ok(true) => outcome,
            Ok(false) => Outcome::Duplicate,
            Err(e) => store_retry(&e),
        }
    }
}

/// Where a record's handling ended: an outcome, or a wait of known length.
enum Step {
    Done(Outcome),
    /// Busy until `until` (deferred, in doubt, another invocation's lease).
    Later {
        outcome: Outcome,
        until: Timestamp,
    },
}

/// The id and token of a claimed request.
struct ClaimRef<'a> {
    id: &'a str,
    token: &'a str,
}

fn retry_finish<'a>(code: &'a str, message: &'a str) -> Finish<'a> {
    Finish::Retry {
        error_code: code,
        error_message: message,
    }
}

fn store_retry(e: &StoreError) -> Outcome {
    error!(error = %e, "DynamoDB request failed; the record will be retried");
    Outcome::Retry {
        reason: "store_unavailable",
    }
}
