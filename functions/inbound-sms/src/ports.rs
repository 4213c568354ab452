//! What the handler needs from the tables and the SMS provider, one small trait per use
//! (CONVENTIONS, "Seams"). The table ports are declared in `sms-shared` beside the stores that
//! implement them (`store::inbound`, `store::preferences`); the replies' port is here, with
//! its adapter over the log and the SMS API. The in-memory fakes of the unit tests
//! (`src/fakes.rs`, `sms_shared::store::memory`) implement them too.

use jiff::{SignedDuration, Timestamp};
use sms_shared::Clock;
use sms_shared::outbound::{self, Outbound, Sent};
use sms_shared::sms::SmsSender;
use sms_shared::store::{Claim, Finish, LogStore, NewReply, StoreError};
use std::sync::Arc;

/// The users of a number, and changing them all: the port beside the store.
pub use sms_shared::store::NumberPreferences;
/// The processed-once marker of each inbound message: the port beside the store.
pub use sms_shared::store::inbound::InboundMarkers;

/// Keyword replies, sent once by the one send protocol (`sms_shared::outbound`,
/// docs/exactly-once.md): claim the reply's log record, then either send it (attempt
/// recorded, `SendTextMessage`, outcome recorded) or end it unsent.
pub trait KeywordReplies: Send + Sync {
    /// Claims `reply#<inboundMessageId>`. A reply in doubt is never sent again: the claim
    /// ends it `unknown` (`SettledUnknown`).
    fn claim(
        &self,
        reply: &NewReply<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Sends a claimed reply ([`Outbound::send`]). `Err` only when the attempt could not be
    /// recorded, and then nothing was sent.
    fn send(
        &self,
        message: &outbound::Message<'_>,
    ) -> impl Future<Output = Result<Sent, StoreError>> + Send;

    /// Ends a claimed reply without sending it; `false` when the claim was lost.
    fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Replies on the log table, sent through `sms`.
pub struct LogReplies<S> {
    pub log: LogStore,
    pub sms: S,
    pub clock: Arc<dyn Clock>,
    /// The lease of a reply's claim and attempt (longer than the function's timeout).
    pub lease: SignedDuration,
}

impl<S: SmsSender> KeywordReplies for LogReplies<S> {
    fn claim(
        &self,
        reply: &NewReply<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        self.log.claim_reply(reply, now, self.lease)
    }

    async fn send(&self, message: &outbound::Message<'_>) -> Result<Sent, StoreError> {
        let outbound = Outbound {
            log: &self.log,
            sms: &self.sms,
            clock: self.clock.as_ref(),
            lease: self.lease,
        };
        outbound.send(message).await
    }

    fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.log.finish(id, token, finish, now)
    }
}
