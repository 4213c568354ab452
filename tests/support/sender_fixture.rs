//! A `sender` wired to moto and the SMS stub, with helpers to create users and requests:
//! shared by the sender tests, the reliability suite and the benchmarks.

use crate::counting::{RequestCounter, counting_dynamodb};
use crate::iam::Recorder;
use crate::sqs::{delete_records, deliver, make_visible, receive_event};
use crate::{SmsStub, TestEnv};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use sender::{Disposition, Outcome, Sender, Settled};
use sms_shared::Clock;
use sms_shared::MessageKind;
use sms_shared::clock::ManualClock;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::request::SendRequest;
use sms_shared::sms::EumSender;
use sms_shared::store::{LogRecord, LogStore, PreferencesStore, SaveOutcome};
use std::sync::Arc;

/// Wednesday 2026-11-25 18:00 UTC: 10:00 in Los Angeles, 13:00 in New York: open everywhere.
pub const NOON: &str = "2026-11-25T18:00:00Z";
pub const PHONE: &str = "+14155550123";

pub struct Fixture {
    pub env: TestEnv,
    pub stub: SmsStub,
    pub clock: Arc<ManualClock>,
    pub sender: Sender<EumSender>,
    pub prefs: PreferencesStore,
    pub log: LogStore,
    pub dynamodb_requests: RequestCounter,
    /// The sender's AWS calls, refused when its role in `template.yaml` does not allow them.
    pub calls: Recorder,
}

impl Fixture {
    pub async fn new(extra: &[(&str, &str)]) -> Fixture {
        Self::with_dynamodb(TestEnv::new().await, extra, None).await
    }

    /// A fixture whose sender talks to DynamoDB through `dynamodb` (e.g. via a fault proxy);
    /// setup and assertions still use `env`'s direct client.
    pub async fn with_dynamodb(
        env: TestEnv,
        extra: &[(&str, &str)],
        dynamodb: Option<aws_sdk_dynamodb::Client>,
    ) -> Fixture {
        let stub = SmsStub::start().await;
        let mut vars = vec![
            ("SMS_SENDER", "eum"),
            ("ORIGINATION_IDENTITY", "+18005550100"),
            ("SMS_PARTS_PER_SECOND", "1000"),
        ];
        vars.extend_from_slice(extra);
        let config = env.config_with(&vars);
        let calls = Recorder::new("sender", &env.vars_with(&vars));
        let clock = Arc::new(ManualClock::new(NOON.parse().unwrap()));
        let (counted, dynamodb_requests) = counting_dynamodb(&env.sdk);
        let dynamodb = dynamodb.unwrap_or(counted);
        let sender = Sender::new(
            &config,
            calls.dynamodb(&dynamodb),
            calls.sqs(&env.sqs),
            EumSender::new(calls.sms(&stub.client()), &config.sms),
            clock.clone(),
        );
        Fixture {
            prefs: PreferencesStore::new(env.dynamodb.clone(), &env.tables.preferences),
            log: LogStore::new(env.dynamodb.clone(), &env.tables.log),
            env,
            stub,
            clock,
            sender,
            dynamodb_requests,
            calls,
        }
    }

    /// A user who opted in, verified `phone` and left every toggle on.
    pub async fn opted_in_user(&self, user: &str, phone: &str, zone: Option<&str>) -> Preferences {
        self.save_user(user, |p| {
            consented_number(p, phone);
            p.time_zone = zone.map(Into::into);
        })
        .await
    }

    /// Saves an opted-in user after `change`.
    pub async fn save_user(
        &self,
        user: &str,
        change: impl FnOnce(&mut Preferences),
    ) -> Preferences {
        let now = self.clock.now();
        let mut prefs = Preferences::new(user);
        prefs.phone_number = Some(PHONE.into());
        prefs.phone_verified = true;
        prefs.allow_sms_invitations = true;
        let mut grant =
            ConsentEvent::new(user, now, ConsentAction::Grant, ConsentMethod::OptInModal);
        grant.phone_number = prefs.phone_number.clone();
        grant.apply_to(&mut prefs.consent);
        change(&mut prefs);
        assert_eq!(
            self.prefs.save(&mut prefs, &[grant], now).await.unwrap(),
            SaveOutcome::Saved
        );
        prefs
    }

    pub async fn run(&self, queue: &str, bodies: &[String]) -> Vec<(SqsEvent, SqsBatchResponse)> {
        let mut results = Vec::new();
        for event in deliver(&self.env, queue, bodies).await {
            let response = self.sender.handle(event.clone()).await.unwrap();
            results.push((event, response));
        }
        results
    }

    /// Delivers `bodies` and returns each body's outcome, in order.
    pub async fn outcomes(&self, queue: &str, bodies: &[String]) -> Vec<Outcome> {
        let mut out = Vec::new();
        for event in deliver(&self.env, queue, bodies).await {
            out.extend(self.sender.process(&event).await);
        }
        out
    }

    /// What Lambda's event source mapping does with a batch of `queue`: the sender settles
    /// it, and the records it acknowledged are deleted. Returns each record's settlement.
    pub async fn settle_as_lambda(&self, queue: &str, event: &SqsEvent) -> Vec<Settled> {
        let settled = self.sender.settle_batch(event, None).await;
        let acknowledged = event
            .records
            .iter()
            .zip(&settled)
            .filter(|(_, s)| s.disposition == Disposition::Acknowledge)
            .map(|(r, _)| r);
        delete_records(&self.env, queue, acknowledged).await;
        settled
    }

    /// What SQS does when the visibility of the records of `event` runs out (however long
    /// the sender set it): they become visible now and are received again, with their
    /// receive counts one higher. Returns what was received (up to 10 messages).
    pub async fn receive_again(&self, queue: &str, event: &SqsEvent) -> SqsEvent {
        make_visible(&self.env, queue, event).await;
        receive_event(&self.env, queue, 10).await
    }

    pub async fn record(&self, id: &str) -> LogRecord {
        self.log
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no log record {id}"))
    }

    pub fn notifications(&self) -> String {
        self.env.queues.notifications.clone()
    }

    pub fn transactional(&self) -> String {
        self.env.queues.transactional.clone()
    }
}

/// A valid request body of `kind` for `user`.
pub fn request(id: &str, kind: MessageKind, user: &str) -> String {
    let params: &[(&str, serde_json::Value)] = match kind {
        MessageKind::BattleInvitation => &[
            ("inviter_name", "Ada".into()),
            ("battle_topic", "Haiku".into()),
            ("invitation_link", "https://example.com/b/1".into()),
        ],
        MessageKind::StreakAlert => &[
            ("streak_count", 7.into()),
            ("action_link", "https://example.com/play".into()),
        ],
        MessageKind::SecurityAlert => &[
            ("summary", "New sign-in".into()),
            ("link", "https://example.com/security".into()),
        ],
        other => panic!("no sample params for {other}"),
    };
    let mut builder = SendRequest::builder(id, kind, user);
    for (name, value) in params {
        builder = builder.param(name, value.clone());
    }
    serde_json::to_string(&builder.build().unwrap()).unwrap()
}

pub fn invitation(id: &str, user: &str) -> String {
    request(id, MessageKind::BattleInvitation, user)
}

pub fn with_id(body: &str, id: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["id"] = id.into();
    value.to_string()
}

/// Gives `p` the verified number `phone`, with consent for it (§4: consent is bound to a
/// number, so a test that changes the number must say the consent covers the new one).
pub fn consented_number(p: &mut Preferences, phone: &str) {
    p.phone_number = Some(phone.to_owned());
    p.consent.phone_number = Some(phone.to_owned());
}
