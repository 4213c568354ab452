//! Every branch of the handler against the in-memory fake of the preferences ports
//! ([`sms_shared::opt_in::memory`]): the requests are the payload v2 events of `events/`, the
//! user the authorizer's claim. The store and the stories end to end are tested against moto
//! (`tests/it/opt_in_api.rs`).

use crate::{State, handler};
use jiff::{SignedDuration, Timestamp};
use lambda_http::Request;
use serde_json::{Value, json};
use sms_shared::Config;
use sms_shared::auth::Authenticator;
use sms_shared::clock::{Clock, ManualClock};
use sms_shared::disclosure;
use sms_shared::http::testing::{self, Reply};
use sms_shared::opt_in::memory::MemoryPreferences;
use sms_shared::preferences::{ConsentAction, ConsentMethod, Preferences};
use std::collections::HashMap;
use std::sync::Arc;

const NUMBER: &str = "+14155550123";
const OPT_IN_GET: &str = "http-opt-in-get";
const OPT_IN_POST: &str = "http-opt-in-post";
const PREFS_GET: &str = "http-preferences-get";
const PREFS_PATCH: &str = "http-preferences-patch";

struct Test {
    state: State<MemoryPreferences>,
    clock: Arc<ManualClock>,
}

/// The event `events/<name>.json` as `user` (none: no identity), changed by `edit`.
fn event(name: &str, user: Option<&str>, edit: impl FnOnce(&mut Value)) -> Request {
    lambda_http::request::from_str(&testing::event(name, user, edit)).unwrap()
}

fn body(value: Value) -> impl FnOnce(&mut Value) {
    move |e| e["body"] = value.to_string().into()
}

impl Test {
    fn new() -> Test {
        let config = Config::from_map(&HashMap::new()).unwrap();
        let clock = Arc::new(ManualClock::new(
            "2026-11-25T12:00:00Z".parse::<Timestamp>().unwrap(),
        ));
        let ports = MemoryPreferences::new(config.branding.clone(), &config.allowed_countries);
        Test {
            state: State {
                auth: Authenticator::apigw_jwt("sub", Vec::new()),
                ports,
                clock: clock.clone(),
                config,
            },
            clock,
        }
    }

    fn fake(&self) -> &MemoryPreferences {
        &self.state.ports
    }

    async fn call(&self, request: Request) -> Reply {
        Reply::of(&handler(&self.state, request).await.unwrap())
    }

    async fn post(&self, user: &str, value: Value) -> Reply {
        self.call(event(OPT_IN_POST, Some(user), body(value))).await
    }

    async fn patch(&self, user: &str, value: Value) -> Reply {
        self.call(event(PREFS_PATCH, Some(user), body(value))).await
    }

    async fn prompt(&self, user: &str) -> Reply {
        self.call(event(OPT_IN_GET, Some(user), |_| {})).await
    }

    async fn preferences(&self, user: &str) -> Reply {
        self.call(event(PREFS_GET, Some(user), |_| {})).await
    }

    fn verified(&self, user: &str) {
        let mut p = Preferences::new(user);
        p.phone_number = Some(NUMBER.into());
        p.phone_verified = true;
        self.fake().insert(p);
    }
}

// ---- routes ----

#[tokio::test]
async fn unknown_paths_are_404_other_methods_405_and_no_identity_401() {
    let t = Test::new();
    let other = event(OPT_IN_GET, Some("u-1"), |e| {
        e["rawPath"] = "/api/v1/notifications/other/".into();
    });
    t.call(other).await.assert_error(404, "not_found");
    let outside = event(OPT_IN_GET, Some("u-1"), |e| {
        e["rawPath"] = "/v2/notifications/sms-opt-in/".into();
    });
    t.call(outside).await.assert_error(404, "not_found");
    for (name, method, allow) in [
        (OPT_IN_GET, "PATCH", "GET, POST"),
        (PREFS_GET, "POST", "GET, PATCH"),
    ] {
        let request = event(name, Some("u-1"), |e| {
            e["requestContext"]["http"]["method"] = method.into();
        });
        let reply = t.call(request).await;
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some(allow));
    }
    t.call(event(PREFS_GET, None, |_| {}))
        .await
        .assert_error(401, "unauthorized");
    assert!(t.fake().get("u-1").is_none(), "nothing written");
}

// ---- the prompt ----

#[tokio::test]
async fn the_prompt_shows_once_then_not_for_24_hours() {
    let t = Test::new();
    let reply = t.prompt("u-1").await;
    assert_eq!(
        reply.body,
        json!({"show_prompt": true, "already_opted_in": false, "phone_number": "", "phone_verified": false})
    );
    assert_eq!(
        t.fake().get("u-1").unwrap().prompt.shown_at,
        Some(t.clock.now())
    );
    assert_eq!(t.prompt("u-1").await.body["show_prompt"], false);
    t.clock.advance(SignedDuration::from_hours(24));
    assert_eq!(t.prompt("u-1").await.body["show_prompt"], true);
}

#[tokio::test]
async fn dismiss_hides_the_prompt_and_remind_later_for_72_hours() {
    let t = Test::new();
    assert_eq!(
        t.post("u-d", json!({"action": "dismiss"})).await.status,
        200
    );
    assert_eq!(t.prompt("u-d").await.body["show_prompt"], false);
    let reply = t.post("u-r", json!({"action": "remind_later"})).await;
    assert_eq!(
        reply.body,
        json!({"success": true, "allow_sms_invitations": false})
    );
    t.clock.advance(SignedDuration::from_hours(71));
    assert_eq!(t.prompt("u-r").await.body["show_prompt"], false);
    t.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(t.prompt("u-r").await.body["show_prompt"], true);
    assert!(t.fake().history().is_empty(), "no consent event");
}

// ---- opting in ----

#[tokio::test]
async fn the_modal_opt_in_grants_a_pending_consent_with_the_disclosure() {
    let t = Test::new();
    let reply = t.post("u-1", json!({"action": "opt_in"})).await;
    assert_eq!(
        reply.body,
        json!({"success": true, "allow_sms_invitations": true})
    );
    let history = t.fake().history();
    assert_eq!(history.len(), 1);
    let grant = &history[0];
    assert_eq!(grant.action, ConsentAction::Grant);
    assert_eq!(grant.method, ConsentMethod::OptInModal);
    assert_eq!(grant.phone_number, None, "pending: no number yet");
    assert_eq!(grant.ip.as_deref(), Some("203.0.113.9"));
    assert!(grant.user_agent.is_some());
    assert_eq!(
        grant.disclosure_version.as_deref(),
        Some(disclosure::CURRENT)
    );
    assert!(
        grant
            .disclosure_text
            .as_deref()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(
        t.fake().sent().is_empty(),
        "no verified number to confirm to"
    );
    // Opted in: no prompt; a repeated opt-in is recorded too.
    assert_eq!(t.prompt("u-1").await.body["already_opted_in"], true);
    t.post("u-1", json!({"action": "opt_in"})).await;
    assert_eq!(t.fake().history().len(), 2);
}

#[tokio::test]
async fn an_opt_in_on_a_verified_number_sends_one_confirmation_in_the_users_language() {
    let t = Test::new();
    t.verified("u-1");
    let reply = t
        .call(event(OPT_IN_POST, Some("u-1"), |e| {
            e["headers"]["accept-language"] = "es-MX,es;q=0.9".into();
        }))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent = t.fake().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].confirmation.to, NUMBER);
    assert_eq!(sent[0].confirmation.locale.as_str(), "es");
    // Consent stands: the switch turned on again confirms nothing.
    t.patch("u-1", json!({"allow_sms_invitations": true})).await;
    assert_eq!(t.fake().sent().len(), 1);
}

#[tokio::test]
async fn an_opt_in_answers_the_same_when_its_confirmation_fails() {
    let t = Test::new();
    t.verified("u-1");
    t.fake().refuse_sends();
    let reply = t.post("u-1", json!({"action": "opt_in"})).await;
    assert_eq!(
        reply.body,
        json!({"success": true, "allow_sms_invitations": true})
    );
}

#[tokio::test]
async fn bad_fields_are_400_with_details_and_change_nothing() {
    let t = Test::new();
    for (value, code, field) in [
        (
            json!({"action": "opt_in", "phone_number": "12"}),
            "invalid_phone_number",
            "phone_number",
        ),
        (
            json!({"action": "opt_in", "phone_number": "+447911123456"}),
            "country_not_supported",
            "phone_number",
        ),
        (
            json!({"action": "opt_in", "time_zone": "Mars/Olympus"}),
            "invalid_time_zone",
            "time_zone",
        ),
        (
            json!({"action": "opt_in", "disclosure_version": "1999"}),
            "unknown_disclosure_version",
            "disclosure_version",
        ),
        (
            json!({"action": "opt_in", "locale": "fr"}),
            "invalid_locale",
            "locale",
        ),
        (json!({"action": "subscribe"}), "invalid_field", "action"),
    ] {
        let reply = t.post("u-1", value.clone()).await;
        reply.assert_error(400, code);
        assert!(
            reply.body["details"][field].is_array(),
            "{value}: {}",
            reply.body
        );
    }
    t.post("u-1", json!({"action": "opt_in", "userId": "u-2"}))
        .await
        .assert_error(400, "unknown_field");
    let reply = t.patch("u-1", json!({"phone_verified": true})).await;
    reply.assert_error(400, "read_only_field");
    assert!(reply.body["details"]["phone_verified"].is_array());
    t.patch("u-1", json!({"sms_achievements": null}))
        .await
        .assert_error(400, "invalid_field");
    assert!(t.fake().get("u-1").is_none());
}

// ---- the preferences ----

#[tokio::test]
async fn a_new_user_gets_the_defaults_and_writes_nothing() {
    let t = Test::new();
    let reply = t.preferences("u-new").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["allow_sms_invitations"], false);
    assert_eq!(reply.body["phone_number"], "");
    assert_eq!(reply.body["has_consent"], false);
    assert_eq!(reply.body["consent_given_at"], Value::Null);
    assert_eq!(reply.body["locale"], "en");
    assert!(t.fake().get("u-new").is_none());
}

#[tokio::test]
async fn patch_names_what_it_updated() {
    let t = Test::new();
    let reply = t.call(event(PREFS_PATCH, Some("u-1"), |_| {})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["updated"],
        json!(["sms_battle_reminders", "time_zone"])
    );
    assert_eq!(reply.body["sms_battle_reminders"], false);
    assert_eq!(reply.body["time_zone"], "America/Chicago");
    assert_eq!(
        t.preferences("u-1").await.body["time_zone"],
        "America/Chicago"
    );
}

#[tokio::test]
async fn the_switch_grants_and_revokes_and_a_new_number_resets_verification() {
    let t = Test::new();
    t.verified("u-1");
    let on = t.patch("u-1", json!({"allow_sms_invitations": true})).await;
    assert_eq!(on.body["has_consent"], true);
    assert_eq!(
        t.fake().sent().len(),
        1,
        "confirmed: a grant on a verified number"
    );
    let off = t
        .patch("u-1", json!({"allow_sms_invitations": false}))
        .await;
    assert_eq!(off.body["has_consent"], false);
    let actions: Vec<_> = t
        .fake()
        .history()
        .iter()
        .map(|e| (e.action, e.method))
        .collect();
    assert_eq!(
        actions,
        [
            (ConsentAction::Grant, ConsentMethod::SettingsPage),
            (ConsentAction::Revoke, ConsentMethod::SettingsPage)
        ]
    );
    let moved = t
        .patch("u-1", json!({"phone_number": "+14155550199"}))
        .await;
    assert_eq!(moved.body["phone_verified"], false);
    assert_eq!(moved.body["phone_number"], "+14155550199");
    let cleared = t.patch("u-1", json!({"phone_number": ""})).await;
    assert_eq!(cleared.body["phone_number"], "");
}

#[tokio::test]
async fn contended_writes_are_409_and_store_faults_500() {
    let t = Test::new();
    t.fake().lose_saves(usize::MAX);
    t.post("u-1", json!({"action": "opt_in"}))
        .await
        .assert_error(409, "conflict");
    t.patch("u-1", json!({"sms_achievements": false}))
        .await
        .assert_error(409, "conflict");
    assert!(t.fake().get("u-1").is_none());
    t.fake().lose_saves(0);
    t.fake().break_store(true);
    for reply in [t.preferences("u-1").await, t.prompt("u-1").await] {
        reply.assert_error(500, "internal_error");
        assert_eq!(reply.body["request_id"], "JKJaXmPLvHcESHA=");
    }
}

#[tokio::test]
async fn a_lost_race_is_retried_and_the_update_lands() {
    let t = Test::new();
    t.fake().lose_saves(2);
    let reply = t.patch("u-1", json!({"sms_achievements": false})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!t.fake().get("u-1").unwrap().toggles.achievements);
}
