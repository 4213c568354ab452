//! `bench sender`: the sender's handler in this process, against moto and the SMS stub.
//!
//! * throughput: batches of 10 promotional requests (10 users each), handled one batch after
//!   another as one Lambda instance would: messages per second, CPU per message, DynamoDB
//!   requests per sent message (an SDK interceptor counts every attempt), `SendTextMessage`
//!   calls per message (the stub counts every call);
//! * pacing: the same with the stub enforcing a rate (3/s, a toll-free number; 100/s, a short
//!   code, is `bench pacing`) and the sender configured for it (`SMS_PARTS_PER_SECOND`,
//!   `SENDER_MAX_CONCURRENCY=1`).
//!   Records the handler reports as batch item failures are delivered again in later batches,
//!   as SQS would: delivered per second, throttled calls, and whether any request was lost or
//!   sent twice.
//!
//! CPU: the handler runs on a current-thread tokio runtime on the main thread, so every bit of
//! its work (its own code, the SDK, hyper's connection tasks, which the SDK spawns on the
//! current runtime) is on that thread, and `CLOCK_THREAD_CPUTIME_ID` measures exactly that.
//! The SMS stub runs on a runtime of its own (other threads) and moto is another process:
//! neither is counted. Process CPU (stub and harness included, moto not) is reported beside it.

use crate::fixtures::{self, invitation, seed_user};
use crate::util::{self, Mode, Part, Row, ShiftedClock, f};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use integration_tests::counting::counting_dynamodb;
use integration_tests::sqs::{queue_arn, send_bodies};
use integration_tests::{SmsStub, TestEnv};
use sender::{Outcome, Sender};
use sms_shared::Clock;
use sms_shared::sms::EumSender;
use sms_shared::store::PreferencesStore;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct users the requests of a run are spread over (10 per batch).
const USERS: usize = 100;

struct RunResult {
    messages: usize,
    sent_unique: usize,
    sent_total: usize,
    sms_calls: u64,
    throttled: u64,
    dynamodb_requests: usize,
    wall: Duration,
    thread_cpu: Duration,
    /// The same split: user (our code, the SDK, hyper) and system (syscalls, and the loopback
    /// TCP stack, which also does the receiving server's part of each packet on our thread).
    thread_user: Duration,
    thread_system: Duration,
    process_cpu: Duration,
    redeliveries: usize,
    batches: usize,
    /// Every outcome of the run, redeliveries included.
    outcomes: BTreeMap<String, usize>,
}

pub fn run(mode: Mode) {
    // The stub on its own runtime and threads, so its CPU is not the sender's.
    let stub_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sms-stub")
        .enable_all()
        .build()
        .expect("stub runtime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("sender runtime");
    rt.block_on(async {
        let mut part = Part::start("sender");
        let n = mode.pick(200, 1000);
        let r = run_once(&stub_rt, n, None).await;
        throughput_rows(&r, &mut part);
        sdk_floor_rows(&r, &mut part).await;
        if std::env::args().any(|a| a == "--throughput-only") {
            part.finish();
            return;
        }

        let slow = mode.pick(60, 1000);
        part.note(format!(
            "pacing at 3/s: {slow} messages take about {} s",
            slow / 3
        ));
        let r = run_once(&stub_rt, slow, Some(3.0)).await;
        pacing_rows("pacing 3/s", 3.0, &r, &mut part);
        // 100/s (a short code) is `bench pacing`: against moto it measured moto (~45/s).
        part.note(
            "sender CPU: thread CPU time of the handler's thread (CLOCK_THREAD_CPUTIME_ID); moto \
             (another process) and the SMS stub (its own runtime) are excluded; process CPU \
             includes the stub and the harness"
                .into(),
        );
        part.finish();
    });
}

/// `messages` requests through the handler; `rate`: the stub enforces it and the sender is
/// configured for it, else the rate is unlimited on both sides.
async fn run_once(
    stub_rt: &tokio::runtime::Runtime,
    messages: usize,
    rate: Option<f64>,
) -> RunResult {
    let env = TestEnv::new().await;
    let stub = stub_rt
        .spawn(SmsStub::start())
        .await
        .expect("start the SMS stub");
    let pps = rate.unwrap_or(1_000_000.0).to_string();
    let config = env.config_with(&[
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", fixtures::ORIGINATION),
        ("SMS_PARTS_PER_SECOND", pps.as_str()),
        ("SENDER_MAX_CONCURRENCY", "1"),
        ("DAILY_PROMOTIONAL_CAP", "1000000"),
    ]);
    let clock = Arc::new(ShiftedClock::at_noon());
    let store = PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences);
    let users = USERS.min(messages.max(10));
    for i in 0..users {
        seed_user(
            &store,
            &format!("b-{i}"),
            &fixtures::phone(i),
            None,
            clock.now(),
        )
        .await;
    }
    // Ten warm-up requests (connections, first-use costs) that are not measured, then the run.
    let warmup: Vec<String> = (0..10)
        .map(|k| invitation(&format!("warmup-{k}"), &format!("b-{}", k % users)))
        .collect();
    let bodies: Vec<String> = (0..messages)
        .map(|k| invitation(&format!("bench-{k}"), &format!("b-{}", k % users)))
        .collect();
    let queue = env.queues.notifications.clone();
    let warm_records = receive_all(&env, &queue, &warmup).await;
    let run_records = receive_all(&env, &queue, &bodies).await;

    let (dynamodb, counter) = counting_dynamodb(&env.sdk);
    let sms = EumSender::new(
        fixtures::production_like_sms_client(&stub).await,
        &config.sms,
    );
    let sender = Sender::new(&config, dynamodb, env.sqs.clone(), sms, clock);
    drain(&sender, warm_records, &mut BTreeMap::new()).await;
    if let Some(rate) = rate {
        // After the warm-up, so the run starts with the provider's bucket full, as after a
        // quiet minute.
        tokio::time::sleep(Duration::from_secs_f64((10.0 / rate).min(5.0))).await;
        stub.limit_rate(rate);
    }
    let calls_before = stub.requests();
    counter.reset();
    let started = Instant::now();
    let cpu = util::thread_cpu();
    let (user, system) = util::thread_user_system();
    let process_cpu = util::process_cpu();
    let mut outcomes = BTreeMap::new();
    let (batches, redeliveries) = drain(&sender, run_records, &mut outcomes).await;
    let thread_cpu = util::thread_cpu() - cpu;
    let (user_after, system_after) = util::thread_user_system();
    let thread_user = user_after - user;
    let thread_system = system_after - system;
    let process_cpu = util::process_cpu() - process_cpu;
    let wall = started.elapsed();

    let mut per_request: HashMap<String, usize> = HashMap::new();
    for sms in stub.sent() {
        if let Some(id) = sms
            .context
            .get("logId")
            .filter(|id| id.starts_with("bench-"))
        {
            *per_request.entry(id.clone()).or_default() += 1;
        }
    }
    RunResult {
        messages,
        sent_unique: per_request.len(),
        sent_total: per_request.values().sum(),
        sms_calls: stub.requests() - calls_before,
        throttled: stub.throttled(),
        dynamodb_requests: counter.get(),
        wall,
        thread_cpu,
        thread_user,
        thread_system,
        process_cpu,
        redeliveries,
        batches,
        outcomes,
    }
}

/// Sends the bodies to the queue and receives each exactly once, with a real receipt handle.
/// Nothing deletes them (Lambda's event source mapping would), so they are received with the
/// longest visibility timeout (12 h): none comes back during the run, and a message of an
/// earlier step (the warm-up) is never taken for one of these.
async fn receive_all(env: &TestEnv, queue: &str, bodies: &[String]) -> VecDeque<SqsMessage> {
    send_bodies(env, queue, bodies).await;
    let arn = queue_arn(env, queue).await;
    let mut seen = HashSet::new();
    let mut records = VecDeque::new();
    let mut empty = 0;
    while records.len() < bodies.len() && empty < 20 {
        let out = env
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(43_200)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
        }
        for m in messages {
            if !seen.insert(m.message_id.clone()) {
                continue;
            }
            let mut record = SqsMessage::default();
            record.message_id = m.message_id;
            record.receipt_handle = m.receipt_handle;
            record.body = m.body;
            record.attributes = m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(arn.clone());
            record.aws_region = Some(integration_tests::TEST_REGION.into());
            records.push_back(record);
        }
    }
    assert_eq!(
        records.len(),
        bodies.len(),
        "every request must be receivable"
    );
    records
}

/// Handles the records in batches of 10 until none is left; records reported as batch item
/// failures are delivered again at the end of the queue. Returns (batches, redeliveries).
async fn drain<S: sms_shared::sms::SmsSender>(
    sender: &Sender<S>,
    mut pending: VecDeque<SqsMessage>,
    tally: &mut BTreeMap<String, usize>,
) -> (usize, usize) {
    let mut batches = 0;
    let mut redeliveries = 0;
    while !pending.is_empty() && batches < 100_000 {
        let mut event = SqsEvent::default();
        event.records = pending.drain(..pending.len().min(10)).collect();
        // `process` is `handle` without building the response and printing the batch's
        // metrics line; it gives each record's outcome, which the tally needs.
        let outcomes = sender.process(&event).await;
        batches += 1;
        for (record, outcome) in event.records.into_iter().zip(outcomes) {
            *tally.entry(outcome_label(&outcome)).or_default() += 1;
            if outcome.needs_redelivery() {
                pending.push_back(record);
                redeliveries += 1;
            }
        }
    }
    (batches, redeliveries)
}

/// `sent`, `suppressed(<reason>)`, `retry(<reason>)`, …
fn outcome_label(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Sent | Outcome::Duplicate | Outcome::Expired => outcome.name().to_owned(),
        other => {
            let detail = format!("{other:?}");
            format!(
                "{}: {}",
                other.name(),
                detail.chars().take(80).collect::<String>()
            )
        }
    }
}

fn tally_text(tally: &BTreeMap<String, usize>) -> String {
    tally
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one AWS SDK call costs on its own, measured the same way as the sender (thread CPU,
/// same runtime, same HTTP client, moto over a kept-alive connection): the smallest DynamoDB
/// read, GetItem of one small item by key. Times the SDK calls a message makes, it is the
/// part of the sender's CPU per message that is the SDK's (signing, the orchestrator, hyper,
/// JSON), whatever the handler does.
async fn sdk_floor_rows(r: &RunResult, part: &mut Part) {
    const CALLS: u32 = 200;
    let env = TestEnv::new().await;
    let store = PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences);
    seed_user(
        &store,
        "floor",
        &fixtures::phone(0),
        None,
        jiff::Timestamp::now(),
    )
    .await;
    let get = || {
        use aws_sdk_dynamodb::types::AttributeValue::S;
        use sms_shared::store::preferences::CURRENT_SK;
        use sms_shared::store::schema::{PREFS_PK, PREFS_SK};
        env.dynamodb
            .get_item()
            .table_name(&env.tables.preferences)
            .key(PREFS_PK, S("floor".into()))
            .key(PREFS_SK, S(CURRENT_SK.into()))
            .send()
    };
    for _ in 0..10 {
        get().await.expect("GetItem");
    }
    let cpu = util::thread_cpu();
    for _ in 0..CALLS {
        get().await.expect("GetItem");
    }
    let per_call_us = (util::thread_cpu() - cpu).as_secs_f64() * 1e6 / f64::from(CALLS);
    let sent = r.sent_unique.max(1) as f64;
    let calls_per_message = (r.dynamodb_requests as f64 + r.sms_calls as f64) / sent;
    let area = "sender";
    let subject = "SDK floor";
    part.push(Row::new(
        area,
        subject,
        "one DynamoDB GetItem, thread CPU",
        format!("{} µs", f(per_call_us, 0)),
    ));
    part.push(Row::new(
        area,
        subject,
        "× SDK calls per message (DynamoDB + SMS)",
        format!(
            "{} × {} = {} µs",
            f(per_call_us, 0),
            f(calls_per_message, 2),
            f(per_call_us * calls_per_message, 0)
        ),
    ));
}

fn throughput_rows(r: &RunResult, part: &mut Part) {
    let area = "sender";
    let subject = &format!("{} msgs, batches of 10", r.messages);
    let sent = r.sent_unique.max(1) as f64;
    part.push(Row::new(
        area,
        subject,
        "messages per second (moto-bound)",
        f(r.sent_unique as f64 / r.wall.as_secs_f64(), 0),
    ));
    let cpu_us = r.thread_cpu.as_secs_f64() * 1e6 / sent;
    part.push(
        Row::new(
            area,
            subject,
            "sender CPU per message",
            format!("{} µs", f(cpu_us, 0)),
        )
        .target("≤ 150 µs", cpu_us <= 150.0),
    );
    part.push(Row::new(
        area,
        subject,
        "… of which user / system",
        format!(
            "{} / {} µs",
            f(r.thread_user.as_secs_f64() * 1e6 / sent, 0),
            f(r.thread_system.as_secs_f64() * 1e6 / sent, 0)
        ),
    ));
    part.push(Row::new(
        area,
        subject,
        "process CPU per message (incl. SMS stub)",
        format!("{} µs", f(r.process_cpu.as_secs_f64() * 1e6 / sent, 0)),
    ));
    let ddb = r.dynamodb_requests as f64 / sent;
    part.push(
        Row::new(
            area,
            subject,
            "DynamoDB requests per sent message",
            f(ddb, 2),
        )
        .target("≤ 4.2", ddb <= 4.2),
    );
    let calls = r.sms_calls as f64 / sent;
    part.push(
        Row::new(area, subject, "SMS API calls per message", f(calls, 2))
            .target("= 1", r.sms_calls as usize == r.sent_unique),
    );
    delivery_rows(area, subject, r, part);
}

/// Whether every request ended with exactly one SMS, and how the handler answered them.
fn delivery_rows(area: &str, subject: &str, r: &RunResult, part: &mut Part) {
    let exact = r.sent_unique == r.messages && r.sent_total == r.messages;
    part.push(
        Row::new(
            area,
            subject,
            "sent / lost / doubled",
            format!(
                "{} / {} / {}",
                r.sent_unique,
                r.messages - r.sent_unique,
                r.sent_total - r.sent_unique
            ),
        )
        .target("none lost or doubled", exact),
    );
    part.push(Row::new(
        area,
        subject,
        "outcomes (redeliveries included)",
        tally_text(&r.outcomes),
    ));
}

fn pacing_rows(area: &str, rate: f64, r: &RunResult, part: &mut Part) {
    let subject = &format!("{} msgs", r.messages);
    let delivered = r.sent_unique as f64 / r.wall.as_secs_f64();
    part.push(
        Row::new(
            area,
            subject,
            "delivered per second",
            format!(
                "{} ({} % of {rate})",
                f(delivered, 2),
                f(100.0 * delivered / rate, 1)
            ),
        )
        .target(
            &format!("≥ {}", f(0.95 * rate, 2)),
            delivered >= 0.95 * rate,
        ),
    );
    let throttled = 100.0 * r.throttled as f64 / r.sms_calls.max(1) as f64;
    part.push(
        Row::new(
            area,
            subject,
            "calls throttled",
            format!("{} of {} ({} %)", r.throttled, r.sms_calls, f(throttled, 2)),
        )
        .target("≤ 1 %", throttled <= 1.0),
    );
    part.push(Row::new(
        area,
        subject,
        "SMS API calls per message (SDK retries included)",
        f(r.sms_calls as f64 / r.sent_unique.max(1) as f64, 2),
    ));
    delivery_rows(area, subject, r, part);
    part.push(Row::new(
        area,
        subject,
        "wall time, batches, redelivered records",
        format!(
            "{} s, {}, {}",
            f(r.wall.as_secs_f64(), 1),
            r.batches,
            r.redeliveries
        ),
    ));
    let cpu_us = r.thread_cpu.as_secs_f64() * 1e6 / r.sent_unique.max(1) as f64;
    part.push(Row::new(
        area,
        subject,
        "sender CPU per message",
        format!("{} µs", f(cpu_us, 0)),
    ));
}
