//! Inbound SMS as End User Messaging publishes them to the two-way SNS topic (DESIGN §8):
//! parsed and validated, never panicking whatever the input (fuzzed:
//! `fuzz/fuzz_targets/inbound_event.rs`). What to do with one (keywords, consent, replies) is
//! the `inbound-sms` function.

use crate::phone::E164;
use serde::Deserialize;
use serde_json::Value;

/// Longest inbound message id accepted (AWS uses UUIDs).
const MAX_ID_CHARS: usize = 128;

/// Why an SNS record is not a usable inbound message. Logged and skipped, never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedInbound {
    #[error("message is not a JSON object: {0}")]
    NotJson(String),
    #[error("required field `{0}` is missing or empty")]
    Missing(&'static str),
    #[error("field `{0}` is invalid")]
    Invalid(&'static str),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInbound {
    origination_number: Option<String>,
    destination_number: Option<String>,
    message_keyword: Option<String>,
    message_body: Option<Value>,
    inbound_message_id: Option<String>,
    previous_published_message_id: Option<String>,
}

/// A validated inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub from: E164,
    pub to: Option<String>,
    pub keyword: Option<String>,
    pub body: String,
    pub inbound_message_id: String,
    pub previous_published_message_id: Option<String>,
}

impl InboundMessage {
    /// Parses the SNS message text. Never panics, whatever the input.
    pub fn parse(message: &str) -> Result<Self, MalformedInbound> {
        let raw: RawInbound =
            serde_json::from_str(message).map_err(|e| MalformedInbound::NotJson(e.to_string()))?;
        let inbound_message_id = raw
            .inbound_message_id
            .filter(|id| !id.trim().is_empty())
            .ok_or(MalformedInbound::Missing("inboundMessageId"))?;
        if inbound_message_id.chars().count() > MAX_ID_CHARS
            || inbound_message_id.chars().any(char::is_control)
        {
            return Err(MalformedInbound::Invalid("inboundMessageId"));
        }
        let origination = raw
            .origination_number
            .filter(|n| !n.trim().is_empty())
            .ok_or(MalformedInbound::Missing("originationNumber"))?;
        let from = E164::parse(&origination)
            .map_err(|_| MalformedInbound::Invalid("originationNumber"))?;
        let body = match raw.message_body {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(_) => return Err(MalformedInbound::Invalid("messageBody")),
        };
        Ok(Self {
            from,
            to: raw.destination_number.filter(|n| !n.is_empty()),
            keyword: raw.message_keyword.filter(|k| !k.is_empty()),
            body,
            inbound_message_id,
            previous_published_message_id: raw.previous_published_message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_documented_payload_parses() {
        let m = InboundMessage::parse(
            &json!({
                "originationNumber": "+14255550182",
                "destinationNumber": "+12125550101",
                "messageKeyword": "JOIN",
                "messageBody": "EXAMPLE",
                "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84",
                "previousPublishedMessageId": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            })
            .to_string(),
        )
        .unwrap();
        assert_eq!(m.from.as_str(), "+14255550182");
        assert_eq!(m.keyword.as_deref(), Some("JOIN"));
        assert_eq!(m.body, "EXAMPLE");
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong() {
        let base = json!({"originationNumber": "+14255550182", "inboundMessageId": "i-1", "messageBody": "STOP"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            InboundMessage::parse(&b.to_string())
        };
        assert!(with("messageBody", json!("STOP")).is_ok());
        assert_eq!(with("messageBody", json!(null)).unwrap().body, "");
        assert_eq!(
            with("inboundMessageId", json!("")),
            Err(MalformedInbound::Missing("inboundMessageId"))
        );
        assert_eq!(
            with("originationNumber", json!(null)),
            Err(MalformedInbound::Missing("originationNumber"))
        );
        assert_eq!(
            with("originationNumber", json!("hello")),
            Err(MalformedInbound::Invalid("originationNumber"))
        );
        assert_eq!(
            with("messageBody", json!(42)),
            Err(MalformedInbound::Invalid("messageBody"))
        );
        assert!(matches!(
            InboundMessage::parse("STOP"),
            Err(MalformedInbound::NotJson(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = InboundMessage::parse(&text);
        }

        /// A well-formed message with arbitrary text parses to exactly that text; the sender's
        /// number comes out in E.164 whatever its formatting.
        #[test]
        fn valid_messages_parse_to_their_values(
            line in 0u32..10_000,
            formatted in any::<bool>(),
            body in proptest::option::of(any::<String>()),
            keyword in proptest::option::of("\\PC{0,20}"),
            id in "[^\\s\\p{Cc}][^\\p{Cc}]{0,127}",
            to in proptest::option::of("\\PC{0,20}"),
            previous in proptest::option::of(any::<String>()),
        ) {
            let number = format!("+1415555{line:04}");
            let origination = if formatted {
                format!("(415) 555-{line:04}")
            } else {
                number.clone()
            };
            let m = InboundMessage::parse(
                &json!({
                    "originationNumber": origination,
                    "destinationNumber": to,
                    "messageKeyword": keyword,
                    "messageBody": body,
                    "inboundMessageId": id,
                    "previousPublishedMessageId": previous,
                })
                .to_string(),
            )
            .unwrap();
            prop_assert_eq!(m.from.as_str(), number.as_str());
            prop_assert_eq!(m.body, body.unwrap_or_default());
            prop_assert_eq!(m.keyword, keyword.filter(|k| !k.is_empty()));
            prop_assert_eq!(m.to, to.filter(|t| !t.is_empty()));
            prop_assert_eq!(m.inbound_message_id, id);
            prop_assert_eq!(m.previous_published_message_id, previous);
        }
    }
}
