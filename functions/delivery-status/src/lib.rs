//! `delivery-status`: applies End User Messaging delivery receipts to the SMS log (DESIGN §8).
//!
//! Each SNS record carries one SMS event record (JSON string). For each:
//! 1. parse and validate it; a malformed record (not JSON, a missing field, an unknown or
//!    non-SMS event type, a price that is not an amount) is logged with its SNS message id and
//!    skipped, with no write at all;
//! 2. find the log record: by the `logId` the sender put in `Context`, else by the provider
//!    message id; a receipt for a message we have no record of is logged and skipped;
//! 3. apply the status with the ordering rules of [`sms_shared::store::receipts`] (newer events
//!    only, a final status is never replaced by a non-final one, replays change nothing), and
//!    move the number's hard-failure counter in the same transaction;
//! 4. add the price and carrier fee to the record and the month's spend, once per provider
//!    message (a verification code's to the codes' own budget instead, DESIGN §7);
//! 5. after a hard failure, read the number's run of hard failures; at
//!    [`HARD_FAILURE_LIMIT`] every user with that number gets the phone marked unverified and
//!    undeliverable (they must verify again), then the run is reset.
//!
//! A transient fault (DynamoDB, or a record the sender has not finished yet) fails the
//! invocation: Lambda retries the asynchronous invocation and, after its retries, hands the
//! event to the on-failure destination. Every step is idempotent, so a retry after a partial
//! run completes it without counting anything twice.

pub mod answer;
pub mod ports;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use jiff::Timestamp;
use lambda_runtime::Diagnostic;
use ports::{HardFailureRuns, NumberPreferences, ReceiptStatuses, ReceiptTargets, SpendCounters};
use sms_shared::metrics::MetricSet;
use sms_shared::phone::mask;
use sms_shared::store::log::counter_ids;
use sms_shared::store::receipts::{EventKind, HARD_FAILURE_LIMIT, Receipt, ReceiptOutcome};
use sms_shared::store::{
    DynamoClient, LogStatus, LogStore, PreferencesStore, StoreError, UpdateError,
};
use sms_shared::verification::code_estimate_micros;
use sms_shared::{Clock, Config, MessageKind};
use std::sync::Arc;
use tracing::{info, warn};

/// The parsed receipt (core, so the fuzz crate needs no AWS), and the `Context` key under
/// which the sender attaches the log id.
pub use sms_core::receipt::{CONTEXT_LOG_ID, DeliveryEvent, MalformedEvent};

/// Name used in metrics.
const FUNCTION: &str = "delivery-status";

/// A fault that fails the invocation so Lambda retries it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryStatusError {
    #[error("DynamoDB request failed: {0}")]
    Store(#[from] StoreError),
    #[error("log record {log_id} is still being sent; the receipt is retried later")]
    NotReady { log_id: String },
    #[error("preferences of the users of a number kept changing; retried later")]
    Contended,
}

impl From<DeliveryStatusError> for Diagnostic {
    fn from(error: DeliveryStatusError) -> Self {
        let error_type = match &error {
            DeliveryStatusError::Store(_) => "StoreError",
            DeliveryStatusError::NotReady { .. } => "LogRecordNotReady",
            DeliveryStatusError::Contended => "PreferencesContended",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// What became of one SNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Applied(EventKind),
    Ignored(&'static str),
    NoRecord,
    Malformed,
}

/// The function's state, built once per cold start: the log (receipts, prices, hard-failure
/// runs) and the preferences, behind the [`ports`] the handler uses.
pub struct DeliveryStatus<L = LogStore, P = PreferencesStore> {
    log: L,
    prefs: P,
    clock: Arc<dyn Clock>,
}

impl DeliveryStatus {
    /// The handler on the DynamoDB tables of `config` (what `main` runs, and the integration
    /// tests with it).
    pub fn new(config: &Config, dynamodb: DynamoClient, clock: Arc<dyn Clock>) -> Self {
        Self::with_stores(
            LogStore::new(dynamodb.clone(), &config.tables.log),
            PreferencesStore::new(dynamodb, &config.tables.preferences),
            clock,
        )
    }
}

impl<L, P> DeliveryStatus<L, P>
where
    L: ReceiptTargets + ReceiptStatuses + SpendCounters + HardFailureRuns,
    P: NumberPreferences,
{
    pub fn with_stores(log: L, prefs: P, clock: Arc<dyn Clock>) -> Self {
        Self { log, prefs, clock }
    }

    /// Handles one SNS event. `Err` only for transient faults (Lambda retries the event).
    pub async fn handle(&self, event: SnsEvent) -> Result<Vec<RecordOutcome>, DeliveryStatusError> {
        sms_shared::sns::process_records(&event, FUNCTION, async |sns, metrics| {
            self.process(sns, metrics).await
        })
        .await
    }

    async fn process(
        &self,
        sns: &SnsMessage,
        metrics: &mut MetricSet,
    ) -> Result<RecordOutcome, DeliveryStatusError> {
        let sns_id = sns.message_id.as_str();
        let event = match DeliveryEvent::parse(&sns.message) {
            Ok(event) => event,
            Err(e) => {
                warn!(sns_message_id = sns_id, error = %e, "malformed delivery event skipped");
                metrics.add("MalformedEvent", None, 1.0);
                return Ok(RecordOutcome::Malformed);
            }
        };
        let now = self.clock.now();
        let Some(target) = self
            .log
            .find_receipt_target(event.log_id.as_deref(), &event.message_id)
            .await?
        else {
            warn!(
                sns_message_id = sns_id,
                provider_message_id = %event.message_id,
                log_id = event.log_id.as_deref().unwrap_or_default(),
                event_type = event.kind.as_str(),
                "no log record for this receipt; skipped"
            );
            return Ok(RecordOutcome::NoRecord);
        };
        let outcome = self
            .log
            .apply_receipt(&target, &receipt(&event), now)
            .await?;
        let result = match outcome {
            ReceiptOutcome::NotReady => {
                return Err(DeliveryStatusError::NotReady {
                    log_id: target.id.clone(),
                });
            }
            ReceiptOutcome::Ignored("record_not_sent") => {
                warn!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), "receipt for a record that was never sent; skipped");
                return Ok(RecordOutcome::Ignored("record_not_sent"));
            }
            ReceiptOutcome::Ignored(reason) => {
                info!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), reason, "receipt changes nothing");
                RecordOutcome::Ignored(reason)
            }
            ReceiptOutcome::Applied => {
                info!(sns_message_id = sns_id, log_id = %target.id, event_type = event.kind.as_str(), is_final = event.is_final, "receipt applied");
                match event.kind.status() {
                    LogStatus::Delivered => metrics.count("Delivered"),
                    LogStatus::Undelivered => {
                        metrics.add("Undelivered", Some(event.kind.reason()), 1.0)
                    }
                    _ => {}
                }
                RecordOutcome::Applied(event.kind)
            }
        };

        // Price: once per provider message, whichever event brings it first.
        if event.price.total_micros() > 0 {
            let month_of = event
                .request_ms
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .or_else(|| Timestamp::from_millisecond(event.event_ms).ok())
                .unwrap_or(now);
            // Codes have their own budget (DESIGN §7): their price replaces the estimate
            // reserved at send in the codes' counter, and never reaches the account's spend,
            // whose caps keep the room of security alerts and keyword replies.
            let total = i64::try_from(event.price.total_micros()).unwrap_or(i64::MAX);
            let (counter, counted) =
                if target.kind.as_deref() == Some(MessageKind::PhoneVerification.as_str()) {
                    let reserved = code_estimate_micros(target.segments.unwrap_or(1));
                    (
                        counter_ids::month_code_spend(month_of),
                        total.saturating_sub(i64::try_from(reserved).unwrap_or(i64::MAX)),
                    )
                } else {
                    (counter_ids::month_spend(month_of), total)
                };
            if self
                .log
                .apply_price(
                    &target.id,
                    &event.message_id,
                    event.price,
                    &counter,
                    counted,
                    now,
                )
                .await?
            {
                metrics.add("CostUsd", None, event.price.total_micros() as f64 / 1e6);
            }
        }

        // Hard failures: checked on every hard-failure event, applied or not, so a retry after
        // a crash between counting and marking still marks.
        let phone = target.phone_number.as_deref();
        if event.kind.is_hard_failure()
            && let Some(phone) = phone
        {
            let run = self.log.hard_failures(phone, now).await?;
            if run >= HARD_FAILURE_LIMIT {
                let marked = self.mark_undeliverable(phone, now).await?;
                self.log.reset_hard_failures(phone, now).await?;
                warn!(
                    to = %mask(phone),
                    hard_failures = run,
                    users = marked,
                    "number marked undeliverable; its users must verify again"
                );
                metrics.count("NumberUndeliverable");
            }
        }
        Ok(result)
    }

    /// Marks the phone of every user with `e164` unverified and undeliverable. Returns how
    /// many users changed.
    async fn mark_undeliverable(
        &self,
        e164: &str,
        now: Timestamp,
    ) -> Result<usize, DeliveryStatusError> {
        let updated = self
            .prefs
            .update_by_number(e164, now, |p| {
                if p.phone_verified || p.phone_undeliverable_at.is_none() {
                    p.phone_verified = false;
                    p.phone_verified_at = None;
                    p.phone_undeliverable_at = Some(now);
                }
                Vec::new()
            })
            .await?;
        Ok(updated.iter().filter(|u| u.changed).count())
    }
}

impl From<UpdateError> for DeliveryStatusError {
    fn from(err: UpdateError) -> Self {
        match err {
            UpdateError::Store(e) => DeliveryStatusError::Store(e),
            UpdateError::Contended | UpdateError::GuardFailed => DeliveryStatusError::Contended,
        }
    }
}

/// The receipt the log store applies, borrowed from the parsed event.
fn receipt(event: &DeliveryEvent) -> Receipt<'_> {
    Receipt {
        kind: event.kind,
        is_final: event.is_final,
        event_ms: event.event_ms,
        provider_message_id: &event.message_id,
        description: event.description.as_deref(),
        parts: event.parts,
        carrier_name: event.carrier_name.as_deref(),
        iso_country_code: event.iso_country_code.as_deref(),
    }
}
