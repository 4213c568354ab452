//! The ports of [`crate::ports`] over DynamoDB (the three tables of DESIGN §9) and the SMS
//! API: what `main.rs` wires.

use crate::ports::{
    CodeIssue, CodeSend, FirstReads, Issuing, NewCode, PhoneVerification, WrongAttempts,
};
use jiff::{SignedDuration, Timestamp};
use sms_shared::clock::Clock;
use sms_shared::kinds::{MessageClass, MessageKind};
use sms_shared::opt_in::{self, Change, Claimed, ConfirmationSend, ConsentStore};
use sms_shared::outbound::{Message, Outbound, Sent};
use sms_shared::preferences::{ConsentEvent, Preferences};
use sms_shared::sms::{OutboundSms, SentSms, SmsError, SmsSender};
use sms_shared::store::fresh_attempt::FreshAttempt;
use sms_shared::store::verification::{FirstRead, Issue, Issued, Reservation};
use sms_shared::store::{Counters, LogStore, StoreError, UpdateError, VerificationStore};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tracing::warn;

/// The DynamoDB and SMS adapters of every port.
pub struct Stores<S> {
    pub codes: VerificationStore,
    /// The preferences, and the log table where opt-in confirmations are claimed.
    pub consent: ConsentStore,
    pub log: LogStore,
    /// Counters of the log table (the month's spend, the codes' budget).
    pub log_counters: Counters,
    pub sender: S,
    pub clock: Arc<dyn Clock>,
    /// The lease of a code's attempt (the function's claim lease).
    pub lease: SignedDuration,
}

impl<S> Stores<S> {
    fn outbound(&self) -> Outbound<'_, S> {
        Outbound {
            log: &self.log,
            sms: &self.sender,
            clock: self.clock.as_ref(),
            lease: self.lease,
        }
    }
}

impl<S: Send + Sync> FirstReads for Stores<S> {
    async fn first_read(
        &self,
        user_id: &str,
        counter_ids: &[String],
        now: Timestamp,
    ) -> Result<FirstRead, StoreError> {
        self.codes
            .read_with_preferences(
                user_id,
                &self.consent.preferences,
                &self.log_counters,
                counter_ids,
                now,
            )
            .await
    }
}

impl<S: Send + Sync> CodeIssue for Stores<S> {
    async fn issue(&self, code: &NewCode<'_>, now: Timestamp) -> Result<Issuing, StoreError> {
        let log = FreshAttempt {
            id: &code.record.log_id,
            user_id: Some(&code.record.user_id),
            kind: Some(MessageKind::PhoneVerification),
            record_type: None,
            class: MessageClass::Transactional,
            attempt: code.attempt,
        }
        .write(self.log_counters.table(), now, self.lease)?;
        let issue = Issue {
            code: code.record,
            windows: code.windows,
            budget: code.budget,
            log: &log.item,
        };
        Ok(
            match self.codes.issue(&issue, &self.log_counters, now).await? {
                Issued::Issued => Issuing::Issued { token: log.token },
                Issued::Cooldown { resend_after_ms } => Issuing::Cooldown { resend_after_ms },
                Issued::WindowFull { index } => Issuing::WindowFull { index },
                Issued::BudgetSpent => Issuing::BudgetSpent,
                Issued::Contended => Issuing::Contended,
            },
        )
    }
}

impl<S> Stores<S> {
    /// Gives a budget reservation back (best effort).
    async fn release(&self, reservation: &Reservation) {
        let by = -i64::try_from(reservation.micros).unwrap_or(i64::MAX);
        if let Err(e) = self
            .log_counters
            .add(&reservation.counter, by, reservation.keep_until)
            .await
        {
            warn!(error = %e, "giving back a code's budget reservation failed");
        }
    }
}

impl<S: SmsSender> CodeSend for Stores<S> {
    async fn send_code(
        &self,
        message: &Message<'_>,
        budget: &Reservation,
    ) -> Result<Sent, StoreError> {
        // The provider's answer is known before the outcome is written: a refusal gives the
        // budget back while the outcome is written (one round trip, not two).
        let (refused, answer) = oneshot::channel();
        let watched = Watched {
            sms: &self.sender,
            refused: Mutex::new(Some(refused)),
        };
        let outbound = Outbound {
            log: &self.log,
            sms: &watched,
            clock: self.clock.as_ref(),
            lease: self.lease,
        };
        let release = async {
            if answer.await == Ok(true) {
                self.release(budget).await;
            }
        };
        let (sent, ()) = tokio::join!(outbound.send_recorded(message), release);
        sent
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        self.sender.report_received(message_id).await
    }

    async fn message_id(&self, log_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .log
            .get(log_id)
            .await?
            .and_then(|record| record.provider_message_id))
    }
}

impl<S: Send + Sync> WrongAttempts for Stores<S> {
    async fn record_wrong_attempt(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.codes
            .record_wrong_attempt(user_id, code_id, max_attempts)
            .await
    }
}

impl<S: Send + Sync> PhoneVerification for Stores<S> {
    async fn verify<E, F>(
        &self,
        user_id: &str,
        code_id: &str,
        max_attempts: u32,
        now: Timestamp,
        read: Option<Preferences>,
        change: F,
    ) -> Result<Change, E>
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send,
    {
        // The code is used in the same transaction that saves the phone verified: if the
        // save fails, the code stays valid for the user's next try (§5).
        let consume = self
            .codes
            .consume_guard(user_id, code_id, max_attempts, now)
            .map_err(UpdateError::from)?;
        self.consent
            .change_guarded(user_id, now, read, std::slice::from_ref(&consume), change)
            .await
    }
}

/// An SMS sender that says, as soon as the provider answers, whether it refused the message
/// (an answer lost in transit is not a refusal: the message may be out).
struct Watched<'a, S> {
    sms: &'a S,
    refused: Mutex<Option<oneshot::Sender<bool>>>,
}

impl<S: SmsSender> SmsSender for Watched<'_, S> {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<SentSms, SmsError> {
        let answer = self.sms.send(sms).await;
        let refused = matches!(&answer, Err(e) if !matches!(e, SmsError::InDoubt { .. }));
        if let Some(tell) = self.refused.lock().ok().and_then(|mut t| t.take()) {
            let _ = tell.send(refused);
        }
        answer
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        self.sms.report_received(message_id).await
    }
}

impl<S: SmsSender> ConfirmationSend for Stores<S> {
    async fn send_claimed(&self, claimed: &Claimed) -> Option<&'static str> {
        opt_in::send_claimed(&self.outbound(), claimed).await
    }
}
