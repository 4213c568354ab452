//! `delivery-status`: applies End User Messaging delivery receipts to the SMS log (DESIGN §8).
//!
//! Each SNS record carries one SMS event record (JSON string). For each:
//! 1. parse and validate it; a malformed record (not JSON, a missing field, an unknown or
//!    non-SMS event type, a price that is not an amount) is logged with its SNS message id and
//!    skipped, with no write at all;
//! 2. find the log record: by the `logId` the sender put in `Context`, else by the provider
//!    message id; a receipt for a message we have no record of is logged and skipped;
//! 3. apply the status with the ordering rules of [`sms_shared::store::receipts`] (newer events
//!    only, a final status is never replaced by a non-final one, replays change nothing), and
//!    move the number's hard-failure counter in the same transaction;
//! 4. add the price and carrier fee to the record and the month's spend, once per provider
//!    message (a verification code's to the codes' own budget instead, DESIGN §7);
//! 5. after a hard failure, read the number's run of hard failures; at
//!    [`HARD_FAILURE_LIMIT`] every user with that number gets the phone marked unverified and
//!    undeliverable (they must verify again), then the run is reset.
//!
//! A transient fault (DynamoDB, or a record the sender has not finished yet) fails the
//! invocation: Lambda retries the asynchronous invocation and, after its retries, hands the
//! event to the on-failure destination. Every step is idempotent, so a retry after a partial
//! run completes it without counting anything twice.

pub mod answer;

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use jiff::Timestamp;
use lambda_runtime::Diagnostic;
use serde::Deserialize;
use serde_json::Value;
use sms_shared::config::parse_usd_micros;
use sms_shared::metrics::MetricSet;
use sms_shared::phone::mask;
use sms_shared::store::log::counter_ids;
use sms_shared::store::receipts::{EventKind, HARD_FAILURE_LIMIT, Price, Receipt, ReceiptOutcome};
use sms_shared::store::{
    DynamoClient, LogStatus, LogStore, PreferencesStore, StoreError, UpdateError,
};
use sms_shared::verification::code_estimate_micros;
use sms_shared::{Clock, Config, MessageKind};
use std::sync::Arc;
use tracing::{info, warn};

/// `Context` key under which the sender attaches the log id.
pub use sms_shared::sms::CONTEXT_LOG_ID;

/// Name used in metrics.
const FUNCTION: &str = "delivery-status";

/// Largest price of one message we believe, in USD (a guard against garbage, not a cap).
const MAX_PRICE_MICROS: u64 = 1_000_000_000;

/// Why an SNS record is not a usable delivery event. Logged and skipped, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedEvent {
    #[error("message is not a JSON object: {0}")]
    NotJson(String),
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type or an impossible value")]
    Invalid(&'static str),
    #[error("event type `{0}` is not an SMS delivery event this function knows")]
    UnknownEventType(String),
}

/// A fault that fails the invocation so Lambda retries it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryStatusError {
    #[error("DynamoDB request failed: {0}")]
    Store(#[from] StoreError),
    #[error("log record {log_id} is still being sent; the receipt is retried later")]
    NotReady { log_id: String },
    #[error("preferences of the users of a number kept changing; retried later")]
    Contended,
}

impl From<DeliveryStatusError> for Diagnostic {
    fn from(error: DeliveryStatusError) -> Self {
        let error_type = match &error {
            DeliveryStatusError::Store(_) => "StoreError",
            DeliveryStatusError::NotReady { .. } => "LogRecordNotReady",
            DeliveryStatusError::Contended => "PreferencesContended",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// The SMS event record as End User Messaging publishes it (fields we use).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    event_type: Option<String>,
    event_timestamp: Option<Value>,
    is_final: Option<bool>,
    message_id: Option<String>,
    message_request_timestamp: Option<Value>,
    destination_phone_number: Option<String>,
    message_status_description: Option<String>,
    total_message_parts: Option<Value>,
    total_message_price: Option<Value>,
    total_carrier_fee: Option<Value>,
    iso_country_code: Option<String>,
    carrier_name: Option<String>,
    context: Option<Value>,
}

/// A validated delivery event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    pub kind: EventKind,
    pub is_final: bool,
    pub event_ms: i64,
    pub message_id: String,
    pub request_ms: Option<i64>,
    pub log_id: Option<String>,
    pub destination: Option<String>,
    pub description: Option<String>,
    pub parts: Option<u32>,
    pub price: Price,
    pub iso_country_code: Option<String>,
    pub carrier_name: Option<String>,
}

impl DeliveryEvent {
    /// Parses the SNS message text. Never panics, whatever the input.
    pub fn parse(message: &str) -> Result<Self, MalformedEvent> {
        let raw: RawEvent =
            serde_json::from_str(message).map_err(|e| MalformedEvent::NotJson(e.to_string()))?;
        let event_type = non_empty(raw.event_type).ok_or(MalformedEvent::Missing("eventType"))?;
        let kind = EventKind::parse(&event_type)
            .ok_or_else(|| MalformedEvent::UnknownEventType(truncate(&event_type, 64)))?;
        let event_ms = raw
            .event_timestamp
            .as_ref()
            .ok_or(MalformedEvent::Missing("eventTimestamp"))
            .and_then(|v| millis(v).ok_or(MalformedEvent::Invalid("eventTimestamp")))?;
        let message_id = non_empty(raw.message_id).ok_or(MalformedEvent::Missing("messageId"))?;
        let request_ms = match &raw.message_request_timestamp {
            None | Some(Value::Null) => None,
            Some(v) => Some(millis(v).ok_or(MalformedEvent::Invalid("messageRequestTimestamp"))?),
        };
        let log_id = match &raw.context {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => match map.get(CONTEXT_LOG_ID) {
                None | Some(Value::Null) => None,
                Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                Some(_) => return Err(MalformedEvent::Invalid("context.logId")),
            },
            Some(_) => return Err(MalformedEvent::Invalid("context")),
        };
        let parts = match &raw.total_message_parts {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or(MalformedEvent::Invalid("totalMessageParts"))?,
            ),
        };
        let price = Price {
            price_micros: usd(raw.total_message_price.as_ref(), "totalMessagePrice")?,
            carrier_fee_micros: usd(raw.total_carrier_fee.as_ref(), "totalCarrierFee")?,
        };
        Ok(Self {
            kind,
            is_final: raw.is_final.unwrap_or_else(|| kind.default_final()),
            event_ms,
            message_id,
            request_ms,
            log_id,
            destination: non_empty(raw.destination_phone_number),
            description: non_empty(raw.message_status_description).map(|d| truncate(&d, 256)),
            parts,
            price,
            iso_country_code: non_empty(raw.iso_country_code).map(|c| truncate(&c, 8)),
            carrier_name: non_empty(raw.carrier_name).map(|c| truncate(&c, 128)),
        })
    }

    fn receipt(&self) -> Receipt<'_> {
        Receipt {
            kind: self.kind,
            is_final: self.is_final,
            event_ms: self.event_ms,
            provider_message_id: &self.message_id,
            description: self.description.as_deref(),
            parts: self.parts,
            carrier_name: self.carrier_name.as_deref(),
            iso_country_code: self.iso_country_code.as_deref(),
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A Unix-millisecond timestamp, as a JSON number or a string of digits.
fn millis(value: &Value) -> Option<i64> {
    let ms = match value {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (ms > 0).then_some(ms)
}

/// A USD amount as End User Messaging sends it (a JSON number such as `0.00581`, or a string)
/// in micro-USD. The decimal text is parsed exactly; only a number the text form cannot hold
/// (exponent notation, more than 6 decimals) goes through `f64`, rounded to the micro-dollar.
fn usd(value: Option<&Value>, field: &'static str) -> Result<u64, MalformedEvent> {
    let invalid = MalformedEvent::Invalid(field);
    let (text, float) = match value {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => (n.to_string(), n.as_f64()),
        Some(Value::String(s)) => (s.trim().to_owned(), s.trim().parse::<f64>().ok()),
        Some(_) => return Err(invalid),
    };
    let micros = match parse_usd_micros(&text) {
        Some(m) => m,
        None => {
            let x = float.ok_or(invalid.clone())?;
            if !x.is_finite() || x < 0.0 {
                return Err(invalid);
            }
            let m = (x * 1_000_000.0).round();
            if m > MAX_PRICE_MICROS as f64 {
                return Err(invalid);
            }
            m as u64
        }
    };
    if micros > MAX_PRICE_MICROS {
        return Err(invalid);
    }
    Ok(micros)
}

/// What became of one SNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Applied(EventKind),
    Ignored(&'static str),
    NoRecord,
    Malformed,
}

/// The function's state, built once per cold start.
pub struct DeliveryStatus {
    log: LogStore,
    prefs: PreferencesStore,
    clock: Arc<dyn Clock>,
}

impl DeliveryStatus {
    pub fn new(config: &Config, dynamodb: DynamoClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            log: LogStore::new(dynamodb.clone(), &config.tables.log),
            prefs: PreferencesStore::new(dynamodb, &config.tables.preferences),
            clock,
        }
    }

    /// Handles one SNS event. `Err` only for transient faults (Lambda retries the event).
    pub async fn handle(&self, event: SnsEvent) -> Result<Vec<RecordOutcome>, DeliveryStatusError> {
        sms_shared::sns::process_records(&event, FUNCTION, async |sns, metrics| {
            self.process(sns, metrics).await
        })
        .await
    }

    async fn process(
        &self,
        sns: &SnsMessage,
        metrics: &mut MetricSet,
    ) -> Result<RecordOutcome, DeliveryStatusError> {
        let sns_id = sns.message_id.as_str();
        let event = match DeliveryEvent::parse(&sns.message) {
            Ok(event) => event,
            Err(e) => {
                warn!(sns_message_id = sns_id, error = %e, "malformed delivery event skipped");
                metrics.add("MalformedEvent", None, 1.0);
                return Ok(RecordOutcome::Malformed);
            }
        };
        let now = self.clock.now();
        let Some(target) = self
            .log
            .find_receipt_target(event.log_id.as_deref(), &event.message_id)
            .await?
        else {
            warn!(
                sns_message_id = sns_id,
                provider_message_id = %event.message_id,
                log_id = event.log_id.as_deref().unwrap_or_default(),
                event_type = event.kind.as_str(),
                "no log record for this receipt; skipped"
            );
            return Ok(RecordOutcome::NoRecord);
        };
        let outcome = self
            .log
            .apply_receipt(&target, &event.receipt(), now)
            .await?;
        let result = match outcome {
            ReceiptOutcome::NotReady => {
                return Err(DeliveryStatusError::NotReady {
                    log_id: target.id.clone(),
                });
            }
            ReceiptOutcome::Ignored("record_not_sent") => {
                warn!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), "receipt for a record that was never sent; skipped");
                return Ok(RecordOutcome::Ignored("record_not_sent"));
            }
            ReceiptOutcome::Ignored(reason) => {
                info!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), reason, "receipt changes nothing");
                RecordOutcome::Ignored(reason)
            }
            ReceiptOutcome::Applied => {
                info!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), is_final = event.is_final, "receipt applied");
                match event.kind.status() {
                    LogStatus::Delivered => metrics.count("Delivered"),
                    LogStatus::Undelivered => {
                        metrics.add("Undelivered", Some(event.kind.reason()), 1.0)
                    }
                    _ => {}
                }
                RecordOutcome::Applied(event.kind)
            }
        };

        // Price: once per provider message, whichever event brings it first.
        if event.price.total_micros() > 0 {
            let month_of = event
                .request_ms
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .or_else(|| Timestamp::from_millisecond(event.event_ms).ok())
                .unwrap_or(now);
            // Codes have their own budget (DESIGN §7): their price replaces the estimate
            // reserved at send in the codes' counter, and never reaches the account's spend,
            // whose caps keep the room of security alerts and keyword replies.
            let total = i64::try_from(event.price.total_micros()).unwrap_or(i64::MAX);
            let (counter, counted) =
                if target.kind.as_deref() == Some(MessageKind::PhoneVerification.as_str()) {
                    let reserved = code_estimate_micros(target.segments.unwrap_or(1));
                    (
                        counter_ids::month_code_spend(month_of),
                        total.saturating_sub(i64::try_from(reserved).unwrap_or(i64::MAX)),
                    )
                } else {
                    (counter_ids::month_spend(month_of), total)
                };
            if self
                .log
                .apply_price(
                    &target.id,
                    &event.message_id,
                    event.price,
                    &counter,
                    counted,
                    now,
                )
                .await?
            {
                metrics.add("CostUsd", None, event.price.total_micros() as f64 / 1e6);
            }
        }

        // Hard failures: checked on every hard-failure event, applied or not, so a retry after
        // a crash between counting and marking still marks.
        let phone = target.phone_number.as_deref();
        if event.kind.is_hard_failure()
            && let Some(phone) = phone
        {
            let run = self.log.hard_failures(phone, now).await?;
            if run >= HARD_FAILURE_LIMIT {
                let marked = self.mark_undeliverable(phone, now).await?;
                self.log.reset_hard_failures(phone, now).await?;
                warn!(
                    to = %mask(phone),
                    hard_failures = run,
                    users = marked,
                    "number marked undeliverable; its users must verify again"
                );
                metrics.count("NumberUndeliverable");
            }
        }
        Ok(result)
    }

    /// Marks the phone of every user with `e164` unverified and undeliverable. Returns how
    /// many users changed.
    async fn mark_undeliverable(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> Result<usize, DeliveryStatusError> {
        let updated = self
            .prefs
            .update_by_number(e164, now, |p| {
                if p.phone_verified || p.phone_undeliverable_at.is_none() {
                    p.phone_verified = false;
                    p.phone_verified_at = None;
                    p.phone_undeliverable_at = Some(now);
                }
                Vec::new()
            })
            .await?;
        Ok(updated.iter().filter(|u| u.changed).count())
    }
}

impl From<UpdateError> for DeliveryStatusError {
    fn from(err: UpdateError) -> Self {
        match err {
            UpdateError::Store(e) => DeliveryStatusError::Store(e),
            UpdateError::Contended | UpdateError::GuardFailed => DeliveryStatusError::Contended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(extra: Value) -> Value {
        let mut base = json!({
            "eventType": "TEXT_DELIVERED",
            "eventVersion": "1.0",
            "eventTimestamp": 1_764_072_000_000_i64,
            "isFinal": true,
            "messageId": "m-1",
            "context": {"logId": "req-1"},
            "totalMessageParts": 1,
            "totalMessagePrice": 0.00581,
            "totalCarrierFee": 0.0025
        });
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
            base.extend(extra);
        }
        base
    }

    fn parse(value: &Value) -> Result<DeliveryEvent, MalformedEvent> {
        DeliveryEvent::parse(&value.to_string())
    }

    #[test]
    fn a_full_event_parses() {
        let e = parse(&event(json!({}))).unwrap();
        assert_eq!(e.kind, EventKind::Delivered);
        assert!(e.is_final);
        assert_eq!(e.log_id.as_deref(), Some("req-1"));
        assert_eq!(e.price.price_micros, 5_810);
        assert_eq!(e.price.carrier_fee_micros, 2_500);
        assert_eq!(e.parts, Some(1));
    }

    #[test]
    fn prices_convert_exactly() {
        for (price, micros) in [
            (json!(0.09582), 95_820),
            (json!("0.00645"), 6_450),
            (json!(0), 0),
            (json!(null), 0),
            (json!(1e-6), 1),
            (json!(0.1 + 0.2), 300_000),
            (json!(2.5e-3), 2_500),
        ] {
            let e = parse(&event(json!({ "totalMessagePrice": price }))).unwrap();
            assert_eq!(e.price.price_micros, micros, "{price}");
        }
        for bad in [json!(-0.01), json!("abc"), json!(true), json!(1e12)] {
            assert_eq!(
                parse(&event(json!({ "totalMessagePrice": bad }))),
                Err(MalformedEvent::Invalid("totalMessagePrice"))
            );
        }
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        assert!(matches!(
            DeliveryEvent::parse("not json"),
            Err(MalformedEvent::NotJson(_))
        ));
        assert!(matches!(
            DeliveryEvent::parse("[1,2]"),
            Err(MalformedEvent::NotJson(_))
        ));
        assert_eq!(
            parse(&event(json!({ "eventType": "VOICE_COMPLETED" }))),
            Err(MalformedEvent::UnknownEventType("VOICE_COMPLETED".into()))
        );
        assert_eq!(
            parse(&event(json!({ "eventType": null }))),
            Err(MalformedEvent::Missing("eventType"))
        );
        assert_eq!(
            parse(&event(json!({ "messageId": "" }))),
            Err(MalformedEvent::Missing("messageId"))
        );
        assert_eq!(
            parse(&event(json!({ "eventTimestamp": null }))),
            Err(MalformedEvent::Missing("eventTimestamp"))
        );
        assert_eq!(
            parse(&event(json!({ "eventTimestamp": "soon" }))),
            Err(MalformedEvent::Invalid("eventTimestamp"))
        );
        assert_eq!(
            parse(&event(json!({ "context": "req-1" }))),
            Err(MalformedEvent::Invalid("context"))
        );
    }

    #[test]
    fn missing_is_final_follows_the_event_type() {
        let mut v = event(json!({ "eventType": "TEXT_QUEUED" }));
        v.as_object_mut().unwrap().remove("isFinal");
        assert!(!parse(&v).unwrap().is_final);
        let mut v = event(json!({ "eventType": "TEXT_BLOCKED" }));
        v.as_object_mut().unwrap().remove("isFinal");
        assert!(parse(&v).unwrap().is_final);
    }

    #[test]
    fn context_without_log_id_falls_back_to_the_message_id() {
        let e = parse(&event(json!({ "context": {"account": "bar"} }))).unwrap();
        assert_eq!(e.log_id, None);
        let e = parse(&event(json!({ "context": null }))).unwrap();
        assert_eq!(e.log_id, None);
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn on_any_text(text in any::<String>()) {
                let _ = DeliveryEvent::parse(&text);
            }

            #[test]
            fn on_any_field_values(
                ts in any::<i64>(),
                price in any::<f64>(),
                parts in any::<i64>(),
                event_type in "[A-Z_]{0,30}",
            ) {
                let v = json!({
                    "eventType": event_type,
                    "eventTimestamp": ts,
                    "messageId": "m",
                    "totalMessagePrice": price,
                    "totalMessageParts": parts,
                });
                let _ = DeliveryEvent::parse(&v.to_string());
            }

            /// A well-formed event with arbitrary values parses to exactly those values;
            /// prices arrive as JSON numbers or decimal strings and convert to the micro-dollar.
            #[test]
            fn valid_events_parse_to_their_values(
                kind_index in 0..EventKind::ALL.len(),
                is_final in proptest::option::of(any::<bool>()),
                ts in 1..i64::MAX,
                ts_as_text in any::<bool>(),
                message_id in "[^\\s]\\PC{0,60}",
                log_id in proptest::option::of("\\PC{1,60}"),
                parts in proptest::option::of(any::<u32>()),
                price in 0..=MAX_PRICE_MICROS,
                fee in 0..=MAX_PRICE_MICROS,
                price_as_text in any::<bool>(),
                carrier in "\\PC{0,200}",
            ) {
                let kind = EventKind::ALL[kind_index];
                let amount = |micros: u64| {
                    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
                    if price_as_text {
                        json!(text)
                    } else {
                        serde_json::from_str::<Value>(&text).unwrap()
                    }
                };
                let mut v = json!({
                    "eventType": kind.as_str(),
                    "eventTimestamp": if ts_as_text { json!(ts.to_string()) } else { json!(ts) },
                    "messageId": message_id,
                    "totalMessagePrice": amount(price),
                    "totalCarrierFee": amount(fee),
                    "carrierName": carrier,
                    "context": {"logId": log_id},
                });
                if let Some(f) = is_final {
                    v["isFinal"] = json!(f);
                }
                if let Some(p) = parts {
                    v["totalMessageParts"] = json!(p);
                }
                let e = parse(&v).unwrap();
                prop_assert_eq!(e.kind, kind);
                prop_assert_eq!(e.is_final, is_final.unwrap_or_else(|| kind.default_final()));
                prop_assert_eq!(e.event_ms, ts);
                prop_assert_eq!(&e.message_id, &message_id);
                prop_assert_eq!(e.log_id, log_id);
                prop_assert_eq!(e.parts, parts);
                prop_assert_eq!(e.price.price_micros, price);
                prop_assert_eq!(e.price.carrier_fee_micros, fee);
                let expected = (!carrier.trim().is_empty())
                    .then(|| carrier.chars().take(128).collect::<String>());
                prop_assert_eq!(e.carrier_name, expected);
            }
        }
    }
}
