//! What the handler needs from the tables, one small trait per use (CONVENTIONS, "Seams"),
//! declared in `sms-shared` beside the DynamoDB stores that implement them
//! (`store::receipts`, `store::preferences`); the in-memory fakes of the unit tests
//! (`src/fakes.rs`, `sms_shared::store::memory`) implement them too. Each trait says what the
//! handler relies on; the DynamoDB conditions that keep it are documented on the store.

pub use sms_shared::store::NumberPreferences;
pub use sms_shared::store::receipts::{
    HardFailureRuns, ReceiptStatuses, ReceiptTargets, SpendCounters,
};
