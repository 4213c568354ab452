//! An in-memory fake of every port of [`crate::ports`], for the handler's unit tests: the
//! tables as maps, the SMS API as a list, and each answer a store or provider can give on
//! demand (a busy transaction, a refused or unanswered send, a broken table).

use crate::ports::{
    CodeIssue, CodeSend, FirstReads, Issuing, NewCode, PhoneVerification, WrongAttempts,
};
use jiff::Timestamp;
use sms_shared::opt_in::memory::MemoryPreferences;
use sms_shared::opt_in::{Change, Claimed, ConfirmationSend};
use sms_shared::outbound::{Message, Sent};
use sms_shared::preferences::{ConsentEvent, Preferences};
use sms_shared::sms::SmsError;
use sms_shared::store::verification::{FirstRead, Reservation};
use sms_shared::store::{CodeRecord, StoreError, UpdateError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The fake world of one test.
pub struct Fake {
    pub prefs: MemoryPreferences,
    state: Mutex<World>,
}

#[derive(Default)]
struct World {
    codes: HashMap<String, CodeRecord>,
    counters: HashMap<String, u64>,
    /// Log records: id → provider message id once sent.
    log: HashMap<String, Option<String>>,
    /// (to, body) of every SMS the provider took.
    sms: Vec<(String, String)>,
    /// The provider's next answers (default: taken).
    answers: VecDeque<SmsError>,
    feedback: Vec<String>,
    contended: bool,
    broken: bool,
    /// What a concurrent request does to the user's code right after the next read.
    after_read: Option<Race>,
}

/// What a concurrent request does to a code.
type Race = Box<dyn FnOnce(&mut CodeRecord) + Send>;

impl Fake {
    pub fn new(prefs: MemoryPreferences) -> Self {
        Self {
            prefs,
            state: Mutex::default(),
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.state.lock().unwrap()
    }

    pub fn code(&self, user_id: &str) -> Option<CodeRecord> {
        self.world().codes.get(user_id).cloned()
    }

    pub fn set_code(&self, record: CodeRecord) {
        self.world().codes.insert(record.user_id.clone(), record);
    }

    pub fn counter(&self, id: &str) -> u64 {
        self.world().counters.get(id).copied().unwrap_or(0)
    }

    pub fn set_counter(&self, id: &str, value: u64) {
        self.world().counters.insert(id.to_owned(), value);
    }

    /// Counters whose id starts with `prefix`, with their values.
    pub fn counters(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut found: Vec<_> = self
            .world()
            .counters
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(id, v)| (id.clone(), *v))
            .collect();
        found.sort();
        found
    }

    /// Every SMS the provider took: (to, body).
    pub fn sms(&self) -> Vec<(String, String)> {
        self.world().sms.clone()
    }

    pub fn feedback(&self) -> Vec<String> {
        self.world().feedback.clone()
    }

    /// The provider's next answer.
    pub fn answer(&self, error: SmsError) {
        self.world().answers.push_back(error);
    }

    /// A concurrent request changes the code right after the next read (a race, on demand).
    pub fn after_read(&self, change: impl FnOnce(&mut CodeRecord) + Send + 'static) {
        self.world().after_read = Some(Box::new(change));
    }

    /// Transactions on the counters keep being cancelled by concurrent ones.
    pub fn contend(&self) {
        self.world().contended = true;
    }

    /// Every table request fails.
    pub fn break_tables(&self) {
        self.world().broken = true;
        self.prefs.break_store(true);
    }

    fn check_broken(world: &World) -> Result<(), StoreError> {
        if world.broken {
            Err(StoreError::Malformed("broken fake"))
        } else {
            Ok(())
        }
    }
}

impl FirstReads for Fake {
    async fn first_read(
        &self,
        user_id: &str,
        counter_ids: &[String],
        _now: Timestamp,
    ) -> Result<FirstRead, StoreError> {
        let mut world = self.world();
        Self::check_broken(&world)?;
        let code = world.codes.get(user_id).cloned();
        if let (Some(change), Some(stored)) =
            (world.after_read.take(), world.codes.get_mut(user_id))
        {
            change(stored);
        }
        Ok(FirstRead {
            code,
            prefs: self.prefs.get(user_id),
            counters: counter_ids
                .iter()
                .filter_map(|id| world.counters.get(id).map(|v| (id.clone(), *v)))
                .collect(),
        })
    }
}

impl CodeIssue for Fake {
    async fn issue(&self, code: &NewCode<'_>, now: Timestamp) -> Result<Issuing, StoreError> {
        let mut world = self.world();
        Self::check_broken(&world)?;
        let record = code.record;
        if let Some(previous) = world.codes.get(&record.user_id)
            && previous.resend_after_ms > now.as_millisecond()
        {
            return Ok(Issuing::Cooldown {
                resend_after_ms: previous.resend_after_ms,
            });
        }
        let count = |id: &str| world.counters.get(id).copied().unwrap_or(0);
        if let Some(index) = code.windows.iter().position(|w| count(&w.id) + 1 > w.cap) {
            return Ok(Issuing::WindowFull { index });
        }
        let budget = code.budget;
        if count(&budget.counter) + budget.micros > budget.cap {
            return Ok(Issuing::BudgetSpent);
        }
        if world.contended {
            return Ok(Issuing::Contended);
        }
        for window in code.windows {
            *world.counters.entry(window.id.clone()).or_default() += 1;
        }
        *world.counters.entry(budget.counter.clone()).or_default() += budget.micros;
        world.codes.insert(record.user_id.clone(), record.clone());
        world.log.insert(record.log_id.clone(), None);
        Ok(Issuing::Issued {
            token: "token".into(),
        })
    }
}

impl CodeSend for Fake {
    async fn send_code(
        &self,
        message: &Message<'_>,
        budget: &Reservation,
    ) -> Result<Sent, StoreError> {
        let mut world = self.world();
        Ok(match world.answers.pop_front() {
            None => {
                let message_id = format!("m-{}", world.sms.len() + 1);
                world
                    .sms
                    .push((message.to.to_owned(), message.body.to_owned()));
                world
                    .log
                    .insert(message.id.to_owned(), Some(message_id.clone()));
                Sent::Sent {
                    message_id,
                    recorded: true,
                }
            }
            Some(error @ SmsError::InDoubt { .. }) => {
                world
                    .sms
                    .push((message.to.to_owned(), message.body.to_owned()));
                Sent::InDoubt { error }
            }
            Some(error) => {
                let counter = world.counters.entry(budget.counter.clone()).or_default();
                *counter = counter.saturating_sub(budget.micros);
                Sent::Refused {
                    error,
                    recorded: true,
                }
            }
        })
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        self.world().feedback.push(message_id.to_owned());
        Ok(())
    }

    async fn message_id(&self, log_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.world().log.get(log_id).cloned().flatten())
    }
}

impl WrongAttempts for Fake {
    async fn record_wrong_attempt(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        let mut world = self.world();
        Self::check_broken(&world)?;
        Ok(match world.codes.get_mut(user_id) {
            Some(code)
                if code.code_id == code_id && code.attempts < max_attempts && !code.consumed =>
            {
                code.attempts += 1;
                Some(code.attempts)
            }
            _ => None,
        })
    }
}

impl PhoneVerification for Fake {
    async fn verify<E, F>(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
        _read: Option<Preferences>,
        change: F,
    ) -> Result<Change, E>
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send,
    {
        // The code's use is the save's guard, as in the transaction.
        let consume = || {
            let mut world = self.world();
            match world.codes.get_mut(user_id) {
                Some(code)
                    if code.code_id == code_id
                        && !code.consumed
                        && code.attempts < max_attempts
                        && code.expires_at_ms > now.as_millisecond() =>
                {
                    code.consumed = true;
                    true
                }
                _ => false,
            }
        };
        self.prefs.change_guarded(user_id, now, consume, change)
    }
}

impl ConfirmationSend for Fake {
    async fn send_claimed(&self, claimed: &Claimed) -> Option<&'static str> {
        self.prefs.send_claimed(claimed).await
    }
}
