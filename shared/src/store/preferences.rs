//! The preferences table (DESIGN §9): one current item per user (`sk = PREFS`) and the
//! append-only consent history (`sk = CONSENT#<ms>#<random>`), both under the user id.

use super::counters::batch_get_all;
use super::schema::{PREFS_BY_PHONE_INDEX, PREFS_PHONE_KEY, PREFS_PK, PREFS_SK};
use super::{StoreError, condition_failed};
use crate::preferences::{ConsentEvent, Preferences};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use jiff::Timestamp;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, from_items, to_item};
use std::collections::HashMap;

/// Sort key of the current-preferences item.
pub const CURRENT_SK: &str = "PREFS";
/// Sort-key prefix of consent history items.
pub const CONSENT_SK_PREFIX: &str = "CONSENT#";

/// Attempts at saving one user's preferences when others keep writing them.
pub const SAVE_RETRIES: usize = 5;

/// A transaction holds at most 100 items; one is the preferences item.
const MAX_EVENTS_PER_SAVE: usize = 99;

/// Result of a conditional save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Someone else saved first (the version moved): read again and retry.
    Conflict,
}

/// Access to the preferences table.
#[derive(Debug, Clone)]
pub struct PreferencesStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl PreferencesStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn current_key(user_id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PREFS_PK.to_owned(), s(user_id)),
            (PREFS_SK.to_owned(), s(CURRENT_SK)),
        ])
    }

    /// A user's current preferences (strongly consistent), `None` if never saved.
    pub async fn get(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::current_key(user_id)))
            .consistent_read(true)
            .send()
            .await?;
        out.item.map(from_item).transpose().map_err(Into::into)
    }

    /// Current preferences of many users, in `BatchGetItem`s of at most 100 keys.
    pub async fn batch_get<S: AsRef<str>>(
        &self,
        user_ids: &[S],
    ) -> Result<HashMap<String, Preferences>, StoreError> {
        let mut found = HashMap::with_capacity(user_ids.len());
        let mut unique: Vec<&str> = user_ids.iter().map(AsRef::as_ref).collect();
        unique.sort_unstable();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys = chunk.iter().map(|id| Self::current_key(id)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|_| StoreError::Malformed("batch get without keys"))?;
            for item in batch_get_all(&self.client, &self.table, request).await? {
                let prefs: Preferences = from_item(item)?;
                found.insert(prefs.user_id.clone(), prefs);
            }
        }
        Ok(found)
    }

    /// Saves `prefs` if nobody saved since it was read (`prefs.version` is the version read,
    /// 0 for a new user), appending `events` to the consent history in the same transaction.
    /// On success `prefs.version` and `updated_at` are advanced.
    pub async fn save(
        &self,
        prefs: &mut Preferences,
        events: &[ConsentEvent],
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        if events.len() > MAX_EVENTS_PER_SAVE {
            return Err(StoreError::Malformed("too many consent events in one save"));
        }
        let expected = prefs.version;
        let mut next = prefs.clone();
        next.version = expected + 1;
        next.updated_at = Some(now);
        let item = self.current_item(&next)?;
        // A new user must not exist yet; an existing one must still be at the version read.
        let (condition, name, values) = if expected == 0 {
            ("attribute_not_exists(#key)", PREFS_PK, None)
        } else {
            (
                "#key = :expected",
                "version",
                Some((":expected", AttributeValue::N(expected.to_string()))),
            )
        };

        let saved = if events.is_empty() {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#key", name)
                .set_expression_attribute_values(
                    values.map(|(k, v)| HashMap::from([(k.to_owned(), v)])),
                )
                .send()
                .await;
            match result {
                Ok(_) => true,
                Err(err) if condition_failed(&err) => false,
                Err(err) => return Err(err.into()),
            }
        } else {
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#key", name);
            if let Some((k, v)) = values {
                put = put.expression_attribute_values(k, v);
            }
            let mut items = vec![
                TransactWriteItem::builder()
                    .put(put.build().map_err(|_| StoreError::Malformed("put"))?)
                    .build(),
            ];
            for (i, event) in events.iter().enumerate() {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(self.event_item(event, next.version, i)?))
                    // Append-only: an event is never overwritten.
                    .condition_expression("attribute_not_exists(#sk)")
                    .expression_attribute_names("#sk", PREFS_SK)
                    .build()
                    .map_err(|_| StoreError::Malformed("put"))?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => true,
                Err(err)
                    if matches!(
                        err.as_service_error(),
                        Some(TransactWriteItemsError::TransactionCanceledException(_))
                    ) =>
                {
                    false
                }
                Err(err) => return Err(err.into()),
            }
        };
        if saved {
            *prefs = next;
            Ok(SaveOutcome::Saved)
        } else {
            Ok(SaveOutcome::Conflict)
        }
    }

    fn current_item(
        &self,
        prefs: &Preferences,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item: HashMap<String, AttributeValue> = to_item(prefs)?;
        item.insert(PREFS_SK.to_owned(), s(CURRENT_SK));
        // Only current items carry the index key, so the phone index never lists history.
        if let Some(phone) = &prefs.phone_number {
            item.insert(PREFS_PHONE_KEY.to_owned(), s(phone.clone()));
        }
        Ok(item)
    }

    /// History items sort by time, then by the preferences version they were saved with
    /// (unique per user and increasing), then by position in the save.
    fn event_item(
        &self,
        event: &ConsentEvent,
        version: u64,
        position: usize,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut item: HashMap<String, AttributeValue> = to_item(event)?;
        item.insert(
            PREFS_SK.to_owned(),
            s(format!(
                "{CONSENT_SK_PREFIX}{:013}#{version:010}#{position:02}",
                event.at.as_millisecond(),
            )),
        );
        Ok(item)
    }

    /// Every user whose current phone number is `e164` (STOP replies, carrier opt-outs).
    pub async fn find_by_phone(&self, e164: &str) -> Result<Vec<Preferences>, StoreError> {
        let mut users = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PREFS_BY_PHONE_INDEX)
                .key_condition_expression("#phone = :phone")
                .expression_attribute_names("#phone", PREFS_PHONE_KEY)
                .expression_attribute_values(":phone", s(e164))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            users.extend(from_items::<Preferences>(out.items.unwrap_or_default())?);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(users),
            }
        }
    }

    /// A user's consent history, oldest first.
    pub async fn consent_history(&self, user_id: &str) -> Result<Vec<ConsentEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :user AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PREFS_PK)
                .expression_attribute_names("#sk", PREFS_SK)
                .expression_attribute_values(":user", s(user_id))
                .expression_attribute_values(":prefix", s(CONSENT_SK_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            events.extend(from_items::<ConsentEvent>(out.items.unwrap_or_default())?);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(events),
            }
        }
    }

    /// Revokes consent of every user whose number is `e164` (a STOP reply, or AWS saying the
    /// number opted out), each with a history event built by `event`. Users without consent
    /// are left alone. Returns how many users were revoked. Concurrent writers are handled by
    /// re-reading and retrying a few times per user.
    pub async fn revoke_for_number(
        &self,
        e164: &str,
        now: Timestamp,
        event: impl Fn(&Preferences) -> ConsentEvent,
    ) -> Result<usize, StoreError> {
        let mut revoked = 0;
        for mut prefs in self.find_by_phone(e164).await? {
            for _ in 0..SAVE_RETRIES {
                if !prefs.consent.given || prefs.phone_number.as_deref() != Some(e164) {
                    break;
                }
                let change = event(&prefs);
                change.apply_to(&mut prefs.consent);
                match self
                    .save(&mut prefs, std::slice::from_ref(&change), now)
                    .await?
                {
                    SaveOutcome::Saved => {
                        revoked += 1;
                        break;
                    }
                    SaveOutcome::Conflict => match self.get(&prefs.user_id).await? {
                        Some(fresh) => prefs = fresh,
                        None => break,
                    },
                }
            }
        }
        Ok(revoked)
    }
}
