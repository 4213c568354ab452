//! Inbound SMS in the log table (DESIGN §8, §9): the processed-once marker of each inbound
//! message (`inbound#<inboundMessageId>`), and the id of our reply to it
//! (`reply#<inboundMessageId>`).
//!
//! A reply is one more kind of log record (`recordType = keyword_reply`, no `kind`), sent by
//! the one send protocol ([`crate::outbound`], [`super::LogStore::claim_reply`]). Its id is
//! derived from the inbound message id, so however often an inbound message is delivered, one
//! reply is claimed, and a claimed reply that was sent is never sent again.

use super::counters::number;
use super::schema::LOG_KEY;
use super::{LogStore, StoreError, written};
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;

/// Most characters of an inbound body kept in its marker.
pub const MAX_STORED_BODY_CHARS: usize = 1600;

/// Log id of the processed-once marker of an inbound message.
pub fn inbound_log_id(inbound_message_id: &str) -> String {
    format!("inbound#{inbound_message_id}")
}

/// Log id of the reply to an inbound message.
pub fn reply_log_id(inbound_message_id: &str) -> String {
    format!("reply#{inbound_message_id}")
}

/// What the marker of a processed inbound message records.
#[derive(Debug, Clone, Copy)]
pub struct InboundRecord<'a> {
    pub inbound_message_id: &'a str,
    /// The sender's full E.164 number.
    pub phone_number: &'a str,
    pub destination_number: Option<&'a str>,
    pub keyword: Option<&'a str>,
    pub body: &'a str,
    /// `opt_out`, `opt_in`, `help`, `other`.
    pub intent: &'a str,
    /// Users whose consent changed.
    pub users_changed: u32,
    /// SNS publish time, Unix ms.
    pub received_at_ms: i64,
    /// Our reply's log id, when one was due.
    pub reply_id: Option<&'a str>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Port of `inbound-sms` (declared beside the store that implements it): the processed-once
/// marker of each inbound message.
pub trait InboundMarkers: Send + Sync {
    /// Whether the message was processed before (its marker exists).
    fn inbound_processed(
        &self,
        inbound_message_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes the marker; `false` when another delivery wrote it first.
    fn record_inbound(
        &self,
        record: &InboundRecord<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl InboundMarkers for LogStore {
    /// Whether the inbound message was already processed (its marker exists).
    async fn inbound_processed(&self, inbound_message_id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(inbound_log_id(inbound_message_id)))
            .consistent_read(true)
            .projection_expression("#id")
            .expression_attribute_names("#id", LOG_KEY)
            .send()
            .await?;
        Ok(out.item.is_some_and(|item| !item.is_empty()))
    }

    /// Writes the processed-once marker. Returns `false` when another delivery of the same
    /// message wrote it first (nothing changed).
    async fn record_inbound(
        &self,
        record: &InboundRecord<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let body: String = record.body.chars().take(MAX_STORED_BODY_CHARS).collect();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(LOG_KEY, s(inbound_log_id(record.inbound_message_id)))
            .item("recordType", s("inbound_sms"))
            .item("inboundMessageId", s(record.inbound_message_id))
            .item("phoneNumber", s(record.phone_number))
            .item("body", s(body))
            .item("intent", s(record.intent))
            .item("usersChanged", number(u64::from(record.users_changed)))
            .item("receivedAtMs", n(record.received_at_ms))
            .item("createdAtMs", n(now.as_millisecond()))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", LOG_KEY);
        if let Some(destination) = record.destination_number {
            request = request.item("destinationNumber", s(destination));
        }
        if let Some(keyword) = record.keyword.filter(|k| !k.is_empty()) {
            request = request.item("keyword", s(keyword));
        }
        if let Some(reply) = record.reply_id {
            request = request.item("replyId", s(reply));
        }
        Ok(written(request.send().await)?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_from_the_inbound_message_id() {
        assert_eq!(inbound_log_id("abc"), "inbound#abc");
        assert_eq!(reply_log_id("abc"), "reply#abc");
    }
}
