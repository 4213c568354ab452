//! The `opt-in-api` binary with a bad key (DESIGN §5: "a deployed function refuses to start
//! with a missing or short key"). The key is read at cold start (`sms_shared::secrets`): with a
//! short key the process logs why and exits non-zero, answering nothing and writing nothing;
//! Lambda's next invocation is a fresh cold start, which serves once the secret is fixed. Run
//! as a separate process under a local Lambda Runtime API with moto
//! (`CARGO_BIN_EXE_opt-in-api`, the debug profile), as `functions/sender/tests/processes.rs`
//! runs the sender.

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

/// The binary as a new cold start, its JWT key in secret `secret`.
async fn start(env: &TestEnv, secret: &str, log: &Path) -> LambdaProcess {
    LambdaProcess::start(
        env!("CARGO_BIN_EXE_opt-in-api").as_ref(),
        "opt-in-api",
        env,
        &[("JWT_SIGNING_KEY_SECRET_ID", secret)],
        log,
    )
    .await
}

#[tokio::test]
async fn a_short_key_refuses_to_start_and_a_good_key_serves() {
    let env = TestEnv::new().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&env.sdk);
    let secret = put_secret(&secrets, &format!("{}jwt", env.prefix), "sixteen-bytes!!!")
        .await
        .expect("the secret");
    let log = log_path();
    let mut function = start(&env, &secret, &log).await;
    let answer = function.invoke(&opt_in_get(), PATIENCE).await;
    let refusal = answer.expect_err("no answer from a function without a good key");
    assert!(
        refusal.contains("exited with") && !refusal.contains("exit status: 0"),
        "the process exits non-zero: {refusal}"
    );
    let logged = std::fs::read_to_string(&log).expect("the function's log");
    assert!(
        logged.contains("refuses to start")
            && logged.contains(&secret)
            && logged.contains("the key is 16 bytes; at least 32 are required"),
        "the log says which secret and what is wrong: {logged}"
    );
    assert!(!logged.contains("sixteen-bytes"), "never the key: {logged}");
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
    // Lambda's next invocation after a runtime exit is a new cold start.
    let mut function = start(&env, &secret, &log).await;
    let answer = function.invoke(&opt_in_get(), PATIENCE).await;
    let (status, body) = status_and_body(&answer.expect("an answer"));
    assert_eq!(
        status, 200,
        "a cold start with the fixed key serves: {body}"
    );
    assert_eq!(body["show_prompt"], true, "{body}");
}
