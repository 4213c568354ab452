//! The IAM contract (DESIGN §10): each function's role in `template.yaml` allows exactly the
//! calls its code makes, as AWS evaluates them, no more and no fewer.
//!
//! The local servers enforce no IAM, so every fixture's clients carry a recorder
//! (`integration_tests::iam`) that refuses what the template does not grant and writes each
//! call to `target/<profile>/iam-calls/`. This test:
//!
//! 1. drives a representative scenario of each function itself, through its real handler,
//!    covering every code path that makes a distinct AWS call (the list is in each test), so
//!    the check does not depend on which other tests ran before it;
//! 2. fails when a recorded call needs an access no statement of the function's role allows:
//!    the scenario's calls and every call the suite recorded (the other modules of this test
//!    binary, this run and earlier runs of the same build, and other test binaries such as
//!    `functions/sender`'s, when they are still the current build);
//! 3. fails when a grant of the role is needed by no call of the scenario (unused, or only
//!    allowing what another grant allows), except the grants of [`NEEDED_BY_AWS`];
//! 4. checks that removing any statement of the role denies one of the scenario's calls.
//!
//! Failures name the function, the call and the missing or unneeded statement.

use crate::api_common::{Api, as_user, code_in};
use delivery_status::{CONTEXT_LOG_ID, DeliveryStatus};
use inbound_sms::InboundSms;
use integration_tests::conflict::lose_saves;
use integration_tests::events::sns_event;
use integration_tests::iam::{Call, Finding, Grant, Recorder, Role, findings, report, suite_calls};
use integration_tests::sender_fixture::{Fixture, consented_number, invitation, request};
use integration_tests::sqs::deliver;
use integration_tests::template::shared_template;
use integration_tests::{Behavior, SmsStub, TestEnv};
use jiff::{SignedDuration, Timestamp};
use sender::Disposition;
use serde_json::json;
use sms_shared::clock::ManualClock;
use sms_shared::kinds::MessageKind;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::sms::EumSender;
use sms_shared::store::{Claim, Finish, LogStore, NewLogRecord, PreferencesStore};
use std::sync::Arc;

/// The configuration set every deployed send names (`CONFIGURATION_SET: !Ref
/// SmsConfigurationSet` in Globals): the scenarios name one too, so IAM checks it.
const CONFIGURATION_SET: (&str, &str) = ("CONFIGURATION_SET", "sms-local-config");
const PHONE: &str = "+14155550123";

/// Grants no code path uses, because AWS uses them with the function's role: (function,
/// action, the resource's logical id, why).
const NEEDED_BY_AWS: &[(&str, &str, &str, &str)] = &[
    // Lambda's SQS event source mapping polls, deletes and reads the queue with the
    // function's role (the code only answers batchItemFailures).
    (
        "sender",
        "sqs:ReceiveMessage",
        "TransactionalQueue",
        "event source mapping",
    ),
    (
        "sender",
        "sqs:ReceiveMessage",
        "NotificationsQueue",
        "event source mapping",
    ),
    (
        "sender",
        "sqs:DeleteMessage",
        "TransactionalQueue",
        "event source mapping",
    ),
    (
        "sender",
        "sqs:DeleteMessage",
        "NotificationsQueue",
        "event source mapping",
    ),
    (
        "sender",
        "sqs:GetQueueAttributes",
        "TransactionalQueue",
        "event source mapping",
    ),
    (
        "sender",
        "sqs:GetQueueAttributes",
        "NotificationsQueue",
        "event source mapping",
    ),
    // SAM's SQSSendMessagePolicy for the on-failure destination: Lambda sends an event that
    // failed all its retries there with the function's role.
    (
        "delivery-status",
        "sqs:SendMessage*",
        "DeliveryStatusDlq",
        "on-failure destination",
    ),
    (
        "inbound-sms",
        "sqs:SendMessage*",
        "InboundSmsDlq",
        "on-failure destination",
    ),
];

fn needed_by_aws(function: &str) -> impl Fn(&Grant) -> bool + '_ {
    move |grant| {
        NEEDED_BY_AWS.iter().any(|(f, action, resource, _)| {
            *f == function && grant.action == *action && grant.written.contains(resource)
        })
    }
}

/// Checks `function`'s role against what its scenario called (and what the suite recorded).
fn check_role(function: &str, scenario: &[Call]) {
    let role = Role::of(shared_template(), function);
    assert!(
        !scenario.is_empty(),
        "{function}: the scenario made no call"
    );
    let excused = needed_by_aws(function);
    let mut problems = findings(&role, scenario, &excused);

    // What the rest of the suite called must be allowed too (it was refused at the call, but a
    // handler may have swallowed the refusal).
    let (suite, binaries) = suite_calls();
    for f in findings(&role, &suite, |_| true) {
        if matches!(f, Finding::Denied { .. }) && !problems.contains(&f) {
            problems.push(f);
        }
    }
    assert!(
        problems.is_empty(),
        "IAM contract of {function} (template.yaml; suite recordings of {binaries:?}):\n{}",
        report(&role, &problems)
    );

    // Every statement is load-bearing: without it, some call of the scenario is denied.
    for statement in role.statements() {
        let without = role.without_statement(&statement);
        let denied = findings(&without, scenario, &excused)
            .into_iter()
            .any(|f| matches!(f, Finding::Denied { .. }));
        let only_aws = role
            .grants
            .iter()
            .filter(|g| g.statement == statement)
            .all(&excused);
        assert!(
            denied || only_aws,
            "{function}: removing statement `{statement}` denies no call of the scenario"
        );
    }
}

/// opt-in-api: JWT key at cold start; GET prompt (first view records `prompt_shown_at`), POST
/// opt_in (consent grant: transaction), GET and PATCH preferences; after the verification,
/// the switch off and an opt-in on the verified number (its confirmation: claim, attempt,
/// send, outcome).
/// verify-api: both keys at cold start; start (the pending code, preferences and spend in one
/// batch read; the code, its windows, budget reservation and log record in one transaction;
/// send, outcome), a wrong check (attempt counter), the right check (its first save lost to
/// another writer and the preferences read again; consume, binding the pending grant and the
/// confirmation's record: transaction; the code's message id read; message feedback; the
/// confirmation's outcome).
#[tokio::test]
async fn api_roles_allow_exactly_what_the_api_functions_call() {
    let mut api = Api::with(&[CONFIGURATION_SET]).await;
    let user = "u-iam";
    let ok = |status: u16, what: &str| assert!(status < 300, "{what}: {status}");
    ok(
        api.call(as_user("http-opt-in-get", user, None))
            .await
            .status,
        "GET opt-in",
    );
    let opt_in = json!({"action": "opt_in"});
    ok(
        api.call(as_user("http-opt-in-post", user, Some(opt_in)))
            .await
            .status,
        "POST opt-in",
    );
    ok(
        api.call(as_user("http-preferences-get", user, None))
            .await
            .status,
        "GET preferences",
    );
    let patch = json!({"sms_battle_results": false, "time_zone": "America/Chicago"});
    ok(
        api.call(as_user("http-preferences-patch", user, Some(patch)))
            .await
            .status,
        "PATCH preferences",
    );

    let start = json!({"phone_number": PHONE});
    let started = api
        .call(as_user("http-verification-start", user, Some(start)))
        .await;
    ok(started.status, "start verification");
    let code = code_in(&api.stub.sent_to(PHONE).last().expect("a code").body);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = api
        .call(as_user(
            "http-verification-check",
            user,
            Some(json!({ "code": wrong })),
        ))
        .await;
    assert_eq!(refused.status, 422);
    api.lose_verify_saves(1);
    let checked = api
        .call(as_user(
            "http-verification-check",
            user,
            Some(json!({ "code": code })),
        ))
        .await;
    ok(checked.status, "check verification");
    assert!(
        api.prefs(user)
            .await
            .is_some_and(|p| p.phone_verified && p.has_consent()),
        "verified, the pending grant bound"
    );
    // A new grant a minute later (its confirmation is named after its time).
    api.clock.advance(SignedDuration::from_mins(1));
    let off = json!({"allow_sms_invitations": false});
    ok(
        api.call(as_user("http-preferences-patch", user, Some(off)))
            .await
            .status,
        "PATCH switch off",
    );
    let opt_in = json!({"action": "opt_in"});
    ok(
        api.call(as_user("http-opt-in-post", user, Some(opt_in)))
            .await
            .status,
        "POST opt-in on the verified number",
    );
    let confirmations = api
        .stub
        .sent_to(PHONE)
        .into_iter()
        .filter(|s| {
            s.context
                .get("logId")
                .is_some_and(|id| id.starts_with("optin#"))
        })
        .count();
    assert_eq!(confirmations, 2, "the bound grant's and the new grant's");

    check_role("opt-in-api", &api.opt_in_calls.calls());
    check_role("verify-api", &api.verify_calls.calls());
}

/// sender: the batch read (preferences and spend), claims and outcomes, the daily cap
/// counter, a Florida number's rolling window (read and conditional put), a send, a
/// duplicate, a quiet-hours deferral (visibility), a carrier opt-out (users by number, the
/// revocation, a lost race and its re-read), invalid bodies from both queues (dead-letter
/// queues).
#[tokio::test]
async fn sender_role_allows_exactly_what_the_sender_calls() {
    let env = TestEnv::new().await;
    let (racing, conflicts) = lose_saves(&env.dynamodb, 1);
    let f = Fixture::with_dynamodb(env, &[CONFIGURATION_SET], Some(racing)).await;

    f.opted_in_user("u-send", PHONE, None).await;
    for expected in [sender::Outcome::Sent, sender::Outcome::Duplicate] {
        let got = f
            .outcomes(&f.notifications(), &[invitation("iam-1", "u-send")])
            .await;
        assert_eq!(got, [expected]);
    }
    let alert = request("iam-alert", MessageKind::SecurityAlert, "u-send");
    f.outcomes(&f.transactional(), &[alert]).await;

    f.save_user("u-miami", |p| consented_number(p, "+13055550123"))
        .await;
    let fl = f
        .outcomes(&f.notifications(), &[invitation("iam-fl", "u-miami")])
        .await;
    assert_eq!(fl, [sender::Outcome::Sent]);

    f.opted_in_user("u-opted-out", "+14155550188", None).await;
    f.stub
        .fail_for_destination("+14155550188", Behavior::OptedOut);
    f.outcomes(&f.notifications(), &[invitation("iam-oo", "u-opted-out")])
        .await;
    assert_eq!(conflicts.caused(), 1, "the revocation lost one race");
    assert!(
        !f.prefs
            .get("u-opted-out")
            .await
            .unwrap()
            .unwrap()
            .consent
            .given
    );

    for queue in [f.notifications(), f.transactional()] {
        f.outcomes(&queue, &["not json".to_owned()]).await;
    }

    // 23:00 in Chicago: deferred until 08:00.
    f.clock.set("2026-11-26T05:00:00Z".parse().unwrap());
    f.opted_in_user("u-night", "+14155550177", Some("America/Chicago"))
        .await;
    let night = f
        .outcomes(&f.notifications(), &[invitation("iam-night", "u-night")])
        .await;
    assert!(
        matches!(night[..], [sender::Outcome::Deferred { .. }]),
        "{night:?}"
    );

    // Records that come back later (functions/sender/src/queues.rs): a transient refusal of a
    // security alert is handed back to come again soon; a record received again while it
    // still waits (for its window, for the receipt of an attempt in doubt) waits as a copy.
    f.stub.push(Behavior::InternalError);
    let alert = request("iam-retry", MessageKind::SecurityAlert, "u-send");
    let retried = f.outcomes(&f.transactional(), &[alert]).await;
    assert_eq!(
        retried,
        [sender::Outcome::Retry {
            reason: "provider_transient"
        }]
    );
    f.stub.push(Behavior::Hang);
    let waiting = [
        (f.notifications(), invitation("iam-night-2", "u-night")),
        (
            f.transactional(),
            request("iam-doubt", MessageKind::SecurityAlert, "u-send"),
        ),
    ];
    for (queue, body) in waiting {
        let first = deliver(&f.env, &queue, &[body]).await.remove(0);
        let settled = f.settle_as_lambda(&queue, &first).await;
        assert_eq!(settled[0].disposition, Disposition::HandBack, "{settled:?}");
        let again = f.receive_again(&queue, &first).await;
        let settled = f.settle_as_lambda(&queue, &again).await;
        assert_eq!(
            settled[0].disposition,
            Disposition::Acknowledge,
            "{settled:?}"
        );
    }

    check_role("sender", &f.calls.calls());
}

/// The log record of a message the sender sent (set up without the function's role).
async fn sent_record(log: &LogStore, id: &str, phone: &str, message_id: &str, now: Timestamp) {
    let claim = log
        .claim(
            &NewLogRecord {
                id,
                user_id: Some("u-1"),
                kind: MessageKind::BattleInvitation,
                related: None,
            },
            now,
            SignedDuration::from_secs(120),
        )
        .await
        .unwrap();
    let Claim::Claimed { token, .. } = claim else {
        panic!("claim {id}: {claim:?}")
    };
    let finish = Finish::Sent {
        provider_message_id: message_id,
        phone_number: phone,
        body: "WordBattle: hi. Reply STOP to unsubscribe.",
        segments: 1,
        encoding: "GSM-7",
    };
    assert!(log.finish(id, &token, finish, now).await.unwrap());
}

/// A verified user of `phone` with consent, saved without the function's role.
async fn consenting_user(prefs: &PreferencesStore, user: &str, phone: &str, at: Timestamp) {
    let mut p = Preferences::new(user);
    p.phone_number = Some(phone.into());
    p.phone_verified = true;
    p.allow_sms_invitations = true;
    let mut grant = ConsentEvent::new(user, at, ConsentAction::Grant, ConsentMethod::OptInModal);
    grant.phone_number = p.phone_number.clone();
    grant.apply_to(&mut p.consent);
    prefs.save(&mut p, &[grant], at).await.unwrap();
}

/// delivery-status: a receipt found by the log id in its context and one found by the
/// provider message id (index), the status transaction with the counter reset (delivered) and
/// increment (hard failures), the price transaction, the hard-failure read, and at the third
/// hard failure: users by number, marking them undeliverable (a lost race and its re-read),
/// the reset of the run.
#[tokio::test]
async fn delivery_status_role_allows_exactly_what_it_calls() {
    let env = TestEnv::new().await;
    let config = env.config();
    let now: Timestamp = "2026-11-25T12:10:00Z".parse().unwrap();
    let calls = Recorder::new("delivery-status", &env.vars_with(&[]));
    let (racing, conflicts) = lose_saves(&env.dynamodb, 1);
    let handler = DeliveryStatus::new(
        &config,
        calls.dynamodb(&racing),
        Arc::new(ManualClock::new(now)),
    );
    let log = LogStore::new(env.dynamodb.clone(), &config.tables.log);
    let prefs = PreferencesStore::new(env.dynamodb.clone(), &config.tables.preferences);
    consenting_user(&prefs, "u-1", PHONE, now).await;

    let receipt = |name: &str, id: Option<&str>, message_id: &str| {
        sns_event(&format!("sns-delivery-{name}.json"), |m| {
            match id {
                Some(id) => m.insert("context".into(), json!({ CONTEXT_LOG_ID: id })),
                None => m.remove("context"),
            };
            m.insert("messageId".into(), json!(message_id));
        })
    };
    let mut failed = Vec::new();
    for (i, name) in ["delivered", "blocked", "invalid", "unreachable"]
        .into_iter()
        .enumerate()
    {
        let id = format!("iam-{i}");
        let message_id = format!("m-{i}");
        sent_record(&log, &id, PHONE, &message_id, now).await;
        // The first receipt carries no log id: found through the provider message id.
        let context = (i > 0).then_some(id.as_str());
        if let Err(e) = handler.handle(receipt(name, context, &message_id)).await {
            failed.push(format!("{name}: {e}"));
        }
    }
    // The role first: a refused call fails the handler, and the contract says which.
    check_role("delivery-status", &calls.calls());
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(conflicts.caused(), 1, "marking lost one race");
    assert!(!prefs.get("u-1").await.unwrap().unwrap().phone_verified);
}

/// inbound-sms: the processed-once check and marker, STOP (users by number, revocation with a
/// lost race and its re-read, the confirmation's claim, send and outcome), START (re-grant),
/// HELP (reply), another message (recorded only).
#[tokio::test]
async fn inbound_sms_role_allows_exactly_what_it_calls() {
    let env = TestEnv::new().await;
    let vars = [
        ("SMS_SENDER", "eum"),
        ("ORIGINATION_IDENTITY", "+18005550100"),
        CONFIGURATION_SET,
    ];
    let config = env.config_with(&vars);
    // Within 5 minutes of the sample STOP (12:01): its confirmation is still due.
    let now: Timestamp = "2026-11-25T12:01:30Z".parse().unwrap();
    let calls = Recorder::new("inbound-sms", &env.vars_with(&vars));
    let (racing, conflicts) = lose_saves(&env.dynamodb, 1);
    let stub = SmsStub::start().await;
    let handler = InboundSms::new(
        &config,
        calls.dynamodb(&racing),
        EumSender::new(calls.sms(&stub.client()), &config.sms),
        Arc::new(ManualClock::new(now)),
    );
    let prefs = PreferencesStore::new(env.dynamodb.clone(), &config.tables.preferences);
    let opted_in: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
    consenting_user(&prefs, "u-1", PHONE, opted_in).await;

    let mut failed = Vec::new();
    for name in ["stop", "start", "help", "other", "help"] {
        let event = sns_event(&format!("sns-inbound-{name}.json"), |_| {});
        if let Err(e) = handler.handle(event).await {
            failed.push(format!("{name}: {e}"));
        }
    }
    // The role first: a refused call fails the handler, and the contract says which.
    check_role("inbound-sms", &calls.calls());
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(conflicts.caused(), 1, "the revocation lost one race");
    assert!(!stub.sent_to(PHONE).is_empty(), "replies were sent");
}

/// The checker itself: a role without `DeleteItem` denies a transaction's `Delete`, the
/// failure names the function, the call and the access, and a grant nobody needs is found.
#[test]
fn the_checker_denies_a_missing_action_and_finds_an_unused_one() {
    let t = integration_tests::template::parse(
        r#"
Resources:
  LogTable: {Type: "AWS::DynamoDB::Table"}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/delivery-status
      Policies:
        - Statement:
            - Sid: Tables
              Effect: Allow
              Action: [dynamodb:UpdateItem, dynamodb:Scan]
              Resource: !GetAtt LogTable.Arn
        - DynamoDBReadPolicy:
            TableName: !Ref LogTable
"#,
    );
    let role = Role::of(&t, "delivery-status");
    let table = "arn:aws:dynamodb:us-east-1:123456789012:table/LogTable";
    let access = |action: &str| integration_tests::iam::Access {
        action: action.into(),
        resource: table.into(),
    };
    let call = Call {
        function: "delivery-status".into(),
        service: "DynamoDB".into(),
        operation: "TransactWriteItems".into(),
        accesses: vec![access("dynamodb:UpdateItem"), access("dynamodb:DeleteItem")],
        denied: vec![],
        over_limit: None,
    };
    let found = findings(&role, std::slice::from_ref(&call), |_| false);
    let text = report(&role, &found);
    assert!(
        text.contains(
            "delivery-status: delivery-status DynamoDB.TransactWriteItems needs dynamodb:DeleteItem \
             on arn:aws:dynamodb:us-east-1:123456789012:table/LogTable, which no statement of Fn allows"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "statement `Tables`: dynamodb:Scan on !GetAtt LogTable.Arn of Fn is not used"
        ),
        "{text}"
    );
    // SAM's read policy template, expanded: GetItem on the table and its indexes.
    assert!(role.allows(&access("dynamodb:GetItem")));
    assert!(role.allows(&integration_tests::iam::Access {
        action: "dynamodb:Query".into(),
        resource: format!("{table}/index/byUser"),
    }));
    assert!(!role.allows(&access("dynamodb:PutItem")));
}

/// Limits AWS enforces and moto does not: the recorder refuses requests over them (the whole
/// suite runs under them), and these tests drive each limit the code can reach.
mod limits {
    use super::*;
    use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use integration_tests::iam::limits::{BATCH_GET_KEYS, SQS_MESSAGE_BYTES, TRANSACTION_ITEMS};
    use sms_shared::store::Counters;
    use sms_shared::store::batch::read_preferences_and_counters;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Preferences and counters of 250 users: `BatchGetItem`s of at most 100 keys each, and
    /// the recorder refuses a request of 101 (so the check can fail).
    #[tokio::test]
    async fn batch_reads_stay_within_100_keys() {
        let env = TestEnv::new().await;
        let calls = Recorder::new("sender", &env.vars_with(&[]));
        let client = calls.dynamodb(&env.dynamodb);
        let prefs = PreferencesStore::new(client.clone(), &env.tables.preferences);
        let counters = Counters::new(client.clone(), &env.tables.log, "id");
        let users: Vec<String> = (0..250).map(|i| format!("u-{i}")).collect();
        let ids: Vec<&str> = users.iter().map(String::as_str).collect();
        let now = Timestamp::now();
        let read = read_preferences_and_counters(&prefs, &ids, &counters, &users, now)
            .await
            .expect("read in chunks");
        assert!(read.preferences.is_empty() && read.counters.is_empty());
        let batches = calls
            .calls()
            .into_iter()
            .filter(|c| c.operation == "BatchGetItem")
            .count();
        assert_eq!(batches, 6, "3 of preferences, 3 of counters");
        assert!(calls.over_limit().is_empty(), "{:?}", calls.over_limit());

        let keys = (0..=BATCH_GET_KEYS)
            .map(|i| HashMap::from([("id".to_owned(), AttributeValue::S(format!("k{i}")))]))
            .collect();
        let refused = client
            .batch_get_item()
            .request_items(
                &env.tables.log,
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        assert!(refused.is_err(), "101 keys are refused");
        assert_eq!(calls.over_limit().len(), 1);
    }

    /// A save holds the preferences item and its consent events in one transaction: 99
    /// events fit (100 items), 100 are refused before any request.
    #[tokio::test]
    async fn a_save_never_sends_more_than_100_transaction_items() {
        let env = TestEnv::new().await;
        let calls = Recorder::new("opt-in-api", &env.vars_with(&[]));
        let prefs = PreferencesStore::new(calls.dynamodb(&env.dynamodb), &env.tables.preferences);
        let now = Timestamp::now();
        let events = |n: usize| -> Vec<ConsentEvent> {
            (0..n)
                .map(|i| {
                    let at = now + SignedDuration::from_millis(i as i64);
                    ConsentEvent::new("u-1", at, ConsentAction::Grant, ConsentMethod::SettingsPage)
                })
                .collect()
        };
        let mut p = Preferences::new("u-1");
        assert!(
            prefs
                .save(&mut p, &events(TRANSACTION_ITEMS), now)
                .await
                .is_err()
        );
        assert!(calls.calls().is_empty(), "refused before any request");
        let saved = prefs
            .save(&mut p, &events(TRANSACTION_ITEMS - 1), now)
            .await;
        assert!(saved.is_ok(), "{saved:?}");
        assert!(calls.over_limit().is_empty());
        let stored = PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences);
        assert_eq!(stored.consent_history("u-1").await.unwrap().len(), 99);
    }

    /// A body at SQS's size limit that is not a valid request reaches the dead-letter queue
    /// whole: the reason attributes that no longer fit are dropped (body and attributes count
    /// together against 256 KiB).
    #[tokio::test]
    async fn an_invalid_body_at_the_size_limit_is_dead_lettered_whole() {
        let f = Fixture::new(&[]).await;
        let body = "x".repeat(SQS_MESSAGE_BYTES);
        let got = f
            .outcomes(&f.notifications(), std::slice::from_ref(&body))
            .await;
        assert!(
            matches!(
                got[..],
                [sender::Outcome::Rejected {
                    dead_lettered: true,
                    ..
                }]
            ),
            "{got:?}"
        );
        assert!(
            f.calls.over_limit().is_empty(),
            "{:?}",
            f.calls.over_limit()
        );
        let dead = integration_tests::sqs::drain(&f.env, &f.env.queues.notifications_dlq).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body.len(), body.len());

        // A small one keeps its reason.
        f.outcomes(&f.notifications(), &["not json".to_owned()])
            .await;
        let dead = integration_tests::sqs::drain(&f.env, &f.env.queues.notifications_dlq).await;
        assert!(
            dead[0].attributes.contains_key("RejectReason"),
            "{:?}",
            dead[0].attributes
        );
    }

    /// A DynamoDB that answers each `BatchGetItem` with one item and the rest as
    /// `UnprocessedKeys` (as DynamoDB may under load), or with nothing processed at all.
    async fn stingy_dynamodb(process_nothing: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let counted = counted.clone();
                            async move {
                                counted.fetch_add(1, Ordering::SeqCst);
                                let body = request.into_body().collect().await?.to_bytes();
                                let asked: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap();
                                let mut responses = serde_json::Map::new();
                                let mut unprocessed = serde_json::Map::new();
                                for (table, request) in asked["RequestItems"].as_object().unwrap() {
                                    let keys = request["Keys"].as_array().unwrap();
                                    let split = usize::from(!process_nothing).min(keys.len());
                                    let items: Vec<_> = keys[..split]
                                        .iter()
                                        .map(|k| {
                                            let mut item = k.as_object().unwrap().clone();
                                            item.insert("count".into(), json!({"N": "3"}));
                                            item
                                        })
                                        .collect();
                                    responses.insert(table.clone(), json!(items));
                                    if split < keys.len() {
                                        unprocessed
                                            .insert(table.clone(), json!({"Keys": keys[split..]}));
                                    }
                                }
                                let answer =
                                    json!({"Responses": responses, "UnprocessedKeys": unprocessed});
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .header("content-type", "application/x-amz-json-1.0")
                                        .body(Full::new(Bytes::from(answer.to_string())))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), requests)
    }

    /// Unprocessed keys are asked for again until none are left; a server that never
    /// processes them makes the read fail after 8 rounds instead of looping.
    #[tokio::test]
    async fn unprocessed_keys_are_read_again() {
        let (endpoint, requests) = stingy_dynamodb(false).await;
        let client = aws_sdk_dynamodb::Client::new(&integration_tests::sdk_config(&endpoint).await);
        let counters = Counters::new(client, "log", "id");
        let ids: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let values = counters.get_many(&ids, Timestamp::now()).await.unwrap();
        assert_eq!(values.len(), 4, "{values:?}");
        assert!(values.values().all(|v| *v == 3));
        assert_eq!(requests.load(Ordering::SeqCst), 4, "one key per round");

        let (endpoint, requests) = stingy_dynamodb(true).await;
        let client = aws_sdk_dynamodb::Client::new(&integration_tests::sdk_config(&endpoint).await);
        let counters = Counters::new(client, "log", "id");
        assert!(counters.get_many(&ids, Timestamp::now()).await.is_err());
        assert_eq!(requests.load(Ordering::SeqCst), 8);
    }
}
