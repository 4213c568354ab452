//! The verification-codes table (DESIGN §9): one pending code per user, and the rate-limit
//! windows (per user, number, prefix, country, IP) as counters in the same table.
//!
//! TTL only cleans up, late: every read here is checked against the clock by the caller,
//! and [`VerificationStore::consume`] checks expiry in its condition.

use super::counters::{Counters, number};
use super::schema::{TTL_ATTRIBUTE, VERIFICATION_KEY};
use super::{StoreError, written};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;

/// A pending verification code. Only the HMAC of the code is stored, never the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeRecord {
    pub user_id: String,
    /// Identifies this code among the user's successive codes (guards stale checks).
    pub code_id: String,
    /// Hex HMAC-SHA256 of the code under the secret key.
    pub code_hmac: String,
    /// E.164 number the code was sent to.
    pub phone_number: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub resend_after_ms: i64,
    pub attempts: u32,
    pub consumed: bool,
    /// The log record of the code's SMS.
    pub log_id: String,
    #[serde(default)]
    pub provider_message_id: Option<String>,
}

/// Result of storing a new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutCode {
    Stored,
    /// The previous code is younger than the resend cooldown.
    Cooldown {
        resend_after_ms: i64,
    },
}

/// Access to the verification table.
#[derive(Debug, Clone)]
pub struct VerificationStore {
    client: Client,
    table: String,
    windows: Counters,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn code_key(user_id: &str) -> String {
    format!("code#{user_id}")
}

impl VerificationStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            windows: Counters::new(client.clone(), table.clone(), VERIFICATION_KEY),
            client,
            table,
        }
    }

    /// Rate-limit windows (`rate#...` counters).
    pub fn windows(&self) -> &Counters {
        &self.windows
    }

    /// Stores `record` as the user's pending code, replacing the previous one unless it is
    /// inside its resend cooldown (checked atomically, so two quick requests send one code).
    pub async fn put_code(
        &self,
        record: &CodeRecord,
        now: Timestamp,
    ) -> Result<PutCode, StoreError> {
        let mut item: HashMap<String, AttributeValue> = to_item(record)?;
        item.insert(VERIFICATION_KEY.to_owned(), s(code_key(&record.user_id)));
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            // Keep the item a day past expiry so a late check still says "expired".
            number((record.expires_at_ms / 1000 + 86_400).max(0) as u64),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR resendAfterMs <= :now")
            .expression_attribute_names("#pk", VERIFICATION_KEY)
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.as_millisecond().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutCode::Stored),
            Err(err) => match err.into_service_error() {
                PutItemError::ConditionalCheckFailedException(e) => {
                    let resend_after_ms = e
                        .item
                        .as_ref()
                        .and_then(|i| i.get("resendAfterMs"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(now.as_millisecond());
                    Ok(PutCode::Cooldown { resend_after_ms })
                }
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    /// The user's pending code, if any (consistent read; expiry is the caller's to check).
    pub async fn get_code(&self, user_id: &str) -> Result<Option<CodeRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(VERIFICATION_KEY, s(code_key(user_id)))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(from_item).transpose().map_err(Into::into)
    }

    /// Counts a wrong guess against code `code_id`. Returns the attempts now used, or
    /// `None` when the code is already used up, consumed or replaced.
    pub async fn record_wrong_attempt(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(VERIFICATION_KEY, s(code_key(user_id)))
            .update_expression("ADD attempts :one")
            // `consumed` is a DynamoDB reserved word: it must go through a name placeholder,
            // or DynamoDB refuses the request (ValidationException) instead of evaluating it.
            .condition_expression("codeId = :id AND attempts < :max AND #consumed = :false")
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":id", s(code_id))
            .expression_attribute_values(":max", number(u64::from(max_attempts)))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        Ok(written(result)?.and_then(|out| {
            out.attributes
                .as_ref()
                .and_then(|a| a.get("attempts"))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
        }))
    }

    /// Uses code `code_id` once: of any number of concurrent callers exactly one gets `true`,
    /// and only while the code is unexpired, unconsumed and has attempts left.
    pub async fn consume(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let guard = self.consume_update(user_id, code_id, max_attempts, now)?;
        // The same write alone, as a plain conditional UpdateItem.
        let result = self
            .client
            .update_item()
            .table_name(guard.table_name)
            .set_key(Some(guard.key))
            .update_expression(guard.update_expression)
            .set_condition_expression(guard.condition_expression)
            .set_expression_attribute_names(guard.expression_attribute_names)
            .set_expression_attribute_values(guard.expression_attribute_values)
            .send()
            .await;
        Ok(written(result)?.is_some())
    }

    /// The write that uses code `code_id` (the condition of [`VerificationStore::consume`]), to
    /// go in the same transaction as the verified preferences: the code is used exactly when
    /// the phone is saved verified, so a failed save never costs the user a valid code (§5).
    pub fn consume_guard(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.consume_update(user_id, code_id, max_attempts, now)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn consume_update(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.table)
            .key(VERIFICATION_KEY, s(code_key(user_id)))
            // `#consumed`: `consumed` is a reserved word (see `record_wrong_attempt`).
            .update_expression("SET #consumed = :true, consumedAtMs = :now")
            .condition_expression(
                "codeId = :id AND #consumed = :false AND attempts < :max AND expiresAtMs > :now",
            )
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":id", s(code_id))
            .expression_attribute_values(":max", number(u64::from(max_attempts)))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.as_millisecond().to_string()),
            )
            .build()
            .map_err(|_| StoreError::Malformed("code consume update"))
    }

    /// Remembers the provider's message id of the code's SMS (for message feedback).
    pub async fn set_provider_message_id(
        &self,
        user_id: &str,
        code_id: &str,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(VERIFICATION_KEY, s(code_key(user_id)))
            .update_expression("SET providerMessageId = :mid")
            .condition_expression("codeId = :id")
            .expression_attribute_values(":mid", s(message_id))
            .expression_attribute_values(":id", s(code_id))
            .send()
            .await;
        // `None`: a newer code replaced this one meanwhile, nothing to record.
        written(result).map(|_| ())
    }
}
