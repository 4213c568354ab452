//! An HTTP stub of the End User Messaging SMS API (`pinpoint-sms-voice-v2`, awsJson1_0).
//!
//! It serves `SendTextMessage` and `PutMessageFeedback` on 127.0.0.1, records what it was
//! asked, and answers as the real service does, including its error shapes (checked against
//! the SDK's deserializers), so the code under test meets the real SDK error variants:
//!
//! | [`Behavior`] | status | `__type` | `Reason` |
//! |---|---|---|---|
//! | `Ok`, `Delay` | 200 | | |
//! | `Throttle` | 400 | `ThrottlingException` | |
//! | `Validation` | 400 | `ValidationException` | as given |
//! | `OptedOut` | 400 | `ConflictException` | `DESTINATION_PHONE_NUMBER_OPTED_OUT` |
//! | `SpendLimit` | 400 | `ServiceQuotaExceededException` | `MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT` |
//! | `AccessDenied` | 400 | `AccessDeniedException` | `ACCOUNT_DISABLED` |
//! | `InternalError` | 500 | `InternalServerException` | |
//! | `Hang` | never answers | | |
//!
//! Which behaviour a `SendTextMessage` call gets: a malformed request (no or non-E.164
//! `DestinationPhoneNumber`) is a `ValidationException`; then the rate limit
//! ([`SmsStub::limit_rate`]) may answer `ThrottlingException`; then a behaviour set for the
//! destination ([`SmsStub::fail_for_destination`], lasting), else the next one-shot behaviour
//! ([`SmsStub::push`]), else the default ([`SmsStub::set_default`], initially `Ok`).
//! `PutMessageFeedback` always succeeds for a message id this stub issued and answers
//! `ResourceNotFoundException` for any other.
//!
//! Outside the protocol (requests without `X-Amz-Target`, which the SDK always sends), a
//! `GET /messages` lists the accepted messages and `GET /feedback` the feedback received, as
//! JSON, for clients in other processes (the `sms-stub` binary and the JavaScript contract
//! test of `tests/contract/`).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedCredentialsProvider;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Operation timeout of [`SmsStub::client`]: short, so `Hang` fails a test quickly.
pub const CLIENT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Message ids are unique across every stub of the process.
static MESSAGE_IDS: AtomicU64 = AtomicU64::new(0);
static REQUEST_IDS: AtomicU64 = AtomicU64::new(0);

/// How the stub answers a `SendTextMessage` call.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// 200 with a fresh `MessageId`; the message is recorded in [`SmsStub::sent`].
    Ok,
    /// `ThrottlingException` (transient).
    Throttle,
    /// `ValidationException` with this `Reason` (e.g. `INVALID_PARAMETER`).
    Validation { reason: String },
    /// `ConflictException`, reason `DESTINATION_PHONE_NUMBER_OPTED_OUT`.
    OptedOut,
    /// `ServiceQuotaExceededException`, reason `MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT`.
    SpendLimit,
    /// `AccessDeniedException`, reason `ACCOUNT_DISABLED`.
    AccessDenied,
    /// 500 `InternalServerException` (transient).
    InternalError,
    /// Accepts the message (it is recorded at once, as the provider would have it), then
    /// answers `Ok` after this delay: a client that times out meanwhile has still sent it.
    Delay(Duration),
    /// Never answers, so the client times out. The message is not recorded as sent.
    Hang,
}

impl Behavior {
    /// `Validation` with the given reason.
    pub fn validation(reason: &str) -> Behavior {
        Behavior::Validation {
            reason: reason.to_owned(),
        }
    }
}

/// One accepted `SendTextMessage` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SentSms {
    /// `DestinationPhoneNumber`.
    pub to: String,
    /// `MessageBody` (empty when absent).
    pub body: String,
    pub origination_identity: Option<String>,
    /// `TRANSACTIONAL` or `PROMOTIONAL`.
    pub message_type: Option<String>,
    /// `ConfigurationSetName`.
    pub configuration_set: Option<String>,
    pub context: BTreeMap<String, String>,
    pub max_price: Option<String>,
    /// `TimeToLive` in seconds.
    pub ttl: Option<i64>,
    pub message_feedback_enabled: Option<bool>,
    /// The `MessageId` the stub answered.
    pub message_id: String,
    /// The request body as sent.
    pub raw: Value,
    /// When the request arrived (before any `Delay`).
    pub at: Instant,
}

impl SentSms {
    fn from_request(raw: Value, message_id: String) -> SentSms {
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        SentSms {
            to: text("DestinationPhoneNumber").unwrap_or_default(),
            body: text("MessageBody").unwrap_or_default(),
            origination_identity: text("OriginationIdentity"),
            message_type: text("MessageType"),
            configuration_set: text("ConfigurationSetName"),
            context: raw
                .get("Context")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            max_price: text("MaxPrice"),
            ttl: raw.get("TimeToLive").and_then(Value::as_i64),
            message_feedback_enabled: raw.get("MessageFeedbackEnabled").and_then(Value::as_bool),
            message_id,
            raw,
            at: Instant::now(),
        }
    }
}

/// Token bucket in message parts per second, with one second of burst.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> TokenBucket {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Takes `parts` tokens if there are enough (a message longer than the burst passes on a
    /// full bucket and leaves it in debt).
    fn take(&mut self, parts: f64) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens + 1e-9 >= parts.min(self.capacity) {
            self.tokens -= parts;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct State {
    sent: Vec<SentSms>,
    requests: u64,
    throttled: u64,
    feedback: Vec<(String, String)>,
    issued: HashSet<String>,
    queue: VecDeque<Behavior>,
    default: Behavior,
    per_destination: HashMap<String, Behavior>,
    bucket: Option<TokenBucket>,
    mix: Option<FaultMix>,
}

/// Random faults for calls that get the default behaviour: each call independently is
/// throttled, fails with a 500, or hangs (times out) with the given probabilities.
/// Deterministic for a seed, so a failing run can be replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultMix {
    pub seed: u64,
    pub throttle: f64,
    pub internal_error: f64,
    pub hang: f64,
}

impl FaultMix {
    /// The next behaviour; advances the generator (xorshift64*).
    fn draw(&mut self) -> Option<Behavior> {
        let mut x = self.seed.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        if r < self.throttle {
            Some(Behavior::Throttle)
        } else if r < self.throttle + self.internal_error {
            Some(Behavior::InternalError)
        } else if r < self.throttle + self.internal_error + self.hang {
            Some(Behavior::Hang)
        } else {
            None
        }
    }
}

/// Aborts the server (and with it every open connection) when the last handle goes.
#[derive(Debug)]
struct Server(JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running stub. Clones share the server; it stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SmsStub {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    _server: Arc<Server>,
}

impl SmsStub {
    /// Starts a stub on a free port of 127.0.0.1, in a task of the current runtime.
    pub async fn start() -> SmsStub {
        SmsStub::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the SMS stub on 127.0.0.1")
    }

    /// Starts a stub listening on `addr` (port 0: a free one), in a task of the current
    /// runtime; fails when the address cannot be bound.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<SmsStub> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            sent: Vec::new(),
            requests: 0,
            throttled: 0,
            feedback: Vec::new(),
            issued: HashSet::new(),
            queue: VecDeque::new(),
            default: Behavior::Ok,
            per_destination: HashMap::new(),
            mix: None,
            bucket: None,
        }));
        let server_state = state.clone();
        let server = tokio::spawn(async move {
            // Connections live in this set: aborting the accept loop drops them all.
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = server_state.clone();
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(state.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(SmsStub {
            state,
            addr,
            _server: Arc::new(Server(server)),
        })
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SDK configuration aimed at the stub: test credentials, a 2 s operation timeout and
    /// no SDK retries, so the code under test decides about retries.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(crate::TEST_REGION))
            .credentials_provider(SharedCredentialsProvider::new(
                crate::aws::test_credentials(),
            ))
            .http_client(sms_shared::aws::https_client())
            .endpoint_url(self.endpoint())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(CLIENT_OPERATION_TIMEOUT)
                    .build(),
            )
            .build()
    }

    /// A client of the stub built from [`SmsStub::sdk_config`].
    pub fn client(&self) -> aws_sdk_pinpointsmsvoicev2::Client {
        aws_sdk_pinpointsmsvoicev2::Client::new(&self.sdk_config())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Accepted messages, in the order they were accepted.
    pub fn sent(&self) -> Vec<SentSms> {
        self.state().sent.clone()
    }

    /// Accepted messages to one number.
    pub fn sent_to(&self, number: &str) -> Vec<SentSms> {
        self.state()
            .sent
            .iter()
            .filter(|s| s.to == number)
            .cloned()
            .collect()
    }

    /// Every `SendTextMessage` call, failed ones included.
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    /// Calls answered `ThrottlingException` by the rate limit of [`SmsStub::limit_rate`]
    /// (not those of `Behavior::Throttle`).
    pub fn throttled(&self) -> u64 {
        self.state().throttled
    }

    /// `(MessageId, MessageFeedbackStatus)` of every successful `PutMessageFeedback`.
    pub fn feedback(&self) -> Vec<(String, String)> {
        self.state().feedback.clone()
    }

    /// Queues a one-shot behaviour for the next call (first in, first out).
    pub fn push(&self, behavior: Behavior) {
        self.state().queue.push_back(behavior);
    }

    /// Behaviour of calls when no other applies (initially `Ok`).
    /// Random faults for calls that would get the default behaviour; `None` turns them off.
    pub fn set_fault_mix(&self, mix: Option<FaultMix>) {
        self.state().mix = mix;
    }

    pub fn set_default(&self, behavior: Behavior) {
        self.state().default = behavior;
    }

    /// Every call to `number` gets `behavior` (until set again; `Behavior::Ok` clears it).
    pub fn fail_for_destination(&self, number: &str, behavior: Behavior) {
        let mut state = self.state();
        if behavior == Behavior::Ok {
            state.per_destination.remove(number);
        } else {
            state.per_destination.insert(number.to_owned(), behavior);
        }
    }

    /// Answers `ThrottlingException` above `parts_per_second` message parts per second (a token
    /// bucket with one second of burst), as the origination identity's quota would.
    pub fn limit_rate(&self, parts_per_second: f64) {
        self.state().bucket = Some(TokenBucket::new(parts_per_second));
    }

    /// Waits until at least `n` messages were accepted, or `timeout` passes; returns them.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentSms> {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.sent();
            if sent.len() >= n || Instant::now() >= deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type StubResponse = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: &Value) -> StubResponse {
    let request_id = format!(
        "stub-req-{}",
        REQUEST_IDS.fetch_add(1, Ordering::Relaxed) + 1
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", request_id)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

/// An error as the awsJson1_0 protocol carries it: status, `__type`, `Message` and the
/// shape's own fields.
fn error(status: StatusCode, kind: &str, message: &str, fields: &[(&str, &str)]) -> StubResponse {
    let mut body = Map::new();
    body.insert("__type".into(), kind.into());
    body.insert("Message".into(), message.into());
    for (k, v) in fields {
        body.insert((*k).into(), (*v).into());
    }
    json_response(status, &Value::Object(body))
}

fn validation(reason: &str, message: &str) -> StubResponse {
    error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        message,
        &[("Reason", reason)],
    )
}

fn is_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (2..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<StubResponse, Infallible> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let post = request.method() == hyper::Method::POST;
    if target.is_empty() && request.method() == hyper::Method::GET {
        return Ok(inspect(&state, request.uri().path()));
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(validation("CANNOT_PARSE", "unreadable body")),
    };
    if !post {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "only POST is served",
            &[],
        ));
    }
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "body is not a JSON object",
            &[],
        ));
    };
    let response = match target.as_str() {
        "PinpointSMSVoiceV2.SendTextMessage" => send_text_message(&state, input).await,
        "PinpointSMSVoiceV2.PutMessageFeedback" => put_message_feedback(&state, &input),
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the stub does not serve `{other}`"),
            &[],
        ),
    };
    Ok(response)
}

/// `GET /messages` and `GET /feedback`: what the stub recorded, as JSON.
fn inspect(state: &Mutex<State>, path: &str) -> StubResponse {
    let state = lock(state);
    let body = match path.trim_end_matches('/') {
        "/messages" => Value::Array(
            state
                .sent
                .iter()
                .map(|sms| {
                    json!({
                        "destination": sms.to,
                        "body": sms.body,
                        "message_id": sms.message_id,
                        "origination_identity": sms.origination_identity,
                        "message_type": sms.message_type,
                        "configuration_set": sms.configuration_set,
                        "context": sms.context,
                        "time_to_live": sms.ttl,
                        "message_feedback_enabled": sms.message_feedback_enabled,
                    })
                })
                .collect(),
        ),
        "/feedback" => Value::Array(
            state
                .feedback
                .iter()
                .map(|(id, status)| json!({ "message_id": id, "status": status }))
                .collect(),
        ),
        _ => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"error":"GET serves /messages and /feedback only"}"#,
                )))
                .expect("valid response");
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a `SendTextMessage` call gets, decided under the lock and answered after it.
enum Decision {
    /// Accepted with this message id (`Ok`, or `Delay` before answering).
    Accept(Behavior, String),
    /// Answered with this failing behaviour.
    Fail(Behavior),
}

async fn send_text_message(state: &Mutex<State>, input: Map<String, Value>) -> StubResponse {
    let to = input
        .get("DestinationPhoneNumber")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = input
        .get("MessageBody")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parts = f64::from(sms_shared::segments::count(body).segments.max(1));
    let behavior = {
        let mut state = lock(state);
        state.requests += 1;
        if to.is_empty() {
            return validation("MISSING_PARAMETER", "DestinationPhoneNumber is required");
        }
        if !is_e164(&to) {
            return validation(
                "INVALID_PARAMETER",
                "DestinationPhoneNumber must be in E.164 format",
            );
        }
        if let Some(bucket) = state.bucket.as_mut()
            && !bucket.take(parts)
        {
            state.throttled += 1;
            return error(
                StatusCode::BAD_REQUEST,
                "ThrottlingException",
                "Rate exceeded for the origination identity",
                &[],
            );
        }
        let behavior = match state.per_destination.get(&to) {
            Some(b) => b.clone(),
            None => match state.queue.pop_front() {
                Some(b) => b,
                None => match state.mix.as_mut().and_then(FaultMix::draw) {
                    Some(fault) => fault,
                    None => state.default.clone(),
                },
            },
        };
        if let Behavior::Ok | Behavior::Delay(_) = behavior {
            let message_id = format!(
                "stub-msg-{}",
                MESSAGE_IDS.fetch_add(1, Ordering::Relaxed) + 1
            );
            state.issued.insert(message_id.clone());
            state.sent.push(SentSms::from_request(
                Value::Object(input),
                message_id.clone(),
            ));
            Decision::Accept(behavior, message_id)
        } else {
            Decision::Fail(behavior)
        }
    };
    let behavior = match behavior {
        Decision::Fail(failure) => failure,
        Decision::Accept(accepted, message_id) => {
            if let Behavior::Delay(delay) = accepted {
                tokio::time::sleep(delay).await;
            }
            return json_response(StatusCode::OK, &json!({ "MessageId": message_id }));
        }
    };
    let bad = StatusCode::BAD_REQUEST;
    match behavior {
        Behavior::Ok | Behavior::Delay(_) => unreachable!("answered above"),
        Behavior::Throttle => error(bad, "ThrottlingException", "Rate exceeded", &[]),
        Behavior::Validation { reason } => validation(&reason, "Validation failed"),
        Behavior::OptedOut => error(
            bad,
            "ConflictException",
            "The destination phone number is opted out",
            &[
                ("Reason", "DESTINATION_PHONE_NUMBER_OPTED_OUT"),
                ("ResourceType", "phone-number"),
                ("ResourceId", &to),
            ],
        ),
        Behavior::SpendLimit => error(
            bad,
            "ServiceQuotaExceededException",
            "The monthly spend limit for text messages has been reached",
            &[("Reason", "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT")],
        ),
        Behavior::AccessDenied => error(
            bad,
            "AccessDeniedException",
            "The account is disabled",
            &[("Reason", "ACCOUNT_DISABLED")],
        ),
        Behavior::InternalError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "Internal server error",
            &[("RequestId", "stub-internal")],
        ),
        Behavior::Hang => std::future::pending().await,
    }
}

fn put_message_feedback(state: &Mutex<State>, input: &Map<String, Value>) -> StubResponse {
    let text = |key: &str| input.get(key).and_then(Value::as_str).unwrap_or_default();
    let (id, status) = (text("MessageId"), text("MessageFeedbackStatus"));
    if id.is_empty() || status.is_empty() {
        return validation(
            "MISSING_PARAMETER",
            "MessageId and MessageFeedbackStatus are required",
        );
    }
    if !matches!(status, "RECEIVED" | "FAILED") {
        return validation(
            "INVALID_PARAMETER",
            "MessageFeedbackStatus must be RECEIVED or FAILED",
        );
    }
    let mut state = lock(state);
    if !state.issued.contains(id) {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "No message with this id",
            &[("ResourceType", "message"), ("ResourceId", id)],
        );
    }
    state.feedback.push((id.to_owned(), status.to_owned()));
    json_response(
        StatusCode::OK,
        &json!({ "MessageId": id, "MessageFeedbackStatus": status }),
    )
}
