//! Delivery receipts on the SMS log (DESIGN §7, §8).
//!
//! End User Messaging reports each message's progress as events (`TEXT_QUEUED`,
//! `TEXT_SUCCESSFUL`, `TEXT_DELIVERED`, `TEXT_BLOCKED`, ...). They can arrive late (up to 72 h),
//! out of order and more than once. Every rule below is a DynamoDB condition, never a
//! read-modify-write:
//!
//! * **Ordering.** The record keeps `lastEventMs` (the applied event's `eventTimestamp`) and
//!   `receiptFinal`. An event applies only when it is newer (`lastEventMs < :ts`; on a tie, only
//!   a final event over a non-final one). A non-final event never replaces a final status,
//!   whatever its time, and `sent` never replaces `delivered`. A replay has the same timestamp,
//!   so it changes nothing.
//! * **Which records.** Every record an attempt was made for (`sendingAtMs`, DESIGN §6) takes
//!   receipts, whatever its status: `sent` and after, and also `sending` (the sender crashed or
//!   lost the answer between `SendTextMessage` and writing the outcome, or has not written it
//!   yet) and `unknown`. That is how a receipt settles an attempt in doubt: the record moves to
//!   what the receipt says, the sender's own `finish` then finds it settled, and the takeover
//!   of [`LogStore::claim`] finds it done instead of sending again. A record claimed but never
//!   attempted (`pending` without `sendingAtMs`, e.g. one written before this protocol) is
//!   [`ReceiptOutcome::NotReady`]: the caller fails the invocation so Lambda retries it later.
//!   Records that never went out (`suppressed`, `rejected`, `expired`) ignore receipts.
//! * **Price, once.** The price and carrier fee are added to the record and to the month's
//!   spend counter in one transaction, conditional on the provider message id not being in the
//!   record's `pricedMessages` set yet. A price is counted once per provider message, whichever
//!   event carries it first, even when that event is too old to change the status.
//! * **Hard failures.** A hard failure (see [`EventKind::is_hard_failure`]) adds one to the
//!   number's `counter#hard-fail#<e164>` and a delivery sets it back to 0, in the same
//!   transaction as the status change, so a replayed event never counts twice. The caller reads
//!   the counter and marks the number undeliverable at [`HARD_FAILURE_LIMIT`].
//! * **No deletes.** A reset is an `UpdateItem` (`count = 0`), never a `DeleteItem`: the log
//!   table is the audit trail (§9) and no role may delete from it. AWS checks each item of a
//!   `TransactWriteItems` with the permission of the matching single-item call, so a `Delete`
//!   here would need `dynamodb:DeleteItem` on the whole table; the zeroed counter costs one
//!   small item per number until its TTL ([`HARD_FAILURE_MEMORY`]).

use super::counters::number;
use super::schema::{LOG_KEY, TTL_ATTRIBUTE};
use super::{LogStatus, LogStore, StoreError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use jiff::{SignedDuration, Timestamp};
/// The event types and prices of End User Messaging receipts: pure, so they live in core.
pub use sms_core::receipt::{EventKind, Price};
use std::collections::HashMap;

/// Consecutive hard failures after which a number is marked undeliverable (§8).
pub const HARD_FAILURE_LIMIT: u64 = 3;
/// A run of hard failures older than this is forgotten (the counter's TTL).
pub const HARD_FAILURE_MEMORY: SignedDuration = SignedDuration::from_hours(90 * 24);
/// How long monthly spend counters are kept after the event that last touched them.
pub const SPEND_COUNTER_KEEP: SignedDuration = SignedDuration::from_hours(400 * 24);

/// Id of the consecutive-hard-failure counter of a number (in the log table).
pub fn hard_failure_counter_id(e164: &str) -> String {
    format!("counter#hard-fail#{e164}")
}

/// One delivery event, validated.
#[derive(Debug, Clone, Copy)]
pub struct Receipt<'a> {
    pub kind: EventKind,
    pub is_final: bool,
    /// `eventTimestamp`, Unix ms.
    pub event_ms: i64,
    /// `messageId` of the provider.
    pub provider_message_id: &'a str,
    pub description: Option<&'a str>,
    pub parts: Option<u32>,
    pub carrier_name: Option<&'a str>,
    pub iso_country_code: Option<&'a str>,
}

/// The log record a receipt belongs to, as read before applying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptTarget {
    pub id: String,
    /// `None` when the stored status is not one this code knows.
    pub status: Option<LogStatus>,
    /// Full E.164 of the recipient, when recorded.
    pub phone_number: Option<String>,
    /// An attempt to send it was recorded (`sendingAtMs`).
    pub attempted: bool,
    /// The message kind of a send request or a code (`phone_verification`); `None` for
    /// keyword replies and opt-in confirmations.
    pub kind: Option<String>,
    /// Segments of the body as sent.
    pub segments: Option<u32>,
}

impl ReceiptTarget {
    /// The answer to a receipt for this record before any write: `None` when the record was
    /// sent (or a send of it attempted) and the receipt may apply; `NotReady` while the sender
    /// has not got that far (try again later); `Ignored` for a record never sent.
    pub fn unready(&self) -> Option<ReceiptOutcome> {
        match self.status {
            Some(LogStatus::Sent | LogStatus::Delivered | LogStatus::Undelivered) => None,
            Some(_) if self.attempted => None,
            Some(status) if status.is_claimable() => Some(ReceiptOutcome::NotReady),
            _ => Some(ReceiptOutcome::Ignored("record_not_sent")),
        }
    }
}

/// What applying a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// The record took the event's status.
    Applied,
    /// Nothing changed: an older or repeated event, or a final status kept (the reason).
    Ignored(&'static str),
    /// The sender has not finished the record yet: try again later.
    NotReady,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn ttl(at: Timestamp) -> AttributeValue {
    number(at.as_second().max(0) as u64)
}

fn status_of(item: &HashMap<String, AttributeValue>) -> Option<LogStatus> {
    let raw = item.get("status")?.as_s().ok()?;
    serde_json::from_value(serde_json::Value::String(raw.clone())).ok()
}

fn target_of(item: &HashMap<String, AttributeValue>) -> Option<ReceiptTarget> {
    let id = item.get(LOG_KEY)?.as_s().ok()?.clone();
    Some(ReceiptTarget {
        id,
        status: status_of(item),
        phone_number: item.get("phoneNumber").and_then(|v| v.as_s().ok()).cloned(),
        attempted: item.contains_key("sendingAtMs"),
        kind: item.get("kind").and_then(|v| v.as_s().ok()).cloned(),
        segments: item
            .get("segments")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()),
    })
}

/// The update that sets a number's hard-failure counter back to 0 (kept until its TTL).
fn hard_failure_reset(
    table: &str,
    counter: &str,
    now: Timestamp,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder()
        .table_name(table)
        .key(LOG_KEY, s(counter))
        .update_expression("SET #count = :zero, #ttl = :ttl")
        .expression_attribute_names("#count", "count")
        .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
        .expression_attribute_values(":zero", number(0))
        .expression_attribute_values(":ttl", ttl(now + HARD_FAILURE_MEMORY))
}

/// Whether a transaction was cancelled because of its first item's condition (and not for a
/// conflict or throttling, which are transient).
fn first_condition_failed<R>(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .first()
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed"),
        _ => false,
    }
}

// The ports of `delivery-status` (CONVENTIONS, "Seams": small traits shaped by use), declared
// beside the store that implements them, so the store's methods are the implementations and
// no adapter repeats their signatures; the function's in-memory fakes implement them too.

/// Finding the log record a receipt belongs to: by the log id of its `Context`, else by the
/// provider message id; `None` when there is no such record.
pub trait ReceiptTargets: Send + Sync {
    fn find_receipt_target(
        &self,
        log_id: Option<&str>,
        provider_message_id: &str,
    ) -> impl Future<Output = Result<Option<ReceiptTarget>, StoreError>> + Send;
}

/// Applying a receipt's status to its record, once and in order (DESIGN §8), and moving the
/// number's run of hard failures in the same write (one up for a hard failure, back to 0 for
/// a delivery).
pub trait ReceiptStatuses: Send + Sync {
    fn apply_receipt(
        &self,
        target: &ReceiptTarget,
        receipt: &Receipt<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<ReceiptOutcome, StoreError>> + Send;
}

/// Adding a provider message's price to its record and `counted_micros` to the spend counter
/// `counter`, in one write, once per provider message. `true` when added now.
pub trait SpendCounters: Send + Sync {
    fn apply_price(
        &self,
        log_id: &str,
        provider_message_id: &str,
        price: Price,
        counter: &str,
        counted_micros: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A number's run of consecutive hard failures: read it, forget it.
pub trait HardFailureRuns: Send + Sync {
    fn hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn reset_hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl ReceiptTargets for LogStore {
    /// Finds the record of a receipt: by the log id the sender put in `Context`, else by the
    /// provider message id (index, eventually consistent). Works on raw items, so records of
    /// any shape (send requests, keyword replies) take receipts.
    async fn find_receipt_target(
        &self,
        log_id: Option<&str>,
        provider_message_id: &str,
    ) -> Result<Option<ReceiptTarget>, StoreError> {
        if let Some(id) = log_id.filter(|id| !id.is_empty()) {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(LOG_KEY, s(id))
                .consistent_read(true)
                .send()
                .await?;
            if let Some(target) = out.item.as_ref().and_then(target_of) {
                return Ok(Some(target));
            }
        }
        if provider_message_id.is_empty() {
            return Ok(None);
        }
        Ok(self
            .item_by_provider_message_id(provider_message_id)
            .await?
            .as_ref()
            .and_then(target_of))
    }
}

impl ReceiptStatuses for LogStore {
    /// Applies a receipt's status to its record (see the module documentation), and moves the
    /// number's hard-failure counter in the same transaction.
    async fn apply_receipt(
        &self,
        target: &ReceiptTarget,
        receipt: &Receipt<'_>,
        now: Timestamp,
    ) -> Result<ReceiptOutcome, StoreError> {
        if let Some(answer) = target.unready() {
            return Ok(answer);
        }
        let new_status = receipt.kind.status();
        let mut condition = String::from(
            "attribute_exists(#id) \
             AND (#status IN (:sent, :delivered, :undelivered) OR attribute_exists(sendingAtMs)) \
             AND (attribute_not_exists(lastEventMs) OR lastEventMs < :ts",
        );
        if receipt.is_final {
            condition.push_str(" OR (lastEventMs = :ts AND receiptFinal = :false))");
        } else {
            condition
                .push_str(") AND (attribute_not_exists(receiptFinal) OR receiptFinal = :false)");
        }
        if new_status == LogStatus::Sent {
            condition.push_str(" AND #status <> :delivered");
        }

        let mut set = String::from(
            "SET #status = :status, lastEventMs = :ts, lastEventType = :type, \
             receiptFinal = :final, updatedAtMs = :now, \
             providerMessageId = if_not_exists(providerMessageId, :mid), \
             statusHistory = list_append(if_not_exists(statusHistory, :empty), :change)",
        );
        let mut remove = Vec::new();
        let mut values: HashMap<String, AttributeValue> = HashMap::from([
            (":sent".into(), s(LogStatus::Sent.as_str())),
            (":delivered".into(), s(LogStatus::Delivered.as_str())),
            (":undelivered".into(), s(LogStatus::Undelivered.as_str())),
            (":status".into(), s(new_status.as_str())),
            (":ts".into(), n(receipt.event_ms)),
            (":type".into(), s(receipt.kind.as_str())),
            (":final".into(), AttributeValue::Bool(receipt.is_final)),
            (":false".into(), AttributeValue::Bool(false)),
            (":now".into(), n(now.as_millisecond())),
            (":empty".into(), AttributeValue::L(vec![])),
            (":mid".into(), s(receipt.provider_message_id)),
        ]);
        let mut change = HashMap::from([
            ("status".to_owned(), s(new_status.as_str())),
            ("atMs".to_owned(), n(receipt.event_ms)),
        ]);
        match new_status {
            LogStatus::Delivered => {
                set.push_str(", deliveredAtMs = :ts");
                remove.push("reason");
            }
            LogStatus::Undelivered => {
                set.push_str(", reason = :reason");
                values.insert(":reason".into(), s(receipt.kind.as_str()));
                change.insert("reason".to_owned(), s(receipt.kind.as_str()));
            }
            _ => remove.push("reason"),
        }
        values.insert(
            ":change".into(),
            AttributeValue::L(vec![AttributeValue::M(change)]),
        );
        let optional = [
            ("statusDescription", ":desc", receipt.description.map(s)),
            ("carrierName", ":carrier", receipt.carrier_name.map(s)),
            ("isoCountryCode", ":iso", receipt.iso_country_code.map(s)),
            (
                "messageParts",
                ":parts",
                receipt.parts.map(|p| number(u64::from(p))),
            ),
        ];
        for (attribute, placeholder, value) in optional {
            if let Some(value) = value {
                set.push_str(&format!(", {attribute} = {placeholder}"));
                values.insert(placeholder.into(), value);
            }
        }
        let expression = if remove.is_empty() {
            set
        } else {
            format!("{set} REMOVE {}", remove.join(", "))
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key(LOG_KEY, s(&target.id))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#id", LOG_KEY)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|_| StoreError::Malformed("receipt update"))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];

        if let Some(phone) = &target.phone_number {
            let counter = hard_failure_counter_id(phone);
            if receipt.kind.is_hard_failure() {
                let bump = Update::builder()
                    .table_name(&self.table)
                    .key(LOG_KEY, s(counter))
                    .update_expression("ADD #count :one SET #ttl = :ttl")
                    .expression_attribute_names("#count", "count")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":one", number(1))
                    .expression_attribute_values(":ttl", ttl(now + HARD_FAILURE_MEMORY))
                    .build()
                    .map_err(|_| StoreError::Malformed("hard failure counter update"))?;
                items.push(TransactWriteItem::builder().update(bump).build());
            } else if new_status == LogStatus::Delivered {
                let reset = hard_failure_reset(&self.table, &counter, now)
                    .build()
                    .map_err(|_| StoreError::Malformed("hard failure counter reset"))?;
                items.push(TransactWriteItem::builder().update(reset).build());
            }
        }

        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(ReceiptOutcome::Applied),
            Err(err) if first_condition_failed(&err) => {
                Ok(ReceiptOutcome::Ignored(if receipt.is_final {
                    "older_or_repeated_event"
                } else {
                    "older_event_or_final_status_kept"
                }))
            }
            Err(err) => Err(err.into()),
        }
    }
}

impl SpendCounters for LogStore {
    /// Adds a provider message's price to its record, and `counted_micros` to the spend
    /// counter `month_counter`, once per provider message id. Returns whether it was added
    /// now. `counted_micros` is the price for the account's spend; for a verification code
    /// it is the price less the estimate reserved when the code was sent (may be negative),
    /// so the codes' counter ends at what they really cost (DESIGN §7).
    async fn apply_price(
        &self,
        log_id: &str,
        provider_message_id: &str,
        price: Price,
        month_counter: &str,
        counted_micros: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let record = Update::builder()
            .table_name(&self.table)
            .key(LOG_KEY, s(log_id))
            .update_expression(
                "SET priceMicros = if_not_exists(priceMicros, :zero) + :price, \
                 carrierFeeMicros = if_not_exists(carrierFeeMicros, :zero) + :fee, \
                 updatedAtMs = :now \
                 ADD pricedMessages :mids",
            )
            .condition_expression("attribute_exists(#id) AND NOT contains(pricedMessages, :mid)")
            .expression_attribute_names("#id", LOG_KEY)
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":price", number(price.price_micros))
            .expression_attribute_values(":fee", number(price.carrier_fee_micros))
            .expression_attribute_values(":now", n(now.as_millisecond()))
            .expression_attribute_values(
                ":mids",
                AttributeValue::Ss(vec![provider_message_id.to_owned()]),
            )
            .expression_attribute_values(":mid", s(provider_message_id))
            .build()
            .map_err(|_| StoreError::Malformed("price update"))?;
        let counter = Update::builder()
            .table_name(&self.table)
            .key(LOG_KEY, s(month_counter))
            .update_expression("ADD #count :total SET #ttl = :ttl")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":total", AttributeValue::N(counted_micros.to_string()))
            .expression_attribute_values(":ttl", ttl(now + SPEND_COUNTER_KEEP))
            .build()
            .map_err(|_| StoreError::Malformed("spend counter update"))?;
        match self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(record).build())
            .transact_items(TransactWriteItem::builder().update(counter).build())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if first_condition_failed(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}

impl HardFailureRuns for LogStore {
    /// The number's current run of hard failures (0 when none or expired).
    async fn hard_failures(&self, e164: &str, now: Timestamp) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(hard_failure_counter_id(e164)))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item else {
            return Ok(0);
        };
        let expired = item
            .get(TTL_ATTRIBUTE)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|t| t <= now.as_second());
        if expired {
            return Ok(0);
        }
        Ok(item
            .get("count")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0))
    }

    /// Forgets the number's run of hard failures (after it was marked undeliverable): the
    /// counter goes back to 0 (an update, not a delete: see the module documentation).
    async fn reset_hard_failures(&self, e164: &str, now: Timestamp) -> Result<(), StoreError> {
        let reset = hard_failure_reset(&self.table, &hard_failure_counter_id(e164), now)
            .build()
            .map_err(|_| StoreError::Malformed("hard failure counter reset"))?;
        // The same update as in `apply_receipt`, alone (rare: once per undeliverable number).
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(reset).build())
            .send()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_ids_are_per_number() {
        assert_eq!(
            hard_failure_counter_id("+14155550123"),
            "counter#hard-fail#+14155550123"
        );
    }
}
