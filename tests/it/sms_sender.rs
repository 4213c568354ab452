//! The End User Messaging sender (`EumSender`) through the real SDK client against the SMS
//! stub: the exact request it makes, and how each answer of the service is classified
//! (DESIGN §6: only throttling, internal errors, 5xx and timeouts are transient).

use integration_tests::sms_stub::CLIENT_OPERATION_TIMEOUT;
use integration_tests::{Behavior, SmsStub};
use sms_shared::Config;
use sms_shared::kinds::MessageClass;
use sms_shared::sms::{ConsoleSender, EumSender, OutboundSms, SentSms, SmsError, SmsSender};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const TO: &str = "+14155550123";
const FROM: &str = "+18005550100";
const BODY: &str = "Ada invited you to a battle about Haiku. Reply STOP to unsubscribe.";

fn config(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", FROM),
        ("CONFIGURATION_SET", "sms-events"),
        ("SMS_MAX_PRICE", "0.05"),
        ("SMS_TTL_SECONDS", "900"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_map(&vars).expect("valid configuration")
}

fn sender(stub: &SmsStub) -> EumSender {
    EumSender::new(stub.client(), &config(&[]).sms)
}

fn promotional(log_id: &str) -> OutboundSms<'_> {
    OutboundSms {
        to: TO,
        body: BODY,
        class: MessageClass::Promotional,
        log_id,
        message_feedback: false,
    }
}

async fn failure(stub: &SmsStub, behavior: Behavior) -> SmsError {
    stub.push(behavior.clone());
    let result = sender(stub).send(&promotional("req-1")).await;
    let err = match result {
        Ok(sent) => panic!("{behavior:?}: expected an error, got {sent:?}"),
        Err(err) => err,
    };
    assert!(stub.sent().is_empty(), "{behavior:?}: nothing was accepted");
    assert_eq!(stub.requests(), 1, "{behavior:?}: one call, no SDK retries");
    err
}

#[tokio::test]
async fn success_sends_exactly_the_configured_fields_and_returns_the_message_id() {
    let stub = SmsStub::start().await;
    let sender = sender(&stub);

    let promo = sender
        .send(&promotional("battle-invite-81723"))
        .await
        .expect("promotional send");
    let code = OutboundSms {
        to: "+14165550199",
        body: "Your WordBattle code is 123456",
        class: MessageClass::Transactional,
        log_id: "verify-1",
        message_feedback: true,
    };
    let transactional = sender.send(&code).await.expect("transactional send");

    let sent = stub.sent();
    assert_eq!(sent.len(), 2);
    assert_ne!(promo, transactional, "each send has its own message id");
    for (result, sms, to, body, kind, log_id, feedback) in [
        (
            &promo,
            &sent[0],
            TO,
            BODY,
            "PROMOTIONAL",
            "battle-invite-81723",
            false,
        ),
        (
            &transactional,
            &sent[1],
            "+14165550199",
            "Your WordBattle code is 123456",
            "TRANSACTIONAL",
            "verify-1",
            true,
        ),
    ] {
        assert_eq!(
            result,
            &SentSms {
                message_id: sms.message_id.clone()
            }
        );
        assert_eq!(sms.to, to);
        assert_eq!(sms.body, body);
        assert_eq!(sms.origination_identity.as_deref(), Some(FROM));
        assert_eq!(sms.message_type.as_deref(), Some(kind));
        assert_eq!(sms.configuration_set.as_deref(), Some("sms-events"));
        assert_eq!(
            sms.context,
            [("logId".to_owned(), log_id.to_owned())].into()
        );
        assert_eq!(sms.max_price.as_deref(), Some("0.05"));
        assert_eq!(sms.ttl, Some(900));
        assert_eq!(sms.message_feedback_enabled, Some(feedback));
        // Exactly these fields and no others (no keyword, no dry run, no destination country).
        let fields: BTreeSet<&str> = sms
            .raw
            .as_object()
            .expect("request is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "DestinationPhoneNumber",
                "OriginationIdentity",
                "MessageBody",
                "MessageType",
                "ConfigurationSetName",
                "Context",
                "MaxPrice",
                "TimeToLive",
                "MessageFeedbackEnabled",
            ])
        );
    }
}

#[tokio::test]
async fn unset_optional_settings_are_left_out_and_ttl_defaults_to_an_hour() {
    let stub = SmsStub::start().await;
    let mut vars = HashMap::new();
    vars.insert("SMS_SENDER".to_owned(), "eum".to_owned());
    vars.insert("ORIGINATION_IDENTITY".to_owned(), FROM.to_owned());
    let config = Config::from_map(&vars).expect("config");
    let sender = EumSender::new(stub.client(), &config.sms);
    sender.send(&promotional("req-1")).await.expect("send");
    let sms = &stub.sent()[0];
    assert_eq!(sms.origination_identity.as_deref(), Some(FROM));
    assert_eq!(sms.configuration_set, None);
    assert_eq!(sms.max_price, None);
    assert_eq!(sms.ttl, Some(3600));
}

#[tokio::test]
async fn throttling_is_transient_and_asks_to_slow_down() {
    let stub = SmsStub::start().await;
    let err = failure(&stub, Behavior::Throttle).await;
    assert!(matches!(err, SmsError::Transient { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.is_throttling());
    assert_eq!(err.code(), "ThrottlingException");
}

#[tokio::test]
async fn internal_server_error_is_transient_but_not_throttling() {
    let stub = SmsStub::start().await;
    let err = failure(&stub, Behavior::InternalError).await;
    assert!(matches!(err, SmsError::Transient { .. }), "{err:?}");
    assert!(!err.is_throttling());
    assert_eq!(err.code(), "InternalServerException");
}

#[tokio::test]
async fn a_hanging_provider_is_a_timeout_in_doubt() {
    let stub = SmsStub::start().await;
    let started = Instant::now();
    let err = failure(&stub, Behavior::Hang).await;
    let elapsed = started.elapsed();
    assert!(matches!(err, SmsError::InDoubt { .. }), "{err:?}");
    assert!(
        !err.is_transient(),
        "never retried as if it had not gone out"
    );
    assert!(!err.is_throttling());
    assert_eq!(err.code(), "Timeout");
    // The client's own operation timeout ended the call, not something else.
    assert!(
        elapsed >= CLIENT_OPERATION_TIMEOUT - Duration::from_millis(100),
        "{elapsed:?}"
    );
    assert!(elapsed < CLIENT_OPERATION_TIMEOUT * 4, "{elapsed:?}");
}

#[tokio::test]
async fn an_answer_after_the_timeout_is_in_doubt_because_the_message_went_out() {
    // The provider accepted it but answered too late: the caller cannot tell, so the error
    // says "in doubt" and the send protocol keeps the attempt `sending` (DESIGN §6).
    let stub = SmsStub::start().await;
    stub.push(Behavior::Delay(
        CLIENT_OPERATION_TIMEOUT + Duration::from_secs(1),
    ));
    let err = sender(&stub)
        .send(&promotional("req-1"))
        .await
        .expect_err("timed out");
    assert_eq!(err.code(), "Timeout");
    assert!(matches!(err, SmsError::InDoubt { .. }), "{err:?}");
    assert_eq!(stub.sent().len(), 1);
}

#[tokio::test]
async fn validation_and_access_denied_are_permanent() {
    for (behavior, code) in [
        (
            Behavior::validation("INVALID_PARAMETER"),
            "ValidationException",
        ),
        (Behavior::AccessDenied, "AccessDeniedException"),
    ] {
        let stub = SmsStub::start().await;
        let err = failure(&stub, behavior.clone()).await;
        match &err {
            SmsError::Permanent { code: got, message } => {
                assert_eq!(got, code, "{behavior:?}");
                assert!(
                    !message.is_empty(),
                    "{behavior:?}: the service's message is kept"
                );
            }
            other => panic!("{behavior:?}: expected Permanent, got {other:?}"),
        }
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn a_malformed_destination_is_permanent() {
    let stub = SmsStub::start().await;
    let sms = OutboundSms {
        to: "415-555-0123",
        ..promotional("req-1")
    };
    let err = sender(&stub).send(&sms).await.expect_err("refused");
    assert_eq!(
        err,
        SmsError::Permanent {
            code: "ValidationException".into(),
            message: "DestinationPhoneNumber must be in E.164 format".into()
        }
    );
}

#[tokio::test]
async fn an_opted_out_destination_is_reported_as_such() {
    let stub = SmsStub::start().await;
    let err = failure(&stub, Behavior::OptedOut).await;
    assert_eq!(err, SmsError::OptedOut);
    assert!(!err.is_transient());
    assert_eq!(err.code(), "DESTINATION_PHONE_NUMBER_OPTED_OUT");
}

#[tokio::test]
async fn the_monthly_spend_limit_is_reported_as_such() {
    let stub = SmsStub::start().await;
    let err = failure(&stub, Behavior::SpendLimit).await;
    assert_eq!(err, SmsError::SpendLimitReached);
    assert!(!err.is_transient());
    assert_eq!(err.code(), "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT");
}

#[tokio::test]
async fn a_failure_for_one_destination_leaves_others_alone() {
    let stub = SmsStub::start().await;
    stub.fail_for_destination(TO, Behavior::OptedOut);
    let sender = sender(&stub);
    assert_eq!(
        sender.send(&promotional("req-1")).await,
        Err(SmsError::OptedOut)
    );
    let other = OutboundSms {
        to: "+14165550199",
        ..promotional("req-2")
    };
    let sent = sender.send(&other).await.expect("other destination");
    assert_eq!(stub.sent_to("+14165550199")[0].message_id, sent.message_id);
    assert!(stub.sent_to(TO).is_empty());
}

#[tokio::test]
async fn report_received_records_feedback_for_the_message() {
    let stub = SmsStub::start().await;
    let sender = sender(&stub);
    let sms = OutboundSms {
        message_feedback: true,
        class: MessageClass::Transactional,
        ..promotional("verify-1")
    };
    let sent = sender.send(&sms).await.expect("send");
    assert!(stub.feedback().is_empty());
    sender
        .report_received(&sent.message_id)
        .await
        .expect("feedback");
    assert_eq!(
        stub.feedback(),
        [(sent.message_id.clone(), "RECEIVED".to_owned())]
    );

    // An id the provider never issued is a permanent error, and nothing is recorded.
    let err = sender
        .report_received("no-such-message")
        .await
        .expect_err("unknown id");
    assert!(
        matches!(&err, SmsError::Permanent { code, .. } if code == "ResourceNotFoundException"),
        "{err:?}"
    );
    assert_eq!(stub.feedback().len(), 1);
}

#[tokio::test]
async fn console_sender_returns_distinct_message_ids() {
    let console = ConsoleSender::default();
    let mut ids = BTreeSet::new();
    for n in 0..5 {
        let log_id = format!("req-{n}");
        let sent = console.send(&promotional(&log_id)).await.expect("send");
        assert!(
            ids.insert(sent.message_id.clone()),
            "{} repeated",
            sent.message_id
        );
    }
    // Clones share the sequence, so two handles never hand out the same id.
    let clone = console.clone();
    let sent = clone.send(&promotional("req-x")).await.expect("send");
    assert!(ids.insert(sent.message_id));
    assert_eq!(ids.len(), 6);
    console
        .report_received("console-1")
        .await
        .expect("feedback");
}
