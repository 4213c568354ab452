//! `bench api`: latency of each HTTP route through its handler (`opt_in_api::handler`,
//! `verify_api::handler`) in this process, against moto, with the SMS stub for verification
//! codes. Requests are the payload-v2 events of `events/`, each iteration as a new user (own
//! source IP and number prefix, so the verification limits never answer 429).

use crate::fixtures::{self, code_in, event_file, http_as};
use crate::util::{self, Mode, Part, Row, ShiftedClock, f, median, ms, percentile};
use integration_tests::{SmsStub, TestEnv};
use lambda_http::{Body, Request};
use serde_json::Value;
use sms_shared::sms::EumSender;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Iterations not measured first (connections, first-use costs).
const WARMUP: usize = 5;

/// The routes in the order a user meets them, with their sample event.
const ROUTES: &[(&str, &str)] = &[
    ("GET /notifications/sms-opt-in/", "http-opt-in-get.json"),
    ("POST /notifications/sms-opt-in/", "http-opt-in-post.json"),
    (
        "GET /notifications/me/sms-preferences/",
        "http-preferences-get.json",
    ),
    (
        "PATCH /notifications/me/sms-preferences/",
        "http-preferences-patch.json",
    ),
    (
        "POST /notifications/me/phone-verification/",
        "http-verification-start.json",
    ),
    (
        "POST /notifications/me/phone-verification/check/",
        "http-verification-check.json",
    ),
];

#[derive(Default)]
struct RouteStats {
    latencies: Vec<f64>,
    statuses: BTreeMap<u16, usize>,
}

pub fn run(mode: Mode) {
    util::block_on(measure(mode));
}

async fn measure(mode: Mode) {
    let mut part = Part::start("api");
    let iterations = mode.pick(50, 200);
    let events: Vec<Option<Value>> = ROUTES.iter().map(|(_, file)| event_file(file)).collect();
    for ((route, file), event) in ROUTES.iter().zip(&events) {
        if event.is_none() {
            part.note(format!("{route}: skipped, events/{file} is missing"));
        }
    }
    let env = TestEnv::new().await;
    let stub = SmsStub::start().await;
    let config = env.config_with(&[
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", fixtures::ORIGINATION),
        // Every round verifies a new US number: the home-country window (100 an hour by
        // default) would answer 429 from the 101st, and the latency measured would be that
        // of a refusal.
        (
            "VERIFICATION_HOME_COUNTRY_HOURLY",
            fixtures::HOME_COUNTRY_HOURLY_FOR_BENCH,
        ),
    ]);
    let clock = Arc::new(ShiftedClock::at_noon());
    let opt_in = opt_in_api::State::new(
        config.clone(),
        fixtures::authenticator(),
        env.dynamodb.clone(),
        EumSender::new(
            fixtures::production_like_sms_client(&stub).await,
            &config.sms,
        ),
        clock.clone(),
    );
    let sms = EumSender::new(
        fixtures::production_like_sms_client(&stub).await,
        &config.sms,
    );
    let verify = verify_api::State::new(
        config.clone(),
        fixtures::authenticator(),
        fixtures::code_key(),
        env.dynamodb.clone(),
        sms,
        clock,
    );

    let mut stats: Vec<RouteStats> = ROUTES.iter().map(|_| RouteStats::default()).collect();
    for i in 0..WARMUP + iterations {
        let user = format!("api-{i}");
        let ip = fixtures::ip(i);
        let phone = fixtures::prefixed_phone(i);
        let mut code: Option<String> = None;
        for (r, (route, _)) in ROUTES.iter().enumerate() {
            let Some(event) = &events[r] else { continue };
            let mut event = http_as(event.clone(), &user, &ip, &phone);
            if route.ends_with("/check/") {
                let Some(code) = &code else { continue };
                event["body"] = serde_json::json!({ "code": code }).to_string().into();
            }
            let request: Request = match lambda_http::request::from_str(&event.to_string()) {
                Ok(request) => request,
                Err(e) => {
                    part.note(format!("{route}: the sample event is not a request: {e}"));
                    continue;
                }
            };
            let started = Instant::now();
            let response = if route.contains("phone-verification") {
                verify_api::handler(&verify, request).await
            } else {
                opt_in_api::handler(&opt_in, request).await
            };
            let elapsed = ms(started.elapsed());
            let status = response.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            if route.ends_with("phone-verification/") {
                code = stub
                    .sent_to(&phone)
                    .last()
                    .and_then(|sms| code_in(&sms.body));
            }
            if let Ok(response) = &response
                && status >= 500
                && i == WARMUP
            {
                let body = match response.body() {
                    Body::Text(t) => t.clone(),
                    _ => String::new(),
                };
                part.note(format!("{route}: {status} {body}"));
            }
            if i >= WARMUP {
                stats[r].latencies.push(elapsed);
                *stats[r].statuses.entry(status).or_default() += 1;
            }
        }
    }
    for ((route, _), s) in ROUTES.iter().zip(&stats) {
        if s.latencies.is_empty() {
            continue;
        }
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        part.push(Row::new(
            "API",
            route,
            &format!("p50 / p99 latency ({})", statuses.join(", ")),
            format!(
                "{} / {} ms",
                f(median(&s.latencies), 1),
                f(percentile(&s.latencies, 99.0), 1)
            ),
        ));
    }
    part.note(format!(
        "API: {iterations} requests per route through the handler after {WARMUP} warm-up rounds, \
         each round a new user; moto serves DynamoDB one request at a time"
    ));
    part.finish();
}
