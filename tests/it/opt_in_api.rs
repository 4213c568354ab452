//! `opt-in-api` through its real handler against moto (DESIGN §5, §9).

use crate::api_common::{Api, Edit, access_token, as_user, request, trips_row};
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
        "allow_sms_invitations": false,
        "phone_number": "",
        "phone_verified": false,
        "sms_battle_invitations": true,
        "sms_battle_results": true,
        "sms_battle_reminders": true,
        "sms_streak_alerts": true,
        "sms_direct_messages": true,
        "sms_achievements": true,
        "time_zone": null,
        "locale": "en",
        "has_consent": false,
        "consent_given_at": null,
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
        json!({"show_prompt": true, "already_opted_in": false, "phone_number": "", "phone_verified": false})
    );
    assert_eq!(
        api.prefs("u-1").await.unwrap().prompt.shown_at,
        Some(api.now()),
        "the first true records promptShownAt"
    );
    let again = api.call(as_user(PROMPT, "u-1", None)).await;
    assert_eq!(again.body["show_prompt"], false);
    api.clock.advance(SignedDuration::from_hours(23));
    assert_eq!(
        api.call(as_user(PROMPT, "u-1", None)).await.body["show_prompt"],
        false
    );
    api.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(
        api.call(as_user(PROMPT, "u-1", None)).await.body["show_prompt"],
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
        json!({"success": true, "allow_sms_invitations": false})
    );
    api.clock.advance(SignedDuration::from_hours(24 * 30));
    assert_eq!(
        api.call(as_user(PROMPT, "u-d", None)).await.body["show_prompt"],
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
        json!({"success": true, "allow_sms_invitations": false})
    );
    assert_eq!(
        api.call(as_user(PROMPT, "u-r", None)).await.body["show_prompt"],
        false
    );
    api.clock.advance(SignedDuration::from_hours(72));
    assert_eq!(
        api.call(as_user(PROMPT, "u-r", None)).await.body["show_prompt"],
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
    let body = json!({"action": "opt_in", "phone_number": "(415) 555-0123", "time_zone": "America/Los_Angeles"});
    let reply = api.call(as_user(OPT_IN, "u-2", Some(body))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"success": true, "allow_sms_invitations": true})
    );

    let prefs = api.call(as_user(PREFS, "u-2", None)).await;
    let mut expected = defaults();
    expected["allow_sms_invitations"] = json!(true);
    expected["phone_number"] = json!("+14155550123");
    expected["time_zone"] = json!("America/Los_Angeles");
    expected["has_consent"] = json!(true);
    expected["consent_given_at"] = json!("2026-11-25T12:00:00Z");
    assert_eq!(prefs.body, expected);

    let history = api.history("u-2").await;
    assert_eq!(history.len(), 1);
    let grant = &history[0];
    assert_eq!(grant.action, ConsentAction::Grant);
    assert_eq!(grant.method, ConsentMethod::OptInModal);
    assert_eq!(grant.at, api.now());
    assert_eq!(
        grant.phone_number, None,
        "the number is not verified yet: the grant is pending (§4)"
    );
    assert_eq!(grant.ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(grant.user_agent.as_deref(), Some(UA));
    let current = sms_shared::disclosure::lookup(None).unwrap();
    assert_eq!(grant.disclosure_version.as_deref(), Some(current.version));
    assert_eq!(grant.disclosure_text.as_deref(), Some(current.text));

    let prompt = api.call(as_user(PROMPT, "u-2", None)).await;
    assert_eq!(
        prompt.body,
        json!({"show_prompt": false, "already_opted_in": true, "phone_number": "+14155550123", "phone_verified": false})
    );
}

#[tokio::test]
async fn the_modal_opts_in_without_a_number_and_the_grant_is_pending() {
    let api = Api::new().await;
    // The modal posts only the action (§5).
    let reply = api
        .call(as_user(OPT_IN, "u-3", Some(json!({"action": "opt_in"}))))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"success": true, "allow_sms_invitations": true})
    );
    let prompt = api.call(as_user(PROMPT, "u-3", None)).await;
    assert_eq!(prompt.body["already_opted_in"], true);
    assert_eq!(prompt.body["show_prompt"], false);
    let grant = &api.history("u-3").await[0];
    assert_eq!(grant.phone_number, None, "pending: no number yet");
    let prefs = api.prefs("u-3").await.unwrap();
    assert!(prefs.consent.pending_at(api.now()));
    assert!(!prefs.consent.covers("+14155550123"));
}

#[tokio::test]
async fn a_named_disclosure_version_is_recorded_and_an_unknown_one_refused() {
    let api = Api::new().await;
    let version = sms_shared::disclosure::REGISTRY[0];
    let body = json!({"action": "opt_in", "disclosure_version": version.version});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-d", Some(body))).await.status,
        200
    );
    let grant = &api.history("u-d").await[0];
    assert_eq!(grant.disclosure_version.as_deref(), Some(version.version));
    assert_eq!(grant.disclosure_text.as_deref(), Some(version.text));

    for (event, body) in [
        (
            OPT_IN,
            json!({"action": "opt_in", "disclosure_version": "1999-01-01"}),
        ),
        (
            PATCH,
            json!({"allow_sms_invitations": true, "disclosure_version": "v0"}),
        ),
    ] {
        let reply = api.call(as_user(event, "u-e", Some(body))).await;
        reply.assert_error(400, "unknown_disclosure_version");
        assert_eq!(
            reply.body["details"]["disclosure_version"][0],
            "unknown disclosure version"
        );
    }
    assert!(api.prefs("u-e").await.is_none(), "nothing was written");
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
    let body = json!({"sms_battle_reminders": false, "sms_achievements": false, "time_zone": "America/Chicago"});
    let reply = api.call(as_user(PATCH, "u-4", Some(body))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut expected = defaults();
    expected["sms_battle_reminders"] = json!(false);
    expected["sms_achievements"] = json!(false);
    expected["time_zone"] = json!("America/Chicago");
    let mut full = expected.clone();
    full["success"] = json!(true);
    full["updated"] = json!(["sms_battle_reminders", "sms_achievements", "time_zone"]);
    assert_eq!(reply.body, full);
    assert_eq!(api.call(as_user(PREFS, "u-4", None)).await.body, expected);

    // null clears the zone; an empty PATCH changes nothing.
    let reply = api
        .call(as_user(PATCH, "u-4", Some(json!({"time_zone": null}))))
        .await;
    assert_eq!(reply.body["time_zone"], Value::Null);
    let version = api.prefs("u-4").await.unwrap().version;
    let reply = api.call(as_user(PATCH, "u-4", Some(json!({})))).await;
    assert_eq!(reply.body["updated"], json!([]));
    assert_eq!(api.prefs("u-4").await.unwrap().version, version);
}

#[tokio::test]
async fn master_switch_on_grants_and_off_revokes_consent() {
    let api = Api::new().await;
    let on = json!({"allow_sms_invitations": true, "phone_number": "+14155550123"});
    let reply = api.call(as_user(PATCH, "u-5", Some(on))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["has_consent"], true,
        "pending until the number is verified"
    );
    assert_eq!(reply.body["allow_sms_invitations"], true);
    assert_eq!(
        reply.body["updated"],
        json!(["allow_sms_invitations", "phone_number"])
    );

    api.clock.advance(SignedDuration::from_mins(5));
    let reply = api
        .call(as_user(
            PATCH,
            "u-5",
            Some(json!({"allow_sms_invitations": false})),
        ))
        .await;
    assert_eq!(reply.body["has_consent"], false);
    assert_eq!(reply.body["consent_given_at"], Value::Null);
    assert_eq!(reply.body["allow_sms_invitations"], false);

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
        Some(sms_shared::disclosure::CURRENT)
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
            Some(json!({"phone_number": "+1 415 555 0123"})),
        ))
        .await;
    assert_eq!(
        same.body["phone_verified"], true,
        "the same number stays verified"
    );
    let new = api
        .call(as_user(
            PATCH,
            "u-6",
            Some(json!({"phone_number": "+1 415 555 0199"})),
        ))
        .await;
    assert_eq!(new.status, 200);
    assert_eq!(new.body["phone_number"], "+14155550199");
    assert_eq!(new.body["phone_verified"], false);
    assert_eq!(api.prefs("u-6").await.unwrap().phone_verified_at, None);
}

#[tokio::test]
async fn one_user_never_reads_or_changes_another() {
    let api = Api::new().await;
    let body = json!({"action": "opt_in", "phone_number": "+14155550123"});
    assert_eq!(
        api.call(as_user(OPT_IN, "alice", Some(body))).await.status,
        200
    );
    let before = api.prefs("alice").await.unwrap();

    // Bob sees only his own (default) preferences.
    assert_eq!(api.call(as_user(PREFS, "bob", None)).await.body, defaults());
    let prompt = api.call(as_user(PROMPT, "bob", None)).await;
    assert_eq!(prompt.body["phone_number"], "");
    // Bob's writes land on Bob; there is no field or path that names another user.
    let off = json!({"allow_sms_invitations": false, "sms_battle_invitations": false});
    assert_eq!(api.call(as_user(PATCH, "bob", Some(off))).await.status, 200);
    let named = api
        .call(as_user(
            PATCH,
            "bob",
            Some(json!({"userId": "alice", "sms_streak_alerts": false})),
        ))
        .await;
    named.assert_error(400, "unknown_field");
    assert_eq!(api.prefs("alice").await.unwrap(), before);
    assert_eq!(api.history("alice").await.len(), 1);
}

#[tokio::test]
async fn no_identity_is_401_and_no_header_names_a_user() {
    let api = Api::new().await;
    let anonymous = |name, headers| {
        request(
            name,
            Edit {
                user: Some(None),
                headers,
                ..Edit::default()
            },
        )
    };
    let expired = format!("Bearer {}", access_token("u-x", -120));
    for name in [PROMPT, PREFS, PATCH, OPT_IN] {
        for headers in [
            vec![],
            // The development identity header of earlier versions means nothing.
            vec![("x-dev-user-id", "u-dev")],
            vec![("authorization", expired.as_str())],
        ] {
            api.call(anonymous(name, headers))
                .await
                .assert_error(401, "unauthorized");
        }
    }
    assert!(api.prefs("u-dev").await.is_none());
    assert!(api.prefs("u-x").await.is_none());
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_pair_and_bearer_writes_do_not() {
    let api = Api::new().await;
    let body = json!({"sms_battle_reminders": false}).to_string();
    let patch = |headers: Vec<(&'static str, &str)>, user| {
        request(
            PATCH,
            Edit {
                user,
                body: Some(body.clone()),
                headers,
                ..Edit::default()
            },
        )
    };
    // The event's header carries the CSRF value; a wrong or foreign-origin one is 403.
    for headers in [
        vec![("x-csrftoken", "not-the-cookie")],
        vec![("origin", "https://evil.example")],
    ] {
        api.call(patch(headers, Some(Some("u-c"))))
            .await
            .assert_error(403, "csrf_failed");
    }
    assert!(
        api.prefs("u-c").await.is_none(),
        "a refused write changes nothing"
    );
    let bearer = format!("Bearer {}", access_token("u-c", 300));
    let reply = api
        .call(patch(
            vec![("authorization", bearer.as_str()), ("x-csrftoken", "")],
            Some(None),
        ))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = api.call(patch(vec![], Some(Some("u-c")))).await;
    assert_eq!(
        reply.status, 200,
        "the event's own pair passes: {:?}",
        reply.body
    );
}

#[tokio::test]
async fn routes_live_under_the_base_path_only() {
    let api = Api::new().await;
    let mut e = crate::api_common::event(PREFS);
    e["rawPath"] = "/notifications/me/sms-preferences/".into();
    let request = lambda_http::request::from_str(&e.to_string()).unwrap();
    api.call(request).await.assert_error(404, "not_found");
    let other = Api::with(&[("API_BASE_PATH", "/api/v2")]).await;
    other
        .call(request_named(PREFS))
        .await
        .assert_error(404, "not_found");
}

fn request_named(name: &str) -> lambda_http::Request {
    request(name, Edit::default())
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
        json!({"action": "opt_in", "phone_number": "+14155550123", "time_zone": "America/Chicago"});
    assert_eq!(
        api.call(as_user(OPT_IN, "u-7", Some(body))).await.status,
        200
    );
    let before = api.prefs("u-7").await.unwrap();
    let history_before = api.history("u-7").await;

    let big = format!(r#"{{"time_zone": "{}"}}"#, "x".repeat(17 * 1024));
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (PATCH, "not json".into(), None, 400, "invalid_json"),
        (
            PATCH,
            r#"{"sms_streak_alerts": false"#.into(),
            None,
            400,
            "invalid_json",
        ),
        (PATCH, "[]".into(), None, 400, "invalid_json"),
        (PATCH, "".into(), None, 400, "invalid_json"),
        (
            PATCH,
            r#"{"sms_streak_alerts": "no"}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            r#"{"sms_streak_alerts": null}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            r#"{"sms_streak_alerts": 0}"#.into(),
            None,
            400,
            "invalid_field",
        ),
        (
            PATCH,
            // The TypeScript types' camelCase never reaches the wire (§5): refused.
            r#"{"allowSmsInvitations": false, "sms_streak_alerts": false}"#.into(),
            None,
            400,
            "unknown_field",
        ),
        (
            PATCH,
            r#"{"phone_verified": true}"#.into(),
            None,
            400,
            "read_only_field",
        ),
        (
            PATCH,
            r#"{"has_consent": false}"#.into(),
            None,
            400,
            "read_only_field",
        ),
        (
            PATCH,
            r#"{"allow_sms_invitations": false, "phone_number": "12"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            PATCH,
            r#"{"allow_sms_invitations": false, "phone_number": "+44 20 7946 0958"}"#.into(),
            None,
            400,
            "country_not_supported",
        ),
        (
            PATCH,
            r#"{"allow_sms_invitations": false, "time_zone": "Mars/Olympus"}"#.into(),
            None,
            400,
            "invalid_time_zone",
        ),
        (
            PATCH,
            r#"{"sms_streak_alerts": false, "sms_streak_alerts": true}"#.into(),
            None,
            400,
            "duplicate_field",
        ),
        (PATCH, big.clone(), None, 413, "payload_too_large"),
        (
            PATCH,
            r#"{"allow_sms_invitations": false}"#.into(),
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
            r#"{"phone_number": "+14155550123"}"#.into(),
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
            r#"{"action": "dismiss", "phone_number": "nope"}"#.into(),
            None,
            400,
            "invalid_phone_number",
        ),
        (
            OPT_IN,
            r#"{"action": "opt_in", "time_zone": 5}"#.into(),
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
        if status == 400 && !matches!(code, "invalid_json") {
            let details = reply.body["details"].as_object();
            assert!(
                details.is_some_and(|d| d.values().all(|v| v[0].is_string())),
                "{name} {body:.80}: a field error names the field: {:?}",
                reply.body
            );
        }
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
        "sms_battle_invitations",
        "sms_battle_results",
        "sms_streak_alerts",
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

#[tokio::test]
async fn the_locale_comes_from_the_browser_once_and_from_the_user_after() {
    let api = Api::new().await;
    let opt_in = |lang: &'static str, body: Value| {
        request(
            OPT_IN,
            Edit {
                user: Some(Some("u-l")),
                body: Some(body.to_string()),
                headers: vec![("accept-language", lang)],
                ..Edit::default()
            },
        )
    };
    let reply = api
        .call(opt_in(
            "es-MX,es;q=0.9,en;q=0.8",
            json!({"action": "opt_in"}),
        ))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let prefs = api.call(as_user(PREFS, "u-l", None)).await.body;
    assert_eq!(prefs["locale"], "es", "first set from Accept-Language");
    // A later opt-in from an English browser keeps the user's language.
    api.call(opt_in("en-US", json!({"action": "opt_in"}))).await;
    assert_eq!(
        api.call(as_user(PREFS, "u-l", None)).await.body["locale"],
        "es"
    );
    // The user's own choice wins, in either API.
    api.call(opt_in("es", json!({"action": "opt_in", "locale": "en"})))
        .await;
    assert_eq!(
        api.call(as_user(PREFS, "u-l", None)).await.body["locale"],
        "en"
    );
    let reply = api
        .call(as_user(PATCH, "u-l", Some(json!({"locale": "es-ES"}))))
        .await;
    assert_eq!(reply.body["locale"], "es");
    assert_eq!(reply.body["updated"], json!(["locale"]));
    let before = api.prefs("u-l").await.unwrap();
    for body in [json!({"locale": "fr"}), json!({"locale": null})] {
        let reply = api.call(as_user(PATCH, "u-l", Some(body))).await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
        assert!(
            reply.body["details"]["locale"].is_array(),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(api.prefs("u-l").await.unwrap(), before);
}

// ---- DynamoDB round trips (issue #18) ----

/// Every answer of `opt-in-api` in at most three sequential DynamoDB round trips, timed
/// through the real SDK (requests in flight together count once), including the longest
/// path: an opt-in on a verified number, which sends its confirmation.
#[tokio::test]
async fn every_preferences_answer_takes_at_most_three_round_trips() {
    let mut api = Api::new().await;
    let number = "+14155550123";
    let trips = api.time_round_trips();
    let mut rows = Vec::new();
    let mut row = |what: &str, status: u16, trips: Vec<Vec<String>>| {
        rows.push(trips_row(what, status, &trips));
    };
    let reply = api.call(as_user("http-opt-in-get", "u-rt", None)).await;
    row("GET sms-opt-in: prompt shown", reply.status, trips.take());
    let reply = api
        .call(as_user("http-preferences-get", "u-rt", None))
        .await;
    row("GET sms-preferences", reply.status, trips.take());
    let patch = json!({"sms_battle_results": false, "time_zone": "America/Chicago"});
    let reply = api
        .call(as_user("http-preferences-patch", "u-rt", Some(patch)))
        .await;
    row("PATCH sms-preferences: toggles", reply.status, trips.take());
    let modal = json!({"action": "opt_in"});
    let reply = api
        .call(as_user("http-opt-in-post", "u-rt", Some(modal.clone())))
        .await;
    row("POST sms-opt-in: pending grant", reply.status, trips.take());

    // A verified number (through verify-api, not timed here), then the opt-ins that confirm.
    let start = json!({"phone_number": number});
    let started = api
        .call(as_user("http-verification-start", "u-v", Some(start)))
        .await;
    assert_eq!(started.status, 202);
    let code = crate::api_common::code_in(&api.stub.sent_to(number).last().unwrap().body);
    let checked = api
        .call(as_user(
            "http-verification-check",
            "u-v",
            Some(json!({ "code": code })),
        ))
        .await;
    assert_eq!(checked.status, 200);
    trips.take();
    let reply = api
        .call(as_user("http-opt-in-post", "u-v", Some(modal)))
        .await;
    row(
        "POST sms-opt-in: grant on a verified number, confirmation sent",
        reply.status,
        trips.take(),
    );
    api.clock.advance(SignedDuration::from_mins(1));
    let off = json!({"allow_sms_invitations": false});
    let reply = api
        .call(as_user("http-preferences-patch", "u-v", Some(off)))
        .await;
    row(
        "PATCH sms-preferences: switch off",
        reply.status,
        trips.take(),
    );
    let on = json!({"allow_sms_invitations": true});
    let reply = api
        .call(as_user("http-preferences-patch", "u-v", Some(on)))
        .await;
    row(
        "PATCH sms-preferences: switch on, confirmation sent",
        reply.status,
        trips.take(),
    );
    let sent = api.stub.sent_to(number);
    assert_eq!(
        sent.iter()
            .filter(|s| s
                .context
                .get("logId")
                .is_some_and(|id| id.starts_with("optin#")))
            .count(),
        2
    );
    println!("| request (status) | requests | sequential round trips | calls |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}

/// A grant whose confirmation record exists already (claimed by an earlier save: a
/// verification racing this opt-in) is saved without it, in the same request, and nothing
/// more is sent: the save's transaction, cancelled by the record's condition alone, goes
/// again without the record.
#[tokio::test]
async fn an_opt_in_whose_confirmation_was_claimed_before_is_saved_and_sends_nothing() {
    use sms_shared::preferences::Preferences;
    use sms_shared::store::{LogStore, NewConfirmation};
    let api = Api::new().await;
    let number = "+14155550123";
    let mut prefs = Preferences::new("u-c");
    prefs.phone_number = Some(number.into());
    prefs.phone_verified = true;
    api.preferences_store()
        .save(&mut prefs, &[], api.now())
        .await
        .unwrap();
    // The confirmation of a grant made now, claimed already.
    let id = sms_shared::opt_in::confirmation_log_id("u-c", api.now());
    let log = LogStore::new(api.env.dynamodb.clone(), api.env.tables.log.clone());
    let claim = NewConfirmation {
        id: &id,
        user_id: "u-c",
        phone_number: number,
        body: "claimed before",
    };
    log.claim_confirmation(&claim, api.now(), SignedDuration::from_mins(1))
        .await
        .unwrap();

    let reply = api
        .call(as_user(
            "http-opt-in-post",
            "u-c",
            Some(json!({"action": "opt_in"})),
        ))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let saved = api.prefs("u-c").await.unwrap();
    assert!(saved.has_consent(), "the grant is saved");
    assert_eq!(api.history("u-c").await.len(), 1);
    assert!(api.stub.sent_to(number).is_empty(), "nothing sent twice");
    let record = log.get(&id).await.unwrap().unwrap();
    assert_eq!(record.body.as_deref(), Some("claimed before"), "left alone");
}
