//! The sample events of `events/`, for handler tests.

use aws_lambda_events::event::sns::SnsEvent;
use serde_json::{Map, Value};

/// `events/<file>` as an SNS event, its (JSON) message edited by `edit`.
pub fn sns_event(file: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> SnsEvent {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut event: SnsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut message: Value = serde_json::from_str(&event.records[0].sns.message)
        .unwrap_or_else(|e| panic!("{path}: the message is not JSON: {e}"));
    edit(
        message
            .as_object_mut()
            .expect("the message is a JSON object"),
    );
    event.records[0].sns.message = message.to_string();
    event
}
