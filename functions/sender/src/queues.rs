//! The two send queues and their dead-letter queues, as the sender sees them: where a
//! record came from, how to bring it back later (quiet hours, an attempt in doubt, a
//! transient fault, the deadline), where to put an invalid body.
//!
//! **Waiting without walking into the dead-letter queue** (DESIGN §6). Every receive counts
//! toward the queue's `maxReceiveCount`, and a record that must wait for a known time (the
//! quiet-hours window, the wait of an attempt in doubt) may be received many times before it
//! is due. So a record waits in place (its visibility extended) only on its first receive;
//! received again, it is acknowledged and a fresh copy of its body is enqueued with a delay
//! (at most SQS's 15 minutes, then it waits in place again). The copy starts at receive count
//! 0, so waiting never spends the retries that transient faults need; the log keeps the
//! record `deferred` with its time, and the request id keeps a copy from sending twice.

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use jiff::SignedDuration;
use sms_shared::Config;
use tracing::warn;

/// SQS caps a message's visibility timeout at 12 h; stay just under it.
pub const MAX_DELAY: SignedDuration = SignedDuration::from_secs(12 * 3600 - 60);

/// SQS caps a message's delivery delay at 15 minutes.
pub const MAX_MESSAGE_DELAY: SignedDuration = SignedDuration::from_secs(900);

/// What becomes of an SQS record after the sender is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Deleted by Lambda (not in `batchItemFailures`).
    Acknowledge,
    /// Reported in `batchItemFailures`: SQS delivers it again when its visibility ends.
    HandBack,
}

/// The receive count SQS reports for the record (1 when absent).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[derive(Debug, Clone)]
struct Route {
    name: String,
    url: String,
    dead_letter_url: Option<String>,
}

/// Queue URLs by queue name (the last part of a record's `eventSourceARN`).
#[derive(Debug, Clone)]
pub struct Queues {
    sqs: Client,
    routes: Vec<Route>,
}

fn name_of(url_or_arn: &str) -> &str {
    url_or_arn.rsplit(['/', ':']).next().unwrap_or(url_or_arn)
}

impl Queues {
    pub fn new(sqs: Client, config: &Config) -> Self {
        let pairs = [
            (
                &config.transactional_queue_url,
                &config.transactional_dlq_url,
            ),
            (
                &config.notifications_queue_url,
                &config.notifications_dlq_url,
            ),
        ];
        let routes = pairs
            .into_iter()
            .filter_map(|(url, dlq)| {
                url.as_ref().map(|url| Route {
                    name: name_of(url).to_owned(),
                    url: url.clone(),
                    dead_letter_url: dlq.clone(),
                })
            })
            .collect();
        Self { sqs, routes }
    }

    fn route(&self, record: &SqsMessage) -> Option<&Route> {
        let arn = record.event_source_arn.as_deref()?;
        let name = name_of(arn);
        self.routes.iter().find(|r| r.name == name)
    }

    /// Moves an invalid body to the dead-letter queue of the queue it came from, with the
    /// reason as a message attribute, so it is never silently dropped.
    pub async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
        let route = self.route(record).ok_or(QueueError::UnknownQueue)?;
        let dlq = route
            .dead_letter_url
            .as_deref()
            .ok_or(QueueError::NoDeadLetterQueue)?;
        let text = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| QueueError::Sqs(e.to_string()))
        };
        // SQS refuses empty bodies; keep a visible placeholder instead.
        let body = record
            .body
            .as_deref()
            .filter(|b| !b.is_empty())
            .unwrap_or("(empty body)");
        let mut attributes = vec![
            ("RejectReason", truncate(reason, 256)),
            ("SourceQueue", route.name.clone()),
            (
                "SourceMessageId",
                record.message_id.as_deref().unwrap_or("unknown").to_owned(),
            ),
        ];
        // Body and attributes count together against SQS's 256 KiB: a body near the limit
        // (it came from a queue with the same limit) keeps its bytes and loses the attributes
        // that do not fit, last first; the reason is logged either way.
        while body.len() + attributes_bytes(&attributes) > MAX_MESSAGE_BYTES {
            if let Some((name, _)) = attributes.pop() {
                warn!(
                    attribute = name,
                    reason, "dead letter too large for its attributes; dropped one"
                );
            }
        }
        let mut request = self.sqs.send_message().queue_url(dlq).message_body(body);
        for (name, value) in &attributes {
            request = request.message_attributes(*name, text(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| QueueError::Sqs(aws_sdk_sqs::Error::from(e).to_string()))?;
        Ok(())
    }

    /// Brings the record back in `by` (see the module documentation): on its first receive
    /// it is handed back with its visibility extended; else a copy is enqueued with a delay
    /// and the record is acknowledged. If SQS refuses, it is handed back as it is (it comes
    /// back after the queue's visibility timeout).
    pub async fn later(&self, record: &SqsMessage, by: SignedDuration) -> Disposition {
        if receive_count(record) <= 1 {
            if let Err(e) = self.delay(record, by).await {
                warn!(error = %e, "could not extend the visibility of a waiting record");
            }
            return Disposition::HandBack;
        }
        match self.requeue(record, by).await {
            Ok(()) => Disposition::Acknowledge,
            Err(e) => {
                warn!(error = %e, "could not enqueue the copy of a waiting record");
                Disposition::HandBack
            }
        }
    }

    /// Enqueues the record's body again on its queue, delivered in `by` (at most
    /// [`MAX_MESSAGE_DELAY`]).
    async fn requeue(&self, record: &SqsMessage, by: SignedDuration) -> Result<(), QueueError> {
        let route = self.route(record).ok_or(QueueError::UnknownQueue)?;
        let body = record.body.as_deref().ok_or(QueueError::NoBody)?;
        let seconds = whole_seconds(by.clamp(SignedDuration::ZERO, MAX_MESSAGE_DELAY));
        self.sqs
            .send_message()
            .queue_url(&route.url)
            .message_body(body)
            .delay_seconds(i32::try_from(seconds).unwrap_or(0))
            .send()
            .await
            .map_err(|e| QueueError::Sqs(aws_sdk_sqs::Error::from(e).to_string()))?;
        Ok(())
    }

    /// Hands the record back to come again in `by` (a transient fault, the deadline).
    pub async fn retry_in(&self, record: &SqsMessage, by: SignedDuration) -> Disposition {
        if let Err(e) = self.delay(record, by).await {
            warn!(error = %e, "could not set the visibility of a retried record");
        }
        Disposition::HandBack
    }

    /// Hides the record until `by` from now (at most [`MAX_DELAY`]); it comes back then and
    /// is decided again.
    pub async fn delay(&self, record: &SqsMessage, by: SignedDuration) -> Result<(), QueueError> {
        let route = self.route(record).ok_or(QueueError::UnknownQueue)?;
        let handle = record
            .receipt_handle
            .as_deref()
            .ok_or(QueueError::NoReceiptHandle)?;
        let seconds = whole_seconds(by.clamp(SignedDuration::ZERO, MAX_DELAY));
        self.sqs
            .change_message_visibility()
            .queue_url(&route.url)
            .receipt_handle(handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| QueueError::Sqs(aws_sdk_sqs::Error::from(e).to_string()))?;
        Ok(())
    }
}

/// Largest SQS message: body and message attributes (names, types and values) together.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What string attributes add to a message's size.
fn attributes_bytes(attributes: &[(&str, String)]) -> usize {
    attributes
        .iter()
        .map(|(name, value)| name.len() + "String".len() + value.len())
        .sum()
}

/// SQS counts whole seconds: round up, so a record never comes back before its time (and
/// waits again, spending a receive).
fn whole_seconds(d: SignedDuration) -> i64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("record comes from a queue the configuration does not name")]
    UnknownQueue,
    #[error("no dead-letter queue configured for the record's queue")]
    NoDeadLetterQueue,
    #[error("record has no receipt handle")]
    NoReceiptHandle,
    #[error("record has no body")]
    NoBody,
    #[error("SQS request failed: {0}")]
    Sqs(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_count_name_type_and_value() {
        let attributes = [("RejectReason", "bad".to_owned())];
        assert_eq!(attributes_bytes(&attributes), 12 + 6 + 3);
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(SignedDuration::ZERO), 0);
        assert_eq!(whole_seconds(SignedDuration::from_millis(1)), 1);
        assert_eq!(whole_seconds(SignedDuration::from_millis(1_600)), 2);
        assert_eq!(whole_seconds(SignedDuration::from_secs(3)), 3);
    }

    #[test]
    fn queue_names_come_from_urls_and_arns() {
        assert_eq!(
            name_of("arn:aws:sqs:us-east-1:123456789012:notifications"),
            "notifications"
        );
        assert_eq!(
            name_of("http://127.0.0.1:5005/123456789012/notifications"),
            "notifications"
        );
        assert_eq!(name_of("plain"), "plain");
    }
}
