//! What the handler needs from the tables, one small trait per use (CONVENTIONS, "Seams"):
//! the DynamoDB stores of `sms-shared` implement them here, the in-memory fakes of the unit
//! tests (`src/fakes.rs`) implement them too. Each trait says what the handler relies on; the
//! DynamoDB conditions that keep it are documented on the store methods.

use jiff::Timestamp;
use sms_shared::store::receipts::{Price, Receipt, ReceiptOutcome, ReceiptTarget};
use sms_shared::store::{LogStore, StoreError};

/// Finding the log record a receipt belongs to: by the log id of its `Context`, else by the
/// provider message id; `None` when there is no such record.
pub trait ReceiptTargets: Send + Sync {
    fn find_receipt_target(
        &self,
        log_id: Option<&str>,
        provider_message_id: &str,
    ) -> impl Future<Output = Result<Option<ReceiptTarget>, StoreError>> + Send;
}

/// Applying a receipt's status to its record, once and in order (DESIGN §8), and moving the
/// number's run of hard failures in the same write (one up for a hard failure, back to 0 for
/// a delivery).
pub trait ReceiptStatuses: Send + Sync {
    fn apply_receipt(
        &self,
        target: &ReceiptTarget,
        receipt: &Receipt<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<ReceiptOutcome, StoreError>> + Send;
}

/// Adding a provider message's price to its record and `counted_micros` to the spend counter
/// `counter`, in one write, once per provider message. `true` when added now.
pub trait SpendCounters: Send + Sync {
    fn apply_price(
        &self,
        log_id: &str,
        provider_message_id: &str,
        price: Price,
        counter: &str,
        counted_micros: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A number's run of consecutive hard failures: read it, forget it.
pub trait HardFailureRuns: Send + Sync {
    fn hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn reset_hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Changing the preferences of every user of a number: the port beside the store.
pub use sms_shared::store::NumberPreferences;

impl ReceiptTargets for LogStore {
    fn find_receipt_target(
        &self,
        log_id: Option<&str>,
        provider_message_id: &str,
    ) -> impl Future<Output = Result<Option<ReceiptTarget>, StoreError>> + Send {
        LogStore::find_receipt_target(self, log_id, provider_message_id)
    }
}

impl ReceiptStatuses for LogStore {
    fn apply_receipt(
        &self,
        target: &ReceiptTarget,
        receipt: &Receipt<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<ReceiptOutcome, StoreError>> + Send {
        LogStore::apply_receipt(self, target, receipt, now)
    }
}

impl SpendCounters for LogStore {
    fn apply_price(
        &self,
        log_id: &str,
        provider_message_id: &str,
        price: Price,
        counter: &str,
        counted_micros: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        LogStore::apply_price(
            self,
            log_id,
            provider_message_id,
            price,
            counter,
            counted_micros,
            now,
        )
    }
}

impl HardFailureRuns for LogStore {
    fn hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        LogStore::hard_failures(self, e164, now)
    }

    fn reset_hard_failures(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        LogStore::reset_hard_failures(self, e164, now)
    }
}
