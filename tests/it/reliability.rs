//! Reliability of the sender under faults (issue: nothing lost, nothing doubled):
//! * a fault-injection run of 1,000 requests against a stub that throttles, fails and hangs,
//!   with duplicate deliveries and SQS redelivery simulated until every request settles; a
//!   hang is an answer lost (DESIGN §6): the attempt waits for its receipt, then a promotional
//!   request ends `unknown` and a security alert is sent once more;
//! * DynamoDB cut off in the middle of a batch (a TCP proxy between the SDK and moto): what
//!   went out unrecorded is settled by its receipt, never sent twice.
//!
//! The crash of a process between the call and the outcome, and two processes on one queue,
//! are `functions/sender/tests/processes.rs`.

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use delivery_status::DeliveryStatus;
use integration_tests::events::sns_event;
use integration_tests::fault_proxy::FaultProxy;
use integration_tests::sender_fixture::{Fixture, consented_number, invitation, request};
use integration_tests::sqs::{deliver, drain, queue_arn};
use integration_tests::{Behavior, FaultMix, TestEnv};
use jiff::SignedDuration;
use sender::Outcome;
use serde_json::json;
use sms_shared::MessageKind;
use sms_shared::store::LogStatus;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Rounds of redelivery before the run gives up (each round is one pass over what is left).
const MAX_ROUNDS: usize = 40;

fn record(id: &str, body: String, arn: &str) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = Some(id.to_owned());
    r.receipt_handle = Some(format!("handle-{id}"));
    r.body = Some(body);
    r.event_source = Some("aws:sqs".into());
    r.event_source_arn = Some(arn.to_owned());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_requests_under_faults_settle_once_each() {
    let f = Fixture::new(&[
        ("SENDER_CONCURRENCY", "10"),
        ("SMS_PARTS_PER_SECOND", "100000"),
        ("DAILY_PROMOTIONAL_CAP", "1000"),
        ("SEND_TAKEOVER_WAIT_SECONDS", "60"),
    ])
    .await;
    const USERS: usize = 100;
    const REQUESTS: usize = 1000;
    for u in 0..USERS {
        let phone = format!("+1415555{:04}", 1000 + u);
        f.save_user(&format!("r-{u}"), |p| consented_number(p, &phone))
            .await;
    }
    f.stub.set_fault_mix(Some(FaultMix {
        seed: 0x5eed_1234,
        throttle: 0.20,
        internal_error: 0.05,
        hang: 0.02,
    }));
    let notifications = queue_arn(&f.env, &f.notifications()).await;
    let transactional = queue_arn(&f.env, &f.transactional()).await;

    // 900 promotional and 100 security alerts; 10 % of them delivered twice.
    let mut pending: Vec<SqsMessage> = Vec::new();
    let mut ids = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let user = format!("r-{}", i % USERS);
        let id = format!("req-{i}");
        let (body, arn) = if i % 10 == 9 {
            (
                request(&id, MessageKind::SecurityAlert, &user),
                &transactional,
            )
        } else {
            (invitation(&id, &user), &notifications)
        };
        pending.push(record(&format!("m-{i}"), body.clone(), arn));
        if i % 10 == 3 {
            pending.push(record(&format!("m-{i}-dup"), body, arn));
        }
        ids.push(id);
    }
    // Spread the duplicates across batches.
    pending.sort_by_key(|r| {
        let id = r.message_id.clone().unwrap_or_default();
        (id.ends_with("-dup"), id)
    });

    let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut rounds = 0;
    while !pending.is_empty() && rounds < MAX_ROUNDS {
        rounds += 1;
        let mut again = Vec::new();
        // Batches of 10, as the event source mapping delivers them; two batches at a time
        // on two "instances" sharing the stores would also do, one sender keeps it simple.
        let batches: Vec<SqsEvent> = pending
            .chunks(10)
            .map(|chunk| {
                let mut e = SqsEvent::default();
                e.records = chunk.to_vec();
                e
            })
            .collect();
        for batch in &batches {
            let outcomes = f.sender.process(batch).await;
            for (record, outcome) in batch.records.iter().zip(outcomes) {
                *tally.entry(outcome.name()).or_default() += 1;
                if outcome.needs_redelivery() {
                    again.push(record.clone());
                }
            }
        }
        pending = again;
        // SQS brings records back after a while: leases and the takeover wait run out.
        f.clock.advance(SignedDuration::from_secs(61));
    }
    let sent = f.stub.sent();
    println!(
        "fault run: {REQUESTS} requests (+{} duplicate deliveries) settled in {rounds} rounds; \
         outcomes {tally:?}; SMS API calls {}, accepted {}",
        REQUESTS / 10,
        f.stub.requests(),
        sent.len()
    );
    assert!(
        pending.is_empty(),
        "{} records never settled",
        pending.len()
    );

    // No request's SMS went out twice.
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for s in &sent {
        *per_request.entry(s.context["logId"].as_str()).or_default() += 1;
    }
    assert!(
        per_request.values().all(|&n| n == 1),
        "an SMS was sent twice"
    );
    // Every request has exactly one outcome in the log, and it is the truth: `sent` when its
    // SMS went out; when it never did, only a lost answer explains it (the stub's hang takes
    // nothing), and then a promotional request ends `unknown`: never resent. Every security
    // alert went out: one whose answer was lost was sent once more after the wait.
    let mut unknown = 0;
    for (i, id) in ids.iter().enumerate() {
        let record = f.record(id).await;
        let outcomes: Vec<LogStatus> = record
            .status_history
            .iter()
            .map(|c| c.status)
            .filter(|s| !s.is_claimable() && *s != LogStatus::Sending)
            .collect();
        assert_eq!(outcomes.len(), 1, "{id}: {:?}", record.status_history);
        if per_request.contains_key(id.as_str()) {
            assert_eq!(record.status, LogStatus::Sent, "{id}");
        } else {
            assert_eq!(record.status, LogStatus::Unknown, "{id}");
            assert!(i % 10 != 9, "{id}: a security alert never went out");
            assert!(record.send_attempts >= 1, "{id}");
            unknown += 1;
        }
    }
    assert!(
        drain(&f.env, &f.env.queues.notifications_dlq)
            .await
            .is_empty()
    );
    assert!(
        drain(&f.env, &f.env.queues.transactional_dlq)
            .await
            .is_empty()
    );
    assert_eq!(tally["sent"] + unknown, REQUESTS);
    assert_eq!(tally.get("unknown").copied().unwrap_or(0), unknown);
    assert!(unknown > 0, "the hangs left some answers lost");
    assert!(tally["retry"] > 0 && tally["duplicate"] >= REQUESTS / 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_lost_mid_batch_acknowledges_only_what_was_recorded() {
    let env = TestEnv::new().await;
    let proxy = FaultProxy::start(&env.endpoint).await;
    let through_proxy = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .endpoint_url(proxy.endpoint())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(10)),
            )
            .build(),
    );
    let f = Fixture::with_dynamodb(env, &[("SENDER_CONCURRENCY", "1")], Some(through_proxy)).await;
    for u in 0..10 {
        let phone = format!("+1415555{:04}", 3000 + u);
        f.save_user(&format!("p-{u}"), |p| consented_number(p, &phone))
            .await;
    }
    // Each send takes a moment, so the line can be cut while the batch is under way.
    f.stub
        .set_default(Behavior::Delay(Duration::from_millis(100)));
    let bodies: Vec<String> = (0..10)
        .map(|u| invitation(&format!("cut-{u}"), &format!("p-{u}")))
        .collect();
    let event = deliver(&f.env, &f.notifications(), &bodies).await.remove(0);
    assert_eq!(event.records.len(), 10);

    let (response, _) = tokio::join!(f.sender.handle(event.clone()), async {
        f.stub.wait_for_sent(3, Duration::from_secs(20)).await;
        proxy.break_line();
    });
    let response = response.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|b| b.item_identifier.as_str())
        .collect();
    assert!(!failed.is_empty(), "the cut must leave records unfinished");
    assert!(
        failed.len() < 10,
        "records settled before the cut are acknowledged"
    );
    // Acknowledged means recorded (read through the direct client, not the proxy).
    let sent_before = f.stub.sent();
    for (record, body) in event.records.iter().zip(&bodies) {
        let id = sms_shared::request::SendRequest::parse(body).unwrap().id;
        let acked = !failed.contains(&record.message_id.as_deref().unwrap());
        let status = f.log.get(&id).await.unwrap().map(|r| r.status);
        if acked {
            assert_eq!(
                status,
                Some(LogStatus::Sent),
                "{id} acknowledged but not recorded"
            );
        } else {
            assert_ne!(
                status,
                Some(LogStatus::Sent),
                "{id} recorded but not acknowledged"
            );
        }
        // What went out before its outcome could be written says so: its attempt is on record.
        if sent_before.iter().any(|s| s.context["logId"] == id) && !acked {
            assert_eq!(status, Some(LogStatus::Sending), "{id}");
        }
    }

    // The line heals. The receipts of what went out arrive (delivery-status applies them to
    // the records still `sending`), and SQS delivers the failed records again after their
    // visibility timeout, by when every claim's lease is over.
    proxy.heal();
    let delivery = DeliveryStatus::new(&f.env.config(), f.env.dynamodb.clone(), f.clock.clone());
    for sms in &sent_before {
        delivery
            .handle(receipt(&sms.context["logId"], &sms.message_id))
            .await
            .expect("receipt applied");
    }
    f.clock.advance(SignedDuration::from_secs(121));
    let mut redelivery = SqsEvent::default();
    redelivery.records = event
        .records
        .iter()
        .filter(|r| failed.contains(&r.message_id.as_deref().unwrap()))
        .cloned()
        .collect();
    let outcomes = f.sender.process(&redelivery).await;
    // Sent before the cut (settled by its receipt): a duplicate now. Never sent: sent now.
    for (record, outcome) in redelivery.records.iter().zip(&outcomes) {
        let body = record.body.as_deref().unwrap();
        let id = sms_shared::request::SendRequest::parse(body).unwrap().id;
        let went_out = sent_before.iter().any(|s| s.context["logId"] == id);
        let expected = if went_out {
            Outcome::Duplicate
        } else {
            Outcome::Sent
        };
        assert_eq!(*outcome, expected, "{id}");
        assert!(
            matches!(
                f.record(&id).await.status,
                LogStatus::Sent | LogStatus::Delivered
            ),
            "{id}"
        );
    }
    let sent = f.stub.sent();
    assert_eq!(sent.len(), 10, "every request sent exactly once");
    let mut ids: Vec<&str> = sent.iter().map(|s| s.context["logId"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10);
}

/// A `TEXT_DELIVERED` receipt of provider message `message_id` for log record `log_id`.
fn receipt(log_id: &str, message_id: &str) -> SnsEvent {
    sns_event("sns-delivery-delivered.json", |m| {
        m.insert("context".into(), json!({ "logId": log_id }));
        m.insert("messageId".into(), json!(message_id));
    })
}
