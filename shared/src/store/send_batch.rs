//! The sender's DynamoDB work per SQS batch (DESIGN §6, §7; docs/exactly-once.md, "One
//! batch"): one read of everything the batch's decisions need, then each step of the send
//! protocol for the whole batch as **one request**: the claims with the cap reservations, the
//! attempts, the outcomes.
//!
//! A step is one `TransactWriteItems` of conditional updates (one `UpdateItem` when it holds a
//! single write: half the write units). A transaction is all or nothing, so a write whose
//! condition fails (a duplicate delivery, a claim lost, a cap another invocation filled)
//! cancels the others; [`Written::Cancelled`] says, per write, which failed and what it found
//! (`ReturnValuesOnConditionCheckFailure: ALL_OLD`), and the caller drops or corrects those
//! and sends the rest again. The writes themselves are the log's own
//! ([`LogStore::claim_update`], ...) and single-item counter updates with conditions (§7), so
//! every guarantee of the one-at-a-time protocol holds item by item.
//!
//! Limits the caller keeps (DynamoDB's): at most [`MAX_TRANSACTION_ITEMS`] writes, no two on
//! one item, 4 MB in all; at most 100 keys per read (chunked here).

use super::counters::{batch_get_tables, number};
use super::log::{Attempt, ClaimTo, Finish, LogRecord, LogStore, NewLogRecord, counter_ids};
use super::schema::{LOG_KEY, TTL_ATTRIBUTE};
use super::{PreferencesStore, StoreError};
use crate::preferences::Preferences;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use jiff::{SignedDuration, Timestamp};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use std::collections::HashMap;

/// Most writes one `TransactWriteItems` takes.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// Most keys one `BatchGetItem` takes.
const MAX_READ_KEYS: usize = 100;
/// How long a user's daily count is kept (it is read on its own UTC day only).
const DAY_COUNT_TTL: SignedDuration = SignedDuration::from_hours(48);

/// What a batch's decisions need: every user's preferences, the month's spend, and each
/// user's promotional counts (today's, and the rolling window of the stricter states).
#[derive(Debug, Default, Clone)]
pub struct SendRead {
    pub preferences: HashMap<String, Preferences>,
    pub spend_micros: u64,
    pub promotional: HashMap<String, PromotionalCount>,
}

/// A user's promotional messages counted so far (DESIGN §7 daily cap, §4 state caps).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PromotionalCount {
    /// Today's (UTC) count.
    pub today: u64,
    /// The rolling window: instants (ms) of the reservations it holds, and the version they
    /// were read at (`None`: no window item yet).
    pub window: Vec<i64>,
    pub window_version: Option<u64>,
}

/// One write of a batch step on the log.
#[derive(Debug, Clone)]
pub enum LogWrite<'a> {
    /// [`LogStore::claim`], or a claim that ends at once in an outcome.
    Claim {
        record: NewLogRecord<'a>,
        to: ClaimTo<'a>,
    },
    /// [`LogStore::begin_send`].
    Attempt {
        id: &'a str,
        token: &'a str,
        attempt: Attempt<'a>,
        lease: SignedDuration,
    },
    /// [`LogStore::finish`].
    Finish {
        id: &'a str,
        token: &'a str,
        finish: Finish<'a>,
    },
}

/// One write of a batch step on a user's promotional counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterWrite {
    /// Adds `by` (negative: slots given back) to today's count, if the count before is at
    /// most `at_most` (`None`: unconditional, for give-backs).
    Day {
        user_id: String,
        by: i64,
        at_most: Option<u64>,
    },
    /// Replaces the rolling window by `entries`, if it is still at `read_version`.
    Window {
        user_id: String,
        entries: Vec<i64>,
        read_version: Option<u64>,
    },
}

/// How one write of a cancelled step fared.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure<T> {
    /// Its condition held: it would have been written.
    None,
    /// Its condition failed on what was found (`None`: no item).
    Condition(Option<T>),
    /// Cancelled for another reason (a concurrent transaction on the item, throttling): try
    /// it again.
    Conflict,
}

/// What a log write's failed condition found: the record, and the claim that holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundRecord {
    pub record: LogRecord,
    pub claim_token: Option<String>,
}

impl FoundRecord {
    /// A receipt already moved the record on (`sent`, `delivered`, `undelivered`) while
    /// `token` held it: an outcome `sent` under that claim is on record (the receipt said it
    /// first), as [`LogStore::finish`] answers.
    pub fn receipted_under(&self, token: &str) -> bool {
        use super::log::LogStatus;
        self.claim_token.as_deref() == Some(token)
            && matches!(
                self.record.status,
                LogStatus::Sent | LogStatus::Delivered | LogStatus::Undelivered
            )
    }
}

fn found_record(item: HashMap<String, AttributeValue>) -> Result<FoundRecord, StoreError> {
    Ok(FoundRecord {
        claim_token: item.get("claimToken").and_then(|v| v.as_s().ok()).cloned(),
        record: from_item(item)?,
    })
}

/// What a counter's failed condition found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterFound {
    pub count: u64,
    pub entries: Vec<i64>,
    pub version: Option<u64>,
}

/// The answer to one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Every write was made.
    All,
    /// Nothing was written; per write (in the order given), why.
    Cancelled {
        log: Vec<Failure<FoundRecord>>,
        counters: Vec<Failure<CounterFound>>,
    },
}

/// The sender's access to the log and preferences tables, a batch at a time.
#[derive(Debug, Clone)]
pub struct SendBatchStore {
    client: Client,
    log: LogStore,
    preferences_table: String,
}

impl SendBatchStore {
    pub fn new(log: LogStore, preferences: &PreferencesStore) -> Self {
        Self {
            client: log.client.clone(),
            log,
            preferences_table: preferences.table.clone(),
        }
    }

    /// The log the writes go to (for the rare answers that need more than one write: the
    /// takeover of an attempt in doubt).
    pub fn log(&self) -> &LogStore {
        &self.log
    }

    /// Reads the preferences of `user_ids`, the month's spend and each user's promotional
    /// counts: one `BatchGetItem` when they fit in 100 keys (a batch of 33 users), else as
    /// few as needed. Consistent reads. Expired counters read as 0 (TTL deletion is late).
    pub async fn read(&self, user_ids: &[&str], now: Timestamp) -> Result<SendRead, StoreError> {
        let mut users: Vec<&str> = user_ids.to_vec();
        users.sort_unstable();
        users.dedup();
        let spend_id = counter_ids::month_spend(now);
        let mut keys: Vec<(&str, HashMap<String, AttributeValue>)> = Vec::new();
        for user in &users {
            keys.push((&self.preferences_table, PreferencesStore::current_key(user)));
            keys.push((&self.log.table, log_key(&counter_ids::user_day(user, now))));
            keys.push((
                &self.log.table,
                log_key(&counter_ids::user_rolling_24h(user)),
            ));
        }
        keys.push((&self.log.table, log_key(&spend_id)));

        let mut read = SendRead::default();
        let mut counters: HashMap<String, HashMap<String, AttributeValue>> = HashMap::new();
        for chunk in chunked(keys) {
            let mut request: HashMap<String, Vec<HashMap<String, AttributeValue>>> = HashMap::new();
            for (table, key) in chunk {
                request.entry(table.to_owned()).or_default().push(key);
            }
            let request = request
                .into_iter()
                .map(|(table, keys)| {
                    KeysAndAttributes::builder()
                        .set_keys(Some(keys))
                        .consistent_read(true)
                        .build()
                        .map(|k| (table, k))
                        .map_err(|_| StoreError::Malformed("batch get without keys"))
                })
                .collect::<Result<HashMap<_, _>, _>>()?;
            for (table, items) in batch_get_tables(&self.client, request).await? {
                for item in items {
                    let counter = (table == self.log.table)
                        .then(|| item.get(LOG_KEY).and_then(|v| v.as_s().ok()).cloned())
                        .flatten();
                    match counter {
                        Some(id) => {
                            counters.insert(id, item);
                        }
                        None => {
                            let p: Preferences = from_item(item)?;
                            read.preferences.insert(p.user_id.clone(), p);
                        }
                    }
                }
            }
        }
        let live = |id: &str| counters.get(id).filter(|item| !expired(item, now));
        read.spend_micros = live(&spend_id).map(count_of).unwrap_or(0);
        for user in users {
            let window = live(&counter_ids::user_rolling_24h(user));
            read.promotional.insert(
                user.to_owned(),
                PromotionalCount {
                    today: live(&counter_ids::user_day(user, now))
                        .map(count_of)
                        .unwrap_or(0),
                    window: window.map(entries_of).unwrap_or_default(),
                    // The version of the item as stored, expired or not: the write's
                    // condition is on the item that is there.
                    window_version: counters
                        .get(&counter_ids::user_rolling_24h(user))
                        .map(version_of),
                },
            );
        }
        Ok(read)
    }

    /// Makes one step's writes as one request: all of them, or none and why.
    pub async fn write(
        &self,
        log: &[LogWrite<'_>],
        counters: &[CounterWrite],
        now: Timestamp,
    ) -> Result<Written, StoreError> {
        let total = log.len() + counters.len();
        if total == 0 {
            return Ok(Written::All);
        }
        if total > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Malformed(
                "more writes than one transaction takes",
            ));
        }
        let log_updates: Vec<_> = log.iter().map(|w| self.log_update(w, now)).collect();
        if total == 1 {
            return self
                .write_one(log_updates.first(), counters.first(), now)
                .await;
        }
        let mut items = Vec::with_capacity(total);
        for u in &log_updates {
            items.push(u.transact_item(&self.log.table)?);
        }
        for c in counters {
            items.push(
                TransactWriteItem::builder()
                    .update(self.counter_update(c, now)?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Written::All),
            Err(err) => err,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                e.cancellation_reasons().to_vec()
            }
            _ => return Err(err.into()),
        };
        let failure = |i: usize| {
            let reason = reasons.get(i);
            match reason.and_then(|r| r.code()) {
                None | Some("None") => Failure::None,
                Some("ConditionalCheckFailed") => {
                    Failure::Condition(reason.and_then(|r| r.item().cloned()))
                }
                Some(_) => Failure::Conflict,
            }
        };
        let mut log_failures = Vec::with_capacity(log.len());
        for i in 0..log.len() {
            log_failures.push(decode(failure(i), found_record)?);
        }
        let mut counter_failures = Vec::with_capacity(counters.len());
        for i in 0..counters.len() {
            counter_failures.push(decode(failure(log.len() + i), |item| {
                Ok(counter_found(&item))
            })?);
        }
        Ok(Written::Cancelled {
            log: log_failures,
            counters: counter_failures,
        })
    }

    /// A step of one write: a plain conditional `UpdateItem` (1 write unit, not 2).
    async fn write_one(
        &self,
        log: Option<&super::log::LogUpdate>,
        counter: Option<&CounterWrite>,
        now: Timestamp,
    ) -> Result<Written, StoreError> {
        let result = match (log, counter) {
            (Some(u), _) => u.update_item(&self.client, &self.log.table).send().await,
            (None, Some(c)) => {
                let u = self.counter_update(c, now)?;
                let request = self
                    .client
                    .update_item()
                    .table_name(u.table_name())
                    .set_key(Some(u.key().clone()))
                    .update_expression(u.update_expression())
                    .set_condition_expression(u.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(u.expression_attribute_names().cloned())
                    .set_expression_attribute_values(u.expression_attribute_values().cloned())
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
                request.send().await
            }
            (None, None) => return Ok(Written::All),
        };
        let found = match result {
            Ok(_) => return Ok(Written::All),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                other => return Err(StoreError::Dynamo(Box::new(other.into()))),
            },
            Err(err) => return Err(err.into()),
        };
        Ok(if log.is_some() {
            Written::Cancelled {
                log: vec![Failure::Condition(found.map(found_record).transpose()?)],
                counters: vec![],
            }
        } else {
            Written::Cancelled {
                log: vec![],
                counters: vec![Failure::Condition(found.as_ref().map(counter_found))],
            }
        })
    }

    fn log_update(&self, write: &LogWrite<'_>, now: Timestamp) -> super::log::LogUpdate {
        match write {
            LogWrite::Claim { record, to } => self.log.claim_update(record, now, *to),
            LogWrite::Attempt {
                id,
                token,
                attempt,
                lease,
            } => self.log.begin_send_update(id, token, attempt, now, *lease),
            LogWrite::Finish { id, token, finish } => {
                self.log.finish_update(id, token, *finish, now)
            }
        }
    }

    /// A counter write as a single-item conditional update (DESIGN §7), in the shape
    /// [`super::Counters`] reads and writes (`count`, `entries`, `version`, the TTL).
    fn counter_update(&self, write: &CounterWrite, now: Timestamp) -> Result<Update, StoreError> {
        let builder = Update::builder()
            .table_name(&self.log.table)
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let builder = match write {
            CounterWrite::Day {
                user_id,
                by,
                at_most,
            } => {
                let b = builder
                    .key(
                        LOG_KEY,
                        AttributeValue::S(counter_ids::user_day(user_id, now)),
                    )
                    .update_expression("ADD #count :by SET #ttl = :ttl")
                    .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
                    .expression_attribute_values(":ttl", seconds(now + DAY_COUNT_TTL));
                match at_most {
                    Some(limit) => b
                        .condition_expression("attribute_not_exists(#count) OR #count <= :limit")
                        .expression_attribute_values(":limit", number(*limit)),
                    None => b,
                }
            }
            CounterWrite::Window {
                user_id,
                entries,
                read_version,
            } => {
                let b = builder
                    .key(
                        LOG_KEY,
                        AttributeValue::S(counter_ids::user_rolling_24h(user_id)),
                    )
                    .update_expression(
                        "SET #count = :count, #entries = :entries, #version = :next, #ttl = :ttl",
                    )
                    .expression_attribute_names("#entries", "entries")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":count", number(entries.len() as u64))
                    .expression_attribute_values(
                        ":entries",
                        AttributeValue::L(
                            entries
                                .iter()
                                .map(|t| AttributeValue::N(t.to_string()))
                                .collect(),
                        ),
                    )
                    .expression_attribute_values(":next", number(read_version.unwrap_or(0) + 1))
                    // Kept for the window after its latest entry, as Counters keeps it.
                    .expression_attribute_values(
                        ":ttl",
                        seconds(now + SignedDuration::from_hours(24)),
                    );
                match read_version {
                    Some(v) => b
                        .condition_expression("#version = :read")
                        .expression_attribute_values(":read", number(*v)),
                    None => b
                        .condition_expression("attribute_not_exists(#key)")
                        .expression_attribute_names("#key", LOG_KEY),
                }
            }
        };
        builder
            .build()
            .map_err(|_| StoreError::Malformed("counter update"))
    }
}

fn decode<T>(
    failure: Failure<HashMap<String, AttributeValue>>,
    map: impl FnOnce(HashMap<String, AttributeValue>) -> Result<T, StoreError>,
) -> Result<Failure<T>, StoreError> {
    Ok(match failure {
        Failure::None => Failure::None,
        Failure::Conflict => Failure::Conflict,
        Failure::Condition(item) => Failure::Condition(item.map(map).transpose()?),
    })
}

fn chunked<T>(keys: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        chunks.push(keys.by_ref().take(MAX_READ_KEYS).collect());
    }
    chunks
}

fn log_key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(LOG_KEY.to_owned(), AttributeValue::S(id.to_owned()))])
}

fn seconds(t: Timestamp) -> AttributeValue {
    number(t.as_second().max(0) as u64)
}

fn n_of(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .map(|n| n.max(0) as u64)
}

fn count_of(item: &HashMap<String, AttributeValue>) -> u64 {
    n_of(item, "count").unwrap_or(0)
}

fn version_of(item: &HashMap<String, AttributeValue>) -> u64 {
    n_of(item, "version").unwrap_or(0)
}

fn entries_of(item: &HashMap<String, AttributeValue>) -> Vec<i64> {
    item.get("entries")
        .and_then(|v| v.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn counter_found(item: &HashMap<String, AttributeValue>) -> CounterFound {
    CounterFound {
        count: count_of(item),
        entries: entries_of(item),
        version: item.contains_key("version").then(|| version_of(item)),
    }
}

fn expired(item: &HashMap<String, AttributeValue>, now: Timestamp) -> bool {
    item.get(TTL_ATTRIBUTE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .is_some_and(|ttl| ttl <= now.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB refuses a name or value the expressions do not use (moto does not).
    #[test]
    fn counter_writes_use_every_name_and_value() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        let client = Client::from_conf(config);
        let log = LogStore::new(client.clone(), "log");
        let store = SendBatchStore::new(log, &PreferencesStore::new(client, "prefs"));
        let now: Timestamp = "2026-11-25T18:00:00Z".parse().unwrap();
        let writes = [
            CounterWrite::Day {
                user_id: "u".into(),
                by: 2,
                at_most: Some(3),
            },
            CounterWrite::Day {
                user_id: "u".into(),
                by: -1,
                at_most: None,
            },
            CounterWrite::Window {
                user_id: "u".into(),
                entries: vec![1, 2],
                read_version: Some(4),
            },
            CounterWrite::Window {
                user_id: "u".into(),
                entries: vec![],
                read_version: None,
            },
        ];
        for write in &writes {
            let u = store.counter_update(write, now).unwrap();
            let all = format!(
                "{} {}",
                u.update_expression(),
                u.condition_expression().unwrap_or_default()
            );
            let names = u.expression_attribute_names().into_iter().flatten();
            let values = u.expression_attribute_values().into_iter().flatten();
            crate::store::assert_placeholders_used(
                &all,
                names.map(|(k, _)| k).chain(values.map(|(k, _)| k)),
            );
        }
    }

    #[test]
    fn reads_are_chunked_at_100_keys() {
        let sizes: Vec<usize> = chunked((0..250).collect()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(chunked(Vec::<u8>::new()).is_empty());
    }

    #[test]
    fn counters_read_what_they_found() {
        let item = HashMap::from([
            ("count".to_owned(), AttributeValue::N("2".into())),
            (
                "entries".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::N("5".into()),
                    AttributeValue::N("7".into()),
                ]),
            ),
            ("version".to_owned(), AttributeValue::N("4".into())),
        ]);
        assert_eq!(
            counter_found(&item),
            CounterFound {
                count: 2,
                entries: vec![5, 7],
                version: Some(4)
            }
        );
        assert_eq!(counter_found(&HashMap::new()), CounterFound::default());
    }
}
