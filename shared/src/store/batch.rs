//! One `BatchGetItem` across tables: the sender reads a whole SQS batch's preferences and
//! the counters it needs (the month's spend) in a single request.

use super::counters::batch_get_tables;
use super::{Counters, PreferencesStore, StoreError};
use crate::preferences::Preferences;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use jiff::Timestamp;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use std::collections::HashMap;

/// What a batch read found. Missing users and counters are simply absent.
#[derive(Debug, Default)]
pub struct BatchRead {
    pub preferences: HashMap<String, Preferences>,
    pub counters: HashMap<String, u64>,
}

/// Most keys one `BatchGetItem` takes.
const MAX_KEYS: usize = 100;

/// Reads the current preferences of `user_ids` and the counters `counter_ids`, in one request
/// when they fit (at most 100 keys), else in as few as needed. Consistent reads.
pub async fn read_preferences_and_counters(
    prefs: &PreferencesStore,
    user_ids: &[&str],
    counters: &Counters,
    counter_ids: &[String],
    now: Timestamp,
) -> Result<BatchRead, StoreError> {
    let mut users: Vec<&str> = user_ids.to_vec();
    users.sort_unstable();
    users.dedup();
    if users.len() + counter_ids.len() > MAX_KEYS || prefs.table == counters.table {
        return Ok(BatchRead {
            preferences: prefs.batch_get(&users).await?,
            counters: counters.get_many(counter_ids, now).await?,
        });
    }
    let mut request = HashMap::with_capacity(2);
    if !users.is_empty() {
        let keys = users
            .iter()
            .map(|u| PreferencesStore::current_key(u))
            .collect();
        request.insert(prefs.table.clone(), keys_and_attributes(keys)?);
    }
    if !counter_ids.is_empty() {
        request.insert(
            counters.table.clone(),
            keys_and_attributes(counters.keys(counter_ids))?,
        );
    }
    let mut read = BatchRead::default();
    if request.is_empty() {
        return Ok(read);
    }
    let mut items = batch_get_tables(&prefs.client, request).await?;
    for item in items.remove(&prefs.table).unwrap_or_default() {
        let p: Preferences = from_item(item)?;
        read.preferences.insert(p.user_id.clone(), p);
    }
    counters.collect_values(
        items.remove(&counters.table).unwrap_or_default(),
        now,
        &mut read.counters,
    )?;
    Ok(read)
}

fn keys_and_attributes(
    keys: Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> Result<KeysAndAttributes, StoreError> {
    KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .map_err(|_| StoreError::Malformed("batch get without keys"))
}
