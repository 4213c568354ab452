//! The statuses of an SMS log record (DESIGN §6, §9): what a send request, a code or a reply
//! has come to. The log store writes them; delivery receipts map onto them
//! ([`crate::receipt::EventKind::status`]).

use serde::{Deserialize, Serialize};

/// Where a send request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// Claimed by an invocation that is deciding (until `leaseUntilMs`); nothing sent by it.
    Pending,
    /// Waiting for the quiet-hours window to open (until `leaseUntilMs`).
    Deferred,
    /// A transient fault; the next delivery of the request may claim it again.
    Retry,
    /// `SendTextMessage` is being called or was called (at `sendingAtMs`) and its answer is
    /// not recorded: the message may have gone out.
    Sending,
    Sent,
    Delivered,
    Undelivered,
    /// An attempt whose answer was lost and for which no receipt came: maybe sent, never
    /// resent. A later receipt still moves it to what the receipt says.
    Unknown,
    Suppressed,
    Rejected,
    Expired,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Pending => "pending",
            LogStatus::Deferred => "deferred",
            LogStatus::Retry => "retry",
            LogStatus::Sending => "sending",
            LogStatus::Sent => "sent",
            LogStatus::Delivered => "delivered",
            LogStatus::Undelivered => "undelivered",
            LogStatus::Unknown => "unknown",
            LogStatus::Suppressed => "suppressed",
            LogStatus::Rejected => "rejected",
            LogStatus::Expired => "expired",
        }
    }

    /// The request has not reached an outcome yet and may be claimed once its lease is over.
    pub fn is_claimable(self) -> bool {
        matches!(
            self,
            LogStatus::Pending | LogStatus::Deferred | LogStatus::Retry
        )
    }
}
