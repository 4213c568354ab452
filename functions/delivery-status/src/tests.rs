//! Every branch of the handler, on the in-memory stores of `fakes.rs` (the DynamoDB stores and
//! the end-to-end stories are tested on moto in `tests/it/delivery_status.rs`).

use crate::fakes::{FakeLog, FakeRecord};
use crate::{DeliveryStatus, DeliveryStatusError, RecordOutcome};
use aws_lambda_events::event::sns::SnsEvent;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sms_shared::clock::ManualClock;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::store::LogStatus;
use sms_shared::store::memory::MemoryPreferences;
use sms_shared::store::receipts::{EventKind, ReceiptTarget, hard_failure_counter_id};
use std::sync::Arc;

const PHONE: &str = "+14155550123";
const LOG_ID: &str = "battle-invite-81723";
/// The provider message id of the samples in `events/`.
const PROVIDER_ID: &str = "demo-provider-msg-1";
/// The samples' month (`messageRequestTimestamp`, 2026-11-25).
const SPEND: &str = "counter#spend#2026-11";
const CODE_SPEND: &str = "counter#code-spend#2026-11";
/// `totalMessagePrice` + `totalCarrierFee` of the samples, micro-USD.
const SAMPLE_TOTAL: i64 = 5_810 + 2_500;

type Handler = DeliveryStatus<FakeLog, MemoryPreferences>;

fn handler() -> Handler {
    let now: Timestamp = "2026-11-25T12:10:00Z".parse().unwrap();
    DeliveryStatus::with_stores(
        FakeLog::default(),
        MemoryPreferences::default(),
        Arc::new(ManualClock::new(now)),
    )
}

/// `events/sns-delivery-<name>.json`, its message edited by `edit`.
fn event(name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> SnsEvent {
    let path = format!(
        "{}/../../events/sns-delivery-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut event: SnsEvent = serde_json::from_str(&text).unwrap();
    let mut message: Value = serde_json::from_str(&event.records[0].sns.message).unwrap();
    edit(message.as_object_mut().unwrap());
    event.records[0].sns.message = message.to_string();
    event
}

fn sample(name: &str) -> SnsEvent {
    event(name, |_| {})
}

/// The sample `name` for record `log_id`, sent as provider message `provider_id`.
fn receipt(name: &str, log_id: &str, provider_id: &str) -> SnsEvent {
    event(name, |m| {
        m.insert("context".into(), json!({ "logId": log_id }));
        m.insert("messageId".into(), json!(provider_id));
    })
}

async fn handle(h: &Handler, event: SnsEvent) -> Vec<RecordOutcome> {
    h.handle(event).await.unwrap()
}

fn verified_user(user_id: &str, phone: &str) -> Preferences {
    let at: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
    let mut p = Preferences::new(user_id);
    p.phone_number = Some(phone.into());
    p.phone_verified = true;
    p.phone_verified_at = Some(at);
    let mut grant = ConsentEvent::new(user_id, at, ConsentAction::Grant, ConsentMethod::OptInModal);
    grant.phone_number = Some(phone.into());
    grant.apply_to(&mut p.consent);
    p
}

#[tokio::test]
async fn a_delivery_sets_delivered_and_adds_the_price_to_the_month() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    let outcomes = handle(&h, sample("delivered")).await;
    assert_eq!(outcomes, [RecordOutcome::Applied(EventKind::Delivered)]);
    let record = h.log.record(LOG_ID);
    assert_eq!(record.status(), Some(LogStatus::Delivered));
    assert_eq!(
        (record.price_micros, record.carrier_fee_micros),
        (5_810, 2_500)
    );
    assert_eq!(h.log.counter(SPEND), SAMPLE_TOTAL);
}

#[tokio::test]
async fn a_failure_sets_undelivered_with_the_event_type_and_counts_a_hard_one() {
    let h = handler();
    h.log.insert(FakeRecord::sent("hard", PHONE, "m-hard"));
    h.log
        .insert(FakeRecord::sent("soft", "+14155550199", "m-soft"));
    let hard = handle(&h, receipt("blocked", "hard", "m-hard")).await;
    let soft = handle(&h, receipt("ttl-expired", "soft", "m-soft")).await;
    assert_eq!(hard, [RecordOutcome::Applied(EventKind::Blocked)]);
    assert_eq!(soft, [RecordOutcome::Applied(EventKind::TtlExpired)]);
    for (id, reason) in [("hard", "TEXT_BLOCKED"), ("soft", "TEXT_TTL_EXPIRED")] {
        let record = h.log.record(id);
        assert_eq!(record.status(), Some(LogStatus::Undelivered));
        assert_eq!(record.reason.as_deref(), Some(reason));
    }
    assert_eq!(h.log.counter(&hard_failure_counter_id(PHONE)), 1);
    assert_eq!(h.log.counter(&hard_failure_counter_id("+14155550199")), 0);
}

#[tokio::test]
async fn the_third_hard_failure_makes_every_user_of_the_number_verify_again() {
    let h = handler();
    h.prefs.insert(verified_user("u-1", PHONE));
    h.prefs.insert(verified_user("u-2", PHONE));
    h.prefs.insert(verified_user("u-other", "+14155550199"));
    for (i, name) in ["blocked", "invalid"].into_iter().enumerate() {
        let id = format!("m-{i}");
        h.log.insert(FakeRecord::sent(&id, PHONE, &id));
        handle(&h, receipt(name, &id, &id)).await;
    }
    assert!(
        h.prefs.get("u-1").unwrap().phone_verified,
        "two failures are not yet a run"
    );

    h.log.insert(FakeRecord::sent("m-2", PHONE, "m-2"));
    let outcomes = handle(&h, receipt("unreachable", "m-2", "m-2")).await;
    assert_eq!(outcomes, [RecordOutcome::Applied(EventKind::Unreachable)]);
    let now: Timestamp = "2026-11-25T12:10:00Z".parse().unwrap();
    for user in ["u-1", "u-2"] {
        let p = h.prefs.get(user).unwrap();
        assert!(!p.phone_verified, "{user}");
        assert_eq!(p.phone_verified_at, None);
        assert_eq!(p.phone_undeliverable_at, Some(now));
        assert!(p.consent.given, "consent is not touched");
    }
    assert!(h.prefs.get("u-other").unwrap().phone_verified);
    assert!(h.prefs.history().is_empty(), "no consent event");
    assert_eq!(
        h.log.counter(&hard_failure_counter_id(PHONE)),
        0,
        "a re-verified number starts a fresh run"
    );
}

#[tokio::test]
async fn a_retry_after_counting_still_marks_the_number_even_when_the_receipt_changes_nothing() {
    let h = handler();
    h.prefs.insert(verified_user("u-1", PHONE));
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    handle(&h, sample("blocked")).await;
    // The crash: the run reached the limit, the users were not marked yet.
    h.log.set_counter(&hard_failure_counter_id(PHONE), 3);
    let outcomes = handle(&h, sample("blocked")).await;
    assert_eq!(
        outcomes,
        [RecordOutcome::Ignored("older_or_repeated_event")]
    );
    assert!(!h.prefs.get("u-1").unwrap().phone_verified);
    assert_eq!(h.log.counter(&hard_failure_counter_id(PHONE)), 0);
}

#[tokio::test]
async fn marking_that_keeps_losing_races_fails_the_invocation_and_keeps_the_run() {
    let h = handler();
    h.prefs.insert(verified_user("u-1", PHONE));
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    h.log.set_counter(&hard_failure_counter_id(PHONE), 2);
    h.prefs.lose_saves(usize::MAX);
    let err = h.handle(sample("blocked")).await.unwrap_err();
    assert!(matches!(err, DeliveryStatusError::Contended), "{err}");
    assert_eq!(
        h.log.counter(&hard_failure_counter_id(PHONE)),
        3,
        "kept for the retry"
    );

    h.prefs.lose_saves(0);
    handle(&h, sample("blocked")).await;
    assert!(
        !h.prefs.get("u-1").unwrap().phone_verified,
        "the retry marks"
    );
}

#[tokio::test]
async fn a_delivery_ends_the_run_of_hard_failures() {
    let h = handler();
    h.prefs.insert(verified_user("u-1", PHONE));
    for (i, name) in ["blocked", "invalid", "delivered", "blocked", "unreachable"]
        .into_iter()
        .enumerate()
    {
        let id = format!("m-{i}");
        h.log.insert(FakeRecord::sent(&id, PHONE, &id));
        handle(&h, receipt(name, &id, &id)).await;
    }
    assert_eq!(h.log.counter(&hard_failure_counter_id(PHONE)), 2);
    assert!(h.prefs.get("u-1").unwrap().phone_verified);
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_changes_nothing_but_its_price_counts_once() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    handle(&h, sample("delivered")).await;
    // Older (12:00:01 < 12:00:05), final, the same provider message: a late TEXT_SUCCESSFUL.
    let late = handle(&h, sample("successful")).await;
    let queued = handle(&h, sample("queued")).await;
    assert_eq!(late, [RecordOutcome::Ignored("older_or_repeated_event")]);
    assert_eq!(
        queued,
        [RecordOutcome::Ignored("older_event_or_final_status_kept")]
    );
    let record = h.log.record(LOG_ID);
    assert_eq!(record.status(), Some(LogStatus::Delivered));
    assert_eq!(record.applied, 1);
    assert_eq!(
        h.log.counter(SPEND),
        SAMPLE_TOTAL,
        "one provider message, one price"
    );
}

#[tokio::test]
async fn events_in_order_each_apply_and_a_replay_changes_nothing() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    let mut outcomes = Vec::new();
    for name in ["queued", "pending", "successful", "delivered", "delivered"] {
        outcomes.extend(handle(&h, sample(name)).await);
    }
    assert_eq!(
        outcomes,
        [
            RecordOutcome::Applied(EventKind::Queued),
            RecordOutcome::Applied(EventKind::Pending),
            RecordOutcome::Applied(EventKind::Successful),
            RecordOutcome::Applied(EventKind::Delivered),
            RecordOutcome::Ignored("older_or_repeated_event"),
        ]
    );
    assert_eq!(h.log.record(LOG_ID).status(), Some(LogStatus::Delivered));
    assert_eq!(h.log.counter(SPEND), SAMPLE_TOTAL);
}

#[tokio::test]
async fn a_price_too_old_to_change_the_status_is_still_counted_once() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    let without_price = event("delivered", |m| {
        m.remove("totalMessagePrice");
        m.remove("totalCarrierFee");
    });
    handle(&h, without_price).await;
    assert_eq!(h.log.counter(SPEND), 0);
    let older = handle(&h, sample("successful")).await;
    assert_eq!(older, [RecordOutcome::Ignored("older_or_repeated_event")]);
    assert_eq!(h.log.counter(SPEND), SAMPLE_TOTAL);
    handle(&h, sample("successful")).await;
    assert_eq!(h.log.counter(SPEND), SAMPLE_TOTAL);
}

#[tokio::test]
async fn a_codes_price_corrects_the_codes_budget_and_never_the_accounts_spend() {
    let h = handler();
    let mut code = FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID);
    code.target.kind = Some("phone_verification".into());
    h.log.insert(code);
    handle(&h, sample("delivered")).await;
    // verify-api reserved USD 0.01 for the one part; the price replaces it.
    assert_eq!(h.log.counter(CODE_SPEND), SAMPLE_TOTAL - 10_000);
    assert_eq!(h.log.counter(SPEND), 0);
}

#[tokio::test]
async fn without_a_log_id_the_provider_message_id_finds_the_record() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    let no_context = event("delivered", |m| {
        m.remove("context");
    });
    let outcomes = handle(&h, no_context).await;
    assert_eq!(outcomes, [RecordOutcome::Applied(EventKind::Delivered)]);
}

#[tokio::test]
async fn a_receipt_for_an_unknown_record_is_skipped_without_writes() {
    let h = handler();
    let outcomes = handle(&h, receipt("blocked", "no-such-record", "m-unknown")).await;
    assert_eq!(outcomes, [RecordOutcome::NoRecord]);
    assert_eq!(h.log.counter(SPEND), 0);
    assert_eq!(h.log.counter(&hard_failure_counter_id(PHONE)), 0);
}

#[tokio::test]
async fn malformed_events_are_skipped_and_the_rest_of_the_batch_applies() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    let mut batch = sample("delivered");
    let mut records = Vec::new();
    for message in [
        "not json".to_owned(),
        json!({"eventType": "VOICE_ANSWERED", "messageId": "m", "eventTimestamp": 1}).to_string(),
        json!({"eventType": "TEXT_DELIVERED", "eventTimestamp": 1}).to_string(),
    ] {
        let mut record = batch.records[0].clone();
        record.sns.message = message;
        records.push(record);
    }
    records.push(batch.records[0].clone());
    batch.records = records;
    let outcomes = handle(&h, batch).await;
    assert_eq!(
        outcomes,
        [
            RecordOutcome::Malformed,
            RecordOutcome::Malformed,
            RecordOutcome::Malformed,
            RecordOutcome::Applied(EventKind::Delivered),
        ]
    );
    assert_eq!(h.log.record(LOG_ID).applied, 1);
}

#[tokio::test]
async fn a_record_never_sent_ignores_receipts_and_their_price() {
    let h = handler();
    let mut suppressed = FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID);
    suppressed.target.status = Some(LogStatus::Suppressed);
    suppressed.target.attempted = false;
    h.log.insert(suppressed);
    let outcomes = handle(&h, sample("blocked")).await;
    assert_eq!(outcomes, [RecordOutcome::Ignored("record_not_sent")]);
    assert_eq!(h.log.counter(SPEND), 0);
    assert_eq!(h.log.counter(&hard_failure_counter_id(PHONE)), 0);
}

#[tokio::test]
async fn a_record_claimed_but_not_attempted_fails_the_invocation_for_a_retry() {
    let h = handler();
    let mut pending = FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID);
    pending.target.status = Some(LogStatus::Pending);
    pending.target.attempted = false;
    h.log.insert(pending);
    let err = h.handle(sample("delivered")).await.unwrap_err();
    assert!(
        matches!(&err, DeliveryStatusError::NotReady { log_id } if log_id == LOG_ID),
        "{err}"
    );
    assert_eq!(h.log.counter(SPEND), 0, "nothing counted before the retry");
}

#[tokio::test]
async fn a_receipt_settles_an_attempt_in_doubt() {
    let h = handler();
    for status in [LogStatus::Sending, LogStatus::Unknown] {
        let id = status.as_str();
        h.log.insert(FakeRecord {
            target: ReceiptTarget {
                status: Some(status),
                ..FakeRecord::sent(id, PHONE, id).target
            },
            provider_message_id: None,
            ..FakeRecord::sent(id, PHONE, id)
        });
        let outcomes = handle(&h, receipt("delivered", id, &format!("m-{id}"))).await;
        assert_eq!(outcomes, [RecordOutcome::Applied(EventKind::Delivered)]);
        let record = h.log.record(id);
        assert_eq!(record.status(), Some(LogStatus::Delivered));
        let provider_id = format!("m-{id}");
        assert_eq!(
            record.provider_message_id.as_deref(),
            Some(provider_id.as_str())
        );
    }
}

#[tokio::test]
async fn a_store_fault_fails_the_invocation() {
    let h = handler();
    h.log.insert(FakeRecord::sent(LOG_ID, PHONE, PROVIDER_ID));
    h.log.fail(true);
    let err = h.handle(sample("delivered")).await.unwrap_err();
    assert!(matches!(err, DeliveryStatusError::Store(_)), "{err}");
    h.log.fail(false);
    assert_eq!(h.log.record(LOG_ID).status(), Some(LogStatus::Sent));
}
