//! `opt-in-api` through its real handler against moto (DESIGN §5, §9).

#[path = "api_common.rs"]
mod api_common;

use api_common::{Api, Edit, as_user, request};
use jiff::SignedDuration;
use serde_json::{Value, json};
use sms_shared::preferences::{ConsentAction, ConsentMethod};

const PROMPT: &str = "http-opt-in-get";
const OPT_IN: &str = "http-opt-in-post";
const PREFS: &str = "http-preferences-get";
const PATCH: &str = "http-preferences-patch";
const UA: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15";

fn defaults() -> Value {
    json!({
        "allowSmsInvitations": false,
        "phoneNumber": null,
        "phoneVerified": false,
        "smsBattleInvitations": true,
        "smsBattleResults": true,
        "smsBattleReminders": true,
        "smsStreakAlerts": true,
        "smsDirectMessages": true,
        "smsAchievements": true,
        "timeZone": null,
        "hasConsent": false,
        "consentGivenAt": null,
    })
}

#[tokio::test]
async fn the_event_files_route_as_they_are() {
    let api = Api::new().await;
    for (name, status) in [
        (PROMPT, 200),
        (PREFS, 200),
        (PATCH, 200),
        (OPT_IN, 200),
        ("http-opt-in-dismiss", 200),
    ] {
        let reply = api.call(request(name, Edit::default())).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    }
}

#[tokio::test]
async fn prompt_shows_once_then_not_for_24_hours() {
    let api = Api::new().await;
    let reply = api.call(as_user(PROMPT, "u-1", None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"showPrompt": true, "alreadyOptedIn": false, "phoneNumber": null, "phoneVerified": false})
    );
    assert_eq!(
        api.prefs("u-1").await.unwrap().prompt.shown_at,
        Some(api.now()),
        "the first true records promptShownAt"
    );
    let again = api.call(as_user(PROMPT, "u-1", None)).await;
    assert_eq!(again.body["showPrompt"], false);
    api.clock.advance(SignedDuration::from_hours(23));
    assert_eq!(
        api.call(as_user(PROMPT, "u-1", None)).await.body["showPrompt"],
        false
    );
    api.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(
        api.call(as_user(PROMPT, "u-1", None)).await.body["showPrompt"],
        true
    );
}

#[tokio::test]
async fn dismiss_and_remind_later_hide_the_prompt() {
    let api = Api::new().await;
    let reply = api
        .call(as_user(OPT_IN, "u-d", Some(json!({"action": "dismiss"}))))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        json!({"success": true, "allowSmsInvitations": false})
    );
    api.clock.advance(SignedDuration::from_hours(24 * 30));
    assert_eq!(
        api.call(as_user(PROMPT, "u-d", None)).await.body["showPrompt"],
        false
    );

    let reply = api
        .call(as_user(
            OPT_IN,
            "u-r",
            Some(json!({"action": "remind_later"})),
        ))
        .await;
    assert_eq!(
        reply.body,
        json!({"success": true, "allowSmsInvitations": false})
    );
    assert_eq!(
        api.call(as_user(PROMPT, "u-r", None)).await.body["showPrompt"],
        false
    );
    api.clock.advance(SignedDuration::from_hours(72));
    assert_eq!(
        api.call(as_user(PROMPT, "u-r", None)).await.body["showPrompt"],
        true
    );
    assert!(
        api.history("u-d").await.is_empty(),
        "no consent from a dismissal"
    );
}

#[tokio::test]
async fn opt_in_turns_the_switch_on_and_records_consent() {
    let api = Api::new().await;
    let body = json!({"action": "opt_in", "phoneNumber": "(415) 555-0123", "timeZone": "America/Los_Angeles"});
    let reply = api.call(as_user(OPT_IN, "u-2", Some(body))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"success": true, "allowSmsInvitations": true})
    );

    let prefs = api.call(as_user(PREFS, "u-2", None)).await;
    let mut expected = defaults();
    expected["allowSmsInvitations"] = json!(true);
    expected["phoneNumber"] = json!("+14155550123");
    expected["timeZone"] = json!("America/Los_Angeles");
    expected["hasConsent"] = json!(true);
    expected["consentGivenAt"] = json!("2026-11-25T12:00:00Z");
    assert_eq!(prefs.body, expected);

    let history = api.history("u-2").await;
    assert_eq!(history.len(), 1);
    let grant = &history[0];
    assert_eq!(grant.action, ConsentAction::Grant);
    assert_eq!(grant.method, ConsentMethod::OptInModal);
    assert_eq!(grant.at, api.now());
    assert_eq!(grant.phone_number.as_deref(), Some("+14155550123"));
    assert_eq!(grant.ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(grant.user_agent.as_deref(), Some(UA));
    assert_eq!(
        grant.disclosure_version.as_deref(),
        Some(api.config.consent_text_version.as_str())
    );
    assert_eq!(
        grant.disclosure_text.as_deref(),
        Some(api.config.consent_text.as_str())
    );

    let prompt = api.call(as_user(PROMPT, "u-2", None)).await;
    assert_eq!(
        prompt.body,
        json!({"showPrompt": false, "alreadyOptedIn": true, "phoneNumber": "+14155550123", "phoneVerified": false})
    );
}

#[tokio::test]
async fn opt_in_without_any_number_is_refused() {
    let api = Api::new().await;
    let reply = api
        .call(as_user(OPT_IN, "u-3", Some(json!({"action": "opt_in"}))))
        .await;
    reply.assert_error(400, "phone_number_required");
    assert!(api.prefs("u-3").await.is_none());
}

#[tokio::test]
async fn preferences_of_a_new_user_are_the_defaults() {
    let api = Api::new().await;
    let reply = api.call(as_user(PREFS, "u-new", None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, defaults());
    assert!(api.prefs("u-new").await.is_none(), "a read writes nothing");
}

#[tokio::test]
async fn patch_updates_toggles_and_zone_and_names_what_it_updated() {
    let api = Api::new().await;
    let body = json!({"smsBattleReminders": false, "smsAchievements": false, "timeZone": "America/Chicago"});
    let reply = api.call(as_user(PATCH, "u-4", Some(body))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut expected = defaults();
    expected["smsBattleReminders"] = json!(false);
    expected["smsAchievements"] = json!(false);
    expected["timeZone"] = json!("America/Chicago");
    let mut full = expected.clone();
    full["success"] = json!(true);
    full["updated"] = json!(["smsBattleReminders", "smsAchievements", "timeZone"]);
    assert_eq!(reply.body, full);
    assert_eq!(api.call(as_user(PREFS, "u-4", None)).await.body, expected);

    // null clears the zone; an empty PATCH changes nothing.
    let reply = api
        .call(as_user(PATCH, "u-4", Some(json!({"timeZone": null}))))
        .await;
    assert_eq!(reply.body["timeZone"], Value::Null);
    let version = api.prefs("u-4").await.unwrap().version;
    let reply = api.call(as_user(PATCH, "u-4", Some(json!({})))).await;
    assert_eq!(reply.body["updated"], json!([]));
    assert_eq!(api.prefs("u-4").await.unwrap().version, version);
}

#[tokio::test]
async fn master_switch_on_grants_and_off_revokes_consent() {
    let api = Api::new().await;
    let on = json!({"allowSmsInvitations": true, "phoneNumber": "+14155550123"});
    let reply = api.call(as_user(PATCH, "u-5", Some(on))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["hasConsent"], true);
    assert_eq!(reply.body["allowSmsInvitations"], true);
    assert_eq!(
        reply.body["updated"],
        json!(["allowSmsInvitations", "phoneNumber"])
    );

    api.clock.advance(SignedDuration::from_mins(5));
    let reply = api
        .call(as_user(
            PATCH,
            "u-5",
            Some(json!({"allowSmsInvitations": false})),
        ))
        .await;
    assert_eq!(reply.body["hasConsent"], false);
    assert_eq!(reply.body["consentGivenAt"], Value::Null);
    assert_eq!(reply.body["allowSmsInvitations"], false);

    let history = api.history("u-5").await;
    let kinds: Vec<_> = history.iter().map(|e| (e.action, e.method)).collect();
    assert_eq!(
        kinds,
        [
            (ConsentAction::Grant, ConsentMethod::SettingsPage),
            (ConsentAction::Revoke, ConsentMethod::SettingsPage)
        ]
    );
    assert_eq!(history[1].ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        history[0].disclosure_version.as_deref(),
        Some(api.config.consent_text_version.as_str())
    );
    let prefs = api.prefs("u-5").await.unwrap();
    assert_eq!(
        prefs.consent.revoked_method,
        Some(ConsentMethod::SettingsPage)
    );
}

#[tokio::test]
async fn a_new_phone_number_resets_verification() {
    let api = Api::new().await;
    let store = api.preferences_store();
    let mut p = sms_shared::preferences::Preferences::new("u-6");
    p.phone_number = Some("+14155550123".into());
    p.phone_verified = true;
    p.phone_verified_at = Some(api.now());
    store.save(&mut p, &[], api.now()).await.unwrap();

    let same = api
        .call(as_user(
            PATCH,
            "u-6",
            Some(json!({"phoneNumber": "+1 415 555 0123"})),
        ))
        .await;
    assert_eq!(
        same.body["phoneVerified"], true,
        "the same number stays verified"
    );
    let new = api
        .call(as_user(
            PATCH,
            "u-6",
            Some(json!({"phoneNumber": "+1 415 555 0199"})),
        ))
        .await;
    assert_eq!(new.status, 200);
    assert_eq!(new.body["phoneNumber"], "+14155550199");
    assert_eq!(new.body["phoneVerified"], false);
    assert_eq!(api.prefs("u-6").await.unwrap().phone_verified_at, None);
}

#[tokio::test]
async fn one_user_never_reads_or_changes_another() {
    let api = Api::new().await;
    let body = json!({"action": "opt_in", "phoneNumber": "+14155550123"});
    assert_eq!(
        api.call(as_user(OPT_IN, "alice", Some(body))).await.status,
        200
    );
    let before = api.prefs("alice").await.unwrap();

    // Bob sees only his own (default) preferences.
    assert_eq!(api.call(as_user(PREFS, "bob", None)).await.body, defaults());
    let prompt = api.call(as_user(PROMPT, "bob", None)).await;
    assert_eq!(prompt.body["phoneNumber"], Value::Null);
    // Bob's writes land on Bob; there is no field or path that names another user.
    let off = json!({"allowSmsInvitations": false, "smsBattleInvitations": false});
    assert_eq!(api.call(as_user(PATCH, "bob", Some(off))).await.status, 200);
    let named = api
        .call(as_user(
            PATCH,
            "bob",
            Some(json!({"userId": "alice", "smsStreakAlerts": false})),
        ))
        .await;
    named.assert_error(400, "unknown_field");
    assert_eq!(api.prefs("alice").await.unwrap(), before);
    assert_eq!(api.history("alice").await.len(), 1);
}

#[tokio::test]
async fn no_identity_is_401_and_the_dev_header_is_off_by_default() {
    let api = Api::new().await;
    let anonymous = |name| {
        request(
            name,
            Edit {
                user: Some(None),
                headers: vec![("x-dev-user-id", "u-dev")],
                ..Edit::default()
            },
        )
    };
    for name in [PROMPT, PREFS, PATCH, OPT_IN] {
        api.call(anonymous(name))
            .await
            .assert_error(401, "unauthorized");
    }
    assert!(api.prefs("u-dev").await.is_none());

    // Only an explicit DEV_AUTH_HEADER=true (never set by template.yaml) accepts the header.
    let dev = Api::with(&[("DEV_AUTH_HEADER", "true")]).await;
    let reply = dev.call(anonymous(PATCH)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert!(dev.prefs("u-dev").await.is_some());
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let api = Api::new().await;
    let reply = api
        .call(request(
            PREFS,
            Edit {
                path: Some("/notifications/me/other/"),
                ..Edit::default()
            },
        ))
        .await;
    reply.assert_error(404, "not_found");
    let reply = api
        .call(request(
            PREFS,
            Edit {
                method: Some("DELETE"),
                ..Edit::default()
            },
        ))
        .await;
    reply.assert_error(405, "method_not_allowed");
    let reply = api
        .call(request(
            PROMPT,
            Edit {
                method: Some("PATCH"),
                ..Edit::default()
            },
        ))
        .await;
    reply.assert_error(405, "method_not_allowed");
    // Without the trailing slash the routes are the same.
    let reply = api
        .call(request(
            PREFS,
            Edit {
                path: Some("/notifications/me/sms-preferences"),
                ..Edit::default()
            },
        ))
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn bad_inputs_are_refused_and_change_nothing() {
    let api = Api::new().await;
    // A user with some state to protect.
    let body =
        json!({"action": "opt_in", "phoneNumber": "+14155550123", "timeZone": "America/Chicago"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-7", Some(body))).await.status,
        200
    );
    let before = api.prefs("u-7").await.unwrap();
    let history_before = api.history("u-7").await;

    let big = format!(r#"{{"timeZone": "{}"}}"#, "x".repeat(17 * 1024));
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (PATCH, "not json".into(), None, 400, "invalid_json"),
        (
            PATCH,
            r#"{"smsStreakAlerts": false"#.into(),
            None,
            400,
            "invalid_json",
        ),
        (PATCH, "[]".into(), None, 400, "invalid_json"),
        (PATCH, "".into(), None, 400, "invalid_json"),
        (
            PATCH,
            r#"{"smsStreakAlerts": "no"}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            r#"{"smsStreakAlerts": null}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            r#"{"smsStreakAlerts": 0}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            r#"{"allowSmsInvitations": false, "sms_streak_alerts": false}"#.into(),
            None,
            400,
            "unknown_field",
        ),
        (
            PATCH,
            r#"{"phoneVerified": true}"#.into(),
            None,
            400,
            "read_only_field",
        ),
        (
            PATCH,
            r#"{"hasConsent": false}"#.into(),
            None,
            400,
            "read_only_field",
        ),
        (
            PATCH,
            r#"{"allowSmsInvitations": false, "phoneNumber": "12"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            PATCH,
            r#"{"allowSmsInvitations": false, "phoneNumber": "+44 20 7946 0958"}"#.into(),
            None,
            400,
            "country_not_supported",
        ),
        (
            PATCH,
            r#"{"allowSmsInvitations": false, "timeZone": "Mars/Olympus"}"#.into(),
            None,
            400,
            "invalid_time_zone",
        ),
        (
            PATCH,
            r#"{"smsStreakAlerts": false, "smsStreakAlerts": true}"#.into(),
            None,
            400,
            "duplicate_field",
        ),
        (PATCH, big.clone(), None, 413, "payload_too_large"),
        (
            PATCH,
            r#"{"allowSmsInvitations": false}"#.into(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            OPT_IN,
            r#"{"action": "subscribe"}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            OPT_IN,
            r#"{"phoneNumber": "+14155550123"}"#.into(),
            None,
            400,
            "missing_field",
        ),
        (
            OPT_IN,
            r#"{"action": "dismiss", "extra": 1}"#.into(),
            None,
            400,
            "unknown_field",
        ),
        (
            OPT_IN,
            r#"{"action": "dismiss", "phoneNumber": "nope"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            OPT_IN,
            r#"{"action": "opt_in", "timeZone": 5}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (OPT_IN, big, None, 413, "payload_too_large"),
    ];
    for (name, body, content_type, status, code) in cases {
        let reply = api
            .call(request(
                name,
                Edit {
                    user: Some(Some("u-7")),
                    body: Some(body.clone()),
                    content_type: content_type.map(Some),
                    ..Edit::default()
                },
            ))
            .await;
        assert_eq!(reply.status, status, "{name} {body:.80}: {:?}", reply.body);
        reply.assert_error(status, code);
        assert_eq!(
            api.prefs("u-7").await.unwrap(),
            before,
            "{name} {body:.80} changed state"
        );
    }
    assert_eq!(api.history("u-7").await, history_before);
}

#[tokio::test]
async fn concurrent_patches_lose_no_update() {
    let api = Api::new().await;
    assert_eq!(api.call(as_user(PREFS, "u-8", None)).await.status, 200);
    let fields = [
        "smsBattleInvitations",
        "smsBattleResults",
        "smsStreakAlerts",
    ];
    let replies = futures_util::future::join_all(
        fields
            .iter()
            .map(|f| api.call(as_user(PATCH, "u-8", Some(json!({ *f: false }))))),
    )
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let view = api.call(as_user(PREFS, "u-8", None)).await.body;
    for f in fields {
        assert_eq!(view[f], false, "{f} was lost");
    }
}
