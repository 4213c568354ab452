//! The verification-codes table (DESIGN §9): one pending code per user, and the rate-limit
//! windows (per user, number, prefix, country, IP) as counters in the same table.
//!
//! TTL only cleans up, late: every read here is checked against the clock by the caller,
//! and [`VerificationStore::consume_guard`] checks expiry in its condition.

use super::counters::{Counters, batch_get_tables, number};
use super::preferences::PreferencesStore;
use super::schema::{TTL_ATTRIBUTE, VERIFICATION_KEY};
use super::{StoreError, written};
use crate::preferences::Preferences;
use crate::verification::Window;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
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
    /// The log record of the code's SMS (which keeps its provider message id).
    pub log_id: String,
}

/// A code's reservation in the codes' monthly budget (DESIGN §7): a bounded increment of a
/// counter of the log table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub counter: String,
    pub micros: u64,
    /// The budget: the counter may not pass it.
    pub cap: u64,
    pub keep_until: Timestamp,
}

/// Everything a new code writes, applied together or not at all, in one `TransactWriteItems`:
/// the code (unless the previous one is inside its resend cooldown), one bounded increment per
/// rate window, the reservation in the codes' budget, and the code's log record with its
/// attempt recorded ([`super::fresh_attempt`]). Each counter stays a single-item conditional
/// update (DESIGN §7); the transaction makes them one round trip, and a refused request
/// counts in no window at all.
#[derive(Debug, Clone, Copy)]
pub struct Issue<'a> {
    pub code: &'a CodeRecord,
    /// In the order they are checked: the first full one is the one reported.
    pub windows: &'a [Window],
    pub budget: &'a Reservation,
    /// The fresh log record of the code's SMS.
    pub log: &'a TransactWriteItem,
}

/// What became of an [`Issue`]. Only `Issued` wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    Issued,
    /// The previous code is younger than the resend cooldown.
    Cooldown {
        resend_after_ms: i64,
    },
    /// `windows[index]` is full (the first full one, in order).
    WindowFull {
        index: usize,
    },
    /// The codes' budget has no room for this code.
    BudgetSpent,
    /// Other requests' transactions kept touching the same counters (DynamoDB cancels
    /// concurrent transactions on one item): nothing written, try again.
    Contended,
}

/// Attempts of an [`Issue`] while concurrent transactions on the same counters cancel it.
const ISSUE_ATTEMPTS: u32 = 4;

/// What a verification request reads first, in one `BatchGetItem` (strongly consistent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirstRead {
    /// The user's pending code.
    pub code: Option<CodeRecord>,
    pub prefs: Option<Preferences>,
    /// The counters asked for that exist and have not expired.
    pub counters: HashMap<String, u64>,
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

    /// The user's pending code, their preferences and counters of a third table (none when
    /// `counter_ids` is empty), in one `BatchGetItem`: a verification request's first round
    /// trip.
    pub async fn read_with_preferences(
        &self,
        user_id: &str,
        preferences: &PreferencesStore,
        counters: &Counters,
        counter_ids: &[String],
        now: Timestamp,
    ) -> Result<FirstRead, StoreError> {
        let counter = (!counter_ids.is_empty()).then_some((counters, counter_ids));
        let mut tables = vec![self.table.as_str(), preferences.table.as_str()];
        tables.extend(counter.map(|(c, _)| c.table()));
        let mut distinct = tables.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != tables.len() {
            // One table for two roles (never in a deployment): the reads one by one.
            let mut values = HashMap::new();
            if let Some((counters, ids)) = counter {
                values = counters.get_many(ids, now).await?;
            }
            return Ok(FirstRead {
                code: self.get_code(user_id).await?,
                prefs: preferences.get(user_id).await?,
                counters: values,
            });
        }
        let keys = |keys| {
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|_| StoreError::Malformed("batch get without keys"))
        };
        let mut request = HashMap::from([
            (
                self.table.clone(),
                keys(vec![HashMap::from([(
                    VERIFICATION_KEY.to_owned(),
                    s(code_key(user_id)),
                )])])?,
            ),
            (
                preferences.table.clone(),
                keys(vec![PreferencesStore::current_key(user_id)])?,
            ),
        ]);
        if let Some((counters, ids)) = counter {
            let mut ids = ids.to_vec();
            // DynamoDB refuses a batch with the same key twice.
            ids.sort_unstable();
            ids.dedup();
            request.insert(counters.table().to_owned(), keys(counters.keys(&ids))?);
        }
        let mut items = batch_get_tables(&self.client, request).await?;
        let mut first = |table: &str| items.remove(table).and_then(|mut i| i.pop());
        let code = first(&self.table).map(from_item).transpose()?;
        let prefs = first(&preferences.table).map(from_item).transpose()?;
        let mut values = HashMap::new();
        if let Some((counters, _)) = counter {
            let found = items.remove(counters.table()).unwrap_or_default();
            counters.collect_values(found, now, &mut values)?;
        }
        Ok(FirstRead {
            code,
            prefs,
            counters: values,
        })
    }

    /// Writes a new code with its windows, budget and log record, all or nothing ([`Issue`]).
    /// `budget` is the counters of the log table.
    pub async fn issue(
        &self,
        issue: &Issue<'_>,
        budget: &Counters,
        now: Timestamp,
    ) -> Result<Issued, StoreError> {
        let mut items = vec![self.code_put(issue.code, now)?];
        for (index, window) in issue.windows.iter().enumerate() {
            match self
                .windows
                .increment_within_item(&window.id, 1, window.cap, window.ends_at)?
            {
                Some(item) => items.push(item),
                None => return Ok(Issued::WindowFull { index }),
            }
        }
        let reservation = &issue.budget;
        match budget.increment_within_item(
            &reservation.counter,
            reservation.micros,
            reservation.cap,
            reservation.keep_until,
        )? {
            Some(item) => items.push(item),
            None => return Ok(Issued::BudgetSpent),
        }
        items.push(issue.log.clone());
        for attempt in 0..ISSUE_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Issued::Issued),
                Err(err) => err,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(err.into());
            };
            match refusal(cancelled.cancellation_reasons(), issue.windows.len(), now)? {
                Some(refused) => return Ok(refused),
                // Only concurrent transactions on the same items: again, a little later.
                None if attempt + 1 < ISSUE_ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
                }
                None => {}
            }
        }
        Ok(Issued::Contended)
    }

    /// The conditional `Put` of a new code: it replaces the user's previous code unless that
    /// one is inside its resend cooldown (checked atomically, so two quick requests send one
    /// code; the old item comes back with the cancellation, for its `resendAfterMs`).
    fn code_put(
        &self,
        record: &CodeRecord,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.code_item(record)?))
            .condition_expression("attribute_not_exists(#pk) OR resendAfterMs <= :now")
            .expression_attribute_names("#pk", VERIFICATION_KEY)
            .expression_attribute_values(
                ":now",
                AttributeValue::N(now.as_millisecond().to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|_| StoreError::Malformed("code put"))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn code_item(
        &self,
        record: &CodeRecord,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item: HashMap<String, AttributeValue> = to_item(record)?;
        item.insert(VERIFICATION_KEY.to_owned(), s(code_key(&record.user_id)));
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            // Keep the item a day past expiry so a late check still says "expired".
            number((record.expires_at_ms / 1000 + 86_400).max(0) as u64),
        );
        Ok(item)
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

    /// The write that uses code `code_id`: of any number of concurrent writers exactly one
    /// succeeds, and only while the code is unexpired, unconsumed and has attempts left. It goes
    /// in the same transaction as the verified preferences: the code is used exactly when
    /// the phone is saved verified, so a failed save never costs the user a valid code (§5).
    pub fn consume_guard(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
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
            .map_err(|_| StoreError::Malformed("code consume update"))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// What the cancellation reasons of an [`Issue`]'s transaction (items: the code, the windows,
/// the budget, the log record) say: the refusal to answer, in the order the checks are
/// reported (the cooldown, then the windows in order, then the budget); `None` when only
/// concurrent transactions cancelled it (worth another try).
fn refusal(
    reasons: &[CancellationReason],
    windows: usize,
    now: Timestamp,
) -> Result<Option<Issued>, StoreError> {
    let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
    let failed = |i: usize| code(i) == "ConditionalCheckFailed";
    if failed(0) {
        let resend_after_ms = reasons[0]
            .item()
            .and_then(|i| i.get("resendAfterMs"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(now.as_millisecond());
        return Ok(Some(Issued::Cooldown { resend_after_ms }));
    }
    if let Some(index) = (0..windows).find(|&i| failed(1 + i)) {
        return Ok(Some(Issued::WindowFull { index }));
    }
    if failed(1 + windows) {
        return Ok(Some(Issued::BudgetSpent));
    }
    if failed(2 + windows) {
        return Err(StoreError::Malformed("a fresh log id was already taken"));
    }
    let only_conflicts =
        (0..reasons.len()).all(|i| matches!(code(i), "None" | "TransactionConflict"));
    if only_conflicts
        && reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
    {
        Ok(None)
    } else {
        Err(StoreError::Malformed("a code's transaction was cancelled"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(codes: &[&str]) -> Vec<CancellationReason> {
        codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect()
    }

    #[test]
    fn cancellation_reasons_name_the_first_refusal_in_the_order_of_the_checks() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let ok = "None";
        let full = "ConditionalCheckFailed";
        // code, 3 windows, budget, log
        let cases = [
            (
                [ok, ok, full, full, full, ok],
                Some(Issued::WindowFull { index: 1 }),
            ),
            ([ok, ok, ok, ok, full, ok], Some(Issued::BudgetSpent)),
            ([ok, "TransactionConflict", ok, ok, ok, ok], None),
        ];
        for (codes, expected) in cases {
            assert_eq!(
                refusal(&reasons(&codes), 3, now).unwrap(),
                expected,
                "{codes:?}"
            );
        }
        let mut cooldown = reasons(&[full, full, ok, ok, ok, ok]);
        cooldown[0] = CancellationReason::builder()
            .code(full)
            .item("resendAfterMs", AttributeValue::N("1795608030000".into()))
            .build();
        assert_eq!(
            refusal(&cooldown, 3, now).unwrap(),
            Some(Issued::Cooldown {
                resend_after_ms: 1_795_608_030_000
            }),
            "the cooldown first, whatever the windows say"
        );
        assert!(refusal(&reasons(&[ok, ok, ok, ok, ok, full]), 3, now).is_err());
        assert!(refusal(&reasons(&[ok, "ValidationError", ok, ok, ok, ok]), 3, now).is_err());
    }
}
