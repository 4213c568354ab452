//! Delivery receipts as End User Messaging publishes them to SNS (DESIGN §7, §8): the SMS event
//! record of a configuration-set event destination, parsed and validated. Never panics,
//! whatever the input (fuzzed: `fuzz/fuzz_targets/delivery_event.rs`). Applying a receipt to
//! the log is `sms_shared::store::receipts`; the function is `delivery-status`.

use crate::settings::parse_usd_micros;
use crate::status::LogStatus;
use serde::Deserialize;
use serde_json::Value;

/// `Context` key under which the sender attaches the log id to `SendTextMessage`, so the
/// receipt names its log record.
pub const CONTEXT_LOG_ID: &str = "logId";

/// Largest price of one message we believe, in USD (a guard against garbage, not a cap).
const MAX_PRICE_MICROS: u64 = 1_000_000_000;

/// SMS event types of End User Messaging (configuration-set event destinations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Delivered,
    Successful,
    Queued,
    Pending,
    Blocked,
    TtlExpired,
    CarrierUnreachable,
    Invalid,
    InvalidMessage,
    CarrierBlocked,
    Unreachable,
    Spam,
    Unknown,
    ProtectBlocked,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::Delivered,
        EventKind::Successful,
        EventKind::Queued,
        EventKind::Pending,
        EventKind::Blocked,
        EventKind::TtlExpired,
        EventKind::CarrierUnreachable,
        EventKind::Invalid,
        EventKind::InvalidMessage,
        EventKind::CarrierBlocked,
        EventKind::Unreachable,
        EventKind::Spam,
        EventKind::Unknown,
        EventKind::ProtectBlocked,
    ];

    /// The `eventType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Delivered => "TEXT_DELIVERED",
            EventKind::Successful => "TEXT_SUCCESSFUL",
            EventKind::Queued => "TEXT_QUEUED",
            EventKind::Pending => "TEXT_PENDING",
            EventKind::Blocked => "TEXT_BLOCKED",
            EventKind::TtlExpired => "TEXT_TTL_EXPIRED",
            EventKind::CarrierUnreachable => "TEXT_CARRIER_UNREACHABLE",
            EventKind::Invalid => "TEXT_INVALID",
            EventKind::InvalidMessage => "TEXT_INVALID_MESSAGE",
            EventKind::CarrierBlocked => "TEXT_CARRIER_BLOCKED",
            EventKind::Unreachable => "TEXT_UNREACHABLE",
            EventKind::Spam => "TEXT_SPAM",
            EventKind::Unknown => "TEXT_UNKNOWN",
            EventKind::ProtectBlocked => "TEXT_PROTECT_BLOCKED",
        }
    }

    pub fn parse(event_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == event_type)
    }

    /// The log status the event means (§8).
    pub fn status(self) -> LogStatus {
        match self {
            EventKind::Delivered => LogStatus::Delivered,
            EventKind::Successful | EventKind::Queued | EventKind::Pending => LogStatus::Sent,
            _ => LogStatus::Undelivered,
        }
    }

    /// Whether the event says the *number* cannot take messages, rather than this message or
    /// this moment: `TEXT_INVALID` (not a valid number), `TEXT_UNREACHABLE` (the carrier
    /// cannot reach the handset: deactivated or out of service) and `TEXT_BLOCKED` (the
    /// handset or carrier blocks messages to this recipient).
    ///
    /// Not hard: `TEXT_CARRIER_UNREACHABLE` (AWS documents it as a temporary carrier network
    /// error), `TEXT_TTL_EXPIRED` (a phone off for a while), `TEXT_UNKNOWN` (may be temporary),
    /// and the content verdicts `TEXT_SPAM`, `TEXT_CARRIER_BLOCKED`, `TEXT_PROTECT_BLOCKED`,
    /// `TEXT_INVALID_MESSAGE`, which say nothing about the number.
    pub fn is_hard_failure(self) -> bool {
        matches!(
            self,
            EventKind::Invalid | EventKind::Unreachable | EventKind::Blocked
        )
    }

    /// `isFinal` when an event lacks it: failures and deliveries are final, progress is not.
    pub fn default_final(self) -> bool {
        !matches!(self, EventKind::Queued | EventKind::Pending)
    }

    /// Lower-case name for metric dimensions and log reasons (`text_blocked`).
    pub fn reason(self) -> &'static str {
        match self {
            EventKind::Delivered => "text_delivered",
            EventKind::Successful => "text_successful",
            EventKind::Queued => "text_queued",
            EventKind::Pending => "text_pending",
            EventKind::Blocked => "text_blocked",
            EventKind::TtlExpired => "text_ttl_expired",
            EventKind::CarrierUnreachable => "text_carrier_unreachable",
            EventKind::Invalid => "text_invalid",
            EventKind::InvalidMessage => "text_invalid_message",
            EventKind::CarrierBlocked => "text_carrier_blocked",
            EventKind::Unreachable => "text_unreachable",
            EventKind::Spam => "text_spam",
            EventKind::Unknown => "text_unknown",
            EventKind::ProtectBlocked => "text_protect_blocked",
        }
    }
}

/// Cost of one provider message, micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub price_micros: u64,
    pub carrier_fee_micros: u64,
}

impl Price {
    pub fn total_micros(self) -> u64 {
        self.price_micros.saturating_add(self.carrier_fee_micros)
    }
}

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

    #[test]
    fn event_types_map_to_statuses_as_in_the_design() {
        use EventKind::*;
        assert_eq!(Delivered.status(), LogStatus::Delivered);
        for kind in [Successful, Queued, Pending] {
            assert_eq!(kind.status(), LogStatus::Sent, "{kind:?}");
        }
        for kind in [
            Blocked,
            TtlExpired,
            CarrierUnreachable,
            Invalid,
            InvalidMessage,
            CarrierBlocked,
            Unreachable,
            Spam,
            Unknown,
            ProtectBlocked,
        ] {
            assert_eq!(kind.status(), LogStatus::Undelivered, "{kind:?}");
        }
    }

    #[test]
    fn event_type_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.reason(), kind.as_str().to_ascii_lowercase());
        }
        assert_eq!(EventKind::parse("text_delivered"), None);
        assert_eq!(EventKind::parse("VOICE_COMPLETED"), None);
    }

    #[test]
    fn only_number_level_failures_are_hard() {
        let hard: Vec<_> = EventKind::ALL
            .into_iter()
            .filter(|k| k.is_hard_failure())
            .collect();
        assert_eq!(
            hard,
            [
                EventKind::Blocked,
                EventKind::Invalid,
                EventKind::Unreachable
            ]
        );
    }

    #[test]
    fn progress_events_default_to_not_final() {
        assert!(!EventKind::Queued.default_final());
        assert!(!EventKind::Pending.default_final());
        assert!(EventKind::Delivered.default_final());
        assert!(EventKind::Blocked.default_final());
    }
}
