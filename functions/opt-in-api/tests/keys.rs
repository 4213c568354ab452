//! The `opt-in-api` binary with a bad key (DESIGN §5: no request is served with a guessable
//! key). The key is read by the first request, not at init (`sms_shared::secrets`), so a short
//! key is a 500 for that request, with nothing done and the cause logged, and the function
//! serves the request after the secret is fixed without a new cold start. Run as a separate
//! process under a local Lambda Runtime API with moto (`CARGO_BIN_EXE_opt-in-api`, the debug
//! profile), as `functions/sender/tests/processes.rs` runs the sender.

use integration_tests::TestEnv;
use integration_tests::lambda_process::LambdaProcess;
use integration_tests::local_stack::{LOCAL_JWT_SIGNING_KEY, put_secret};
use serde_json::Value;
use sms_shared::store::PreferencesStore;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest the test waits for an answer (the first one includes the process's start).
const PATIENCE: Duration = Duration::from_secs(60);

/// `GET /sms-opt-in/` as u-42 (the event's token is signed with the local key).
fn opt_in_get() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/http-opt-in-get.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the sample event")).expect("JSON")
}

fn log_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("opt-in-api");
    std::fs::create_dir_all(&dir).expect("the log directory");
    let log = dir.join("keys.log");
    let _ = std::fs::remove_file(&log);
    log
}

/// The status and the JSON body of a payload-v2 answer.
fn status_and_body(answer: &[u8]) -> (u64, Value) {
    let answer: Value = serde_json::from_slice(answer).expect("a JSON answer");
    let body = serde_json::from_str(answer["body"].as_str().unwrap_or("null")).expect("a body");
    (answer["statusCode"].as_u64().unwrap_or(0), body)
}

#[tokio::test]
async fn a_short_key_answers_500_with_nothing_done_until_the_secret_is_fixed() {
    let env = TestEnv::new().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&env.sdk);
    let secret = put_secret(&secrets, &format!("{}jwt", env.prefix), "sixteen-bytes!!!")
        .await
        .expect("the secret");
    let log = log_path();
    let mut function = LambdaProcess::start(
        env!("CARGO_BIN_EXE_opt-in-api").as_ref(),
        "opt-in-api",
        &env,
        &[("JWT_SIGNING_KEY_SECRET_ID", &secret)],
        &log,
    )
    .await;

    let answer = function.invoke(&opt_in_get(), PATIENCE).await;
    let (status, body) = status_and_body(&answer.expect("an answer, not an init error"));
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "internal_error", "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    assert!(
        !body.to_string().contains("bytes"),
        "no cause in the answer: {body}"
    );
    let logged = std::fs::read_to_string(&log).expect("the function's log");
    assert!(
        logged.contains("no usable key") && logged.contains("at least 32 are required"),
        "the log says why: {logged}"
    );
    // Nothing done: the prompt a served GET records as shown was not.
    let preferences = PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences);
    assert_eq!(preferences.get("u-42").await.expect("read"), None);

    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(LOCAL_JWT_SIGNING_KEY)
        .send()
        .await
        .expect("the fixed key");
    let answer = function.invoke(&opt_in_get(), PATIENCE).await;
    let (status, body) = status_and_body(&answer.expect("an answer"));
    assert_eq!(status, 200, "the next request reads the fixed key: {body}");
    assert_eq!(body["show_prompt"], true, "{body}");
}
