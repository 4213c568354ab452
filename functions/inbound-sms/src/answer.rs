//! What an invocation answers: one entry per SNS record saying what the reply did.
//!
//! SNS invokes the function asynchronously and Lambda discards the answer, so nothing in
//! production reads it; it is for whoever invokes the function by hand (`cargo lambda invoke`,
//! `make send`), who otherwise got `null`. Numbers appear masked (`+1415***0123`), as in logs.

use crate::{InboundMessage, InboundOutcome};
use aws_lambda_events::event::sns::SnsEvent;
use serde_json::{Value, json};

/// What the answer says about each record besides its outcome: read before the event is
/// handed to the handler.
#[derive(Debug, Clone, Default)]
pub struct RecordLabel {
    inbound_message_id: Option<String>,
    from: Option<String>,
}

/// The labels of an event's records, in order.
pub fn labels(event: &SnsEvent) -> Vec<RecordLabel> {
    event
        .records
        .iter()
        .map(|record| match InboundMessage::parse(&record.sns.message) {
            Ok(message) => RecordLabel {
                inbound_message_id: Some(message.inbound_message_id),
                from: Some(message.from.masked()),
            },
            Err(_) => RecordLabel::default(),
        })
        .collect()
}

/// `{"records": [{"inbound_message_id", "from" (masked), "outcome", ...}]}`: `processed` with
/// the intent (`opt_out`, `opt_in`, `help`, `other`), how many users' consent changed and
/// whether this invocation sent the reply; `duplicate` (processed before) or `malformed`.
pub fn answer(labels: &[RecordLabel], outcomes: &[InboundOutcome]) -> Value {
    let records: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| {
            let label = labels.get(i).cloned().unwrap_or_default();
            let mut entry = match outcome {
                InboundOutcome::Processed {
                    intent,
                    users_changed,
                    replied,
                } => json!({
                    "outcome": "processed",
                    "intent": intent.as_str(),
                    "users_changed": users_changed,
                    "replied": replied,
                }),
                InboundOutcome::Duplicate => json!({"outcome": "duplicate"}),
                InboundOutcome::Malformed => json!({"outcome": "malformed"}),
            };
            if let Some(id) = label.inbound_message_id {
                entry["inbound_message_id"] = json!(id);
            }
            if let Some(from) = label.from {
                entry["from"] = json!(from);
            }
            entry
        })
        .collect();
    json!({ "records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sms_shared::keywords::Intent;

    fn sample() -> SnsEvent {
        let text = include_str!("../../../events/sns-inbound-stop.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn each_record_says_what_the_reply_did() {
        let event = sample();
        let value = answer(
            &labels(&event),
            &[InboundOutcome::Processed {
                intent: Intent::OptOut,
                users_changed: 1,
                replied: true,
            }],
        );
        assert_eq!(
            value,
            json!({"records": [{
                "outcome": "processed",
                "intent": "opt_out",
                "users_changed": 1,
                "replied": true,
                "inbound_message_id": "c0ffee00-0000-4000-8000-000000000000",
                "from": "+1415***0123",
            }]})
        );
        let value = answer(&labels(&event), &[InboundOutcome::Duplicate]);
        assert_eq!(value["records"][0]["outcome"], "duplicate");
    }

    #[test]
    fn the_answer_never_holds_a_full_number() {
        let event = sample();
        let text = answer(&labels(&event), &[InboundOutcome::Duplicate]).to_string();
        assert!(!text.contains("+14155550123"), "{text}");
    }
}
