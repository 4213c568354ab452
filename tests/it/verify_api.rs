//! `verify-api` through its real handler against moto and the SMS stub (DESIGN §5).

use crate::api_common::{Api, Edit, LogCapture, Reply, as_user, code_in, request, trips_row};
use integration_tests::Behavior;
use jiff::SignedDuration;
use serde_json::json;
use sms_shared::locale::Locale;
use sms_shared::opt_in;
use sms_shared::preferences::{ConsentAction, ConsentMethod};
use sms_shared::store::preferences::UPDATE_ATTEMPTS;
use sms_shared::store::{LogStatus, LogStore, PreferencesStore, VerificationStore};
use sms_shared::template::REDACTED_CODE;

const START: &str = "http-verification-start";
const CHECK: &str = "http-verification-check";
const OPT_IN: &str = "http-opt-in-post";
const PREFS: &str = "http-preferences-get";
const PATCH: &str = "http-preferences-patch";
const NUMBER: &str = "+14155550123";

async fn start(api: &Api, user: &str, number: &str) -> Reply {
    api.call(as_user(START, user, Some(json!({"phone_number": number}))))
        .await
}

async fn check(api: &Api, user: &str, code: &str) -> Reply {
    api.call(as_user(CHECK, user, Some(json!({"code": code}))))
        .await
}

/// The code of the last SMS sent to `number`.
fn last_code(api: &Api, number: &str) -> String {
    let sent = api.stub.sent_to(number);
    code_in(&sent.last().expect("a code was sent").body)
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn codes(api: &Api) -> VerificationStore {
    VerificationStore::new(
        api.env.dynamodb.clone(),
        api.env.tables.verification.clone(),
    )
}

#[tokio::test]
async fn a_pending_grant_binds_only_within_30_days_and_a_new_number_has_no_consent() {
    let api = Api::new().await;
    let modal = json!({"action": "opt_in"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-p", Some(modal))).await.status,
        200
    );
    // 31 days later the pending grant has lapsed: verifying binds nothing.
    api.clock.advance(SignedDuration::from_hours(31 * 24));
    assert_eq!(start(&api, "u-p", NUMBER).await.status, 202);
    assert_eq!(
        check(&api, "u-p", &last_code(&api, NUMBER)).await.status,
        200
    );
    let prefs = api.call(as_user(PREFS, "u-p", None)).await.body;
    assert_eq!(prefs["phone_verified"], true);
    assert_eq!(prefs["has_consent"], false, "{prefs}");
    assert!(!api.prefs("u-p").await.unwrap().consent.covers(NUMBER));

    // A fresh grant on the settings page now covers the verified number at once.
    let on = json!({"allow_sms_invitations": true});
    let reply = api.call(as_user(PATCH, "u-p", Some(on))).await;
    assert_eq!(reply.body["has_consent"], true, "{:?}", reply.body);
    assert!(api.prefs("u-p").await.unwrap().consent.covers(NUMBER));

    // Verifying another number moves the phone but not the consent.
    const OTHER: &str = "+14155550188";
    api.clock.advance(SignedDuration::from_mins(2));
    assert_eq!(start(&api, "u-p", OTHER).await.status, 202);
    assert_eq!(
        check(&api, "u-p", &last_code(&api, OTHER)).await.status,
        200
    );
    let prefs = api.prefs("u-p").await.unwrap();
    assert_eq!(prefs.phone_number.as_deref(), Some(OTHER));
    assert!(prefs.phone_verified);
    assert!(!prefs.consent.covers(OTHER), "consent never carries over");
    assert!(!prefs.has_consent());
}

#[tokio::test]
async fn opt_in_then_verify_then_preferences_show_verified_and_consent() {
    let api = Api::new().await;
    let opt_in =
        json!({"action": "opt_in", "phone_number": NUMBER, "time_zone": "America/Los_Angeles"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-1", Some(opt_in))).await.status,
        200
    );

    let reply = start(&api, "u-1", "(415) 555-0123").await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"expires_in_seconds": 600, "resend_after_seconds": 30, "phone_number": "+1415***0123"})
    );

    let sent = api.stub.sent_to(NUMBER);
    assert_eq!(sent.len(), 1);
    let sms = &sent[0];
    assert_eq!(sms.message_type.as_deref(), Some("TRANSACTIONAL"));
    assert_eq!(sms.message_feedback_enabled, Some(true));
    assert_eq!(sms.origination_identity.as_deref(), Some("+18005550100"));
    let code = code_in(&sms.body);

    // Stored: the HMAC, never the code; logged: the body with the code redacted.
    let record = codes(&api).get_code("u-1").await.unwrap().unwrap();
    assert_eq!(record.phone_number, NUMBER);
    assert_eq!(record.attempts, 0);
    assert!(!record.code_hmac.contains(&code));
    let log_id = sms
        .context
        .get("logId")
        .expect("log id in the context")
        .clone();
    assert_eq!(log_id, record.log_id);
    let log = LogStore::new(api.env.dynamodb.clone(), api.env.tables.log.clone())
        .get(&log_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.status, LogStatus::Sent);
    assert_eq!(log.user_id.as_deref(), Some("u-1"));
    let body = log.body.unwrap();
    assert!(!body.contains(&code), "{body}");
    assert!(body.contains(REDACTED_CODE), "{body}");
    // The message id the check's feedback reports (read from the log record).
    assert_eq!(
        log.provider_message_id.as_deref(),
        Some(sms.message_id.as_str())
    );

    api.clock.advance(SignedDuration::from_secs(40));
    let reply = check(&api, "u-1", &code).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"phone_verified": true, "phone_number": NUMBER})
    );

    let prefs = api.call(as_user(PREFS, "u-1", None)).await.body;
    assert_eq!(prefs["phone_verified"], true);
    assert_eq!(prefs["phone_number"], NUMBER);
    assert_eq!(prefs["has_consent"], true);
    assert_eq!(prefs["allow_sms_invitations"], true);
    let history = api.history("u-1").await;
    let kinds: Vec<_> = history.iter().map(|e| (e.action, e.method)).collect();
    assert_eq!(
        kinds,
        [
            (ConsentAction::Grant, ConsentMethod::OptInModal),
            (
                ConsentAction::PhoneVerified,
                ConsentMethod::PhoneVerification
            ),
            // The modal's pending grant binds to the number just verified (§4).
            (ConsentAction::Bind, ConsentMethod::PhoneVerification),
        ]
    );
    assert_eq!(history[2].phone_number.as_deref(), Some(NUMBER));
    assert!(api.prefs("u-1").await.unwrap().consent.covers(NUMBER));
    assert_eq!(history[1].phone_number.as_deref(), Some(NUMBER));
    assert_eq!(history[1].ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(history[1].at, api.now());
    // The code's message is reported as received, once.
    assert_eq!(
        api.stub.feedback(),
        [(sms.message_id.clone(), "RECEIVED".to_owned())]
    );
    // Used once.
    check(&api, "u-1", &code)
        .await
        .assert_error(410, "code_used");
}

#[tokio::test]
async fn five_wrong_codes_end_the_code_and_the_right_one_then_fails() {
    let api = Api::new().await;
    assert_eq!(start(&api, "u-2", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    for remaining in (0..5).rev() {
        let reply = check(&api, "u-2", &wrong(&code)).await;
        reply.assert_error(422, "incorrect_code");
        assert_eq!(reply.body["attempts_remaining"], remaining);
    }
    check(&api, "u-2", &code)
        .await
        .assert_error(410, "too_many_attempts");
    assert_eq!(api.prefs("u-2").await.map(|p| p.phone_verified), None);
    assert!(api.stub.feedback().is_empty());
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let api = Api::new().await;
    assert_eq!(start(&api, "u-early", NUMBER).await.status, 202);
    let early = last_code(&api, NUMBER);
    assert_eq!(start(&api, "u-late", "+14155550124").await.status, 202);
    let late = last_code(&api, "+14155550124");

    api.clock.advance(SignedDuration::from_secs(599));
    assert_eq!(check(&api, "u-early", &early).await.status, 200);
    api.clock.advance(SignedDuration::from_secs(1));
    check(&api, "u-late", &late)
        .await
        .assert_error(410, "code_expired");
    assert!(api.prefs("u-late").await.is_none());
}

#[tokio::test]
async fn resend_inside_30_seconds_is_429_with_retry_after() {
    let api = Api::new().await;
    assert_eq!(start(&api, "u-3", NUMBER).await.status, 202);
    let first = last_code(&api, NUMBER);
    api.clock.advance(SignedDuration::from_secs(10));
    let reply = start(&api, "u-3", NUMBER).await;
    reply.assert_error(429, "resend_too_soon");
    assert_eq!(reply.retry_after.as_deref(), Some("20"));
    assert_eq!(api.stub.sent().len(), 1);

    api.clock.advance(SignedDuration::from_secs(20));
    assert_eq!(start(&api, "u-3", NUMBER).await.status, 202);
    assert_eq!(api.stub.sent().len(), 2);
    // The new code replaces the old one.
    let second = last_code(&api, NUMBER);
    if first != second {
        check(&api, "u-3", &first)
            .await
            .assert_error(422, "incorrect_code");
    }
    assert_eq!(check(&api, "u-3", &second).await.status, 200);
}

#[tokio::test]
async fn twenty_concurrent_checks_of_the_right_code_verify_once() {
    let api = Api::new().await;
    assert_eq!(start(&api, "u-4", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    let replies = futures_util::future::join_all((0..20).map(|_| check(&api, "u-4", &code))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != 200) {
        r.assert_error(410, "code_used");
    }
    let history = api.history("u-4").await;
    assert_eq!(history.len(), 1, "one verification event");
    assert_eq!(api.stub.feedback().len(), 1);
}

#[tokio::test]
async fn five_codes_per_user_per_hour() {
    let api = Api::new().await;
    for i in 0..5 {
        let reply = start(&api, "u-5", NUMBER).await;
        assert_eq!(reply.status, 202, "code {i}: {:?}", reply.body);
        api.clock.advance(SignedDuration::from_secs(30));
    }
    let reply = start(&api, "u-5", NUMBER).await;
    reply.assert_error(429, "rate_limited");
    // 12:02:30 now; the window ends at 13:00.
    assert_eq!(reply.retry_after.as_deref(), Some("3450"));
    assert_eq!(api.stub.sent().len(), 5);
    api.clock.advance(SignedDuration::from_secs(3450));
    assert_eq!(start(&api, "u-5", NUMBER).await.status, 202);
}

#[tokio::test]
async fn twenty_codes_per_ip_and_ten_per_prefix_per_hour() {
    let api = Api::new().await;
    // Different users and number ranges from one IP: the 21st is refused.
    for i in 0..20 {
        let number = format!("+1415{}0123", 200 + i);
        let reply = start(&api, &format!("ip-user-{i}"), &number).await;
        assert_eq!(reply.status, 202, "{i}: {:?}", reply.body);
    }
    let reply = start(&api, "ip-user-20", "+14152990123").await;
    reply.assert_error(429, "rate_limited");
    assert!(reply.retry_after.is_some());

    // One number range from many IPs: the 11th is refused.
    for i in 0..10 {
        let reply = api
            .call(request(
                START,
                Edit {
                    user: Some(Some(&format!("prefix-user-{i}"))),
                    body: Some(
                        json!({"phone_number": format!("+1628555{:04}", 100 + i)}).to_string(),
                    ),
                    source_ip: Some(&format!("198.51.100.{i}")),
                    ..Edit::default()
                },
            ))
            .await;
        assert_eq!(reply.status, 202, "{i}: {:?}", reply.body);
    }
    let reply = api
        .call(request(
            START,
            Edit {
                user: Some(Some("prefix-user-10")),
                body: Some(json!({"phone_number": "+16285550999"}).to_string()),
                source_ip: Some("198.51.100.99"),
                ..Edit::default()
            },
        ))
        .await;
    reply.assert_error(429, "rate_limited");
}

#[tokio::test]
async fn a_number_another_user_verified_gets_the_same_answers() {
    let api = Api::new().await;
    assert_eq!(start(&api, "owner", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    assert_eq!(check(&api, "owner", &code).await.status, 200);

    api.clock.advance(SignedDuration::from_mins(1));
    let reply = start(&api, "other", NUMBER).await;
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.body,
        json!({"expires_in_seconds": 600, "resend_after_seconds": 30, "phone_number": "+1415***0123"})
    );
    let code = last_code(&api, NUMBER);
    let reply = check(&api, "other", &code).await;
    assert_eq!(
        reply.body,
        json!({"phone_verified": true, "phone_number": NUMBER})
    );
    // The owner is untouched.
    assert!(api.prefs("owner").await.unwrap().phone_verified);
}

#[tokio::test]
async fn a_code_belongs_to_the_user_who_asked() {
    let api = Api::new().await;
    assert_eq!(start(&api, "alice", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    check(&api, "mallory", &code)
        .await
        .assert_error(404, "no_pending_verification");
    assert!(api.prefs("mallory").await.is_none());
    assert_eq!(check(&api, "alice", &code).await.status, 200);
}

#[tokio::test]
async fn bad_inputs_are_refused_and_change_nothing() {
    let api = Api::new().await;
    assert_eq!(start(&api, "u-6", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    let record_before = codes(&api).get_code("u-6").await.unwrap().unwrap();
    api.clock.advance(SignedDuration::from_secs(60));

    let big = format!(r#"{{"phone_number": "{}"}}"#, "1".repeat(16 * 1024));
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (START, "{".into(), None, 400, "invalid_json"),
        (START, "\"+14155550123\"".into(), None, 400, "invalid_json"),
        (START, "{}".into(), None, 400, "missing_field"),
        (
            START,
            r#"{"phone_number": 14155550123}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            START,
            r#"{"phone_number": null}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            START,
            r#"{"phone_number": "+14155550123", "userId": "x"}"#.into(),
            None,
            400,
            "unknown_field",
        ),
        (
            START,
            r#"{"phone_number": "555"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            START,
            r#"{"phone_number": "not a number"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            START,
            r#"{"phone_number": "+44 20 7946 0958"}"#.into(),
            None,
            400,
            "country_not_supported",
        ),
        (START, big, None, 413, "payload_too_large"),
        (
            START,
            "phoneNumber=%2B14155550123".into(),
            Some("application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (
            CHECK,
            r#"{"code": "12345"}"#.into(),
            None,
            400,
            "invalid_code",
        ),
        (
            CHECK,
            r#"{"code": "1234567"}"#.into(),
            None,
            400,
            "invalid_code",
        ),
        (
            CHECK,
            r#"{"code": "12345a"}"#.into(),
            None,
            400,
            "invalid_code",
        ),
        (CHECK, r#"{"code": ""}"#.into(), None, 400, "invalid_code"),
        (
            CHECK,
            // A number, not a string (also: a JSON number would lose leading zeros).
            r#"{"code": 123456}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            CHECK,
            r#"{"code": ["123456"]}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            CHECK,
            r#"{"otp": "123456"}"#.into(),
            None,
            400,
            "unknown_field",
        ),
        (CHECK, "".into(), None, 400, "invalid_json"),
    ];
    for (name, body, content_type, status, expected) in cases {
        let reply = api
            .call(request(
                name,
                Edit {
                    user: Some(Some("u-6")),
                    body: Some(body.clone()),
                    content_type: content_type.map(Some),
                    ..Edit::default()
                },
            ))
            .await;
        assert_eq!(reply.status, status, "{name} {body:.60}: {:?}", reply.body);
        reply.assert_error(status, expected);
        assert_eq!(
            codes(&api).get_code("u-6").await.unwrap().unwrap(),
            record_before,
            "{name} {body:.60} changed the code"
        );
    }
    assert_eq!(api.stub.sent().len(), 1, "no bad input sent anything");
    assert!(api.prefs("u-6").await.is_none());
    // The right code still works: no bad input cost an attempt.
    assert_eq!(check(&api, "u-6", &code).await.status, 200);
}

#[tokio::test]
async fn routes_methods_and_identity() {
    let api = Api::new().await;
    check(&api, "u-7", "123456")
        .await
        .assert_error(404, "no_pending_verification");
    let get = request(
        START,
        Edit {
            method: Some("GET"),
            ..Edit::default()
        },
    );
    api.call(get).await.assert_error(405, "method_not_allowed");
    let other = request(
        START,
        Edit {
            path: Some("/notifications/me/phone-verification/x/"),
            ..Edit::default()
        },
    );
    api.call(other).await.assert_error(404, "not_found");
    let anonymous = request(
        START,
        Edit {
            user: Some(None),
            headers: vec![("x-dev-user-id", "u-dev")],
            ..Edit::default()
        },
    );
    api.call(anonymous).await.assert_error(401, "unauthorized");
    assert!(api.stub.sent().is_empty());
    // The event files as shipped: start answers 202; check of a wrong code 422.
    assert_eq!(api.call(request(START, Edit::default())).await.status, 202);
    let code = last_code(&api, NUMBER);
    let reply = api.call(request(CHECK, Edit::default())).await;
    if code == "123456" {
        assert_eq!(reply.status, 200);
    } else {
        reply.assert_error(422, "incorrect_code");
    }
}

#[tokio::test]
async fn neither_the_code_nor_the_full_number_is_ever_logged() {
    let api = Api::new().await;
    let logs = LogCapture::start();
    let opt_in = json!({"action": "opt_in", "phone_number": NUMBER});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-8", Some(opt_in))).await.status,
        200
    );
    assert_eq!(start(&api, "u-8", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    start(&api, "u-8", NUMBER)
        .await
        .assert_error(429, "resend_too_soon");
    check(&api, "u-8", &wrong(&code))
        .await
        .assert_error(422, "incorrect_code");
    assert_eq!(check(&api, "u-8", &code).await.status, 200);
    // A send the provider refuses logs its error, still masked.
    api.clock.advance(SignedDuration::from_mins(1));
    api.stub
        .fail_for_destination("+14155550124", integration_tests::Behavior::OptedOut);
    start(&api, "u-9", "+14155550124")
        .await
        .assert_error(400, "phone_opted_out");

    let text = logs.text();
    assert!(
        text.contains("verification code sent"),
        "the capture works: {text}"
    );
    assert!(text.contains("+1415***0123"), "numbers appear masked");
    for line in text.lines() {
        assert!(!line.contains(&code), "code in a log line: {line}");
        assert!(
            !line.contains("4155550123"),
            "full number in a log line: {line}"
        );
        assert!(
            !line.contains("4155550124"),
            "full number in a log line: {line}"
        );
    }
}

#[tokio::test]
async fn a_right_code_whose_save_does_not_happen_stays_valid() {
    let mut api = Api::new().await;
    let modal = json!({"action": "opt_in"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-s", Some(modal))).await.status,
        200
    );
    assert_eq!(start(&api, "u-s", NUMBER).await.status, 202);
    let code = last_code(&api, NUMBER);
    let working = api.verify.ports.consent.preferences.clone();
    let table = api.env.tables.preferences.clone();

    // Other writers win every save of the user's preferences: 409, and the code is not used.
    let conflicts = api.lose_verify_saves(UPDATE_ATTEMPTS);
    check(&api, "u-s", &code)
        .await
        .assert_error(409, "conflict");
    assert_eq!(conflicts.caused(), UPDATE_ATTEMPTS);
    // The save fails outright (DynamoDB does not answer): 500, the code is not used.
    let unreachable = aws_sdk_dynamodb::config::Builder::from(&api.env.sdk)
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    api.verify.ports.consent.preferences =
        PreferencesStore::new(aws_sdk_dynamodb::Client::from_conf(unreachable), table);
    check(&api, "u-s", &code)
        .await
        .assert_error(500, "internal_error");
    let stored = codes(&api).get_code("u-s").await.unwrap().unwrap();
    assert!(!stored.consumed, "the code survives both failed saves");
    assert_eq!(stored.attempts, 0, "a right code is not a wrong attempt");
    assert!(!api.prefs("u-s").await.unwrap().phone_verified);

    // The user tries the same code again: verified, and the code is used up now.
    api.verify.ports.consent.preferences = working;
    assert_eq!(check(&api, "u-s", &code).await.status, 200);
    assert!(api.prefs("u-s").await.unwrap().phone_verified);
    assert!(codes(&api).get_code("u-s").await.unwrap().unwrap().consumed);
    check(&api, "u-s", &code)
        .await
        .assert_error(410, "code_used");
}

#[tokio::test]
async fn a_code_whose_answer_was_lost_is_accepted_and_its_attempt_stays_on_record() {
    let api = Api::new().await;
    // The provider takes the code but answers too late: it may well arrive, so the user is
    // told it is on its way rather than asked to request another (which would replace it).
    api.stub.push(Behavior::Delay(
        integration_tests::sms_stub::CLIENT_OPERATION_TIMEOUT + std::time::Duration::from_secs(1),
    ));
    let reply = start(&api, "u-d", NUMBER).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let sent = api.stub.sent_to(NUMBER);
    assert_eq!(sent.len(), 1);
    let log_id = &sent[0].context["logId"];
    let log = LogStore::new(api.env.dynamodb.clone(), api.env.tables.log.clone())
        .get(log_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.status, LogStatus::Sending, "in doubt until its receipt");
    assert_eq!(log.send_attempts, 1);
    assert!(!log.body.unwrap().contains(&code_in(&sent[0].body)));
    // The code that went out works (no message feedback: its id was never answered).
    assert_eq!(
        check(&api, "u-d", &code_in(&sent[0].body)).await.status,
        200
    );
    assert!(api.stub.feedback().is_empty());
    assert!(api.verify_calls.denied().is_empty());
}

// ---- opt-in confirmations (DESIGN §8) and the code's language ----

/// The opt-in confirmations sent to `number`, oldest first.
fn confirmations(api: &Api, number: &str) -> Vec<String> {
    api.stub
        .sent_to(number)
        .into_iter()
        .filter(|s| {
            s.context
                .get("logId")
                .is_some_and(|id| id.starts_with("optin#"))
        })
        .map(|s| s.body)
        .collect()
}

/// Verifies `number` for `user`: a code, then the check.
async fn verify(api: &Api, user: &str, number: &str) {
    let reply = start(api, user, number).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let reply = check(api, user, &last_code(api, number)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// The modal's opt-in has no verified number to confirm to; the verification that binds its
/// grant sends the confirmation, once: opting in again, turning the switch on, verifying the
/// number again send nothing more. It carries what CTIA asks for.
#[tokio::test]
async fn a_pending_grant_is_confirmed_once_when_the_verification_binds_it() {
    let api = Api::new().await;
    let modal = json!({"action": "opt_in"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-c", Some(modal.clone())))
            .await
            .status,
        200
    );
    assert!(api.stub.sent().is_empty(), "nothing to confirm to yet");

    verify(&api, "u-c", NUMBER).await;
    let sent = confirmations(&api, NUMBER);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let body = &sent[0];
    assert_eq!(
        *body,
        sms_shared::template::opt_in_confirmation(&api.config.branding, Locale::En)
    );
    for part in [
        "WordBattle",
        "Msg frequency varies",
        "Msg & data rates may apply",
        "HELP",
        "STOP",
    ] {
        assert!(body.contains(part), "{part:?} in {body:?}");
    }
    // One record per grant, named after it, settled `sent`.
    let grant = api.history("u-c").await[0].clone();
    let id = opt_in::confirmation_log_id("u-c", grant.at);
    let log = LogStore::new(api.env.dynamodb.clone(), api.env.tables.log.clone());
    let record = log
        .get(&id)
        .await
        .unwrap()
        .expect("the confirmation's record");
    assert_eq!(record.status, LogStatus::Sent);
    assert_eq!(record.record_type.as_deref(), Some("opt_in_confirmation"));
    assert_eq!(record.user_id.as_deref(), Some("u-c"));

    // Nothing new to confirm.
    api.clock.advance(SignedDuration::from_mins(1));
    api.call(as_user(OPT_IN, "u-c", Some(modal))).await;
    let on = json!({"allow_sms_invitations": true});
    api.call(as_user(PATCH, "u-c", Some(on))).await;
    verify(&api, "u-c", NUMBER).await;
    assert_eq!(confirmations(&api, NUMBER).len(), 1);
    assert!(api.opt_in_calls.denied().is_empty() && api.verify_calls.denied().is_empty());
}

/// On a verified number the opt-in itself confirms, at once, in the user's language; every
/// new grant (after a revocation) gets its own confirmation, and only one.
#[tokio::test]
async fn an_opt_in_on_a_verified_number_is_confirmed_in_the_users_language() {
    let api = Api::new().await;
    verify(&api, "u-v", NUMBER).await;
    assert!(confirmations(&api, NUMBER).is_empty(), "no consent yet");

    let on = json!({"allow_sms_invitations": true, "locale": "es"});
    let reply = api.call(as_user(PATCH, "u-v", Some(on))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let spanish = sms_shared::template::opt_in_confirmation(&api.config.branding, Locale::Es);
    assert_eq!(confirmations(&api, NUMBER), std::slice::from_ref(&spanish));
    assert!(spanish.contains("Pueden aplicarse tarifas de mensajes y datos"));

    // Off (a revocation), then on again: a new grant, a new confirmation.
    api.clock.advance(SignedDuration::from_mins(1));
    api.call(as_user(
        PATCH,
        "u-v",
        Some(json!({"allow_sms_invitations": false})),
    ))
    .await;
    assert_eq!(confirmations(&api, NUMBER).len(), 1);
    api.clock.advance(SignedDuration::from_mins(1));
    let modal = json!({"action": "opt_in"});
    api.call(as_user(OPT_IN, "u-v", Some(modal))).await;
    assert_eq!(confirmations(&api, NUMBER), [spanish.clone(), spanish]);
}

/// An opt-in and the verification that binds a pending grant, at the same moment (a user
/// with two tabs): whichever order the preferences' version check gives them, one
/// confirmation.
#[tokio::test]
async fn an_opt_in_racing_the_verification_sends_one_confirmation() {
    for round in 0..4 {
        let api = Api::new().await;
        let user = format!("u-race-{round}");
        let modal = json!({"action": "opt_in"});
        api.call(as_user(OPT_IN, &user, Some(modal.clone()))).await;
        let reply = start(&api, &user, NUMBER).await;
        assert_eq!(reply.status, 202);
        let code = last_code(&api, NUMBER);
        let on = json!({"allow_sms_invitations": true});
        let (checked, opted, patched) = tokio::join!(
            check(&api, &user, &code),
            api.call(as_user(OPT_IN, &user, Some(modal))),
            api.call(as_user(PATCH, &user, Some(on))),
        );
        for reply in [&checked, &opted, &patched] {
            assert!(
                reply.status == 200 || reply.status == 409,
                "{:?}",
                reply.body
            );
        }
        assert_eq!(checked.status, 200, "{:?}", checked.body);
        assert!(api.prefs(&user).await.unwrap().has_consent());
        assert_eq!(confirmations(&api, NUMBER).len(), 1, "round {round}");
    }
}

/// A code speaks the user's language; a user who never chose one gets the browser's.
#[tokio::test]
async fn the_code_speaks_the_users_language() {
    let api = Api::new().await;
    let patch = json!({"locale": "es"});
    api.call(as_user(PATCH, "u-es", Some(patch))).await;
    start(&api, "u-es", NUMBER).await;
    let body = api.stub.sent_to(NUMBER).pop().unwrap().body;
    assert!(
        body.starts_with("WordBattle: tu codigo de verificacion es "),
        "{body}"
    );
    assert!(
        body.ends_with(". Vence en 10 minutos. No lo compartas con nadie."),
        "{body}"
    );

    let other = "+14155550124";
    let browser = request(
        START,
        Edit {
            user: Some(Some("u-new")),
            body: Some(json!({"phone_number": other}).to_string()),
            headers: vec![("accept-language", "es-MX,es;q=0.9")],
            ..Edit::default()
        },
    );
    assert_eq!(api.call(browser).await.status, 202);
    let body = api.stub.sent_to(other).pop().unwrap().body;
    assert!(body.contains("tu codigo de verificacion es"), "{body}");
    let count = sms_shared::segments::count(&body);
    assert_eq!(count.encoding, sms_shared::segments::Encoding::Gsm7);
    assert_eq!(count.segments, 1);
}

// ---- DynamoDB round trips (issue #18) ----

/// Every answer of `verify-api` in at most three sequential DynamoDB round trips, timed
/// through the real SDK (requests in flight together count once), including the longest
/// paths: a start that sends a code, and a right check that binds a pending grant and sends
/// its confirmation. Also prints the warm latency of a start against moto (not asserted).
#[tokio::test]
async fn every_verification_answer_takes_at_most_three_round_trips() {
    let mut api = Api::new().await;
    let modal = json!({"action": "opt_in"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-rt", Some(modal))).await.status,
        200
    );
    let trips = api.time_round_trips();
    let mut rows = Vec::new();

    let reply = start(&api, "u-rt", NUMBER).await;
    rows.push(trips_row("start: code sent", reply.status, &trips.take()));
    let reply = start(&api, "u-rt", NUMBER).await;
    reply.assert_error(429, "resend_too_soon");
    rows.push(trips_row(
        "start: resend too soon",
        reply.status,
        &trips.take(),
    ));
    let code = last_code(&api, NUMBER);
    let reply = check(&api, "u-rt", &wrong(&code)).await;
    reply.assert_error(422, "incorrect_code");
    rows.push(trips_row("check: wrong code", reply.status, &trips.take()));
    let reply = check(&api, "u-rt", &code).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(confirmations(&api, NUMBER).len(), 1, "the bound grant's");
    rows.push(trips_row(
        "check: verified, pending grant bound and confirmed",
        reply.status,
        &trips.take(),
    ));
    let reply = check(&api, "u-rt", &code).await;
    reply.assert_error(410, "code_used");
    rows.push(trips_row("check: code used", reply.status, &trips.take()));
    for i in 0..5 {
        api.clock.advance(SignedDuration::from_secs(30));
        let number = format!("+1312555{:04}", 100 + i);
        assert!(start(&api, "u-rt", &number).await.status < 500);
    }
    trips.take();
    api.clock.advance(SignedDuration::from_secs(30));
    let reply = start(&api, "u-rt", "+13125550999").await;
    reply.assert_error(429, "rate_limited");
    rows.push(trips_row(
        "start: a window full",
        reply.status,
        &trips.take(),
    ));
    // The provider refuses the code: its outcome and the budget given back in one round trip.
    api.stub.push(Behavior::OptedOut);
    let spend = sms_shared::store::log::counter_ids::month_code_spend(api.now());
    let counters = sms_shared::store::Counters::new(
        api.env.dynamodb.clone(),
        api.env.tables.log.clone(),
        sms_shared::store::schema::LOG_KEY,
    );
    let spent = || async {
        counters
            .get_many(std::slice::from_ref(&spend), api.now())
            .await
            .unwrap()[&spend]
    };
    let before = spent().await;
    let reply = start(&api, "u-refused", "+16175550123").await;
    reply.assert_error(400, "phone_opted_out");
    rows.push(trips_row(
        "start: refused by the provider, budget given back",
        reply.status,
        &trips.take(),
    ));
    assert_eq!(
        spent().await,
        before,
        "the refused code's reservation is given back"
    );
    println!("| request (status) | requests | sequential round trips | calls |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }

    // Warm latency of a start that sends a code, against moto and the SMS stub.
    let area_codes = [
        201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219,
    ];
    let mut millis = Vec::new();
    for (i, area) in area_codes.iter().enumerate() {
        let request = crate::api_common::verification_start(
            &format!("u-lat-{i}"),
            &format!("+1{area}5550123"),
            &format!("198.51.100.{i}"),
        );
        let begun = std::time::Instant::now();
        let reply = api.call(request).await;
        millis.push(begun.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(reply.status, 202, "{:?}", reply.body);
    }
    let first = millis[0];
    let mut warm = millis[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    println!(
        "verification start against moto: first {first:.1} ms, warm median {:.1} ms ({} runs)",
        warm[warm.len() / 2],
        warm.len()
    );
}
