//! Every branch of the handler, on the in-memory stores of `fakes.rs` (the DynamoDB stores,
//! the SMS client and the end-to-end stories are tested on moto and the SMS stub in
//! `tests/it/inbound_sms.rs`).

use crate::fakes::{FakeMarkers, FakeReplies, Marker};
use crate::{CONFIRMATION_LATE, InboundError, InboundOutcome, InboundSms};
use aws_lambda_events::event::sns::SnsEvent;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sms_shared::Config;
use sms_shared::clock::ManualClock;
use sms_shared::config::Branding;
use sms_shared::keywords::Intent;
use sms_shared::locale::Locale;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::sms::SmsError;
use sms_shared::store::LogStatus;
use sms_shared::store::memory::MemoryPreferences;
use sms_shared::template;
use std::collections::HashMap;
use std::sync::Arc;

const PHONE: &str = "+14155550123";
const ID: &str = "in-1";
const REPLY: &str = "reply#in-1";

/// The SNS publish time of the samples: when AWS received the message.
fn published() -> Timestamp {
    "2026-11-25T12:01:00Z".parse().unwrap()
}

type Handler = InboundSms<FakeMarkers, MemoryPreferences, FakeReplies>;

/// The handler at `now`, with the settings `vars` (`PROVIDER_ANSWERS_*`).
fn handler_at(now: Timestamp, vars: &[(&str, &str)]) -> Handler {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    InboundSms::with_stores(
        &Config::from_map(&vars).unwrap(),
        FakeMarkers::default(),
        MemoryPreferences::default(),
        FakeReplies::default(),
        Arc::new(ManualClock::new(now)),
    )
}

/// 30 s after the message: every confirmation is still due.
fn handler() -> Handler {
    handler_at(published() + SignedDuration::from_secs(30), &[])
}

/// `events/sns-inbound-stop.json` saying `body` (with AWS's `messageKeyword`), as message `id`.
fn message(body: &str, keyword: &str, id: &str) -> SnsEvent {
    let path = format!(
        "{}/../../events/sns-inbound-stop.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: SnsEvent =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut m: Value = serde_json::from_str(&event.records[0].sns.message).unwrap();
    m["messageBody"] = json!(body);
    m["messageKeyword"] = json!(keyword);
    m["inboundMessageId"] = json!(id);
    event.records[0].sns.message = m.to_string();
    event
}

fn stop() -> SnsEvent {
    message("STOP", "STOP", ID)
}

fn user(user_id: &str, phone: &str, consented: bool) -> Preferences {
    let at: Timestamp = "2026-11-01T10:00:00Z".parse().unwrap();
    let mut p = Preferences::new(user_id);
    p.phone_number = Some(phone.into());
    p.phone_verified = true;
    if consented {
        let mut grant =
            ConsentEvent::new(user_id, at, ConsentAction::Grant, ConsentMethod::OptInModal);
        grant.phone_number = Some(phone.into());
        grant.apply_to(&mut p.consent);
    }
    p
}

/// A user who consented, then revoked at `revoked_at`.
fn revoked_user(user_id: &str, revoked_at: Timestamp) -> Preferences {
    let mut p = user(user_id, PHONE, true);
    let revoke = ConsentEvent::new(
        user_id,
        revoked_at,
        ConsentAction::Revoke,
        ConsentMethod::SettingsPage,
    );
    revoke.apply_to(&mut p.consent);
    p
}

fn processed(intent: Intent, users_changed: usize, replied: bool) -> InboundOutcome {
    InboundOutcome::Processed {
        intent,
        users_changed,
        replied,
    }
}

async fn handle(h: &Handler, event: SnsEvent) -> Vec<InboundOutcome> {
    h.handle(event).await.unwrap()
}

fn opt_out_confirmation(locale: Locale) -> String {
    template::opt_out_confirmation(&Branding::default(), locale)
}

#[tokio::test]
async fn stop_revokes_every_user_of_the_number_and_confirms_once() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    h.prefs.insert(user("u-2", PHONE, true));
    h.prefs.insert(user("u-other", "+14155550199", true));
    let outcomes = handle(&h, stop()).await;
    assert_eq!(outcomes, [processed(Intent::OptOut, 2, true)]);
    for id in ["u-1", "u-2"] {
        assert!(!h.prefs.get(id).unwrap().consent.given, "{id}");
    }
    assert!(h.prefs.get("u-other").unwrap().consent.given);
    let history = h.prefs.history();
    assert_eq!(history.len(), 2);
    for event in &history {
        assert_eq!(event.action, ConsentAction::Revoke);
        assert_eq!(event.method, ConsentMethod::SmsKeyword);
        assert_eq!(event.at, published(), "dated when AWS received the STOP");
        assert_eq!(event.inbound_message_id.as_deref(), Some(ID));
        assert_eq!(event.phone_number.as_deref(), Some(PHONE));
    }
    let calls = h.replies.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].to, PHONE);
    assert_eq!(calls[0].body, opt_out_confirmation(Locale::En));
    assert_eq!(h.replies.get(REPLY).unwrap().status, LogStatus::Sent);
    let marker = Marker {
        intent: "opt_out".into(),
        users_changed: 2,
        reply_id: Some(REPLY.into()),
    };
    assert_eq!(h.markers.get(ID), Some(marker));
}

#[tokio::test]
async fn a_stop_from_a_number_without_consent_is_still_confirmed() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, false));
    let outcomes = handle(&h, stop()).await;
    assert_eq!(outcomes, [processed(Intent::OptOut, 0, true)]);
    assert!(h.prefs.history().is_empty(), "nothing to revoke, no event");
    assert_eq!(h.replies.sent(), [opt_out_confirmation(Locale::En)]);
}

#[tokio::test]
async fn plain_language_and_spanish_opt_outs_revoke_and_are_confirmed_in_their_language() {
    let cases = [
        ("please stop texting me", Locale::En),
        ("Por favor, no me envíen más mensajes", Locale::Es),
        ("PARAR", Locale::Es),
    ];
    for (body, locale) in cases {
        let h = handler();
        h.prefs.insert(user("u-1", PHONE, true));
        let outcomes = handle(&h, message(body, "", ID)).await;
        assert_eq!(outcomes, [processed(Intent::OptOut, 1, true)], "{body}");
        assert!(!h.prefs.get("u-1").unwrap().consent.given, "{body}");
        assert_eq!(h.replies.sent(), [opt_out_confirmation(locale)], "{body}");
    }
}

#[tokio::test]
async fn a_message_without_words_is_answered_in_the_language_the_users_chose() {
    let h = handler();
    let mut spanish = user("u-1", PHONE, true);
    spanish.locale = Some("es".into());
    h.prefs.insert(spanish);
    handle(&h, message("🛑", "", ID)).await;
    assert_eq!(h.replies.sent(), [opt_out_confirmation(Locale::Es)]);
}

#[tokio::test]
async fn start_re_grants_consent_to_users_who_had_it_and_confirms() {
    let h = handler();
    let earlier: Timestamp = "2026-11-20T09:00:00Z".parse().unwrap();
    h.prefs.insert(revoked_user("u-revoked", earlier));
    h.prefs.insert(user("u-never", PHONE, false));
    let outcomes = handle(&h, message("START", "START", ID)).await;
    assert_eq!(outcomes, [processed(Intent::OptIn, 1, true)]);
    let granted = h.prefs.get("u-revoked").unwrap().consent;
    assert!(granted.given);
    assert_eq!(granted.method, Some(ConsentMethod::SmsKeyword));
    assert!(
        !h.prefs.get("u-never").unwrap().consent.given,
        "a text never subscribes"
    );
    let confirmation = template::opt_in_confirmation(&Branding::default(), Locale::En);
    assert_eq!(h.replies.sent(), [confirmation]);
}

#[tokio::test]
async fn a_start_older_than_the_stop_does_not_undo_it_and_confirms_nothing() {
    let h = handler();
    // Revoked after the START was sent (SNS publish time): inbound messages are unordered.
    h.prefs.insert(revoked_user(
        "u-1",
        published() + SignedDuration::from_secs(5),
    ));
    let outcomes = handle(&h, message("START", "START", ID)).await;
    assert_eq!(outcomes, [processed(Intent::OptIn, 0, false)]);
    assert!(!h.prefs.get("u-1").unwrap().consent.given);
    assert!(h.replies.calls().is_empty());
    assert_eq!(h.markers.get(ID).unwrap().reply_id, None);
}

#[tokio::test]
async fn help_gets_the_help_text_and_changes_nothing_even_hours_later() {
    let h = handler_at(published() + SignedDuration::from_hours(5), &[]);
    h.prefs.insert(user("u-1", PHONE, true));
    let outcomes = handle(&h, message("HELP", "HELP", ID)).await;
    assert_eq!(outcomes, [processed(Intent::Help, 0, true)]);
    let help = template::help_text(&Branding::default(), Locale::En);
    assert_eq!(h.replies.sent(), [help]);
    assert!(h.prefs.get("u-1").unwrap().consent.given);
    assert!(h.prefs.history().is_empty());
}

#[tokio::test]
async fn other_text_is_recorded_and_not_answered() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    let outcomes = handle(&h, message("see you at the battle tonight", "", ID)).await;
    assert_eq!(outcomes, [processed(Intent::Other, 0, false)]);
    assert!(h.replies.calls().is_empty());
    assert!(h.prefs.get("u-1").unwrap().consent.given);
    let marker = Marker {
        intent: "other".into(),
        users_changed: 0,
        reply_id: None,
    };
    assert_eq!(h.markers.get(ID), Some(marker));
}

#[tokio::test]
async fn keywords_the_provider_answers_get_no_second_answer_from_us() {
    let now = published() + SignedDuration::from_secs(30);
    let cases = [
        ("PROVIDER_ANSWERS_STOP", "STOP", "STOP", Intent::OptOut),
        ("PROVIDER_ANSWERS_HELP", "HELP", "HELP", Intent::Help),
        ("PROVIDER_ANSWERS_START", "START", "START", Intent::OptIn),
    ];
    for (setting, body, keyword, intent) in cases {
        let h = handler_at(now, &[(setting, "true")]);
        h.prefs
            .insert(revoked_user("u-1", "2026-11-20T09:00:00Z".parse().unwrap()));
        let outcomes = handle(&h, message(body, keyword, ID)).await;
        let changed = usize::from(intent == Intent::OptIn);
        assert_eq!(outcomes, [processed(intent, changed, false)], "{setting}");
        assert!(h.replies.calls().is_empty(), "{setting}");
        assert_eq!(h.markers.get(ID).unwrap().reply_id, None, "{setting}");
    }
}

#[tokio::test]
async fn opt_outs_the_provider_does_not_recognise_are_confirmed_by_us() {
    let now = published() + SignedDuration::from_secs(30);
    for body in ["please stop texting me", "PARAR"] {
        let h = handler_at(now, &[("PROVIDER_ANSWERS_STOP", "true")]);
        h.prefs.insert(user("u-1", PHONE, true));
        let outcomes = handle(&h, message(body, "", ID)).await;
        assert_eq!(outcomes, [processed(Intent::OptOut, 1, true)], "{body}");
        assert_eq!(h.replies.sent().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn a_confirmation_starts_only_while_it_can_arrive_within_five_minutes() {
    // The last moment: the window (5 min) less the send's allowance (30 s).
    let last = published() + SignedDuration::from_secs(270);
    let on_time = handler_at(last - SignedDuration::from_secs(1), &[]);
    handle(&on_time, stop()).await;
    assert_eq!(on_time.replies.sent().len(), 1);

    let late = handler_at(last + SignedDuration::from_millis(1), &[]);
    late.prefs.insert(user("u-1", PHONE, true));
    let outcomes = handle(&late, stop()).await;
    assert_eq!(outcomes, [processed(Intent::OptOut, 1, false)]);
    assert!(
        !late.prefs.get("u-1").unwrap().consent.given,
        "revoked all the same"
    );
    assert!(late.replies.calls().is_empty(), "nothing sent");
    let reply = late.replies.get(REPLY).unwrap();
    assert_eq!(reply.status, LogStatus::Suppressed);
    assert_eq!(reply.reason.as_deref(), Some(CONFIRMATION_LATE));
    assert_eq!(
        reply.body,
        opt_out_confirmation(Locale::En),
        "kept the body"
    );
    assert_eq!(
        late.markers.get(ID).unwrap().reply_id.as_deref(),
        Some(REPLY)
    );
}

#[tokio::test]
async fn a_processed_message_delivered_again_changes_nothing() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    handle(&h, stop()).await;
    let again = handle(&h, stop()).await;
    assert_eq!(again, [InboundOutcome::Duplicate]);
    assert_eq!(h.replies.calls().len(), 1);
    assert_eq!(h.prefs.history().len(), 1);
}

#[tokio::test]
async fn a_stop_under_contention_fails_the_invocation_and_is_not_marked_processed() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    h.prefs.lose_saves(usize::MAX);
    let err = h.handle(stop()).await.unwrap_err();
    assert!(matches!(err, InboundError::Contended), "{err}");
    assert_eq!(h.markers.get(ID), None);
    assert!(h.replies.calls().is_empty());

    h.prefs.lose_saves(0);
    let retried = handle(&h, stop()).await;
    assert_eq!(retried, [processed(Intent::OptOut, 1, true)]);
    assert!(!h.prefs.get("u-1").unwrap().consent.given);
}

#[tokio::test]
async fn a_transient_sms_error_fails_the_invocation_and_the_retry_sends_once() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    h.replies.answer_next(SmsError::Transient {
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    });
    let err = h.handle(stop()).await.unwrap_err();
    assert!(matches!(err, InboundError::Sms(_)), "{err}");
    assert_eq!(h.markers.get(ID), None, "not marked: Lambda retries it");
    assert!(
        !h.prefs.get("u-1").unwrap().consent.given,
        "the STOP is applied first"
    );
    assert_eq!(h.replies.get(REPLY).unwrap().status, LogStatus::Retry);

    let retried = handle(&h, stop()).await;
    assert_eq!(retried, [processed(Intent::OptOut, 0, true)]);
    assert_eq!(h.replies.calls().len(), 2);
    assert_eq!(h.replies.sent(), [opt_out_confirmation(Locale::En)]);
    assert_eq!(h.prefs.history().len(), 1, "no second revocation");
}

#[tokio::test]
async fn a_reply_whose_answer_was_lost_is_never_sent_again() {
    let h = handler();
    h.replies.answer_next(SmsError::InDoubt {
        code: "Timeout".into(),
        message: "no answer".into(),
    });
    let err = h.handle(stop()).await.unwrap_err();
    assert!(matches!(err, InboundError::Sms(_)), "{err}");
    assert_eq!(h.markers.get(ID), None);

    let retried = handle(&h, stop()).await;
    assert_eq!(retried, [processed(Intent::OptOut, 0, false)]);
    assert_eq!(h.replies.calls().len(), 1, "one call, maybe delivered");
    assert_eq!(h.replies.get(REPLY).unwrap().status, LogStatus::Unknown);
    assert!(h.markers.get(ID).is_some());
}

#[tokio::test]
async fn a_reply_another_invocation_is_sending_fails_the_invocation() {
    let h = handler();
    h.replies.hold(REPLY, PHONE);
    let err = h.handle(stop()).await.unwrap_err();
    assert!(
        matches!(&err, InboundError::ReplyBusy(id) if id == ID),
        "{err}"
    );
    assert_eq!(h.markers.get(ID), None);
    assert!(h.replies.calls().is_empty());
}

#[tokio::test]
async fn a_reply_refused_for_good_is_recorded_and_not_retried() {
    let h = handler();
    h.replies.answer_next(SmsError::Permanent {
        code: "ValidationException".into(),
        message: "bad destination".into(),
    });
    let outcomes = handle(&h, stop()).await;
    assert_eq!(outcomes, [processed(Intent::OptOut, 0, false)]);
    assert_eq!(h.replies.get(REPLY).unwrap().status, LogStatus::Rejected);
    assert!(h.markers.get(ID).is_some());
}

#[tokio::test]
async fn malformed_messages_are_skipped_without_writes() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    let mut batch = stop();
    let mut records = Vec::new();
    let no_id = json!({"originationNumber": PHONE, "messageBody": "STOP"}).to_string();
    let bad_number =
        json!({"originationNumber": "not a number", "messageBody": "STOP", "inboundMessageId": "x"})
            .to_string();
    for text in ["not json".to_owned(), no_id, bad_number] {
        let mut record = batch.records[0].clone();
        record.sns.message = text;
        records.push(record);
    }
    batch.records = records;
    let outcomes = handle(&h, batch).await;
    assert_eq!(outcomes, vec![InboundOutcome::Malformed; 3]);
    assert!(h.prefs.get("u-1").unwrap().consent.given);
    assert!(h.replies.calls().is_empty());
    assert_eq!(h.markers.get("x"), None);
}

#[tokio::test]
async fn a_store_fault_fails_the_invocation() {
    let h = handler();
    h.prefs.insert(user("u-1", PHONE, true));
    h.markers.fail(true);
    let err = h.handle(stop()).await.unwrap_err();
    assert!(matches!(err, InboundError::Store(_)), "{err}");
    assert!(h.prefs.get("u-1").unwrap().consent.given, "nothing applied");
}
