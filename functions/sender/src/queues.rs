//! The two send queues and their dead-letter queues, as the sender sees them: where a
//! record came from, how to hide it until quiet hours end, where to put an invalid body.

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use jiff::SignedDuration;
use sms_shared::Config;
use tracing::warn;

/// SQS caps a message's visibility timeout at 12 h; stay just under it.
pub const MAX_DELAY: SignedDuration = SignedDuration::from_secs(12 * 3600 - 60);

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

    /// Hides the record until `by` from now (at most [`MAX_DELAY`]); it comes back then and
    /// is decided again.
    pub async fn delay(&self, record: &SqsMessage, by: SignedDuration) -> Result<(), QueueError> {
        let route = self.route(record).ok_or(QueueError::UnknownQueue)?;
        let handle = record
            .receipt_handle
            .as_deref()
            .ok_or(QueueError::NoReceiptHandle)?;
        let seconds = by.clamp(SignedDuration::ZERO, MAX_DELAY).as_secs();
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
