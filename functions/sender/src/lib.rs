//! `sender`: turns SQS send requests (DESIGN §6) into at most one SMS each, doing its
//! DynamoDB work a batch at a time (docs/sender.md, docs/exactly-once.md "One batch"):
//!
//! 1. parse and render each record, in the user's language (the preferences' `locale`); an
//!    invalid body goes to the dead-letter queue with its reason;
//! 2. **read** everything the decisions need in one request ([`ports::BatchReads`]): every
//!    user's preferences, the month's spend, each user's promotional counts;
//! 3. **decide** each request with [`consent::decide`] (§4), the one rule for consent, quiet
//!    hours and the caps: the k-th promotional message of a user in the batch is decided on
//!    the counts read plus k;
//! 4. **claim** every request and reserve the caps in one conditional transaction
//!    ([`ports::BatchWrites`]): a request decided not to be sent is claimed straight into its
//!    outcome (`suppressed`, `expired`, `deferred`); the counter writes say "the counts are
//!    still those decided on". A cancelled transaction names the writes that failed: a claim
//!    that found the record taken gets the one-at-a-time answer (duplicate, busy, the §6
//!    takeover: [`ports::Takeovers`]), a counter that moved is read from the cancellation and
//!    the batch decided again; the rest is sent again;
//! 5. **record the attempts** of everything to send in one transaction (`sending`, before any
//!    call);
//! 6. **send**, paced, with the request id as `Context` (no call starts after the
//!    invocation's deadline less [`Config::sender_deadline_margin`]);
//! 7. **record the outcomes** in one transaction whenever no send is under way (so once per
//!    batch when sends overlap, after each call when they don't), with the cap slots of
//!    messages that did not go out given back.
//!
//! Every record ends in exactly one outcome ([`Outcome`]); `retry` and `deferred` records
//! come back from SQS (handed back, or for a wait of known length, a fresh copy: see
//! [`queues`]), the others are acknowledged.

mod outcome;
pub mod ports;
pub mod queues;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use outcome::Outcome;
pub use ports::{AwsPorts, Ports};
pub use queues::{Disposition, MAX_DELAY, QueueError, Queues};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use ports::{BatchReads, BatchWrites, HandBack, OptOuts, Takeovers};
use sms_shared::config::{Branding, Limits};
use sms_shared::consent::{self, Decision, SendCheck, SuppressReason, Usage};
use sms_shared::locale::Locale;
use sms_shared::metrics::MetricSet;
use sms_shared::outbound::{self, recorded_as, refusal_reason};
use sms_shared::pacing::Pacer;
use sms_shared::phone::E164;
use sms_shared::quiet_hours;
use sms_shared::request::SendRequest;
use sms_shared::sms::{SentSms, SmsError, SmsSender};
use sms_shared::store::log::ClaimTo;
use sms_shared::store::log::claim_token;
use sms_shared::store::send_batch::{
    CounterFound, CounterWrite, Failure, LogWrite, SendBatchStore, SendRead, Written,
};
use sms_shared::store::{
    Attempt, Claim, DynamoClient, Finish, LogStatus, LogStore, NewLogRecord, PreferencesStore,
};
use sms_shared::template::{self, RenderedMessage, TemplateError};
use sms_shared::{Clock, Config, MessageClass};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// When a record handed back after a transient fault comes again.
pub const RETRY_DELAY: SignedDuration = SignedDuration::from_secs(10);

/// Most records one pass of the steps takes: each is one claim and a user's at most two
/// counter writes, so a pass stays within a transaction's 100 items (and far under its
/// 4 MB). A larger SQS batch is settled in passes of this size, one after the other.
pub const RECORDS_PER_PASS: usize = 25;

/// How often a step is sent again after a cancellation (each round drops or corrects the
/// writes that failed; only concurrent writers make more than two).
const ROUNDS: usize = 4;

/// Name used in metrics and logs.
const FUNCTION: &str = "sender";

/// The sender's state, built once per cold start.
pub struct Sender<S, P = AwsPorts> {
    ports: P,
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

impl<S: SmsSender> Sender<S> {
    /// Builds the state from clients made once per cold start.
    pub fn new(
        config: &Config,
        dynamodb: DynamoClient,
        sqs: aws_sdk_sqs::Client,
        sms: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let log = LogStore::new(dynamodb.clone(), &config.tables.log)
            .with_takeover_wait(config.takeover_wait);
        let prefs = PreferencesStore::new(dynamodb, &config.tables.preferences);
        let ports = Ports {
            store: SendBatchStore::new(log, &prefs),
            opt_outs: prefs,
            queues: Queues::new(sqs, config),
        };
        Self::with_ports(config, ports, sms, clock)
    }
}

/// Where a record's handling ended: an outcome, or a wait of known length.
#[derive(Debug, Clone)]
enum Step {
    Done(Outcome),
    /// Busy until `until` (deferred, in doubt, another invocation's lease).
    Later {
        outcome: Outcome,
        until: Timestamp,
    },
}

/// A valid request of the pass, rendered, with the token its claim will hold.
struct Request {
    index: usize,
    request: SendRequest,
    rendered: RenderedMessage,
    token: String,
}

/// What the decision makes of a request.
#[derive(Debug, Clone)]
enum Plan {
    /// Claimed straight into an outcome.
    Outcome { finish: Ending, outcome: Outcome },
    /// Claimed to be sent to this number.
    Send { number: E164 },
}

/// An outcome written by the claim itself.
#[derive(Debug, Clone)]
enum Ending {
    Expired,
    Suppressed {
        reason: SuppressReason,
        phone: Option<String>,
    },
    Deferred {
        until: Timestamp,
    },
}

impl Ending {
    fn finish(&self) -> Finish<'_> {
        match self {
            Ending::Expired => Finish::Expired,
            Ending::Suppressed { reason, phone } => Finish::Suppressed {
                reason: reason.as_str(),
                phone_number: phone.as_deref(),
            },
            Ending::Deferred { until } => Finish::Deferred { until: *until },
        }
    }
}

/// A claimed request about to be sent; `counted`: it holds a slot of its user's caps.
struct Claimed<'p> {
    index: usize,
    request: &'p Request,
    number: E164,
    counted: bool,
}

/// How a call ended, before its outcome is recorded.
enum Answer {
    /// No call: the pace left no room before the deadline.
    Deadline,
    Sms(Result<SentSms, SmsError>),
}

/// Whether an outcome write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    Yes,
    /// The claim was gone (its condition failed): nothing was written.
    ClaimLost,
    /// The write failed (DynamoDB unreachable).
    No,
}

/// An outcome waiting for its write.
struct Pending<'p> {
    claimed: Claimed<'p>,
    answer: Answer,
    reason: String,
}

/// Cap slots to give back (messages that did not go out), per user.
#[derive(Debug, Default, Clone)]
struct GiveBack {
    day: HashMap<String, i64>,
    window: HashMap<String, usize>,
}

/// What the cap reservation of a pass wrote, per user: the window as written (entries and
/// version), so its slots can be given back.
#[derive(Debug, Default)]
struct Reserved {
    windows: HashMap<String, (Vec<i64>, u64)>,
    at_ms: i64,
}

impl<S, St, O, Q> Sender<S, Ports<St, O, Q>>
where
    S: SmsSender,
    St: BatchReads + BatchWrites + Takeovers,
    O: OptOuts,
    Q: HandBack,
{
    /// Builds the state from its ports.
    pub fn with_ports(
        config: &Config,
        ports: Ports<St, O, Q>,
        sms: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ports,
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
        let mut steps = Vec::with_capacity(event.records.len());
        for records in event.records.chunks(RECORDS_PER_PASS) {
            steps.extend(self.settle_pass(records, latest_start).await);
        }
        futures_util::stream::iter(event.records.iter().zip(steps))
            .map(|(record, step)| self.dispose(record, step))
            .buffered(self.concurrency)
            .collect()
            .await
    }

    /// Where a record goes once its step is known; logs its outcome.
    async fn dispose(&self, record: &SqsMessage, step: Step) -> Settled {
        let message_id = record.message_id.as_deref().unwrap_or("unknown");
        let now = self.clock.now();
        let q = &self.ports.queues;
        let (outcome, disposition) = match step {
            Step::Done(outcome) => {
                let disposition = match &outcome {
                    // Another instance (or the next invocation) takes it at once.
                    Outcome::Retry { reason: "deadline" } => {
                        q.retry_in(record, SignedDuration::ZERO).await
                    }
                    Outcome::Retry { .. } => q.retry_in(record, RETRY_DELAY).await,
                    Outcome::Deferred { until } => q.later(record, until.duration_since(now)).await,
                    _ => Disposition::Acknowledge,
                };
                (outcome, disposition)
            }
            Step::Later { outcome, until } => {
                let disposition = q.later(record, until.duration_since(now)).await;
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
        match self.ports.queues.dead_letter(record, reason).await {
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

    /// Steps 1 to 7 for at most [`RECORDS_PER_PASS`] records; their steps in record order.
    async fn settle_pass(
        &self,
        records: &[SqsMessage],
        latest_start: Option<Instant>,
    ) -> Vec<Step> {
        let mut steps: Vec<Option<Step>> = vec![None; records.len()];
        let mut valid = Vec::new();
        for (i, record) in records.iter().enumerate() {
            match SendRequest::parse(record.body.as_deref().unwrap_or_default()) {
                Ok(request) => valid.push((i, request)),
                Err(err) => {
                    steps[i] = Some(Step::Done(self.reject(record, &err.to_string()).await))
                }
            }
        }
        if !valid.is_empty() {
            self.settle_requests(records, valid, latest_start, &mut steps)
                .await;
        }
        steps
            .into_iter()
            .map(|s| {
                s.unwrap_or(Step::Done(Outcome::Retry {
                    reason: "store_unavailable",
                }))
            })
            .collect()
    }

    async fn settle_requests(
        &self,
        records: &[SqsMessage],
        valid: Vec<(usize, SendRequest)>,
        latest_start: Option<Instant>,
        steps: &mut [Option<Step>],
    ) {
        let now = self.clock.now();
        let users: Vec<&str> = valid.iter().map(|(_, r)| r.user_id.as_str()).collect();
        let mut read = match self.ports.store.read(&users, now).await {
            Ok(read) => read,
            Err(e) => {
                error!(error = %e, "could not read preferences and counters; the batch will be retried");
                return;
            }
        };
        let mut requests: Vec<Request> = Vec::with_capacity(valid.len());
        let mut ids = HashSet::new();
        for (index, request) in valid {
            let record = &records[index];
            let rendered = match self.render(&request, &read) {
                Ok(rendered) => rendered,
                Err(e) => {
                    let reason = format!("invalid request {}: {e}", request.id);
                    steps[index] = Some(Step::Done(self.reject(record, &reason).await));
                    continue;
                }
            };
            if latest_start.is_some_and(|latest| Instant::now() >= latest) {
                // Too late to start anything: not even claimed, so the next delivery may at once.
                steps[index] = Some(Step::Done(Outcome::Retry { reason: "deadline" }));
                continue;
            }
            if !ids.insert(request.id.clone()) {
                // The same request twice in one batch: the first copy holds it, as another
                // invocation's claim would.
                steps[index] = Some(Step::Later {
                    outcome: Outcome::Retry {
                        reason: "in_flight",
                    },
                    until: now + self.lease,
                });
                continue;
            }
            requests.push(Request {
                index,
                request,
                rendered,
                token: claim_token(),
            });
        }

        // Step 4: claims and cap reservations.
        let (to_send, reserved) = self.claim(&requests, &mut read, now, steps).await;
        if to_send.is_empty() {
            return;
        }
        // Step 5: the attempts.
        let give_back = Mutex::new(GiveBack::default());
        let to_send = self
            .record_attempts(to_send, latest_start, self.clock.now(), &give_back, steps)
            .await;
        // Steps 6 and 7: the calls, and their outcomes.
        let outcomes = Outcomes {
            pending: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            settled: Mutex::new(Vec::new()),
            give_back,
            reserved: Mutex::new(reserved),
        };
        futures_util::stream::iter(to_send)
            .map(|claimed| {
                // Counted from when the stream starts it, so the count only reaches 0 once
                // nothing is left to start, or when calls do not overlap at all.
                outcomes.active.fetch_add(1, Ordering::SeqCst);
                self.send(claimed, latest_start, &outcomes)
            })
            .buffer_unordered(self.concurrency)
            .collect::<()>()
            .await;
        self.flush(&outcomes).await;
        for (index, outcome) in outcomes
            .settled
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
        {
            steps[index] = Some(Step::Done(outcome));
        }
    }

    /// The body in the user's language (§8). A Spanish body longer than the maximum falls
    /// back to English rather than failing a request that is valid.
    fn render(
        &self,
        request: &SendRequest,
        read: &SendRead,
    ) -> Result<RenderedMessage, TemplateError> {
        let locale = read
            .preferences
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
        match render(locale) {
            Err(TemplateError::TooLong { .. }) if locale != Locale::En => render(Locale::En),
            other => other,
        }
    }

    /// Step 3: every request decided with what was read, in record order. The k-th
    /// promotional message of a user is decided with the user's counts plus k, so the caps
    /// of §7 and §4 are [`consent::decide`]'s rule alone.
    fn decide_all(&self, requests: &[&Request], read: &SendRead, now: Timestamp) -> Vec<Plan> {
        let window_start = (now - SignedDuration::from_hours(24)).as_millisecond();
        let mut sent_before: HashMap<&str, u32> = HashMap::new();
        requests
            .iter()
            .map(|r| {
                let request = &r.request;
                if request.not_after.is_some_and(|t| t <= now) {
                    return Plan::Outcome {
                        finish: Ending::Expired,
                        outcome: Outcome::Expired,
                    };
                }
                let prefs = read.preferences.get(&request.user_id);
                let counted = read.promotional.get(&request.user_id);
                let before = sent_before
                    .get(request.user_id.as_str())
                    .copied()
                    .unwrap_or(0);
                let today = counted.map_or(0, |c| c.today);
                let last_24h = counted.map_or(0, |c| {
                    c.window.iter().filter(|&&t| t > window_start).count()
                });
                let decision = consent::decide(&SendCheck {
                    kind: request.kind,
                    prefs,
                    verification_target: None,
                    number_undeliverable: prefs.is_some_and(|p| p.phone_undeliverable_at.is_some()),
                    allowed_countries: &self.allowed_countries,
                    usage: Usage {
                        promotional_today: u32::try_from(today)
                            .unwrap_or(u32::MAX)
                            .saturating_add(before),
                        promotional_last_24h: u32::try_from(last_24h)
                            .unwrap_or(u32::MAX)
                            .saturating_add(before),
                        monthly_spend_micros: read.spend_micros,
                    },
                    limits: &self.limits,
                    now,
                });
                let phone = prefs.and_then(|p| p.phone_number.clone());
                match decision {
                    Decision::Send(number) => {
                        if request.kind.class() == MessageClass::Promotional {
                            *sent_before.entry(request.user_id.as_str()).or_default() += 1;
                        }
                        Plan::Send { number }
                    }
                    Decision::Suppress(reason) => Plan::Outcome {
                        finish: Ending::Suppressed { reason, phone },
                        outcome: Outcome::Suppressed(reason),
                    },
                    Decision::Defer { until } => Plan::Outcome {
                        finish: Ending::Deferred { until },
                        outcome: Outcome::Deferred { until },
                    },
                }
            })
            .collect()
    }

    /// The counter writes that reserve the promotional sends of `plans`: per user, today's
    /// count and (for a number under a state's rolling cap) the window, each conditional on
    /// being what the decisions read.
    fn reservations(
        &self,
        requests: &[&Request],
        plans: &[Plan],
        read: &SendRead,
        now: Timestamp,
    ) -> (Vec<CounterWrite>, Reserved) {
        let window_start = (now - SignedDuration::from_hours(24)).as_millisecond();
        let mut per_user: Vec<(&str, i64, bool)> = Vec::new();
        for (r, plan) in requests.iter().zip(plans) {
            let Plan::Send { number } = plan else {
                continue;
            };
            if r.request.kind.class() != MessageClass::Promotional {
                continue;
            }
            let windowed = quiet_hours::rule_for(number)
                .max_promotional_per_24h
                .is_some();
            match per_user.iter_mut().find(|(u, ..)| *u == r.request.user_id) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 |= windowed;
                }
                None => per_user.push((&r.request.user_id, 1, windowed)),
            }
        }
        let mut writes = Vec::new();
        let mut reserved = Reserved {
            at_ms: now.as_millisecond(),
            ..Reserved::default()
        };
        for (user, n, windowed) in per_user {
            let counted = read.promotional.get(user).cloned().unwrap_or_default();
            writes.push(CounterWrite::Day {
                user_id: user.to_owned(),
                by: n,
                at_most: Some(counted.today),
            });
            if windowed {
                let mut entries: Vec<i64> = counted
                    .window
                    .into_iter()
                    .filter(|&t| t > window_start)
                    .collect();
                entries.extend(std::iter::repeat_n(reserved.at_ms, n as usize));
                reserved.windows.insert(
                    user.to_owned(),
                    (entries.clone(), counted.window_version.map_or(1, |v| v + 1)),
                );
                writes.push(CounterWrite::Window {
                    user_id: user.to_owned(),
                    entries,
                    read_version: counted.window_version,
                });
            }
        }
        (writes, reserved)
    }

    /// Step 4: claims every request (into its outcome when it is not to be sent) and
    /// reserves the caps, as one transaction, corrected and sent again after a cancellation.
    /// Returns the requests claimed to be sent.
    async fn claim<'p>(
        &self,
        requests: &'p [Request],
        read: &mut SendRead,
        now: Timestamp,
        steps: &mut [Option<Step>],
    ) -> (Vec<Claimed<'p>>, Reserved) {
        let mut open: Vec<&'p Request> = requests.iter().collect();
        for _ in 0..ROUNDS {
            if open.is_empty() {
                break;
            }
            let plans = self.decide_all(&open, read, now);
            let (counters, reserved) = self.reservations(&open, &plans, read, now);
            let log: Vec<LogWrite<'_>> = open
                .iter()
                .zip(&plans)
                .map(|(r, plan)| LogWrite::Claim {
                    record: NewLogRecord {
                        id: &r.request.id,
                        user_id: Some(&r.request.user_id),
                        kind: r.request.kind,
                        related: r.request.related.as_ref(),
                    },
                    to: match plan {
                        Plan::Send { .. } => ClaimTo::Pending {
                            token: &r.token,
                            lease: self.lease,
                        },
                        Plan::Outcome { finish, .. } => ClaimTo::Outcome(finish.finish()),
                    },
                })
                .collect();
            let (log_failures, counter_failures) =
                match self.ports.store.write(&log, &counters, now).await {
                    Ok(Written::All) => {
                        let mut claimed = Vec::new();
                        for (r, plan) in open.into_iter().zip(plans) {
                            match plan {
                                Plan::Send { number } => claimed.push(Claimed {
                                    index: r.index,
                                    request: r,
                                    counted: r.request.kind.class() == MessageClass::Promotional,
                                    number,
                                }),
                                Plan::Outcome { outcome, .. } => {
                                    steps[r.index] = Some(Step::Done(outcome));
                                }
                            }
                        }
                        return (claimed, reserved);
                    }
                    Ok(Written::Cancelled { log, counters }) => (log, counters),
                    Err(e) => {
                        store_failed(&e);
                        return (Vec::new(), Reserved::default());
                    }
                };
            // Counters that moved since the read: decide again on what they are now.
            for (write, failure) in counters.iter().zip(counter_failures) {
                if let Failure::Condition(found) = failure {
                    refresh(read, write, found.unwrap_or_default());
                }
            }
            // Claims that found the record taken: the one-at-a-time answer.
            let mut still_open = Vec::with_capacity(open.len());
            for (r, failure) in open.into_iter().zip(log_failures) {
                match failure {
                    Failure::Condition(Some(found)) => {
                        steps[r.index] = Some(self.taken(r, found.record, now).await);
                    }
                    Failure::Condition(None) => {
                        error!(request_id = r.request.id, "a claim failed on no record");
                        steps[r.index] = Some(Step::Done(Outcome::Retry {
                            reason: "store_unavailable",
                        }));
                    }
                    Failure::None | Failure::Conflict => still_open.push(r),
                }
            }
            open = still_open;
        }
        for r in open {
            warn!(
                request_id = r.request.id,
                "claim contended in every round; retried later"
            );
            steps[r.index] = Some(Step::Done(Outcome::Retry {
                reason: "contended",
            }));
        }
        (Vec::new(), Reserved::default())
    }

    /// The answer to a claim that found its record taken (DESIGN §6).
    async fn taken(
        &self,
        r: &Request,
        existing: sms_shared::store::LogRecord,
        now: Timestamp,
    ) -> Step {
        match self
            .ports
            .store
            .answer_failed_claim(existing, r.request.kind, now)
            .await
        {
            Ok(Claim::Done(_)) => Step::Done(Outcome::Duplicate),
            Ok(Claim::SettledUnknown(_)) => Step::Done(Outcome::Unknown),
            Ok(Claim::Busy { status, until_ms }) => {
                let until = Timestamp::from_millisecond(until_ms).unwrap_or(now);
                let outcome = match status {
                    LogStatus::Deferred => Outcome::Deferred { until },
                    LogStatus::Sending => Outcome::Retry { reason: "in_doubt" },
                    _ => Outcome::Retry {
                        reason: "in_flight",
                    },
                };
                Step::Later { outcome, until }
            }
            // Only a race between the read and the answer: the next delivery claims it.
            Ok(Claim::Claimed { .. }) => Step::Done(Outcome::Retry {
                reason: "in_flight",
            }),
            Err(e) => {
                store_failed(&e);
                Step::Done(Outcome::Retry {
                    reason: "store_unavailable",
                })
            }
        }
    }

    /// Step 5: records the attempt of every claimed request in one transaction (those past
    /// the deadline are released `retry` in the same one). Returns the requests to call.
    async fn record_attempts<'p>(
        &self,
        mut open: Vec<Claimed<'p>>,
        latest_start: Option<Instant>,
        now: Timestamp,
        give_back: &Mutex<GiveBack>,
        steps: &mut [Option<Step>],
    ) -> Vec<Claimed<'p>> {
        // Recording could not end before the latest start: release them all unsent.
        let too_late = latest_start.is_some_and(|latest| Instant::now() >= latest);
        for _ in 0..ROUNDS {
            if open.is_empty() {
                return open;
            }
            let log: Vec<LogWrite<'_>> = open
                .iter()
                .map(|c| {
                    let r = c.request;
                    if too_late {
                        LogWrite::Finish {
                            id: &r.request.id,
                            token: &r.token,
                            finish: deadline_release(),
                        }
                    } else {
                        LogWrite::Attempt {
                            id: &r.request.id,
                            token: &r.token,
                            attempt: Attempt {
                                phone_number: c.number.as_str(),
                                body: &r.rendered.log_body,
                                segments: r.rendered.segments.segments,
                                encoding: r.rendered.segments.encoding.as_str(),
                            },
                            lease: self.lease,
                        }
                    }
                })
                .collect();
            let failures = match self.ports.store.write(&log, &[], now).await {
                Ok(Written::All) if too_late => {
                    for c in open {
                        give_back_slot(give_back, &c);
                        steps[c.index] = Some(Step::Done(Outcome::Retry { reason: "deadline" }));
                    }
                    return Vec::new();
                }
                Ok(Written::All) => return open,
                Ok(Written::Cancelled { log, .. }) => log,
                Err(e) => {
                    // Nothing sent; the claims stay `pending` until their lease ends.
                    store_failed(&e);
                    for c in open {
                        give_back_slot(give_back, &c);
                        steps[c.index] = Some(Step::Done(Outcome::Retry {
                            reason: "store_unavailable",
                        }));
                    }
                    return Vec::new();
                }
            };
            let mut still_open = Vec::with_capacity(open.len());
            for (c, failure) in open.into_iter().zip(failures) {
                match failure {
                    Failure::Condition(_) => {
                        // The claim was lost before the call: nothing is sent.
                        warn!(
                            request_id = c.request.request.id,
                            "claim lost before sending; not sent"
                        );
                        give_back_slot(give_back, &c);
                        steps[c.index] = Some(Step::Done(Outcome::Duplicate));
                    }
                    Failure::None | Failure::Conflict => still_open.push(c),
                }
            }
            open = still_open;
        }
        for c in open {
            give_back_slot(give_back, &c);
            steps[c.index] = Some(Step::Done(Outcome::Retry {
                reason: "contended",
            }));
        }
        Vec::new()
    }

    /// Step 6 for one request: the pace, the call; its outcome joins the next write, which
    /// happens now when no other send is under way.
    async fn send<'p>(
        &self,
        claimed: Claimed<'p>,
        latest_start: Option<Instant>,
        outcomes: &Outcomes<'p>,
    ) {
        let r = claimed.request;
        let fits = self
            .pacer
            .acquire_by(r.rendered.segments.segments, latest_start)
            .await
            && latest_start.is_none_or(|latest| Instant::now() <= latest);
        let answer = if fits {
            let message = self.message(&claimed, latest_start);
            let answer = self.sms.send(&message.sms()).await;
            match &answer {
                Ok(_) => self.pacer.succeeded(),
                Err(e) if e.is_throttling() => self.pacer.throttled(),
                Err(_) => {}
            }
            if let Err(SmsError::OptedOut) = &answer {
                self.revoke(&claimed.number).await;
            }
            Answer::Sms(answer)
        } else {
            info!(
                request_id = r.request.id,
                "no room before the deadline; handed back"
            );
            Answer::Deadline
        };
        let reason = match &answer {
            Answer::Sms(answer) => refusal_reason(answer),
            Answer::Deadline => String::new(),
        };
        outcomes.lock_pending().push(Pending {
            claimed,
            answer,
            reason,
        });
        if outcomes.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.flush(outcomes).await;
        }
    }

    fn message<'a>(
        &self,
        claimed: &'a Claimed<'_>,
        latest_start: Option<Instant>,
    ) -> outbound::Message<'a> {
        let r = claimed.request;
        outbound::Message {
            id: &r.request.id,
            token: &r.token,
            to: claimed.number.as_str(),
            body: &r.rendered.body,
            log_body: &r.rendered.log_body,
            segments: r.rendered.segments.segments,
            encoding: r.rendered.segments.encoding.as_str(),
            class: r.request.kind.class(),
            message_feedback: false,
            redelivered: true,
            start_by: latest_start,
        }
    }

    /// AWS or the carrier holds an opt-out: treat it as the user's STOP (§6).
    async fn revoke(&self, number: &E164) {
        match self
            .ports
            .opt_outs
            .revoke_number(number.as_str(), self.clock.now())
            .await
        {
            Ok(n) => info!(to = %number, users = n, "carrier opt-out applied"),
            // The request is still suppressed; the next send to this number gets the same
            // answer from AWS and tries again.
            Err(e) => {
                error!(error = %e, to = %number, "could not revoke consent after a carrier opt-out")
            }
        }
    }

    /// Step 7: writes every outcome waiting, and the cap slots to give back, as one
    /// transaction.
    async fn flush(&self, outcomes: &Outcomes<'_>) {
        let mut pending: Vec<Pending<'_>> = std::mem::take(&mut *outcomes.lock_pending());
        for p in &pending {
            let gives_back = match &p.answer {
                Answer::Deadline => true,
                Answer::Sms(Ok(_)) | Answer::Sms(Err(SmsError::InDoubt { .. })) => false,
                Answer::Sms(Err(_)) => true,
            };
            if gives_back {
                give_back_slot(&outcomes.give_back, &p.claimed);
            }
        }
        let mut give_back =
            std::mem::take(&mut *outcomes.give_back.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() && give_back.day.is_empty() && give_back.window.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut recorded: Vec<(Pending<'_>, Recorded)> = Vec::with_capacity(pending.len());
        for _ in 0..ROUNDS {
            let messages: Vec<outbound::Message<'_>> = pending
                .iter()
                .map(|p| self.message(&p.claimed, None))
                .collect();
            let log: Vec<LogWrite<'_>> = pending
                .iter()
                .zip(&messages)
                .map(|(p, m)| LogWrite::Finish {
                    id: m.id,
                    token: m.token,
                    finish: match &p.answer {
                        Answer::Deadline => deadline_release(),
                        Answer::Sms(answer) => recorded_as(answer, &p.reason, m),
                    },
                })
                .collect();
            let counters = self.give_back_writes(&give_back, outcomes);
            let result = self.ports.store.write(&log, &counters, now).await;
            drop(log);
            drop(messages);
            match result {
                Ok(Written::All) => {
                    self.gave_back(&counters, outcomes);
                    recorded.extend(pending.drain(..).map(|p| (p, Recorded::Yes)));
                    break;
                }
                Ok(Written::Cancelled {
                    log,
                    counters: counter_failures,
                }) => {
                    // A slot that cannot be given back only makes the cap stricter today.
                    for (write, failure) in counters.iter().zip(counter_failures) {
                        if let Failure::Condition(_) = failure {
                            warn!("could not give back a cap slot; the window moved");
                            match write {
                                CounterWrite::Window { user_id, .. } => {
                                    give_back.window.remove(user_id);
                                }
                                CounterWrite::Day { user_id, .. } => {
                                    give_back.day.remove(user_id);
                                }
                            }
                        }
                    }
                    let mut still = Vec::with_capacity(pending.len());
                    for (p, failure) in pending.into_iter().zip(log) {
                        match failure {
                            Failure::Condition(found) => {
                                let token = &p.claimed.request.token;
                                let sent = matches!(p.answer, Answer::Sms(Ok(_)));
                                let said = found.is_some_and(|f| sent && f.receipted_under(token));
                                if !said {
                                    error!(
                                        log_id = p.claimed.request.request.id,
                                        "the claim was lost after the call; outcome not recorded"
                                    );
                                }
                                recorded.push((
                                    p,
                                    if said {
                                        Recorded::Yes
                                    } else {
                                        Recorded::ClaimLost
                                    },
                                ));
                            }
                            Failure::None | Failure::Conflict => still.push(p),
                        }
                    }
                    pending = still;
                    if pending.is_empty() && give_back.day.is_empty() && give_back.window.is_empty()
                    {
                        break;
                    }
                }
                Err(e) => {
                    error!(error = %e, "outcomes not recorded; records stay sending until a receipt or the takeover settles them");
                    if !give_back.day.is_empty() || !give_back.window.is_empty() {
                        warn!("could not give back cap slots");
                    }
                    break;
                }
            }
        }
        recorded.extend(pending.into_iter().map(|p| (p, Recorded::No)));
        let mut settled = outcomes.settled.lock().unwrap_or_else(|e| e.into_inner());
        for (p, recorded) in recorded {
            settled.push((p.claimed.index, self.outcome_of(&p, recorded)));
        }
    }

    /// The counter writes that give back slots: today's count down (unconditional), the
    /// window without the entries (conditional on the version this invocation wrote).
    fn give_back_writes(&self, give_back: &GiveBack, outcomes: &Outcomes<'_>) -> Vec<CounterWrite> {
        let reserved = outcomes.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let mut writes: Vec<CounterWrite> = give_back
            .day
            .iter()
            .map(|(user, n)| CounterWrite::Day {
                user_id: user.clone(),
                by: -n,
                at_most: None,
            })
            .collect();
        for (user, n) in &give_back.window {
            if let Some((entries, version)) = reserved.windows.get(user) {
                let mut entries = entries.clone();
                for _ in 0..*n {
                    if let Some(i) = entries.iter().position(|&t| t == reserved.at_ms) {
                        entries.remove(i);
                    }
                }
                writes.push(CounterWrite::Window {
                    user_id: user.clone(),
                    entries,
                    read_version: Some(*version),
                });
            }
        }
        writes
    }

    /// After slots were given back: the windows as they now are.
    fn gave_back(&self, writes: &[CounterWrite], outcomes: &Outcomes<'_>) {
        let mut reserved = outcomes.reserved.lock().unwrap_or_else(|e| e.into_inner());
        for write in writes {
            if let CounterWrite::Window {
                user_id,
                entries,
                read_version,
            } = write
            {
                reserved.windows.insert(
                    user_id.clone(),
                    (entries.clone(), read_version.unwrap_or(0) + 1),
                );
            }
        }
    }

    /// The outcome of a call once its write is known.
    fn outcome_of(&self, p: &Pending<'_>, recorded: Recorded) -> Outcome {
        let r = p.claimed.request;
        match (&p.answer, recorded) {
            (Answer::Deadline, Recorded::Yes) => Outcome::Retry { reason: "deadline" },
            (Answer::Deadline, Recorded::ClaimLost) => Outcome::Duplicate,
            (Answer::Sms(Ok(_)), Recorded::Yes) => Outcome::Sent,
            // Not acknowledged: the record stays `sending`; a receipt settles it, or the
            // takeover of the redelivery does (§6).
            (Answer::Sms(Ok(_)), _) => Outcome::Retry {
                reason: "sent_not_recorded",
            },
            // Maybe sent: the slots stay taken.
            (Answer::Sms(Err(SmsError::InDoubt { .. })), _) => {
                Outcome::Retry { reason: "in_doubt" }
            }
            (Answer::Sms(Err(e)), Recorded::Yes) => {
                refusal_outcome(&r.request.id, e, r.request.kind.class())
            }
            (_, _) => Outcome::Retry {
                reason: "store_unavailable",
            },
        }
    }
}

/// The outcomes of a pass's calls, written together.
struct Outcomes<'p> {
    pending: Mutex<Vec<Pending<'p>>>,
    /// Sends started (paced, calling) and not done: the outcomes waiting are written when
    /// the last one is done. Calls that overlap share one write; calls one after the other
    /// (a concurrency of 1) each get theirs before the next starts.
    active: AtomicUsize,
    settled: Mutex<Vec<(usize, Outcome)>>,
    give_back: Mutex<GiveBack>,
    reserved: Mutex<Reserved>,
}

impl<'p> Outcomes<'p> {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Pending<'p>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A counter write failed its condition on `found`: what the next decisions read.
fn refresh(read: &mut SendRead, write: &CounterWrite, found: CounterFound) {
    match write {
        CounterWrite::Day { user_id, .. } => {
            read.promotional.entry(user_id.clone()).or_default().today = found.count;
        }
        CounterWrite::Window { user_id, .. } => {
            let counted = read.promotional.entry(user_id.clone()).or_default();
            counted.window = found.entries;
            counted.window_version = found.version;
        }
    }
}

fn give_back_slot(give_back: &Mutex<GiveBack>, claimed: &Claimed<'_>) {
    if !claimed.counted {
        return;
    }
    let user = &claimed.request.request.user_id;
    let mut g = give_back.lock().unwrap_or_else(|e| e.into_inner());
    *g.day.entry(user.clone()).or_default() += 1;
    if quiet_hours::rule_for(&claimed.number)
        .max_promotional_per_24h
        .is_some()
    {
        *g.window.entry(user.clone()).or_default() += 1;
    }
}

fn deadline_release() -> Finish<'static> {
    Finish::Retry {
        error_code: "deadline",
        error_message: "no room before the invocation's deadline",
    }
}

/// The outcome of a refusal the log recorded (DESIGN §6).
fn refusal_outcome(request_id: &str, err: &SmsError, class: MessageClass) -> Outcome {
    match err {
        SmsError::Transient { code, .. } => {
            warn!(request_id, code, "transient provider error; will retry");
            Outcome::Retry {
                reason: "provider_transient",
            }
        }
        SmsError::OptedOut => Outcome::Suppressed(SuppressReason::CarrierOptedOut),
        SmsError::SpendLimitReached if class == MessageClass::Promotional => {
            Outcome::Suppressed(SuppressReason::SpendLimit)
        }
        SmsError::SpendLimitReached => {
            // Transactional: keep retrying so it reaches the DLQ and its alarm (§6).
            error!(
                request_id,
                "account spend limit reached for a transactional message"
            );
            Outcome::Retry {
                reason: "spend_limit",
            }
        }
        SmsError::Permanent { code, message } => {
            warn!(request_id, code, message, "provider refused the message");
            Outcome::Rejected {
                reason: format!("provider_{code}"),
                dead_lettered: false,
            }
        }
        SmsError::InDoubt { .. } => Outcome::Retry { reason: "in_doubt" },
    }
}

fn store_failed(e: &sms_shared::store::StoreError) {
    error!(error = %e, "DynamoDB request failed; the records will be retried");
}
