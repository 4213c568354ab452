//! The in-memory fake of the preferences table, for the handlers' unit tests (behind the
//! `fakes` feature, which the function crates enable as a dev-dependency only). It keeps the
//! one update protocol's answers ([`super::preferences`]: a change that changes nothing saves
//! nothing, a save bumps the version, lost races cost attempts and end `Contended`) and can
//! be told to lose saves or to fail. It implements [`NumberPreferences`] (the SNS functions)
//! and, with the `sms` feature, the ports of [`crate::opt_in`] (`opt_in::memory`: the APIs).

use super::preferences::{NumberPreferences, UPDATE_ATTEMPTS};
use super::{StoreError, UpdateError, Updated};
use crate::config::Branding;
use crate::preferences::{ConsentEvent, Preferences};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Preferences and their consent history, in memory.
#[derive(Debug, Default)]
pub struct MemoryPreferences {
    state: Mutex<State>,
    /// What the opt-in confirmations say, and where they may go.
    pub branding: Branding,
    pub allowed_countries: Vec<String>,
    /// Confirmations claimed and sent ([`crate::opt_in::memory`]).
    #[cfg(feature = "sms")]
    pub(crate) confirmations: Mutex<crate::opt_in::memory::Confirmations>,
}

#[derive(Debug, Default)]
struct State {
    prefs: BTreeMap<String, Preferences>,
    history: Vec<ConsentEvent>,
    /// Saves to lose to "another writer" (each costs one attempt).
    lose_saves: usize,
    /// Every read and write fails.
    broken: bool,
}

impl MemoryPreferences {
    pub fn new(branding: Branding, allowed_countries: &[String]) -> Self {
        Self {
            branding,
            allowed_countries: allowed_countries.to_vec(),
            ..Self::default()
        }
    }

    pub fn insert(&self, prefs: Preferences) {
        let mut state = self.state.lock().unwrap();
        state.prefs.insert(prefs.user_id.clone(), prefs);
    }

    pub fn get(&self, user_id: &str) -> Option<Preferences> {
        self.state.lock().unwrap().prefs.get(user_id).cloned()
    }

    /// Every consent event saved, oldest first.
    pub fn history(&self) -> Vec<ConsentEvent> {
        self.state.lock().unwrap().history.clone()
    }

    /// The next `n` saves lose to another writer (`usize::MAX`: every save, until reset to 0).
    pub fn lose_saves(&self, n: usize) {
        self.state.lock().unwrap().lose_saves = n;
    }

    /// Every read and write fails from now on (`false` heals it).
    pub fn break_store(&self, broken: bool) {
        self.state.lock().unwrap().broken = broken;
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        let state = self.state.lock().unwrap();
        if state.broken {
            return Err(StoreError::Malformed("broken fake"));
        }
        Ok(state)
    }

    /// A user's preferences, `None` if never saved (a store fault while broken).
    pub fn current(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        Ok(self.state()?.prefs.get(user_id).cloned())
    }

    /// The update protocol over one user's preferences: `change` edits a copy of the current
    /// ones (a new user's defaults); a change that changes nothing is not saved. `on_save`
    /// sees the state before and after and runs under the store's lock right before the save,
    /// as the other items of the save's transaction would: its `Err` saves nothing. Answers
    /// the state before and the update.
    pub fn update<E, F, S>(
        &self,
        user_id: &str,
        now: Timestamp,
        mut change: F,
        mut on_save: S,
    ) -> Result<(Preferences, Updated), E>
    where
        E: From<UpdateError>,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E>,
        S: FnMut(&Preferences, &Preferences) -> Result<(), E>,
    {
        let mut state = self.state().map_err(UpdateError::from)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let before = state
                .prefs
                .get(user_id)
                .cloned()
                .unwrap_or_else(|| Preferences::new(user_id));
            let mut after = before.clone();
            let events = change(&mut after)?;
            if events.is_empty() && after == before {
                let unchanged = Updated {
                    prefs: before.clone(),
                    changed: false,
                };
                return Ok((before, unchanged));
            }
            if state.lose_saves > 0 {
                state.lose_saves -= 1;
                continue;
            }
            after.version = before.version + 1;
            after.updated_at = Some(now);
            on_save(&before, &after)?;
            state.prefs.insert(user_id.to_owned(), after.clone());
            state.history.extend(events);
            let saved = Updated {
                prefs: after,
                changed: true,
            };
            return Ok((before, saved));
        }
        Err(UpdateError::Contended.into())
    }
}

impl NumberPreferences for MemoryPreferences {
    async fn find_by_phone(&self, e164: &str) -> Result<Vec<Preferences>, StoreError> {
        let state = self.state()?;
        let users = state.prefs.values();
        Ok(users
            .filter(|p| p.phone_number.as_deref() == Some(e164))
            .cloned()
            .collect())
    }

    async fn update_by_number<F>(
        &self,
        e164: &str,
        now: Timestamp,
        mut change: F,
    ) -> Result<Vec<Updated>, UpdateError>
    where
        F: FnMut(&mut Preferences) -> Vec<ConsentEvent> + Send,
    {
        let mut updated = Vec::new();
        for user in self.find_by_phone(e164).await? {
            let change = |p: &mut Preferences| Ok::<_, UpdateError>(change(p));
            let (_, user) = self.update(&user.user_id, now, change, |_, _| Ok(()))?;
            updated.push(user);
        }
        Ok(updated)
    }
}
