//! Unit tests of every branch of the handler, against the in-memory fakes (`fakes.rs`): each
//! outcome of DESIGN §6, the consent rules of §4 and the caps of §7 as the handler applies
//! them, and the DynamoDB requests a batch costs. The moto tests (`tests/it/sender.rs`,
//! `reliability.rs`, `functions/sender/tests/processes.rs`) run the same stories through the
//! real stores.

use crate::fakes::{Fake, FakeSms};
use crate::{Disposition, Outcome, Ports, Sender, Settled};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use jiff::{SignedDuration, Timestamp};
use sms_shared::Config;
use sms_shared::clock::ManualClock;
use sms_shared::consent::SuppressReason;
use sms_shared::kinds::MessageKind;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::request::SendRequest;
use sms_shared::sms::{SentSms, SmsError};
use sms_shared::store::LogStatus;
use std::collections::HashMap;
use std::sync::Arc;

/// Wednesday 2026-11-25 18:00 UTC: 10:00 in Los Angeles, open everywhere.
const NOON: &str = "2026-11-25T18:00:00Z";
const PHONE: &str = "+14155550123";
const MIAMI: &str = "+13055550123";

struct Harness {
    fake: Fake,
    clock: Arc<ManualClock>,
    sender: Sender<FakeSms, Ports<Fake, Fake, Fake>>,
}

fn harness(vars: &[(&str, &str)]) -> Harness {
    let mut map: HashMap<String, String> = [
        ("SMS_PARTS_PER_SECOND", "1000"),
        ("SEND_TAKEOVER_WAIT_SECONDS", "600"),
        ("SEND_CLAIM_LEASE_SECONDS", "120"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in vars {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = Config::from_map(&map).expect("config");
    let fake = Fake::default();
    fake.world().takeover_wait = config.takeover_wait;
    let clock = Arc::new(ManualClock::new(NOON.parse().unwrap()));
    let ports = Ports {
        store: fake.clone(),
        opt_outs: fake.clone(),
        queues: fake.clone(),
    };
    let sender = Sender::with_ports(&config, ports, FakeSms::default(), clock.clone());
    Harness {
        fake,
        clock,
        sender,
    }
}

impl Harness {
    fn now(&self) -> Timestamp {
        sms_shared::Clock::now(&*self.clock)
    }

    /// A user who consented for `phone`, verified it and left every toggle on.
    fn user(&self, user: &str, phone: &str) -> &Self {
        self.user_with(user, phone, |_| {})
    }

    fn user_with(&self, user: &str, phone: &str, change: impl FnOnce(&mut Preferences)) -> &Self {
        let mut p = Preferences::new(user);
        p.phone_number = Some(phone.to_owned());
        p.phone_verified = true;
        p.allow_sms_invitations = true;
        let mut grant = ConsentEvent::new(
            user,
            self.now(),
            ConsentAction::Grant,
            ConsentMethod::OptInModal,
        );
        grant.phone_number = Some(phone.to_owned());
        grant.apply_to(&mut p.consent);
        change(&mut p);
        self.fake.world().preferences.insert(user.to_owned(), p);
        self
    }

    async fn run(&self, bodies: &[String]) -> Vec<Settled> {
        self.sender.settle_batch(&event(bodies), None).await
    }

    async fn outcomes(&self, bodies: &[String]) -> Vec<Outcome> {
        self.run(bodies)
            .await
            .into_iter()
            .map(|s| s.outcome)
            .collect()
    }

    fn status(&self, id: &str) -> LogStatus {
        self.fake.world().records[id].0.status
    }

    fn calls(&self) -> usize {
        self.sender.sms().calls().len()
    }

    fn requests(&self) -> usize {
        let w = self.fake.world();
        w.reads + w.writes
    }
}

fn event(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut record = SqsMessage::default();
        record.message_id = Some(format!("m-{i}"));
        record.receipt_handle = Some(format!("h-{i}"));
        record.body = Some(body.clone());
        record.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:notifications".into());
        event.records.push(record);
    }
    event
}

fn request(id: &str, kind: MessageKind, user: &str) -> String {
    let params: &[(&str, serde_json::Value)] = match kind {
        MessageKind::BattleInvitation => &[
            ("inviter_name", "Ada".into()),
            ("battle_topic", "Haiku".into()),
            ("invitation_link", "https://example.com/b/1".into()),
        ],
        _ => &[
            ("summary", "New sign-in".into()),
            ("link", "https://example.com/security".into()),
        ],
    };
    let mut builder = SendRequest::builder(id, kind, user);
    for (name, value) in params {
        builder = builder.param(name, value.clone());
    }
    serde_json::to_string(&builder.build().unwrap()).unwrap()
}

fn invitation(id: &str, user: &str) -> String {
    request(id, MessageKind::BattleInvitation, user)
}

fn alert(id: &str, user: &str) -> String {
    request(id, MessageKind::SecurityAlert, user)
}

fn transient() -> SmsError {
    SmsError::Transient {
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    }
}

#[tokio::test]
async fn a_batch_of_ten_costs_one_read_and_three_writes() {
    let h = harness(&[("SENDER_CONCURRENCY", "10")]);
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            h.user(&format!("u-{i}"), &format!("+1415555{:04}", 200 + i));
            invitation(&format!("r-{i}"), &format!("u-{i}"))
        })
        .collect();
    let outcomes = h.outcomes(&bodies).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Sent), "{outcomes:?}");
    assert_eq!(h.calls(), 10);
    // The read; claims with the caps; attempts; outcomes.
    assert_eq!(h.requests(), 4, "{:?}", h.fake.world().steps);
    let w = h.fake.world();
    assert_eq!(w.steps[0].iter().filter(|k| **k == "claim").count(), 10);
    assert_eq!(w.steps[0].iter().filter(|k| **k == "day").count(), 10);
    assert!(w.steps[1].iter().all(|k| *k == "attempt"));
    assert!(w.steps[2].iter().all(|k| *k == "finish"));
}

#[tokio::test]
async fn an_invalid_body_is_dead_lettered_and_claims_nothing() {
    let h = harness(&[]);
    let outcomes = h.outcomes(&["not json".to_owned()]).await;
    assert!(
        matches!(
            &outcomes[..],
            [Outcome::Rejected {
                dead_lettered: true,
                ..
            }]
        ),
        "{outcomes:?}"
    );
    assert_eq!(h.fake.world().dead_letters.len(), 1);
    assert!(h.fake.world().records.is_empty());
    assert_eq!(h.requests(), 0, "an invalid body costs no DynamoDB request");
}

#[tokio::test]
async fn past_not_after_is_claimed_straight_into_expired() {
    let h = harness(&[]);
    h.user("u", PHONE);
    let mut body: serde_json::Value = serde_json::from_str(&invitation("old", "u")).unwrap();
    body["notAfter"] = "2026-11-25T17:00:00Z".into();
    let outcomes = h.outcomes(&[body.to_string()]).await;
    assert_eq!(outcomes, [Outcome::Expired]);
    assert_eq!(h.status("old"), LogStatus::Expired);
    assert_eq!(h.calls(), 0);
    assert_eq!(
        h.fake.world().writes,
        1,
        "one write: the claim is the outcome"
    );
}

#[tokio::test]
async fn a_request_already_settled_is_a_duplicate() {
    let h = harness(&[]);
    h.user("u", PHONE);
    assert_eq!(h.outcomes(&[invitation("r", "u")]).await, [Outcome::Sent]);
    let again = h.run(&[invitation("r", "u")]).await;
    assert_eq!(again[0].outcome, Outcome::Duplicate);
    assert_eq!(again[0].disposition, Disposition::Acknowledge);
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn a_request_another_invocation_holds_waits_for_its_lease() {
    let h = harness(&[]);
    h.user("u", PHONE);
    // Another invocation claimed it a moment ago (its lease runs 120 s).
    h.fake.world().unreachable_from_write = Some(2);
    let first = h.outcomes(&[invitation("r", "u")]).await;
    assert_eq!(
        first,
        [Outcome::Retry {
            reason: "store_unavailable"
        }]
    );
    h.fake.world().unreachable_from_write = None;
    assert_eq!(h.status("r"), LogStatus::Pending);

    let busy = h.run(&[invitation("r", "u")]).await;
    assert_eq!(
        busy[0].outcome,
        Outcome::Retry {
            reason: "in_flight"
        }
    );
    assert_eq!(busy[0].disposition, Disposition::HandBack);
    assert_eq!(
        h.fake.world().later.last(),
        Some(&SignedDuration::from_secs(120))
    );
    assert_eq!(h.calls(), 0);

    // After the lease, the next delivery takes it over and sends it, once.
    h.clock.advance(SignedDuration::from_secs(121));
    assert_eq!(h.outcomes(&[invitation("r", "u")]).await, [Outcome::Sent]);
    assert_eq!(h.calls(), 1);
    assert_eq!(h.fake.world().records["r"].0.attempts, 2);
}

#[tokio::test]
async fn the_same_request_twice_in_a_batch_is_sent_once() {
    let h = harness(&[]);
    h.user("u", PHONE);
    let outcomes = h
        .outcomes(&[invitation("r", "u"), invitation("r", "u")])
        .await;
    assert_eq!(
        outcomes,
        [
            Outcome::Sent,
            Outcome::Retry {
                reason: "in_flight"
            }
        ]
    );
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn quiet_hours_defer_until_the_window_opens() {
    let h = harness(&[]);
    // 23:00 in Chicago.
    h.clock.set("2026-11-26T05:00:00Z".parse().unwrap());
    h.user_with("u", PHONE, |p| p.time_zone = Some("America/Chicago".into()));
    let settled = h.run(&[invitation("night", "u")]).await;
    let eight_am: Timestamp = "2026-11-26T14:00:00Z".parse().unwrap();
    assert_eq!(settled[0].outcome, Outcome::Deferred { until: eight_am });
    assert_eq!(settled[0].disposition, Disposition::HandBack);
    assert_eq!(h.status("night"), LogStatus::Deferred);
    assert_eq!(
        h.fake.world().records["night"].0.lease_until_ms,
        eight_am.as_millisecond()
    );
    assert_eq!(h.calls(), 0);
    // Security alerts ignore the window.
    assert_eq!(h.outcomes(&[alert("sec", "u")]).await, [Outcome::Sent]);
}

#[tokio::test]
async fn each_consent_rule_suppresses_with_its_reason() {
    let h = harness(&[]);
    type Change = fn(&mut Preferences);
    let cases: [(&str, Change, SuppressReason); 11] = [
        (
            "no-phone",
            |p| p.phone_number = None,
            SuppressReason::NoPhoneNumber,
        ),
        (
            "bad-phone",
            |p| p.phone_number = Some("12".into()),
            SuppressReason::InvalidPhoneNumber,
        ),
        (
            "unverified",
            |p| p.phone_verified = false,
            SuppressReason::PhoneNotVerified,
        ),
        (
            "no-consent",
            |p| p.consent = Default::default(),
            SuppressReason::NoConsent,
        ),
        (
            "revoked",
            |p| {
                ConsentEvent::new(
                    &p.user_id,
                    p.consent.given_at.unwrap(),
                    ConsentAction::Revoke,
                    ConsentMethod::SmsKeyword,
                )
                .apply_to(&mut p.consent)
            },
            SuppressReason::ConsentRevoked,
        ),
        (
            "master-off",
            |p| p.allow_sms_invitations = false,
            SuppressReason::MasterSwitchOff,
        ),
        (
            "category-off",
            |p| {
                p.toggles
                    .set(sms_shared::Category::BattleInvitations, false)
            },
            SuppressReason::CategoryOff,
        ),
        (
            "other-number",
            |p| p.phone_number = Some("+14155550177".into()),
            SuppressReason::NoConsentForNumber,
        ),
        (
            // The modal's grant before it bound to a verified number.
            "pending",
            |p| {
                p.consent.phone_number = None;
                p.consent.pending_until = p
                    .consent
                    .given_at
                    .map(|t| t + jiff::SignedDuration::from_hours(720));
            },
            SuppressReason::NoConsentForNumber,
        ),
        (
            "foreign",
            |p| {
                p.phone_number = Some("+442079460958".into());
                p.consent.phone_number = p.phone_number.clone();
            },
            SuppressReason::CountryNotAllowed,
        ),
        (
            "undeliverable",
            |p| p.phone_undeliverable_at = Some(p.consent.given_at.unwrap()),
            SuppressReason::NumberUndeliverable,
        ),
    ];
    let mut bodies = Vec::new();
    for (user, change, _) in &cases {
        h.user_with(user, PHONE, change);
        bodies.push(invitation(&format!("rule-{user}"), user));
    }
    bodies.push(invitation("rule-nobody", "nobody"));
    let outcomes = h.outcomes(&bodies).await;
    let expected: Vec<Outcome> = cases
        .iter()
        .map(|(_, _, reason)| Outcome::Suppressed(*reason))
        .chain([Outcome::Suppressed(SuppressReason::UnknownUser)])
        .collect();
    assert_eq!(outcomes, expected);
    for (user, _, reason) in &cases {
        let w = h.fake.world();
        let record = &w.records[&format!("rule-{user}")].0;
        assert_eq!(record.status, LogStatus::Suppressed);
        assert_eq!(record.reason.as_deref(), Some(reason.as_str()));
    }
    assert_eq!(h.calls(), 0);
    assert_eq!(
        h.fake.world().writes,
        1,
        "the claims are the outcomes: one write"
    );
}

#[tokio::test]
async fn the_daily_cap_admits_exactly_the_room_left() {
    let h = harness(&[("DAILY_PROMOTIONAL_CAP", "3")]);
    h.user("u", PHONE);
    h.fake.world().today.insert("u".into(), 1);
    let bodies: Vec<String> = (0..4).map(|i| invitation(&format!("c-{i}"), "u")).collect();
    let outcomes = h.outcomes(&bodies).await;
    let capped = Outcome::Suppressed(SuppressReason::DailyCap);
    assert_eq!(
        outcomes,
        [Outcome::Sent, Outcome::Sent, capped.clone(), capped.clone()]
    );
    assert_eq!(
        h.fake.world().today["u"],
        3,
        "the counter holds the cap, never more"
    );
    // Full: the next one is capped before any call; security alerts are not.
    assert_eq!(h.outcomes(&[invitation("c-9", "u")]).await, [capped]);
    assert_eq!(h.outcomes(&[alert("a", "u")]).await, [Outcome::Sent]);
    assert_eq!(h.calls(), 3);
}

#[tokio::test]
async fn a_counter_that_moved_since_the_read_is_decided_again() {
    let h = harness(&[("DAILY_PROMOTIONAL_CAP", "2")]);
    h.user("u", PHONE);
    // Another invocation counts one of its sends between this batch's read and its claims.
    h.fake.world().count_after_read = Some(("u".into(), 1));
    let outcomes = h
        .outcomes(&[invitation("n-1", "u"), invitation("n-2", "u")])
        .await;
    assert_eq!(
        outcomes,
        [Outcome::Sent, Outcome::Suppressed(SuppressReason::DailyCap)]
    );
    assert_eq!(h.fake.world().today["u"], 2, "never over the cap");
    let w = h.fake.world();
    assert_eq!(
        w.steps[0],
        ["claim", "claim", "day"],
        "the first claims, cancelled"
    );
    assert_eq!(
        w.steps[1],
        ["claim", "claim", "day"],
        "decided again on the count found"
    );
}

#[tokio::test]
async fn florida_numbers_get_at_most_three_in_a_rolling_day() {
    let h = harness(&[]);
    h.user("miami", MIAMI);
    let bodies: Vec<String> = (0..4)
        .map(|i| invitation(&format!("fl-{i}"), "miami"))
        .collect();
    let outcomes = h.outcomes(&bodies).await;
    let state = Outcome::Suppressed(SuppressReason::StateCap);
    assert_eq!(
        outcomes,
        [Outcome::Sent, Outcome::Sent, Outcome::Sent, state.clone()]
    );
    assert_eq!(h.fake.world().windows["miami"].0.len(), 3);
    // 6 h later (19:00 in Miami): still full. 24 h after the first: room again.
    h.clock.advance(SignedDuration::from_hours(6));
    assert_eq!(h.outcomes(&[invitation("fl-5", "miami")]).await, [state]);
    h.clock
        .advance(SignedDuration::from_hours(18) + SignedDuration::from_secs(1));
    assert_eq!(
        h.outcomes(&[invitation("fl-6", "miami")]).await,
        [Outcome::Sent]
    );
}

#[tokio::test]
async fn the_spend_caps_stop_promotional_then_everything() {
    let h = harness(&[
        ("MONTHLY_SPEND_CAP_USD", "1"),
        ("TRANSACTIONAL_HARD_CAP_USD", "5"),
    ]);
    h.user("u", PHONE);
    h.fake.world().spend_micros = 1_500_000;
    let outcomes = h.outcomes(&[invitation("p", "u"), alert("a", "u")]).await;
    assert_eq!(
        outcomes,
        [
            Outcome::Suppressed(SuppressReason::SpendLimit),
            Outcome::Sent
        ]
    );
    h.fake.world().spend_micros = 5_000_000;
    let outcomes = h.outcomes(&[alert("a-2", "u")]).await;
    assert_eq!(
        outcomes,
        [Outcome::Suppressed(SuppressReason::HardSpendCap)]
    );
}

#[tokio::test]
async fn the_providers_spend_limit_suppresses_promotional_and_retries_transactional() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(SmsError::SpendLimitReached));
    h.sender.sms().answer(Err(SmsError::SpendLimitReached));
    let outcomes = h.outcomes(&[invitation("p", "u")]).await;
    assert_eq!(outcomes, [Outcome::Suppressed(SuppressReason::SpendLimit)]);
    assert_eq!(h.fake.world().today["u"], 0, "the slot is given back");
    let outcomes = h.outcomes(&[alert("a", "u")]).await;
    assert_eq!(
        outcomes,
        [Outcome::Retry {
            reason: "spend_limit"
        }]
    );
    assert_eq!(h.status("a"), LogStatus::Retry);
}

#[tokio::test]
async fn a_carrier_opt_out_suppresses_and_revokes_the_number() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(SmsError::OptedOut));
    let outcomes = h.outcomes(&[invitation("oo", "u")]).await;
    assert_eq!(
        outcomes,
        [Outcome::Suppressed(SuppressReason::CarrierOptedOut)]
    );
    assert_eq!(h.fake.world().revoked, [PHONE]);
    assert_eq!(h.status("oo"), LogStatus::Suppressed);
}

#[tokio::test]
async fn a_permanent_refusal_is_rejected_and_acknowledged() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(SmsError::Permanent {
        code: "ValidationException".into(),
        message: "no".into(),
    }));
    let settled = h.run(&[invitation("bad", "u")]).await;
    assert_eq!(
        settled[0].outcome,
        Outcome::Rejected {
            reason: "provider_ValidationException".into(),
            dead_lettered: false
        }
    );
    assert_eq!(settled[0].disposition, Disposition::Acknowledge);
    assert_eq!(h.status("bad"), LogStatus::Rejected);
}

#[tokio::test]
async fn a_transient_error_is_retried_and_its_slot_given_back() {
    let h = harness(&[("DAILY_PROMOTIONAL_CAP", "1")]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(transient()));
    let settled = h.run(&[invitation("t", "u")]).await;
    assert_eq!(
        settled[0].outcome,
        Outcome::Retry {
            reason: "provider_transient"
        }
    );
    assert_eq!(settled[0].disposition, Disposition::HandBack);
    assert_eq!(h.status("t"), LogStatus::Retry);
    assert_eq!(h.fake.world().today["u"], 0);
    // The redelivery claims it at once and sends it: the given-back slot is its room.
    assert_eq!(h.outcomes(&[invitation("t", "u")]).await, [Outcome::Sent]);
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn an_answer_lost_leaves_the_attempt_in_doubt_and_holds_the_slot() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(SmsError::InDoubt {
        code: "timeout".into(),
        message: "no answer".into(),
    }));
    let outcomes = h.outcomes(&[invitation("d", "u")]).await;
    assert_eq!(outcomes, [Outcome::Retry { reason: "in_doubt" }]);
    assert_eq!(h.status("d"), LogStatus::Sending);
    assert_eq!(
        h.fake.world().today["u"],
        1,
        "maybe sent: the slot stays taken"
    );
    // Redelivered before the wait: busy; after it, a promotional request ends unknown.
    assert_eq!(
        h.outcomes(&[invitation("d", "u")]).await,
        [Outcome::Retry { reason: "in_doubt" }]
    );
    h.clock.advance(SignedDuration::from_secs(601));
    assert_eq!(
        h.outcomes(&[invitation("d", "u")]).await,
        [Outcome::Unknown]
    );
    assert_eq!(h.status("d"), LogStatus::Unknown);
    assert_eq!(h.calls(), 1, "never sent again");
}

#[tokio::test]
async fn a_transactional_attempt_in_doubt_is_sent_once_more_after_the_wait() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().answer(Err(SmsError::InDoubt {
        code: "timeout".into(),
        message: "no answer".into(),
    }));
    assert_eq!(
        h.outcomes(&[alert("a", "u")]).await,
        [Outcome::Retry { reason: "in_doubt" }]
    );
    h.clock.advance(SignedDuration::from_secs(601));
    assert_eq!(h.outcomes(&[alert("a", "u")]).await, [Outcome::Sent]);
    assert_eq!(h.calls(), 2);
    assert_eq!(h.fake.world().records["a"].0.send_attempts, 2);
}

#[tokio::test]
async fn sent_but_not_recorded_stays_sending_and_is_not_acknowledged() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.sender.sms().break_store_after_call(&h.fake);
    let settled = h.run(&[invitation("s", "u")]).await;
    assert_eq!(
        settled[0].outcome,
        Outcome::Retry {
            reason: "sent_not_recorded"
        }
    );
    assert_eq!(settled[0].disposition, Disposition::HandBack);
    assert_eq!(
        h.status("s"),
        LogStatus::Sending,
        "its attempt is on record"
    );
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn a_store_fault_before_the_attempt_sends_nothing() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.fake.world().unreachable_from_write = Some(2);
    let outcomes = h.outcomes(&[invitation("f", "u")]).await;
    assert_eq!(
        outcomes,
        [Outcome::Retry {
            reason: "store_unavailable"
        }]
    );
    assert_eq!(h.calls(), 0);
    assert_eq!(h.status("f"), LogStatus::Pending);
}

#[tokio::test]
async fn a_store_fault_on_the_read_retries_the_whole_batch() {
    let h = harness(&[]);
    h.user("u", PHONE);
    h.fake.world().unreachable_from_write = Some(1);
    let outcomes = h
        .outcomes(&[invitation("a", "u"), invitation("b", "u")])
        .await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Retry { .. })),
        "{outcomes:?}"
    );
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn a_cancelled_claim_step_drops_the_taken_record_and_claims_the_rest() {
    let h = harness(&[]);
    for u in ["a", "b", "c"] {
        h.user(u, &format!("+141555501{}", u.as_bytes()[0] - b'a' + 10));
    }
    // "b" was already sent by an earlier delivery.
    assert_eq!(h.outcomes(&[invitation("b", "b")]).await, [Outcome::Sent]);
    let before = h.requests();
    let outcomes = h
        .outcomes(&[
            invitation("a", "a"),
            invitation("b", "b"),
            invitation("c", "c"),
        ])
        .await;
    assert_eq!(outcomes, [Outcome::Sent, Outcome::Duplicate, Outcome::Sent]);
    // The read, the cancelled claims, the claims again without "b", attempts, outcomes.
    assert_eq!(h.requests() - before, 5);
    let w = h.fake.world();
    let claims: Vec<usize> = w.steps[w.steps.len() - 4..]
        .iter()
        .map(|s| s.iter().filter(|k| **k == "claim").count())
        .collect();
    assert_eq!(claims, [3, 2, 0, 0]);
    assert_eq!(w.today["b"], 1, "the duplicate counted nothing");
    drop(w);
    assert_eq!(h.calls(), 3);
}

#[tokio::test]
async fn past_the_latest_start_nothing_is_claimed() {
    let h = harness(&[]);
    h.user("u", PHONE);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let settled = h
        .sender
        .settle_batch(&event(&[invitation("late", "u")]), Some(deadline))
        .await;
    assert_eq!(settled[0].outcome, Outcome::Retry { reason: "deadline" });
    assert_eq!(settled[0].disposition, Disposition::HandBack);
    assert!(h.fake.world().records.is_empty(), "not even claimed");
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn what_the_pace_cannot_start_before_the_deadline_is_handed_back() {
    // 0.98 parts a second: one part at once, the next a second later.
    let h = harness(&[
        ("SMS_PARTS_PER_SECOND", "1"),
        ("SENDER_MAX_CONCURRENCY", "1"),
        ("SENDER_DEADLINE_MARGIN_SECONDS", "1"),
    ]);
    h.user("a", PHONE).user("b", "+14155550124");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(1_500);
    let settled = h
        .sender
        .settle_batch(
            &event(&[invitation("a", "a"), invitation("b", "b")]),
            Some(deadline),
        )
        .await;
    let outcomes: Vec<&Outcome> = settled.iter().map(|s| &s.outcome).collect();
    assert_eq!(
        outcomes,
        [&Outcome::Sent, &Outcome::Retry { reason: "deadline" }]
    );
    assert_eq!(settled[1].disposition, Disposition::HandBack);
    assert_eq!(
        h.status("b"),
        LogStatus::Retry,
        "released: claimable at once"
    );
    assert_eq!(h.fake.world().today["b"], 0, "its slot given back");
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn throttling_answers_slow_the_pace() {
    let h = harness(&[]);
    h.user("u", PHONE);
    let before = h.sender.pacer.rate();
    h.sender.sms().answer(Err(transient()));
    h.outcomes(&[invitation("t", "u")]).await;
    assert!(h.sender.pacer.rate() < before);
    h.sender.sms().answer(Ok(SentSms {
        message_id: "x".into(),
    }));
}
