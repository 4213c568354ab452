//! Self-tests of the integration-test support: the SMS stub through the real SDK client,
//! per-test tables and queues on moto, and the local stack.

use aws_sdk_pinpointsmsvoicev2::error::SdkError;
use aws_sdk_pinpointsmsvoicev2::operation::put_message_feedback::PutMessageFeedbackError;
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::{
    SendTextMessageError, SendTextMessageOutput,
};
use aws_sdk_pinpointsmsvoicev2::types::{
    AccessDeniedExceptionReason, ConflictExceptionReason, MessageFeedbackStatus, MessageType,
    ServiceQuotaExceededExceptionReason, ValidationExceptionReason,
};
use integration_tests::local_stack::create_local_stack;
use integration_tests::stack::create_tables;
use integration_tests::{Behavior, SmsStub, TestEnv, moto_endpoint, sdk_config};
use sms_shared::config::TableNames;
use std::time::{Duration, Instant};

const TO: &str = "+14155550123";

type SendResult = Result<SendTextMessageOutput, SdkError<SendTextMessageError>>;

async fn send(stub: &SmsStub, to: &str) -> SendResult {
    stub.client()
        .send_text_message()
        .destination_phone_number(to)
        .message_body("hello")
        .send()
        .await
}

fn service_error(result: SendResult) -> SendTextMessageError {
    match result {
        Ok(out) => panic!("expected an error, got {out:?}"),
        Err(err) => err.into_service_error(),
    }
}

#[tokio::test]
async fn stub_success_returns_the_message_id_and_records_every_field() {
    let stub = SmsStub::start().await;
    let out = stub
        .client()
        .send_text_message()
        .destination_phone_number(TO)
        .origination_identity("+18005550100")
        .message_body("Ada invited you. Reply STOP to unsubscribe.")
        .message_type(MessageType::Promotional)
        .configuration_set_name("sms-config")
        .context("logId", "battle-invite-1")
        .max_price("0.05")
        .time_to_live(3600)
        .message_feedback_enabled(true)
        .send()
        .await
        .expect("send succeeds");
    let id = out.message_id().expect("a message id").to_owned();
    assert!(id.starts_with("stub-msg-"), "{id}");

    let sent = stub.sent();
    assert_eq!(sent.len(), 1);
    let sms = &sent[0];
    assert_eq!(sms.to, TO);
    assert_eq!(sms.body, "Ada invited you. Reply STOP to unsubscribe.");
    assert_eq!(sms.origination_identity.as_deref(), Some("+18005550100"));
    assert_eq!(sms.message_type.as_deref(), Some("PROMOTIONAL"));
    assert_eq!(sms.configuration_set.as_deref(), Some("sms-config"));
    assert_eq!(
        sms.context.get("logId").map(String::as_str),
        Some("battle-invite-1")
    );
    assert_eq!(sms.max_price.as_deref(), Some("0.05"));
    assert_eq!(sms.ttl, Some(3600));
    assert_eq!(sms.message_feedback_enabled, Some(true));
    assert_eq!(sms.message_id, id);
    assert_eq!(sms.raw["DestinationPhoneNumber"], TO);
    assert_eq!(stub.requests(), 1);

    let second = send(&stub, TO).await.expect("second send");
    assert_ne!(second.message_id(), Some(id.as_str()), "ids are unique");
    assert_eq!(stub.sent_to(TO).len(), 2);
}

#[tokio::test]
async fn each_behavior_maps_to_its_sdk_error() {
    let stub = SmsStub::start().await;

    stub.push(Behavior::Throttle);
    let err = service_error(send(&stub, TO).await);
    assert!(err.is_throttling_exception(), "{err:?}");

    stub.push(Behavior::OptedOut);
    match service_error(send(&stub, TO).await) {
        SendTextMessageError::ConflictException(e) => {
            assert_eq!(
                e.reason(),
                Some(&ConflictExceptionReason::DestinationPhoneNumberOptedOut)
            );
            assert_eq!(e.resource_id(), Some(TO));
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }

    stub.push(Behavior::SpendLimit);
    match service_error(send(&stub, TO).await) {
        SendTextMessageError::ServiceQuotaExceededException(e) => assert_eq!(
            e.reason(),
            Some(&ServiceQuotaExceededExceptionReason::MonthlySpendLimitReachedForText)
        ),
        other => panic!("expected ServiceQuotaExceededException, got {other:?}"),
    }

    stub.push(Behavior::validation("INVALID_PARAMETER"));
    match service_error(send(&stub, TO).await) {
        SendTextMessageError::ValidationException(e) => assert_eq!(
            e.reason(),
            Some(&ValidationExceptionReason::InvalidParameter)
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }

    stub.push(Behavior::AccessDenied);
    match service_error(send(&stub, TO).await) {
        SendTextMessageError::AccessDeniedException(e) => {
            assert_eq!(
                e.reason(),
                Some(&AccessDeniedExceptionReason::AccountDisabled)
            )
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }

    stub.push(Behavior::InternalError);
    let err = send(&stub, TO).await.expect_err("internal error");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "InternalServerException is a 500"
    );
    assert!(err.into_service_error().is_internal_server_exception());

    // The queue is used up: back to the default.
    send(&stub, TO).await.expect("default is Ok");
    assert_eq!(stub.requests(), 7);
    assert_eq!(
        stub.sent().len(),
        1,
        "failed calls are not recorded as sent"
    );
}

#[tokio::test]
async fn pushed_behaviors_are_one_shot_in_order_and_destinations_and_default_last() {
    let stub = SmsStub::start().await;
    stub.push(Behavior::Throttle);
    stub.push(Behavior::InternalError);
    assert!(service_error(send(&stub, TO).await).is_throttling_exception());
    assert!(service_error(send(&stub, TO).await).is_internal_server_exception());
    send(&stub, TO).await.expect("queue empty, default Ok");

    let blocked = "+14155550199";
    stub.fail_for_destination(blocked, Behavior::OptedOut);
    for _ in 0..2 {
        assert!(service_error(send(&stub, blocked).await).is_conflict_exception());
    }
    send(&stub, TO).await.expect("other numbers unaffected");
    stub.fail_for_destination(blocked, Behavior::Ok);
    send(&stub, blocked).await.expect("cleared");

    stub.set_default(Behavior::SpendLimit);
    assert!(service_error(send(&stub, TO).await).is_service_quota_exceeded_exception());
}

#[tokio::test]
async fn malformed_destination_is_a_validation_error() {
    let stub = SmsStub::start().await;
    match service_error(send(&stub, "555-0123").await) {
        SendTextMessageError::ValidationException(e) => assert_eq!(
            e.reason(),
            Some(&ValidationExceptionReason::InvalidParameter)
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }
    assert_eq!(stub.requests(), 1);
    assert!(stub.sent().is_empty());
}

#[tokio::test]
async fn hang_times_out_and_delay_answers_late() {
    let stub = SmsStub::start().await;
    stub.push(Behavior::Hang);
    let started = Instant::now();
    let err = send(&stub, TO).await.expect_err("hang must time out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stub.sent().is_empty());

    stub.push(Behavior::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    send(&stub, TO).await.expect("delay then ok");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(stub.sent().len(), 1);
}

#[tokio::test]
async fn put_message_feedback_is_recorded() {
    let stub = SmsStub::start().await;
    let id = send(&stub, TO).await.expect("send").message_id.expect("id");
    let out = stub
        .client()
        .put_message_feedback()
        .message_id(&id)
        .message_feedback_status(MessageFeedbackStatus::Received)
        .send()
        .await
        .expect("feedback accepted");
    assert_eq!(out.message_id(), id);
    assert_eq!(stub.feedback(), vec![(id, "RECEIVED".to_owned())]);

    let err = stub
        .client()
        .put_message_feedback()
        .message_id("not-a-stub-id")
        .message_feedback_status(MessageFeedbackStatus::Received)
        .send()
        .await
        .expect_err("unknown id");
    assert!(matches!(
        err.into_service_error(),
        PutMessageFeedbackError::ResourceNotFoundException(_)
    ));
    assert_eq!(stub.feedback().len(), 1);
}

/// A plain `GET` of the stub (what the `sms-stub` binary's clients do): status and JSON body.
async fn get(stub: &SmsStub, path: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let addr = stub.endpoint().trim_start_matches("http://").to_owned();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // Blocking I/O off the runtime's thread, which serves the stub.
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect to the stub");
        stream.write_all(request.as_bytes()).expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read");
        raw
    })
    .await
    .expect("GET task");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test]
async fn get_messages_and_feedback_list_what_the_stub_recorded() {
    let stub = SmsStub::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("start on a free port");
    assert_eq!(get(&stub, "/messages").await, (200, serde_json::json!([])));
    let id = send(&stub, TO).await.expect("send").message_id.expect("id");
    stub.client()
        .put_message_feedback()
        .message_id(&id)
        .message_feedback_status(MessageFeedbackStatus::Received)
        .send()
        .await
        .expect("feedback accepted");

    let (status, messages) = get(&stub, "/messages").await;
    assert_eq!(status, 200);
    assert_eq!(messages[0]["destination"], TO);
    assert_eq!(messages[0]["body"], "hello");
    assert_eq!(messages[0]["message_id"], id.as_str());
    assert_eq!(
        get(&stub, "/feedback").await,
        (
            200,
            serde_json::json!([{"message_id": id, "status": "RECEIVED"}])
        )
    );
    assert_eq!(get(&stub, "/other").await.0, 404);
    // Inspection is not a call of the API.
    assert_eq!(stub.requests(), 1);
}

#[tokio::test]
async fn rate_limit_throttles_above_the_rate() {
    let stub = SmsStub::start().await;
    stub.limit_rate(2.0);
    // Ten calls at once: the burst (2 parts) passes, most of the rest is throttled (a slow
    // machine may refill a token or two meanwhile).
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let stub = stub.clone();
            tokio::spawn(async move { send(&stub, TO).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("send task"));
    }
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    assert!((2..=5).contains(&ok), "burst of 2 parts, got {ok} through");
    for err in results.into_iter().filter_map(Result::err) {
        assert!(err.into_service_error().is_throttling_exception());
    }
    assert_eq!(stub.throttled(), 10 - ok);
    assert_eq!(stub.requests(), 10);
    assert_eq!(stub.sent().len() as u64, ok);
    tokio::time::sleep(Duration::from_millis(600)).await;
    send(&stub, TO).await.expect("tokens refilled");
}

#[tokio::test]
async fn test_envs_are_distinct_and_their_tables_and_queues_exist() {
    let (a, b) = tokio::join!(TestEnv::new(), TestEnv::new());
    assert_ne!(a.prefix, b.prefix);
    assert_ne!(a.tables.log, b.tables.log);
    assert_ne!(a.queues.transactional, b.queues.transactional);
    for env in [&a, &b] {
        for table in [
            &env.tables.log,
            &env.tables.preferences,
            &env.tables.verification,
        ] {
            let described = env
                .dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .unwrap_or_else(|e| panic!("describe {table}: {e:?}"));
            assert_eq!(
                described.table().and_then(|t| t.table_name()),
                Some(table.as_str())
            );
        }
        for queue in [
            &env.queues.transactional,
            &env.queues.transactional_dlq,
            &env.queues.notifications,
            &env.queues.notifications_dlq,
        ] {
            assert!(queue.contains(&env.prefix), "{queue}");
            env.sqs
                .get_queue_attributes()
                .queue_url(queue)
                .send()
                .await
                .unwrap_or_else(|e| panic!("queue {queue}: {e:?}"));
        }
        let config = env.config_with(&[("DAILY_PROMOTIONAL_CAP", "3")]);
        assert_eq!(config.tables, env.tables);
        assert_eq!(
            config.transactional_queue_url.as_deref(),
            Some(env.queues.transactional.as_str())
        );
        assert_eq!(
            config.notifications_dlq_url.as_deref(),
            Some(env.queues.notifications_dlq.as_str())
        );
        assert_eq!(config.limits.promotional_per_user_per_day, 3);
        assert_eq!(env.config().tables, env.tables);
    }
}

#[tokio::test]
async fn create_tables_twice_is_fine() {
    let env = TestEnv::new().await;
    create_tables(&env.dynamodb, &env.tables)
        .await
        .expect("second create_tables succeeds");
}

#[tokio::test]
async fn local_stack_runs_twice() {
    let sdk = sdk_config(moto_endpoint().await).await;
    let prefix = integration_tests::env::unique_prefix();
    let tables = TableNames {
        log: format!("{prefix}sms-log"),
        preferences: format!("{prefix}sms-preferences"),
        verification: format!("{prefix}sms-verification"),
    };
    let first = create_local_stack(&sdk, &tables, &prefix)
        .await
        .expect("first run");
    let second = create_local_stack(&sdk, &tables, &prefix)
        .await
        .expect("second run");
    assert_eq!(first, second);
    assert!(
        first
            .delivery_topic_arn
            .ends_with(&format!(":{prefix}sms-delivery-events")),
        "{}",
        first.delivery_topic_arn
    );
    assert!(
        first
            .inbound_topic_arn
            .ends_with(&format!(":{prefix}sms-inbound"))
    );
    assert!(
        first
            .queues
            .transactional
            .ends_with(&format!("{prefix}transactional"))
    );
    let lines = first.env_lines();
    for key in [
        "LOG_TABLE=",
        "TRANSACTIONAL_QUEUE_URL=",
        "NOTIFICATIONS_QUEUE_URL=",
        "TRANSACTIONAL_DLQ_URL=",
        "NOTIFICATIONS_DLQ_URL=",
        "DELIVERY_TOPIC_ARN=",
        "INBOUND_TOPIC_ARN=",
    ] {
        assert!(
            lines.lines().any(|l| l.starts_with(key)),
            "{key} missing in\n{lines}"
        );
    }
}
