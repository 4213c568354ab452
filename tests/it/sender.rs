//! The `sender` function through its real handler, moto (DynamoDB, SQS) and the
//! SendTextMessage stub: every outcome of DESIGN §6, every consent rule of §4, the limits
//! of §7, idempotency, throttling and quiet hours.

use aws_lambda_events::event::sqs::SqsEvent;
use futures_util::future::join_all;
use integration_tests::Behavior;
use integration_tests::sender_fixture::{
    Fixture, PHONE, consented_number, invitation, request, with_id,
};
use integration_tests::sqs::{deliver, drain, event_body, receive_event, receive_event_waiting};
use jiff::{SignedDuration, Timestamp};
use sender::Outcome;
use sms_shared::MessageKind;
use sms_shared::consent::SuppressReason;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod};
use sms_shared::request::SendRequest;
use sms_shared::store::LogStatus;

#[tokio::test]
async fn every_kind_from_its_sample_event_is_sent_once_with_the_right_body() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u-42", PHONE, Some("America/Los_Angeles"))
        .await;
    let samples = [
        ("sqs-battle-invitation.json", true, "Ada"),
        ("sqs-battle-result.json", true, "You won 3-2"),
        ("sqs-battle-reminder.json", true, "2 hours"),
        ("sqs-streak-alert.json", true, "12"),
        ("sqs-direct-message.json", true, "Rematch tonight?"),
        ("sqs-achievement-unlock.json", true, "Wordsmith"),
        ("sqs-security-alert.json", false, "New sign-in from Firefox"),
    ];
    for (file, promotional, needle) in samples {
        let body = event_body(file);
        let queue = if promotional {
            f.notifications()
        } else {
            f.transactional()
        };
        let outcomes = f.outcomes(&queue, std::slice::from_ref(&body)).await;
        assert_eq!(outcomes, [Outcome::Sent], "{file}");
        let id = SendRequest::parse(&body).unwrap().id;
        let sent = f
            .stub
            .sent()
            .into_iter()
            .find(|s| s.context.get("logId").map(String::as_str) == Some(id.as_str()));
        let sent = sent.unwrap_or_else(|| panic!("{file}: no SMS with context {id}"));
        assert_eq!(sent.to, PHONE);
        assert!(sent.body.contains(needle), "{file}: {}", sent.body);
        assert_eq!(
            sent.body.ends_with("Reply STOP to unsubscribe."),
            promotional,
            "{file}"
        );
        assert_eq!(
            sent.message_type.as_deref(),
            Some(if promotional {
                "PROMOTIONAL"
            } else {
                "TRANSACTIONAL"
            })
        );
        let record = f.record(&id).await;
        assert_eq!(record.status, LogStatus::Sent, "{file}");
        assert_eq!(
            record.provider_message_id.as_deref(),
            Some(sent.message_id.as_str())
        );
        assert_eq!(record.phone_number.as_deref(), Some(PHONE));
        assert!(record.segments.unwrap() >= 1);
        assert_eq!(record.user_id.as_deref(), Some("u-42"));
    }
    assert_eq!(f.stub.sent().len(), samples.len());
}

#[tokio::test]
async fn a_request_delivered_twice_sends_one_sms() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u-1", PHONE, None).await;
    let body = invitation("twice-1", "u-1");
    let first = f
        .outcomes(&f.notifications(), std::slice::from_ref(&body))
        .await;
    let second = f.outcomes(&f.notifications(), &[body]).await;
    assert_eq!(first, [Outcome::Sent]);
    assert_eq!(second, [Outcome::Duplicate]);
    assert_eq!(f.stub.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_delivered_concurrently_sends_one_sms() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u-1", PHONE, None).await;
    let body = invitation("concurrent-1", "u-1");
    let events = deliver(&f.env, &f.notifications(), &vec![body; 6]).await;
    let events: Vec<SqsEvent> = events
        .into_iter()
        .flat_map(|e| e.records)
        .map(|r| {
            let mut e = SqsEvent::default();
            e.records.push(r);
            e
        })
        .collect();
    let outcomes: Vec<Vec<Outcome>> = join_all(events.iter().map(|e| f.sender.process(e))).await;
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Sent).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            Outcome::Sent | Outcome::Duplicate | Outcome::Retry { .. }
        )),
        "{outcomes:?}"
    );
    assert_eq!(f.stub.sent().len(), 1);
}

#[tokio::test]
async fn past_not_after_is_logged_expired_and_not_sent() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u-42", PHONE, None).await;
    let outcomes = f
        .outcomes(&f.notifications(), &[event_body("sqs-expired.json")])
        .await;
    assert_eq!(outcomes, [Outcome::Expired]);
    assert_eq!(f.record("expired-1").await.status, LogStatus::Expired);
    assert!(f.stub.sent().is_empty());
}

#[tokio::test]
async fn invalid_bodies_go_to_the_dead_letter_queue_with_their_reason() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u-42", PHONE, None).await;
    let verification = r#"{"v":1,"id":"pv-1","kind":"phone_verification","userId":"u-42","params":{"code":"123456"}}"#;
    let bodies = [
        event_body("sqs-malformed.json"),
        event_body("sqs-invalid-params.json"),
        verification.to_owned(),
        "\u{0}\u{1}not json at all".to_owned(),
    ];
    let results = f.run(&f.notifications(), &bodies).await;
    // Acknowledged (not in batchItemFailures), so SQS deletes them from the source queue...
    for (_, response) in &results {
        assert!(response.batch_item_failures.is_empty());
    }
    // ...because they are on the dead-letter queue, each with a reason.
    let dead = drain(&f.env, &f.env.queues.notifications_dlq).await;
    assert_eq!(dead.len(), bodies.len());
    for body in &bodies {
        let letter = dead
            .iter()
            .find(|d| &d.body == body)
            .expect("body kept as it was");
        let reason = &letter.attributes["RejectReason"];
        assert!(!reason.is_empty());
        assert_eq!(
            letter.attributes["SourceQueue"],
            format!("{}notifications", f.env.prefix)
        );
    }
    let reason_of = |needle: &str| {
        dead.iter()
            .find(|d| d.body.contains(needle))
            .map(|d| d.attributes["RejectReason"].clone())
            .unwrap()
    };
    assert!(reason_of("broken-1").contains("not a JSON object"));
    assert!(reason_of("invalid-params-1").contains("invitation_link"));
    assert!(reason_of("pv-1").contains("verify-api"));
    assert!(f.stub.sent().is_empty());
    assert!(
        f.log.get("pv-1").await.unwrap().is_none(),
        "rejected requests claim nothing"
    );
}

#[tokio::test]
async fn security_alerts_ignore_master_switch_and_quiet_hours_but_not_consent() {
    let f = Fixture::new(&[]).await;
    // 03:00 in New York.
    f.clock.set("2026-11-25T08:00:00Z".parse().unwrap());
    f.save_user("master-off", |p| {
        p.allow_sms_invitations = false;
        p.time_zone = Some("America/New_York".into());
    })
    .await;
    f.save_user("revoked", |p| {
        ConsentEvent::new(
            &p.user_id,
            p.consent.given_at.unwrap(),
            ConsentAction::Revoke,
            ConsentMethod::SmsKeyword,
        )
        .apply_to(&mut p.consent)
    })
    .await;
    let outcomes = f
        .outcomes(
            &f.transactional(),
            &[
                request("sec-1", MessageKind::SecurityAlert, "master-off"),
                request("sec-2", MessageKind::SecurityAlert, "revoked"),
            ],
        )
        .await;
    assert_eq!(
        outcomes,
        [
            Outcome::Sent,
            Outcome::Suppressed(SuppressReason::ConsentRevoked)
        ]
    );
    assert_eq!(f.stub.sent().len(), 1);
}

#[tokio::test]
async fn quiet_hours_defer_to_the_window_and_hide_the_message_until_then() {
    let f = Fixture::new(&[]).await;
    // 23:00 in Chicago.
    f.clock.set("2026-11-26T05:00:00Z".parse().unwrap());
    f.opted_in_user("night-owl", PHONE, Some("America/Chicago"))
        .await;
    let results = f
        .run(&f.notifications(), &[invitation("night-1", "night-owl")])
        .await;
    let (event, response) = &results[0];
    let eight_am: Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "deferred records are kept on the queue"
    );
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        event.records[0].message_id.clone().unwrap()
    );
    let record = f.record("night-1").await;
    assert_eq!(record.status, LogStatus::Deferred);
    assert_eq!(record.lease_until_ms, eight_am.as_millisecond());
    // Its visibility was extended (9 h), so the queue shows nothing now.
    let visible = receive_event(&f.env, &f.notifications(), 10).await;
    assert!(
        visible.records.is_empty(),
        "deferred message must stay hidden"
    );
    assert!(f.stub.sent().is_empty());

    // Delivered again early (visibility can only go 12 h): deferred again, still unsent.
    let again = f.sender.process(event).await;
    assert_eq!(again, [Outcome::Deferred { until: eight_am }]);
    // At 08:00 Chicago it goes out.
    f.clock.set(eight_am);
    assert_eq!(f.sender.process(event).await, [Outcome::Sent]);
    assert_eq!(f.stub.sent().len(), 1);
    assert_eq!(f.record("night-1").await.status, LogStatus::Sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_the_daily_cap_sends_exactly_the_cap() {
    let f = Fixture::new(&[("DAILY_PROMOTIONAL_CAP", "10")]).await;
    f.opted_in_user("busy", PHONE, None).await;
    let bodies: Vec<String> = (0..15)
        .map(|i| invitation(&format!("burst-{i}"), "busy"))
        .collect();
    let events = deliver(&f.env, &f.notifications(), &bodies).await;
    let outcomes: Vec<Outcome> = join_all(events.iter().map(|e| f.sender.process(e)))
        .await
        .into_iter()
        .flatten()
        .collect();
    let sent = outcomes.iter().filter(|o| **o == Outcome::Sent).count();
    let capped = outcomes
        .iter()
        .filter(|o| **o == Outcome::Suppressed(SuppressReason::DailyCap))
        .count();
    assert_eq!((sent, capped), (10, 5), "{outcomes:?}");
    assert_eq!(f.stub.sent().len(), 10);
}

#[tokio::test]
async fn florida_numbers_get_at_most_three_promotional_messages_a_day() {
    let f = Fixture::new(&[]).await;
    // 305 is Miami; 13:00 there.
    f.save_user("miami", |p| consented_number(p, "+13055550123"))
        .await;
    let bodies: Vec<String> = (0..4)
        .map(|i| invitation(&format!("fl-{i}"), "miami"))
        .collect();
    let outcomes = f.outcomes(&f.notifications(), &bodies).await;
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Sent).count(), 3);
    assert!(outcomes.contains(&Outcome::Suppressed(SuppressReason::StateCap)));
    // 24 h after the first, there is room again.
    f.clock
        .advance(SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    let later = f
        .outcomes(&f.notifications(), &[invitation("fl-next-day", "miami")])
        .await;
    assert_eq!(later, [Outcome::Sent]);
}

#[tokio::test]
async fn throttled_records_are_retried_alone_and_never_sent_twice() {
    let f = Fixture::new(&[]).await;
    for i in 0..10 {
        f.save_user(&format!("t-{i}"), |p| {
            consented_number(p, &format!("+1415555{:04}", 100 + i))
        })
        .await;
    }
    let bodies: Vec<String> = (0..10)
        .map(|i| invitation(&format!("throttle-{i}"), &format!("t-{i}")))
        .collect();
    for _ in 0..3 {
        f.stub.push(Behavior::Throttle);
    }
    let results = f.run(&f.notifications(), &bodies).await;
    let failures: Vec<String> = results
        .iter()
        .flat_map(|(_, r)| {
            r.batch_item_failures
                .iter()
                .map(|b| b.item_identifier.clone())
        })
        .collect();
    assert_eq!(failures.len(), 3);
    assert_eq!(f.stub.sent().len(), 7);
    // Exactly the failed ones are still retryable; the others are done.
    let mut retry_records = Vec::new();
    for (event, _) in &results {
        for record in &event.records {
            if failures.contains(record.message_id.as_ref().unwrap()) {
                retry_records.push(record.clone());
            }
        }
    }
    let mut redelivery = SqsEvent::default();
    redelivery.records = retry_records;
    assert_eq!(f.sender.process(&redelivery).await, vec![Outcome::Sent; 3]);
    // Redelivering the whole batch again sends nothing more.
    for (event, _) in &results {
        assert!(
            f.sender
                .process(event)
                .await
                .iter()
                .all(|o| *o == Outcome::Duplicate)
        );
    }
    let sent = f.stub.sent();
    assert_eq!(sent.len(), 10);
    let mut destinations: Vec<&str> = sent.iter().map(|s| s.to.as_str()).collect();
    destinations.sort_unstable();
    destinations.dedup();
    assert_eq!(destinations.len(), 10, "no phone got a request's SMS twice");
}

#[tokio::test]
async fn provider_answers_map_to_their_outcomes() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u", PHONE, None).await;
    let cases = [
        (
            Behavior::InternalError,
            Outcome::Retry {
                reason: "provider_transient",
            },
            LogStatus::Retry,
        ),
        (
            // No answer: maybe sent, so the attempt stays `sending` (DESIGN §6).
            Behavior::Hang,
            Outcome::Retry { reason: "in_doubt" },
            LogStatus::Sending,
        ),
        (
            Behavior::validation("INVALID_PARAMETER"),
            Outcome::Rejected {
                reason: "provider_ValidationException".into(),
                dead_lettered: false,
            },
            LogStatus::Rejected,
        ),
        (
            Behavior::SpendLimit,
            Outcome::Suppressed(SuppressReason::SpendLimit),
            LogStatus::Suppressed,
        ),
    ];
    for (i, (behavior, outcome, status)) in cases.into_iter().enumerate() {
        f.stub.push(behavior);
        let id = format!("provider-{i}");
        let got = f
            .outcomes(&f.notifications(), &[invitation(&id, "u")])
            .await;
        assert_eq!(got, [outcome], "{id}");
        assert_eq!(f.record(&id).await.status, status, "{id}");
    }
    // Transactional + spend limit: retried so it reaches the DLQ and its alarm.
    f.stub.push(Behavior::SpendLimit);
    let got = f
        .outcomes(
            &f.transactional(),
            &[request("sec-spend", MessageKind::SecurityAlert, "u")],
        )
        .await;
    assert_eq!(
        got,
        [Outcome::Retry {
            reason: "spend_limit"
        }]
    );
    // A transient failure is sent on the next delivery.
    let again = f
        .outcomes(&f.notifications(), &[invitation("provider-0", "u")])
        .await;
    assert_eq!(again, [Outcome::Sent]);
}

#[tokio::test]
async fn a_carrier_opt_out_suppresses_and_revokes_every_user_of_the_number() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("sibling-a", PHONE, None).await;
    f.opted_in_user("sibling-b", PHONE, None).await;
    f.stub.fail_for_destination(PHONE, Behavior::OptedOut);
    let got = f
        .outcomes(&f.notifications(), &[invitation("oo-1", "sibling-a")])
        .await;
    assert_eq!(got, [Outcome::Suppressed(SuppressReason::CarrierOptedOut)]);
    for user in ["sibling-a", "sibling-b"] {
        let prefs = f.prefs.get(user).await.unwrap().unwrap();
        assert!(!prefs.consent.given, "{user}");
        assert_eq!(
            prefs.consent.revoked_method,
            Some(ConsentMethod::CarrierOptOut)
        );
        let history = f.prefs.consent_history(user).await.unwrap();
        assert_eq!(history.last().unwrap().action, ConsentAction::Revoke);
    }
    // The next request for the other user is suppressed before reaching AWS.
    let requests_before = f.stub.requests();
    let next = f
        .outcomes(&f.notifications(), &[invitation("oo-2", "sibling-b")])
        .await;
    assert_eq!(next, [Outcome::Suppressed(SuppressReason::ConsentRevoked)]);
    assert_eq!(f.stub.requests(), requests_before);
}

#[tokio::test]
async fn monthly_spend_over_the_cap_suppresses_promotional_only() {
    let f = Fixture::new(&[
        ("MONTHLY_SPEND_CAP_USD", "1"),
        ("TRANSACTIONAL_HARD_CAP_USD", "5"),
    ])
    .await;
    f.opted_in_user("u", PHONE, None).await;
    let counters =
        sms_shared::store::Counters::new(f.env.dynamodb.clone(), &f.env.tables.log, "id");
    let now = sms_shared::Clock::now(&*f.clock);
    counters
        .add(
            &sms_shared::store::log::counter_ids::month_spend(now),
            1_500_000,
            now + SignedDuration::from_hours(24 * 40),
        )
        .await
        .unwrap();
    let got = f
        .outcomes(&f.notifications(), &[invitation("spend-promo", "u")])
        .await;
    assert_eq!(got, [Outcome::Suppressed(SuppressReason::SpendLimit)]);
    let got = f
        .outcomes(
            &f.transactional(),
            &[request("spend-sec", MessageKind::SecurityAlert, "u")],
        )
        .await;
    assert_eq!(got, [Outcome::Sent]);
}

/// Issue #18: the DynamoDB work of a batch of 10 sendable messages is one request per step
/// (the read, the claims with the cap reservations, the attempts, the outcomes), at most 5
/// in all: at most 0.5 per sent message. Exactly one `SendTextMessage` per message.
#[tokio::test]
async fn a_batch_of_ten_makes_at_most_five_dynamodb_requests() {
    let f = Fixture::new(&[("SENDER_CONCURRENCY", "10")]).await;
    for i in 0..10 {
        f.save_user(&format!("d-{i}"), |p| {
            consented_number(p, &format!("+1415555{:04}", 200 + i))
        })
        .await;
    }
    for (name, kind) in [
        ("promotional", MessageKind::BattleInvitation),
        ("transactional", MessageKind::SecurityAlert),
    ] {
        let bodies: Vec<String> = (0..10)
            .map(|i| request(&format!("ddb-{name}-{i}"), kind, &format!("d-{i}")))
            .collect();
        let queue = match kind.class() {
            sms_shared::MessageClass::Promotional => f.notifications(),
            sms_shared::MessageClass::Transactional => f.transactional(),
        };
        // One batch of 10, as the event source mapping delivers it.
        let mut batch = SqsEvent::default();
        for event in deliver(&f.env, &queue, &bodies).await {
            batch.records.extend(event.records);
        }
        assert_eq!(batch.records.len(), 10);
        let calls_before = f.stub.requests();
        f.dynamodb_requests.reset();
        let outcomes = f.sender.process(&batch).await;
        assert!(outcomes.iter().all(|o| *o == Outcome::Sent), "{outcomes:?}");
        let requests = f.dynamodb_requests.get();
        let units = f.dynamodb_requests.write_units();
        println!(
            "{name} batch of 10: {requests} DynamoDB requests ({:.2} per sent message), \
             {units} write units ({:.1} per sent message)",
            requests as f64 / 10.0,
            units as f64 / 10.0
        );
        assert!(
            requests <= 5,
            "{name}: {requests} DynamoDB requests for a batch of 10"
        );
        assert_eq!(
            f.stub.requests() - calls_before,
            10,
            "exactly one SMS API call per message"
        );
    }
}

#[tokio::test]
async fn no_input_makes_the_handler_panic() {
    let f = Fixture::new(&[]).await;
    f.opted_in_user("u", PHONE, None).await;
    let nasty = [
        String::new(),
        "null".into(),
        "{\"v\":1}".into(),
        "{\"id\":\"x\",\"v\":1,\"kind\":\"battle_invitation\",\"userId\":\"u\",\"params\":{\"inviter_name\":\"\\u0000\\n\",\"battle_topic\":\"ß\",\"invitation_link\":\"https://e.com\"}}".into(),
        format!("{{\"id\":\"{}\"}}", "é".repeat(200)),
        with_id(&invitation("x", "u"), &"\u{7f}".repeat(3)),
    ];
    let mut event = SqsEvent::default();
    for (i, body) in nasty.iter().enumerate() {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = Some(format!("nasty-{i}"));
        record.body = Some(body.clone());
        event.records.push(record);
    }
    // Records without a known source queue cannot be dead-lettered: they are retried
    // (and SQS's redrive moves them), never dropped.
    let response = f.sender.handle(event).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), nasty.len());
    assert!(f.stub.sent().is_empty());
}

#[tokio::test]
async fn upstream_enqueue_routes_each_kind_to_its_queue_and_the_sender_sends_it() {
    use sms_shared::request::{SendQueueUrls, enqueue};
    let f = Fixture::new(&[]).await;
    f.opted_in_user("up", PHONE, None).await;
    let queues = SendQueueUrls {
        transactional_url: f.transactional(),
        notifications_url: f.notifications(),
    };
    let alert = SendRequest::builder("up-sec-1", MessageKind::SecurityAlert, "up")
        .param("summary", "Password changed")
        .param("link", "https://example.com/security")
        .build()
        .unwrap();
    let promo = SendRequest::parse(&invitation("up-promo-1", "up")).unwrap();
    enqueue(&f.env.sqs, &queues, &alert).await.unwrap();
    enqueue(&f.env.sqs, &queues, &promo).await.unwrap();

    let on_transactional = receive_event(&f.env, &f.transactional(), 10).await;
    let on_notifications = receive_event(&f.env, &f.notifications(), 10).await;
    assert_eq!(
        on_transactional.records.len(),
        1,
        "the security alert goes to its own queue"
    );
    assert_eq!(on_notifications.records.len(), 1);
    assert_eq!(f.sender.process(&on_transactional).await, [Outcome::Sent]);
    assert_eq!(f.sender.process(&on_notifications).await, [Outcome::Sent]);
    assert_eq!(f.record("up-sec-1").await.status, LogStatus::Sent);
    assert_eq!(f.record("up-promo-1").await.status, LogStatus::Sent);
}

#[tokio::test]
async fn a_batch_that_cannot_fit_before_the_deadline_hands_back_the_rest_unsent() {
    // 1 part a second for the only instance (0.98/s with the pacer's margin): eight messages
    // need over 7 s. The invocation has 6 s and a margin of 1 s: sends may start for 5 s.
    let f = Fixture::new(&[
        ("SMS_PARTS_PER_SECOND", "1"),
        ("SENDER_MAX_CONCURRENCY", "1"),
        ("SENDER_DEADLINE_MARGIN_SECONDS", "1"),
    ])
    .await;
    const REQUESTS: usize = 8;
    let bodies: Vec<String> = (0..REQUESTS)
        .map(|i| {
            let user = format!("late-{i}");
            invitation(&format!("late-{i}"), &user)
        })
        .collect();
    for i in 0..REQUESTS {
        f.save_user(&format!("late-{i}"), |p| {
            consented_number(p, &format!("+1415555{:04}", 700 + i))
        })
        .await;
    }
    let queue = f.notifications();
    let event = deliver(&f.env, &queue, &bodies).await.remove(0);
    assert_eq!(event.records.len(), REQUESTS);

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(6);
    let latest_start = (deadline - std::time::Duration::from_secs(1)).into_std();
    let settled = f.sender.settle_batch(&event, Some(deadline)).await;
    let finished = tokio::time::Instant::now();

    assert!(
        finished < deadline,
        "the invocation ends before its deadline"
    );
    let sent = f.stub.sent();
    let handed_back: Vec<&sender::Settled> = settled
        .iter()
        .filter(|s| s.outcome == Outcome::Retry { reason: "deadline" })
        .collect();
    assert!(!sent.is_empty(), "what fits is sent");
    assert!(
        (1..=5).contains(&sent.len()),
        "at 0.98 parts/s at most 5 sends start within 5 s: {}",
        sent.len()
    );
    assert_eq!(
        sent.len() + handed_back.len(),
        REQUESTS,
        "every other record is handed back: {settled:?}"
    );
    for sms in &sent {
        assert!(
            sms.at <= latest_start,
            "a send started {:?} after the deadline less the margin",
            sms.at - latest_start
        );
    }
    for s in &handed_back {
        assert_eq!(s.disposition, sender::Disposition::HandBack);
    }
    // Handed back unsent and released: visible again at once, and the next invocation sends
    // each exactly once.
    for (record, s) in event.records.iter().zip(&settled) {
        let id = SendRequest::parse(record.body.as_deref().unwrap())
            .unwrap()
            .id;
        let log = f.record(&id).await;
        if s.outcome == Outcome::Sent {
            assert_eq!(log.status, LogStatus::Sent, "{id}");
        } else {
            assert_eq!(log.status, LogStatus::Retry, "{id}");
            assert!(
                sent.iter().all(|sms| sms.context["logId"] != id),
                "{id}: handed back, never sent"
            );
        }
    }
    let again = receive_event(&f.env, &queue, 10).await;
    assert_eq!(
        again.records.len(),
        handed_back.len(),
        "back on the queue now"
    );
    let outcomes = f.sender.process(&again).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Sent), "{outcomes:?}");
    let mut ids: Vec<String> = f
        .stub
        .sent()
        .iter()
        .map(|s| s.context["logId"].clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), REQUESTS);
    assert_eq!(f.stub.sent().len(), REQUESTS, "one SMS per request");
}

#[tokio::test]
async fn a_deferred_request_received_again_and_again_never_reaches_the_dead_letter_queue() {
    let f = Fixture::new(&[]).await;
    // One second before 08:00 in Chicago: deferred for one second each time it is decided,
    // for as long as the clock says so (a deferral of days, in SQS's real time).
    let eight_am: Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
    f.clock.set(eight_am - SignedDuration::from_secs(1));
    f.opted_in_user("night-owl", PHONE, Some("America/Chicago"))
        .await;
    let queue = f.notifications();
    let mut event = deliver(&f.env, &queue, &[invitation("night-2", "night-owl")])
        .await
        .remove(0);

    // Eight receives of the request, more than maxReceiveCount (5) allows one message.
    let mut receives = 0;
    while receives < 8 {
        let settled = f.settle_as_lambda(&queue, &event).await;
        receives += 1;
        assert!(
            matches!(
                settled[..],
                [sender::Settled {
                    outcome: Outcome::Deferred { .. },
                    ..
                }]
            ),
            "{settled:?}"
        );
        event = match settled[0].disposition {
            // Waiting in place: its visibility runs out.
            sender::Disposition::HandBack => f.receive_again(&queue, &event).await,
            // Acknowledged: the fresh copy arrives after its delay.
            sender::Disposition::Acknowledge => receive_event_waiting(&f.env, &queue, 10, 5).await,
        };
        assert_eq!(event.records.len(), 1, "the request is still on the queue");
        let count = sender::queues::receive_count(&event.records[0]);
        assert!(
            count <= 2,
            "a waiting record is received at most twice: {count}"
        );
    }
    assert!(
        drain(&f.env, &f.env.queues.notifications_dlq)
            .await
            .is_empty()
    );
    assert!(f.stub.sent().is_empty());
    assert_eq!(f.record("night-2").await.status, LogStatus::Deferred);

    // The window opens: sent, once, and nothing is left on the queue or the DLQ.
    f.clock.set(eight_am);
    let settled = f.settle_as_lambda(&queue, &event).await;
    assert_eq!(settled[0].outcome, Outcome::Sent);
    assert_eq!(f.stub.sent().len(), 1);
    assert!(receive_event(&f.env, &queue, 10).await.records.is_empty());
    assert!(
        drain(&f.env, &f.env.queues.notifications_dlq)
            .await
            .is_empty()
    );
}

/// Bodies speak the user's language (the preferences' `locale`, DESIGN §8): a Spanish speaker
/// gets the Spanish template, with the Spanish STOP footer, folded to GSM-7; an English
/// speaker (or one who never chose) the English one.
#[tokio::test]
async fn bodies_speak_the_users_language() {
    let f = Fixture::new(&[]).await;
    f.save_user("u-es", |p| {
        consented_number(p, "+14155550111");
        p.locale = Some("es".into());
    })
    .await;
    f.save_user("u-en", |p| consented_number(p, "+14155550112"))
        .await;
    let bodies = [
        invitation("es-1", "u-es"),
        request("es-2", MessageKind::SecurityAlert, "u-es"),
        invitation("en-1", "u-en"),
    ];
    f.outcomes(&f.notifications(), &bodies[..1]).await;
    f.outcomes(&f.transactional(), &bodies[1..2]).await;
    f.outcomes(&f.notifications(), &bodies[2..]).await;
    let body_of = |id: &str| {
        f.stub
            .sent()
            .into_iter()
            .find(|s| s.context.get("logId").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("{id} not sent"))
            .body
    };
    let invitation_es = body_of("es-1");
    assert!(
        invitation_es.contains("Ada te invita a una batalla sobre \"Haiku\""),
        "{invitation_es}"
    );
    assert!(
        invitation_es.ends_with("Responde STOP para cancelar."),
        "{invitation_es}"
    );
    let alert_es = body_of("es-2");
    assert!(alert_es.contains("alerta de seguridad"), "{alert_es}");
    for body in [&invitation_es, &alert_es] {
        let count = sms_shared::segments::count(body);
        assert_eq!(
            count.encoding,
            sms_shared::segments::Encoding::Gsm7,
            "{body}"
        );
    }
    let invitation_en = body_of("en-1");
    assert!(
        invitation_en.contains("Ada challenged you"),
        "{invitation_en}"
    );
    assert!(invitation_en.ends_with("Reply STOP to unsubscribe."));
}

/// DynamoDB refuses a transaction with two operations on one item, and moto takes it: the
/// recorder of the sender's calls refuses it as DynamoDB would, so a batch step that wrote one
/// item twice (a user's counter for each of the user's messages) fails the suite.
#[tokio::test]
async fn no_batch_step_writes_one_item_twice() {
    use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
    let f = Fixture::new(&[]).await;
    let client = f.calls.dynamodb(&f.env.dynamodb);
    let add = |by: &str| {
        let update = Update::builder()
            .table_name(&f.env.tables.log)
            .key("id", AttributeValue::S("counter#twice".into()))
            .update_expression("ADD #count :by")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":by", AttributeValue::N(by.into()))
            .build()
            .unwrap();
        TransactWriteItem::builder().update(update).build()
    };
    let refused = client
        .transact_write_items()
        .transact_items(add("1"))
        .transact_items(add("2"))
        .send()
        .await;
    assert!(refused.is_err(), "two operations on one item are refused");
    assert_eq!(f.calls.over_limit().len(), 1);

    // Three messages to one user (and a duplicate id) in one batch: one counter write.
    f.opted_in_user("twice", PHONE, None).await;
    let bodies = [
        invitation("twice-1", "twice"),
        invitation("twice-2", "twice"),
        invitation("twice-3", "twice"),
        invitation("twice-3", "twice"),
    ];
    let mut batch = SqsEvent::default();
    for event in deliver(&f.env, &f.notifications(), &bodies).await {
        batch.records.extend(event.records);
    }
    let outcomes = f.sender.process(&batch).await;
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Sent).count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(f.calls.over_limit().len(), 1, "{:?}", f.calls.over_limit());
}
