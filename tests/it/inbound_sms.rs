//! `inbound-sms` through its real handler, on moto with the SMS API stub: STOP / START / HELP,
//! shared numbers, once-only processing and replies, malformed input and faults (DESIGN §8).

use aws_lambda_events::event::sns::SnsEvent;
use delivery_status::{DeliveryStatus, RecordOutcome};
use inbound_sms::{
    CONFIRMATION_LATE, CONFIRMATION_SEND_ALLOWANCE, CONFIRMATION_WINDOW, DynamoInboundSms,
    InboundError, InboundOutcome, InboundSms,
};
use integration_tests::conflict::lose_saves;
use integration_tests::events::sns_event;
use integration_tests::iam::Recorder;
use integration_tests::{Behavior, SmsStub, TestEnv};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sms_shared::Config;
use sms_shared::clock::ManualClock;
use sms_shared::keywords::Intent;
use sms_shared::locale::Locale;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::sms::EumSender;
use sms_shared::store::inbound::{inbound_log_id, reply_log_id};
use sms_shared::store::preferences::UPDATE_ATTEMPTS;
use sms_shared::store::receipts::EventKind;
use sms_shared::store::{LogStore, PreferencesStore};
use sms_shared::template;
use std::sync::Arc;

const PHONE: &str = "+14155550123";
const OTHER_PHONE: &str = "+14155550199";
/// `inboundMessageId`s of the sample events.
const STOP_ID: &str = "c0ffee00-0000-4000-8000-000000000000";
const START_ID: &str = "c0ffee00-0000-4000-8000-000000000002";
const HELP_ID: &str = "c0ffee00-0000-4000-8000-000000000003";

struct Fixture {
    env: TestEnv,
    config: Config,
    stub: SmsStub,
    prefs: PreferencesStore,
    log: LogStore,
    clock: Arc<ManualClock>,
    handler: DynamoInboundSms<EumSender>,
    /// The handler's AWS calls, refused when its role in `template.yaml` does not allow them.
    calls: Recorder,
}

/// 30 s after the sample STOP (`events/sns-inbound-stop.json`, published 12:01:00): inside
/// the 5-minute window of every sample's confirmation.
fn now() -> Timestamp {
    "2026-11-25T12:01:30Z".parse().unwrap()
}

async fn fixture_with(extra: &[(&str, &str)]) -> Fixture {
    let env = TestEnv::new().await;
    let mut vars = vec![
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", "+18005550100"),
    ];
    vars.extend_from_slice(extra);
    let config = env.config_with(&vars);
    let calls = Recorder::new("inbound-sms", &env.vars_with(&vars));
    let stub = SmsStub::start().await;
    let clock = Arc::new(ManualClock::new(now()));
    let handler = InboundSms::new(
        &config,
        calls.dynamodb(&env.dynamodb),
        EumSender::new(calls.sms(&stub.client()), &config.sms),
        clock.clone(),
    );
    Fixture {
        calls,
        prefs: PreferencesStore::new(env.dynamodb.clone(), &config.tables.preferences),
        log: LogStore::new(env.dynamodb.clone(), &config.tables.log),
        config,
        stub,
        clock,
        handler,
        env,
    }
}

async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

/// `events/sns-inbound-<name>.json`, optionally with its inbound record edited.
fn event(name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> SnsEvent {
    sns_event(&format!("sns-inbound-{name}.json"), edit)
}

fn sample(name: &str) -> SnsEvent {
    event(name, |_| {})
}

/// A sample as a new inbound message `id`, published by SNS at `published`, edited.
fn edited(
    name: &str,
    id: &str,
    published: &str,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> SnsEvent {
    let mut e = event(name, |m| {
        m.insert("inboundMessageId".into(), json!(id));
        edit(m);
    });
    e.records[0].sns.timestamp = published.parse().unwrap();
    e
}

/// A sample as a new inbound message `id`, published by SNS at `published`.
fn at(name: &str, id: &str, published: &str) -> SnsEvent {
    edited(name, id, published, |_| {})
}

/// A sample with another body (and no `messageKeyword`), as a new inbound message `id`.
fn saying(body: &str, id: &str) -> SnsEvent {
    edited("other", id, "2026-11-25T12:01:00Z", |m| {
        m.insert("messageBody".into(), json!(body));
        m.insert("messageKeyword".into(), json!(""));
    })
}

impl Fixture {
    /// A user with a verified phone who opted in on the web.
    async fn user(&self, user_id: &str, phone: &str) {
        let mut p = Preferences::new(user_id);
        p.phone_number = Some(phone.into());
        p.phone_verified = true;
        p.allow_sms_invitations = true;
        let at: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
        let mut grant =
            ConsentEvent::new(user_id, at, ConsentAction::Grant, ConsentMethod::OptInModal);
        grant.phone_number = p.phone_number.clone();
        grant.apply_to(&mut p.consent);
        self.prefs.save(&mut p, &[grant], at).await.unwrap();
    }

    async fn prefs(&self, user_id: &str) -> Preferences {
        self.prefs.get(user_id).await.unwrap().unwrap()
    }

    async fn history(&self, user_id: &str) -> Vec<ConsentEvent> {
        self.prefs.consent_history(user_id).await.unwrap()
    }

    async fn handle(&self, event: SnsEvent) -> Vec<InboundOutcome> {
        self.handler.handle(event).await.expect("handled")
    }

    async fn raw(&self, id: &str) -> Map<String, Value> {
        self.env.log_item(id).await
    }
}

fn processed(intent: Intent, users_changed: usize, replied: bool) -> InboundOutcome {
    InboundOutcome::Processed {
        intent,
        users_changed,
        replied,
    }
}

#[tokio::test]
async fn stop_from_a_number_shared_by_two_users_revokes_both_and_confirms_once() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.user("u-2", PHONE).await;
    f.user("u-3", OTHER_PHONE).await;

    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 2, true)]
    );
    for user in ["u-1", "u-2"] {
        let p = f.prefs(user).await;
        assert!(!p.has_consent(), "{user}");
        assert_eq!(p.consent.revoked_method, Some(ConsentMethod::SmsKeyword));
        // The revocation dates from when AWS received the STOP (the SNS publish time).
        assert_eq!(
            p.consent.revoked_at,
            Some("2026-11-25T12:01:00Z".parse().unwrap())
        );
        let last = f.history(user).await.pop().unwrap();
        assert_eq!(last.action, ConsentAction::Revoke);
        assert_eq!(last.method, ConsentMethod::SmsKeyword);
        assert_eq!(last.inbound_message_id.as_deref(), Some(STOP_ID));
        assert_eq!(last.phone_number.as_deref(), Some(PHONE));
    }
    assert!(
        f.prefs("u-3").await.has_consent(),
        "another number is untouched"
    );

    let sent = f.stub.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, PHONE);
    assert_eq!(
        sent[0].body,
        template::opt_out_confirmation(&f.config.branding, Locale::En)
    );
    assert_eq!(sent[0].message_type.as_deref(), Some("TRANSACTIONAL"));
    assert_eq!(sent[0].context["logId"], reply_log_id(STOP_ID));

    let reply = f.raw(&reply_log_id(STOP_ID)).await;
    assert_eq!(reply["status"], json!("sent"));
    assert_eq!(reply["providerMessageId"], json!(sent[0].message_id));
    let marker = f.raw(&inbound_log_id(STOP_ID)).await;
    assert_eq!(marker["intent"], json!("opt_out"));
    assert_eq!(marker["phoneNumber"], json!(PHONE));
    assert_eq!(marker["usersChanged"], json!("2"));

    // SNS delivers it again: nothing more happens.
    assert_eq!(f.handle(sample("stop")).await, [InboundOutcome::Duplicate]);
    assert_eq!(f.stub.sent().len(), 1);
    assert_eq!(f.history("u-1").await.len(), 2);
}

#[tokio::test]
async fn plain_language_and_non_english_opt_outs_revoke() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    assert_eq!(
        f.handle(sample("stop-plain")).await,
        [processed(Intent::OptOut, 1, true)]
    );
    assert!(!f.prefs("u-1").await.has_consent());

    let g = fixture().await;
    g.user("u-1", PHONE).await;
    let alto = event("other", |m| {
        m.insert("messageBody".into(), json!("ALTO!"));
    });
    assert_eq!(g.handle(alto).await, [processed(Intent::OptOut, 1, true)]);
}

/// What the provider (End User Messaging, or the toll-free carrier) sends by itself for each
/// sample, by setting: the STOP sample (`messageKeyword` STOP) when it answers STOP, the HELP
/// sample when it answers HELP, and never the plain-language opt-out, which it does not
/// recognise as a keyword.
fn provider_answers(sample: &str, stop: bool, help: bool) -> bool {
    match sample {
        "stop" => stop,
        "stop-plain" => false,
        "help" => help,
        other => panic!("no rule for {other}"),
    }
}

/// DESIGN §8: no keyword is ever answered twice, and none goes unanswered. For every
/// combination of the two settings and each of STOP, a plain-language opt-out and HELP,
/// the provider's answer (per the table above) and ours add up to exactly one.
#[tokio::test]
async fn every_keyword_gets_exactly_one_answer_whoever_answers_it() {
    for stop in [false, true] {
        for help in [false, true] {
            let settings = [
                ("PROVIDER_ANSWERS_STOP", if stop { "true" } else { "false" }),
                ("PROVIDER_ANSWERS_HELP", if help { "true" } else { "false" }),
            ];
            let f = fixture_with(&settings).await;
            f.user("u-1", PHONE).await;
            for name in ["stop", "stop-plain", "help"] {
                let case = format!("{name} with {settings:?}");
                let before = f.stub.sent_to(PHONE).len();
                let outcome = f.handle(sample(name)).await;
                let ours = f.stub.sent_to(PHONE)[before..].to_vec();
                let theirs = provider_answers(name, stop, help);
                assert_eq!(ours.len() + usize::from(theirs), 1, "{case}: ours {ours:?}");
                let expected = match name {
                    "help" => template::help_text(&f.config.branding, Locale::En),
                    _ => template::opt_out_confirmation(&f.config.branding, Locale::En),
                };
                if let Some(sent) = ours.first() {
                    assert_eq!(sent.body, expected, "{case}");
                }
                let InboundOutcome::Processed { replied, .. } = outcome[0] else {
                    panic!("{case}: {outcome:?}")
                };
                assert_eq!(replied, !theirs, "{case}");
                // Left to the provider: no reply record at all.
                let id = serde_json::from_str::<Value>(&sample(name).records[0].sns.message)
                    .unwrap()["inboundMessageId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(f.raw(&reply_log_id(&id)).await.is_empty(), theirs, "{case}");
            }
            // The opt-outs were applied whoever answered them.
            assert!(!f.prefs("u-1").await.has_consent());
            assert!(f.calls.denied().is_empty());
        }
    }
}

/// START and UNSTOP registered as opt-in keywords (`PROVIDER_ANSWERS_START`): AWS sends their
/// keyword message, so we do not; an opt-in it does not know (COMENZAR) is confirmed by us.
#[tokio::test]
async fn an_opt_in_keyword_the_provider_answers_is_not_confirmed_twice() {
    let f = fixture_with(&[("PROVIDER_ANSWERS_START", "true")]).await;
    f.user("u-1", PHONE).await;
    f.handle(sample("stop")).await;
    assert_eq!(f.stub.sent().len(), 1, "the STOP confirmation");
    assert_eq!(
        f.handle(sample("start")).await,
        [processed(Intent::OptIn, 1, false)]
    );
    assert!(f.prefs("u-1").await.has_consent(), "granted all the same");
    assert_eq!(f.stub.sent().len(), 1, "AWS confirms START itself");

    f.handle(sample("stop")).await; // a duplicate: nothing
    let stop_again = at(
        "stop",
        "c0ffee00-0000-4000-8000-0000000000a1",
        "2026-11-25T12:01:10Z",
    );
    f.handle(stop_again).await;
    let comenzar = edited(
        "start",
        "c0ffee00-0000-4000-8000-0000000000a2",
        "2026-11-25T12:01:20Z",
        |m| {
            m.insert("messageKeyword".into(), json!(""));
            m.insert("messageBody".into(), json!("COMENZAR"));
        },
    );
    assert_eq!(
        f.handle(comenzar).await,
        [processed(Intent::OptIn, 1, true)]
    );
    let last = f.stub.sent().pop().unwrap();
    assert_eq!(
        last.body,
        template::opt_in_confirmation(&f.config.branding, Locale::Es)
    );
}

#[tokio::test]
async fn start_re_grants_consent_to_every_user_of_the_number() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.user("u-2", PHONE).await;
    f.handle(sample("stop")).await;

    assert_eq!(
        f.handle(sample("start")).await,
        [processed(Intent::OptIn, 2, true)]
    );
    for user in ["u-1", "u-2"] {
        let p = f.prefs(user).await;
        assert!(p.has_consent(), "{user}");
        assert_eq!(p.consent.method, Some(ConsentMethod::SmsKeyword));
        let last = f.history(user).await.pop().unwrap();
        assert_eq!(last.action, ConsentAction::Grant);
        assert_eq!(last.inbound_message_id.as_deref(), Some(START_ID));
    }
    let sent = f.stub.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].body,
        template::opt_in_confirmation(&f.config.branding, Locale::En)
    );

    assert_eq!(f.handle(sample("start")).await, [InboundOutcome::Duplicate]);
    assert_eq!(f.stub.sent().len(), 2);
    assert_eq!(f.history("u-1").await.len(), 3);
}

#[tokio::test]
async fn a_start_older_than_the_stop_does_not_undo_it() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.handle(sample("stop")).await;
    // Sent a minute before the STOP, delivered after it (inbound SMS are unordered).
    let mut late_start = sample("start");
    late_start.records[0].sns.timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    assert_eq!(
        f.handle(late_start).await,
        [processed(Intent::OptIn, 0, false)]
    );
    assert!(!f.prefs("u-1").await.has_consent());
    assert_eq!(f.stub.sent().len(), 1, "only the STOP confirmation");
}

#[tokio::test]
async fn start_does_not_subscribe_a_user_who_never_consented() {
    let f = fixture().await;
    let mut p = Preferences::new("u-1");
    p.phone_number = Some(PHONE.into());
    f.prefs.save(&mut p, &[], now()).await.unwrap();
    assert_eq!(
        f.handle(sample("start")).await,
        [processed(Intent::OptIn, 0, false)]
    );
    assert!(!f.prefs("u-1").await.has_consent());
    assert!(f.stub.sent().is_empty());
}

#[tokio::test]
async fn help_is_answered_once_however_often_it_is_delivered() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    let copies = (0..4).map(|_| f.handler.handle(sample("help")));
    let results = futures_util::future::join_all(copies).await;
    // Concurrent copies: one sends; the others find it done, or busy (and are retried).
    for result in &results {
        assert!(
            matches!(result, Ok(_) | Err(InboundError::ReplyBusy(_))),
            "{result:?}"
        );
    }
    // Lambda retries whatever failed; afterwards every copy is a duplicate.
    f.handle(sample("help")).await;
    assert_eq!(f.handle(sample("help")).await, [InboundOutcome::Duplicate]);

    let sent = f.stub.sent_to(PHONE);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body,
        template::help_text(&f.config.branding, Locale::En)
    );
    assert!(sent[0].body.contains("Msg & data rates may apply"));
    assert!(
        f.prefs("u-1").await.has_consent(),
        "HELP changes no consent"
    );
    assert_eq!(
        f.raw(&inbound_log_id(HELP_ID)).await["intent"],
        json!("help")
    );
}

#[tokio::test]
async fn other_messages_are_recorded_and_not_answered() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    assert_eq!(
        f.handle(sample("other")).await,
        [processed(Intent::Other, 0, false)]
    );
    assert!(f.stub.sent().is_empty());
    assert!(f.prefs("u-1").await.has_consent());
    let marker = f
        .raw(&inbound_log_id("c0ffee00-0000-4000-8000-000000000004"))
        .await;
    assert_eq!(marker["intent"], json!("other"));
    assert_eq!(marker["body"], json!("see you at the battle tonight 👍"));
}

#[tokio::test]
async fn a_transient_send_failure_fails_the_invocation_and_the_retry_completes_it() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.stub.push(Behavior::Throttle);
    let err = f.handler.handle(sample("stop")).await.unwrap_err();
    assert!(matches!(err, InboundError::Sms(_)), "{err}");
    // The opt-out itself is already in place; only the marker waits for the retry.
    assert!(!f.prefs("u-1").await.has_consent());
    assert!(f.raw(&inbound_log_id(STOP_ID)).await.is_empty());
    assert_eq!(
        f.raw(&reply_log_id(STOP_ID)).await["status"],
        json!("retry")
    );

    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 0, true)]
    );
    assert_eq!(f.stub.sent().len(), 1);
    assert_eq!(f.history("u-1").await.len(), 2, "one revocation, not two");
    assert_eq!(f.handle(sample("stop")).await, [InboundOutcome::Duplicate]);
}

#[tokio::test]
async fn a_refused_reply_is_recorded_and_not_retried() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.stub.fail_for_destination(PHONE, Behavior::OptedOut);
    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 1, false)]
    );
    assert!(!f.prefs("u-1").await.has_consent());
    // Recorded as every outbound message records a carrier opt-out (sms_shared::outbound).
    let reply = f.raw(&reply_log_id(STOP_ID)).await;
    assert_eq!(reply["status"], json!("suppressed"));
    assert_eq!(reply["reason"], json!("carrier_opted_out"));
    assert_eq!(f.handle(sample("stop")).await, [InboundOutcome::Duplicate]);
}

#[tokio::test]
async fn malformed_messages_are_skipped_without_writes() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    let cases = [
        event("stop", |m| {
            m.remove("inboundMessageId");
        }),
        event("stop", |m| {
            m.insert("originationNumber".into(), json!("not a number"));
        }),
        event("stop", |m| {
            m.insert("messageBody".into(), json!({"text": "STOP"}));
        }),
        {
            let mut e = sample("stop");
            e.records[0].sns.message = "STOP".into();
            e
        },
    ];
    for case in cases {
        assert_eq!(f.handle(case).await, [InboundOutcome::Malformed]);
    }
    assert!(f.prefs("u-1").await.has_consent());
    assert!(f.stub.sent().is_empty());
    assert!(f.raw(&inbound_log_id(STOP_ID)).await.is_empty());
}

#[tokio::test]
async fn a_dynamodb_fault_fails_the_invocation() {
    let f = fixture().await;
    let broken = f.env.config_with(&[
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", "+18005550100"),
        ("LOG_TABLE", "no-such-table"),
    ]);
    let handler = InboundSms::new(
        &broken,
        f.env.dynamodb.clone(),
        EumSender::new(f.stub.client(), &broken.sms),
        f.clock.clone(),
    );
    let err = handler.handle(sample("stop")).await.unwrap_err();
    assert!(matches!(err, InboundError::Store(_)), "{err}");
    assert!(f.stub.sent().is_empty());
}

#[tokio::test]
async fn replies_take_delivery_receipts_like_any_message() {
    let f = fixture().await;
    f.handle(sample("help")).await;
    let sent = f.stub.sent();
    let path = format!(
        "{}/../events/sns-delivery-delivered.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut receipt: SnsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut message: Value = serde_json::from_str(&receipt.records[0].sns.message).unwrap();
    message["context"] = json!(sent[0].context);
    message["messageId"] = json!(sent[0].message_id);
    receipt.records[0].sns.message = message.to_string();

    let delivery_calls = Recorder::new("delivery-status", &f.env.vars_with(&[]));
    let delivery = DeliveryStatus::new(
        &f.config,
        delivery_calls.dynamodb(&f.env.dynamodb),
        f.clock.clone(),
    );
    assert_eq!(
        delivery.handle(receipt).await.unwrap(),
        [RecordOutcome::Applied(EventKind::Delivered)]
    );
    let reply = f.raw(&reply_log_id(HELP_ID)).await;
    assert_eq!(reply["status"], json!("delivered"));
    assert_eq!(reply["priceMicros"], json!("5810"));
    let _ = &f.log;
    assert!(f.calls.denied().is_empty() && delivery_calls.denied().is_empty());
}

#[tokio::test]
async fn a_stop_under_contention_is_retried_until_applied_and_never_marked_processed_before() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    // Another writer wins every save of this user's preferences for longer than one
    // invocation's budget (UPDATE_ATTEMPTS), then a few more times into Lambda's retry.
    let lost = UPDATE_ATTEMPTS + 2;
    let (contended, conflicts) = lose_saves(&f.calls.dynamodb(&f.env.dynamodb), lost);
    let handler = InboundSms::new(
        &f.config,
        contended,
        EumSender::new(f.calls.sms(&f.stub.client()), &f.config.sms),
        f.clock.clone(),
    );

    let err = handler.handle(sample("stop")).await.unwrap_err();
    assert!(matches!(err, InboundError::Contended), "{err}");
    assert_eq!(conflicts.caused(), UPDATE_ATTEMPTS);
    assert!(f.prefs("u-1").await.has_consent(), "not applied yet");
    assert!(
        f.raw(&inbound_log_id(STOP_ID)).await.is_empty(),
        "a STOP not applied is never marked processed"
    );
    assert!(
        f.stub.sent().is_empty(),
        "no confirmation of an unapplied STOP"
    );
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "PreferencesContended");

    // Lambda's retry: the writer is still there twice more, then the STOP goes through.
    f.clock.advance(jiff::SignedDuration::from_mins(1));
    let outcomes = handler.handle(sample("stop")).await.expect("retried STOP");
    assert_eq!(
        outcomes,
        [InboundOutcome::Processed {
            intent: Intent::OptOut,
            users_changed: 1,
            replied: true
        }]
    );
    assert_eq!(conflicts.caused(), lost);
    assert!(!f.prefs("u-1").await.has_consent());
    assert_eq!(
        f.raw(&inbound_log_id(STOP_ID)).await["usersChanged"],
        json!("1")
    );
    let revocations: Vec<_> = f
        .history("u-1")
        .await
        .into_iter()
        .filter(|e| e.action == ConsentAction::Revoke)
        .collect();
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(f.stub.sent().len(), 1, "one confirmation");
    assert!(f.calls.denied().is_empty());
}

#[tokio::test]
async fn a_reply_whose_answer_was_lost_is_never_sent_twice() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    // The provider never answers the confirmation: maybe sent. The STOP itself is in place;
    // the invocation fails, so Lambda retries it.
    f.stub.push(Behavior::Hang);
    let err = f.handler.handle(sample("stop")).await.unwrap_err();
    assert!(matches!(err, InboundError::Sms(_)), "{err}");
    assert!(!f.prefs("u-1").await.has_consent());
    assert_eq!(
        f.raw(&reply_log_id(STOP_ID)).await["status"],
        json!("sending")
    );
    assert!(f.raw(&inbound_log_id(STOP_ID)).await.is_empty());

    // Lambda's retry: the reply is in doubt and a confirmation is only worth sending at once,
    // so it ends `unknown` instead of going out again; the message is marked processed.
    f.clock.advance(jiff::SignedDuration::from_mins(1));
    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 0, false)]
    );
    assert_eq!(f.stub.requests(), 1, "one SendTextMessage call, not two");
    let reply = f.raw(&reply_log_id(STOP_ID)).await;
    assert_eq!(reply["status"], json!("unknown"));
    assert_eq!(reply["sendAttempts"], json!("1"));
    assert!(!f.raw(&inbound_log_id(STOP_ID)).await.is_empty());
    assert!(f.calls.denied().is_empty());
}

// ---- the 5-minute rule (DESIGN §8) ----

/// Past `CONFIRMATION_WINDOW` less the send's allowance after the inbound message (SNS's
/// publish time), a confirmation is recorded `confirmation_late` and never sent; a second
/// before that instant it is sent (at the instant itself no call may start any more: the
/// protocol checks the deadline again right before the call). The opt-out is applied either
/// way.
#[tokio::test]
async fn a_stop_confirmation_is_sent_only_while_it_can_arrive_within_five_minutes() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.user("u-2", OTHER_PHONE).await;
    let published: Timestamp = "2026-11-25T12:01:00Z".parse().unwrap();
    let last_start = published + CONFIRMATION_WINDOW - CONFIRMATION_SEND_ALLOWANCE;

    // A second before the last instant: sent.
    f.clock.set(last_start - jiff::SignedDuration::from_secs(1));
    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 1, true)]
    );
    assert_eq!(f.stub.sent_to(PHONE).len(), 1);

    // One millisecond later: the STOP is honoured, the confirmation is not sent.
    f.clock
        .set(last_start + jiff::SignedDuration::from_millis(1));
    let late = edited("stop", "late-1", "2026-11-25T12:01:00Z", |m| {
        m.insert("originationNumber".into(), json!(OTHER_PHONE));
    });
    assert_eq!(f.handle(late).await, [processed(Intent::OptOut, 1, false)]);
    assert!(!f.prefs("u-2").await.has_consent(), "revoked all the same");
    assert!(f.stub.sent_to(OTHER_PHONE).is_empty(), "never sent late");
    let reply = f.raw(&reply_log_id("late-1")).await;
    assert_eq!(reply["status"], json!("suppressed"));
    assert_eq!(reply["reason"], json!(CONFIRMATION_LATE));
    assert_eq!(reply["phoneNumber"], json!(OTHER_PHONE));
    assert_eq!(
        reply["body"],
        json!(template::opt_out_confirmation(
            &f.config.branding,
            Locale::En
        )),
        "the record keeps what would have been sent"
    );
    assert!(
        !f.raw(&inbound_log_id("late-1")).await.is_empty(),
        "processed"
    );
    assert!(f.calls.denied().is_empty());
}

/// The bad day of the issue: the confirmation's send fails, and Lambda's retry comes after
/// the window (retries run for up to 6 h; a dead-letter replay later still). The retry
/// finishes the STOP and records the confirmation late; nothing is sent hours later.
#[tokio::test]
async fn a_retry_or_replay_hours_later_never_sends_the_confirmation() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.stub.push(Behavior::Throttle);
    let err = f.handler.handle(sample("stop")).await.unwrap_err();
    assert!(matches!(err, InboundError::Sms(_)), "{err}");
    assert!(!f.prefs("u-1").await.has_consent());

    f.clock.advance(jiff::SignedDuration::from_hours(6));
    assert_eq!(
        f.handle(sample("stop")).await,
        [processed(Intent::OptOut, 0, false)]
    );
    assert_eq!(f.stub.requests(), 1, "only the throttled attempt");
    let reply = f.raw(&reply_log_id(STOP_ID)).await;
    assert_eq!(reply["status"], json!("suppressed"));
    assert_eq!(reply["reason"], json!(CONFIRMATION_LATE));
    assert!(!f.raw(&inbound_log_id(STOP_ID)).await.is_empty());

    // A replay from the dead-letter queue: a duplicate, still nothing sent.
    assert_eq!(f.handle(sample("stop")).await, [InboundOutcome::Duplicate]);
    assert_eq!(f.stub.requests(), 1);
}

/// START's confirmation keeps the same rule; HELP is an answer to a question, still true
/// later, and has no deadline.
#[tokio::test]
async fn a_late_start_is_granted_but_not_confirmed_and_help_has_no_deadline() {
    let f = fixture().await;
    f.user("u-1", PHONE).await;
    f.handle(sample("stop")).await;
    assert_eq!(f.stub.sent().len(), 1);

    f.clock.set("2026-11-25T13:00:00Z".parse().unwrap());
    assert_eq!(
        f.handle(sample("start")).await,
        [processed(Intent::OptIn, 1, false)]
    );
    assert!(f.prefs("u-1").await.has_consent(), "granted all the same");
    let reply = f.raw(&reply_log_id(START_ID)).await;
    assert_eq!(reply["reason"], json!(CONFIRMATION_LATE));

    assert_eq!(
        f.handle(sample("help")).await,
        [processed(Intent::Help, 0, true)]
    );
    assert_eq!(
        f.stub.sent().len(),
        2,
        "the STOP confirmation and the help text"
    );
}

// ---- languages (DESIGN §8) ----

/// A user with `locale`.
async fn speaks(f: &Fixture, user: &str, locale: &str) {
    let mut p = f.prefs(user).await;
    p.locale = Some(locale.into());
    f.prefs.save(&mut p, &[], now()).await.unwrap();
}

/// Keyword replies speak the language of the keyword: PARAR and a Spanish sentence are
/// confirmed in Spanish, AYUDA is answered in Spanish, STOP in English, whatever the user's
/// own locale; a message with no words (🛑) in the user's locale.
#[tokio::test]
async fn replies_speak_the_language_of_the_keyword_else_the_users() {
    let f = fixture().await;
    f.user("u-en", PHONE).await;
    f.user("u-es", OTHER_PHONE).await;
    speaks(&f, "u-es", "es").await;
    let es = |f: &Fixture| template::opt_out_confirmation(&f.config.branding, Locale::Es);
    let en = |f: &Fixture| template::opt_out_confirmation(&f.config.branding, Locale::En);
    let last_to = |f: &Fixture, to: &str| f.stub.sent_to(to).pop().expect("a reply").body;

    // PARAR from an English speaker: Spanish.
    f.handle(saying("PARAR", "lang-1")).await;
    assert_eq!(last_to(&f, PHONE), es(&f));
    assert!(!f.prefs("u-en").await.has_consent());

    // STOP from a Spanish speaker: English (the keyword's language).
    f.handle(edited("stop", "lang-2", "2026-11-25T12:01:00Z", |m| {
        m.insert("originationNumber".into(), json!(OTHER_PHONE));
    }))
    .await;
    assert_eq!(last_to(&f, OTHER_PHONE), en(&f));

    // No words at all: the user's own locale.
    f.handle(edited("other", "lang-3", "2026-11-25T12:01:00Z", |m| {
        m.insert("originationNumber".into(), json!(OTHER_PHONE));
        m.insert("messageBody".into(), json!("🛑"));
    }))
    .await;
    assert_eq!(last_to(&f, OTHER_PHONE), es(&f));

    // AYUDA: the Spanish help text.
    f.handle(saying("AYUDA", "lang-4")).await;
    let help = last_to(&f, PHONE);
    assert_eq!(help, template::help_text(&f.config.branding, Locale::Es));
    assert!(
        help.contains("Pueden aplicarse tarifas de mensajes y datos"),
        "{help}"
    );
    // GSM-7 (the accents folded), one or two segments.
    for body in [es(&f), help] {
        let count = sms_shared::segments::count(&body);
        assert_eq!(
            count.encoding,
            sms_shared::segments::Encoding::Gsm7,
            "{body}"
        );
        assert!(count.segments <= 2, "{body}");
    }
}

/// Spanish plain-language opt-outs are honoured as the English ones are, and confirmed in
/// Spanish even when AWS answers the keywords it recognises (it does not recognise these).
#[tokio::test]
async fn a_spanish_sentence_opts_out_and_is_confirmed_in_spanish_even_when_aws_answers_stop() {
    let f = fixture_with(&[
        ("PROVIDER_ANSWERS_STOP", "true"),
        ("PROVIDER_ANSWERS_HELP", "true"),
    ])
    .await;
    f.user("u-1", PHONE).await;
    let spanish = sample("stop-es");
    assert_eq!(
        f.handle(spanish).await,
        [processed(Intent::OptOut, 1, true)]
    );
    assert!(!f.prefs("u-1").await.has_consent());
    let last = f.history("u-1").await.pop().unwrap();
    assert_eq!(last.action, ConsentAction::Revoke);
    assert_eq!(last.method, ConsentMethod::SmsKeyword);
    assert_eq!(
        f.stub.sent_to(PHONE)[0].body,
        template::opt_out_confirmation(&f.config.branding, Locale::Es)
    );
    // AYUDA is not AWS's HELP keyword either.
    f.handle(saying("AYUDA", "es-help")).await;
    assert_eq!(
        f.stub.sent_to(PHONE)[1].body,
        template::help_text(&f.config.branding, Locale::Es)
    );
}

/// The HELP text: brand, frequency, "Msg & data rates may apply", STOP, and the support
/// contacts of the configuration (URL, e-mail, phone), in both languages.
#[tokio::test]
async fn the_help_text_names_the_configured_support_contacts() {
    let f = fixture_with(&[
        ("BRAND_NAME", "WordBattle"),
        ("MESSAGE_FREQUENCY", "Up to 10 msgs/day"),
        ("SUPPORT_URL", "https://example.com/help/sms"),
        ("SUPPORT_EMAIL", "help@example.com"),
        ("SUPPORT_PHONE", "+1 800 555 0100"),
    ])
    .await;
    f.handle(sample("help")).await;
    f.handle(saying("AYUDA", "help-es")).await;
    let sent = f.stub.sent_to(PHONE);
    let english = &sent[0].body;
    for part in [
        "WordBattle",
        "Up to 10 msgs/day",
        "Msg & data rates may apply",
        "Reply STOP to cancel",
        "https://example.com/help/sms",
        "help@example.com",
        "+1 800 555 0100",
    ] {
        assert!(english.contains(part), "{part:?} in {english:?}");
    }
    let spanish = &sent[1].body;
    for part in [
        "WordBattle",
        "Responde STOP para cancelar",
        "https://example.com/help/sms",
        "help@example.com",
        "+1 800 555 0100",
    ] {
        assert!(spanish.contains(part), "{part:?} in {spanish:?}");
    }
}
