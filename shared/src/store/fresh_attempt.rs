//! A fresh log record written with its first attempt already recorded: steps 1 (claim) and 2
//! (record the attempt) of the one send protocol ([`crate::outbound`], docs/exactly-once.md)
//! as one conditional write, so it can ride in the transaction of the request that makes the
//! message (a verification code with its rate windows; an opt-in confirmation with the
//! preferences save that grants it). The send continues at step 3 with
//! [`crate::outbound::Outbound::send_recorded`] and the returned claim token.
//!
//! The record is exactly what [`super::LogStore::claim`] then [`super::LogStore::begin_send`]
//! leave (`sending`, one claim, one attempt, the lease, both history entries): it is written
//! from [`LogRecord`], the log's own item type. The condition is that the id is new, so a
//! second write of one id fails its transaction: the caller reads that as "already claimed".

use super::log::{LogRecord, LogStatus, StatusChange};
use super::schema::LOG_KEY;
use super::{Attempt, StoreError};
use crate::kinds::{MessageClass, MessageKind};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use jiff::{SignedDuration, Timestamp};
use serde_dynamo::aws_sdk_dynamodb_1::to_item;
use std::collections::HashMap;

/// What a fresh record says before its first `SendTextMessage`.
#[derive(Debug, Clone, Copy)]
pub struct FreshAttempt<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    /// A send request's or code's kind; `None` for other record types.
    pub kind: Option<MessageKind>,
    /// `recordType` (`opt_in_confirmation`, ...); `None` for codes.
    pub record_type: Option<&'a str>,
    pub class: MessageClass,
    pub attempt: Attempt<'a>,
}

/// The write of a fresh attempt and the claim token to send and finish it with.
#[derive(Debug, Clone)]
pub struct FreshWrite {
    pub item: TransactWriteItem,
    pub token: String,
}

impl FreshAttempt<'_> {
    /// The conditional `Put` of the record into `table` (the log table).
    pub fn write(
        &self,
        table: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<FreshWrite, StoreError> {
        let at_ms = now.as_millisecond();
        let change = |status| StatusChange {
            status,
            at_ms,
            reason: None,
        };
        let record = LogRecord {
            id: self.id.to_owned(),
            user_id: self.user_id.map(str::to_owned),
            phone_number: Some(self.attempt.phone_number.to_owned()),
            kind: self.kind,
            record_type: self.record_type.map(str::to_owned),
            class: self.class,
            body: Some(self.attempt.body.to_owned()),
            segments: Some(self.attempt.segments),
            encoding: Some(self.attempt.encoding.to_owned()),
            status: LogStatus::Sending,
            status_history: vec![change(LogStatus::Pending), change(LogStatus::Sending)],
            reason: None,
            provider_message_id: None,
            error_code: None,
            error_message: None,
            price_micros: None,
            carrier_fee_micros: None,
            related: None,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
            lease_until_ms: (now + lease).as_millisecond(),
            attempts: 1,
            sending_at_ms: Some(at_ms),
            send_attempts: 1,
        };
        let mut item: HashMap<String, AttributeValue> = to_item(&record)?;
        // Absent, not NULL: index keys (`providerMessageId`) must not be written as NULL.
        item.retain(|_, v| !matches!(v, AttributeValue::Null(_)));
        let token = claim_token()?;
        item.insert("claimToken".to_owned(), AttributeValue::S(token.clone()));
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", LOG_KEY)
            .build()
            .map_err(|_| StoreError::Malformed("fresh attempt put"))?;
        Ok(FreshWrite {
            item: TransactWriteItem::builder().put(put).build(),
            token,
        })
    }
}

/// A random token that identifies the claim.
fn claim_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| StoreError::Malformed("no randomness for a token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_attempt_is_a_claimed_record_in_sending_with_no_null_attributes() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let fresh = FreshAttempt {
            id: "verify-x",
            user_id: Some("u-1"),
            kind: Some(MessageKind::PhoneVerification),
            record_type: None,
            class: MessageClass::Transactional,
            attempt: Attempt {
                phone_number: "+14155550123",
                body: "code ******",
                segments: 1,
                encoding: "GSM-7",
            },
        };
        let write = fresh
            .write("log", now, SignedDuration::from_secs(60))
            .unwrap();
        let put = write.item.put().unwrap();
        let item = put.item();
        assert_eq!(item["status"], AttributeValue::S("sending".into()));
        assert_eq!(item["claimToken"], AttributeValue::S(write.token.clone()));
        assert_eq!(item["kind"], AttributeValue::S("phone_verification".into()));
        assert_eq!(item["attempts"], AttributeValue::N("1".into()));
        assert_eq!(item["sendAttempts"], AttributeValue::N("1".into()));
        assert!(!item.contains_key("providerMessageId"));
        assert!(item.values().all(|v| !v.is_null()));
        assert_eq!(
            put.condition_expression(),
            Some("attribute_not_exists(#id)")
        );
        // What a later reader makes of it: the record `claim` + `begin_send` leave.
        let back: LogRecord = serde_dynamo::aws_sdk_dynamodb_1::from_item(item.clone()).unwrap();
        assert_eq!(back.status, LogStatus::Sending);
        assert_eq!(back.status_history.len(), 2);
        assert_eq!(back.lease_until_ms, now.as_millisecond() + 60_000);
    }
}
