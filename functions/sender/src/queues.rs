//! The two send queues and their dead-letter queues, as the sender sees them: where a
//! record came from, how to hide it until quiet hours end, where to put an invalid body.

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use jiff::SignedDuration;
use sms_shared::Config;

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
        self.sqs
            .send_message()
            .queue_url(dlq)
            // SQS refuses empty bodies; keep a visible placeholder instead.
            .message_body(
                record
                    .body
                    .as_deref()
                    .filter(|b| !b.is_empty())
                    .unwrap_or("(empty body)"),
            )
            .message_attributes("RejectReason", text(&truncate(reason, 256))?)
            .message_attributes("SourceQueue", text(&route.name)?)
            .message_attributes(
                "SourceMessageId",
                text(record.message_id.as_deref().unwrap_or("unknown"))?,
            )
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
