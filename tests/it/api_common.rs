//! Helpers of the HTTP API tests (`opt_in_api.rs`, `verify_api.rs`): requests built from the
//! payload-v2 events of `events/` (authenticated as the app's client is: the `access_token`
//! cookie and the CSRF pair), both handlers wired to one `TestEnv`, the SMS stub and a
//! `ManualClock`, and a log capture. As in `main.rs`, the handlers read their keys from
//! Secrets Manager (the local stack's secrets), and every AWS call goes through a recorder that
//! refuses what the function's role in `template.yaml` does not allow.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use integration_tests::iam::Recorder;
use integration_tests::local_stack::{LOCAL_JWT_SIGNING_KEY, create_secrets};
use integration_tests::{SmsStub, TestEnv};
use jiff::Timestamp;
use lambda_http::{Body, Request};
use serde_json::Value;
use sms_shared::Config;
use sms_shared::auth::Authenticator;
use sms_shared::clock::ManualClock;
use sms_shared::preferences::{ConsentEvent, Preferences};
use sms_shared::secrets;
use sms_shared::sms::EumSender;
use sms_shared::store::schema::LOG_KEY;
use sms_shared::store::{Counters, LogStore, PreferencesStore, VerificationStore};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// 2026-11-25 12:00 UTC, a Wednesday.
pub const START: &str = "2026-11-25T12:00:00Z";
/// The frontend's origin in the events and the configuration.
pub const APP_ORIGIN: &str = "https://app.example.com";
/// The CSRF pair of the events.
pub const CSRF: &str = "5d41402abc4b2a76b9719d911017c592";

/// One test's world: tables, SMS stub, clock, both APIs.
pub struct Api {
    pub env: TestEnv,
    pub stub: SmsStub,
    pub clock: Arc<ManualClock>,
    pub opt_in: opt_in_api::State<opt_in_api::Stores<EumSender>>,
    pub verify: verify_api::State<verify_api::Stores<EumSender>>,
    pub config: Config,
    /// Each function's AWS calls (key reads included).
    pub opt_in_calls: Recorder,
    pub verify_calls: Recorder,
}

impl Api {
    pub async fn new() -> Api {
        Self::with(&[]).await
    }

    pub async fn with(extra: &[(&str, &str)]) -> Api {
        let env = TestEnv::new().await;
        let stub = SmsStub::start().await;
        let (jwt_secret, code_secret) = create_secrets(&env.sdk, &env.prefix)
            .await
            .unwrap_or_else(|e| panic!("the local stack's secrets: {e}"));
        let mut vars = vec![
            ("SMS_SENDER", "eum"),
            ("ORIGINATION_IDENTITY", "+18005550100"),
            ("ALLOWED_ORIGINS", APP_ORIGIN),
            ("JWT_SIGNING_KEY_SECRET_ID", &jwt_secret),
            ("CODE_HMAC_KEY_SECRET_ID", &code_secret),
        ];
        vars.extend_from_slice(extra);
        let config = env.config_with(&vars);
        let opt_in_calls = Recorder::new("opt-in-api", &env.vars_with(&vars));
        let verify_calls = Recorder::new("verify-api", &env.vars_with(&vars));
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let secrets = aws_sdk_secretsmanager::Client::new(&env.sdk);
        // The keys as main.rs reads them at cold start.
        let opt_in_auth = Authenticator::load(&config.auth, &opt_in_calls.secrets(&secrets))
            .await
            .expect("opt-in-api reads the JWT key");
        let verify_secrets = verify_calls.secrets(&secrets);
        let (verify_auth, code_key) = tokio::try_join!(
            Authenticator::load(&config.auth, &verify_secrets),
            secrets::read_key(
                &verify_secrets,
                "CODE_HMAC_KEY_SECRET_ID",
                config.code_hmac_key_secret_id.as_deref(),
            ),
        )
        .expect("verify-api reads both keys");
        let sender = EumSender::new(verify_calls.sms(&stub.client()), &config.sms);
        let opt_in_sender = EumSender::new(opt_in_calls.sms(&stub.client()), &config.sms);
        let opt_in = opt_in_api::State::new(
            config.clone(),
            opt_in_auth,
            opt_in_calls.dynamodb(&env.dynamodb),
            opt_in_sender,
            clock.clone(),
        );
        let verify = verify_api::State::new(
            config.clone(),
            verify_auth,
            code_key,
            verify_calls.dynamodb(&env.dynamodb),
            sender,
            clock.clone(),
        );
        Api {
            env,
            stub,
            clock,
            opt_in,
            verify,
            config,
            opt_in_calls,
            verify_calls,
        }
    }

    /// `verify-api`'s next `n` preferences saves lose to "another writer" (a version nobody
    /// has, see `integration_tests::conflict`): the conflict path, with its re-read, through
    /// the function's own recorded client.
    pub fn lose_verify_saves(&mut self, n: usize) -> integration_tests::conflict::Conflicts {
        let (contended, conflicts) = integration_tests::conflict::lose_saves(
            &self.verify_calls.dynamodb(&self.env.dynamodb),
            n,
        );
        self.verify.ports.consent.preferences =
            PreferencesStore::new(contended, self.env.tables.preferences.clone());
        conflicts
    }

    /// From now on, every DynamoDB request of both functions is timed ([`RoundTrips`]).
    pub fn time_round_trips(&mut self) -> RoundTrips {
        let trips = RoundTrips::default();
        let timed = |recorded: aws_sdk_dynamodb::Client| {
            aws_sdk_dynamodb::Client::from_conf(
                recorded
                    .config()
                    .to_builder()
                    .interceptor(TimeRequests(trips.clone()))
                    .build(),
            )
        };
        let verify = timed(self.verify_calls.dynamodb(&self.env.dynamodb));
        let opt_in = timed(self.opt_in_calls.dynamodb(&self.env.dynamodb));
        let t = &self.env.tables;
        let ports = &mut self.verify.ports;
        ports.codes = VerificationStore::new(verify.clone(), t.verification.clone());
        ports.consent.preferences = PreferencesStore::new(verify.clone(), t.preferences.clone());
        ports.log = LogStore::new(verify.clone(), t.log.clone());
        ports.log_counters = Counters::new(verify, t.log.clone(), LOG_KEY);
        let ports = &mut self.opt_in.ports;
        ports.consent.preferences = PreferencesStore::new(opt_in.clone(), t.preferences.clone());
        ports.confirmations.log = LogStore::new(opt_in, t.log.clone());
        trips
    }

    pub fn now(&self) -> Timestamp {
        use sms_shared::clock::Clock;
        self.clock.now()
    }

    pub fn preferences_store(&self) -> PreferencesStore {
        PreferencesStore::new(
            self.env.dynamodb.clone(),
            self.env.tables.preferences.clone(),
        )
    }

    pub async fn prefs(&self, user: &str) -> Option<Preferences> {
        self.preferences_store().get(user).await.unwrap()
    }

    pub async fn history(&self, user: &str) -> Vec<ConsentEvent> {
        self.preferences_store()
            .consent_history(user)
            .await
            .unwrap()
    }

    /// Sends a request to whichever function serves its path.
    pub async fn call(&self, request: Request) -> Reply {
        let path = request.uri().path().to_owned();
        let response = if path.contains("phone-verification") {
            verify_api::handler(&self.verify, request).await
        } else {
            opt_in_api::handler(&self.opt_in, request).await
        }
        .expect("handlers answer every request");
        Reply::from(response)
    }
}

/// The DynamoDB requests of the functions, timed: requests in flight at the same moment
/// (started before the others ended) are one round trip; a request that starts after every
/// earlier one ended starts the next.
#[derive(Debug, Clone, Default)]
pub struct RoundTrips(Arc<Mutex<Trips>>);

#[derive(Debug, Default)]
pub struct Trips {
    in_flight: usize,
    /// The operations of each round trip, in order.
    pub trips: Vec<Vec<String>>,
}

impl RoundTrips {
    /// The round trips since the last call, and forgets them.
    pub fn take(&self) -> Vec<Vec<String>> {
        let mut trips = self.0.lock().unwrap();
        std::mem::take(&mut trips.trips)
    }
}

#[derive(Debug)]
struct TimeRequests(RoundTrips);

impl Intercept for TimeRequests {
    fn name(&self) -> &'static str {
        "TimeRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        let mut trips = self.0.0.lock().unwrap();
        if trips.in_flight == 0 {
            trips.trips.push(Vec::new());
        }
        trips.in_flight += 1;
        trips.trips.last_mut().unwrap().push(operation);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let mut trips = self.0.0.lock().unwrap();
        trips.in_flight = trips.in_flight.saturating_sub(1);
        Ok(())
    }
}

/// A SimpleJWT access token for `user`, valid for `exp_in_secs` from the real clock (the
/// token's `exp` is checked against it, not against the test's `ManualClock`).
pub fn access_token(user: &str, exp_in_secs: i64) -> String {
    let now = Timestamp::now().as_second();
    let user_id: Value = match user.parse::<u64>() {
        Ok(n) => n.into(),
        Err(_) => user.into(),
    };
    let claims = serde_json::json!({
        "token_type": "access", "exp": now + exp_in_secs, "iat": now,
        "jti": format!("{now}-{user}"), "user_id": user_id,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(LOCAL_JWT_SIGNING_KEY.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A response, its body parsed.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl From<lambda_http::Response<Body>> for Reply {
    fn from(r: lambda_http::Response<Body>) -> Self {
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let body = match r.body() {
            Body::Text(t) => serde_json::from_str(t).expect("JSON body"),
            Body::Binary(b) => serde_json::from_slice(b).expect("JSON body"),
            Body::Empty => Value::Null,
            _ => Value::Null,
        };
        Reply {
            status: r.status().as_u16(),
            retry_after: header("retry-after"),
            content_type: header("content-type"),
            body,
        }
    }
}

impl Reply {
    /// Asserts a §5 error: status, code, and the `{error, code}` shape.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.body["code"], code, "{:?}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{:?}",
            self.body
        );
    }
}

/// The event `events/<name>.json` as JSON.
pub fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// How to change an event before it becomes a request.
#[derive(Default, Clone)]
pub struct Edit<'a> {
    /// `Some(Some(user))`: a fresh cookie token for `user`; `Some(None)`: no cookies at all.
    pub user: Option<Option<&'a str>>,
    /// Raw body text.
    pub body: Option<String>,
    pub content_type: Option<Option<&'a str>>,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a str)>,
    pub source_ip: Option<&'a str>,
}

pub fn request(name: &str, edit: Edit<'_>) -> Request {
    let mut e = event(name);
    match edit.user {
        Some(Some(user)) => {
            e["cookies"] = serde_json::json!([
                format!("access_token={}", access_token(user, 300)),
                format!("csrftoken={CSRF}"),
            ]);
        }
        Some(None) => {
            e.as_object_mut().unwrap().remove("cookies");
        }
        None => {}
    }
    if let Some(body) = edit.body {
        e["body"] = body.into();
    }
    match edit.content_type {
        Some(Some(ct)) => e["headers"]["content-type"] = ct.into(),
        Some(None) => {
            e["headers"].as_object_mut().unwrap().remove("content-type");
        }
        None => {}
    }
    if let Some(method) = edit.method {
        e["requestContext"]["http"]["method"] = method.into();
    }
    if let Some(path) = edit.path {
        let path = format!("/api/v1{path}");
        e["rawPath"] = path.clone().into();
        e["requestContext"]["http"]["path"] = path.into();
    }
    if let Some(ip) = edit.source_ip {
        e["requestContext"]["http"]["sourceIp"] = ip.into();
    }
    for (k, v) in edit.headers {
        e["headers"][k] = v.into();
    }
    lambda_http::request::from_str(&e.to_string()).expect("a valid payload v2 event")
}

/// The event as user `user` with JSON body `body`.
pub fn as_user(name: &str, user: &str, body: Option<Value>) -> Request {
    request(
        name,
        Edit {
            user: Some(Some(user)),
            body: body.map(|b| b.to_string()),
            ..Edit::default()
        },
    )
}

/// A verification start (`events/http-verification-start.json`) by `user` for `number`,
/// coming from `source_ip` (the per-IP window's key).
pub fn verification_start(user: &str, number: &str, source_ip: &str) -> Request {
    request(
        "http-verification-start",
        Edit {
            user: Some(Some(user)),
            body: Some(serde_json::json!({ "phone_number": number }).to_string()),
            source_ip: Some(source_ip),
            ..Edit::default()
        },
    )
}

/// The code of a verification SMS body.
pub fn code_in(body: &str) -> String {
    let rest = body
        .split("code is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no code in {body:?}"));
    let code: String = rest.chars().take(6).collect();
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{body:?}");
    code
}

/// Every log line of this test process, up to DEBUG (production runs at INFO; the SDK's own
/// TRACE level dumps whole HTTP bodies and is never for production), for asserting what never
/// appears in logs. One global subscriber: thread-scoped ones miss events of callsites whose
/// interest another test's thread cached first. Tests running in parallel share the buffer,
/// which only makes "never in any line" a stronger assertion.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();

impl LogCapture {
    pub fn start() -> LogCapture {
        CAPTURE
            .get_or_init(|| {
                let capture = LogCapture::default();
                let writer = capture.clone();
                let subscriber = tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::DEBUG)
                    .with_ansi(false)
                    .with_writer(move || writer.clone())
                    .finish();
                tracing::subscriber::set_global_default(subscriber)
                    .expect("no other global subscriber in this test binary");
                capture
            })
            .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts at most three sequential DynamoDB round trips and returns the row of
/// docs/http-api.md's table.
pub fn trips_row(what: &str, status: u16, trips: &[Vec<String>]) -> String {
    assert!(
        trips.len() <= 3,
        "{what}: {} sequential round trips: {trips:?}",
        trips.len()
    );
    let requests: usize = trips.iter().map(Vec::len).sum();
    let calls: Vec<String> = trips.iter().map(|t| t.join(" ‖ ")).collect();
    format!(
        "| {what} ({status}) | {requests} | {} | {} |",
        trips.len(),
        calls.join(" → ")
    )
}
