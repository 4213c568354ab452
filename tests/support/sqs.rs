//! SQS as Lambda's event source mapping sees it: send bodies to a moto queue, receive them
//! (real receipt handles, so visibility changes work) and wrap them as an `SqsEvent`.

use crate::TestEnv;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use std::collections::HashMap;

/// ARN of a queue, as `eventSourceARN` carries it.
pub async fn queue_arn(env: &TestEnv, queue_url: &str) -> String {
    env.sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue has an ARN")
}

/// Sends each body to the queue.
pub async fn send_bodies(env: &TestEnv, queue_url: &str, bodies: &[String]) {
    for body in bodies {
        env.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage");
    }
}

/// Receives up to `max` (≤ 10) visible messages and wraps them as one Lambda event.
pub async fn receive_event(env: &TestEnv, queue_url: &str, max: i32) -> SqsEvent {
    receive_event_waiting(env, queue_url, max, 0).await
}

/// [`receive_event`], waiting up to `wait_seconds` (≤ 20) for a message to arrive (SQS's long
/// poll: a delayed message, one whose visibility is about to run out).
pub async fn receive_event_waiting(
    env: &TestEnv,
    queue_url: &str,
    max: i32,
    wait_seconds: i32,
) -> SqsEvent {
    let arn = queue_arn(env, queue_url).await;
    let out = env
        .sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("ReceiveMessage");
    let mut event = SqsEvent::default();
    for m in out.messages.unwrap_or_default() {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id;
        record.receipt_handle = m.receipt_handle;
        record.body = m.body;
        record.attributes = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect::<HashMap<_, _>>();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(arn.clone());
        record.aws_region = Some(crate::TEST_REGION.into());
        event.records.push(record);
    }
    event
}

/// What SQS does when the visibility of the records of `event` runs out (however long it
/// was set): they are visible again now, and their next receive counts one more.
pub async fn make_visible(env: &TestEnv, queue_url: &str, event: &SqsEvent) {
    for record in &event.records {
        let handle = record.receipt_handle.as_deref().expect("a receipt handle");
        env.sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await
            .expect("ChangeMessageVisibility");
    }
}

/// Deletes received messages (what Lambda does with the records a function acknowledged).
pub async fn delete_records<'a>(
    env: &TestEnv,
    queue_url: &str,
    records: impl IntoIterator<Item = &'a SqsMessage>,
) {
    for record in records {
        let handle = record.receipt_handle.as_deref().expect("a receipt handle");
        env.sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(handle)
            .send()
            .await
            .expect("DeleteMessage");
    }
}

/// Sends the bodies and receives them back as events of at most 10 records.
pub async fn deliver(env: &TestEnv, queue_url: &str, bodies: &[String]) -> Vec<SqsEvent> {
    send_bodies(env, queue_url, bodies).await;
    let mut events = Vec::new();
    let mut received = 0;
    while received < bodies.len() {
        let event = receive_event(env, queue_url, 10).await;
        assert!(
            !event.records.is_empty(),
            "sent messages must be receivable"
        );
        received += event.records.len();
        events.push(event);
    }
    events
}

/// A message on a dead-letter queue, with its attributes.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub body: String,
    pub attributes: HashMap<String, String>,
}

/// Everything currently visible on a queue (for dead-letter checks).
pub async fn drain(env: &TestEnv, queue_url: &str) -> Vec<DeadLetter> {
    let mut all = Vec::new();
    loop {
        let out = env
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for m in messages {
            all.push(DeadLetter {
                body: m.body.unwrap_or_default(),
                attributes: m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                    .collect(),
            });
            if let Some(handle) = m.receipt_handle {
                env.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }
}

/// The body of the first record of an `events/*.json` SQS event.
pub fn event_body(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    event.records[0]
        .body
        .clone()
        .expect("event record has a body")
}
