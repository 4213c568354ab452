//! `sender`: turns SQS send requests (DESIGN §6) into at most one SMS each.
//!
//! For each record of a batch:
//! 1. parse and render; an invalid body goes to the dead-letter queue with its reason;
//! 2. claim the request id in the log with one conditional write: a duplicate delivery, or a
//!    request another invocation is working on, stops here;
//! 3. decide consent, preferences, country, quiet hours and spend (§4) with the user's
//!    preferences as they are now (one `BatchGetItem` for the whole batch);
//! 4. reserve the per-user caps with atomic counters (§7);
//! 5. wait for the pacer (the origination identity's rate), send, record the outcome.
//!
//! Every record ends in exactly one outcome ([`Outcome`]); only `retry` and `deferred`
//! are reported as `batchItemFailures` so SQS delivers them again.

mod outcome;
mod queues;

pub use outcome::Outcome;
pub use queues::{MAX_DELAY, QueueError, Queues};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use sms_shared::config::{Branding, Limits};
use sms_shared::consent::{self, Decision, SendCheck, SuppressReason, Usage};
use sms_shared::metrics::MetricSet;
use sms_shared::pacing::Pacer;
use sms_shared::phone::E164;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::quiet_hours;
use sms_shared::request::{RequestError, SendRequest};
use sms_shared::sms::{OutboundSms, SmsError, SmsSender};
use sms_shared::store::batch::read_preferences_and_counters;
use sms_shared::store::log::counter_ids;
use sms_shared::store::{
    Bounded, Claim, Counters, DynamoClient, Finish, LogStatus, LogStore, NewLogRecord,
    PreferencesStore, StoreError,
};
use sms_shared::template::{self, RenderedMessage};
use sms_shared::{Clock, Config, MessageClass};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::{error, info, warn};

/// How long a claim keeps other invocations off a request: longer than the function's
/// timeout, so a live invocation never loses its claim.
pub const CLAIM_LEASE: SignedDuration = SignedDuration::from_secs(120);

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
    /// Sends whose outcome could not be written (DynamoDB unreachable right after the send).
    /// When SQS delivers the record again to this instance, the record is completed from
    /// here instead of sending a second SMS.
    unrecorded: Mutex<HashMap<String, UnrecordedSend>>,
}

#[derive(Debug, Clone)]
struct UnrecordedSend {
    token: String,
    provider_message_id: String,
    phone_number: String,
    body: String,
    segments: u32,
    encoding: &'static str,
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
            log: LogStore::new(dynamodb.clone(), &config.tables.log),
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
            unrecorded: Mutex::new(HashMap::new()),
        }
    }

    /// The SMS sender (tests inspect the stub through it).
    pub fn sms(&self) -> &S {
        &self.sms
    }

    /// Handles one SQS batch. Never fails as a whole: each record's fate is in the response.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let outcomes = self.process(&event).await;
        let mut metrics = MetricSet::default();
        let mut response = SqsBatchResponse::default();
        for (record, outcome) in event.records.iter().zip(&outcomes) {
            outcome.count(&mut metrics);
            if outcome.needs_redelivery() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        metrics.emit(FUNCTION);
        Ok(response)
    }

    /// Settles every record of a batch; outcomes in record order.
    pub async fn process(&self, event: &SqsEvent) -> Vec<Outcome> {
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
        let mut indexed: Vec<(usize, Outcome)> =
            futures_util::stream::iter(event.records.iter().zip(parsed).enumerate())
                .map(|(i, (record, parsed))| async move {
                    (i, self.settle(record, parsed, context).await)
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
    ) -> Outcome {
        let message_id = record.message_id.as_deref().unwrap_or("unknown");
        let outcome = match parsed {
            Err(err) => self.reject(record, &err.to_string()).await,
            Ok(request) => match context {
                Some(context) => self.send_request(record, &request, context).await,
                None => Outcome::Retry {
                    reason: "store_unavailable",
                },
            },
        };
        outcome.log(message_id);
        outcome
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
    ) -> Outcome {
        let rendered = match template::render(
            request.kind,
            &request.params,
            &self.branding,
            self.max_segments,
        ) {
            Ok(rendered) => rendered,
            Err(e) => {
                return self
                    .reject(record, &format!("invalid request {}: {e}", request.id))
                    .await;
            }
        };
        if let Some(outcome) = self.complete_unrecorded(&request.id).await {
            return outcome;
        }

        let now = self.clock.now();
        let new = NewLogRecord {
            id: &request.id,
            user_id: Some(&request.user_id),
            kind: request.kind,
            related: request.related.as_ref(),
        };
        let token = match self.log.claim(&new, now, CLAIM_LEASE).await {
            Ok(Claim::Claimed { token, .. }) => token,
            Ok(Claim::Done(_)) => return Outcome::Duplicate,
            Ok(Claim::Busy {
                status: LogStatus::Deferred,
                until_ms,
            }) => {
                let until = Timestamp::from_millisecond(until_ms).unwrap_or(now);
                return self.hide_until(record, until, now).await;
            }
            Ok(Claim::Busy { .. }) => {
                return Outcome::Retry {
                    reason: "in_flight",
                };
            }
            Err(e) => return store_retry(&e),
        };
        let claim = ClaimRef {
            id: &request.id,
            token: &token,
        };

        if request.not_after.is_some_and(|t| t <= now) {
            return self.finish(&claim, Finish::Expired, Outcome::Expired).await;
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
            Decision::Suppress(reason) => return self.suppress(&claim, reason, phone).await,
            Decision::Defer { until } => {
                let finish = self
                    .finish(
                        &claim,
                        Finish::Deferred { until },
                        Outcome::Deferred { until },
                    )
                    .await;
                if !matches!(finish, Outcome::Deferred { .. }) {
                    return finish;
                }
                return self.hide_until(record, until, now).await;
            }
        };

        let class = request.kind.class();
        let reservation = if class == MessageClass::Promotional {
            match self.reserve(&request.user_id, &number, now).await {
                Ok(Ok(reservation)) => reservation,
                Ok(Err(reason)) => return self.suppress(&claim, reason, phone).await,
                Err(e) => {
                    return self
                        .finish(
                            &claim,
                            retry_finish("store", &e.to_string()),
                            store_retry(&e),
                        )
                        .await;
                }
            }
        } else {
            Reservation::default()
        };

        self.pacer.acquire(rendered.segments.segments).await;
        let sent = self
            .sms
            .send(&OutboundSms {
                to: number.as_str(),
                body: &rendered.body,
                class,
                log_id: &request.id,
                message_feedback: false,
            })
            .await;
        match sent {
            Ok(sent) => {
                self.pacer.succeeded();
                self.record_sent(&claim, &sent.message_id, &number, &rendered)
                    .await
            }
            Err(err) => {
                self.release(reservation, now).await;
                self.provider_failure(&claim, err, class, &number).await
            }
        }
    }

    async fn provider_failure(
        &self,
        claim: &ClaimRef<'_>,
        err: SmsError,
        class: MessageClass,
        number: &E164,
    ) -> Outcome {
        if err.is_throttling() {
            self.pacer.throttled();
        }
        match &err {
            SmsError::Transient { code, message } => {
                warn!(
                    request_id = claim.id,
                    code, "transient provider error; will retry"
                );
                self.finish(
                    claim,
                    Finish::Retry {
                        error_code: code,
                        error_message: message,
                    },
                    Outcome::Retry {
                        reason: "provider_transient",
                    },
                )
                .await
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
                self.suppress(
                    claim,
                    SuppressReason::CarrierOptedOut,
                    Some(number.as_str()),
                )
                .await
            }
            SmsError::SpendLimitReached if class == MessageClass::Promotional => {
                self.suppress(claim, SuppressReason::SpendLimit, Some(number.as_str()))
                    .await
            }
            SmsError::SpendLimitReached => {
                // Transactional: keep retrying so it reaches the DLQ and its alarm (§6).
                error!(
                    request_id = claim.id,
                    "account spend limit reached for a transactional message"
                );
                self.finish(
                    claim,
                    retry_finish(err.code(), "monthly spend limit reached"),
                    Outcome::Retry {
                        reason: "spend_limit",
                    },
                )
                .await
            }
            SmsError::Permanent { code, message } => {
                warn!(
                    request_id = claim.id,
                    code, message, "provider refused the message"
                );
                let reason = format!("provider_{code}");
                self.finish(
                    claim,
                    Finish::Rejected { reason: &reason },
                    Outcome::Rejected {
                        reason: reason.clone(),
                        dead_lettered: false,
                    },
                )
                .await
            }
        }
    }

    async fn record_sent(
        &self,
        claim: &ClaimRef<'_>,
        message_id: &str,
        number: &E164,
        rendered: &RenderedMessage,
    ) -> Outcome {
        let finish = Finish::Sent {
            provider_message_id: message_id,
            phone_number: number.as_str(),
            body: &rendered.log_body,
            segments: rendered.segments.segments,
            encoding: rendered.segments.encoding.as_str(),
        };
        match self
            .log
            .finish(claim.id, claim.token, finish, self.clock.now())
            .await
        {
            Ok(true) => Outcome::Sent,
            Ok(false) => {
                // Our lease ran out and another invocation took the request over: it sees a
                // claimable record and may send too. Lease > timeout makes this a crash case.
                error!(
                    request_id = claim.id,
                    "sent, but the claim was lost before recording"
                );
                Outcome::Sent
            }
            Err(e) => {
                error!(error = %e, request_id = claim.id, "sent, but the log could not be written; kept for redelivery");
                self.unrecorded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        claim.id.to_owned(),
                        UnrecordedSend {
                            token: claim.token.to_owned(),
                            provider_message_id: message_id.to_owned(),
                            phone_number: number.as_str().to_owned(),
                            body: rendered.log_body.clone(),
                            segments: rendered.segments.segments,
                            encoding: rendered.segments.encoding.as_str(),
                        },
                    );
                Outcome::Retry {
                    reason: "sent_not_recorded",
                }
            }
        }
    }

    /// A redelivered record whose SMS this instance already sent: write the outcome now.
    async fn complete_unrecorded(&self, id: &str) -> Option<Outcome> {
        let pending = self
            .unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()?;
        let finish = Finish::Sent {
            provider_message_id: &pending.provider_message_id,
            phone_number: &pending.phone_number,
            body: &pending.body,
            segments: pending.segments,
            encoding: pending.encoding,
        };
        let outcome = match self
            .log
            .finish(id, &pending.token, finish, self.clock.now())
            .await
        {
            Ok(true) => Outcome::Sent,
            Ok(false) => Outcome::Duplicate,
            Err(e) => return Some(store_retry(&e)),
        };
        self.unrecorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Some(outcome)
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

    /// Quiet hours: make the record invisible until the window opens and ask for redelivery.
    async fn hide_until(&self, record: &SqsMessage, until: Timestamp, now: Timestamp) -> Outcome {
        if let Err(e) = self.queues.delay(record, until.duration_since(now)).await {
            // It comes back after the queue's visibility timeout and is deferred again.
            warn!(error = %e, "could not extend the visibility of a deferred request");
        }
        Outcome::Deferred { until }
    }
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
