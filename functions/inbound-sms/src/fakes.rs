//! In-memory stores behind the [`crate::ports`], for the handler's unit tests (the preferences:
//! `sms_shared::store::memory`). They keep what the handler relies on (a marker written once,
//! a reply claimed once and never sent twice, in doubt ending `unknown` at the next claim) and
//! can be told to fail or to answer a send with a provider error.

use crate::ports::{InboundMarkers, KeywordReplies};
use jiff::Timestamp;
use serde_json::json;
use sms_shared::outbound::{Message, Sent};
use sms_shared::sms::SmsError;
use sms_shared::store::inbound::InboundRecord;
use sms_shared::store::{Claim, Finish, LogRecord, LogStatus, NewReply, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;

/// A written processed-once marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub intent: String,
    pub users_changed: u32,
    pub reply_id: Option<String>,
}

/// The processed-once markers.
#[derive(Debug, Default)]
pub struct FakeMarkers {
    markers: Mutex<BTreeMap<String, Marker>>,
    /// Every call answers a store fault while set.
    failing: AtomicBool,
}

impl FakeMarkers {
    pub fn get(&self, inbound_message_id: &str) -> Option<Marker> {
        self.markers
            .lock()
            .unwrap()
            .get(inbound_message_id)
            .cloned()
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Malformed("the fake log table is failing"));
        }
        Ok(())
    }
}

impl InboundMarkers for FakeMarkers {
    async fn inbound_processed(&self, inbound_message_id: &str) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self.get(inbound_message_id).is_some())
    }

    async fn record_inbound(
        &self,
        record: &InboundRecord<'_>,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut markers = self.markers.lock().unwrap();
        if markers.contains_key(record.inbound_message_id) {
            return Ok(false);
        }
        let marker = Marker {
            intent: record.intent.to_owned(),
            users_changed: record.users_changed,
            reply_id: record.reply_id.map(str::to_owned),
        };
        markers.insert(record.inbound_message_id.to_owned(), marker);
        Ok(true)
    }
}

/// A reply's log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReply {
    pub status: LogStatus,
    pub reason: Option<String>,
    pub to: String,
    pub body: String,
    /// The token of the claim that holds it.
    pub token: Option<String>,
    /// `SendTextMessage` calls made for it.
    pub sends: u32,
}

/// One `SendTextMessage` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub to: String,
    pub body: String,
    /// The provider's refusal, or `None`: taken.
    pub refused: Option<SmsError>,
}

/// The replies' log records and the provider, as the one send protocol uses them.
#[derive(Debug, Default)]
pub struct FakeReplies {
    replies: Mutex<BTreeMap<String, FakeReply>>,
    /// What the provider answers the next sends (then: taken).
    answers: Mutex<VecDeque<SmsError>>,
    calls: Mutex<Vec<Call>>,
    claims: Mutex<u32>,
}

impl FakeReplies {
    pub fn get(&self, id: &str) -> Option<FakeReply> {
        self.replies.lock().unwrap().get(id).cloned()
    }

    /// The provider answers the next send with `error`.
    pub fn answer_next(&self, error: SmsError) {
        self.answers.lock().unwrap().push_back(error);
    }

    /// Every `SendTextMessage` call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The bodies of the calls that were not refused (taken, or maybe taken).
    pub fn sent(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| matches!(c.refused, None | Some(SmsError::InDoubt { .. })))
            .map(|c| c.body.clone())
            .collect()
    }

    /// Another invocation holds the claim of reply `id`.
    pub fn hold(&self, id: &str, to: &str) {
        let reply = FakeReply {
            status: LogStatus::Pending,
            reason: None,
            to: to.into(),
            body: String::new(),
            token: Some("another-invocation".into()),
            sends: 0,
        };
        self.replies.lock().unwrap().insert(id.into(), reply);
    }
}

/// The record a `Done` or `SettledUnknown` claim answers with.
fn log_record(id: &str, reply: &FakeReply) -> Box<LogRecord> {
    let record = json!({
        "id": id, "recordType": "keyword_reply", "class": "transactional",
        "phoneNumber": reply.to, "body": reply.body, "status": reply.status,
        "reason": reply.reason, "createdAtMs": 0, "updatedAtMs": 0,
    });
    Box::new(serde_json::from_value(record).expect("a reply maps to a log record"))
}

impl KeywordReplies for FakeReplies {
    async fn claim(&self, reply: &NewReply<'_>, _now: Timestamp) -> Result<Claim, StoreError> {
        let token = {
            let mut claims = self.claims.lock().unwrap();
            *claims += 1;
            format!("token-{claims}")
        };
        let mut replies = self.replies.lock().unwrap();
        let record = replies.entry(reply.id.to_owned()).or_insert(FakeReply {
            status: LogStatus::Retry,
            reason: None,
            to: reply.phone_number.into(),
            body: reply.body.into(),
            token: None,
            sends: 0,
        });
        match record.status {
            LogStatus::Pending => Ok(Claim::Busy {
                until_ms: 0,
                status: LogStatus::Pending,
            }),
            LogStatus::Retry => {
                record.status = LogStatus::Pending;
                record.token = Some(token.clone());
                Ok(Claim::Claimed { token, attempts: 1 })
            }
            // The lease of an attempt in doubt is over (the retry came later): a reply is
            // never sent again.
            LogStatus::Sending => {
                record.status = LogStatus::Unknown;
                record.token = None;
                Ok(Claim::SettledUnknown(log_record(reply.id, record)))
            }
            _ => Ok(Claim::Done(log_record(reply.id, record))),
        }
    }

    async fn send(&self, m: &Message<'_>) -> Result<Sent, StoreError> {
        let answer = self.answers.lock().unwrap().pop_front();
        let mut replies = self.replies.lock().unwrap();
        let Some(record) = replies
            .get_mut(m.id)
            .filter(|r| r.token.as_deref() == Some(m.token))
        else {
            return Ok(Sent::ClaimLost);
        };
        if m.start_by.is_some_and(|by| Instant::now() > by) {
            record.status = LogStatus::Retry;
            return Ok(Sent::TooLate { recorded: true });
        }
        record.sends += 1;
        record.to = m.to.into();
        record.body = m.body.into();
        self.calls.lock().unwrap().push(Call {
            to: m.to.into(),
            body: m.body.into(),
            refused: answer.clone(),
        });
        let Some(error) = answer else {
            record.status = LogStatus::Sent;
            record.token = None;
            return Ok(Sent::Sent {
                message_id: format!("provider-{}", m.id),
                recorded: true,
            });
        };
        if let SmsError::InDoubt { .. } = error {
            record.status = LogStatus::Sending;
            return Ok(Sent::InDoubt { error });
        }
        record.token = None;
        (record.status, record.reason) = match &error {
            SmsError::Transient { .. } if m.redelivered => (LogStatus::Retry, None),
            SmsError::OptedOut => (LogStatus::Suppressed, Some("carrier_opted_out".into())),
            _ => (
                LogStatus::Rejected,
                Some(format!("provider_{}", error.code())),
            ),
        };
        Ok(Sent::Refused {
            error,
            recorded: true,
        })
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish<'_>,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut replies = self.replies.lock().unwrap();
        let Some(record) = replies
            .get_mut(id)
            .filter(|r| r.token.as_deref() == Some(token))
        else {
            return Ok(false);
        };
        record.status = finish.status();
        record.token = None;
        record.reason = match finish {
            Finish::Suppressed { reason, .. } | Finish::Rejected { reason } => {
                Some(reason.to_owned())
            }
            _ => None,
        };
        Ok(true)
    }
}
