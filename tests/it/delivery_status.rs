//! `delivery-status` through its real handler, on moto: statuses, ordering, replays, price
//! once, hard failures, malformed events and faults (DESIGN §7, §8).

use aws_lambda_events::event::sns::SnsEvent;
use delivery_status::{CONTEXT_LOG_ID, DeliveryStatus, DeliveryStatusError, RecordOutcome};
use integration_tests::events::sns_event;
use integration_tests::iam::Recorder;
use integration_tests::{SmsStub, TestEnv};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use sms_shared::clock::ManualClock;
use sms_shared::kinds::MessageKind;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::sms::{EumSender, OutboundSms, SmsSender};
use sms_shared::store::log::counter_ids;
use sms_shared::store::receipts::{EventKind, HardFailureRuns, hard_failure_counter_id};
use sms_shared::store::schema::LOG_KEY;
use sms_shared::store::{
    Attempt, Claim, Counters, Finish, LogRecord, LogStatus, LogStore, NewLogRecord,
    PreferencesStore,
};
use sms_shared::{Clock, Config, MessageClass};
use std::sync::Arc;

/// Price and carrier fee of every sample event: 0.00581 + 0.0025 USD.
const COST_MICROS: u64 = 5_810 + 2_500;
/// `messageRequestTimestamp` of the sample events (2026-11-25T12:00:00Z).
const REQUEST_MS: i64 = 1_795_608_000_000;

struct Fixture {
    env: TestEnv,
    config: Config,
    log: LogStore,
    prefs: PreferencesStore,
    clock: Arc<ManualClock>,
    handler: DeliveryStatus,
    /// The handler's AWS calls, refused when its role in `template.yaml` does not allow them.
    calls: Recorder,
}

fn now() -> Timestamp {
    "2026-11-25T12:10:00Z".parse().unwrap()
}

async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let config = env.config();
    let clock = Arc::new(ManualClock::new(now()));
    let calls = Recorder::new("delivery-status", &env.vars_with(&[]));
    let handler = DeliveryStatus::new(&config, calls.dynamodb(&env.dynamodb), clock.clone());
    Fixture {
        calls,
        log: LogStore::new(env.dynamodb.clone(), &config.tables.log),
        prefs: PreferencesStore::new(env.dynamodb.clone(), &config.tables.preferences),
        config,
        clock,
        handler,
        env,
    }
}

impl Fixture {
    /// A log record as the sender leaves it: claimed, then finished `sent`.
    async fn sent(&self, id: &str, phone: &str, provider_message_id: &str) {
        let token = self.claim(id).await;
        let finished = self
            .log
            .finish(
                id,
                &token,
                Finish::Sent {
                    provider_message_id,
                    phone_number: phone,
                    body: "WordBattle: Ada challenged you. Reply STOP to unsubscribe.",
                    segments: 1,
                    encoding: "GSM-7",
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        assert!(finished);
    }

    async fn claim(&self, id: &str) -> String {
        let claim = self
            .log
            .claim(
                &NewLogRecord {
                    id,
                    user_id: Some("u-1"),
                    kind: MessageKind::BattleInvitation,
                    related: None,
                },
                self.clock.now(),
                SignedDuration::from_secs(120),
            )
            .await
            .unwrap();
        match claim {
            Claim::Claimed { token, .. } => token,
            other => panic!("claim: {other:?}"),
        }
    }

    async fn record(&self, id: &str) -> LogRecord {
        self.log.get(id).await.unwrap().expect("record exists")
    }

    async fn raw(&self, id: &str) -> Map<String, Value> {
        self.env.log_item(id).await
    }

    async fn month_total(&self) -> u64 {
        let id = counter_ids::month_spend(Timestamp::from_millisecond(REQUEST_MS).unwrap());
        Counters::new(self.env.dynamodb.clone(), &self.config.tables.log, LOG_KEY)
            .get_many(std::slice::from_ref(&id), self.clock.now())
            .await
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    async fn handle(&self, event: SnsEvent) -> Vec<RecordOutcome> {
        self.handler.handle(event).await.expect("handled")
    }

    /// A user with a verified phone and consent.
    async fn user(&self, user_id: &str, phone: &str) {
        let mut p = Preferences::new(user_id);
        p.phone_number = Some(phone.into());
        p.phone_verified = true;
        p.phone_verified_at = Some(now());
        p.allow_sms_invitations = true;
        let mut grant = ConsentEvent::new(
            user_id,
            now(),
            ConsentAction::Grant,
            ConsentMethod::OptInModal,
        );
        grant.phone_number = p.phone_number.clone();
        grant.apply_to(&mut p.consent);
        self.prefs.save(&mut p, &[grant], now()).await.unwrap();
    }
}

/// `events/sns-delivery-<name>.json` with its SMS event record edited.
fn event(name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> SnsEvent {
    sns_event(&format!("sns-delivery-{name}.json"), edit)
}

/// The sample event `name` for log record `log_id` / provider message `message_id`.
fn receipt(name: &str, log_id: &str, message_id: &str) -> SnsEvent {
    event(name, |m| {
        m.insert("context".into(), json!({ CONTEXT_LOG_ID: log_id }));
        m.insert("messageId".into(), json!(message_id));
    })
}

fn file_name(kind: EventKind) -> String {
    kind.as_str()
        .trim_start_matches("TEXT_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

#[tokio::test]
async fn every_event_type_lands_on_its_status() {
    let f = fixture().await;
    for (i, kind) in EventKind::ALL.into_iter().enumerate() {
        let id = format!("req-{i}");
        let phone = format!("+1415555{:04}", 100 + i);
        f.sent(&id, &phone, &format!("m-{i}")).await;
        let outcomes = f
            .handle(receipt(&file_name(kind), &id, &format!("m-{i}")))
            .await;
        assert_eq!(outcomes, [RecordOutcome::Applied(kind)], "{kind:?}");

        let record = f.record(&id).await;
        let expected = match kind {
            EventKind::Delivered => LogStatus::Delivered,
            EventKind::Successful | EventKind::Queued | EventKind::Pending => LogStatus::Sent,
            _ => LogStatus::Undelivered,
        };
        assert_eq!(record.status, expected, "{kind:?}");
        match expected {
            LogStatus::Undelivered => assert_eq!(record.reason.as_deref(), Some(kind.as_str())),
            _ => assert_eq!(record.reason, None, "{kind:?}"),
        }
        assert_eq!(record.price_micros, Some(5_810), "{kind:?}");
        assert_eq!(record.carrier_fee_micros, Some(2_500), "{kind:?}");
        assert_eq!(
            record.status_history.last().map(|c| c.status),
            Some(expected)
        );

        let raw = f.raw(&id).await;
        assert_eq!(raw["lastEventType"], json!(kind.as_str()));
        assert_eq!(raw["carrierName"], json!("Example Wireless"));
        assert_eq!(raw["isoCountryCode"], json!("US"));
        assert_eq!(raw["pricedMessages"], json!([format!("m-{i}")]));
        assert_eq!(
            raw.contains_key("deliveredAtMs"),
            kind == EventKind::Delivered
        );
    }
    assert_eq!(
        f.month_total().await,
        COST_MICROS * EventKind::ALL.len() as u64
    );
}

#[tokio::test]
async fn delivered_then_successful_keeps_delivered_and_counts_the_price_once() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    assert_eq!(
        f.handle(receipt("delivered", "req-1", "m-1")).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
    // Older events, final or not, arrive afterwards: nothing changes.
    for late in ["successful", "queued", "pending"] {
        let outcomes = f.handle(receipt(late, "req-1", "m-1")).await;
        assert!(
            matches!(outcomes[..], [RecordOutcome::Ignored(_)]),
            "{late}: {outcomes:?}"
        );
    }
    // A non-final event with a *newer* timestamp does not replace a final status either.
    let newer_pending = event("pending", |m| {
        m.insert("context".into(), json!({"logId": "req-1"}));
        m.insert("messageId".into(), json!("m-1"));
        m.insert("eventTimestamp".into(), json!(REQUEST_MS + 60_000));
    });
    assert!(matches!(
        f.handle(newer_pending).await[..],
        [RecordOutcome::Ignored(_)]
    ));
    // A newer final SUCCESSFUL does not downgrade a delivery.
    let newer_successful = event("successful", |m| {
        m.insert("context".into(), json!({"logId": "req-1"}));
        m.insert("messageId".into(), json!("m-1"));
        m.insert("eventTimestamp".into(), json!(REQUEST_MS + 60_000));
    });
    assert!(matches!(
        f.handle(newer_successful).await[..],
        [RecordOutcome::Ignored(_)]
    ));

    let record = f.record("req-1").await;
    assert_eq!(record.status, LogStatus::Delivered);
    let statuses: Vec<_> = record.status_history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [LogStatus::Pending, LogStatus::Sent, LogStatus::Delivered]
    );
    assert_eq!(record.price_micros, Some(5_810));
    assert_eq!(f.month_total().await, COST_MICROS);
}

#[tokio::test]
async fn events_in_order_each_apply_and_a_later_final_wins() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    for (name, kind) in [
        ("queued", EventKind::Queued),
        ("pending", EventKind::Pending),
        ("successful", EventKind::Successful),
        ("delivered", EventKind::Delivered),
    ] {
        assert_eq!(
            f.handle(receipt(name, "req-1", "m-1")).await,
            [RecordOutcome::Applied(kind)]
        );
    }
    let record = f.record("req-1").await;
    assert_eq!(record.status, LogStatus::Delivered);
    assert_eq!(record.status_history.len(), 2 + 4);
    assert_eq!(
        f.raw("req-1").await["deliveredAtMs"],
        json!((REQUEST_MS + 5_000).to_string())
    );
    assert_eq!(f.month_total().await, COST_MICROS);
}

#[tokio::test]
async fn duplicate_and_concurrent_replays_change_nothing() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    let first = f.handle(receipt("delivered", "req-1", "m-1")).await;
    assert_eq!(first, [RecordOutcome::Applied(EventKind::Delivered)]);
    let before = f.raw("req-1").await;

    let replays = (0..5).map(|_| f.handler.handle(receipt("delivered", "req-1", "m-1")));
    for result in futures_util::future::join_all(replays).await {
        assert!(matches!(result.unwrap()[..], [RecordOutcome::Ignored(_)]));
    }
    let after = f.raw("req-1").await;
    assert_eq!(before, after, "a replay must not write anything");
    assert_eq!(f.month_total().await, COST_MICROS);
}

#[tokio::test]
async fn concurrent_first_deliveries_apply_once() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    let copies = (0..6).map(|_| f.handler.handle(receipt("delivered", "req-1", "m-1")));
    let results = futures_util::future::join_all(copies).await;
    let applied = results
        .iter()
        .filter(|r| matches!(r.as_ref().map(|o| &o[..]), Ok([RecordOutcome::Applied(_)])))
        .count();
    // A transaction that lost a race is either ignored or retried (an `Err`), never applied twice.
    assert_eq!(applied, 1, "{results:?}");
    let record = f.record("req-1").await;
    assert_eq!(record.status_history.len(), 3);
    assert_eq!(f.month_total().await, COST_MICROS);
}

#[tokio::test]
async fn the_price_counts_once_even_when_only_an_old_event_carries_it() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    let unpriced = event("delivered", |m| {
        m.insert("context".into(), json!({"logId": "req-1"}));
        m.insert("messageId".into(), json!("m-1"));
        m.insert("totalMessagePrice".into(), json!(0.0));
        m.insert("totalCarrierFee".into(), json!(0.0));
    });
    f.handle(unpriced).await;
    assert_eq!(f.month_total().await, 0);
    // The older SUCCESSFUL event brings the price: the status stays, the price is recorded.
    let outcome = f.handle(receipt("successful", "req-1", "m-1")).await;
    assert!(matches!(outcome[..], [RecordOutcome::Ignored(_)]));
    f.handle(receipt("successful", "req-1", "m-1")).await;
    let record = f.record("req-1").await;
    assert_eq!(record.status, LogStatus::Delivered);
    assert_eq!(record.price_micros, Some(5_810));
    assert_eq!(f.month_total().await, COST_MICROS);
}

#[tokio::test]
async fn three_hard_failures_in_a_row_make_the_users_verify_again() {
    let f = fixture().await;
    let phone = "+14155550123";
    f.user("u-1", phone).await;
    f.user("u-2", phone).await;
    f.user("u-3", "+14155550199").await;
    for (i, name) in ["blocked", "invalid", "unreachable"]
        .into_iter()
        .enumerate()
    {
        let id = format!("req-{i}");
        f.sent(&id, phone, &format!("m-{i}")).await;
        f.handle(receipt(name, &id, &format!("m-{i}"))).await;
        let u1 = f.prefs.get("u-1").await.unwrap().unwrap();
        assert_eq!(u1.phone_verified, i < 2, "after {} hard failures", i + 1);
    }
    for user in ["u-1", "u-2"] {
        let p = f.prefs.get(user).await.unwrap().unwrap();
        assert!(!p.phone_verified, "{user}");
        assert_eq!(p.phone_verified_at, None);
        assert_eq!(p.phone_undeliverable_at, Some(now()));
        assert!(p.has_consent(), "consent is not touched");
    }
    let other = f.prefs.get("u-3").await.unwrap().unwrap();
    assert!(other.phone_verified, "another number is not affected");
    // The run starts over: the users verify again and get a fresh allowance.
    assert_eq!(f.log.hard_failures(phone, now()).await.unwrap(), 0);
    assert_eq!(
        f.raw(&hard_failure_counter_id(phone)).await["count"],
        json!("0")
    );
    // Replaying the third failure counts nothing.
    f.handle(receipt("unreachable", "req-2", "m-2")).await;
    assert_eq!(f.log.hard_failures(phone, now()).await.unwrap(), 0);
}

/// Issue 14: the reset rode in the receipt's transaction as a `Delete`, which AWS checks as
/// `dynamodb:DeleteItem`, a permission the role does not have: every delivered receipt would
/// have been refused. The fixture's recorder refuses what the template does not grant.
#[tokio::test]
async fn a_delivered_receipt_settles_and_resets_the_run_with_the_templates_permissions() {
    let f = fixture().await;
    let phone = "+14155550123";
    f.user("u-1", phone).await;
    for (i, name) in ["blocked", "invalid", "delivered"].into_iter().enumerate() {
        let id = format!("req-{i}");
        f.sent(&id, phone, &format!("m-{i}")).await;
        f.handle(receipt(name, &id, &format!("m-{i}"))).await;
    }
    assert_eq!(f.record("req-2").await.status, LogStatus::Delivered);
    assert_eq!(f.log.hard_failures(phone, now()).await.unwrap(), 0);
    let delivered = f
        .calls
        .calls()
        .into_iter()
        .rfind(|c| c.operation == "TransactWriteItems")
        .expect("the delivered receipt's transaction");
    assert!(
        delivered
            .accesses
            .iter()
            .all(|a| a.action == "dynamodb:UpdateItem" && a.resource.ends_with(":table/LogTable")),
        "{delivered:?}"
    );
    assert_eq!(
        delivered.accesses.len(),
        2,
        "status and counter: {delivered:?}"
    );
    assert!(f.calls.denied().is_empty(), "{:?}", f.calls.denied());
}

#[tokio::test]
async fn a_delivery_resets_the_run_and_soft_failures_do_not_count() {
    let f = fixture().await;
    let phone = "+14155550123";
    f.user("u-1", phone).await;
    let sequence = [
        "blocked",
        "invalid",
        "delivered",
        "blocked",
        "ttl-expired",
        "carrier-unreachable",
        "unknown",
        "spam",
        "carrier-blocked",
        "protect-blocked",
        "invalid-message",
        "unreachable",
    ];
    for (i, name) in sequence.into_iter().enumerate() {
        let id = format!("req-{i}");
        f.sent(&id, phone, &format!("m-{i}")).await;
        f.handle(receipt(name, &id, &format!("m-{i}"))).await;
    }
    assert_eq!(f.log.hard_failures(phone, now()).await.unwrap(), 2);
    assert!(f.prefs.get("u-1").await.unwrap().unwrap().phone_verified);
}

#[tokio::test]
async fn without_a_log_id_the_provider_message_id_finds_the_record() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-77").await;
    let no_context = event("delivered", |m| {
        m.insert("context".into(), json!({"account": "other"}));
        m.insert("messageId".into(), json!("m-77"));
    });
    assert_eq!(
        f.handle(no_context).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
    assert_eq!(f.record("req-1").await.status, LogStatus::Delivered);
}

#[tokio::test]
async fn the_context_key_matches_what_the_sender_attaches() {
    let f = fixture().await;
    let stub = SmsStub::start().await;
    let config = f.env.config_with(&[
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", "+18005550100"),
    ]);
    let sms = EumSender::new(stub.client(), &config.sms);
    let token = f.claim("req-1").await;
    let sent = sms
        .send(&OutboundSms {
            to: "+14155550123",
            body: "hello",
            class: MessageClass::Transactional,
            log_id: "req-1",
            message_feedback: false,
        })
        .await
        .unwrap();
    f.log
        .finish(
            "req-1",
            &token,
            Finish::Sent {
                provider_message_id: &sent.message_id,
                phone_number: "+14155550123",
                body: "hello",
                segments: 1,
                encoding: "GSM-7",
            },
            now(),
        )
        .await
        .unwrap();
    // The receipt carries back exactly the Context the provider was given.
    let context = stub.sent()[0].context.clone();
    let event = event("delivered", |m| {
        m.insert("context".into(), json!(context));
        m.insert("messageId".into(), json!(sent.message_id));
    });
    assert_eq!(
        f.handle(event).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
}

#[tokio::test]
async fn malformed_and_unknown_events_are_skipped_without_writes() {
    let f = fixture().await;
    f.sent("req-1", "+14155550123", "m-1").await;
    let before = f.raw("req-1").await;
    let cases: Vec<SnsEvent> = vec![
        event("delivered", |m| {
            m.insert("eventType".into(), json!("VOICE_COMPLETED"));
        }),
        event("delivered", |m| {
            m.remove("messageId");
        }),
        event("delivered", |m| {
            m.remove("eventTimestamp");
        }),
        event("delivered", |m| {
            m.insert("totalMessagePrice".into(), json!("lots"));
        }),
        {
            let mut e = receipt("delivered", "req-1", "m-1");
            e.records[0].sns.message = "{not json".into();
            e
        },
    ];
    for case in cases {
        assert_eq!(f.handle(case).await, [RecordOutcome::Malformed]);
    }
    assert_eq!(f.raw("req-1").await, before);
    assert_eq!(f.month_total().await, 0);

    // A receipt for a message we never logged is skipped too.
    assert_eq!(
        f.handle(receipt("delivered", "req-unknown", "m-unknown"))
            .await,
        [RecordOutcome::NoRecord]
    );
    assert!(
        f.raw("req-unknown").await.is_empty(),
        "no record is created"
    );

    // One bad record does not stop the good one next to it.
    let mut both = receipt("delivered", "req-1", "m-1");
    let mut bad = both.records[0].clone();
    bad.sns.message = "[]".into();
    both.records.insert(0, bad);
    assert_eq!(
        f.handle(both).await,
        [
            RecordOutcome::Malformed,
            RecordOutcome::Applied(EventKind::Delivered)
        ]
    );
}

#[tokio::test]
async fn a_record_the_sender_has_not_finished_is_retried_later() {
    let f = fixture().await;
    let token = f.claim("req-1").await;
    let err = f
        .handler
        .handle(receipt("delivered", "req-1", "m-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryStatusError::NotReady { .. }), "{err}");
    assert_eq!(f.record("req-1").await.status, LogStatus::Pending);
    assert_eq!(f.month_total().await, 0);
    // The sender's finish still owns the record.
    assert!(
        f.log
            .finish(
                "req-1",
                &token,
                Finish::Sent {
                    provider_message_id: "m-1",
                    phone_number: "+14155550123",
                    body: "hi",
                    segments: 1,
                    encoding: "GSM-7",
                },
                now(),
            )
            .await
            .unwrap()
    );
    // Lambda's retry then applies it.
    assert_eq!(
        f.handle(receipt("delivered", "req-1", "m-1")).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
}

#[tokio::test]
async fn a_dynamodb_fault_fails_the_invocation() {
    let f = fixture().await;
    let broken = f.env.config_with(&[("LOG_TABLE", "no-such-table")]);
    let handler = DeliveryStatus::new(&broken, f.env.dynamodb.clone(), f.clock.clone());
    let err = handler
        .handle(receipt("delivered", "req-1", "m-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryStatusError::Store(_)), "{err}");
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "StoreError");
}

#[tokio::test]
async fn a_receipt_settles_an_attempt_in_doubt_and_a_record_ended_unknown() {
    let f = fixture().await;
    // Two attempts whose answers were lost (the sender died after SendTextMessage): the
    // records say `sending`, with no provider message id.
    let log = f.log.clone().with_takeover_wait(SignedDuration::ZERO);
    for id in ["doubt-1", "doubt-2"] {
        let token = f.claim(id).await;
        let attempt = Attempt {
            phone_number: "+14155550123",
            body: "WordBattle: Ada challenged you. Reply STOP to unsubscribe.",
            segments: 1,
            encoding: "GSM-7",
        };
        let lease = SignedDuration::from_secs(120);
        assert!(
            log.begin_send(id, &token, &attempt, now(), lease)
                .await
                .unwrap()
        );
    }
    // The first one's receipt arrives while it is still `sending`: it is applied.
    assert_eq!(
        f.handle(receipt("delivered", "doubt-1", "m-doubt-1")).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
    let record = f.record("doubt-1").await;
    assert_eq!(record.status, LogStatus::Delivered);
    assert_eq!(record.provider_message_id.as_deref(), Some("m-doubt-1"));
    assert_eq!(
        f.month_total().await,
        COST_MICROS,
        "priced once, like any message"
    );

    // The second one's lease runs out with no receipt: the takeover ends it `unknown` (a
    // promotional kind is never resent). Its receipt, late, still says what happened.
    let later = now() + SignedDuration::from_secs(121);
    let claim = log
        .claim(
            &NewLogRecord {
                id: "doubt-2",
                user_id: Some("u-1"),
                kind: MessageKind::BattleInvitation,
                related: None,
            },
            later,
            SignedDuration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(matches!(claim, Claim::SettledUnknown(_)), "{claim:?}");
    assert_eq!(f.record("doubt-2").await.status, LogStatus::Unknown);
    assert_eq!(
        f.handle(receipt("delivered", "doubt-2", "m-doubt-2")).await,
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
    let record = f.record("doubt-2").await;
    assert_eq!(record.status, LogStatus::Delivered);
    assert_eq!(record.provider_message_id.as_deref(), Some("m-doubt-2"));
    assert!(f.calls.denied().is_empty());
}
