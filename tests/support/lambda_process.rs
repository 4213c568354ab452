//! A function's real binary run as Lambda runs it: a separate process with Lambda's
//! environment, polling a local Runtime API ([`crate::runtime_api`]), with moto and the SMS
//! stub behind the usual endpoint variables. What a test learns from it, it learns from
//! outside: the answers to its invocations, the tables, the stub, the queues. A process can
//! be killed with SIGKILL at any moment, as a crashed or timed-out instance is.
//!
//! [`settle_from_queue`] plays Lambda's SQS event source mapping: receive a batch, invoke,
//! delete what the function did not report in `batchItemFailures`.

use crate::TestEnv;
use crate::runtime_api::{ApiEvent, RuntimeApi};
use crate::sqs::{delete_records, receive_event_waiting};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Invocation ids are unique across every process of the test binary.
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Lambda's environment for a `provided.al2023` function with the template's settings, its
/// Runtime API at `runtime_api`, and `env`'s tables and queues behind moto.
pub fn lambda_env(runtime_api: SocketAddr, name: &str, env: &TestEnv) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/25/[$LATEST]0123456789abcdef",
        ),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("AWS_REGION", crate::TEST_REGION),
        ("AWS_DEFAULT_REGION", crate::TEST_REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_SESSION_TOKEN", "test"),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
        (
            "LD_LIBRARY_PATH",
            "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
        ),
        ("_HANDLER", "bootstrap"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.push(("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.to_string()));
    vars.push((
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{name}"),
    ));
    vars.push(("AWS_ENDPOINT_URL".into(), env.endpoint.clone()));
    vars.extend(env.vars());
    vars
}

/// One running function process and its Runtime API. Killed when dropped.
pub struct LambdaProcess {
    api: RuntimeApi,
    child: Child,
    name: String,
}

impl LambdaProcess {
    /// Starts `binary` as function `name` with Lambda's environment ([`lambda_env`]) plus
    /// `vars`; its output goes to `log` (appended).
    pub async fn start(
        binary: &Path,
        name: &str,
        env: &TestEnv,
        vars: &[(&str, &str)],
        log: &Path,
    ) -> LambdaProcess {
        let api = RuntimeApi::start(name).await;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let child = Command::new(binary)
            .env_clear()
            .envs(lambda_env(api.addr, name, env))
            .envs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        LambdaProcess {
            api,
            child,
            name: name.to_owned(),
        }
    }

    /// The process id (for the test's messages).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Queues an invocation with `payload`; returns its id. The process takes it when it
    /// next asks for work.
    pub fn dispatch(&self, payload: &impl serde::Serialize) -> String {
        let id = format!(
            "{}-{}",
            self.name,
            INVOCATIONS.fetch_add(1, Ordering::Relaxed) + 1
        );
        let body = serde_json::to_vec(payload).expect("the payload serializes");
        self.api.invoke(id.clone(), body);
        id
    }

    /// Waits for the answer to invocation `id`: the response body, or `Err` with the error
    /// report, an init error, the process's exit, or the timeout.
    pub async fn answer(&mut self, id: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(event) = self.api.event(Duration::from_millis(200)).await else {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("{} exited with {status}", self.name));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{}: no answer to {id} within {timeout:?}",
                        self.name
                    ));
                }
                continue;
            };
            match event {
                ApiEvent::Next(_) => {}
                ApiEvent::Response { id: got, body, .. } if got == id => return Ok(body.to_vec()),
                ApiEvent::Error { id: got, body, .. } if got == id => {
                    return Err(String::from_utf8_lossy(&body).into_owned());
                }
                ApiEvent::InitError { body } => {
                    return Err(format!("init error: {}", String::from_utf8_lossy(&body)));
                }
                ApiEvent::Response { .. } | ApiEvent::Error { .. } => {}
            }
        }
    }

    /// Invokes with `payload` and waits for the answer.
    pub async fn invoke(
        &mut self,
        payload: &impl serde::Serialize,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let id = self.dispatch(payload);
        self.answer(&id, timeout).await
    }

    /// SIGKILL, as a crashed or timed-out instance ends: no cleanup, no outcome written.
    pub fn kill(&mut self) {
        // SAFETY: a plain syscall on our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Whether `queue` holds no message at all: none visible, in flight or delayed.
pub async fn queue_is_empty(env: &TestEnv, queue: &str) -> bool {
    let attributes = env
        .sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .all(|name| attributes.get(name).is_none_or(|n| n == "0"))
}

/// Deletes the records of `event` that `response` does not name as failures, as Lambda's
/// event source mapping does.
pub async fn acknowledge(
    env: &TestEnv,
    queue: &str,
    event: &SqsEvent,
    response: &SqsBatchResponse,
) {
    let failed = |id: &str| {
        response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id)
    };
    let acknowledged = event
        .records
        .iter()
        .filter(|r| !failed(r.message_id.as_deref().unwrap_or_default()));
    delete_records(env, queue, acknowledged).await;
}

/// Lambda's event source mapping for `process` on `queue`, until the queue holds no message
/// (or `timeout` passes: an `Err`): receive up to `batch` messages (a long poll), invoke,
/// delete what the function acknowledged. A record handed back comes again when SQS makes it
/// visible (its visibility as the function set it); a copy it enqueued, after its delay.
/// Returns how many invocations the process answered.
pub async fn settle_from_queue(
    process: &mut LambdaProcess,
    env: &TestEnv,
    queue: &str,
    batch: i32,
    timeout: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    let mut invocations = 0;
    while !queue_is_empty(env, queue).await {
        if Instant::now() > deadline {
            return Err(format!("{queue} still holds messages after {timeout:?}"));
        }
        let event = receive_event_waiting(env, queue, batch, 1).await;
        if event.records.is_empty() {
            continue;
        }
        let answer = process.invoke(&event, Duration::from_secs(60)).await?;
        invocations += 1;
        let response: SqsBatchResponse = serde_json::from_slice(&answer).map_err(|e| {
            format!(
                "not a batch response ({e}): {}",
                String::from_utf8_lossy(&answer)
            )
        })?;
        acknowledge(env, queue, &event, &response).await;
    }
    Ok(invocations)
}

/// An IANA zone where the local time is between 10:00 and 17:59 now: a user there may get
/// promotional messages from a process that runs on the real clock, whenever the test runs.
pub fn midday_zone() -> &'static str {
    const ZONES: &[&str] = &[
        "America/Los_Angeles",
        "America/New_York",
        "Pacific/Honolulu",
        "America/Sao_Paulo",
        "Atlantic/Azores",
        "Europe/London",
        "Europe/Berlin",
        "Europe/Moscow",
        "Asia/Dubai",
        "Asia/Kolkata",
        "Asia/Bangkok",
        "Asia/Tokyo",
        "Australia/Sydney",
        "Pacific/Auckland",
        "Pacific/Pago_Pago",
    ];
    let now = jiff::Timestamp::now();
    ZONES
        .iter()
        .copied()
        .find(|zone| {
            now.in_tz(zone)
                .map(|z| (10..18).contains(&z.hour()))
                .unwrap_or(false)
        })
        .unwrap_or("America/Los_Angeles")
}
