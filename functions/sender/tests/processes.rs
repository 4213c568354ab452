//! The sender as separate processes (DESIGN §6 "Exactly once when the sender dies
//! mid-send"): the `sender` binary cargo builds for these tests (`CARGO_BIN_EXE_sender`, the
//! debug profile: a release build would cost minutes on 2 cores), run under a local Lambda
//! Runtime API with moto and the SMS stub, fed from a real queue as Lambda's event source
//! mapping feeds it. Nothing is shared in memory between processes: what one process did, the
//! next can only learn from the log.
//!
//! The crash point is deterministic: the stub records `SendTextMessage` and holds its answer;
//! the test waits until the stub has it, then SIGKILLs the process, so its outcome can never
//! have been written. The takeover wait is 2 s here (`SEND_TAKEOVER_WAIT_SECONDS`; 10 min
//! deployed) and the lease 1 s.

use aws_lambda_events::event::sqs::SqsEvent;
use delivery_status::DeliveryStatus;
use integration_tests::events::sns_event;
use integration_tests::lambda_process::{
    LambdaProcess, midday_zone, queue_is_empty, settle_from_queue,
};
use integration_tests::sender_fixture::{invitation, request};
use integration_tests::sqs::{drain, make_visible, receive_event, send_bodies};
use integration_tests::{Behavior, SmsStub, TestEnv};
use jiff::Timestamp;
use serde_json::json;
use sms_shared::MessageKind;
use sms_shared::clock::SystemClock;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::store::{LogRecord, LogStatus, LogStore, PreferencesStore, SaveOutcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const PHONE: &str = "+14155550123";
/// The takeover wait of these tests (`SEND_TAKEOVER_WAIT_SECONDS`).
const WAIT: Duration = Duration::from_secs(2);
/// Longest a test waits for anything (a process's start, a queue to empty).
const PATIENCE: Duration = Duration::from_secs(60);

struct World {
    env: TestEnv,
    stub: SmsStub,
    log: LogStore,
    test: &'static str,
}

impl World {
    async fn new(test: &'static str) -> World {
        let _ = std::fs::remove_file(log_path(test));
        let env = TestEnv::new().await;
        let stub = SmsStub::start().await;
        World {
            log: LogStore::new(env.dynamodb.clone(), &env.tables.log),
            env,
            stub,
            test,
        }
    }

    /// A user who consented for `phone` and verified it, in a zone where it is midday now
    /// (the processes run on the real clock).
    async fn user(&self, user: &str, phone: &str) {
        let store = PreferencesStore::new(self.env.dynamodb.clone(), &self.env.tables.preferences);
        let now = Timestamp::now();
        let mut prefs = Preferences::new(user);
        prefs.phone_number = Some(phone.to_owned());
        prefs.phone_verified = true;
        prefs.allow_sms_invitations = true;
        prefs.time_zone = Some(midday_zone().to_owned());
        let mut grant =
            ConsentEvent::new(user, now, ConsentAction::Grant, ConsentMethod::OptInModal);
        grant.phone_number = Some(phone.to_owned());
        grant.apply_to(&mut prefs.consent);
        assert_eq!(
            store.save(&mut prefs, &[grant], now).await.unwrap(),
            SaveOutcome::Saved
        );
    }

    /// A fresh sender process; its output goes to [`log_path`].
    async fn sender(&self) -> LambdaProcess {
        let endpoint = self.stub.endpoint();
        let wait = WAIT.as_secs().to_string();
        let vars = [
            ("SMS_SENDER", "eum"),
            ("ORIGINATION_IDENTITY", "+18005550100"),
            ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", endpoint.as_str()),
            ("SMS_PARTS_PER_SECOND", "1000"),
            ("SEND_CLAIM_LEASE_SECONDS", "1"),
            ("SEND_TAKEOVER_WAIT_SECONDS", wait.as_str()),
            ("SMS_METRICS", "off"),
        ];
        LambdaProcess::start(
            env!("CARGO_BIN_EXE_sender").as_ref(),
            "sender",
            &self.env,
            &vars,
            &log_path(self.test),
        )
        .await
    }

    async fn record(&self, id: &str) -> LogRecord {
        self.log
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no log record {id}"))
    }

    /// Puts `body` on `queue` and hands its first delivery to a process that is killed right
    /// after the stub accepted the SMS (its answer held back). Returns that delivery.
    async fn crash_after_the_call(&self, queue: &str, body: String) -> SqsEvent {
        send_bodies(&self.env, queue, &[body]).await;
        let event = receive_event(&self.env, queue, 10).await;
        assert_eq!(event.records.len(), 1);
        self.stub.push(Behavior::Delay(PATIENCE));
        let mut first = self.sender().await;
        first.dispatch(&event);
        let sent = self.stub.wait_for_sent(1, PATIENCE).await;
        assert_eq!(sent.len(), 1, "the first process called SendTextMessage");
        first.kill();
        event
    }

    /// SQS delivers the record again (its visibility ran out) to a fresh process, which is
    /// fed from the queue until nothing is left on it.
    async fn redeliver_to_a_fresh_process(&self, queue: &str, first: &SqsEvent) {
        make_visible(&self.env, queue, first).await;
        let mut second = self.sender().await;
        let invocations = settle_from_queue(&mut second, &self.env, queue, 10, PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("the fresh process: {e}"));
        assert!(invocations >= 1);
        assert!(queue_is_empty(&self.env, queue).await);
    }
}

/// Where a test's processes write: `<target tmp>/processes/<test>.log` (JSON lines, numbers
/// masked, no code).
fn log_path(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("processes");
    std::fs::create_dir_all(&dir).expect("the log directory");
    dir.join(format!("{test}.log"))
}

/// The one request id of a body.
fn id_of(body: &str) -> String {
    sms_shared::request::SendRequest::parse(body).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotional_send_killed_after_the_call_is_never_sent_again() {
    let w = World::new("promotional_crash").await;
    w.user("u-crash", PHONE).await;
    let queue = w.env.queues.notifications.clone();
    let body = invitation("crash-promo", "u-crash");
    let first = w.crash_after_the_call(&queue, body.clone()).await;

    // The outcome was never written: the attempt is on record, in doubt.
    let record = w.record(&id_of(&body)).await;
    assert_eq!(record.status, LogStatus::Sending);
    assert_eq!(record.send_attempts, 1);

    w.redeliver_to_a_fresh_process(&queue, &first).await;
    assert_eq!(w.stub.sent().len(), 1, "at most once: never sent again");
    let record = w.record(&id_of(&body)).await;
    assert_eq!(record.status, LogStatus::Unknown);
    assert_eq!(record.send_attempts, 1);
    assert!(
        drain(&w.env, &w.env.queues.notifications_dlq)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_send_killed_after_the_call_is_sent_exactly_once_more() {
    let w = World::new("transactional_crash").await;
    w.user("u-crash", PHONE).await;
    let queue = w.env.queues.transactional.clone();
    let body = request("crash-alert", MessageKind::SecurityAlert, "u-crash");
    let first = w.crash_after_the_call(&queue, body.clone()).await;

    w.redeliver_to_a_fresh_process(&queue, &first).await;
    let sent = w.stub.sent();
    assert_eq!(sent.len(), 2, "at least once: exactly one more");
    assert!(sent.iter().all(|s| s.context["logId"] == id_of(&body)));
    assert!(
        sent[1].at - sent[0].at >= WAIT,
        "sent again only after the wait: {:?}",
        sent[1].at - sent[0].at
    );
    let record = w.record(&id_of(&body)).await;
    assert_eq!(record.status, LogStatus::Sent);
    assert_eq!(record.send_attempts, 2);
    assert_eq!(
        record.provider_message_id.as_deref(),
        Some(sent[1].message_id.as_str())
    );
    assert!(
        drain(&w.env, &w.env.queues.transactional_dlq)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_between_the_crash_and_the_redelivery_settles_the_send() {
    let w = World::new("receipt_after_crash").await;
    w.user("u-crash", PHONE).await;
    let queue = w.env.queues.transactional.clone();
    let body = request("crash-receipt", MessageKind::SecurityAlert, "u-crash");
    let first = w.crash_after_the_call(&queue, body.clone()).await;

    // The first SMS's receipt arrives (delivery-status, its own handler) before SQS delivers
    // the record again.
    let sms = &w.stub.sent()[0];
    let receipt = sns_event("sns-delivery-delivered.json", |m| {
        m.insert("context".into(), json!(sms.context));
        m.insert("messageId".into(), json!(sms.message_id));
    });
    DeliveryStatus::new(
        &w.env.config(),
        w.env.dynamodb.clone(),
        Arc::new(SystemClock),
    )
    .handle(receipt)
    .await
    .expect("the receipt is applied to the record in doubt");
    assert_eq!(w.record(&id_of(&body)).await.status, LogStatus::Delivered);

    w.redeliver_to_a_fresh_process(&queue, &first).await;
    assert_eq!(
        w.stub.sent().len(),
        1,
        "settled by its receipt: not sent again"
    );
    let record = w.record(&id_of(&body)).await;
    assert_eq!(record.status, LogStatus::Delivered);
    assert_eq!(record.send_attempts, 1);
    assert_eq!(
        record.provider_message_id.as_deref(),
        Some(sms.message_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sender_processes_on_one_queue_send_one_sms_per_request() {
    let w = World::new("two_processes").await;
    const REQUESTS: usize = 10;
    let mut bodies = Vec::new();
    for i in 0..REQUESTS {
        let user = format!("u-two-{i}");
        w.user(&user, &format!("+1415555{:04}", 4000 + i)).await;
        let body = invitation(&format!("two-{i}"), &user);
        // Each request three times: duplicates land in both processes' batches.
        bodies.extend([body.clone(), body.clone(), body]);
    }
    let queue = w.env.queues.notifications.clone();
    send_bodies(&w.env, &queue, &bodies).await;
    // Each send takes a moment, so both processes hold claims at the same time.
    w.stub
        .set_default(Behavior::Delay(Duration::from_millis(200)));

    let (mut a, mut b) = (w.sender().await, w.sender().await);
    let (ran_a, ran_b) = tokio::join!(
        settle_from_queue(&mut a, &w.env, &queue, 5, PATIENCE),
        settle_from_queue(&mut b, &w.env, &queue, 5, PATIENCE),
    );
    let (ran_a, ran_b) = (ran_a.expect("process a"), ran_b.expect("process b"));
    println!(
        "process {} answered {ran_a} invocations, process {} {ran_b}",
        a.pid(),
        b.pid()
    );
    assert!(ran_a > 0 && ran_b > 0, "both processes took batches");

    let sent = w.stub.sent();
    for i in 0..REQUESTS {
        let id = format!("two-{i}");
        let n = sent.iter().filter(|s| s.context["logId"] == id).count();
        assert_eq!(n, 1, "{id}: one SMS per request id");
        assert_eq!(w.record(&id).await.status, LogStatus::Sent, "{id}");
    }
    assert_eq!(sent.len(), REQUESTS);
    assert!(
        drain(&w.env, &w.env.queues.notifications_dlq)
            .await
            .is_empty()
    );
}
