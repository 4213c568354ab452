//! The SMS log (DESIGN §9): one item per send request, keyed by the request id. It is the
//! audit trail and the idempotency record: a request is *claimed* by one conditional write
//! before anything is sent, so a duplicate delivery can never send a second SMS.

use super::counters::number;
use super::schema::{LOG_BY_PROVIDER_ID_INDEX, LOG_BY_USER_INDEX, LOG_KEY};
use super::{StoreError, condition_failed};
use crate::kinds::{MessageClass, MessageKind};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, from_items};
use std::collections::HashMap;

/// Where a send request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// Claimed by an invocation that is deciding or sending (until `leaseUntilMs`).
    Pending,
    /// Waiting for the quiet-hours window to open (until `leaseUntilMs`).
    Deferred,
    /// A transient fault; the next delivery of the request may claim it again.
    Retry,
    Sent,
    Delivered,
    Undelivered,
    Suppressed,
    Rejected,
    Expired,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Pending => "pending",
            LogStatus::Deferred => "deferred",
            LogStatus::Retry => "retry",
            LogStatus::Sent => "sent",
            LogStatus::Delivered => "delivered",
            LogStatus::Undelivered => "undelivered",
            LogStatus::Suppressed => "suppressed",
            LogStatus::Rejected => "rejected",
            LogStatus::Expired => "expired",
        }
    }

    /// The request has not reached an outcome yet and may be claimed once its lease is over.
    pub fn is_claimable(self) -> bool {
        matches!(
            self,
            LogStatus::Pending | LogStatus::Deferred | LogStatus::Retry
        )
    }
}

/// The object a message is about (`related` of §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// One status change, kept in order on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: LogStatus,
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A log item as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    pub id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// Full E.164 (masked only in logs).
    #[serde(default)]
    pub phone_number: Option<String>,
    pub kind: MessageKind,
    pub class: MessageClass,
    /// Rendered body as sent, verification codes redacted.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub segments: Option<u32>,
    #[serde(default)]
    pub encoding: Option<String>,
    pub status: LogStatus,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub provider_message_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub price_micros: Option<u64>,
    #[serde(default)]
    pub carrier_fee_micros: Option<u64>,
    #[serde(default)]
    pub related: Option<Related>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default)]
    pub lease_until_ms: i64,
    #[serde(default)]
    pub attempts: u32,
}

/// What is known about a request when it is claimed.
#[derive(Debug, Clone)]
pub struct NewLogRecord<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    pub kind: MessageKind,
    pub related: Option<&'a Related>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This invocation owns the request until the lease ends; finish with this token.
    Claimed { token: String, attempts: u32 },
    /// The request already reached an outcome: a duplicate delivery.
    Done(Box<LogRecord>),
    /// Another invocation holds it, or it is deferred, until this time.
    Busy { until_ms: i64, status: LogStatus },
}

/// How a claimed request ends (or pauses).
#[derive(Debug, Clone, Copy)]
pub enum Finish<'a> {
    Sent {
        provider_message_id: &'a str,
        phone_number: &'a str,
        body: &'a str,
        segments: u32,
        encoding: &'a str,
    },
    Suppressed {
        reason: &'a str,
        phone_number: Option<&'a str>,
    },
    Rejected {
        reason: &'a str,
    },
    Expired,
    /// Paused until the quiet-hours window opens; the request stays claimable after `until`.
    Deferred {
        until: Timestamp,
    },
    /// A transient fault: release the claim so the next delivery may try again.
    Retry {
        error_code: &'a str,
        error_message: &'a str,
    },
}

impl Finish<'_> {
    pub fn status(&self) -> LogStatus {
        match self {
            Finish::Sent { .. } => LogStatus::Sent,
            Finish::Suppressed { .. } => LogStatus::Suppressed,
            Finish::Rejected { .. } => LogStatus::Rejected,
            Finish::Expired => LogStatus::Expired,
            Finish::Deferred { .. } => LogStatus::Deferred,
            Finish::Retry { .. } => LogStatus::Retry,
        }
    }
}

/// Access to the log table.
#[derive(Debug, Clone)]
pub struct LogStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn history_entry(status: LogStatus, now: Timestamp, reason: Option<&str>) -> AttributeValue {
    let mut entry = HashMap::from([
        ("status".to_owned(), s(status.as_str())),
        ("atMs".to_owned(), AttributeValue::N(ms(now).to_string())),
    ]);
    if let Some(reason) = reason {
        entry.insert("reason".to_owned(), s(reason));
    }
    AttributeValue::L(vec![AttributeValue::M(entry)])
}

/// `#name` placeholders for attribute names (DynamoDB reserves hundreds of words).
fn names(attributes: &[&str]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|a| (format!("#{a}"), (*a).to_owned()))
        .collect()
}

fn add_names(mut request: UpdateItemFluentBuilder, attributes: &[&str]) -> UpdateItemFluentBuilder {
    for a in attributes {
        request = request.expression_attribute_names(format!("#{a}"), *a);
    }
    request
}

impl LogStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn update(&self, id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(id))
    }

    /// Claims a request for `lease`: creates the record, or takes over one whose previous
    /// claim ended without an outcome (lease over, deferral due, or released for retry).
    /// One conditional `UpdateItem`.
    pub async fn claim(
        &self,
        record: &NewLogRecord<'_>,
        now: Timestamp,
        lease: jiff::SignedDuration,
    ) -> Result<Claim, StoreError> {
        let token = claim_token();
        let mut set = String::from(
            "SET #status = :pending, #kind = :kind, #class = :class, \
             #createdAtMs = if_not_exists(#createdAtMs, :now), #updatedAtMs = :now, \
             #leaseUntilMs = :lease, #claimToken = :token, \
             #attempts = if_not_exists(#attempts, :zero) + :one, \
             #statusHistory = list_append(if_not_exists(#statusHistory, :empty), :change)",
        );
        let mut request = self
            .update(record.id)
            .condition_expression(
                "attribute_not_exists(#id) OR (#status IN (:pending, :deferred, :retry) AND #leaseUntilMs <= :now)",
            )
            .set_expression_attribute_names(Some(names(&[
                "id",
                "status",
                "kind",
                "class",
                "createdAtMs",
                "updatedAtMs",
                "leaseUntilMs",
                "claimToken",
                "attempts",
                "statusHistory",
            ])))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":deferred", s("deferred"))
            .expression_attribute_values(":retry", s("retry"))
            .expression_attribute_values(":kind", s(record.kind.as_str()))
            .expression_attribute_values(
                ":class",
                s(match record.kind.class() {
                    MessageClass::Promotional => "promotional",
                    MessageClass::Transactional => "transactional",
                }),
            )
            .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()))
            .expression_attribute_values(
                ":lease",
                AttributeValue::N(ms(now + lease).to_string()),
            )
            .expression_attribute_values(":token", s(token.clone()))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":change", history_entry(LogStatus::Pending, now, None))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(user) = record.user_id {
            set.push_str(", #userId = :user");
            request = request.expression_attribute_names("#userId", "userId");
            request = request.expression_attribute_values(":user", s(user));
        }
        if let Some(related) = record.related {
            set.push_str(", #related = :related");
            request = request.expression_attribute_names("#related", "related");
            request = request.expression_attribute_values(
                ":related",
                AttributeValue::M(HashMap::from([
                    ("type".to_owned(), s(related.kind.clone())),
                    ("id".to_owned(), s(related.id.clone())),
                ])),
            );
        }
        match request.update_expression(set).send().await {
            Ok(out) => {
                let attempts = out
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("attempts"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Ok(Claim::Claimed { token, attempts })
            }
            Err(err) if condition_failed(&err) => {
                let old = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                }
                .ok_or(StoreError::Malformed("failed claim returned no item"))?;
                let existing: LogRecord = from_item(old)?;
                if existing.status.is_claimable() {
                    Ok(Claim::Busy {
                        until_ms: existing.lease_until_ms,
                        status: existing.status,
                    })
                } else {
                    Ok(Claim::Done(Box::new(existing)))
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Records the outcome of a claim. Returns `false` when the claim was lost (its lease
    /// ran out and another invocation took the request), in which case nothing changed.
    pub async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let status = finish.status();
        let mut set = String::from(
            "SET #status = :status, #updatedAtMs = :now, \
             #statusHistory = list_append(#statusHistory, :change)",
        );
        let mut remove = String::from(" REMOVE #claimToken");
        // Every attribute goes through a name placeholder: several are reserved words.
        let mut request = self
            .update(id)
            .condition_expression("#claimToken = :token AND #status = :pending")
            .set_expression_attribute_names(Some(names(&[
                "status",
                "updatedAtMs",
                "statusHistory",
                "claimToken",
            ])))
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", AttributeValue::N(ms(now).to_string()));
        let mut reason = None;
        match finish {
            Finish::Sent {
                provider_message_id,
                phone_number,
                body,
                segments,
                encoding,
            } => {
                set.push_str(
                    ", #providerMessageId = :mid, #phoneNumber = :phone, #body = :body, \
                     #segments = :segments, #encoding = :encoding",
                );
                remove.push_str(", #errorCode, #errorMessage");
                request = add_names(
                    request,
                    &[
                        "providerMessageId",
                        "phoneNumber",
                        "body",
                        "segments",
                        "encoding",
                        "errorCode",
                        "errorMessage",
                    ],
                )
                .expression_attribute_values(":mid", s(provider_message_id))
                .expression_attribute_values(":phone", s(phone_number))
                .expression_attribute_values(":body", s(body))
                .expression_attribute_values(":segments", number(u64::from(segments)))
                .expression_attribute_values(":encoding", s(encoding));
            }
            Finish::Suppressed {
                reason: why,
                phone_number,
            } => {
                reason = Some(why);
                if let Some(phone) = phone_number {
                    set.push_str(", #phoneNumber = :phone");
                    request = add_names(request, &["phoneNumber"])
                        .expression_attribute_values(":phone", s(phone));
                }
            }
            Finish::Rejected { reason: why } => reason = Some(why),
            Finish::Expired => reason = Some("not_after_passed"),
            Finish::Deferred { until } => {
                reason = Some("quiet_hours");
                set.push_str(", #leaseUntilMs = :until");
                request = add_names(request, &["leaseUntilMs"]).expression_attribute_values(
                    ":until",
                    AttributeValue::N(ms(until).to_string()),
                );
            }
            Finish::Retry {
                error_code,
                error_message,
            } => {
                set.push_str(
                    ", #leaseUntilMs = :zero, #errorCode = :code, #errorMessage = :message",
                );
                request = add_names(request, &["leaseUntilMs", "errorCode", "errorMessage"])
                    .expression_attribute_values(":zero", number(0))
                    .expression_attribute_values(":code", s(error_code))
                    .expression_attribute_values(":message", s(error_message));
            }
        }
        if let Some(why) = reason {
            set.push_str(", #reason = :reason");
            request =
                add_names(request, &["reason"]).expression_attribute_values(":reason", s(why));
        }
        request =
            request.expression_attribute_values(":change", history_entry(status, now, reason));
        match request
            .update_expression(format!("{set}{remove}"))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Reads one record (strongly consistent).
    pub async fn get(&self, id: &str) -> Result<Option<LogRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LOG_KEY, s(id))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(from_item).transpose().map_err(Into::into)
    }

    /// The record a provider message id belongs to (delivery receipts without context).
    pub async fn find_by_provider_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        self.item_by_provider_message_id(message_id)
            .await?
            .map(from_item)
            .transpose()
            .map_err(Into::into)
    }

    /// The raw item of the record a provider message id belongs to, by its index.
    pub(super) async fn item_by_provider_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LOG_BY_PROVIDER_ID_INDEX)
            .key_condition_expression("providerMessageId = :mid")
            .expression_attribute_values(":mid", s(message_id))
            .limit(1)
            .send()
            .await?;
        Ok(out.items.unwrap_or_default().into_iter().next())
    }

    /// A user's messages created in `[from, to)`, newest first, at most `limit`.
    pub async fn query_by_user(
        &self,
        user_id: &str,
        from: Timestamp,
        to: Timestamp,
        limit: i32,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LOG_BY_USER_INDEX)
            .key_condition_expression("userId = :user AND createdAtMs BETWEEN :from AND :to")
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":from", AttributeValue::N(ms(from).to_string()))
            .expression_attribute_values(":to", AttributeValue::N((ms(to) - 1).to_string()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await?;
        Ok(from_items(out.items.unwrap_or_default())?)
    }
}

/// A random token that identifies one claim.
fn claim_token() -> String {
    let mut bytes = [0u8; 12];
    // getrandom only fails when the OS has no entropy source at all; fall back to time.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&Timestamp::now().as_nanosecond().to_le_bytes()[..8]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids of the counters kept in the log table.
pub mod counter_ids {
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    /// Promotional messages sent to a user on a UTC day.
    pub fn user_day(user_id: &str, at: Timestamp) -> String {
        let date = at.to_zoned_datetime(TimeZone::UTC).date();
        format!("counter#user-day#{user_id}#{date}")
    }

    /// Promotional messages to a user in a rolling 24 h window (state caps).
    pub fn user_rolling_24h(user_id: &str) -> String {
        format!("counter#user-24h#{user_id}")
    }

    /// Account spend (micro-USD) in a UTC month.
    pub fn month_spend(at: Timestamp) -> String {
        let date = at.to_zoned_datetime(TimeZone::UTC).date();
        format!("counter#spend#{:04}-{:02}", date.year(), date.month())
    }
}
