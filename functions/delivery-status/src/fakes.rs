//! In-memory stores behind the [`crate::ports`], for the handler's unit tests. They keep the
//! rules the handler relies on, as the DynamoDB conditions of `store::receipts` keep them
//! (ordering, a final status kept, the price once per provider message, the run of hard
//! failures moved with the status), and can be told to fail.

use crate::ports::{HardFailureRuns, ReceiptStatuses, ReceiptTargets, SpendCounters};
use jiff::Timestamp;
use sms_shared::store::receipts::{
    Price, Receipt, ReceiptOutcome, ReceiptTarget, hard_failure_counter_id,
};
use sms_shared::store::{LogStatus, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A log record as the receipts see it.
#[derive(Debug, Clone)]
pub struct FakeRecord {
    pub target: ReceiptTarget,
    pub provider_message_id: Option<String>,
    pub last_event_ms: Option<i64>,
    pub receipt_final: bool,
    /// The event type of an `undelivered` status.
    pub reason: Option<String>,
    /// Receipts that changed the record.
    pub applied: u32,
    pub priced: BTreeSet<String>,
    pub price_micros: u64,
    pub carrier_fee_micros: u64,
}

impl FakeRecord {
    /// A record the sender finished `sent` to `phone` as provider message `provider_id`.
    pub fn sent(id: &str, phone: &str, provider_id: &str) -> Self {
        Self {
            target: ReceiptTarget {
                id: id.into(),
                status: Some(LogStatus::Sent),
                phone_number: Some(phone.into()),
                attempted: true,
                kind: Some("battle_invitation".into()),
                segments: Some(1),
            },
            provider_message_id: Some(provider_id.into()),
            last_event_ms: None,
            receipt_final: false,
            reason: None,
            applied: 0,
            priced: BTreeSet::new(),
            price_micros: 0,
            carrier_fee_micros: 0,
        }
    }

    pub fn status(&self) -> Option<LogStatus> {
        self.target.status
    }
}

#[derive(Debug, Default)]
struct LogTable {
    records: BTreeMap<String, FakeRecord>,
    /// Spend counters and hard-failure runs, by id.
    counters: BTreeMap<String, i64>,
}

/// The log table: records, spend counters and hard-failure runs.
#[derive(Debug, Default)]
pub struct FakeLog {
    table: Mutex<LogTable>,
    /// Every call answers a store fault while set.
    failing: AtomicBool,
}

impl FakeLog {
    pub fn insert(&self, record: FakeRecord) {
        let mut table = self.table.lock().unwrap();
        table.records.insert(record.target.id.clone(), record);
    }

    pub fn record(&self, id: &str) -> FakeRecord {
        self.table.lock().unwrap().records[id].clone()
    }

    pub fn counter(&self, id: &str) -> i64 {
        let table = self.table.lock().unwrap();
        table.counters.get(id).copied().unwrap_or(0)
    }

    pub fn set_counter(&self, id: &str, value: i64) {
        let mut table = self.table.lock().unwrap();
        table.counters.insert(id.into(), value);
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn table(&self) -> Result<std::sync::MutexGuard<'_, LogTable>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Malformed("the fake log table is failing"));
        }
        Ok(self.table.lock().unwrap())
    }
}

impl ReceiptTargets for FakeLog {
    async fn find_receipt_target(
        &self,
        log_id: Option<&str>,
        provider_message_id: &str,
    ) -> Result<Option<ReceiptTarget>, StoreError> {
        let table = self.table()?;
        let by_id = log_id.and_then(|id| table.records.get(id));
        let by_provider_id = || {
            table
                .records
                .values()
                .find(|r| r.provider_message_id.as_deref() == Some(provider_message_id))
        };
        Ok(by_id.or_else(by_provider_id).map(|r| r.target.clone()))
    }
}

impl ReceiptStatuses for FakeLog {
    async fn apply_receipt(
        &self,
        target: &ReceiptTarget,
        receipt: &Receipt<'_>,
        _now: Timestamp,
    ) -> Result<ReceiptOutcome, StoreError> {
        if let Some(answer) = target.unready() {
            return Ok(answer);
        }
        let mut table = self.table()?;
        let Some(record) = table.records.get_mut(&target.id) else {
            return Ok(ReceiptOutcome::Ignored("older_or_repeated_event"));
        };
        let ts = receipt.event_ms;
        let new_status = receipt.kind.status();
        let newer = record.last_event_ms.is_none_or(|last| last < ts);
        let applies = if receipt.is_final {
            newer || (record.last_event_ms == Some(ts) && !record.receipt_final)
        } else {
            newer && !record.receipt_final
        } && !(new_status == LogStatus::Sent
            && record.target.status == Some(LogStatus::Delivered));
        if !applies {
            return Ok(ReceiptOutcome::Ignored(if receipt.is_final {
                "older_or_repeated_event"
            } else {
                "older_event_or_final_status_kept"
            }));
        }
        record.target.status = Some(new_status);
        record.last_event_ms = Some(ts);
        record.receipt_final = receipt.is_final;
        record.applied += 1;
        record.reason =
            (new_status == LogStatus::Undelivered).then(|| receipt.kind.as_str().to_owned());
        record
            .provider_message_id
            .get_or_insert_with(|| receipt.provider_message_id.to_owned());
        if let Some(phone) = record.target.phone_number.clone() {
            let run = table
                .counters
                .entry(hard_failure_counter_id(&phone))
                .or_default();
            if receipt.kind.is_hard_failure() {
                *run += 1;
            } else if new_status == LogStatus::Delivered {
                *run = 0;
            }
        }
        Ok(ReceiptOutcome::Applied)
    }
}

impl SpendCounters for FakeLog {
    async fn apply_price(
        &self,
        log_id: &str,
        provider_message_id: &str,
        price: Price,
        counter: &str,
        counted_micros: i64,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut table = self.table()?;
        let Some(record) = table.records.get_mut(log_id) else {
            return Ok(false);
        };
        if !record.priced.insert(provider_message_id.to_owned()) {
            return Ok(false);
        }
        record.price_micros += price.price_micros;
        record.carrier_fee_micros += price.carrier_fee_micros;
        *table.counters.entry(counter.to_owned()).or_default() += counted_micros;
        Ok(true)
    }
}

impl HardFailureRuns for FakeLog {
    async fn hard_failures(&self, e164: &str, _now: Timestamp) -> Result<u64, StoreError> {
        let table = self.table()?;
        let run = table.counters.get(&hard_failure_counter_id(e164));
        Ok(run.map_or(0, |&n| u64::try_from(n).unwrap_or(0)))
    }

    async fn reset_hard_failures(&self, e164: &str, _now: Timestamp) -> Result<(), StoreError> {
        let mut table = self.table()?;
        table.counters.insert(hard_failure_counter_id(e164), 0);
        Ok(())
    }
}
