//! In-memory fakes of the ports (and of the SMS API) for the unit tests of every branch of
//! the handler. The store keeps the log's conditions as `store::log` writes them (a claim
//! takes a new record, a claimable one whose lease is over, or a transactional attempt in
//! doubt after the wait; an attempt or an outcome needs the claim's token) and a step is all
//! or nothing, as a transaction is; the moto tests check the real adapters against the same
//! stories.

use crate::ports::{BatchReads, BatchWrites, HandBack, OptOuts, Takeovers};
use crate::queues::{Disposition, QueueError};
use aws_lambda_events::event::sqs::SqsMessage;
use jiff::{SignedDuration, Timestamp};
use sms_shared::kinds::{MessageClass, MessageKind};
use sms_shared::preferences::Preferences;
use sms_shared::sms::{OutboundSms, SentSms, SmsError, SmsSender};
use sms_shared::store::log::{ClaimTo, StatusChange, Taken, taken};
use sms_shared::store::send_batch::{
    CounterFound, CounterWrite, Failure, FoundRecord, LogWrite, PromotionalCount, SendRead, Written,
};
use sms_shared::store::{Claim, Finish, LogRecord, LogStatus, StoreError, UpdateError};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the fake tables hold, and what the handler did to them.
#[derive(Debug, Default)]
pub struct World {
    pub records: HashMap<String, (LogRecord, Option<String>)>,
    pub preferences: HashMap<String, Preferences>,
    pub spend_micros: u64,
    pub today: HashMap<String, u64>,
    pub windows: HashMap<String, (Vec<i64>, u64)>,
    /// Requests made: reads, and writes (one per step, whatever it holds).
    pub reads: usize,
    pub writes: usize,
    /// Writes whose items were sent, in order (kinds: `claim`, `attempt`, `finish`, `day`,
    /// `window`).
    pub steps: Vec<Vec<&'static str>>,
    /// From this write on (1 = the first), DynamoDB is unreachable.
    pub unreachable_from_write: Option<usize>,
    pub takeover_wait: SignedDuration,
    /// Another writer's count, set right after the next read (a race lost at the claim).
    pub count_after_read: Option<(String, u64)>,
    pub revoked: Vec<String>,
    pub dead_letters: Vec<String>,
    pub later: Vec<SignedDuration>,
}

/// The fake store, opt-outs and queues: one world behind every port.
#[derive(Debug, Clone, Default)]
pub struct Fake(pub Arc<Mutex<World>>);

impl Fake {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn injected() -> StoreError {
    StoreError::Malformed("DynamoDB unreachable (injected)")
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl BatchReads for Fake {
    async fn read(&self, user_ids: &[&str], _now: Timestamp) -> Result<SendRead, StoreError> {
        let mut w = self.world();
        w.reads += 1;
        let mut read = SendRead {
            spend_micros: w.spend_micros,
            ..SendRead::default()
        };
        for user in user_ids {
            if let Some(p) = w.preferences.get(*user) {
                read.preferences.insert((*user).to_owned(), p.clone());
            }
            let window = w.windows.get(*user);
            read.promotional.insert(
                (*user).to_owned(),
                PromotionalCount {
                    today: w.today.get(*user).copied().unwrap_or(0),
                    window: window.map(|(e, _)| e.clone()).unwrap_or_default(),
                    window_version: window.map(|(_, v)| *v),
                },
            );
        }
        if let Some((user, count)) = w.count_after_read.take() {
            w.today.insert(user, count);
        }
        Ok(read)
    }
}

impl World {
    fn found(&self, id: &str) -> Option<FoundRecord> {
        self.records.get(id).map(|(record, token)| FoundRecord {
            record: record.clone(),
            claim_token: token.clone(),
        })
    }

    /// Whether the log write's condition holds now.
    fn log_condition(&self, write: &LogWrite<'_>, now: Timestamp) -> bool {
        match write {
            LogWrite::Claim { record, .. } => match self.records.get(record.id) {
                None => true,
                Some((r, _)) => {
                    let over = r.lease_until_ms <= ms(now);
                    let resend = record.kind.class() == MessageClass::Transactional
                        && r.status == LogStatus::Sending
                        && over
                        && r.sending_at_ms.unwrap_or(0) <= ms(now - self.takeover_wait);
                    (r.status.is_claimable() && over) || resend
                }
            },
            LogWrite::Attempt { id, token, .. } => self.records.get(*id).is_some_and(|(r, t)| {
                t.as_deref() == Some(*token) && r.status == LogStatus::Pending
            }),
            LogWrite::Finish { id, token, .. } => self.records.get(*id).is_some_and(|(r, t)| {
                t.as_deref() == Some(*token)
                    && matches!(r.status, LogStatus::Pending | LogStatus::Sending)
            }),
        }
    }

    fn counter_condition(&self, write: &CounterWrite) -> bool {
        match write {
            CounterWrite::Day {
                user_id, at_most, ..
            } => at_most.is_none_or(|m| self.today.get(user_id).copied().unwrap_or(0) <= m),
            CounterWrite::Window {
                user_id,
                read_version,
                ..
            } => self.windows.get(user_id).map(|(_, v)| *v) == *read_version,
        }
    }

    fn counter_found(&self, write: &CounterWrite) -> CounterFound {
        match write {
            CounterWrite::Day { user_id, .. } => CounterFound {
                count: self.today.get(user_id).copied().unwrap_or(0),
                ..CounterFound::default()
            },
            CounterWrite::Window { user_id, .. } => {
                let (entries, version) = self.windows.get(user_id).cloned().unwrap_or_default();
                CounterFound {
                    count: entries.len() as u64,
                    entries,
                    version: self.windows.contains_key(user_id).then_some(version),
                }
            }
        }
    }

    fn apply(&mut self, write: &LogWrite<'_>, now: Timestamp) {
        match write {
            LogWrite::Claim { record, to } => {
                let entry = self.records.entry(record.id.to_owned()).or_insert_with(|| {
                    (
                        LogRecord {
                            id: record.id.to_owned(),
                            user_id: record.user_id.map(str::to_owned),
                            phone_number: None,
                            kind: Some(record.kind),
                            record_type: None,
                            class: record.kind.class(),
                            body: None,
                            segments: None,
                            encoding: None,
                            status: LogStatus::Pending,
                            status_history: Vec::new(),
                            reason: None,
                            provider_message_id: None,
                            error_code: None,
                            error_message: None,
                            price_micros: None,
                            carrier_fee_micros: None,
                            related: record.related.cloned(),
                            created_at_ms: ms(now),
                            updated_at_ms: ms(now),
                            lease_until_ms: 0,
                            attempts: 0,
                            sending_at_ms: None,
                            send_attempts: 0,
                        },
                        None,
                    )
                });
                entry.0.attempts += 1;
                match to {
                    ClaimTo::Pending { token, lease } => {
                        entry.0.status = LogStatus::Pending;
                        entry.0.lease_until_ms = ms(now + *lease);
                        entry.1 = Some((*token).to_owned());
                        change(&mut entry.0, LogStatus::Pending, now, None);
                    }
                    ClaimTo::Outcome(finish) => finish_record(entry, finish, now),
                }
            }
            LogWrite::Attempt {
                id, attempt, lease, ..
            } => {
                let entry = self.records.get_mut(*id).expect("checked");
                let r = &mut entry.0;
                r.status = LogStatus::Sending;
                r.sending_at_ms = Some(ms(now));
                r.send_attempts += 1;
                r.lease_until_ms = ms(now + *lease);
                r.phone_number = Some(attempt.phone_number.to_owned());
                r.body = Some(attempt.body.to_owned());
                change(r, LogStatus::Sending, now, None);
            }
            LogWrite::Finish { id, finish, .. } => {
                let entry = self.records.get_mut(*id).expect("checked");
                finish_record(entry, finish, now);
            }
        }
    }

    fn apply_counter(&mut self, write: &CounterWrite) {
        match write {
            CounterWrite::Day { user_id, by, .. } => {
                let count = self.today.entry(user_id.clone()).or_default();
                *count = (*count as i64 + by).max(0) as u64;
            }
            CounterWrite::Window {
                user_id,
                entries,
                read_version,
            } => {
                self.windows.insert(
                    user_id.clone(),
                    (entries.clone(), read_version.unwrap_or(0) + 1),
                );
            }
        }
    }
}

fn change(r: &mut LogRecord, status: LogStatus, now: Timestamp, reason: Option<&str>) {
    r.updated_at_ms = ms(now);
    r.status_history.push(StatusChange {
        status,
        at_ms: ms(now),
        reason: reason.map(str::to_owned),
    });
}

fn finish_record(entry: &mut (LogRecord, Option<String>), finish: &Finish<'_>, now: Timestamp) {
    let (r, token) = entry;
    let status = finish.status();
    r.status = status;
    let mut reason = None;
    let mut keep_token = false;
    match finish {
        Finish::Sent {
            provider_message_id,
            phone_number,
            ..
        } => {
            r.provider_message_id = Some((*provider_message_id).to_owned());
            r.phone_number = Some((*phone_number).to_owned());
        }
        Finish::Suppressed {
            reason: why,
            phone_number,
        } => {
            reason = Some(*why);
            if let Some(phone) = phone_number {
                r.phone_number = Some((*phone).to_owned());
            }
        }
        Finish::Rejected { reason: why } => reason = Some(*why),
        Finish::Expired => reason = Some("not_after_passed"),
        Finish::Deferred { until } => {
            reason = Some("quiet_hours");
            r.lease_until_ms = ms(*until);
        }
        Finish::Retry { error_code, .. } => {
            r.lease_until_ms = 0;
            r.error_code = Some((*error_code).to_owned());
        }
        Finish::InDoubt { error_code, .. } => {
            keep_token = true;
            reason = Some("answer_lost");
            r.lease_until_ms = ms(now);
            r.error_code = Some((*error_code).to_owned());
        }
    }
    if !keep_token {
        *token = None;
    }
    r.reason = reason.map(str::to_owned).or(r.reason.take());
    change(r, status, now, reason);
}

impl BatchWrites for Fake {
    async fn write(
        &self,
        log: &[LogWrite<'_>],
        counters: &[CounterWrite],
        now: Timestamp,
    ) -> Result<Written, StoreError> {
        let mut w = self.world();
        w.writes += 1;
        if w.unreachable_from_write.is_some_and(|n| w.writes >= n) {
            return Err(injected());
        }
        let kinds = log
            .iter()
            .map(|l| match l {
                LogWrite::Claim { .. } => "claim",
                LogWrite::Attempt { .. } => "attempt",
                LogWrite::Finish { .. } => "finish",
            })
            .chain(counters.iter().map(|c| match c {
                CounterWrite::Day { .. } => "day",
                CounterWrite::Window { .. } => "window",
            }))
            .collect();
        w.steps.push(kinds);
        let log_ok: Vec<bool> = log.iter().map(|l| w.log_condition(l, now)).collect();
        let counters_ok: Vec<bool> = counters.iter().map(|c| w.counter_condition(c)).collect();
        if log_ok.iter().chain(&counters_ok).all(|ok| *ok) {
            for l in log {
                w.apply(l, now);
            }
            for c in counters {
                w.apply_counter(c);
            }
            return Ok(Written::All);
        }
        let id = |l: &LogWrite<'_>| match l {
            LogWrite::Claim { record, .. } => record.id.to_owned(),
            LogWrite::Attempt { id, .. } | LogWrite::Finish { id, .. } => (*id).to_owned(),
        };
        Ok(Written::Cancelled {
            log: log
                .iter()
                .zip(log_ok)
                .map(|(l, ok)| {
                    if ok {
                        Failure::None
                    } else {
                        Failure::Condition(w.found(&id(l)))
                    }
                })
                .collect(),
            counters: counters
                .iter()
                .zip(counters_ok)
                .map(|(c, ok)| {
                    if ok {
                        Failure::None
                    } else {
                        Failure::Condition(Some(w.counter_found(c)))
                    }
                })
                .collect(),
        })
    }
}

impl Takeovers for Fake {
    async fn answer_failed_claim(
        &self,
        existing: LogRecord,
        kind: MessageKind,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let mut w = self.world();
        let resend = kind.class() == MessageClass::Transactional;
        let existing = match taken(existing, resend, w.takeover_wait, now) {
            Taken::Answer(claim) => return Ok(claim),
            Taken::Settle(existing) => existing,
        };
        w.writes += 1;
        let entry = w.records.get_mut(&existing.id).expect("read");
        entry.0.status = LogStatus::Unknown;
        entry.1 = None;
        change(
            &mut entry.0,
            LogStatus::Unknown,
            now,
            Some("no_receipt_after_lost_answer"),
        );
        Ok(Claim::SettledUnknown(Box::new(entry.0.clone())))
    }
}

impl OptOuts for Fake {
    async fn revoke_number(&self, number: &str, _now: Timestamp) -> Result<usize, UpdateError> {
        self.world().revoked.push(number.to_owned());
        Ok(1)
    }
}

impl HandBack for Fake {
    async fn dead_letter(&self, _record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
        self.world().dead_letters.push(reason.to_owned());
        Ok(())
    }

    async fn later(&self, _record: &SqsMessage, by: SignedDuration) -> Disposition {
        self.world().later.push(by);
        Disposition::HandBack
    }

    async fn retry_in(&self, _record: &SqsMessage, _by: SignedDuration) -> Disposition {
        Disposition::HandBack
    }
}

/// An SMS API that answers from a script (default: accepted), and remembers what it was
/// asked to send.
#[derive(Debug, Default)]
pub struct FakeSms {
    answers: Mutex<VecDeque<Result<SentSms, SmsError>>>,
    sent: Mutex<Vec<(String, String)>>,
    /// Run after each call (a store that breaks right after it).
    after_call: Mutex<Option<Fake>>,
}

impl FakeSms {
    /// The next call's answer.
    pub fn answer(&self, answer: Result<SentSms, SmsError>) {
        self.answers.lock().unwrap().push_back(answer);
    }

    /// The log ids and numbers of every call, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.sent.lock().unwrap().clone()
    }

    /// DynamoDB becomes unreachable right after the next call.
    pub fn break_store_after_call(&self, store: &Fake) {
        *self.after_call.lock().unwrap() = Some(store.clone());
    }
}

impl SmsSender for FakeSms {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<SentSms, SmsError> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push((sms.log_id.to_owned(), sms.to.to_owned()));
            sent.len()
        };
        if let Some(store) = self.after_call.lock().unwrap().take() {
            let mut w = store.world();
            w.unreachable_from_write = Some(w.writes + 1);
        }
        self.answers.lock().unwrap().pop_front().unwrap_or_else(|| {
            Ok(SentSms {
                message_id: format!("provider-{n}"),
            })
        })
    }

    async fn report_received(&self, _message_id: &str) -> Result<(), SmsError> {
        Ok(())
    }
}
