//! The SMS log (DESIGN §9): one item per outbound SMS (a send request, a verification code, a
//! keyword reply), keyed by its id. It is the audit trail and the idempotency record of the
//! one send protocol of [`crate::outbound`] (DESIGN §6, docs/exactly-once.md):
//!
//! 1. [`LogStore::claim`] (one conditional write) makes an invocation the owner of the record
//!    for a lease (`pending`); a duplicate delivery finds it taken or done;
//! 2. [`LogStore::begin_send`] records the attempt (`sending`, time, number, body) before
//!    `SendTextMessage` is called, so a crash after the call leaves a record that says so;
//! 3. [`LogStore::finish`] writes the outcome.
//!
//! A record still `sending` after its lease (the invocation crashed or timed out between the
//! call and the outcome) is never simply sent again. Delivery receipts apply to it like to a
//! `sent` one (so a receipt settles it); the takeover in [`LogStore::claim`] otherwise waits
//! until the attempt is [`LogStore::with_takeover_wait`] old, then ends it `unknown` (at most
//! once: promotional messages, replies) or claims it for one more send (at least once:
//! transactional requests).

use super::counters::number;
use super::schema::{LOG_BY_PROVIDER_ID_INDEX, LOG_BY_USER_INDEX, LOG_KEY};
use super::{StoreError, condition_failed, written};
use crate::kinds::{MessageClass, MessageKind};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, from_items};
use std::collections::HashMap;

/// Where a send request stands, and the object a message is about (`related` of §6):
/// plain vocabulary the pure rules share, so they live in core.
pub use sms_core::request::Related;
pub use sms_core::status::LogStatus;

/// One status change, kept in order on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: LogStatus,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A log item as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    pub id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// Full E.164 (masked only in logs).
    #[serde(default)]
    pub phone_number: Option<String>,
    /// The kind of a send request or verification code; `None` for a keyword reply.
    #[serde(default)]
    pub kind: Option<MessageKind>,
    /// `keyword_reply` for replies to inbound messages; absent for send requests and codes.
    #[serde(default)]
    pub record_type: Option<String>,
    pub class: MessageClass,
    /// Rendered body as sent, verification codes redacted.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub segments: Option<u32>,
    #[serde(default)]
    pub encoding: Option<String>,
    pub status: LogStatus,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub provider_message_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub price_micros: Option<u64>,
    #[serde(default)]
    pub carrier_fee_micros: Option<u64>,
    #[serde(default)]
    pub related: Option<Related>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default)]
    pub lease_until_ms: i64,
    /// Claims so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the last `SendTextMessage` attempt began (absent: never attempted).
    #[serde(default)]
    pub sending_at_ms: Option<i64>,
    /// `SendTextMessage` attempts so far.
    #[serde(default)]
    pub send_attempts: u32,
}

/// `recordType` of keyword replies.
pub const KEYWORD_REPLY: &str = "keyword_reply";

/// What is known about a request when it is claimed.
#[derive(Debug, Clone)]
pub struct NewLogRecord<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    pub kind: MessageKind,
    pub related: Option<&'a Related>,
}

/// A keyword reply about to be claimed (DESIGN §8): one more kind of log record, sent by the
/// same protocol as send requests.
#[derive(Debug, Clone, Copy)]
pub struct NewReply<'a> {
    pub id: &'a str,
    pub inbound_message_id: &'a str,
    pub phone_number: &'a str,
    pub body: &'a str,
    /// `opt_out`, `opt_in`, `help`.
    pub intent: &'a str,
}

/// `recordType` of opt-in confirmations.
pub const OPT_IN_CONFIRMATION: &str = "opt_in_confirmation";

/// An opt-in confirmation about to be claimed (DESIGN §8): one per consent grant, its id
/// derived from the grant ([`crate::opt_in::confirmation_log_id`]).
#[derive(Debug, Clone, Copy)]
pub struct NewConfirmation<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub phone_number: &'a str,
    pub body: &'a str,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This invocation owns the request until the lease ends; finish with this token.
    Claimed { token: String, attempts: u32 },
    /// The request already reached an outcome: a duplicate delivery.
    Done(Box<LogRecord>),
    /// This claim found an attempt in doubt whose wait passed with no receipt, and ended it
    /// `unknown` (at most once: it is not sent again).
    SettledUnknown(Box<LogRecord>),
    /// Another invocation holds it, it is deferred, or an attempt in doubt waits for its
    /// receipt, until this time (`status` says which).
    Busy { until_ms: i64, status: LogStatus },
}

/// What an attempt records before `SendTextMessage` is called.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub phone_number: &'a str,
    /// As logged (verification codes redacted).
    pub body: &'a str,
    pub segments: u32,
    pub encoding: &'a str,
}

/// What a takeover does with an attempt in doubt once the wait is over (DESIGN §6).
#[derive(Debug, Clone, Copy)]
struct InDoubt {
    /// Claim it for one more send (transactional) instead of ending it `unknown`.
    resend: bool,
    wait: SignedDuration,
}

impl InDoubt {
    /// A message worth sending only within minutes (keyword replies, opt-in confirmations):
    /// never sent again, and ended `unknown` at the next claim without waiting.
    const END_AT_ONCE: InDoubt = InDoubt {
        resend: false,
        wait: SignedDuration::ZERO,
    };
}

/// What a claim that found `existing` held or finished answers before any write (DESIGN §6).
#[derive(Debug)]
pub enum Taken {
    /// Busy (held, or a send in doubt whose receipt may still come) or done.
    Answer(Claim),
    /// An attempt in doubt whose wait is over and that is not sent again: end it `unknown`
    /// (conditional on the attempt still being this one).
    Settle(Box<LogRecord>),
}

/// The rule of a claim that found `existing` held or finished: busy while it is pending or
/// retrying under a lease, done once it ended, and an attempt in doubt (`sending`) busy
/// until its lease and the takeover `wait` are over, then settled `unknown`, unless the
/// request is sent again (`resend`: transactional), which the claim's own condition takes.
pub fn taken(existing: LogRecord, resend: bool, wait: SignedDuration, now: Timestamp) -> Taken {
    if existing.status.is_claimable() {
        return Taken::Answer(Claim::Busy {
            until_ms: existing.lease_until_ms,
            status: existing.status,
        });
    }
    if existing.status != LogStatus::Sending {
        return Taken::Answer(Claim::Done(Box::new(existing)));
    }
    let waited_until = existing
        .sending_at_ms
        .unwrap_or(existing.updated_at_ms)
        .saturating_add(wait.as_millis() as i64);
    let until_ms = existing.lease_until_ms.max(waited_until);
    if until_ms > ms(now) || resend {
        // Its sender is still at it, or the receipt may still come. (A resend that is due
        // was claimed by the claim's condition: here only after a race; the next claim takes
        // it.)
        return Taken::Answer(Claim::Busy {
            until_ms: until_ms.max(ms(now)),
            status: LogStatus::Sending,
        });
    }
    Taken::Settle(Box::new(existing))
}

/// How a claimed request ends (or pauses).
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    Sent {
        provider_message_id: &'a str,
        phone_number: &'a str,
        body: &'a str,
        segments: u32,
        encoding: &'a str,
    },
    Suppressed {
        reason: &'a str,
        phone_number: Option<&'a str>,
    },
    Rejected {
        reason: &'a str,
    },
    Expired,
    /// Paused until the quiet-hours window opens; the request stays claimable after `until`.
    Deferred {
        until: Timestamp,
    },
    /// A transient fault: release the claim so the next delivery may try again.
    Retry {
        error_code: &'a str,
        error_message: &'a str,
    },
    /// `SendTextMessage` got no answer: the record stays `sending` (maybe sent), the lease
    /// ends now, and receipts or the takeover after the wait settle it.
    InDoubt {
        error_code: &'a str,
        error_message: &'a str,
    },
}

impl Finish<'_> {
    pub fn status(&self) -> LogStatus {
        match self {
            Finish::Sent { .. } => LogStatus::Sent,
            Finish::Suppressed { .. } => LogStatus::Suppressed,
            Finish::Rejected { .. } => LogStatus::Rejected,
            Finish::Expired => LogStatus::Expired,
            Finish::Deferred { .. } => LogStatus::Deferred,
            Finish::Retry { .. } => LogStatus::Retry,
            Finish::InDoubt { .. } => LogStatus::Sending,
        }
    }
}

/// How long an attempt in doubt waits for a receipt before the takeover (DESIGN §6).
pub const DEFAULT_TAKEOVER_WAIT: SignedDuration = SignedDuration::from_mins(10);

/// Access to the log table.
#[derive(Debug, Clone)]
pub struct LogStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    takeover_wait: SignedDuration,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn history_entry(status: LogStatus, now: Timestamp, reason: Option<&str>) -> AttributeValue {
    let mut entry = HashMap::from([
        ("status".to_owned(), s(status.as_str())),
        ("atMs".to_owned(), AttributeValue::N(ms(now).to_string())),
    ]);
    if let Some(reason) = reason {
        entry.insert("reason".to_owned(), s(reason));
    }
    AttributeValue::L(vec![AttributeValue::M(entry)])
}

/// One conditional update of a log record, as expressions: sent alone (`UpdateItem`, by the
/// methods of [`LogStore`]) or as one item of a batch's transaction
/// ([`super::send_batch`]). Both paths build it here, so a claim, an attempt or an outcome
/// means the same write whichever way it travels. Every attribute goes through a `#name`
/// placeholder: several are reserved words.
#[derive(Debug, Clone)]
pub struct LogUpdate {
    pub(crate) id: String,
    set: Vec<(String, String)>,
    remove: Vec<&'static str>,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl LogUpdate {
    fn new(id: &str, condition: &str) -> Self {
        let mut update = Self {
            id: id.to_owned(),
            set: Vec::new(),
            remove: Vec::new(),
            condition: String::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        };
        update.condition(condition);
        update
    }

    /// Registers the `#name` of every attribute an expression names.
    fn name_all(&mut self, expression: &str) {
        let mut rest = expression;
        while let Some(start) = rest.find('#') {
            let tail = &rest[start + 1..];
            let end = tail
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(tail.len());
            let name = &tail[..end];
            self.names.insert(format!("#{name}"), name.to_owned());
            rest = &tail[end..];
        }
    }

    fn condition(&mut self, condition: &str) {
        self.name_all(condition);
        self.condition = condition.to_owned();
    }

    /// `SET #attribute = expression` (replacing an earlier `SET` of the same attribute).
    fn set(&mut self, attribute: &str, expression: &str) -> &mut Self {
        self.name_all(&format!("#{attribute} {expression}"));
        self.set.retain(|(a, _)| a != attribute);
        self.set.push((attribute.to_owned(), expression.to_owned()));
        self
    }

    fn remove(&mut self, attribute: &'static str) -> &mut Self {
        self.name_all(&format!("#{attribute}"));
        self.remove.push(attribute);
        self
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    fn expression(&self) -> String {
        let set: Vec<String> = self
            .set
            .iter()
            .map(|(a, e)| format!("#{a} = {e}"))
            .collect();
        let mut expression = format!("SET {}", set.join(", "));
        let removed: Vec<&str> = self
            .remove
            .iter()
            .copied()
            .filter(|r| !self.set.iter().any(|(a, _)| a == r))
            .collect();
        if !removed.is_empty() {
            let removed: Vec<String> = removed.iter().map(|r| format!("#{r}")).collect();
            expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        expression
    }

    /// This update as one item of a transaction on `table`; a failed condition returns the
    /// item as it was (the cancellation reason carries it).
    pub(crate) fn transact_item(&self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(table)
            .key(LOG_KEY, s(&self.id))
            .update_expression(self.expression())
            .condition_expression(&self.condition)
            .set_expression_attribute_names(Some(self.names.clone()))
            .set_expression_attribute_values(Some(self.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|_| StoreError::Malformed("log update"))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// This update as one `UpdateItem` request; a failed condition returns the item as it was.
    pub(crate) fn update_item(&self, client: &Client, table: &str) -> UpdateItemFluentBuilder {
        client
            .update_item()
            .table_name(table)
            .key(LOG_KEY, s(&self.id))
            .update_expression(self.expression())
            .condition_expression(&self.condition)
            .set_expression_attribute_names(Some(self.names.clone()))
            .set_expression_attribute_values(Some(self.values.clone()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

/// What a claim leaves: the record held for a lease, or (the sender, which decides before it
/// claims) an outcome at once.
#[derive(Debug, Clone, Copy)]
pub enum ClaimTo<'a> {
    /// `pending` under `token` until `now + lease`.
    Pending {
        token: &'a str,
        lease: SignedDuration,
    },
    /// Straight to an outcome (`suppressed`, `expired`, `deferred`): no token is left.
    Outcome(Finish<'a>),
}

/// The claim's write: creates the record, or takes over one whose previous claim ended
/// without an outcome (see [`LogStore::claim`]).
fn claim_update(
    id: &str,
    fields: Vec<(&'static str, AttributeValue)>,
    in_doubt: InDoubt,
    now: Timestamp,
    to: ClaimTo<'_>,
) -> LogUpdate {
    let mut condition = String::from(
        "attribute_not_exists(#id) OR (#status IN (:pending, :deferred, :retry) AND #leaseUntilMs <= :now)",
    );
    if in_doubt.resend {
        // The takeover of an attempt in doubt that may be sent once more.
        condition.push_str(
            " OR (#status = :sending AND #leaseUntilMs <= :now AND #sendingAtMs <= :waited)",
        );
    }
    let mut u = LogUpdate::new(id, &condition);
    u.value(":pending", s(LogStatus::Pending.as_str()))
        .value(":deferred", s(LogStatus::Deferred.as_str()))
        .value(":retry", s(LogStatus::Retry.as_str()))
        .value(":now", AttributeValue::N(ms(now).to_string()))
        .value(":zero", number(0))
        .value(":one", number(1))
        .value(":empty", AttributeValue::L(vec![]));
    if in_doubt.resend {
        u.value(":sending", s(LogStatus::Sending.as_str())).value(
            ":waited",
            AttributeValue::N(ms(now - in_doubt.wait).to_string()),
        );
    }
    u.set("createdAtMs", "if_not_exists(#createdAtMs, :now)")
        .set("updatedAtMs", ":now")
        .set("attempts", "if_not_exists(#attempts, :zero) + :one");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        u.set(name, &format!(":f{i}"))
            .value(&format!(":f{i}"), value);
    }
    let (status, reason) = match to {
        ClaimTo::Pending { token, lease } => {
            u.set("status", ":pending")
                .set("leaseUntilMs", ":lease")
                .set("claimToken", ":token")
                .value(":lease", AttributeValue::N(ms(now + lease).to_string()))
                .value(":token", s(token));
            (LogStatus::Pending, None)
        }
        ClaimTo::Outcome(finish) => finish_parts(&mut u, finish, now),
    };
    u.set(
        "statusHistory",
        "list_append(if_not_exists(#statusHistory, :empty), :change)",
    )
    .value(":change", history_entry(status, now, reason));
    u
}

/// The attempt's write (see [`LogStore::begin_send`]).
fn begin_send_update(
    id: &str,
    token: &str,
    attempt: &Attempt<'_>,
    now: Timestamp,
    lease: SignedDuration,
) -> LogUpdate {
    let mut u = LogUpdate::new(id, "#claimToken = :token AND #status = :pending");
    u.set("status", ":sending")
        .set("sendingAtMs", ":now")
        .set("updatedAtMs", ":now")
        .set("leaseUntilMs", ":lease")
        .set("sendAttempts", "if_not_exists(#sendAttempts, :zero) + :one")
        .set("phoneNumber", ":phone")
        .set("body", ":body")
        .set("segments", ":segments")
        .set("encoding", ":encoding")
        .set("statusHistory", "list_append(#statusHistory, :change)")
        .value(":sending", s(LogStatus::Sending.as_str()))
        .value(":pending", s(LogStatus::Pending.as_str()))
        .value(":token", s(token))
        .value(":now", AttributeValue::N(ms(now).to_string()))
        .value(":lease", AttributeValue::N(ms(now + lease).to_string()))
        .value(":zero", number(0))
        .value(":one", number(1))
        .value(":phone", s(attempt.phone_number))
        .value(":body", s(attempt.body))
        .value(":segments", number(u64::from(attempt.segments)))
        .value(":encoding", s(attempt.encoding))
        .value(":change", history_entry(LogStatus::Sending, now, None));
    u
}

/// The outcome's write (see [`LogStore::finish`]).
fn finish_update(id: &str, token: &str, finish: Finish<'_>, now: Timestamp) -> LogUpdate {
    let mut u = LogUpdate::new(
        id,
        "#claimToken = :token AND #status IN (:pending, :sending)",
    );
    u.value(":token", s(token))
        .value(":pending", s(LogStatus::Pending.as_str()))
        .value(":sending", s(LogStatus::Sending.as_str()));
    let (status, reason) = finish_parts(&mut u, finish, now);
    u.set("statusHistory", "list_append(#statusHistory, :change)")
        .value(":change", history_entry(status, now, reason));
    u
}

/// What an outcome sets (status, time, reason and the outcome's own fields) and removes (the
/// claim's token, but for an attempt in doubt, which keeps it). Returns the status and the
/// reason its history entry records.
fn finish_parts<'a>(
    u: &mut LogUpdate,
    finish: Finish<'a>,
    now: Timestamp,
) -> (LogStatus, Option<&'a str>) {
    let status = finish.status();
    u.set("status", ":status")
        .set("updatedAtMs", ":now")
        .value(":status", s(status.as_str()))
        .value(":now", AttributeValue::N(ms(now).to_string()));
    let mut reason = None;
    let mut keep_token = false;
    match finish {
        Finish::Sent {
            provider_message_id,
            phone_number,
            body,
            segments,
            encoding,
        } => {
            u.set("providerMessageId", ":mid")
                .set("phoneNumber", ":phone")
                .set("body", ":body")
                .set("segments", ":segments")
                .set("encoding", ":encoding")
                .remove("errorCode")
                .remove("errorMessage")
                .value(":mid", s(provider_message_id))
                .value(":phone", s(phone_number))
                .value(":body", s(body))
                .value(":segments", number(u64::from(segments)))
                .value(":encoding", s(encoding));
        }
        Finish::Suppressed {
            reason: why,
            phone_number,
        } => {
            reason = Some(why);
            if let Some(phone) = phone_number {
                u.set("phoneNumber", ":phone").value(":phone", s(phone));
            }
        }
        Finish::Rejected { reason: why } => reason = Some(why),
        Finish::Expired => reason = Some("not_after_passed"),
        Finish::Deferred { until } => {
            reason = Some("quiet_hours");
            u.set("leaseUntilMs", ":until")
                .value(":until", AttributeValue::N(ms(until).to_string()));
        }
        Finish::Retry {
            error_code,
            error_message,
        }
        | Finish::InDoubt {
            error_code,
            error_message,
        } => {
            // Retry: claimable at once. In doubt: still `sending`, the claim kept, the
            // lease over now (the takeover waits from `sendingAtMs`).
            let lease_end = if status == LogStatus::Retry {
                AttributeValue::N("0".into())
            } else {
                keep_token = true;
                reason = Some("answer_lost");
                AttributeValue::N(ms(now).to_string())
            };
            u.set("leaseUntilMs", ":leaseEnd")
                .set("errorCode", ":code")
                .set("errorMessage", ":message")
                .value(":leaseEnd", lease_end)
                .value(":code", s(error_code))
                .value(":message", s(error_message));
        }
    }
    if !keep_token {
        u.remove("claimToken");
    }
    if let Some(why) = reason {
        u.set("reason", ":reason").value(":reason", s(why));
    }
    (status, reason)
}

/// Whether a failed outcome write still counts: `Sent` after a receipt already moved the
/// record on (`sent`, `delivered`, ...) under this claim (the receipt said it first).
/// `old` is the item the failed condition found.
pub(crate) fn receipt_said_it_first(
    status: LogStatus,
    token: &str,
    old: Option<&HashMap<String, AttributeValue>>,
) -> bool {
    let ours = old.is_some_and(|item| {
        item.get("claimToken").and_then(|v| v.as_s().ok()) == Some(&token.to_owned())
    });
    let receipted = old
        .and_then(|item| item.get("status"))
        .and_then(|v| v.as_s().ok())
        .is_some_and(|s| {
            [
                LogStatus::Sent,
                LogStatus::Delivered,
                LogStatus::Undelivered,
            ]
            .iter()
            .any(|st| st.as_str() == s)
        });
    status == LogStatus::Sent && ours && receipted
}

/// The fields a send request's claim writes.
fn request_fields(record: &NewLogRecord<'_>) -> Vec<(&'static str, AttributeValue)> {
    let class = match record.kind.class() {
        MessageClass::Promotional => "promotional",
        MessageClass::Transactional => "transactional",
    };
    let mut fields = vec![("kind", s(record.kind.as_str())), ("class", s(class))];
    if let Some(user) = record.user_id {
        fields.push(("userId", s(user)));
    }
    if let Some(related) = record.related {
        fields.push((
            "related",
            AttributeValue::M(HashMap::from([
                ("type".to_owned(), s(related.kind.clone())),
                ("id".to_owned(), s(related.id.clone())),
            ])),
        ));
    }
    fields
}

impl LogStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            takeover_wait: DEFAULT_TAKEOVER_WAIT,
        }
    }

    /// How long an attempt in doubt waits for its receipt before the takeover settles it
    /// (default [`DEFAULT_TAKEOVER_WAIT`]; `SEND_TAKEOVER_WAIT_SECONDS`).
    pub fn with_takeover_wait(mut self, wait: SignedDuration) -> Self {
        self.takeover_wait = wait;
        self
    }

    /// What a takeover of a request of `kind` does with an attempt in doubt (DESIGN §6).
    fn in_doubt(&self, kind: MessageKind) -> InDoubt {
        InDoubt {
            resend: kind.class() == MessageClass::Transactional,
            wait: self.takeover_wait,
        }
    }

    /// The write of [`LogStore::claim`], or of a claim that ends at once in an outcome: for a
    /// batch's transaction ([`super::send_batch`]).
    pub fn claim_update(
        &self,
        record: &NewLogRecord<'_>,
        now: Timestamp,
        to: ClaimTo<'_>,
    ) -> LogUpdate {
        claim_update(
            record.id,
            request_fields(record),
            self.in_doubt(record.kind),
            now,
            to,
        )
    }

    /// The write of [`LogStore::begin_send`], for a batch's transaction.
    pub fn begin_send_update(
        &self,
        id: &str,
        token: &str,
        attempt: &Attempt<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> LogUpdate {
        begin_send_update(id, token, attempt, now, lease)
    }

    /// The write of [`LogStore::finish`], for a batch's transaction.
    pub fn finish_update(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        now: Timestamp,
    ) -> LogUpdate {
        finish_update(id, token, finish, now)
    }

    /// Claims a request for `lease`: creates the record, or takes over one whose previous
    /// claim ended without an outcome (lease over, deferral due, or released for retry). An
    /// attempt in doubt (`sending` after its lease) is taken over as DESIGN §6 says: busy until
    /// it is [`LogStore::with_takeover_wait`] old, then claimed again for a transactional kind
    /// (at least once) or ended `unknown` for a promotional one (at most once). A receipt that
    /// arrived meanwhile has already settled it. One conditional `UpdateItem` (two to end it).
    pub async fn claim(
        &self,
        record: &NewLogRecord<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Claim, StoreError> {
        self.claim_item(
            record.id,
            request_fields(record),
            self.in_doubt(record.kind),
            now,
            lease,
        )
        .await
    }

    /// [`LogStore::claim`] for the reply to an inbound message. A reply in doubt is never
    /// sent again and does not wait: a confirmation is only worth sending within minutes of
    /// the inbound message (§8), so the takeover ends it `unknown` at once (a receipt that
    /// comes later still moves it on).
    pub async fn claim_reply(
        &self,
        reply: &NewReply<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Claim, StoreError> {
        let fields = vec![
            ("recordType", s(KEYWORD_REPLY)),
            ("class", s("transactional")),
            ("intent", s(reply.intent)),
            ("inboundMessageId", s(reply.inbound_message_id)),
            ("phoneNumber", s(reply.phone_number)),
            ("body", s(reply.body)),
        ];
        self.claim_item(reply.id, fields, InDoubt::END_AT_ONCE, now, lease)
            .await
    }

    /// [`LogStore::claim`] for an opt-in confirmation. Like a reply, it is sent at most
    /// once: an attempt in doubt ends `unknown` at the next claim instead of being sent again.
    pub async fn claim_confirmation(
        &self,
        confirmation: &NewConfirmation<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Claim, StoreError> {
        let fields = vec![
            ("recordType", s(OPT_IN_CONFIRMATION)),
            ("class", s("transactional")),
            ("userId", s(confirmation.user_id)),
            ("phoneNumber", s(confirmation.phone_number)),
            ("body", s(confirmation.body)),
        ];
        self.claim_item(confirmation.id, fields, InDoubt::END_AT_ONCE, now, lease)
            .await
    }

    async fn claim_item(
        &self,
        id: &str,
        fields: Vec<(&'static str, AttributeValue)>,
        in_doubt: InDoubt,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Claim, StoreError> {
        let token = claim_token();
        let update = claim_update(
            id,
            fields,
            in_doubt,
            now,
            ClaimTo::Pending {
                token: &token,
                lease,
            },
        );
        match update
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
        {
            Ok(out) => {
                let attempts = out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("attempts"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Ok(Claim::Claimed { token, attempts })
            }
            Err(err) if condition_failed(&err) => {
                let old = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                }
                .ok_or(StoreError::Malformed("failed claim returned no item"))?;
                let existing: LogRecord = from_item(old)?;
                self.taken(existing, in_doubt, now).await
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The answer to a claim of a request of `kind` whose condition failed on `existing` (the
    /// item a batch's transaction returned): busy, done, or the takeover of an attempt in
    /// doubt, exactly as [`LogStore::claim`] answers.
    pub async fn answer_failed_claim(
        &self,
        existing: LogRecord,
        kind: MessageKind,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        self.taken(existing, self.in_doubt(kind), now).await
    }

    /// The answer to a claim of a record someone else holds or finished ([`taken`]), ending
    /// an attempt in doubt `unknown` when that is the answer.
    async fn taken(
        &self,
        existing: LogRecord,
        in_doubt: InDoubt,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let existing = match taken(existing, in_doubt.resend, in_doubt.wait, now) {
            Taken::Answer(claim) => return Ok(claim),
            Taken::Settle(existing) => existing,
        };
        match self.settle_unknown(&existing, now).await? {
            Ok(settled) => Ok(Claim::SettledUnknown(Box::new(settled))),
            // A receipt or another takeover got there first: what it wrote is the answer.
            Err(Some(record)) if !record.status.is_claimable() => Ok(Claim::Done(Box::new(record))),
            Err(_) => Ok(Claim::Busy {
                until_ms: ms(now),
                status: LogStatus::Sending,
            }),
        }
    }

    /// Ends an attempt in doubt `unknown`, if it is still the attempt read. `Err` with the
    /// record as it now is when it moved meanwhile (`None`: no longer there).
    async fn settle_unknown(
        &self,
        existing: &LogRecord,
        now: Timestamp,
    ) -> Result<Result<LogRecord, Option<LogRecord>>, StoreError> {
        let reason = "no_receipt_after_lost_answer";
        let mut u = LogUpdate::new(
            &existing.id,
            "#status = :sending AND #sendAttempts = :attempts",
        );
        u.set("status", ":unknown")
            .set("reason", ":reason")
            .set("updatedAtMs", ":now")
            .set("statusHistory", "list_append(#statusHistory, :change)")
            .remove("claimToken")
            .value(":unknown", s(LogStatus::Unknown.as_str()))
            .value(":sending", s(LogStatus::Sending.as_str()))
            .value(":reason", s(reason))
            .value(":now", AttributeValue::N(ms(now).to_string()))
            .value(":attempts", number(u64::from(existing.send_attempts)))
            .value(
                ":change",
                history_entry(LogStatus::Unknown, now, Some(reason)),
            );
        let result = u
            .update_item(&self.client, &self.table)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes
                    .ok_or(StoreError::Malformed("settled record returned no item"))?;
                Ok(Ok(from_item(item)?))
            }
            Err(err) if condition_failed(&err) => {
                let now_is = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                Ok(Err(now_is.map(from_item).transpose()?))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Records the attempt of a claimed request before `SendTextMessage` is called: `sending`,
    /// its time, the number and the body as logged, and a fresh lease. Returns `false` when
    /// the claim was lost (nothing changed; the caller must not send).
    pub async fn begin_send(
        &self,
        id: &str,
        token: &str,
        attempt: &Attempt<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<bool, StoreError> {
        let result = begin_send_update(id, token, attempt, now, lease)
            .update_item(&self.client, &self.table)
            .send()
            .await;
        Ok(written(result)?.is_some())
    }

    /// Records the outcome of a claim (from `pending`, or from `sending` after the call).
    /// Returns `false` when the claim was lost (its lease ran out and another invocation took
    /// the request), in which case nothing changed. `Sent` after a receipt already moved the
    /// record on (`sent`, `delivered`, ...) is `true`: the receipt said it first.
    pub async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let status = finish.status();
        match finish_update(id, token, finish, now)
            .update_item(&self.client, &self.table)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => {
                let old = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                Ok(receipt_said_it_first(status, token, old.as_ref()))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Reads one record (strongly consistent).
    pub async fn get(&self, id: &str) -> Result<Option<LogRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(id))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(from_item).transpose().map_err(Into::into)
    }

    /// The record a provider message id belongs to (delivery receipts without context).
    pub async fn find_by_provider_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        self.item_by_provider_message_id(message_id)
            .await?
            .map(from_item)
            .transpose()
            .map_err(Into::into)
    }

    /// The raw item of the record a provider message id belongs to, by its index.
    pub(super) async fn item_by_provider_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LOG_BY_PROVIDER_ID_INDEX)
            .key_condition_expression("providerMessageId = :mid")
            .expression_attribute_values(":mid", s(message_id))
            .limit(1)
            .send()
            .await?;
        Ok(out.items.unwrap_or_default().into_iter().next())
    }

    /// A user's messages created in `[from, to)`, newest first, at most `limit`.
    pub async fn query_by_user(
        &self,
        user_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: i32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LOG_BY_USER_INDEX)
            .key_condition_expression("userId = :user AND createdAtMs BETWEEN :from AND :to")
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":from", AttributeValue::N(ms(from).to_string()))
            .expression_attribute_values(":to", AttributeValue::N((ms(to) - 1).to_string()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await?;
        Ok(from_items(out.items.unwrap_or_default())?)
    }
}

/// A random token that identifies one claim.
pub fn claim_token() -> String {
    let mut bytes = [0u8; 12];
    // getrandom only fails when the OS has no entropy source at all; fall back to time.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&Timestamp::now().as_nanosecond().to_le_bytes()[..8]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids of the counters kept in the log table.
pub mod counter_ids {
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    /// Promotional messages sent to a user on a UTC day.
    pub fn user_day(user_id: &str, at: Timestamp) -> String {
        let date = at.to_zoned_datetime(TimeZone::UTC).date();
        format!("counter#user-day#{user_id}#{date}")
    }

    /// Promotional messages to a user in a rolling 24 h window (state caps).
    pub fn user_rolling_24h(user_id: &str) -> String {
        format!("counter#user-24h#{user_id}")
    }

    /// Account spend (micro-USD) in a UTC month: every message but verification codes (the
    /// caps of DESIGN §7 read it).
    pub fn month_spend(at: Timestamp) -> String {
        let date = at.to_zoned_datetime(TimeZone::UTC).date();
        format!("counter#spend#{:04}-{:02}", date.year(), date.month())
    }

    /// Verification codes' spend (micro-USD) in a UTC month, against their own budget
    /// (DESIGN §7): each code's estimate reserved when it is sent, corrected to its price
    /// when the receipt brings one.
    pub fn month_code_spend(at: Timestamp) -> String {
        let date = at.to_zoned_datetime(TimeZone::UTC).date();
        format!("counter#code-spend#{:04}-{:02}", date.year(), date.month())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB refuses an update whose expressions leave a name or value unused, set one
    /// attribute twice, or set and remove one (moto takes all three): every write the log
    /// builds, alone or for a batch, is checked here.
    fn assert_well_formed(u: &LogUpdate) {
        let expression = u.expression();
        let all = format!("{expression} {}", u.condition);
        crate::store::assert_placeholders_used(&all, u.names.keys().chain(u.values.keys()));
        let set: Vec<&str> = u.set.iter().map(|(a, _)| a.as_str()).collect();
        let mut unique = set.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), set.len(), "{expression}");
        if let Some((_, removed)) = expression.split_once(" REMOVE ") {
            for r in removed.split(", ") {
                assert!(!set.contains(&r.trim_start_matches('#')), "{expression}");
            }
        }
    }

    #[test]
    fn every_write_is_one_dynamodb_takes() {
        let now: Timestamp = "2026-11-25T18:00:00Z".parse().unwrap();
        let lease = SignedDuration::from_secs(120);
        let related = Related {
            kind: "BattleInvitation".into(),
            id: "1".into(),
        };
        let attempt = Attempt {
            phone_number: "+14155550123",
            body: "Hi",
            segments: 1,
            encoding: "GSM-7",
        };
        let finishes = [
            Finish::Sent {
                provider_message_id: "m",
                phone_number: "+14155550123",
                body: "Hi",
                segments: 1,
                encoding: "GSM-7",
            },
            Finish::Suppressed {
                reason: "daily_cap",
                phone_number: Some("+14155550123"),
            },
            Finish::Suppressed {
                reason: "unknown_user",
                phone_number: None,
            },
            Finish::Rejected {
                reason: "provider_X",
            },
            Finish::Expired,
            Finish::Deferred { until: now },
            Finish::Retry {
                error_code: "deadline",
                error_message: "late",
            },
            Finish::InDoubt {
                error_code: "timeout",
                error_message: "no answer",
            },
        ];
        for kind in [MessageKind::BattleInvitation, MessageKind::SecurityAlert] {
            let record = NewLogRecord {
                id: "r",
                user_id: Some("u"),
                kind,
                related: Some(&related),
            };
            let fields = request_fields(&record);
            let in_doubt = InDoubt {
                resend: kind.class() == MessageClass::Transactional,
                wait: DEFAULT_TAKEOVER_WAIT,
            };
            let pending = ClaimTo::Pending { token: "t", lease };
            assert_well_formed(&claim_update("r", fields.clone(), in_doubt, now, pending));
            for finish in finishes {
                let to = ClaimTo::Outcome(finish);
                assert_well_formed(&claim_update("r", fields.clone(), in_doubt, now, to));
            }
        }
        assert_well_formed(&begin_send_update("r", "t", &attempt, now, lease));
        for finish in finishes {
            assert_well_formed(&finish_update("r", "t", finish, now));
        }
    }
}
