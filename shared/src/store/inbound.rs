//! Inbound SMS in the log table (DESIGN §8, §9): the processed-once marker of each inbound
//! message (`inbound#<inboundMessageId>`) and the log record of our reply to it
//! (`reply#<inboundMessageId>`).
//!
//! Reply records have the attributes delivery receipts need (`status`, `phoneNumber`,
//! `providerMessageId`, `statusHistory`, ...) and `recordType = keyword_reply`, but no `kind`:
//! they are not send requests, so [`super::LogRecord`] does not describe them (read them raw).
//! The reply id is derived from the inbound message id, so however often an inbound message is
//! delivered, one reply is claimed, and a claimed reply that was sent is never sent again.

use super::counters::number;
use super::schema::LOG_KEY;
use super::{LogStatus, LogStore, StoreError, condition_failed};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

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

/// A reply about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct NewReply<'a> {
    pub id: &'a str,
    pub inbound_message_id: &'a str,
    pub phone_number: &'a str,
    pub body: &'a str,
    pub intent: &'a str,
}

/// The answer to a reply claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyClaim {
    /// This invocation sends the reply; finish with this token.
    Claimed { token: String },
    /// The reply already reached an outcome (this status).
    Done(LogStatus),
    /// Another invocation is sending it right now.
    Busy,
}

/// How a claimed reply ends.
#[derive(Debug, Clone, Copy)]
pub enum ReplyFinish<'a> {
    Sent {
        provider_message_id: &'a str,
    },
    /// The provider refused it for good (opted out, invalid): never retried.
    Failed {
        error_code: &'a str,
    },
    /// A transient fault: the next delivery of the inbound message may claim it again.
    Retry {
        error_code: &'a str,
    },
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn history(status: LogStatus, now: Timestamp, reason: Option<&str>) -> AttributeValue {
    let mut entry = HashMap::from([
        ("status".to_owned(), s(status.as_str())),
        ("atMs".to_owned(), n(now.as_millisecond())),
    ]);
    if let Some(reason) = reason {
        entry.insert("reason".to_owned(), s(reason));
    }
    AttributeValue::L(vec![AttributeValue::M(entry)])
}

fn token() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&Timestamp::now().as_nanosecond().to_le_bytes()[..8]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LogStore {
    /// Whether the inbound message was already processed (its marker exists).
    pub async fn inbound_processed(&self, inbound_message_id: &str) -> Result<bool, StoreError> {
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
    pub async fn record_inbound(
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
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Claims the reply `reply.id` for `lease`: creates it, or takes over one whose previous
    /// claim ended without an outcome (lease over, or released for retry).
    pub async fn claim_reply(
        &self,
        reply: &NewReply<'_>,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<ReplyClaim, StoreError> {
        let token = token();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(reply.id))
            .update_expression(
                "SET #status = :pending, recordType = :type, #class = :class, intent = :intent, \
                 inboundMessageId = :inbound, phoneNumber = :phone, body = :body, \
                 createdAtMs = if_not_exists(createdAtMs, :now), updatedAtMs = :now, \
                 leaseUntilMs = :lease, claimToken = :token, \
                 attempts = if_not_exists(attempts, :zero) + :one, \
                 statusHistory = list_append(if_not_exists(statusHistory, :empty), :change)",
            )
            .condition_expression(
                "attribute_not_exists(#id) OR (#status IN (:pending, :retry) AND leaseUntilMs < :now)",
            )
            .expression_attribute_names("#id", LOG_KEY)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#class", "class")
            .expression_attribute_values(":pending", s(LogStatus::Pending.as_str()))
            .expression_attribute_values(":retry", s(LogStatus::Retry.as_str()))
            .expression_attribute_values(":type", s("keyword_reply"))
            .expression_attribute_values(":class", s("transactional"))
            .expression_attribute_values(":intent", s(reply.intent))
            .expression_attribute_values(":inbound", s(reply.inbound_message_id))
            .expression_attribute_values(":phone", s(reply.phone_number))
            .expression_attribute_values(":body", s(reply.body))
            .expression_attribute_values(":now", n(now.as_millisecond()))
            .expression_attribute_values(":lease", n((now + lease).as_millisecond()))
            .expression_attribute_values(":token", s(token.clone()))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":change", history(LogStatus::Pending, now, None))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(ReplyClaim::Claimed { token }),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(e) => {
                    let status = e
                        .item
                        .as_ref()
                        .and_then(|i| i.get("status"))
                        .and_then(|v| v.as_s().ok())
                        .and_then(|raw| {
                            serde_json::from_value::<LogStatus>(serde_json::Value::String(
                                raw.clone(),
                            ))
                            .ok()
                        })
                        .ok_or(StoreError::Malformed("reply record without a status"))?;
                    if status.is_claimable() {
                        Ok(ReplyClaim::Busy)
                    } else {
                        Ok(ReplyClaim::Done(status))
                    }
                }
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    /// Records the outcome of a claimed reply. Returns `false` when the claim was lost.
    pub async fn finish_reply(
        &self,
        id: &str,
        token: &str,
        finish: ReplyFinish<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (status, reason) = match finish {
            ReplyFinish::Sent { .. } => (LogStatus::Sent, None),
            ReplyFinish::Failed { error_code } => (LogStatus::Rejected, Some(error_code)),
            ReplyFinish::Retry { error_code } => (LogStatus::Retry, Some(error_code)),
        };
        let mut set = String::from(
            "SET #status = :status, updatedAtMs = :now, \
             statusHistory = list_append(statusHistory, :change)",
        );
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(id))
            .condition_expression("claimToken = :token AND #status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":pending", s(LogStatus::Pending.as_str()))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", n(now.as_millisecond()))
            .expression_attribute_values(":change", history(status, now, reason));
        match finish {
            ReplyFinish::Sent {
                provider_message_id,
            } => {
                set.push_str(", providerMessageId = :mid");
                request = request.expression_attribute_values(":mid", s(provider_message_id));
            }
            ReplyFinish::Failed { error_code } => {
                set.push_str(", errorCode = :code, reason = :code");
                request = request.expression_attribute_values(":code", s(error_code));
            }
            ReplyFinish::Retry { error_code } => {
                set.push_str(", errorCode = :code, leaseUntilMs = :zero");
                request = request
                    .expression_attribute_values(":code", s(error_code))
                    .expression_attribute_values(":zero", number(0));
            }
        }
        match request
            .update_expression(format!("{set} REMOVE claimToken"))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
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
