//! What the handler needs from the outside, as small traits shaped by use (CONVENTIONS.md,
//! "Seams"): the batch's read, the batch's writes (one request per step), the takeover of
//! a claim that found the record taken, a carrier opt-out's revocation, and the queue that
//! takes records back. Production implements them with the DynamoDB stores and SQS
//! ([`AwsPorts`]); the unit tests with in-memory fakes (`fakes.rs`).

use crate::queues::{Disposition, QueueError, Queues};
use aws_lambda_events::event::sqs::SqsMessage;
use jiff::{SignedDuration, Timestamp};
use sms_shared::kinds::MessageKind;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod};
use sms_shared::store::send_batch::{CounterWrite, LogWrite, SendBatchStore, SendRead, Written};
use sms_shared::store::{Claim, LogRecord, PreferencesStore, StoreError, UpdateError};
use std::future::Future;

/// Everything a batch's decisions read: one request (DESIGN §6, §7).
pub trait BatchReads: Send + Sync {
    fn read(
        &self,
        user_ids: &[&str],
        now: Timestamp,
    ) -> impl Future<Output = Result<SendRead, StoreError>> + Send;
}

/// One step of the send protocol for a whole batch, as one request: every write, or none
/// and, per write, why ([`Written::Cancelled`]).
pub trait BatchWrites: Send + Sync {
    fn write(
        &self,
        log: &[LogWrite<'_>],
        counters: &[CounterWrite],
        now: Timestamp,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;
}

/// The answer to a claim whose condition failed on `existing`: busy, done, or the takeover
/// of an attempt in doubt (DESIGN §6), as `LogStore::claim` answers.
pub trait Takeovers: Send + Sync {
    fn answer_failed_claim(
        &self,
        existing: LogRecord,
        kind: MessageKind,
        now: Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
}

/// A carrier opt-out revokes consent for every user of the number, as a STOP would (§6).
/// Returns how many users it revoked.
pub trait OptOuts: Send + Sync {
    fn revoke_number(
        &self,
        number: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<usize, UpdateError>> + Send;
}

/// The queues a record came from, as the sender hands records back (see [`crate::queues`]).
pub trait HandBack: Send + Sync {
    fn dead_letter(
        &self,
        record: &SqsMessage,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
    fn later(
        &self,
        record: &SqsMessage,
        by: SignedDuration,
    ) -> impl Future<Output = Disposition> + Send;
    fn retry_in(
        &self,
        record: &SqsMessage,
        by: SignedDuration,
    ) -> impl Future<Output = Disposition> + Send;
}

/// The ports of one sender.
#[derive(Debug, Clone)]
pub struct Ports<S, O, Q> {
    /// Reads, writes and takeovers.
    pub store: S,
    pub opt_outs: O,
    pub queues: Q,
}

/// The production ports: DynamoDB and SQS.
pub type AwsPorts = Ports<SendBatchStore, PreferencesStore, Queues>;

impl BatchReads for SendBatchStore {
    async fn read(&self, user_ids: &[&str], now: Timestamp) -> Result<SendRead, StoreError> {
        SendBatchStore::read(self, user_ids, now).await
    }
}

impl BatchWrites for SendBatchStore {
    async fn write(
        &self,
        log: &[LogWrite<'_>],
        counters: &[CounterWrite],
        now: Timestamp,
    ) -> Result<Written, StoreError> {
        SendBatchStore::write(self, log, counters, now).await
    }
}

impl Takeovers for SendBatchStore {
    async fn answer_failed_claim(
        &self,
        existing: LogRecord,
        kind: MessageKind,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        self.log().answer_failed_claim(existing, kind, now).await
    }
}

impl OptOuts for PreferencesStore {
    async fn revoke_number(&self, number: &str, now: Timestamp) -> Result<usize, UpdateError> {
        PreferencesStore::revoke_number(self, number, now, |p| {
            let mut event = ConsentEvent::new(
                p.user_id.clone(),
                now,
                ConsentAction::Revoke,
                ConsentMethod::CarrierOptOut,
            );
            event.phone_number = Some(number.to_owned());
            event
        })
        .await
    }
}

impl HandBack for Queues {
    async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> Result<(), QueueError> {
        Queues::dead_letter(self, record, reason).await
    }

    async fn later(&self, record: &SqsMessage, by: SignedDuration) -> Disposition {
        Queues::later(self, record, by).await
    }

    async fn retry_in(&self, record: &SqsMessage, by: SignedDuration) -> Disposition {
        Queues::retry_in(self, record, by).await
    }
}
