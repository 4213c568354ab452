//! `bench coldstart`: starts each release binary as Lambda would, against the local Runtime
//! API of [`integration_tests::runtime_api`], moto and the SMS stub, and measures
//!
//! * exec → first `/next` (initialisation: config, SDK config, clients);
//! * exec → first response (initialisation plus the first real request against moto);
//! * the first invocation against the warm median of the next ones (one-time costs);
//! * peak RSS (`VmHWM`, read while the process waits on `/next` after a batch of 10) and
//!   the process's CPU time (`wait4`'s rusage after it is killed).
//!
//! Each start is a fresh process with Lambda's environment (`env_clear` first: nothing of
//! the harness's own environment leaks in), the tables and queues of one [`TestEnv`] and
//! `AWS_ENDPOINT_URL` pointing at moto. Every invocation is queued before the process asks
//! for it, so the harness's reaction time is not measured.

use crate::fixtures::{self, event_file, http_as, tag_sns, tag_sqs};
use crate::util::{self, Mode, Part, Row, f, median, ms, percentile};
use integration_tests::lambda_process::{lambda_env, midday_zone};
use integration_tests::runtime_api::{ApiEvent, RuntimeApi};
use integration_tests::{SmsStub, TestEnv};
use serde_json::Value;
use sms_shared::store::PreferencesStore;
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Warm invocations after the first one, per start.
const WARM: usize = 5;
/// Longest wait for any single step of a start.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The function's phone number in every sample event.
const PHONE: &str = "+14155550123";

type EventFn = Box<dyn Fn(&str) -> Value>;
type BatchFn = Box<dyn Fn(&str) -> Vec<Value>>;

/// One binary to start and what to send it.
struct Spec {
    name: &'static str,
    vars: Vec<(String, String)>,
    /// The event of the first and the warm invocations, unique per tag.
    event: EventFn,
    /// "A batch of 10": one SQS event of 10 records, or 10 invocations.
    batch: BatchFn,
    /// What a good answer looks like.
    good: fn(&Value) -> bool,
}

#[derive(Debug, Default)]
struct Sample {
    to_next: f64,
    to_first_response: f64,
    first_invocation: f64,
    warm: Vec<f64>,
    hwm_kib: u64,
    cpu_ms: f64,
    bad_answers: usize,
    first_answer: String,
}

pub fn run(mode: Mode) {
    util::block_on(measure(mode));
}

async fn measure(mode: Mode) {
    let mut part = Part::start("coldstart");
    let starts = mode.pick(5, 20);
    let env = TestEnv::new().await;
    let stub = SmsStub::start().await;
    // The functions run on the real clock: give the user a time zone where it is midday now,
    // so promotional sample requests are sent, whatever time the benchmark runs.
    let zone = midday_zone();
    let store = PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences);
    fixtures::seed_user(&store, "u-42", PHONE, Some(zone), jiff::Timestamp::now()).await;
    part.note(format!(
        "cold start: {starts} starts per binary, each: 1 first + {WARM} warm invocations + a batch of 10; \
         sample user u-42 in time zone {zone} (midday now)"
    ));

    let logs = util::out_dir().join("logs");
    std::fs::create_dir_all(&logs).expect("create target/bench/logs");
    // The API functions read their keys from Secrets Manager at init, as deployed.
    let (jwt_secret, code_secret) =
        integration_tests::local_stack::create_secrets(&env.sdk, &env.prefix)
            .await
            .expect("create the secrets in moto");
    let secret_vars = [
        ("JWT_SIGNING_KEY_SECRET_ID".to_owned(), jwt_secret),
        ("CODE_HMAC_KEY_SECRET_ID".to_owned(), code_secret),
    ];
    let hello = measure_binary(&hello_spec(), &env, starts, &logs, &mut part).await;
    let hello_next = hello.as_ref().map(|s| median_of(s, |s| s.to_next));
    if let Some(samples) = &hello {
        rows_for("hello (baseline)", samples, None, &mut part);
    }
    for mut spec in specs(&stub) {
        spec.vars.extend(secret_vars.iter().cloned());
        if let Some(samples) = measure_binary(&spec, &env, starts, &logs, &mut part).await {
            rows_for(spec.name, &samples, hello_next, &mut part);
        }
    }
    part.note(format!(
        "function logs of the cold-start runs: {}",
        logs.display()
    ));
    part.finish();
}

fn median_of(samples: &[Sample], pick: impl Fn(&Sample) -> f64) -> f64 {
    median(&samples.iter().map(pick).collect::<Vec<_>>())
}

fn p95_of(samples: &[Sample], pick: impl Fn(&Sample) -> f64) -> f64 {
    percentile(&samples.iter().map(pick).collect::<Vec<_>>(), 95.0)
}

fn rows_for(subject: &str, samples: &[Sample], hello_next: Option<f64>, part: &mut Part) {
    let area = "cold start";
    let next = median_of(samples, |s| s.to_next);
    let next95 = p95_of(samples, |s| s.to_next);
    let mut row = Row::new(
        area,
        subject,
        "exec → first /next, median (p95)",
        format!("{} ms ({})", f(next, 1), f(next95, 1)),
    );
    if let Some(hello) = hello_next {
        let ratio = next / hello;
        row.measured = format!("{} = {}× hello", row.measured, f(ratio, 2));
        row = row.target(
            &format!("≤ 2× hello ({} ms)", f(2.0 * hello, 1)),
            ratio <= 2.0,
        );
    }
    part.push(row);
    let first = median_of(samples, |s| s.to_first_response);
    let first95 = p95_of(samples, |s| s.to_first_response);
    let mut row = Row::new(
        area,
        subject,
        "exec → first response, median (p95)",
        format!("{} ms ({})", f(first, 1), f(first95, 1)),
    );
    if hello_next.is_some() {
        row = row.target("≤ 40 ms", first <= 40.0);
    }
    part.push(row);
    let first_invocation = median_of(samples, |s| s.first_invocation);
    let warm: Vec<f64> = samples.iter().flat_map(|s| s.warm.clone()).collect();
    let warm_median = median(&warm);
    let ratio = first_invocation / warm_median;
    let mut row = Row::new(
        area,
        subject,
        "first invocation / warm median",
        format!(
            "{} / {} ms = {}×",
            f(first_invocation, 1),
            f(warm_median, 1),
            f(ratio, 2)
        ),
    );
    if hello_next.is_some() {
        row = row.target("≤ 2×", ratio <= 2.0);
    }
    part.push(row);
    // VmHWM of the exec'd image only: `wait4`'s ru_maxrss would also count the harness's
    // own pages between fork and exec.
    let hwm: Vec<f64> = samples.iter().map(|s| s.hwm_kib as f64 / 1024.0).collect();
    let max_hwm = hwm.iter().copied().fold(0.0, f64::max);
    part.push(
        Row::new(
            area,
            subject,
            "peak RSS (VmHWM) after a batch of 10, max (median)",
            format!("{} MiB ({})", f(max_hwm, 1), f(median(&hwm), 1)),
        )
        .target("≤ 30 MiB", max_hwm <= 30.0),
    );
    part.push(Row::new(
        area,
        subject,
        "process CPU, init + 16 invocations, median",
        format!("{} ms", f(median_of(samples, |s| s.cpu_ms), 1)),
    ));
    let bad: usize = samples.iter().map(|s| s.bad_answers).sum();
    if bad > 0 {
        part.note(format!(
            "{subject}: {bad} answers were errors or not 2xx (first answer: {})",
            samples[0].first_answer
        ));
    }
}

fn binary(name: &str) -> PathBuf {
    util::binaries_dir().join(name)
}

async fn measure_binary(
    spec: &Spec,
    env: &TestEnv,
    starts: usize,
    logs: &std::path::Path,
    part: &mut Part,
) -> Option<Vec<Sample>> {
    let path = binary(spec.name);
    if !path.exists() {
        part.note(format!(
            "{}: skipped, {} is not built",
            spec.name,
            path.display()
        ));
        return None;
    }
    let log = logs.join(format!("{}.log", spec.name));
    let _ = std::fs::remove_file(&log);
    let mut samples = Vec::new();
    let mut failures = Vec::new();
    for n in 0..starts {
        match start_once(spec, &path, env, n, &log).await {
            Ok(sample) => samples.push(sample),
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "    {}: {} starts, {} failed",
        spec.name,
        samples.len(),
        failures.len()
    );
    if !failures.is_empty() {
        part.note(format!(
            "{}: {} of {starts} starts failed; first: {}",
            spec.name,
            failures.len(),
            failures[0]
        ));
    }
    (!samples.is_empty()).then_some(samples)
}

async fn start_once(
    spec: &Spec,
    path: &std::path::Path,
    env: &TestEnv,
    n: usize,
    log: &std::path::Path,
) -> Result<Sample, String> {
    let mut api = RuntimeApi::start(spec.name).await;
    // Everything is queued up front: the first event, the warm ones, the batch.
    let mut invocations = vec![(spec.event)(&format!("s{n}-first"))];
    for w in 0..WARM {
        invocations.push((spec.event)(&format!("s{n}-warm{w}")));
    }
    invocations.extend((spec.batch)(&format!("s{n}-batch")));
    for (k, event) in invocations.iter().enumerate() {
        api.invoke(
            format!("req-{n}-{k}"),
            serde_json::to_vec(event).expect("json"),
        );
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    // `BENCH_WRAP="perf record -g -o /tmp/perf.data --"` runs each start under a profiler
    // (figures are then the wrapper's, for investigation only).
    let wrap: Vec<String> = std::env::var("BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(path);
            c
        }
        None => Command::new(path),
    };
    command
        .env_clear()
        .envs(lambda_env(api.addr, spec.name, env))
        .envs(spec.vars.iter().cloned())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let exec = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", path.display()))?;
    let pid = child.id() as libc::pid_t;
    let result = drive(&mut api, &mut child, exec, invocations.len(), spec.good).await;
    // Read the high-water mark while the process waits on /next, then kill and reap it.
    let hwm_kib = vm_hwm_kib(pid);
    let cpu_ms = kill_and_reap(pid);
    let mut sample = result?;
    sample.hwm_kib = hwm_kib;
    sample.cpu_ms = cpu_ms;
    Ok(sample)
}

/// Reads the process's requests until every queued invocation is answered and it asks for
/// the next one again.
async fn drive(
    api: &mut RuntimeApi,
    child: &mut std::process::Child,
    exec: Instant,
    invocations: usize,
    good: fn(&Value) -> bool,
) -> Result<Sample, String> {
    let mut next_at: Vec<Instant> = Vec::new();
    let mut done_at: Vec<Instant> = Vec::new();
    let mut sample = Sample::default();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while next_at.len() <= invocations {
        let Some(event) = api.event(Duration::from_millis(200)).await else {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status} before answering"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no progress within {STEP_TIMEOUT:?} ({} of {invocations} answered)",
                    done_at.len()
                ));
            }
            continue;
        };
        match event {
            ApiEvent::Next(at) => next_at.push(at),
            ApiEvent::Response { id, at, body } | ApiEvent::Error { id, at, body } => {
                // Invocations are `req-<start>-<k>`, answered in order.
                if !id.ends_with(&format!("-{}", done_at.len())) {
                    return Err(format!("answer for {id} out of order"));
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                // An error report carries `errorType`; a response must look good.
                if answer.get("errorType").is_some() || !good(&answer) {
                    sample.bad_answers += 1;
                }
                if done_at.is_empty() {
                    sample.first_answer = text.chars().take(300).collect();
                }
                done_at.push(at);
            }
            ApiEvent::InitError { body } => {
                return Err(format!("init error: {}", String::from_utf8_lossy(&body)));
            }
        }
    }
    if done_at.len() < invocations {
        return Err("asked for more work before answering".into());
    }
    sample.to_next = ms(next_at[0] - exec);
    sample.to_first_response = ms(done_at[0] - exec);
    sample.first_invocation = ms(done_at[0] - next_at[0]);
    sample.warm = (1..=WARM)
        .map(|k| ms(done_at[k].saturating_duration_since(next_at[k])))
        .collect();
    Ok(sample)
}

fn vm_hwm_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// SIGKILL, then `wait4` for the rusage: user + system CPU of the process (ms).
fn kill_and_reap(pid: libc::pid_t) -> f64 {
    // SAFETY: plain syscalls on our own child; `usage` and `status` are valid out-pointers.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::wait4(pid, &mut status, 0, &mut usage) != pid {
            return 0.0;
        }
        let cpu = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        cpu(usage.ru_utime) + cpu(usage.ru_stime)
    }
}

fn any(_: &Value) -> bool {
    true
}

fn http_2xx(answer: &Value) -> bool {
    answer["statusCode"]
        .as_u64()
        .is_some_and(|s| (200..300).contains(&s))
}

fn no_batch_failures(answer: &Value) -> bool {
    answer["batchItemFailures"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

fn hello_spec() -> Spec {
    Spec {
        name: "hello",
        vars: Vec::new(),
        event: Box::new(|tag| serde_json::json!({ "hello": tag })),
        batch: Box::new(|tag| {
            (0..10)
                .map(|k| serde_json::json!({ "hello": format!("{tag}-{k}") }))
                .collect()
        }),
        good: any,
    }
}

/// Loads sample events; `None` (the function is skipped) when one is missing.
fn samples(files: &[&str]) -> Option<Vec<Value>> {
    files.iter().map(|f| event_file(f)).collect()
}

fn specs(stub: &SmsStub) -> Vec<Spec> {
    let sms_vars: Vec<(String, String)> = [
        ("SMS_SENDER", "eum".to_owned()),
        ("ORIGINATION_IDENTITY", fixtures::ORIGINATION.to_owned()),
        ("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", stub.endpoint()),
        // Many starts send to the one sample user within a day.
        ("DAILY_PROMOTIONAL_CAP", "1000000".to_owned()),
        ("SMS_PARTS_PER_SECOND", "1000".to_owned()),
        // The origin of the events' cookie-authenticated writes (their CSRF check, §5).
        ("ALLOWED_ORIGINS", "https://app.example.com".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut specs = Vec::new();

    if let Some(mut sqs) = samples(&[
        "sqs-battle-invitation.json",
        "sqs-battle-result.json",
        "sqs-battle-reminder.json",
        "sqs-streak-alert.json",
        "sqs-direct-message.json",
        "sqs-achievement-unlock.json",
        "sqs-security-alert.json",
    ]) {
        let first = sqs.remove(0);
        let mut records: Vec<Value> = vec![first["Records"][0].clone()];
        records.extend(sqs.iter().map(|e| e["Records"][0].clone()));
        let batch_records: Vec<Value> = records.iter().cycle().take(10).cloned().collect();
        let single = first.clone();
        specs.push(Spec {
            name: "sender",
            vars: sms_vars.clone(),
            event: Box::new(move |tag| tag_sqs(single.clone(), tag)),
            batch: Box::new(move |tag| {
                vec![tag_sqs(
                    serde_json::json!({ "Records": batch_records.clone() }),
                    tag,
                )]
            }),
            good: no_batch_failures,
        });
    }

    if let Some(events) = samples(&[
        "http-opt-in-get.json",
        "http-opt-in-post.json",
        "http-preferences-get.json",
        "http-preferences-patch.json",
        "http-opt-in-dismiss.json",
    ]) {
        let first = events[0].clone();
        specs.push(Spec {
            name: "opt-in-api",
            vars: sms_vars.clone(),
            event: Box::new(move |tag| {
                http_as(first.clone(), &format!("cs-{tag}"), "203.0.113.9", PHONE)
            }),
            batch: Box::new(move |tag| {
                let user = format!("cs-{tag}");
                events
                    .iter()
                    .cycle()
                    .take(10)
                    .map(|e| http_as(e.clone(), &user, "203.0.113.9", PHONE))
                    .collect()
            }),
            good: http_2xx,
        });
    }

    if let Some(events) = samples(&["http-verification-start.json"]) {
        let start = events[0].clone();
        let start2 = start.clone();
        // Each request from its own user, IP and number prefix: no rate limit bites.
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter2 = counter.clone();
        let next = move |c: &std::sync::atomic::AtomicUsize| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        // Every start sends 16 codes to new US numbers: the default home-country window (100
        // an hour) answered 429 from the 101st (220 of 320 answers of a full run).
        let mut vars = sms_vars.clone();
        vars.push((
            "VERIFICATION_HOME_COUNTRY_HOURLY".to_owned(),
            fixtures::HOME_COUNTRY_HOURLY_FOR_BENCH.to_owned(),
        ));
        specs.push(Spec {
            name: "verify-api",
            vars,
            event: Box::new(move |tag| {
                let i = next(&counter);
                http_as(
                    start.clone(),
                    &format!("cs-{tag}"),
                    &fixtures::ip(i),
                    &fixtures::prefixed_phone(i),
                )
            }),
            batch: Box::new(move |tag| {
                (0..10)
                    .map(|k| {
                        let i = 100_000 + next(&counter2);
                        http_as(
                            start2.clone(),
                            &format!("cs-{tag}-{k}"),
                            &fixtures::ip(i),
                            &fixtures::prefixed_phone(i),
                        )
                    })
                    .collect()
            }),
            good: http_2xx,
        });
    }

    let delivery_files: Vec<String> = std::fs::read_dir(util::repo_root().join("events"))
        .map(|dir| {
            let mut names: Vec<String> = dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sns-delivery-") && n.ends_with(".json"))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    let delivered = event_file("sns-delivery-delivered.json");
    if let Some(first) = delivered {
        let all: Vec<Value> = delivery_files
            .iter()
            .filter_map(|f| event_file(f))
            .collect();
        specs.push(Spec {
            name: "delivery-status",
            vars: sms_vars.clone(),
            event: Box::new(move |tag| tag_sns(first.clone(), tag)),
            batch: Box::new(move |tag| {
                all.iter()
                    .cycle()
                    .take(10)
                    .enumerate()
                    .map(|(k, e)| tag_sns(e.clone(), &format!("{tag}-{k}")))
                    .collect()
            }),
            good: any,
        });
    }

    // STOP is left out: it would revoke the sample user's consent for the other functions.
    if let Some(events) = samples(&[
        "sns-inbound-help.json",
        "sns-inbound-other.json",
        "sns-inbound-start.json",
    ]) {
        let first = events[0].clone();
        specs.push(Spec {
            name: "inbound-sms",
            vars: sms_vars,
            event: Box::new(move |tag| tag_sns(first.clone(), tag)),
            batch: Box::new(move |tag| {
                events
                    .iter()
                    .cycle()
                    .take(10)
                    .enumerate()
                    .map(|(k, e)| tag_sns(e.clone(), &format!("{tag}-{k}")))
                    .collect()
            }),
            good: any,
        });
    }
    specs
}
