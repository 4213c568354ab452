//! The preferences table (DESIGN §9): one current item per user (`sk = PREFS`) and the
//! append-only consent history (`sk = CONSENT#<ms>#<random>`), both under the user id.
//!
//! **One update protocol.** Every change of a user's preferences goes through
//! [`PreferencesStore::update`] (one user) or [`NumberPreferences::update_by_number`] (every
//! user of a number: STOP, START, a carrier opt-out, an undeliverable number): read, let the
//! caller's `change` edit a copy and name the consent events, save conditionally on the
//! version read (events in the same transaction), and on a lost race read again and retry,
//! at most [`UPDATE_ATTEMPTS`] times. Then it answers [`UpdateError::Contended`], which every
//! caller maps to "not done, try again" (409, a failed invocation that Lambda retries): no
//! caller loops on its own and none takes a contended update for a done one.

use super::counters::batch_get_all;
use super::schema::{PREFS_BY_PHONE_INDEX, PREFS_PHONE_KEY, PREFS_PK, PREFS_SK};
use super::{StoreError, condition_failed};
use crate::preferences::{ConsentEvent, Preferences};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use jiff::Timestamp;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, from_items, to_item};
use std::collections::HashMap;

/// Port: the users of a number, and changing them all by the one update protocol
/// ([`PreferencesStore::update`] for each of them: conditional on the version read, `Contended`
/// after losing too many races). What the SNS functions need (a STOP, a carrier opt-out, an
/// undeliverable number); `store::memory::MemoryPreferences` (the `fakes` feature) is its
/// in-memory fake.
pub trait NumberPreferences: Send + Sync {
    fn find_by_phone(
        &self,
        e164: &str,
    ) -> impl Future<Output = Result<Vec<Preferences>, StoreError>> + Send;

    fn update_by_number<F>(
        &self,
        e164: &str,
        now: Timestamp,
        change: F,
    ) -> impl Future<Output = Result<Vec<Updated>, UpdateError>> + Send
    where
        F: FnMut(&mut Preferences) -> Vec<ConsentEvent> + Send;
}

impl NumberPreferences for PreferencesStore {
    /// Every user whose current phone number is `e164` (STOP replies, carrier opt-outs).
    async fn find_by_phone(&self, e164: &str) -> Result<Vec<Preferences>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PREFS_BY_PHONE_INDEX)
            .key_condition_expression("#phone = :phone")
            .expression_attribute_names("#phone", PREFS_PHONE_KEY)
            .expression_attribute_values(":phone", s(e164));
        every_page(query).await
    }

    /// [`PreferencesStore::update`] for every user whose current number is `e164` (a STOP,
    /// a START, a carrier opt-out, an undeliverable number). A user whose number changed
    /// meanwhile is left alone. `Contended` when one user's preferences kept changing: the
    /// users before it stay updated, and calling again finishes the rest (a `change` that
    /// finds its work done changes nothing).
    async fn update_by_number<F>(
        &self,
        e164: &str,
        now: Timestamp,
        mut change: F,
    ) -> Result<Vec<Updated>, UpdateError>
    where
        F: FnMut(&mut Preferences) -> Vec<ConsentEvent> + Send,
    {
        let mut change = |p: &mut Preferences| Ok::<_, UpdateError>(change(p));
        let mut updated = Vec::new();
        for found in self.find_by_phone(e164).await? {
            let user_id = found.user_id.clone();
            let mut current = Some(found);
            let mut done = false;
            for _ in 0..UPDATE_ATTEMPTS {
                let prefs = match current.take() {
                    Some(prefs) => prefs,
                    None => match self.get(&user_id).await? {
                        Some(prefs) => prefs,
                        None => {
                            done = true;
                            break;
                        }
                    },
                };
                if prefs.phone_number.as_deref() != Some(e164) {
                    done = true;
                    break;
                }
                if let Some(result) = self.attempt(prefs, now, &[], &mut change).await? {
                    updated.push(result);
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(UpdateError::Contended);
            }
        }
        Ok(updated)
    }
}

/// Sort key of the current-preferences item.
pub const CURRENT_SK: &str = "PREFS";
/// Sort-key prefix of consent history items.
pub const CONSENT_SK_PREFIX: &str = "CONSENT#";

/// Attempts of one update of a user's preferences while other writers keep saving first.
pub const UPDATE_ATTEMPTS: usize = 5;

/// A transaction holds at most 100 items; one is the preferences item.
const MAX_EVENTS_PER_SAVE: usize = 99;

/// Result of a conditional save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Someone else saved first (the version moved): read again and retry.
    Conflict,
    /// A guard written in the same transaction found its condition false (nothing was saved).
    GuardFailed,
}

/// Why an update did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers saved first [`UPDATE_ATTEMPTS`] times in a row: not applied, try later.
    #[error("the preferences kept changing: {UPDATE_ATTEMPTS} attempts lost to other writers")]
    Contended,
    /// A guard's condition was false (e.g. the verification code was used meanwhile).
    #[error("a write that had to succeed with the update found its condition false")]
    GuardFailed,
}

/// One user's preferences after an update, and whether this update changed them.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    pub prefs: Preferences,
    pub changed: bool,
}

/// What one save attempt did (see [`PreferencesStore::save_all`]).
enum Saving {
    Done(SaveOutcome),
    /// Only the companion's condition was false: nothing written.
    CompanionRefused,
}

/// An update made by [`PreferencesStore::update_carrying`].
#[derive(Debug, Clone, PartialEq)]
pub struct Carried {
    /// The preferences the saved change started from.
    pub before: Preferences,
    pub updated: Updated,
    /// The companion write was made with it.
    pub companion: bool,
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
        self.save_guarded(prefs, events, &[], now).await
    }

    /// [`PreferencesStore::save`], with `guards`: conditional writes (of any table) in the same
    /// transaction, so the save happens only together with them ([`SaveOutcome::GuardFailed`]
    /// when one's condition is false).
    pub async fn save_guarded(
        &self,
        prefs: &mut Preferences,
        events: &[ConsentEvent],
        guards: &[TransactWriteItem],
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        Ok(
            match self.save_all(prefs, events, guards, None, now).await? {
                Saving::Done(outcome) => outcome,
                // No companion was given.
                Saving::CompanionRefused => SaveOutcome::Conflict,
            },
        )
    }

    /// [`PreferencesStore::save_guarded`] with a `companion`: one more write that rides in the
    /// same transaction when it can (an opt-in confirmation's fresh log record). When only the
    /// companion's condition is false, nothing is written and the answer says so, for the
    /// caller to save again without it.
    async fn save_all(
        &self,
        prefs: &mut Preferences,
        events: &[ConsentEvent],
        guards: &[TransactWriteItem],
        companion: Option<&TransactWriteItem>,
        now: Timestamp,
    ) -> Result<Saving, StoreError> {
        let extra = guards.len() + usize::from(companion.is_some());
        if events.len() + extra > MAX_EVENTS_PER_SAVE {
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

        let outcome = if events.is_empty() && extra == 0 {
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
                Ok(_) => SaveOutcome::Saved,
                Err(err) if condition_failed(&err) => SaveOutcome::Conflict,
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
            let first_guard = items.len();
            items.extend(guards.iter().cloned());
            let companion_at = items.len();
            items.extend(companion.cloned());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => SaveOutcome::Saved,
                Err(err) => match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                        let failed = |i: usize| {
                            e.cancellation_reasons()
                                .get(i)
                                .and_then(|r| r.code())
                                .is_some_and(|c| c == "ConditionalCheckFailed")
                        };
                        // A moved version first: the next attempt reads again and meets the
                        // guard with fresh data. Any other cancellation (a concurrent
                        // transaction on the same items) is a lost race too.
                        if !failed(0) && (first_guard..first_guard + guards.len()).any(failed) {
                            SaveOutcome::GuardFailed
                        } else if companion.is_some()
                            && failed(companion_at)
                            && !(0..companion_at).any(failed)
                        {
                            return Ok(Saving::CompanionRefused);
                        } else {
                            SaveOutcome::Conflict
                        }
                    }
                    _ => return Err(err.into()),
                },
            }
        };
        if outcome == SaveOutcome::Saved {
            *prefs = next;
        }
        Ok(Saving::Done(outcome))
    }

    /// Changes one user's preferences (the defaults of a new user when none are stored):
    /// `change` edits a copy and returns the consent events to append, or refuses with its
    /// own error (nothing written). Nothing is written when it changed nothing. Conditional on
    /// the version read; a lost race reads again and calls `change` again, at most
    /// [`UPDATE_ATTEMPTS`] times, then [`UpdateError::Contended`].
    pub async fn update<E, F>(&self, user_id: &str, now: Timestamp, change: F) -> Result<Updated, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
    {
        self.update_guarded(user_id, now, &[], change).await
    }

    /// [`PreferencesStore::update`] that saves only together with `guards` (see
    /// [`PreferencesStore::save_guarded`]): [`UpdateError::GuardFailed`] when one fails.
    pub async fn update_guarded<E, F>(
        &self,
        user_id: &str,
        now: Timestamp,
        guards: &[TransactWriteItem],
        mut change: F,
    ) -> Result<Updated, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
    {
        let no_companion = |_: &Preferences, _: &Preferences| Ok(None);
        self.update_carrying(user_id, now, None, guards, &mut change, no_companion)
            .await
            .map(|carried| carried.updated)
    }

    /// The whole update protocol of [`PreferencesStore::update_guarded`], plus:
    /// * `read`: the user's preferences as the caller just read them (with other items, in one
    ///   request; the defaults of a new user when none are stored), used by the first attempt
    ///   instead of reading again; later attempts read afresh;
    /// * `companion`: given the preferences before and after an attempt's change, one more
    ///   write to make in the same transaction (the fresh log record of the opt-in
    ///   confirmation the change owes). When only its condition fails (the record was written
    ///   before), the change is saved without it and [`Carried::companion`] is `false`.
    pub async fn update_carrying<E, F, C>(
        &self,
        user_id: &str,
        now: Timestamp,
        read: Option<Preferences>,
        guards: &[TransactWriteItem],
        mut change: F,
        mut companion: C,
    ) -> Result<Carried, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
        C: FnMut(&Preferences, &Preferences) -> Result<Option<TransactWriteItem>, E>,
    {
        let mut read = read;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = match read.take() {
                Some(current) => current,
                None => self
                    .get(user_id)
                    .await
                    .map_err(UpdateError::from)?
                    .unwrap_or_else(|| Preferences::new(user_id)),
            };
            if let Some(carried) = self
                .attempt_carrying(current, now, guards, &mut change, &mut companion)
                .await?
            {
                return Ok(carried);
            }
        }
        Err(UpdateError::Contended.into())
    }

    /// Revokes consent of every user of `e164` who has it (a STOP, or AWS saying the number
    /// opted out), each with the history event `event` builds. Returns how many were revoked.
    pub async fn revoke_number(
        &self,
        e164: &str,
        now: Timestamp,
        event: impl Fn(&Preferences) -> ConsentEvent + Sync,
    ) -> Result<usize, UpdateError> {
        let updated = self
            .update_by_number(e164, now, |p| {
                if !p.consent.given {
                    return Vec::new();
                }
                let change = event(p);
                change.apply_to(&mut p.consent);
                vec![change]
            })
            .await?;
        Ok(updated.iter().filter(|u| u.changed).count())
    }

    /// One attempt of an update from `current`: `None` when another writer saved first.
    async fn attempt<E, F>(
        &self,
        current: Preferences,
        now: Timestamp,
        guards: &[TransactWriteItem],
        change: &mut F,
    ) -> Result<Option<Updated>, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
    {
        let mut next = current.clone();
        let events = change(&mut next)?;
        if events.is_empty() && guards.is_empty() && next == current {
            return Ok(Some(Updated {
                prefs: current,
                changed: false,
            }));
        }
        match self
            .save_guarded(&mut next, &events, guards, now)
            .await
            .map_err(UpdateError::from)?
        {
            SaveOutcome::Saved => Ok(Some(Updated {
                prefs: next,
                changed: true,
            })),
            SaveOutcome::Conflict => Ok(None),
            SaveOutcome::GuardFailed => Err(UpdateError::GuardFailed.into()),
        }
    }

    /// [`PreferencesStore::attempt`] with a companion write (see
    /// [`PreferencesStore::update_carrying`]).
    async fn attempt_carrying<E, F, C>(
        &self,
        current: Preferences,
        now: Timestamp,
        guards: &[TransactWriteItem],
        change: &mut F,
        companion: &mut C,
    ) -> Result<Option<Carried>, E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
        C: FnMut(&Preferences, &Preferences) -> Result<Option<TransactWriteItem>, E>,
    {
        let mut next = current.clone();
        let events = change(&mut next)?;
        if events.is_empty() && guards.is_empty() && next == current {
            return Ok(Some(Carried {
                before: current.clone(),
                updated: Updated {
                    prefs: current,
                    changed: false,
                },
                companion: false,
            }));
        }
        let mut extra = companion(&current, &next)?;
        loop {
            let mut saved = next.clone();
            let outcome = self
                .save_all(&mut saved, &events, guards, extra.as_ref(), now)
                .await
                .map_err(UpdateError::from)?;
            return match outcome {
                Saving::Done(SaveOutcome::Saved) => Ok(Some(Carried {
                    before: current,
                    updated: Updated {
                        prefs: saved,
                        changed: true,
                    },
                    companion: extra.is_some(),
                })),
                Saving::Done(SaveOutcome::Conflict) => Ok(None),
                Saving::Done(SaveOutcome::GuardFailed) => Err(UpdateError::GuardFailed.into()),
                // Written before (an earlier save claimed it): the change alone.
                Saving::CompanionRefused => {
                    extra = None;
                    continue;
                }
            };
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

    /// A user's consent history, oldest first.
    pub async fn consent_history(&self, user_id: &str) -> Result<Vec<ConsentEvent>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :user AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PREFS_PK)
            .expression_attribute_names("#sk", PREFS_SK)
            .expression_attribute_values(":user", s(user_id))
            .expression_attribute_values(":prefix", s(CONSENT_SK_PREFIX))
            .consistent_read(true);
        every_page(query).await
    }
}

/// Every item `query` matches, page after page (a page stops at 1 MB), as `T`.
async fn every_page<T: serde::de::DeserializeOwned>(
    query: QueryFluentBuilder,
) -> Result<Vec<T>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = query.clone().set_exclusive_start_key(start).send().await?;
        items.extend(from_items::<T>(out.items.unwrap_or_default())?);
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}
