//! Every store operation of `sms_shared::store` through the real AWS SDK against moto, each
//! test on its own tables. Outcomes are read back through the stores (or DescribeTable), so a
//! broken condition or mapping fails here. Times are passed in (`now`), never slept for.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, Put, ScalarAttributeType,
    TimeToLiveStatus, TransactWriteItem,
};
use futures_util::future::join_all;
use integration_tests::TestEnv;
use integration_tests::stack::{self, table_specs};
use jiff::{SignedDuration, Timestamp};
use sms_shared::kinds::{MessageClass, MessageKind};
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::store::log::{StatusChange, counter_ids};
use sms_shared::store::schema::{self, LOG_KEY, VERIFICATION_KEY};
use sms_shared::store::verification::{Issue, Issued, Reservation};
use sms_shared::store::{
    Claim, CodeRecord, Counters, Finish, LogRecord, LogStatus, LogStore, NewLogRecord,
    NumberPreferences, PreferencesStore, Related, SaveOutcome, VerificationStore,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use tokio::sync::Barrier;

const PHONE: &str = "+14155550123";
const OTHER_PHONE: &str = "+14155550999";
const LEASE: SignedDuration = SignedDuration::from_secs(30);

/// A fixed instant after the real clock, so nothing here is ever expired for moto.
fn t0() -> Timestamp {
    "2030-03-01T12:00:00Z".parse().expect("valid instant")
}

fn millis(n: i64) -> SignedDuration {
    SignedDuration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Log
// ---------------------------------------------------------------------------------------------

fn log_store(env: &TestEnv) -> LogStore {
    LogStore::new(env.dynamodb.clone(), &env.tables.log)
}

fn new_record<'a>(id: &'a str, user: &'a str, related: Option<&'a Related>) -> NewLogRecord<'a> {
    NewLogRecord {
        id,
        user_id: Some(user),
        kind: MessageKind::BattleInvitation,
        related,
    }
}

fn claimed(claim: Claim) -> (String, u32) {
    match claim {
        Claim::Claimed { token, attempts } => (token, attempts),
        other => panic!("expected Claimed, got {other:?}"),
    }
}

fn sent(provider_message_id: &str) -> Finish<'_> {
    Finish::Sent {
        provider_message_id,
        phone_number: PHONE,
        body: "Ada invited you to a battle. Reply STOP to unsubscribe.",
        segments: 1,
        encoding: "GSM-7",
    }
}

async fn get_log(store: &LogStore, id: &str) -> LogRecord {
    store
        .get(id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("log record {id} exists"))
}

fn statuses(record: &LogRecord) -> Vec<LogStatus> {
    record.status_history.iter().map(|c| c.status).collect()
}

#[tokio::test]
async fn claim_creates_the_pending_record() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let related = Related {
        kind: "BattleInvitation".into(),
        id: "81723".into(),
    };
    assert_eq!(log.get("req-1").await.expect("get"), None);

    let now = t0();
    let (token, attempts) = claimed(
        log.claim(&new_record("req-1", "u-42", Some(&related)), now, LEASE)
            .await
            .expect("claim"),
    );
    assert_eq!(attempts, 1);
    assert!(!token.is_empty());

    let record = get_log(&log, "req-1").await;
    assert_eq!(record.id, "req-1");
    assert_eq!(record.user_id.as_deref(), Some("u-42"));
    assert_eq!(record.kind, Some(MessageKind::BattleInvitation));
    assert_eq!(record.class, MessageClass::Promotional);
    assert_eq!(record.status, LogStatus::Pending);
    assert_eq!(record.related, Some(related));
    assert_eq!(record.created_at_ms, now.as_millisecond());
    assert_eq!(record.updated_at_ms, now.as_millisecond());
    assert_eq!(record.lease_until_ms, (now + LEASE).as_millisecond());
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.status_history,
        vec![StatusChange {
            status: LogStatus::Pending,
            at_ms: now.as_millisecond(),
            reason: None
        }]
    );
    assert_eq!(record.provider_message_id, None);

    // A transactional kind is classified as such.
    let security = NewLogRecord {
        id: "req-2",
        user_id: Some("u-42"),
        kind: MessageKind::SecurityAlert,
        related: None,
    };
    claimed(log.claim(&security, now, LEASE).await.expect("claim"));
    let record = get_log(&log, "req-2").await;
    assert_eq!(record.class, MessageClass::Transactional);
    assert_eq!(record.related, None);
}

#[tokio::test]
async fn second_claim_while_the_lease_runs_is_busy_and_changes_nothing() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    claimed(
        log.claim(&new_record("req-1", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );
    let before = get_log(&log, "req-1").await;

    // Later, but still inside the lease (up to its last millisecond).
    for later in [now + millis(1), now + LEASE - millis(1)] {
        let claim = log
            .claim(&new_record("req-1", "u-1", None), later, LEASE)
            .await
            .expect("second claim");
        assert_eq!(
            claim,
            Claim::Busy {
                until_ms: (now + LEASE).as_millisecond(),
                status: LogStatus::Pending
            }
        );
    }
    assert_eq!(get_log(&log, "req-1").await, before);
}

#[tokio::test]
async fn claim_after_sent_is_a_duplicate_whenever_it_comes() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let (token, _) = claimed(
        log.claim(&new_record("req-1", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );
    assert!(
        log.finish("req-1", &token, sent("msg-1"), now + millis(500))
            .await
            .expect("finish")
    );
    let done = get_log(&log, "req-1").await;
    assert_eq!(done.status, LogStatus::Sent);
    assert_eq!(done.provider_message_id.as_deref(), Some("msg-1"));
    assert_eq!(done.phone_number.as_deref(), Some(PHONE));
    assert_eq!(done.segments, Some(1));
    assert_eq!(done.encoding.as_deref(), Some("GSM-7"));
    assert_eq!(
        done.body.as_deref(),
        Some("Ada invited you to a battle. Reply STOP to unsubscribe.")
    );
    assert_eq!(done.updated_at_ms, (now + millis(500)).as_millisecond());

    // While the old lease would still run, and long after it.
    for later in [now + millis(600), now + SignedDuration::from_hours(30)] {
        let claim = log
            .claim(&new_record("req-1", "u-1", None), later, LEASE)
            .await
            .expect("duplicate claim");
        assert_eq!(claim, Claim::Done(Box::new(done.clone())));
    }
    assert_eq!(
        get_log(&log, "req-1").await,
        done,
        "a duplicate changes nothing"
    );

    // The token of a finished claim cannot finish it again.
    assert!(
        !log.finish(
            "req-1",
            &token,
            Finish::Rejected { reason: "late" },
            now + millis(700)
        )
        .await
        .expect("finish")
    );
    assert_eq!(get_log(&log, "req-1").await, done);
}

#[tokio::test]
async fn claim_after_the_lease_is_over_takes_over_and_the_stale_token_loses() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let (first, _) = claimed(
        log.claim(&new_record("req-1", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );
    // The lease is over from its end instant on.
    let later = now + LEASE;
    let (second, attempts) = claimed(
        log.claim(&new_record("req-1", "u-1", None), later, LEASE)
            .await
            .expect("claim after the lease"),
    );
    assert_eq!(attempts, 2);
    assert_ne!(first, second, "each claim has its own token");

    let record = get_log(&log, "req-1").await;
    assert_eq!(record.attempts, 2);
    assert_eq!(
        record.created_at_ms,
        now.as_millisecond(),
        "creation time kept"
    );
    assert_eq!(record.lease_until_ms, (later + LEASE).as_millisecond());
    assert_eq!(statuses(&record), [LogStatus::Pending, LogStatus::Pending]);

    // The first invocation comes back: its conditional write loses and changes nothing.
    assert!(
        !log.finish("req-1", &first, sent("msg-old"), later + millis(1))
            .await
            .expect("stale finish")
    );
    assert_eq!(get_log(&log, "req-1").await, record);

    // A made-up token loses too.
    assert!(
        !log.finish("req-1", "not-a-token", Finish::Expired, later + millis(1))
            .await
            .expect("wrong token")
    );
    assert_eq!(get_log(&log, "req-1").await, record);

    // The owner finishes.
    assert!(
        log.finish("req-1", &second, sent("msg-new"), later + millis(2))
            .await
            .expect("finish")
    );
    let record = get_log(&log, "req-1").await;
    assert_eq!(record.status, LogStatus::Sent);
    assert_eq!(record.provider_message_id.as_deref(), Some("msg-new"));
}

#[tokio::test]
async fn finish_of_an_unknown_record_is_false_and_creates_nothing() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    assert!(
        !log.finish("nobody", "token", Finish::Expired, t0())
            .await
            .expect("finish")
    );
    assert_eq!(log.get("nobody").await.expect("get"), None);
}

#[tokio::test]
async fn deferred_is_claimable_only_from_until_on() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let until = now + SignedDuration::from_hours(9);
    let (token, _) = claimed(
        log.claim(&new_record("req-1", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );
    assert!(
        log.finish("req-1", &token, Finish::Deferred { until }, now)
            .await
            .expect("defer")
    );
    let record = get_log(&log, "req-1").await;
    assert_eq!(record.status, LogStatus::Deferred);
    assert_eq!(record.lease_until_ms, until.as_millisecond());
    assert_eq!(record.reason.as_deref(), Some("quiet_hours"));

    // Past the original lease but before the window opens: still deferred.
    for early in [now + LEASE, until - millis(1)] {
        let claim = log
            .claim(&new_record("req-1", "u-1", None), early, LEASE)
            .await
            .expect("early claim");
        assert_eq!(
            claim,
            Claim::Busy {
                until_ms: until.as_millisecond(),
                status: LogStatus::Deferred
            }
        );
    }
    assert_eq!(get_log(&log, "req-1").await, record);

    let (_, attempts) = claimed(
        log.claim(&new_record("req-1", "u-1", None), until, LEASE)
            .await
            .expect("claim when the window opens"),
    );
    assert_eq!(attempts, 2);
    assert_eq!(get_log(&log, "req-1").await.status, LogStatus::Pending);
}

#[tokio::test]
async fn retry_is_claimable_at_once_and_keeps_the_error() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let (token, _) = claimed(
        log.claim(&new_record("req-1", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );
    assert!(
        log.finish(
            "req-1",
            &token,
            Finish::Retry {
                error_code: "ThrottlingException",
                error_message: "Rate exceeded"
            },
            now + millis(10)
        )
        .await
        .expect("retry")
    );
    let record = get_log(&log, "req-1").await;
    assert_eq!(record.status, LogStatus::Retry);
    assert_eq!(record.error_code.as_deref(), Some("ThrottlingException"));
    assert_eq!(record.error_message.as_deref(), Some("Rate exceeded"));

    // Well inside what was the lease: claimable at once.
    let (token, attempts) = claimed(
        log.claim(&new_record("req-1", "u-1", None), now + millis(20), LEASE)
            .await
            .expect("claim again"),
    );
    assert_eq!(attempts, 2);
    // A success clears the error of the earlier attempt.
    assert!(
        log.finish("req-1", &token, sent("msg-1"), now + millis(30))
            .await
            .expect("finish")
    );
    let record = get_log(&log, "req-1").await;
    assert_eq!(record.status, LogStatus::Sent);
    assert_eq!(record.error_code, None);
    assert_eq!(record.error_message, None);
}

#[tokio::test]
async fn status_history_grows_in_order() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let record = new_record("req-1", "u-1", None);
    let step = |n: i64| now + SignedDuration::from_mins(n);

    let (token, _) = claimed(log.claim(&record, step(0), LEASE).await.expect("claim"));
    assert!(
        log.finish(
            "req-1",
            &token,
            Finish::Deferred { until: step(10) },
            step(1)
        )
        .await
        .expect("defer")
    );
    let (token, _) = claimed(log.claim(&record, step(11), LEASE).await.expect("claim"));
    assert!(
        log.finish(
            "req-1",
            &token,
            Finish::Retry {
                error_code: "InternalServerException",
                error_message: "boom"
            },
            step(12)
        )
        .await
        .expect("retry")
    );
    let (token, attempts) = claimed(log.claim(&record, step(13), LEASE).await.expect("claim"));
    assert_eq!(attempts, 3);
    assert!(
        log.finish(
            "req-1",
            &token,
            Finish::Suppressed {
                reason: "daily_cap",
                phone_number: Some(PHONE)
            },
            step(14)
        )
        .await
        .expect("suppress")
    );

    let stored = get_log(&log, "req-1").await;
    let expected = [
        (LogStatus::Pending, 0, None),
        (LogStatus::Deferred, 1, Some("quiet_hours")),
        (LogStatus::Pending, 11, None),
        (LogStatus::Retry, 12, None),
        (LogStatus::Pending, 13, None),
        (LogStatus::Suppressed, 14, Some("daily_cap")),
    ]
    .map(|(status, minute, reason)| StatusChange {
        status,
        at_ms: step(minute).as_millisecond(),
        reason: reason.map(str::to_owned),
    });
    assert_eq!(stored.status_history, expected);
    assert_eq!(stored.status, LogStatus::Suppressed);
    assert_eq!(stored.reason.as_deref(), Some("daily_cap"));
    assert_eq!(stored.phone_number.as_deref(), Some(PHONE));
    assert_eq!(stored.attempts, 3);
}

#[tokio::test]
async fn final_outcomes_are_recorded_with_their_reason_and_end_the_request() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let cases = [
        (
            "req-rejected",
            Finish::Rejected {
                reason: "missing_param",
            },
            LogStatus::Rejected,
            "missing_param",
        ),
        (
            "req-expired",
            Finish::Expired,
            LogStatus::Expired,
            "not_after_passed",
        ),
        (
            "req-suppressed",
            Finish::Suppressed {
                reason: "no_consent",
                phone_number: None,
            },
            LogStatus::Suppressed,
            "no_consent",
        ),
    ];
    for (id, finish, status, reason) in cases {
        let (token, _) = claimed(
            log.claim(&new_record(id, "u-1", None), now, LEASE)
                .await
                .expect("claim"),
        );
        assert!(log.finish(id, &token, finish, now).await.expect("finish"));
        let record = get_log(&log, id).await;
        assert_eq!(record.status, status, "{id}");
        assert_eq!(record.reason.as_deref(), Some(reason), "{id}");
        assert_eq!(statuses(&record), [LogStatus::Pending, status], "{id}");
        let again = log
            .claim(&new_record(id, "u-1", None), now + LEASE + millis(1), LEASE)
            .await
            .expect("claim again");
        assert_eq!(again, Claim::Done(Box::new(record)), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_of_one_request_yield_one_owner() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    let barrier = Arc::new(Barrier::new(20));
    let claims = join_all((0..20).map(|_| {
        let (log, barrier) = (log.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            log.claim(&new_record("req-1", "u-1", None), now, LEASE)
                .await
                .expect("claim")
        })
    }))
    .await;
    let owners = claims
        .into_iter()
        .map(|c| c.expect("task"))
        .filter(|c| matches!(c, Claim::Claimed { .. }))
        .count();
    assert_eq!(owners, 1);
    assert_eq!(get_log(&log, "req-1").await.attempts, 1);
}

#[tokio::test]
async fn find_by_provider_message_id_finds_the_sent_record() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let now = t0();
    for (id, mid) in [("req-a", "msg-a"), ("req-b", "msg-b")] {
        let (token, _) = claimed(
            log.claim(&new_record(id, "u-1", None), now, LEASE)
                .await
                .expect("claim"),
        );
        assert!(
            log.finish(id, &token, sent(mid), now)
                .await
                .expect("finish")
        );
    }
    // A record without a provider id yet is in no one's way.
    claimed(
        log.claim(&new_record("req-c", "u-1", None), now, LEASE)
            .await
            .expect("claim"),
    );

    for (id, mid) in [("req-a", "msg-a"), ("req-b", "msg-b")] {
        let found = log
            .find_by_provider_message_id(mid)
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("{mid} is found"));
        assert_eq!(found, get_log(&log, id).await);
    }
    assert_eq!(
        log.find_by_provider_message_id("msg-unknown")
            .await
            .expect("find"),
        None
    );
}

#[tokio::test]
async fn query_by_user_returns_the_time_range_newest_first() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    let at = |minute: i64| t0() + SignedDuration::from_mins(minute);
    for minute in 0..5 {
        let id = format!("u1-{minute}");
        claimed(
            log.claim(&new_record(&id, "u-1", None), at(minute), LEASE)
                .await
                .expect("claim"),
        );
    }
    claimed(
        log.claim(&new_record("u2-2", "u-2", None), at(2), LEASE)
            .await
            .expect("claim"),
    );
    // Counters in the same table are not messages of anyone.
    Counters::new(env.dynamodb.clone(), &env.tables.log, LOG_KEY)
        .add(&counter_ids::user_day("u-1", at(2)), 1, at(60 * 48))
        .await
        .expect("counter");

    let ids = |records: Vec<LogRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    // [from, to): the record at `to` is out, the one at `from` in.
    let in_range = log
        .query_by_user("u-1", at(1), at(4), 50)
        .await
        .expect("query");
    assert_eq!(ids(in_range), ["u1-3", "u1-2", "u1-1"]);
    let all = log
        .query_by_user("u-1", at(-60), at(60), 50)
        .await
        .expect("query");
    assert_eq!(ids(all), ["u1-4", "u1-3", "u1-2", "u1-1", "u1-0"]);
    let newest_two = log
        .query_by_user("u-1", at(-60), at(60), 2)
        .await
        .expect("query");
    assert_eq!(ids(newest_two), ["u1-4", "u1-3"]);
    let other = log
        .query_by_user("u-2", at(-60), at(60), 50)
        .await
        .expect("query");
    assert_eq!(ids(other), ["u2-2"]);
    assert!(
        log.query_by_user("u-3", at(-60), at(60), 50)
            .await
            .expect("query")
            .is_empty()
    );
}

#[test]
fn counter_ids_are_per_user_day_and_month() {
    let day = t0();
    let next_day = day + SignedDuration::from_hours(24);
    assert_eq!(
        counter_ids::user_day("u-1", day),
        "counter#user-day#u-1#2030-03-01"
    );
    assert_ne!(
        counter_ids::user_day("u-1", day),
        counter_ids::user_day("u-1", next_day)
    );
    assert_ne!(
        counter_ids::user_day("u-1", day),
        counter_ids::user_day("u-2", day)
    );
    assert_eq!(counter_ids::month_spend(day), "counter#spend#2030-03");
    assert_eq!(
        counter_ids::month_spend(day),
        counter_ids::month_spend(next_day)
    );
    assert_eq!(counter_ids::user_rolling_24h("u-1"), "counter#user-24h#u-1");
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

fn log_counters(env: &TestEnv) -> Counters {
    Counters::new(env.dynamodb.clone(), &env.tables.log, LOG_KEY)
}

/// Writes `item` alone in a transaction, as production sends it with the other items of its
/// transaction: `false` when its condition failed.
async fn written_alone(client: &aws_sdk_dynamodb::Client, item: TransactWriteItem) -> bool {
    let result = client
        .transact_write_items()
        .transact_items(item)
        .send()
        .await;
    let err = match result {
        Ok(_) => return true,
        Err(err) => err,
    };
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        panic!("transaction failed: {err:?}");
    };
    let codes: Vec<_> = cancelled
        .cancellation_reasons()
        .iter()
        .filter_map(|r| r.code())
        .collect();
    assert_eq!(codes, ["ConditionalCheckFailed"], "{cancelled:?}");
    false
}

/// A bounded increment ([`Counters::increment_within_item`]) alone: `true` when counted.
async fn increment_within(
    counters: &Counters,
    client: &aws_sdk_dynamodb::Client,
    id: &str,
    by: u64,
    cap: u64,
    expires: Timestamp,
) -> bool {
    match counters
        .increment_within_item(id, by, cap, expires)
        .expect("increment item")
    {
        Some(item) => written_alone(client, item).await,
        None => false,
    }
}

async fn counter_value(counters: &Counters, id: &str, now: Timestamp) -> u64 {
    counters
        .get_many(&[id.to_owned()], now)
        .await
        .expect("get_many")
        .get(id)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn increment_within_counts_up_to_the_cap_and_no_further() {
    let env = TestEnv::new().await;
    let counters = log_counters(&env);
    let client = &env.dynamodb;
    let now = t0();
    let expires = now + SignedDuration::from_hours(48);
    for expected in 1..=3 {
        assert!(increment_within(&counters, client, "c", 1, 3, expires).await);
        assert_eq!(counter_value(&counters, "c", now).await, expected);
    }
    assert!(!increment_within(&counters, client, "c", 1, 3, expires).await);
    assert_eq!(counter_value(&counters, "c", now).await, 3);

    // A step that would pass the cap is refused whole; one that fits exactly is taken.
    assert!(increment_within(&counters, client, "d", 2, 5, expires).await);
    assert!(!increment_within(&counters, client, "d", 4, 5, expires).await);
    assert!(increment_within(&counters, client, "d", 3, 5, expires).await);
    // Larger than the cap on its own: refused without a write.
    assert!(!increment_within(&counters, client, "e", 6, 5, expires).await);
    assert_eq!(counter_value(&counters, "d", now).await, 5);
    assert_eq!(counter_value(&counters, "e", now).await, 0);
}

/// `callers` concurrent bounded increments of one counter: how many were counted, and the
/// counter's value after them.
async fn concurrent_increments(cap: u64, callers: usize) -> (usize, u64) {
    let env = TestEnv::new().await;
    let counters = log_counters(&env);
    let expires = t0() + SignedDuration::from_hours(48);
    let barrier = Arc::new(Barrier::new(callers));
    let results = join_all((0..callers).map(|_| {
        let (counters, client, barrier) = (counters.clone(), env.dynamodb.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            increment_within(&counters, &client, "counter#cap", 1, cap, expires).await
        })
    }))
    .await;
    let counted = results
        .into_iter()
        .filter(|r| *r.as_ref().expect("task"))
        .count();
    let value = counter_value(&counters, "counter#cap", t0()).await;
    (counted, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_increments_at_cap_one_exactly_one_wins() {
    assert_eq!(concurrent_increments(1, 2).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_increments_with_cap_five_exactly_five_win() {
    assert_eq!(concurrent_increments(5, 20).await, (5, 5));
}

#[tokio::test]
async fn add_goes_up_and_down_and_creates_the_counter() {
    let env = TestEnv::new().await;
    let counters = log_counters(&env);
    let now = t0();
    let expires = now + SignedDuration::from_hours(40 * 24);
    let id = counter_ids::month_spend(now);
    assert_eq!(counters.add(&id, 5_810, expires).await.expect("add"), 5_810);
    assert_eq!(counters.add(&id, 2_000, expires).await.expect("add"), 7_810);
    assert_eq!(counters.add(&id, -810, expires).await.expect("add"), 7_000);
    assert_eq!(counter_value(&counters, &id, now).await, 7_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_lose_no_update() {
    let env = TestEnv::new().await;
    let counters = log_counters(&env);
    let expires = t0() + SignedDuration::from_hours(40 * 24);
    let results = join_all((1..=20).map(|n| {
        let counters = counters.clone();
        tokio::spawn(async move { counters.add("spend", n, expires).await.expect("add") })
    }))
    .await;
    let mut seen: Vec<i64> = results.into_iter().map(|r| r.expect("task")).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every add saw its own new total");
    assert_eq!(counter_value(&counters, "spend", t0()).await, 210);
}

#[tokio::test]
async fn get_many_reads_many_counters_with_expired_and_missing_as_zero() {
    let env = TestEnv::new().await;
    let counters = log_counters(&env);
    let now = t0();
    let live = now + SignedDuration::from_hours(1);
    let expired = now - SignedDuration::from_hours(1);
    // 150 ids: more than one BatchGetItem of 100 keys.
    let ids: Vec<String> = (0..150).map(|n| format!("counter#{n}")).collect();
    for (n, id) in ids.iter().enumerate().take(120) {
        let expires = if n % 10 == 0 { expired } else { live };
        counters.add(id, n as i64 + 1, expires).await.expect("add");
    }
    let values = counters.get_many(&ids, now).await.expect("get_many");
    for (n, id) in ids.iter().enumerate() {
        let expected = if n >= 120 || n % 10 == 0 {
            0
        } else {
            n as u64 + 1
        };
        assert_eq!(values.get(id).copied().unwrap_or(0), expected, "{id}");
    }
    // Exactly the live counters are reported.
    assert_eq!(values.len(), 120 - 12);

    // The same counter reads as live before its expiry and as 0 from it on.
    assert_eq!(counter_value(&counters, "counter#1", now).await, 2);
    assert_eq!(counter_value(&counters, "counter#1", live).await, 0);
    assert!(
        counters
            .get_many(&[], now)
            .await
            .expect("no ids")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Preferences
// ---------------------------------------------------------------------------------------------

fn prefs_store(env: &TestEnv) -> PreferencesStore {
    PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences)
}

fn user(id: &str, phone: Option<&str>, consent: bool) -> Preferences {
    let mut prefs = Preferences::new(id);
    prefs.phone_number = phone.map(str::to_owned);
    prefs.phone_verified = phone.is_some();
    prefs.allow_sms_invitations = consent;
    prefs.time_zone = Some("America/Chicago".into());
    if consent {
        let mut grant = grant(id, t0());
        grant.phone_number = prefs.phone_number.clone();
        grant.apply_to(&mut prefs.consent);
    }
    prefs
}

fn grant(user_id: &str, at: Timestamp) -> ConsentEvent {
    let mut event = ConsentEvent::new(user_id, at, ConsentAction::Grant, ConsentMethod::OptInModal);
    event.ip = Some("203.0.113.7".into());
    event.user_agent = Some("Mozilla/5.0".into());
    event.disclosure_text = Some("I agree to receive recurring automated texts.".into());
    event.disclosure_version = Some("2026-11-01".into());
    event
}

fn revoke(user_id: &str, at: Timestamp, inbound: &str) -> ConsentEvent {
    let mut event = ConsentEvent::new(
        user_id,
        at,
        ConsentAction::Revoke,
        ConsentMethod::SmsKeyword,
    );
    event.phone_number = Some(PHONE.into());
    event.inbound_message_id = Some(inbound.into());
    event
}

async fn save_new(store: &PreferencesStore, prefs: &mut Preferences, events: &[ConsentEvent]) {
    assert_eq!(
        store.save(prefs, events, t0()).await.expect("save"),
        SaveOutcome::Saved
    );
}

async fn get_prefs(store: &PreferencesStore, user_id: &str) -> Preferences {
    store
        .get(user_id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("preferences of {user_id} exist"))
}

#[tokio::test]
async fn save_of_a_new_user_creates_version_one() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    assert_eq!(store.get("u-1").await.expect("get"), None);

    let mut prefs = user("u-1", Some(PHONE), false);
    let now = t0() + millis(1234);
    assert_eq!(
        store.save(&mut prefs, &[], now).await.expect("save"),
        SaveOutcome::Saved
    );
    assert_eq!(prefs.version, 1);
    assert_eq!(prefs.updated_at, Some(now));
    assert_eq!(get_prefs(&store, "u-1").await, prefs);
    assert!(
        store
            .consent_history("u-1")
            .await
            .expect("history")
            .is_empty()
    );

    // An update on the version read advances it.
    prefs.toggles.streak_alerts = false;
    prefs.phone_number = None;
    assert_eq!(
        store
            .save(&mut prefs, &[], now + millis(1))
            .await
            .expect("save"),
        SaveOutcome::Saved
    );
    assert_eq!(prefs.version, 2);
    assert_eq!(get_prefs(&store, "u-1").await, prefs);
}

#[tokio::test]
async fn save_on_a_stale_version_is_a_conflict_and_changes_nothing() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut prefs = user("u-1", Some(PHONE), true);
    save_new(&store, &mut prefs, &[grant("u-1", t0())]).await;

    // Two writers read version 1; the first one wins.
    let mut first = get_prefs(&store, "u-1").await;
    let mut second = first.clone();
    first.time_zone = Some("Europe/Paris".into());
    assert_eq!(
        store
            .save(&mut first, &[], t0() + millis(1))
            .await
            .expect("save"),
        SaveOutcome::Saved
    );
    let stored = get_prefs(&store, "u-1").await;
    let history = store.consent_history("u-1").await.expect("history");

    second.allow_sms_invitations = false;
    let revocation = revoke("u-1", t0() + millis(2), "in-1");
    revocation.apply_to(&mut second.consent);
    let before = second.clone();
    for events in [vec![], vec![revocation]] {
        assert_eq!(
            store
                .save(&mut second, &events, t0() + millis(2))
                .await
                .expect("save"),
            SaveOutcome::Conflict
        );
        assert_eq!(second, before, "the caller's copy is left as read");
        assert_eq!(get_prefs(&store, "u-1").await, stored);
        assert_eq!(
            store.consent_history("u-1").await.expect("history"),
            history
        );
    }

    // "New user" (version 0) for a user who exists is a conflict too.
    let mut fresh = user("u-1", None, false);
    assert_eq!(
        store.save(&mut fresh, &[], t0()).await.expect("save"),
        SaveOutcome::Conflict
    );
    assert_eq!(get_prefs(&store, "u-1").await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_on_one_version_exactly_one_wins() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut prefs = user("u-1", Some(PHONE), false);
    save_new(&store, &mut prefs, &[]).await;
    let barrier = Arc::new(Barrier::new(10));
    let outcomes = join_all((0..10).map(|n| {
        let (store, barrier, mut copy) = (store.clone(), barrier.clone(), prefs.clone());
        tokio::spawn(async move {
            copy.time_zone = Some(format!("Zone/{n}"));
            let event = grant("u-1", t0() + millis(n));
            barrier.wait().await;
            let outcome = store
                .save(&mut copy, &[event], t0() + millis(n))
                .await
                .expect("save");
            (outcome, copy)
        })
    }))
    .await;
    let winners: Vec<Preferences> = outcomes
        .into_iter()
        .map(|r| r.expect("task"))
        .filter(|(outcome, _)| *outcome == SaveOutcome::Saved)
        .map(|(_, copy)| copy)
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(get_prefs(&store, "u-1").await, winners[0]);
    assert_eq!(winners[0].version, 2);
    assert_eq!(
        store.consent_history("u-1").await.expect("history").len(),
        1,
        "only the winner's event is in the history"
    );
}

#[tokio::test]
async fn consent_events_are_appended_in_order_and_never_overwritten() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let at = |minute: i64| t0() + SignedDuration::from_mins(minute);

    let mut prefs = user("u-1", Some(PHONE), false);
    let first = grant("u-1", at(0));
    first.apply_to(&mut prefs.consent);
    save_new(&store, &mut prefs, std::slice::from_ref(&first)).await;
    assert!(get_prefs(&store, "u-1").await.consent.given);

    let second = revoke("u-1", at(5), "in-1");
    second.apply_to(&mut prefs.consent);
    assert_eq!(
        store
            .save(&mut prefs, std::slice::from_ref(&second), at(5))
            .await
            .expect("save"),
        SaveOutcome::Saved
    );
    let third = grant("u-1", at(9));
    third.apply_to(&mut prefs.consent);
    assert_eq!(
        store
            .save(&mut prefs, std::slice::from_ref(&third), at(9))
            .await
            .expect("save"),
        SaveOutcome::Saved
    );
    assert_eq!(prefs.version, 3);

    let history = store.consent_history("u-1").await.expect("history");
    assert_eq!(history, [first, second, third]);
    let stored = get_prefs(&store, "u-1").await;
    assert!(stored.consent.given);
    assert_eq!(stored.consent.revoked_at, Some(at(5)));
    assert_eq!(stored.consent.given_at, Some(at(9)));
    // Another user's history is their own.
    assert!(
        store
            .consent_history("u-2")
            .await
            .expect("history")
            .is_empty()
    );
}

#[tokio::test]
async fn several_events_of_one_instant_keep_the_order_they_were_saved_in() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let now = t0();
    // One save may carry several events of the same instant (phone verified, then consent
    // granted); and two saves may fall on the same millisecond. History order is save order.
    let mut verified = ConsentEvent::new(
        "u-1",
        now,
        ConsentAction::PhoneVerified,
        ConsentMethod::PhoneVerification,
    );
    verified.phone_number = Some(PHONE.into());
    let mut events = vec![verified];
    for n in 0..8 {
        let mut event = grant("u-1", now);
        event.user_agent = Some(format!("agent {n}"));
        events.push(event);
    }
    let mut prefs = user("u-1", Some(PHONE), true);
    save_new(&store, &mut prefs, &events).await;
    let late = revoke("u-1", now, "in-9");
    assert_eq!(
        store
            .save(&mut prefs, std::slice::from_ref(&late), now)
            .await
            .expect("save"),
        SaveOutcome::Saved
    );
    events.push(late);
    assert_eq!(store.consent_history("u-1").await.expect("history"), events);
}

#[tokio::test]
async fn batch_get_reads_more_than_a_hundred_users_and_leaves_out_the_missing() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut saved = Vec::new();
    for n in 0..130 {
        let mut prefs = user(&format!("u-{n:03}"), Some(PHONE), n % 2 == 0);
        save_new(&store, &mut prefs, &[]).await;
        saved.push(prefs);
    }
    let mut asked: Vec<String> = (0..150).map(|n| format!("u-{n:03}")).collect();
    // Duplicates in the request are fine (DynamoDB would refuse them within one batch).
    asked.extend(["u-001".to_owned(), "u-140".to_owned()]);
    let found = store.batch_get(&asked).await.expect("batch_get");
    assert_eq!(found.len(), 130);
    for prefs in &saved {
        assert_eq!(found.get(&prefs.user_id), Some(prefs));
    }
    for n in 130..150 {
        assert!(!found.contains_key(&format!("u-{n:03}")));
    }
    let none: &[&str] = &[];
    assert!(store.batch_get(none).await.expect("empty").is_empty());
}

#[tokio::test]
async fn find_by_phone_finds_current_items_of_every_user_of_the_number() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut a = user("u-a", Some(PHONE), true);
    save_new(&store, &mut a, &[grant("u-a", t0())]).await;
    let mut b = user("u-b", Some(PHONE), false);
    save_new(&store, &mut b, &[]).await;
    let mut c = user("u-c", Some(OTHER_PHONE), true);
    save_new(&store, &mut c, &[grant("u-c", t0())]).await;
    let mut d = user("u-d", None, false);
    save_new(&store, &mut d, &[]).await;

    let ids = |users: Vec<Preferences>| {
        let mut ids: Vec<String> = users.into_iter().map(|p| p.user_id).collect();
        ids.sort();
        ids
    };
    let found = store.find_by_phone(PHONE).await.expect("find");
    // Only the current items: the consent history of u-a is not listed.
    assert_eq!(found.len(), 2);
    assert!(found.contains(&a) && found.contains(&b));
    assert_eq!(
        ids(store.find_by_phone(OTHER_PHONE).await.expect("find")),
        ["u-c"]
    );
    assert!(
        store
            .find_by_phone("+14155550100")
            .await
            .expect("find")
            .is_empty()
    );

    // A user who changes number leaves the old number's list.
    a.phone_number = Some(OTHER_PHONE.into());
    assert_eq!(
        store.save(&mut a, &[], t0()).await.expect("save"),
        SaveOutcome::Saved
    );
    assert_eq!(
        ids(store.find_by_phone(PHONE).await.expect("find")),
        ["u-b"]
    );
    assert_eq!(
        ids(store.find_by_phone(OTHER_PHONE).await.expect("find")),
        ["u-a", "u-c"]
    );
    // ... and one who removes it leaves every list.
    b.phone_number = None;
    assert_eq!(
        store.save(&mut b, &[], t0()).await.expect("save"),
        SaveOutcome::Saved
    );
    assert!(store.find_by_phone(PHONE).await.expect("find").is_empty());
}

#[tokio::test]
async fn revoke_number_revokes_every_consenting_user_of_it_with_an_event_each() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut consenting = Vec::new();
    for id in ["u-a", "u-b"] {
        let mut prefs = user(id, Some(PHONE), true);
        save_new(&store, &mut prefs, &[grant(id, t0())]).await;
        consenting.push(prefs);
    }
    let mut without_consent = user("u-c", Some(PHONE), false);
    save_new(&store, &mut without_consent, &[]).await;
    let mut other_number = user("u-d", Some(OTHER_PHONE), true);
    save_new(&store, &mut other_number, &[grant("u-d", t0())]).await;

    let now = t0() + SignedDuration::from_hours(1);
    let revoked = store
        .revoke_number(PHONE, now, |p| revoke(&p.user_id, now, "inbound-1"))
        .await
        .expect("revoke");
    assert_eq!(revoked, 2);

    for before in &consenting {
        let after = get_prefs(&store, &before.user_id).await;
        assert!(!after.consent.given, "{}", before.user_id);
        assert_eq!(after.consent.revoked_at, Some(now));
        assert_eq!(
            after.consent.revoked_method,
            Some(ConsentMethod::SmsKeyword)
        );
        assert_eq!(
            after.consent.given_at, before.consent.given_at,
            "grant kept"
        );
        assert_eq!(after.version, before.version + 1);
        assert_eq!(after.phone_number, before.phone_number);
        let history = store
            .consent_history(&before.user_id)
            .await
            .expect("history");
        assert_eq!(
            history,
            [
                grant(&before.user_id, t0()),
                revoke(&before.user_id, now, "inbound-1")
            ]
        );
    }
    // Without consent or on another number: untouched, no event.
    assert_eq!(get_prefs(&store, "u-c").await, without_consent);
    assert!(
        store
            .consent_history("u-c")
            .await
            .expect("history")
            .is_empty()
    );
    assert_eq!(get_prefs(&store, "u-d").await, other_number);
    assert_eq!(
        store.consent_history("u-d").await.expect("history").len(),
        1
    );

    // A second STOP finds nobody left to revoke and appends nothing.
    let again = store
        .revoke_number(PHONE, now + millis(1), |p| {
            revoke(&p.user_id, now + millis(1), "inbound-2")
        })
        .await
        .expect("revoke again");
    assert_eq!(again, 0);
    assert_eq!(
        store.consent_history("u-a").await.expect("history").len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_number_rereads_a_user_saved_meanwhile() {
    let env = TestEnv::new().await;
    let store = prefs_store(&env);
    let mut prefs = user("u-a", Some(PHONE), true);
    save_new(&store, &mut prefs, &[grant("u-a", t0())]).await;
    let now = t0() + SignedDuration::from_hours(1);
    // The event builder runs after the user was read; a concurrent save moves the version on
    // the first try, so the revocation must re-read and keep the concurrent change.
    let interfering = std::sync::Mutex::new(Some(prefs.clone()));
    let store_for_race = store.clone();
    let revoked = store
        .revoke_number(PHONE, now, |p| {
            if let Some(mut copy) = interfering.lock().expect("lock").take() {
                copy.time_zone = Some("America/New_York".into());
                let outcome = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(store_for_race.save(
                        &mut copy,
                        &[],
                        now,
                    ))
                })
                .expect("interfering save");
                assert_eq!(outcome, SaveOutcome::Saved);
            }
            revoke(&p.user_id, now, "inbound-1")
        })
        .await
        .expect("revoke");
    assert_eq!(revoked, 1);
    let stored = get_prefs(&store, "u-a").await;
    assert!(!stored.consent.given);
    assert_eq!(stored.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(stored.version, 3);
    let history = store.consent_history("u-a").await.expect("history");
    assert_eq!(
        history.len(),
        2,
        "one grant, exactly one revocation: {history:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

fn verification_store(env: &TestEnv) -> VerificationStore {
    VerificationStore::new(env.dynamodb.clone(), &env.tables.verification)
}

fn code(user_id: &str, code_id: &str, now: Timestamp) -> CodeRecord {
    let now_ms = now.as_millisecond();
    CodeRecord {
        user_id: user_id.into(),
        code_id: code_id.into(),
        code_hmac: format!("{:064x}", code_id.len()),
        phone_number: PHONE.into(),
        created_at_ms: now_ms,
        expires_at_ms: now_ms + 600_000,
        resend_after_ms: now_ms + 30_000,
        attempts: 0,
        consumed: false,
        log_id: format!("verify-{code_id}"),
    }
}

/// Stores `record` as `VerificationStore::issue` does (no windows, room in the budget, a log
/// item of its own): `Issued` or `Cooldown`.
async fn put_code(env: &TestEnv, record: &CodeRecord, now: Timestamp) -> Issued {
    let budget = Reservation {
        counter: format!("counter#budget#{}", record.code_id),
        micros: 1,
        cap: 1_000,
        keep_until: now + SignedDuration::from_hours(1),
    };
    let log = Put::builder()
        .table_name(&env.tables.log)
        .item(LOG_KEY, AttributeValue::S(record.log_id.clone()))
        .build()
        .expect("log put");
    let issue = Issue {
        code: record,
        windows: &[],
        budget: &budget,
        log: &TransactWriteItem::builder().put(log).build(),
    };
    verification_store(env)
        .issue(&issue, &log_counters(env), now)
        .await
        .expect("issue")
}

/// Uses the code by its guard ([`VerificationStore::consume_guard`]) alone in a transaction.
async fn consume(
    env: &TestEnv,
    user_id: &str,
    code_id: &str,
    max_attempts: u32,
    now: Timestamp,
) -> bool {
    let guard = verification_store(env)
        .consume_guard(user_id, code_id, max_attempts, now)
        .expect("guard");
    written_alone(&env.dynamodb, guard).await
}

async fn get_code(store: &VerificationStore, user_id: &str) -> CodeRecord {
    store
        .get_code(user_id)
        .await
        .expect("get_code")
        .unwrap_or_else(|| panic!("a code for {user_id}"))
}

#[tokio::test]
async fn put_code_respects_the_resend_cooldown() {
    let env = TestEnv::new().await;
    let store = verification_store(&env);
    let now = t0();
    assert_eq!(store.get_code("u-1").await.expect("get"), None);

    let first = code("u-1", "c-1", now);
    assert_eq!(put_code(&env, &first, now).await, Issued::Issued);
    assert_eq!(get_code(&store, "u-1").await, first);

    // Inside the cooldown (to its last millisecond): refused, the first code stays.
    for early in [now + millis(1), now + millis(29_999)] {
        let second = code("u-1", "c-2", early);
        assert_eq!(
            put_code(&env, &second, early).await,
            Issued::Cooldown {
                resend_after_ms: first.resend_after_ms
            }
        );
        assert_eq!(get_code(&store, "u-1").await, first);
    }

    // From the end of the cooldown on: replaced.
    let later = now + millis(30_000);
    let second = code("u-1", "c-2", later);
    assert_eq!(put_code(&env, &second, later).await, Issued::Issued);
    assert_eq!(get_code(&store, "u-1").await, second);

    // Another user has no cooldown of this one.
    let other = code("u-2", "c-9", now + millis(1));
    assert_eq!(
        put_code(&env, &other, now + millis(1)).await,
        Issued::Issued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_put_code_stores_one_code() {
    let env = Arc::new(TestEnv::new().await);
    let store = verification_store(&env);
    let now = t0();
    let barrier = Arc::new(Barrier::new(10));
    let results = join_all((0..10).map(|n| {
        let (env, barrier) = (env.clone(), barrier.clone());
        tokio::spawn(async move {
            let record = code("u-1", &format!("c-{n}"), now);
            barrier.wait().await;
            (put_code(&env, &record, now).await, record)
        })
    }))
    .await;
    let stored: Vec<CodeRecord> = results
        .into_iter()
        .map(|r| r.expect("task"))
        .filter(|(outcome, _)| *outcome == Issued::Issued)
        .map(|(_, record)| record)
        .collect();
    assert_eq!(stored.len(), 1, "two quick requests send one code");
    assert_eq!(get_code(&store, "u-1").await, stored[0]);
}

#[tokio::test]
async fn record_wrong_attempt_counts_up_to_max_then_refuses() {
    let env = TestEnv::new().await;
    let store = verification_store(&env);
    let now = t0();
    let record = code("u-1", "c-1", now);
    put_code(&env, &record, now).await;

    assert_eq!(
        store
            .record_wrong_attempt("u-1", "c-other", 3)
            .await
            .expect("wrong id"),
        None
    );
    for n in 1..=3 {
        assert_eq!(
            store
                .record_wrong_attempt("u-1", "c-1", 3)
                .await
                .expect("attempt"),
            Some(n)
        );
    }
    assert_eq!(
        store
            .record_wrong_attempt("u-1", "c-1", 3)
            .await
            .expect("attempt"),
        None
    );
    assert_eq!(get_code(&store, "u-1").await.attempts, 3);
    // Used up: even the right code is refused now.
    assert!(!consume(&env, "u-1", "c-1", 3, now).await);
    assert!(!get_code(&store, "u-1").await.consumed);
    // No code at all.
    assert_eq!(
        store
            .record_wrong_attempt("u-9", "c-1", 3)
            .await
            .expect("no code"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_attempts_never_pass_max() {
    let env = TestEnv::new().await;
    let store = verification_store(&env);
    let now = t0();
    put_code(&env, &code("u-1", "c-1", now), now).await;
    let barrier = Arc::new(Barrier::new(20));
    let results = join_all((0..20).map(|_| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .record_wrong_attempt("u-1", "c-1", 5)
                .await
                .expect("attempt")
        })
    }))
    .await;
    let counted: BTreeSet<u32> = results
        .into_iter()
        .filter_map(|r| r.expect("task"))
        .collect();
    assert_eq!(counted, (1..=5).collect());
    assert_eq!(get_code(&store, "u-1").await.attempts, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_consumes_exactly_one_succeeds() {
    let env = Arc::new(TestEnv::new().await);
    let store = verification_store(&env);
    let now = t0();
    put_code(&env, &code("u-1", "c-1", now), now).await;
    // Some wrong guesses first; attempts left still allow the right one.
    store
        .record_wrong_attempt("u-1", "c-1", 5)
        .await
        .expect("attempt");
    let barrier = Arc::new(Barrier::new(20));
    let results = join_all((0..20).map(|_| {
        let (env, barrier) = (env.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            consume(&env, "u-1", "c-1", 5, now + millis(1000)).await
        })
    }))
    .await;
    let winners = results
        .into_iter()
        .filter(|r| *r.as_ref().expect("task"))
        .count();
    assert_eq!(winners, 1);
    let stored = get_code(&store, "u-1").await;
    assert!(stored.consumed);
    // A used code cannot be used again, nor take wrong guesses.
    assert!(!consume(&env, "u-1", "c-1", 5, now + millis(2000)).await);
    assert_eq!(
        store
            .record_wrong_attempt("u-1", "c-1", 5)
            .await
            .expect("attempt"),
        None
    );
}

#[tokio::test]
async fn consume_is_refused_after_expiry_and_for_a_replaced_code() {
    let env = TestEnv::new().await;
    let store = verification_store(&env);
    let now = t0();
    let record = code("u-1", "c-1", now);
    put_code(&env, &record, now).await;
    let expiry = Timestamp::from_millisecond(record.expires_at_ms).expect("instant");

    // From the expiry instant on, whatever TTL has done.
    for late in [expiry, expiry + SignedDuration::from_hours(1)] {
        assert!(!consume(&env, "u-1", "c-1", 5, late).await);
    }
    assert!(!get_code(&store, "u-1").await.consumed);

    // A new code replaces the old one: the old id is stale, the new one works (once).
    let later = now + SignedDuration::from_mins(1);
    let second = code("u-1", "c-2", later);
    assert_eq!(put_code(&env, &second, later).await, Issued::Issued);
    assert!(!consume(&env, "u-1", "c-1", 5, later).await);
    assert!(!get_code(&store, "u-1").await.consumed);
    assert!(consume(&env, "u-1", "c-2", 5, later).await);
    assert!(get_code(&store, "u-1").await.consumed);
    // Unknown user.
    assert!(!consume(&env, "u-9", "c-2", 5, later).await);
    assert_eq!(store.get_code("u-9").await.expect("get"), None);
}

#[tokio::test]
async fn verification_windows_are_counters_in_the_verification_table() {
    let env = TestEnv::new().await;
    let store = verification_store(&env);
    let now = t0();
    let expires = now + SignedDuration::from_hours(1);
    let windows = store.windows();
    let client = &env.dynamodb;
    for _ in 1..=5 {
        assert!(increment_within(windows, client, "rate#user#u-1", 1, 5, expires).await);
    }
    assert!(!increment_within(windows, client, "rate#user#u-1", 1, 5, expires).await);
    assert_eq!(counter_value(windows, "rate#user#u-1", now).await, 5);
    assert_eq!(counter_value(windows, "rate#user#u-1", expires).await, 0);
    // The windows live in the verification table, beside the codes, not in the log table.
    let item = env
        .dynamodb
        .get_item()
        .table_name(&env.tables.verification)
        .key(VERIFICATION_KEY, AttributeValue::S("rate#user#u-1".into()))
        .send()
        .await
        .expect("get item");
    assert!(item.item.is_some());
    assert_eq!(
        counter_value(&log_counters(&env), "rate#user#u-1", now).await,
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_tables_twice_is_fine_and_keeps_the_data() {
    let env = TestEnv::new().await;
    let log = log_store(&env);
    claimed(
        log.claim(&new_record("req-1", "u-1", None), t0(), LEASE)
            .await
            .expect("claim"),
    );
    stack::create_tables(&env.dynamodb, &env.tables)
        .await
        .expect("second create");
    stack::create_tables(&env.dynamodb, &env.tables)
        .await
        .expect("third create");
    assert_eq!(get_log(&log, "req-1").await.status, LogStatus::Pending);
}

/// (partition key, sort key) attribute names.
type KeyNames = (Option<String>, Option<String>);

#[tokio::test]
async fn table_specs_match_what_describe_table_reports() {
    let env = TestEnv::new().await;
    let specs = table_specs(&env.tables);
    assert_eq!(
        specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        [
            env.tables.log.as_str(),
            env.tables.preferences.as_str(),
            env.tables.verification.as_str()
        ]
    );
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> KeyNames {
        let mut pk = None;
        let mut sk = None;
        for element in schema {
            match element.key_type() {
                KeyType::Hash => pk = Some(element.attribute_name().to_owned()),
                KeyType::Range => sk = Some(element.attribute_name().to_owned()),
                other => panic!("unexpected key type {other:?}"),
            }
        }
        (pk, sk)
    };
    for spec in &specs {
        let table = env
            .dynamodb
            .describe_table()
            .table_name(&spec.name)
            .send()
            .await
            .expect("describe")
            .table
            .expect("table description");
        assert_eq!(
            keys(table.key_schema()),
            (
                Some(spec.partition_key.to_owned()),
                spec.sort_key.map(str::to_owned)
            ),
            "{}",
            spec.name
        );
        let attributes: HashSet<(String, ScalarAttributeType)> = table
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name().to_owned(), a.attribute_type().clone()))
            .collect();
        let expected: HashSet<(String, ScalarAttributeType)> = spec
            .attributes
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), kind.clone()))
            .collect();
        assert_eq!(attributes, expected, "{}", spec.name);
        if let Some(billing) = table.billing_mode_summary() {
            assert_eq!(
                billing.billing_mode(),
                Some(&BillingMode::PayPerRequest),
                "{}",
                spec.name
            );
        }

        let mut indexes: Vec<(String, KeyNames)> = table
            .global_secondary_indexes()
            .iter()
            .map(|index| {
                assert_eq!(
                    index.projection().and_then(|p| p.projection_type()),
                    Some(&ProjectionType::All),
                    "{}",
                    spec.name
                );
                (
                    index.index_name().unwrap_or_default().to_owned(),
                    keys(index.key_schema()),
                )
            })
            .collect();
        indexes.sort();
        let mut expected_indexes: Vec<(String, KeyNames)> = spec
            .indexes
            .iter()
            .map(|(name, pk, sk)| {
                (
                    (*name).to_owned(),
                    (Some((*pk).to_owned()), sk.map(str::to_owned)),
                )
            })
            .collect();
        expected_indexes.sort();
        assert_eq!(indexes, expected_indexes, "{}", spec.name);

        let ttl = env
            .dynamodb
            .describe_time_to_live()
            .table_name(&spec.name)
            .send()
            .await
            .expect("describe ttl")
            .time_to_live_description
            .expect("ttl description");
        match spec.ttl_attribute {
            Some(attribute) => {
                assert_eq!(
                    ttl.time_to_live_status(),
                    Some(&TimeToLiveStatus::Enabled),
                    "{}",
                    spec.name
                );
                assert_eq!(ttl.attribute_name(), Some(attribute), "{}", spec.name);
            }
            None => assert_ne!(
                ttl.time_to_live_status(),
                Some(&TimeToLiveStatus::Enabled),
                "{}",
                spec.name
            ),
        }
    }
    // The indexes the stores query are among them.
    assert!(
        specs[0]
            .indexes
            .iter()
            .any(|(name, _, _)| *name == schema::LOG_BY_USER_INDEX)
    );
    assert!(
        specs[0]
            .indexes
            .iter()
            .any(|(name, _, _)| *name == schema::LOG_BY_PROVIDER_ID_INDEX)
    );
    assert!(
        specs[1]
            .indexes
            .iter()
            .any(|(name, _, _)| *name == schema::PREFS_BY_PHONE_INDEX)
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager (the keys read once per cold start, §5)
// ---------------------------------------------------------------------------------------------

mod keys {
    use integration_tests::TestEnv;
    use integration_tests::local_stack::{LOCAL_JWT_SIGNING_KEY, create_secrets, put_secret};
    use sms_shared::auth::Authenticator;
    use sms_shared::config::{AuthMode, AuthSettings};
    use sms_shared::secrets::{SecretError, read_key};

    fn settings(mode: AuthMode, secret: Option<String>) -> AuthSettings {
        AuthSettings {
            mode,
            algorithm: jsonwebtoken::Algorithm::HS256,
            jwt_key_secret_id: secret,
            user_claim: "sub".into(),
            allowed_origins: vec![],
        }
    }

    #[tokio::test]
    async fn keys_come_from_their_secrets_and_bad_ones_stop_the_start() {
        let env = TestEnv::new().await;
        let client = aws_sdk_secretsmanager::Client::new(&env.sdk);
        let (jwt, _) = create_secrets(&env.sdk, &env.prefix).await.unwrap();
        let key = read_key(&client, "JWT_SIGNING_KEY_SECRET_ID", Some(&jwt))
            .await
            .unwrap();
        assert_eq!(key.expose(), LOCAL_JWT_SIGNING_KEY.as_bytes());

        // No variable, no secret, a short key: each is an init error that says why.
        let err = read_key(&client, "JWT_SIGNING_KEY_SECRET_ID", None)
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::NotConfigured { .. }), "{err}");
        assert!(
            err.to_string().contains("JWT_SIGNING_KEY_SECRET_ID"),
            "{err}"
        );
        let missing = format!("{}no-such-secret", env.prefix);
        let err = read_key(&client, "X", Some(&missing)).await.unwrap_err();
        assert!(matches!(err, SecretError::Read { .. }), "{err}");
        let short = put_secret(&client, &format!("{}short", env.prefix), "0123456789")
            .await
            .unwrap();
        let err = read_key(&client, "X", Some(&short)).await.unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(
            !err.to_string().contains("0123456789"),
            "never the key: {err}"
        );

        // The authenticator reads the key only where it checks tokens itself.
        assert!(
            Authenticator::load(&settings(AuthMode::AppJwt, Some(jwt)), &client)
                .await
                .is_ok()
        );
        assert!(
            Authenticator::load(&settings(AuthMode::AppJwt, Some(short)), &client)
                .await
                .is_err()
        );
        assert!(
            Authenticator::load(&settings(AuthMode::AppJwt, None), &client)
                .await
                .is_err()
        );
        assert!(
            Authenticator::load(&settings(AuthMode::ApigwJwt, None), &client)
                .await
                .is_ok()
        );
    }
}
