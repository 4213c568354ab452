//! Every branch of the handler against the in-memory fake ([`crate::fakes`]): the requests are
//! the payload v2 events of `events/`, the user the authorizer's claim. The stores themselves
//! and the stories end to end are tested against moto (`tests/it/verify_api.rs`).

use crate::fakes::Fake;
use crate::{State, handler};
use jiff::{SignedDuration, Timestamp};
use lambda_http::Request;
use serde_json::{Value, json};
use sms_shared::Config;
use sms_shared::auth::Authenticator;
use sms_shared::clock::ManualClock;
use sms_shared::http::testing::{self, Reply};
use sms_shared::opt_in::memory::MemoryPreferences;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::secrets::SecretKey;
use sms_shared::sms::SmsError;
use sms_shared::store::log::counter_ids;
use sms_shared::verification::{WindowLimits, code_hmac};
use std::collections::HashMap;
use std::sync::Arc;

const NUMBER: &str = "+14155550123";
const KEY: &[u8] = b"an hmac key of thirty-two bytes!";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

struct Test {
    state: State<Fake>,
    clock: Arc<ManualClock>,
}

impl Test {
    fn new() -> Test {
        let config = Config::from_map(&HashMap::new()).unwrap();
        let clock = Arc::new(ManualClock::new(at("2026-11-25T12:00:00Z")));
        let prefs = MemoryPreferences::new(config.branding.clone(), &config.allowed_countries);
        Test {
            state: State {
                auth: Authenticator::apigw_jwt("sub", Vec::new()),
                code_key: SecretKey::new(KEY.to_vec()).unwrap(),
                ports: Fake::new(prefs),
                clock: clock.clone(),
                windows: WindowLimits::default(),
                config,
            },
            clock,
        }
    }

    fn fake(&self) -> &Fake {
        &self.state.ports
    }

    async fn call(&self, request: Request) -> Reply {
        Reply::of(&handler(&self.state, request).await.unwrap())
    }

    async fn start(&self, user: &str, number: &str) -> Reply {
        self.call(event(
            START,
            Some(user),
            json!({"phone_number": number}),
            None,
        ))
        .await
    }

    async fn start_from(&self, user: &str, number: &str, ip: &str) -> Reply {
        self.call(event(
            START,
            Some(user),
            json!({"phone_number": number}),
            Some(ip),
        ))
        .await
    }

    async fn check(&self, user: &str, code: &str) -> Reply {
        self.call(event(CHECK, Some(user), json!({"code": code}), None))
            .await
    }

    /// The code of the last SMS.
    fn last_code(&self) -> String {
        let (_, body) = self.fake().sms().pop().expect("a code was sent");
        let rest = body
            .split("code is ")
            .nth(1)
            .or_else(|| body.split("es ").nth(1));
        rest.unwrap().chars().take(6).collect()
    }

    fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }
}

const START: &str = "http-verification-start";
const CHECK: &str = "http-verification-check";

/// The event `events/<name>.json` as `user` (the authorizer's `sub`; `None`: nobody), with
/// `body`, from `ip`.
fn event(name: &str, user: Option<&str>, body: Value, ip: Option<&str>) -> Request {
    let event = testing::event(name, user, |e| {
        e["body"] = body.to_string().into();
        if let Some(ip) = ip {
            e["requestContext"]["http"]["sourceIp"] = ip.into();
        }
    });
    lambda_http::request::from_str(&event).unwrap()
}

/// A start request of user `u-1`, changed by `edit`.
fn with(edit: impl FnOnce(&mut Value)) -> Request {
    lambda_http::request::from_str(&testing::event(START, Some("u-1"), edit)).unwrap()
}

// ---- routes ----

#[tokio::test]
async fn unknown_paths_are_404_other_methods_405_and_no_identity_401() {
    let t = Test::new();
    let other_path = with(|e| {
        e["rawPath"] = "/api/v1/notifications/me/phone-verification/other".into();
    });
    t.call(other_path).await.assert_error(404, "not_found");
    let get = with(|e| {
        e["requestContext"]["http"]["method"] = "GET".into();
    });
    let reply = t.call(get).await;
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("POST"));
    t.call(event(START, None, json!({"phone_number": NUMBER}), None))
        .await
        .assert_error(401, "unauthorized");
    assert!(t.fake().sms().is_empty());
}

// ---- start ----

#[tokio::test]
async fn a_start_sends_one_code_and_counts_every_window_and_the_budget() {
    let t = Test::new();
    let reply = t.start("u-1", "(415) 555-0123").await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"expires_in_seconds": 600, "resend_after_seconds": 30, "phone_number": "+1415***0123"})
    );
    let sms = t.fake().sms();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].0, NUMBER);
    let code = t.fake().code("u-1").unwrap();
    assert_eq!(code.phone_number, NUMBER);
    assert!(!code.code_hmac.contains(&t.last_code()));
    assert_eq!(
        t.fake().counters("rate#").len(),
        5,
        "user, number, ip, prefix, country"
    );
    assert!(t.fake().counters("rate#").iter().all(|(_, v)| *v == 1));
    let spend = counter_ids::month_code_spend(t.clock.as_ref().now());
    assert_eq!(t.fake().counter(&spend), 10_000, "one part's estimate");
}

use sms_shared::clock::Clock;

#[tokio::test]
async fn bad_numbers_are_400_with_details_and_count_nothing() {
    let t = Test::new();
    for (number, code) in [
        ("not a number", "invalid_phone_number"),
        ("+447911123456", "country_not_supported"),
        ("+19005550123", "invalid_phone_number"),
    ] {
        let reply = t.start("u-1", number).await;
        reply.assert_error(400, code);
        assert!(
            reply.body["details"]["phone_number"].is_array(),
            "{}",
            reply.body
        );
    }
    let unknown = t
        .call(event(
            START,
            Some("u-1"),
            json!({"phoneNumber": NUMBER}),
            None,
        ))
        .await;
    unknown.assert_error(400, "unknown_field");
    assert!(t.fake().counters("rate#").is_empty());
    assert!(t.fake().sms().is_empty());
}

#[tokio::test]
async fn a_resend_inside_30_seconds_is_429_with_retry_after() {
    let t = Test::new();
    assert_eq!(t.start("u-1", NUMBER).await.status, 202);
    t.advance(SignedDuration::from_secs(10));
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(429, "resend_too_soon");
    assert_eq!(reply.header("retry-after"), Some("20"));
    assert_eq!(t.fake().sms().len(), 1);
    t.advance(SignedDuration::from_secs(20));
    assert_eq!(t.start("u-1", NUMBER).await.status, 202);
}

#[tokio::test]
async fn the_sixth_code_of_a_user_in_an_hour_is_429_until_the_hour_ends() {
    let t = Test::new();
    for i in 0..5 {
        let number = format!("+1415555{:04}", 100 + i);
        assert_eq!(t.start("u-1", &number).await.status, 202);
        t.advance(SignedDuration::from_secs(30));
    }
    let reply = t.start("u-1", "+14155550999").await;
    reply.assert_error(429, "rate_limited");
    // 12:02:30 → 13:00.
    assert_eq!(reply.header("retry-after"), Some("3450"));
    let number_window = t.fake().counters("rate#number#+14155550999");
    assert!(
        number_window.is_empty(),
        "a refused request counts in no window"
    );
}

#[tokio::test]
async fn the_ip_window_refuses_the_21st_code_an_hour() {
    let t = Test::new();
    let area_codes = [
        201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224,
        225, 228,
    ];
    for (i, area) in area_codes.iter().enumerate() {
        let reply = t
            .start_from(
                &format!("u-{i}"),
                &format!("+1{area}5550123"),
                "198.51.100.7",
            )
            .await;
        assert_eq!(reply.status, 202, "{i}: {}", reply.body);
    }
    let reply = t.start_from("u-x", "+13125550123", "198.51.100.7").await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(reply.header("retry-after"), Some("3600"));
}

#[tokio::test]
async fn a_spent_budget_is_503_until_the_month_ends() {
    let t = Test::new();
    let now = t.clock.now();
    let budget = t.state.config.limits.verification_monthly_budget_micros;
    t.fake()
        .set_counter(&counter_ids::month_code_spend(now), budget - 5_000);
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(503, "sms_unavailable");
    // 2026-11-25 12:00 → 2026-12-01 00:00.
    assert_eq!(
        reply.header("retry-after"),
        Some(&*(5 * 86_400 + 12 * 3600).to_string())
    );
    assert!(t.fake().sms().is_empty());
    assert!(t.fake().counters("rate#").is_empty());
}

#[tokio::test]
async fn the_hard_spend_cap_stops_codes_with_503() {
    let t = Test::new();
    let now = t.clock.now();
    let cap = t.state.config.limits.transactional_hard_cap_micros;
    t.fake().set_counter(&counter_ids::month_spend(now), cap);
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(503, "sms_unavailable");
    assert_eq!(reply.header("retry-after"), Some("3600"));
    assert!(t.fake().sms().is_empty());
}

#[tokio::test]
async fn busy_counters_are_409_and_a_store_fault_500_with_the_request_id() {
    let t = Test::new();
    t.fake().contend();
    t.start("u-1", NUMBER).await.assert_error(409, "conflict");
    assert!(t.fake().sms().is_empty());

    let t = Test::new();
    t.fake().break_tables();
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(500, "internal_error");
    assert_eq!(reply.body["request_id"], "JKJaXmPLvHcESHA=");
    assert!(!reply.body.to_string().contains("broken"), "no internals");
}

#[tokio::test]
async fn an_opted_out_number_is_400_and_its_budget_is_given_back() {
    let t = Test::new();
    t.fake().answer(SmsError::OptedOut);
    t.start("u-1", NUMBER)
        .await
        .assert_error(400, "phone_opted_out");
    let spend = counter_ids::month_code_spend(t.clock.now());
    assert_eq!(t.fake().counter(&spend), 0);

    t.advance(SignedDuration::from_secs(30));
    t.fake().answer(SmsError::Permanent {
        code: "ValidationException".into(),
        message: "no".into(),
    });
    t.start("u-1", NUMBER)
        .await
        .assert_error(500, "internal_error");
    assert_eq!(t.fake().counter(&spend), 0);
}

#[tokio::test]
async fn a_code_whose_answer_was_lost_is_accepted() {
    let t = Test::new();
    t.fake().answer(SmsError::InDoubt {
        code: "timeout".into(),
        message: "no answer".into(),
    });
    assert_eq!(t.start("u-1", NUMBER).await.status, 202);
    let spend = counter_ids::month_code_spend(t.clock.now());
    assert_eq!(t.fake().counter(&spend), 10_000, "maybe sent: kept");
    // It works, without feedback (no message id).
    let code = t.last_code();
    assert_eq!(t.check("u-1", &code).await.status, 200);
    assert!(t.fake().feedback().is_empty());
}

#[tokio::test]
async fn the_code_speaks_the_users_language_else_the_browsers() {
    let t = Test::new();
    let mut p = Preferences::new("u-es");
    p.locale = Some("es".into());
    t.fake().prefs.insert(p);
    assert_eq!(t.start("u-es", NUMBER).await.status, 202);
    let (_, body) = t.fake().sms().pop().unwrap();
    assert!(body.contains("codigo"), "{body}");

    let browser = with(|e| {
        e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = "u-browser".into();
        e["headers"]["accept-language"] = "es-MX,es;q=0.9".into();
        e["body"] = json!({"phone_number": "+14155550124"}).to_string().into();
    });
    assert_eq!(t.call(browser).await.status, 202);
    let (_, body) = t.fake().sms().pop().unwrap();
    assert!(body.contains("codigo"), "{body}");
}

// ---- check ----

/// A pending code `code` for `user`, as a start stores it.
fn pending(t: &Test, user: &str, code: &str) {
    let now = t.clock.now();
    t.fake().set_code(sms_shared::store::CodeRecord {
        user_id: user.into(),
        code_id: "c1".into(),
        code_hmac: code_hmac(KEY, user, "c1", code),
        phone_number: NUMBER.into(),
        created_at_ms: now.as_millisecond(),
        expires_at_ms: (now + SignedDuration::from_mins(10)).as_millisecond(),
        resend_after_ms: (now + SignedDuration::from_secs(30)).as_millisecond(),
        attempts: 0,
        consumed: false,
        log_id: "verify-c1".into(),
    });
}

#[tokio::test]
async fn the_right_code_verifies_the_number_once_and_reports_it_received() {
    let t = Test::new();
    assert_eq!(t.start("u-1", NUMBER).await.status, 202);
    let code = t.last_code();
    let reply = t.check("u-1", &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"phone_verified": true, "phone_number": NUMBER})
    );
    let prefs = t.fake().prefs.get("u-1").unwrap();
    assert!(prefs.phone_verified);
    assert_eq!(prefs.phone_number.as_deref(), Some(NUMBER));
    let history = t.fake().prefs.history();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].action, ConsentAction::PhoneVerified);
    assert_eq!(t.fake().feedback(), ["m-1"]);
    assert!(
        t.fake().prefs.sent().is_empty(),
        "no grant, no confirmation"
    );
    t.check("u-1", &code).await.assert_error(410, "code_used");
}

#[tokio::test]
async fn wrong_codes_count_down_to_410() {
    let t = Test::new();
    pending(&t, "u-1", "123456");
    for remaining in (0..5).rev() {
        let reply = t.check("u-1", "654321").await;
        reply.assert_error(422, "incorrect_code");
        assert_eq!(reply.body["attempts_remaining"], remaining);
    }
    t.check("u-1", "123456")
        .await
        .assert_error(410, "too_many_attempts");
    assert!(!t.fake().prefs.get("u-1").is_some_and(|p| p.phone_verified));
}

#[tokio::test]
async fn a_wrong_guess_at_a_code_used_up_meanwhile_is_410() {
    let t = Test::new();
    pending(&t, "u-1", "123456");
    // Read with attempts left; other wrong guesses use it up before this one is counted.
    t.fake().after_read(|code| code.attempts = 5);
    t.check("u-1", "654321")
        .await
        .assert_error(410, "too_many_attempts");
}

#[tokio::test]
async fn an_expired_code_is_410_and_no_code_is_404() {
    let t = Test::new();
    t.check("u-1", "123456")
        .await
        .assert_error(404, "no_pending_verification");
    pending(&t, "u-1", "123456");
    t.advance(SignedDuration::from_mins(10));
    t.check("u-1", "123456")
        .await
        .assert_error(410, "code_expired");
    for bad in ["12345", "abcdef", "1234567"] {
        let reply = t.check("u-1", bad).await;
        reply.assert_error(400, "invalid_code");
        assert!(reply.body["details"]["code"].is_array());
    }
}

#[tokio::test]
async fn a_code_used_by_a_concurrent_check_is_410_and_saves_nothing() {
    let t = Test::new();
    pending(&t, "u-1", "123456");
    // Read unused; a concurrent right check uses it before this save (its guard fails).
    t.fake().after_read(|code| code.consumed = true);
    t.check("u-1", "123456")
        .await
        .assert_error(410, "code_used");
    assert!(t.fake().prefs.get("u-1").is_none(), "nothing saved");
}

#[tokio::test]
async fn a_contended_save_is_409_a_broken_one_500_and_the_code_stays_valid() {
    let t = Test::new();
    pending(&t, "u-1", "123456");
    t.fake().prefs.lose_saves(usize::MAX);
    t.check("u-1", "123456").await.assert_error(409, "conflict");
    assert!(!t.fake().code("u-1").unwrap().consumed);
    t.fake().prefs.lose_saves(0);
    t.fake().prefs.break_store(true);
    // The first read is the fake's code map, not the broken preferences: the save fails.
    let reply = t.check("u-1", "123456").await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(!t.fake().code("u-1").unwrap().consumed);
    assert_eq!(t.fake().code("u-1").unwrap().attempts, 0);
    t.fake().prefs.break_store(false);
    assert_eq!(t.check("u-1", "123456").await.status, 200);
}

fn modal_grant(user: &str, at: Timestamp) -> Preferences {
    let mut p = Preferences::new(user);
    p.allow_sms_invitations = true;
    let event = ConsentEvent::new(user, at, ConsentAction::Grant, ConsentMethod::OptInModal);
    event.apply_to(&mut p.consent);
    p
}

#[tokio::test]
async fn verifying_binds_a_pending_grant_and_sends_its_confirmation_once() {
    let t = Test::new();
    t.fake().prefs.insert(modal_grant("u-1", t.clock.now()));
    pending(&t, "u-1", "123456");
    assert_eq!(t.check("u-1", "123456").await.status, 200);
    let prefs = t.fake().prefs.get("u-1").unwrap();
    assert!(prefs.consent.covers(NUMBER), "bound");
    let actions: Vec<_> = t.fake().prefs.history().iter().map(|e| e.action).collect();
    assert_eq!(actions, [ConsentAction::PhoneVerified, ConsentAction::Bind]);
    let sent = t.fake().prefs.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].confirmation.to, NUMBER);
    assert!(sent[0].confirmation.body.contains("STOP"));

    // Verified again: nothing new to confirm.
    t.advance(SignedDuration::from_mins(1));
    pending(&t, "u-1", "222222");
    assert_eq!(t.check("u-1", "222222").await.status, 200);
    assert_eq!(t.fake().prefs.sent().len(), 1);
}

#[tokio::test]
async fn a_grant_older_than_30_days_is_not_bound() {
    let t = Test::new();
    t.fake().prefs.insert(modal_grant("u-1", t.clock.now()));
    t.advance(SignedDuration::from_hours(31 * 24));
    pending(&t, "u-1", "123456");
    assert_eq!(t.check("u-1", "123456").await.status, 200);
    assert!(!t.fake().prefs.get("u-1").unwrap().consent.covers(NUMBER));
    assert!(t.fake().prefs.sent().is_empty());
}

#[tokio::test]
async fn a_code_stored_by_a_concurrent_start_is_429_resend_too_soon() {
    let t = Test::new();
    // The first read finds no code in its cooldown; a concurrent start stores one before
    // this start's transaction, whose condition refuses it.
    pending(&t, "u-1", "123456");
    let now = t.clock.now();
    t.fake().after_read(move |code| {
        code.resend_after_ms = (now + SignedDuration::from_secs(30)).as_millisecond();
    });
    let mut expired = t.fake().code("u-1").unwrap();
    expired.resend_after_ms = now.as_millisecond();
    t.fake().set_code(expired);
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(429, "resend_too_soon");
    assert_eq!(reply.header("retry-after"), Some("30"));
    assert!(t.fake().counters("rate#").is_empty(), "nothing counted");
    assert!(t.fake().sms().is_empty());
}

#[tokio::test]
async fn the_number_window_refuses_until_midnight_and_the_country_window_for_the_hour() {
    let t = Test::new();
    let day = "rate#number#+14155550123#2026-11-25";
    t.fake().set_counter(day, 10);
    let reply = t.start("u-1", NUMBER).await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(
        reply.header("retry-after"),
        Some("43200"),
        "12:00 → midnight UTC"
    );

    let t = Test::new();
    assert_eq!(t.start("u-1", NUMBER).await.status, 202);
    let (country, _) = t.fake().counters("rate#country#US#").pop().unwrap();
    t.fake()
        .set_counter(&country, t.state.windows.per_country_per_hour);
    let reply = t.start("u-2", "+13125550123").await;
    reply.assert_error(429, "rate_limited");
    assert_eq!(reply.header("retry-after"), Some("3600"));
    // Canada has a window of its own.
    assert_eq!(t.start("u-3", "+14165550123").await.status, 202);
}
