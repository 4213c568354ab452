//! What an invocation answers: one entry per SNS record saying what the receipt did.
//!
//! SNS invokes the function asynchronously and Lambda discards the answer, so nothing in
//! production reads it; it is for whoever invokes the function by hand (`cargo lambda invoke`,
//! `make send`), who otherwise got `null` and had to read the log to learn that a receipt
//! found no record. It holds log ids and statuses, never a phone number.

use crate::{DeliveryEvent, RecordOutcome};
use aws_lambda_events::event::sns::SnsEvent;
use serde_json::{Value, json};

/// What the answer says about each record besides its outcome: read before the event is
/// handed to the handler.
#[derive(Debug, Clone, Default)]
pub struct RecordLabel {
    sns_message_id: String,
    log_id: Option<String>,
}

/// The labels of an event's records, in order.
pub fn labels(event: &SnsEvent) -> Vec<RecordLabel> {
    event
        .records
        .iter()
        .map(|record| RecordLabel {
            sns_message_id: record.sns.message_id.clone(),
            log_id: DeliveryEvent::parse(&record.sns.message)
                .ok()
                .and_then(|e| e.log_id),
        })
        .collect()
}

/// `{"records": [{"sns_message_id", "log_id", "outcome", ...}]}`: `applied` with the event
/// type and the status it set, `ignored` with why (an older event, a final status kept, a
/// record never sent), `no_record`, or `malformed`.
pub fn answer(labels: &[RecordLabel], outcomes: &[RecordOutcome]) -> Value {
    let records: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| {
            let label = labels.get(i).cloned().unwrap_or_default();
            let mut entry = match outcome {
                RecordOutcome::Applied(kind) => json!({
                    "outcome": "applied",
                    "event_type": kind.as_str(),
                    "status": kind.status().as_str(),
                }),
                RecordOutcome::Ignored(reason) => json!({"outcome": "ignored", "reason": reason}),
                RecordOutcome::NoRecord => json!({"outcome": "no_record"}),
                RecordOutcome::Malformed => json!({"outcome": "malformed"}),
            };
            entry["sns_message_id"] = json!(label.sns_message_id);
            if let Some(log_id) = label.log_id {
                entry["log_id"] = json!(log_id);
            }
            entry
        })
        .collect();
    json!({ "records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sms_shared::store::receipts::EventKind;

    fn sample() -> SnsEvent {
        let text = include_str!("../../../events/sns-delivery-delivered.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn each_record_says_what_its_receipt_did() {
        let event = sample();
        let labels = labels(&event);
        let value = answer(&labels, &[RecordOutcome::Applied(EventKind::Delivered)]);
        assert_eq!(
            value,
            json!({"records": [{
                "outcome": "applied",
                "event_type": "TEXT_DELIVERED",
                "status": "delivered",
                "sns_message_id": "5b6f0c1e-1111-4a00-9000-000000000003",
                "log_id": "battle-invite-81723",
            }]})
        );
        let value = answer(&labels, &[RecordOutcome::NoRecord]);
        assert_eq!(value["records"][0]["outcome"], "no_record");
        assert_eq!(value["records"][0]["log_id"], "battle-invite-81723");
        let value = answer(&labels, &[RecordOutcome::Ignored("record_not_sent")]);
        assert_eq!(value["records"][0]["reason"], "record_not_sent");
    }

    #[test]
    fn the_answer_never_holds_a_phone_number() {
        let event = sample();
        let text = answer(&labels(&event), &[RecordOutcome::NoRecord]).to_string();
        assert!(!text.contains("+1415"), "{text}");
        assert!(!text.contains("5550123"), "{text}");
    }
}
