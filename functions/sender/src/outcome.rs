//! The one outcome each SQS record ends in (DESIGN §6), with its log line and metric.

use jiff::Timestamp;
use sms_shared::consent::SuppressReason;
use sms_shared::metrics::MetricSet;
use tracing::info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Suppressed(SuppressReason),
    /// Invalid request (dead-lettered), or refused by the provider for good.
    Rejected {
        reason: String,
        dead_lettered: bool,
    },
    Expired,
    /// An earlier attempt's answer was lost and no receipt came within the wait: maybe sent,
    /// never resent (promotional, DESIGN §6).
    Unknown,
    /// Already settled by an earlier delivery.
    Duplicate,
    /// Quiet hours: hidden on the queue until `until`.
    Deferred {
        until: Timestamp,
    },
    /// A transient fault: SQS delivers it again.
    Retry {
        reason: &'static str,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Suppressed(_) => "suppressed",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Expired => "expired",
            Outcome::Unknown => "unknown",
            Outcome::Duplicate => "duplicate",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Retry { .. } => "retry",
        }
    }

    /// Reported in `batchItemFailures`, so SQS keeps the record.
    pub fn needs_redelivery(&self) -> bool {
        matches!(self, Outcome::Deferred { .. } | Outcome::Retry { .. })
    }

    pub(crate) fn count(&self, metrics: &mut MetricSet) {
        match self {
            Outcome::Sent => metrics.count("Sent"),
            Outcome::Suppressed(reason) => metrics.add("Suppressed", Some(reason.as_str()), 1.0),
            Outcome::Rejected { .. } => metrics.count("Rejected"),
            Outcome::Expired => metrics.count("Expired"),
            Outcome::Unknown => metrics.count("Unknown"),
            Outcome::Duplicate => metrics.count("Duplicate"),
            Outcome::Deferred { .. } => metrics.count("Deferred"),
            Outcome::Retry { reason } => metrics.add("Retried", Some(reason), 1.0),
        }
    }

    pub(crate) fn log(&self, message_id: &str) {
        match self {
            Outcome::Suppressed(reason) => {
                info!(
                    message_id,
                    outcome = self.name(),
                    reason = reason.as_str(),
                    "send request settled"
                )
            }
            Outcome::Rejected {
                reason,
                dead_lettered,
            } => {
                info!(
                    message_id,
                    outcome = self.name(),
                    reason,
                    dead_lettered,
                    "send request settled"
                )
            }
            Outcome::Deferred { until } => {
                info!(message_id, outcome = self.name(), until = %until, "send request settled")
            }
            Outcome::Retry { reason } => {
                info!(
                    message_id,
                    outcome = self.name(),
                    reason,
                    "send request settled"
                )
            }
            _ => info!(message_id, outcome = self.name(), "send request settled"),
        }
    }
}
