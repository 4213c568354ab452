//! What the handlers of `verify-api` need from the world, one small trait per use (issue #17):
//! the handlers are generic over them, `main.rs` wires the DynamoDB and SMS adapters
//! ([`crate::stores::Stores`]), and the unit tests an in-memory fake.
//!
//! Each port is one round trip of the request it serves (docs/http-api.md, "DynamoDB requests
//! per endpoint"): a start is [`FirstReads`], [`CodeIssue::issue`] and the outcome write inside
//! [`CodeSend::send_code`]; a check is [`FirstReads`], then [`PhoneVerification::verify`]
//! (alongside [`CodeSend::message_id`]) or [`WrongAttempts`], then the confirmation's outcome.

use jiff::Timestamp;
use sms_shared::opt_in::{Change, ConfirmationSend};
use sms_shared::outbound::{Message, Sent};
use sms_shared::preferences::{ConsentEvent, Preferences};
use sms_shared::sms::SmsError;
use sms_shared::store::verification::{FirstRead, Reservation};
use sms_shared::store::{Attempt, CodeRecord, StoreError, UpdateError};
use sms_shared::verification::Window;
use std::future::Future;

/// Port: a verification request's first read, in one round trip: the user's pending code,
/// their preferences, and counters of the log table (`counter_ids`; none for a check).
pub trait FirstReads: Send + Sync {
    fn first_read(
        &self,
        user_id: &str,
        counter_ids: &[String],
        now: Timestamp,
    ) -> impl Future<Output = Result<FirstRead, StoreError>> + Send;
}

/// A new code and what is written with it.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub record: &'a CodeRecord,
    /// The rate windows, in the order they are checked.
    pub windows: &'a [Window],
    pub budget: &'a Reservation,
    /// The SMS as its log record keeps it (the code redacted).
    pub attempt: Attempt<'a>,
}

/// What became of a [`NewCode`]: only `Issued` wrote anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuing {
    /// Written: the code, its windows and budget counted, its log record `sending` under
    /// this claim token.
    Issued { token: String },
    /// The previous code is inside its resend cooldown.
    Cooldown { resend_after_ms: i64 },
    /// `windows[index]` is full.
    WindowFull { index: usize },
    /// The codes' monthly budget has no room.
    BudgetSpent,
    /// Concurrent requests kept the counters busy: try again.
    Contended,
}

/// Port: a new code with its rate windows, budget reservation and log record, all or nothing
/// (one transaction).
pub trait CodeIssue: Send + Sync {
    fn issue(
        &self,
        code: &NewCode<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Issuing, StoreError>> + Send;
}

/// Port: the code's SMS from its recorded attempt on (the one send protocol: send, record
/// the outcome), the feedback that it arrived, and its provider message id.
pub trait CodeSend: Send + Sync {
    /// Sends the code and records the outcome; when the provider refuses it, also gives
    /// `budget` back (best effort, alongside the outcome's write: nothing to pay for).
    fn send_code(
        &self,
        message: &Message<'_>,
        budget: &Reservation,
    ) -> impl Future<Output = Result<Sent, StoreError>> + Send;

    fn report_received(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<(), SmsError>> + Send;

    /// The provider's id of the SMS logged as `log_id`, when the send was answered.
    fn message_id(
        &self,
        log_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// Port: a wrong guess against code `code_id`: the attempts now used, `None` when the code
/// is used up, used or replaced.
pub trait WrongAttempts: Send + Sync {
    fn record_wrong_attempt(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;
}

/// Port: the right code used and the phone saved verified, in one write (the one update
/// protocol, with the opt-in confirmation the change owes): [`UpdateError::GuardFailed`] when
/// the code can no longer be used, and then nothing is saved.
pub trait PhoneVerification: Send + Sync {
    fn verify<E, F>(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
        read: Option<Preferences>,
        change: F,
    ) -> impl Future<Output = Result<Change, E>> + Send
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send;
}

/// Everything the handler needs.
pub trait Ports:
    FirstReads + CodeIssue + CodeSend + WrongAttempts + PhoneVerification + ConfirmationSend
{
}

impl<T> Ports for T where
    T: FirstReads + CodeIssue + CodeSend + WrongAttempts + PhoneVerification + ConfirmationSend
{
}
