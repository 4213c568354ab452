//! `bench probe`: where a function's init and first-request time goes, measured in a fresh
//! process (so every first use is a real first use), step by step in the order `main.rs` and
//! the first request meet them.

use crate::util::{Part, Row, f, ms};
use std::time::Instant;

pub fn run() {
    let mut part = Part::start("probe");
    let moto = std::env::var(integration_tests::moto::MOTO_URL_VAR).ok();
    // Lambda's variables, before any thread exists.
    // SAFETY: single-threaded at this point (no runtime, no other thread started yet).
    unsafe {
        for (k, v) in [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_SESSION_TOKEN", "test"),
        ] {
            std::env::set_var(k, v);
        }
        if let Some(url) = &moto {
            std::env::set_var("AWS_ENDPOINT_URL", url);
        }
    }
    let mut step = |name: &str, run: &mut dyn FnMut()| {
        let started = Instant::now();
        run();
        let took = ms(started.elapsed());
        part.push(Row::new(
            "init probe",
            "first use",
            name,
            format!("{} ms", f(took, 2)),
        ));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut sdk = None;
    step("sms_shared::aws::load_sdk_config", &mut || {
        sdk = Some(rt.block_on(sms_shared::aws::load_sdk_config()));
    });
    let sdk = sdk.expect("loaded");
    let mut dynamodb = None;
    step("3 clients (DynamoDB, SQS, SMS) from it", &mut || {
        dynamodb = Some(aws_sdk_dynamodb::Client::new(&sdk));
        let _ = aws_sdk_sqs::Client::new(&sdk);
        let _ = aws_sdk_pinpointsmsvoicev2::Client::new(&sdk);
    });
    let dynamodb = dynamodb.expect("built");
    if moto.is_some() {
        for label in [
            "first DynamoDB request (ListTables)",
            "second DynamoDB request",
        ] {
            step(label, &mut || {
                let _ = rt.block_on(dynamodb.list_tables().limit(1).send());
            });
        }
    }
    for (label, number) in [
        (
            "E164::parse, first US number (US/CA metadata)",
            "+14155550123",
        ),
        ("E164::parse, second", "+14155550124"),
        (
            "E164::parse, first other number (whole metadata)",
            "+442079460958",
        ),
        ("E164::parse, second other number", "+442079460959"),
    ] {
        step(label, &mut || {
            let _ = sms_shared::phone::E164::parse(number);
        });
    }
    for label in [
        "ring random bytes, first (the TLS library's generator)",
        "ring random bytes, second",
    ] {
        step(label, &mut || {
            let mut bytes = [0u8; 32];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        });
    }
    for label in ["time zone lookup, first", "time zone lookup, second"] {
        step(label, &mut || {
            let _ = jiff::tz::TimeZone::get("America/New_York");
        });
    }
    part.finish();
}
