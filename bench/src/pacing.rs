//! `bench pacing`: does the pacer hold a short code's 100 message parts per second (DESIGN §7)?
//!
//! moto applies one DynamoDB request at a time (~45 sent messages per second here), so against
//! it the sender never gets near 100/s. This part runs the sender against dynoxide instead (a
//! DynamoDB emulator in Rust on SQLite, crate `dynoxide-rs`; `bench/run.sh` installs it): it
//! serves every request the sender makes, TransactWriteItems included, and keeps their
//! conditions (a batch delivered again after the run must end `duplicate`, with no SMS). SQS
//! stays on moto (it is only called for records that come back), and the SMS stub enforces the
//! rate with its token bucket (`SmsStub::limit_rate`, one second of burst,
//! `ThrottlingException` above it).
//!
//! The sender runs as Lambda runs it at that rate: `SENDER_MAX_CONCURRENCY` instances (the
//! template's default, 2 per queue × 2 queues = 4), each a `Sender` with its own clients, its
//! own pacer (the rate × 0.98 / 4) and its own thread and current-thread runtime, like
//! separate processes. Each takes batches of 10 from one shared queue as SQS's poller hands
//! them out, handles them with the invocation's deadline (30 s, the template's timeout at
//! 100/s) and gives back what it hands back. Every instance handles a warm-up batch first;
//! then all start at once with full buckets (the worst case for the provider's burst).
//!
//! Which part limits is read from the CPU each one used during the run (each instance's thread
//! CPU, the stub and harness threads, dynoxide's process from `/proc/<pid>/stat`, the machine
//! from `/proc/stat`) and from two control runs: the same sender with no pace at all (what the
//! pipeline could do) and the pace with only one queue's instances busy.

use crate::fixtures::{self, invitation, seed_user};
use crate::util::{self, Mode, Part, Row, ShiftedClock, f, percentile};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use integration_tests::counting::counting_dynamodb;
use integration_tests::sqs::queue_arn;
use integration_tests::stack::create_tables;
use integration_tests::{SmsStub, TestEnv};
use sender::{Disposition, Sender};
use sms_shared::Clock;
use sms_shared::sms::EumSender;
use sms_shared::store::PreferencesStore;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// The short code's rate in message parts per second.
const RATE: f64 = 100.0;
/// Distinct users the requests are spread over.
const USERS: usize = 100;
/// Records per SQS batch (the template's batch size at 100/s).
const BATCH: usize = 10;
/// The function's timeout at 100/s (template.yaml, Mappings SendTimings "100").
const INVOCATION: Duration = Duration::from_secs(30);

/// One run: how many requests, through how many instances, at which rate.
struct Scenario {
    area: &'static str,
    messages: usize,
    /// Instances handling batches at once.
    instances: usize,
    /// `SENDER_MAX_CONCURRENCY`: the pacer gives each instance the rate / this.
    max_concurrency: usize,
    /// `None`: no pace in the sender and no limit at the stub.
    rate: Option<f64>,
}

/// What one instance did during the run.
#[derive(Default)]
struct InstanceResult {
    thread_cpu: Duration,
    dynamodb_requests: usize,
    batches: usize,
    redeliveries: usize,
    outcomes: BTreeMap<String, usize>,
}

struct RunResult {
    messages: usize,
    wall: Duration,
    /// Arrival at the stub of every accepted request of the run, from the start.
    sends: Vec<Duration>,
    parts: u64,
    sent_unique: usize,
    sent_total: usize,
    sms_calls: u64,
    throttled: u64,
    instances: Vec<InstanceResult>,
    /// Every thread of this process but the instances: the SMS stub's and the harness's.
    stub_and_harness_cpu: Duration,
    dynamodb_cpu: Duration,
    /// Busy share of every core of the machine over the run (0..=1).
    machine_busy: f64,
    /// Outcomes and SMS calls of the run's first batch delivered once more after the run.
    again: (BTreeMap<String, usize>, u64),
}

pub fn run(mode: Mode) {
    // A panicking instance would leave the others waiting at the start barrier forever.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let mut part = Part::start("pacing");
    let dynamodb = Dynoxide::start();
    let stub_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sms-stub")
        .enable_all()
        .build()
        .expect("stub runtime");
    let paced = Scenario {
        area: "pacing 100/s",
        messages: mode.pick(500, 2000),
        instances: 4,
        max_concurrency: 4,
        rate: Some(RATE),
    };
    let r = run_scenario(&stub_rt, &dynamodb, &paced);
    paced_rows(&paced, &r, &mut part);
    let unpaced = Scenario {
        area: "pacing 100/s, control",
        messages: mode.pick(300, 1000),
        instances: 4,
        max_concurrency: 4,
        rate: None,
    };
    let r = run_scenario(&stub_rt, &dynamodb, &unpaced);
    control_rows(
        &unpaced,
        "no pace, no limit: what the pipeline does",
        &r,
        &mut part,
    );
    if mode == Mode::Full {
        let one_queue = Scenario {
            area: "pacing 100/s, control",
            messages: 1000,
            instances: 2,
            max_concurrency: 4,
            rate: Some(RATE),
        };
        let r = run_scenario(&stub_rt, &dynamodb, &one_queue);
        control_rows(
            &one_queue,
            "paced, one queue busy (2 of 4 instances)",
            &r,
            &mut part,
        );
    }
    part.note(format!(
        "pacing: DynamoDB is dynoxide-rs 3.2.0 (`{}`, in memory, its own process), SQS moto, \
         the SMS stub on its own runtime; CPU % is of one core, over the run's wall time",
        dynamodb.version
    ));
    part.finish();
}

/// A dynoxide server of our own on a free port of 127.0.0.1, in memory; killed on drop.
struct Dynoxide {
    child: Child,
    endpoint: String,
    version: String,
}

impl Dynoxide {
    fn start() -> Dynoxide {
        let binary = std::env::var_os("BENCH_DYNOXIDE")
            .map(PathBuf::from)
            .unwrap_or_else(|| util::out_dir().join("dynoxide/bin/dynoxide"));
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (bench/run.sh installs it; see docs/bench.md)",
                    binary.display()
                )
            });
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(util::out_dir().join("dynoxide.log")).expect("log file");
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--log", "quiet"])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe. The server dies with the harness, even when the
        // harness is killed and its Drop never runs.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "dynoxide did not listen on {addr} (target/bench/dynoxide.log)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Dynoxide {
            child,
            endpoint: format!("http://{addr}"),
            version,
        }
    }

    /// User + system CPU of the server process so far.
    fn cpu(&self) -> Duration {
        process_cpu_of(self.child.id())
    }
}

impl Drop for Dynoxide {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU of process `pid` (`/proc/<pid>/stat`, clock-tick resolution).
fn process_cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// (busy, total) jiffies of every core (`/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle.min(total), total)
}

/// The records of a run, handed out in batches as SQS's poller would, and given back.
struct Queue {
    state: Mutex<(VecDeque<SqsMessage>, usize)>,
}

impl Queue {
    fn new(records: VecDeque<SqsMessage>) -> Queue {
        Queue {
            state: Mutex::new((records, 0)),
        }
    }

    /// The next batch; `Some(empty)` while none is left but batches in flight may give
    /// records back; `None` when every record is settled.
    fn take(&self) -> Option<Vec<SqsMessage>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (pending, in_flight) = &mut *state;
        if pending.is_empty() {
            return (*in_flight > 0).then(Vec::new);
        }
        *in_flight += 1;
        Some(pending.drain(..pending.len().min(BATCH)).collect())
    }

    fn done(&self, handed_back: Vec<SqsMessage>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.extend(handed_back);
        state.1 -= 1;
    }
}

fn run_scenario(
    stub_rt: &tokio::runtime::Runtime,
    dynamodb: &Dynoxide,
    scenario: &Scenario,
) -> RunResult {
    let setup_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("setup runtime");
    let stub = stub_rt.block_on(SmsStub::start());
    let tag = format!("pace{}x{}", scenario.instances, scenario.messages);
    // moto for the queues and the names; the tables on dynoxide under the same names.
    let (env, warmups, records) = setup_rt.block_on(async {
        let env = TestEnv::new().await;
        let ddb_sdk = integration_tests::sdk_config(&dynamodb.endpoint).await;
        let client = aws_sdk_dynamodb::Client::new(&ddb_sdk);
        create_tables(&client, &env.tables)
            .await
            .unwrap_or_else(|e| panic!("create tables on dynoxide: {e}"));
        let store = PreferencesStore::new(client, &env.tables.preferences);
        let now = ShiftedClock::at_noon().now();
        for i in 0..USERS {
            let user = format!("p-{i}");
            seed_user(&store, &user, &fixtures::phone(i), None, now).await;
        }
        let user = |k: usize| format!("p-{}", k % USERS);
        let warmup: Vec<String> = (0..scenario.instances * BATCH)
            .map(|k| invitation(&format!("{tag}-warmup-{k}"), &user(k)))
            .collect();
        let bodies: Vec<String> = (0..scenario.messages)
            .map(|k| invitation(&format!("{tag}-{k}"), &user(k)))
            .collect();
        let arn = queue_arn(&env, &env.queues.notifications).await;
        let mut warm = records(&warmup, &arn, &format!("{tag}-warmup"));
        let warmups: Vec<Vec<SqsMessage>> = (0..scenario.instances)
            .map(|_| warm.drain(..BATCH).collect())
            .collect();
        let records = records(&bodies, &arn, &tag);
        (env, warmups, records)
    });
    let pps = scenario.rate.unwrap_or(1_000_000.0).to_string();
    let max_concurrency = scenario.max_concurrency.to_string();
    let config = env.config_with(&[
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", fixtures::ORIGINATION),
        ("SMS_PARTS_PER_SECOND", pps.as_str()),
        ("SENDER_MAX_CONCURRENCY", max_concurrency.as_str()),
        ("SENDER_CONCURRENCY", "4"),
        ("DAILY_PROMOTIONAL_CAP", "1000000"),
    ]);
    eprintln!(
        "    {}: {} requests queued; {} instances warm up",
        scenario.area, scenario.messages, scenario.instances
    );
    let again: Vec<SqsMessage> = records.iter().take(BATCH).cloned().collect();
    let queue = Arc::new(Queue::new(records));
    // Warmed up → (the harness starts the clocks) → go.
    let warmed = Arc::new(Barrier::new(scenario.instances + 1));
    let go = Arc::new(Barrier::new(scenario.instances + 1));
    let clock: Arc<dyn Clock> = Arc::new(ShiftedClock::at_noon());
    let handles: Vec<_> = warmups
        .into_iter()
        .enumerate()
        .map(|(i, warmup)| {
            let (config, queue, warmed, go, clock) = (
                config.clone(),
                queue.clone(),
                warmed.clone(),
                go.clone(),
                clock.clone(),
            );
            let endpoints = (dynamodb.endpoint.clone(), env.endpoint.clone());
            let stub = stub.clone();
            std::thread::Builder::new()
                .name(format!("instance-{i}"))
                .spawn(move || instance(config, endpoints, stub, clock, warmup, queue, warmed, go))
                .expect("spawn an instance")
        })
        .collect();

    warmed.wait();
    if let Some(rate) = scenario.rate {
        // A quiet second: every pacer's bucket and the provider's are full, so the run starts
        // with the largest burst the instances can make together.
        std::thread::sleep(Duration::from_secs(1));
        stub.limit_rate(rate);
    }
    let calls_before = stub.requests();
    let dynamodb_cpu = dynamodb.cpu();
    let process_cpu = util::process_cpu();
    let machine = machine_jiffies();
    let started = Instant::now();
    go.wait();
    let instances: Vec<InstanceResult> = handles
        .into_iter()
        .map(|h| h.join().expect("an instance panicked"))
        .collect();
    let wall = started.elapsed();
    let machine_after = machine_jiffies();
    let instances_cpu: Duration = instances.iter().map(|i| i.thread_cpu).sum();
    let process_cpu = util::process_cpu() - process_cpu;
    let dynamodb_cpu = dynamodb.cpu() - dynamodb_cpu;

    let prefix = format!("{tag}-");
    let mut per_request: HashMap<String, usize> = HashMap::new();
    let mut sends = Vec::new();
    let mut parts = 0;
    for sms in stub.sent() {
        let Some(id) = sms.context.get("logId") else {
            continue;
        };
        if !id.starts_with(&prefix) || id.contains("-warmup-") {
            continue;
        }
        *per_request.entry(id.clone()).or_default() += 1;
        sends.push(sms.at.saturating_duration_since(started));
        parts += u64::from(sms_shared::segments::count(&sms.body).segments.max(1));
    }
    sends.sort();
    let busy = machine_after.0.saturating_sub(machine.0) as f64;
    let total = machine_after.1.saturating_sub(machine.1).max(1) as f64;
    RunResult {
        messages: scenario.messages,
        wall,
        sends,
        parts,
        sent_unique: per_request.len(),
        sent_total: per_request.values().sum(),
        sms_calls: stub.requests() - calls_before,
        throttled: stub.throttled(),
        instances,
        stub_and_harness_cpu: process_cpu.saturating_sub(instances_cpu),
        dynamodb_cpu,
        machine_busy: busy / total,
        again: deliver_again(&setup_rt, &config, &dynamodb.endpoint, &env, &stub, again),
    }
}

/// The records SQS's poller would hand the function for these bodies. They are built here
/// rather than received from moto: moto takes minutes to queue and receive thousands of
/// messages on this machine. Their receipt handles are unknown to moto, so a record the
/// sender hands back or defers cannot change its visibility there; it is handed back, and
/// the harness delivers it again (none was, in the runs of docs/bench.md).
fn records(bodies: &[String], arn: &str, tag: &str) -> VecDeque<SqsMessage> {
    let now = jiff::Timestamp::now().as_millisecond().to_string();
    bodies
        .iter()
        .enumerate()
        .map(|(k, body)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("{tag}-message-{k}"));
            record.receipt_handle = Some(format!("{tag}-receipt-{k}"));
            record.body = Some(body.clone());
            record.attributes = [
                ("ApproximateReceiveCount", "1"),
                ("SentTimestamp", now.as_str()),
                ("ApproximateFirstReceiveTimestamp", now.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(arn.to_owned());
            record.aws_region = Some(integration_tests::TEST_REGION.into());
            record
        })
        .collect()
}

/// The first batch of the run delivered once more, to a fresh instance: each must end
/// `duplicate` with no SMS, which shows the endpoint keeps the sender's conditions.
fn deliver_again(
    rt: &tokio::runtime::Runtime,
    config: &sms_shared::Config,
    dynamodb_endpoint: &str,
    env: &TestEnv,
    stub: &SmsStub,
    records: Vec<SqsMessage>,
) -> (BTreeMap<String, usize>, u64) {
    rt.block_on(async {
        let ddb_sdk = integration_tests::sdk_config(dynamodb_endpoint).await;
        let sqs_sdk = integration_tests::sdk_config(&env.endpoint).await;
        let sms = EumSender::new(
            fixtures::production_like_sms_client(stub).await,
            &config.sms,
        );
        let sender = Sender::new(
            config,
            aws_sdk_dynamodb::Client::new(&ddb_sdk),
            aws_sdk_sqs::Client::new(&sqs_sdk),
            sms,
            Arc::new(ShiftedClock::at_noon()),
        );
        let calls = stub.requests();
        let mut event = SqsEvent::default();
        event.records = records;
        let mut outcomes = BTreeMap::new();
        for settled in sender.settle_batch(&event, None).await {
            *outcomes
                .entry(settled.outcome.name().to_owned())
                .or_default() += 1;
        }
        (outcomes, stub.requests() - calls)
    })
}

/// One Lambda instance: its own clients and pacer on its own thread and runtime.
#[allow(clippy::too_many_arguments)]
fn instance(
    config: sms_shared::Config,
    (dynamodb_endpoint, sqs_endpoint): (String, String),
    stub: SmsStub,
    clock: Arc<dyn Clock>,
    warmup: Vec<SqsMessage>,
    queue: Arc<Queue>,
    warmed: Arc<Barrier>,
    go: Arc<Barrier>,
) -> InstanceResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("instance runtime");
    // Clients of this instance's own, made on its runtime: a connection pool shared with
    // another runtime would hang whenever that runtime is not being driven.
    let (sender, counter) = rt.block_on(async {
        let ddb_sdk = integration_tests::sdk_config(&dynamodb_endpoint).await;
        let (dynamodb, counter) = counting_dynamodb(&ddb_sdk);
        let sqs_sdk = integration_tests::sdk_config(&sqs_endpoint).await;
        let sms = EumSender::new(
            fixtures::production_like_sms_client(&stub).await,
            &config.sms,
        );
        let sqs = aws_sdk_sqs::Client::new(&sqs_sdk);
        let sender = Sender::new(&config, dynamodb, sqs, sms, clock);
        let mut event = SqsEvent::default();
        event.records = warmup;
        let warm = sender.settle_batch(&event, None).await;
        assert!(
            warm.iter().all(|s| s.outcome.name() == "sent"),
            "the warm-up batch must be sent: {:?}",
            warm.iter().map(|s| &s.outcome).collect::<Vec<_>>()
        );
        (sender, counter)
    });
    warmed.wait();
    go.wait();
    let cpu = util::thread_cpu();
    let requests = counter.get();
    let mut result = rt.block_on(async {
        let mut result = InstanceResult::default();
        while let Some(records) = queue.take() {
            if records.is_empty() {
                // Records in other instances' batches may still come back.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let mut event = SqsEvent::default();
            event.records = records;
            let deadline = tokio::time::Instant::now() + INVOCATION;
            let settled = sender.settle_batch(&event, Some(deadline)).await;
            result.batches += 1;
            let mut handed_back = Vec::new();
            for (record, settled) in event.records.into_iter().zip(settled) {
                *result
                    .outcomes
                    .entry(settled.outcome.name().to_owned())
                    .or_default() += 1;
                if settled.disposition == Disposition::HandBack {
                    handed_back.push(record);
                }
            }
            result.redeliveries += handed_back.len();
            queue.done(handed_back);
        }
        result
    });
    result.thread_cpu = util::thread_cpu() - cpu;
    result.dynamodb_requests = counter.get() - requests;
    result
}

/// Sends in each whole second of the run, from its start.
fn per_second(sends: &[Duration]) -> Vec<usize> {
    let Some(last) = sends.last() else {
        return Vec::new();
    };
    let whole = last.as_secs() as usize;
    let mut counts = vec![0; whole];
    for s in sends {
        if let Some(c) = counts.get_mut(s.as_secs() as usize) {
            *c += 1;
        }
    }
    counts
}

fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// Where the run's CPU went: each instance, the stub and harness, dynoxide, the machine.
fn cpu_rows(area: &str, subject: &str, r: &RunResult, part: &mut Part) {
    let per_instance: Vec<String> = r
        .instances
        .iter()
        .map(|i| f(cpu_percent(i.thread_cpu, r.wall), 0))
        .collect();
    let sent = r.sent_unique.max(1) as f64;
    let instances_cpu: Duration = r.instances.iter().map(|i| i.thread_cpu).sum();
    part.push(Row::new(
        area,
        subject,
        "CPU % of a core: sender instances (each)",
        format!(
            "{} % ({} µs per message)",
            per_instance.join(" / "),
            f(instances_cpu.as_secs_f64() * 1e6 / sent, 0)
        ),
    ));
    part.push(Row::new(
        area,
        subject,
        "CPU % of a core: DynamoDB (dynoxide) / SMS stub and harness",
        format!(
            "{} / {} %",
            f(cpu_percent(r.dynamodb_cpu, r.wall), 0),
            f(cpu_percent(r.stub_and_harness_cpu, r.wall), 0)
        ),
    ));
    let requests: usize = r.instances.iter().map(|i| i.dynamodb_requests).sum();
    part.push(Row::new(
        area,
        subject,
        "DynamoDB requests per second (per sent message)",
        format!(
            "{} ({})",
            f(requests as f64 / r.wall.as_secs_f64(), 0),
            f(requests as f64 / sent, 2)
        ),
    ));
    part.push(Row::new(
        area,
        subject,
        "machine busy (every process, 2 cores = 100 %)",
        format!("{} %", f(100.0 * r.machine_busy, 0)),
    ));
}

fn delivery_row(area: &str, subject: &str, r: &RunResult, part: &mut Part) {
    let exact = r.sent_unique == r.messages && r.sent_total == r.messages;
    let outcomes: BTreeMap<&str, usize> =
        r.instances
            .iter()
            .flat_map(|i| &i.outcomes)
            .fold(BTreeMap::new(), |mut all, (k, n)| {
                *all.entry(k.as_str()).or_default() += n;
                all
            });
    let outcomes: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    part.push(
        Row::new(
            area,
            subject,
            "sent / lost / doubled (outcomes)",
            format!(
                "{} / {} / {} ({})",
                r.sent_unique,
                r.messages - r.sent_unique,
                r.sent_total - r.sent_unique,
                outcomes.join(", ")
            ),
        )
        .target("none lost or doubled", exact),
    );
}

fn paced_rows(scenario: &Scenario, r: &RunResult, part: &mut Part) {
    let area = scenario.area;
    let subject = &format!(
        "{} msgs, {} instances",
        scenario.messages, scenario.instances
    );
    let wall = r.wall.as_secs_f64();
    let delivered = r.sent_unique as f64 / wall;
    part.push(
        Row::new(
            area,
            subject,
            "delivered per second (parts per second)",
            format!("{} ({})", f(delivered, 1), f(r.parts as f64 / wall, 1)),
        )
        .target("≥ 95", delivered >= 95.0),
    );
    // Past the first second, whose burst (the buckets were full) short runs overstate.
    let seconds = per_second(&r.sends);
    let after_first: Vec<f64> = seconds.iter().skip(1).map(|&n| n as f64).collect();
    // The second half of the run: by then the buckets' first second of burst is spent, so
    // this is the pace itself.
    let half = r.sends.last().map_or(0.0, Duration::as_secs_f64) / 2.0;
    let second_half = r.sends.iter().filter(|s| s.as_secs_f64() >= half).count() as f64 / half;
    part.push(Row::new(
        area,
        subject,
        "per whole second after the first: min / median; second half's mean",
        format!(
            "{} / {}; {} (first second {})",
            f(percentile(&after_first, 0.0), 0),
            f(percentile(&after_first, 50.0), 0),
            f(second_half, 1),
            seconds.first().copied().unwrap_or(0)
        ),
    ));
    let throttled = 100.0 * r.throttled as f64 / r.sms_calls.max(1) as f64;
    part.push(
        Row::new(
            area,
            subject,
            "calls throttled by the provider's bucket",
            format!("{} of {} ({} %)", r.throttled, r.sms_calls, f(throttled, 2)),
        )
        .target("≤ 1 %", throttled <= 1.0),
    );
    let gaps: Vec<f64> = r
        .sends
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    part.push(Row::new(
        area,
        subject,
        "gap between sends at the provider, p50 / p99 / max",
        format!(
            "{} / {} / {} ms",
            f(percentile(&gaps, 50.0), 1),
            f(percentile(&gaps, 99.0), 1),
            f(percentile(&gaps, 100.0), 1)
        ),
    ));
    delivery_row(area, subject, r, part);
    let (outcomes, calls) = &r.again;
    let duplicates = outcomes.get("duplicate").copied().unwrap_or(0);
    part.push(
        Row::new(
            area,
            subject,
            "10 sent requests delivered again: outcomes, SMS calls",
            format!(
                "{}; {calls}",
                outcomes
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .target("duplicate, no SMS", duplicates == BATCH && *calls == 0),
    );
    let batches: usize = r.instances.iter().map(|i| i.batches).sum();
    let redeliveries: usize = r.instances.iter().map(|i| i.redeliveries).sum();
    part.push(Row::new(
        area,
        subject,
        "wall time, batches, redelivered records",
        format!("{} s, {batches}, {redeliveries}", f(wall, 1)),
    ));
    cpu_rows(area, subject, r, part);
}

fn control_rows(scenario: &Scenario, what: &str, r: &RunResult, part: &mut Part) {
    let area = scenario.area;
    let subject = &format!(
        "{} msgs, {} instances",
        scenario.messages, scenario.instances
    );
    let delivered = r.sent_unique as f64 / r.wall.as_secs_f64();
    part.push(Row::new(
        area,
        subject,
        &format!("{what}: delivered per second"),
        format!(
            "{} (throttled {} of {})",
            f(delivered, 1),
            r.throttled,
            r.sms_calls
        ),
    ));
    delivery_row(area, subject, r, part);
    cpu_rows(area, subject, r, part);
}
