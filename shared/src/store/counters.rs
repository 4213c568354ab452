//! Atomic counters: one conditional `UpdateItem` each, never read-modify-write (DESIGN §7).
//!
//! Counters live as items of the log table (`counter#...` ids) and of the verification table
//! (rate windows); both use the same shape: `count` (N) and the TTL attribute.

use super::StoreError;
use super::schema::TTL_ATTRIBUTE;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, TransactWriteItem, Update,
};
use jiff::Timestamp;
use std::collections::HashMap;

/// A counter in a table whose partition key is `key_attribute`.
#[derive(Debug, Clone)]
pub struct Counters {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) key_attribute: &'static str,
}

impl Counters {
    pub fn new(client: Client, table: impl Into<String>, key_attribute: &'static str) -> Self {
        Self {
            client,
            table: table.into(),
            key_attribute,
        }
    }

    /// Adds `by` unless the result would pass `cap`, as one item of a transaction: still a
    /// single-item conditional update (DESIGN §7), so of concurrent callers at the limit
    /// exactly as many succeed as fit; its cancellation reason `ConditionalCheckFailed` means
    /// the cap was reached. `None` when `by` alone passes `cap` (it can never fit).
    pub fn increment_within_item(
        &self,
        id: &str,
        by: u64,
        cap: u64,
        expires_at: Timestamp,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        if by > cap {
            return Ok(None);
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key(self.key_attribute, AttributeValue::S(id.to_owned()))
            .update_expression("ADD #count :by SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#count) OR #count <= :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":by", number(by))
            .expression_attribute_values(":limit", number(cap - by))
            .expression_attribute_values(":ttl", number(expires_at.as_second().max(0) as u64))
            .build()
            .map_err(|_| StoreError::Malformed("bounded increment update"))?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }

    /// The table the counters live in.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Adds `by` (which may be negative) without a bound; returns the new value.
    pub async fn add(&self, id: &str, by: i64, expires_at: Timestamp) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(self.key_attribute, AttributeValue::S(id.to_owned()))
            .update_expression("ADD #count :by SET #ttl = :ttl")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
            .expression_attribute_values(":ttl", number(expires_at.as_second().max(0) as u64))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await?;
        out.attributes
            .as_ref()
            .and_then(|a| a.get("count"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or(StoreError::Malformed("counter without a numeric count"))
    }

    /// Current values of several counters in one request (missing counters are 0).
    /// Expired counters read as 0: TTL deletion is late, so expiry is checked here.
    pub async fn get_many(
        &self,
        ids: &[String],
        now: Timestamp,
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut values = HashMap::with_capacity(ids.len());
        // DynamoDB refuses a batch with the same key twice.
        let mut unique: Vec<String> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys = self.keys(chunk);
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(|_| StoreError::Malformed("batch get without keys"))?;
            let items = batch_get_all(&self.client, &self.table, request).await?;
            self.collect_values(items, now, &mut values)?;
        }
        Ok(values)
    }
}

impl Counters {
    /// Keys of counter items, for a batch read.
    pub(crate) fn keys(&self, ids: &[String]) -> Vec<HashMap<String, AttributeValue>> {
        ids.iter()
            .map(|id| {
                HashMap::from([(self.key_attribute.to_owned(), AttributeValue::S(id.clone()))])
            })
            .collect()
    }

    /// Counter values of read items; expired counters (TTL deletion is late) are skipped.
    pub(crate) fn collect_values(
        &self,
        items: Vec<HashMap<String, AttributeValue>>,
        now: Timestamp,
        values: &mut HashMap<String, u64>,
    ) -> Result<(), StoreError> {
        for item in items {
            let expired = item
                .get(TTL_ATTRIBUTE)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|ttl| ttl <= now.as_second());
            let id = item.get(self.key_attribute).and_then(|v| v.as_s().ok());
            if let (Some(id), false) = (id, expired) {
                values.insert(id.clone(), read_count(Some(&item))?);
            }
        }
        Ok(())
    }
}

/// Runs one `BatchGetItem` against one table, following `UnprocessedKeys` until done.
pub(crate) async fn batch_get_all(
    client: &Client,
    table: &str,
    request: KeysAndAttributes,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut items = batch_get_tables(client, HashMap::from([(table.to_owned(), request)])).await?;
    Ok(items.remove(table).unwrap_or_default())
}

/// Runs one `BatchGetItem` over several tables (at most 100 keys in all), following
/// `UnprocessedKeys` until done. Items come back grouped by table.
pub(crate) async fn batch_get_tables(
    client: &Client,
    mut request: HashMap<String, KeysAndAttributes>,
) -> Result<HashMap<String, Vec<HashMap<String, AttributeValue>>>, StoreError> {
    let mut items: HashMap<String, Vec<_>> = HashMap::with_capacity(request.len());
    // DynamoDB may return part of a batch under load; the remainder is asked for again.
    for _ in 0..8 {
        let out = client
            .batch_get_item()
            .set_request_items(Some(request))
            .send()
            .await?;
        for (table, found) in out.responses.unwrap_or_default() {
            items.entry(table).or_default().extend(found);
        }
        match out.unprocessed_keys {
            Some(rest) if rest.values().any(|k| !k.keys.is_empty()) => request = rest,
            _ => return Ok(items),
        }
    }
    Err(StoreError::Malformed(
        "batch get left keys unprocessed after 8 rounds",
    ))
}

pub(crate) fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn read_count(attributes: Option<&HashMap<String, AttributeValue>>) -> Result<u64, StoreError> {
    attributes
        .and_then(|a| a.get("count"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or(StoreError::Malformed("counter without a numeric count"))
}
