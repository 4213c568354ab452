//! SMS-pumping attempts against `verify-api` (issue #8, DESIGN §5): each one is run through
//! the real handler against moto and the SMS stub, and stopped by a rate-limit window, the
//! resend cooldown, the country allow-list or the number-type check. For every attempt the
//! test counts the codes that actually reached the SMS API (at the stub) and asserts what the
//! refused requests got (status, code, `Retry-After`).
//!
//! `abuse_table_matches_docs` runs every attempt, prints the results as a markdown table and
//! checks that `docs/abuse.md` and `docs/reliability.md` show the same table.

use crate::api_common::{Api, Reply, verification_start};
use futures_util::future::join_all;
use jiff::{SignedDuration, Timestamp};
use sms_shared::phone::E164;
use sms_shared::store::VerificationStore;
use sms_shared::verification as rules;
use std::collections::HashMap;

/// The IP most attempts come from, when they do not vary it.
const IP: &str = "198.51.100.1";
/// Number one attacker wants many codes sent to.
const VICTIM: &str = "+14155550123";

/// A US number in its own 10 000-number block (its own prefix window) for each `i < 800`.
fn own_prefix(i: usize) -> String {
    format!("+1415{}0123", 200 + i)
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    attempt: &'static str,
    requests: usize,
    sent: usize,
    /// 1-based position of the first refused request; "concurrent" when they raced.
    first_refusal: String,
    answer: String,
}

/// One attempt: its own tables, stub and clock, and every answer it got.
struct Attack {
    api: Api,
    replies: Vec<Reply>,
}

impl Attack {
    async fn new() -> Attack {
        Attack {
            api: Api::new().await,
            replies: Vec::new(),
        }
    }

    /// Asks for a code for `number` as `user` from `ip`; returns the status.
    async fn ask(&mut self, user: &str, number: &str, ip: &str) -> u16 {
        let reply = self.api.call(verification_start(user, number, ip)).await;
        let status = reply.status;
        self.replies.push(reply);
        status
    }

    /// Asks for all `(user, number, ip)` at once.
    async fn ask_concurrently(&mut self, asks: &[(String, String, String)]) {
        let api = &self.api;
        let replies = join_all(
            asks.iter()
                .map(|(user, number, ip)| api.call(verification_start(user, number, ip))),
        )
        .await;
        self.replies.extend(replies);
    }

    fn refused(&self) -> impl Iterator<Item = &Reply> {
        self.replies.iter().filter(|r| r.status != 202)
    }

    /// Codes that reached the SMS API. Checks that each accepted request sent exactly one
    /// code and each refused one none, and that refusals have the §5 shape (429 with
    /// `Retry-After`, nothing else with it).
    fn sent(&self) -> usize {
        let sent = self.api.stub.sent();
        let accepted = self.replies.iter().filter(|r| r.status == 202).count();
        assert_eq!(sent.len(), accepted, "one SMS per 202, none otherwise");
        for reply in self.refused() {
            let code = reply.body["code"].as_str().unwrap_or_default();
            reply.assert_error(reply.status, code);
            if reply.status == 429 {
                let secs: u64 = reply
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("429 without Retry-After: {reply:?}"));
                assert!((1..=86_400).contains(&secs), "{reply:?}");
                assert_eq!(reply.body["retry_after_seconds"], secs, "{reply:?}");
            } else {
                assert_eq!(reply.retry_after, None, "{reply:?}");
            }
        }
        sent.len()
    }

    /// The table line of this attempt. `first_refusal` is the position of the first refused
    /// request (none for requests that raced); the answer lists each distinct refusal
    /// (status and code), with the `Retry-After` of the first one.
    fn row(&self, attempt: &'static str, concurrent: bool) -> Row {
        let sent = self.sent();
        let first = self.replies.iter().position(|r| r.status != 202);
        let mut kinds: Vec<String> = Vec::new();
        for reply in self.refused() {
            let kind = format!(
                "{} `{}`",
                reply.status,
                reply.body["code"].as_str().unwrap_or_default()
            );
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let mut answer = kinds.join(", ");
        if let Some(secs) = first.and_then(|i| self.replies[i].retry_after.clone()) {
            answer.push_str(&format!(", Retry-After {secs}"));
        }
        Row {
            attempt,
            requests: self.replies.len(),
            sent,
            first_refusal: match (first, concurrent) {
                (None, _) => "none".to_owned(),
                (Some(_), true) => "(concurrent)".to_owned(),
                (Some(i), false) => format!("#{}", i + 1),
            },
            answer,
        }
    }

    /// Current values of the windows `number` counts against (for `user` from `ip`).
    async fn windows_of(
        &self,
        user: &str,
        number: &str,
        ip: &str,
        now: Timestamp,
    ) -> HashMap<&'static str, u64> {
        let number = E164::parse(number).unwrap();
        let windows = rules::windows(&self.api.verify.windows, user, &number, Some(ip), now);
        let ids: Vec<String> = windows.iter().map(|w| w.id.clone()).collect();
        let values = VerificationStore::new(
            self.api.env.dynamodb.clone(),
            self.api.env.tables.verification.clone(),
        )
        .windows()
        .get_many(&ids, now)
        .await
        .unwrap();
        windows
            .iter()
            .map(|w| (w.kind.as_str(), values.get(&w.id).copied().unwrap_or(0)))
            .collect()
    }
}

fn retry_after(reply: &Reply) -> Option<&str> {
    reply.retry_after.as_deref()
}

// ---- the attempts ----

/// (a) One account asks for codes to many numbers, waiting out the 30 s resend cooldown each
/// time: the user window (5 an hour) stops it; the refused requests cost the victims' number
/// and prefix windows nothing.
async fn many_numbers_from_one_user() -> Row {
    let mut a = Attack::new().await;
    for i in 0..8 {
        if i > 0 {
            a.api.clock.advance(SignedDuration::from_secs(30));
        }
        a.ask("pump-a", &own_prefix(i), IP).await;
    }
    let row = a.row("(a) many numbers from one user, 30 s apart", false);
    assert_eq!(row.sent, 5);
    assert_eq!(row.first_refusal, "#6");
    for reply in &a.replies[5..] {
        reply.assert_error(429, "rate_limited");
    }
    // 12:02:30; the hour window ends at 13:00.
    assert_eq!(retry_after(&a.replies[5]), Some("3450"));
    let now = a.api.now();
    for i in 5..8 {
        let counted = a.windows_of("pump-a", &own_prefix(i), IP, now).await;
        assert_eq!(counted["user"], 5, "refusals are not counted");
        assert_eq!(counted["ip"], 5);
        assert_eq!(counted["number"], 0, "victim {i} untouched");
        assert_eq!(counted["prefix"], 0, "victim {i} untouched");
        assert_eq!(counted["country"], 5);
    }
    row
}

/// (a′) The same without waiting: the resend cooldown answers first.
async fn one_user_without_pause() -> Row {
    let mut a = Attack::new().await;
    for i in 0..5 {
        a.ask("pump-a2", &own_prefix(i), IP).await;
    }
    let row = a.row("(a′) many numbers from one user, no pause", false);
    assert_eq!(row.sent, 1);
    assert_eq!(row.first_refusal, "#2");
    for reply in &a.replies[1..] {
        reply.assert_error(429, "resend_too_soon");
        assert_eq!(retry_after(reply), Some("30"));
    }
    row
}

/// (b) Many accounts, each from its own IP, ask for codes to one number, spread over three
/// clock hours so the hourly prefix window renews: the number's day window (10) stops it,
/// with `Retry-After` up to midnight UTC.
async fn one_number_from_many_users() -> Row {
    let mut a = Attack::new().await;
    for i in 0..14 {
        if i == 5 || i == 10 {
            a.api.clock.advance(SignedDuration::from_hours(1));
        }
        a.ask(
            &format!("pump-b-{i}"),
            VICTIM,
            &format!("198.51.100.{}", 10 + i),
        )
        .await;
    }
    let row = a.row(
        "(b) one number from many users and IPs, over 3 hours",
        false,
    );
    assert_eq!(row.sent, 10);
    assert_eq!(row.first_refusal, "#11");
    for reply in &a.replies[10..] {
        reply.assert_error(429, "rate_limited");
        // 14:00 → midnight: the day window, not an hour one.
        assert_eq!(retry_after(reply), Some("36000"));
    }
    assert_eq!(a.api.stub.sent_to(VICTIM).len(), 10);
    row
}

/// (c) Many accounts from one IPv4 address, each to a number in its own block: the IP
/// window (20 an hour) stops it.
async fn many_users_from_one_ip() -> Row {
    let mut a = Attack::new().await;
    for i in 0..25 {
        a.ask(&format!("pump-c-{i}"), &own_prefix(i), "203.0.113.50")
            .await;
    }
    let row = a.row("(c) many users from one IPv4 address", false);
    assert_eq!(row.sent, 20);
    assert_eq!(row.first_refusal, "#21");
    for reply in &a.replies[20..] {
        reply.assert_error(429, "rate_limited");
        assert_eq!(retry_after(reply), Some("3600"));
    }
    row
}

/// (c′) The same from IPv6, a new address of one /64 for every request (any host may use
/// any address of its /64; privacy extensions rotate them): the IP window counts the /64.
async fn many_users_rotating_ipv6() -> Row {
    let mut a = Attack::new().await;
    for i in 0..25 {
        let ip = format!("2001:db8:aa:bb:{:x}:{:x}::{:x}", i * 7 + 1, i * 13, i + 1);
        a.ask(&format!("pump-c6-{i}"), &own_prefix(i), &ip).await;
    }
    let row = a.row("(c′) many users rotating IPv6 addresses of one /64", false);
    assert_eq!(row.sent, 20);
    assert_eq!(row.first_refusal, "#21");
    for reply in &a.replies[20..] {
        reply.assert_error(429, "rate_limited");
        assert_eq!(retry_after(reply), Some("3600"));
    }
    row
}

/// (d) A sweep through one number block (+1 628 555 xxxx), a new account and IP for every
/// number: the prefix window (10 an hour) stops it.
async fn prefix_sweep() -> Row {
    let mut a = Attack::new().await;
    for i in 0..15 {
        a.ask(
            &format!("pump-d-{i}"),
            &format!("+1628555{:04}", 100 + i),
            &format!("198.51.100.{}", 50 + i),
        )
        .await;
    }
    let row = a.row("(d) number-prefix sweep, new user and IP each time", false);
    assert_eq!(row.sent, 10);
    assert_eq!(row.first_refusal, "#11");
    for reply in &a.replies[10..] {
        reply.assert_error(429, "rate_limited");
        assert_eq!(retry_after(reply), Some("3600"));
    }
    row
}

/// (e) Premium-rate and shared-cost numbers: refused before any window is counted or any SMS
/// is sent, US ones by their number type, others already by the allow-list.
async fn premium_rate_numbers() -> Row {
    let mut a = Attack::new().await;
    let cases = [
        ("+1 900 200 0123", "invalid_phone_number"),
        ("+1 (900) 555-7777", "invalid_phone_number"),
        ("+44 909 879 0000", "country_not_supported"),
        ("+44 871 222 3333", "country_not_supported"),
    ];
    for (i, (number, code)) in cases.iter().enumerate() {
        let user = format!("pump-e-{i}");
        a.ask(&user, number, IP).await;
        a.replies[i].assert_error(400, code);
    }
    let row = a.row("(e) premium-rate numbers (US 900, UK 09xx / 087x)", false);
    assert_eq!(row.sent, 0);
    assert_eq!(row.first_refusal, "#1");
    let counted = a.windows_of("pump-e-0", VICTIM, IP, a.api.now()).await;
    assert_eq!(counted["user"], 0, "nothing counted");
    assert_eq!(counted["ip"], 0, "nothing counted");
    row
}

/// (e′) Numbers of countries off the allow-list (default US, CA), including a +1 number of
/// the Caribbean (NANP but not US or CA), a classic pumping target.
async fn countries_not_allowed() -> Row {
    let mut a = Attack::new().await;
    let numbers = [
        "+44 7911 123456",
        "+234 803 123 4567",
        "+7 912 345 6789",
        "+1 876 210 1234",
    ];
    for (i, number) in numbers.iter().enumerate() {
        a.ask(&format!("pump-e2-{i}"), number, IP).await;
        a.replies[i].assert_error(400, "country_not_supported");
    }
    let row = a.row(
        "(e′) countries not on the allow-list (+44, +234, +7, +1 876)",
        false,
    );
    assert_eq!(row.sent, 0);
    assert_eq!(row.first_refusal, "#1");
    row
}

/// The country window lowered for the test (default 100 an hour for the US).
const TEST_COUNTRY_CAP: u64 = 12;

/// (f) A sweep across many number blocks of one country, new account and IP every time (no
/// user, IP, number or prefix window fills): the country window stops it; other countries
/// go on.
async fn country_sweep() -> Row {
    let mut a = Attack::new().await;
    a.api.verify.windows.per_country_per_hour = TEST_COUNTRY_CAP;
    for i in 0..15 {
        a.ask(
            &format!("pump-f-{i}"),
            &own_prefix(i),
            &format!("198.51.100.{}", 100 + i),
        )
        .await;
    }
    let row = a.row(
        "(f) sweep across prefixes of one country (country window set to 12/h)",
        false,
    );
    assert_eq!(row.sent, TEST_COUNTRY_CAP as usize);
    assert_eq!(row.first_refusal, "#13");
    for reply in &a.replies[12..] {
        reply.assert_error(429, "rate_limited");
        assert_eq!(retry_after(reply), Some("3600"));
    }
    // Canada has its own window.
    let reply = a
        .api
        .call(verification_start(
            "pump-f-ca",
            "+1 416 200 0123",
            "198.51.100.200",
        ))
        .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    row
}

/// (g) Thirty requests at once from one IP, each for its own user and number block: of the
/// racing requests exactly 20 pass the IP window.
async fn concurrent_burst_from_one_ip() -> Row {
    let mut a = Attack::new().await;
    let asks: Vec<_> = (0..30)
        .map(|i| {
            (
                format!("pump-g-{i}"),
                own_prefix(i),
                "203.0.113.77".to_owned(),
            )
        })
        .collect();
    a.ask_concurrently(&asks).await;
    let row = a.row("(g) 30 concurrent requests from one IP", true);
    assert_eq!(row.sent, 20);
    for reply in a.refused() {
        reply.assert_error(429, "rate_limited");
        assert_eq!(retry_after(reply), Some("3600"));
    }
    row
}

/// (h) Ten requests at once from one user to ten numbers: one code goes out (the stored code
/// is replaced only after the cooldown, atomically); the rest are 429, by the cooldown or by
/// the user window.
async fn concurrent_burst_from_one_user() -> Row {
    let mut a = Attack::new().await;
    let asks: Vec<_> = (0..10)
        .map(|i| ("pump-h".to_owned(), own_prefix(i), IP.to_owned()))
        .collect();
    a.ask_concurrently(&asks).await;
    let sent = a.sent();
    assert_eq!(sent, 1);
    for reply in a.refused() {
        assert_eq!(reply.status, 429, "{reply:?}");
        assert!(
            ["resend_too_soon", "rate_limited"].contains(&reply.body["code"].as_str().unwrap()),
            "{reply:?}"
        );
    }
    // Which of the two codes each loser gets depends on the race: the line says both.
    Row {
        attempt: "(h) 10 concurrent requests from one user",
        requests: a.replies.len(),
        sent,
        first_refusal: "(concurrent)".to_owned(),
        answer: "429 `resend_too_soon` or `rate_limited`".to_owned(),
    }
}

// ---- one test per attempt ----

#[tokio::test]
async fn a_one_user_cannot_pump_many_numbers() {
    many_numbers_from_one_user().await;
    one_user_without_pause().await;
}

#[tokio::test]
async fn b_one_number_gets_at_most_ten_codes_a_day() {
    one_number_from_many_users().await;
}

#[tokio::test]
async fn c_one_ip_gets_at_most_twenty_codes_an_hour() {
    many_users_from_one_ip().await;
    many_users_rotating_ipv6().await;
}

#[tokio::test]
async fn d_a_prefix_sweep_is_stopped_by_the_prefix_window() {
    prefix_sweep().await;
}

#[tokio::test]
async fn e_premium_and_foreign_numbers_get_no_code() {
    premium_rate_numbers().await;
    countries_not_allowed().await;
}

#[tokio::test]
async fn f_a_country_sweep_is_stopped_by_the_country_window() {
    country_sweep().await;
}

#[tokio::test]
async fn g_h_concurrent_bursts_send_no_more_than_the_windows_allow() {
    concurrent_burst_from_one_ip().await;
    concurrent_burst_from_one_user().await;
}

// ---- the table ----

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| attempt | requests | codes sent | first refusal | status/code |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.attempt, r.requests, r.sent, r.first_refusal, r.answer
        ));
    }
    out
}

/// Runs every attempt, prints the table, and checks `docs/abuse.md` and `docs/reliability.md` show it.
#[tokio::test]
async fn abuse_table_matches_docs() {
    let rows = vec![
        many_numbers_from_one_user().await,
        one_user_without_pause().await,
        one_number_from_many_users().await,
        many_users_from_one_ip().await,
        many_users_rotating_ipv6().await,
        prefix_sweep().await,
        premium_rate_numbers().await,
        countries_not_allowed().await,
        country_sweep().await,
        concurrent_burst_from_one_ip().await,
        concurrent_burst_from_one_user().await,
    ];
    let table = table(&rows);
    println!("\n{table}");
    for file in ["docs/abuse.md", "docs/reliability.md"] {
        let path = format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            doc.contains(&table),
            "{file} does not show the measured table; replace it with:\n\n{table}"
        );
    }
}

// ---- the codes' own budget (DESIGN §7) ----

/// SMS pumping that gets past every window (a new user, number block and IP each time) spends
/// the codes' own monthly budget and nothing else: codes are refused (503 `sms_unavailable`,
/// `Retry-After` until the month's end) once it is spent, their receipts never reach the
/// account's spend, and afterwards a security alert (sender) and a HELP reply (inbound-sms)
/// still go out, even though the codes' real cost is above the transactional hard cap.
#[tokio::test]
async fn pumping_spends_the_code_budget_and_never_the_room_of_alerts_and_replies() {
    use aws_lambda_events::event::sns::SnsEvent;
    use delivery_status::DeliveryStatus;
    use inbound_sms::{InboundOutcome, InboundSms};
    use integration_tests::sqs::deliver;
    use sender::{Outcome, Sender};
    use sms_shared::keywords::Intent;
    use sms_shared::kinds::MessageKind;
    use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
    use sms_shared::sms::EumSender;
    use sms_shared::store::log::counter_ids;
    use sms_shared::store::schema::LOG_KEY;
    use sms_shared::store::{Counters, PreferencesStore};

    // Five codes' worth of budget (USD 0.01 reserved per one-part code); caps that the
    // codes' real cost (USD 0.02 each, 0.10 in all) would exhaust if codes counted there.
    let api = Api::with(&[
        ("VERIFICATION_MONTHLY_BUDGET_USD", "0.05"),
        ("MONTHLY_SPEND_CAP_USD", "0.05"),
        ("TRANSACTIONAL_HARD_CAP_USD", "0.10"),
    ])
    .await;
    let mut replies = Vec::new();
    for i in 0..8 {
        let ip = format!("198.51.100.{}", 10 + i);
        replies.push(
            api.call(verification_start(
                &format!("pump-b-{i}"),
                &own_prefix(i),
                &ip,
            ))
            .await,
        );
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [202, 202, 202, 202, 202, 503, 503, 503]);
    for reply in &replies[5..] {
        reply.assert_error(503, "sms_unavailable");
        // 2026-11-25 12:00 to 2026-12-01 00:00: when the budget starts again.
        assert_eq!(retry_after(reply), Some("475200"), "{reply:?}");
    }
    let codes = api.stub.sent();
    assert_eq!(codes.len(), 5, "no SMS for a refused code");

    let counters = Counters::new(api.env.dynamodb.clone(), &api.config.tables.log, LOG_KEY);
    let now = api.now();
    let read = |ids: [String; 2]| {
        let counters = counters.clone();
        async move {
            let values = counters.get_many(&ids, now).await.unwrap();
            ids.map(|id| values.get(&id).copied().unwrap_or(0))
        }
    };
    let code_spend = counter_ids::month_code_spend(now);
    let account_spend = counter_ids::month_spend(now);
    assert_eq!(
        read([code_spend.clone(), account_spend.clone()]).await,
        [50_000, 0]
    );

    // The codes' receipts, at twice the estimate: the budget counter takes their real price,
    // the account's spend (which the caps read) none of it.
    let delivery = DeliveryStatus::new(&api.config, api.env.dynamodb.clone(), api.clock.clone());
    for code in &codes {
        let receipt = integration_tests::events::sns_event("sns-delivery-delivered.json", |m| {
            m.insert("context".into(), serde_json::json!(code.context));
            m.insert("messageId".into(), serde_json::json!(code.message_id));
            m.insert("totalMessagePrice".into(), serde_json::json!(0.015));
            m.insert("totalCarrierFee".into(), serde_json::json!(0.005));
        });
        delivery.handle(receipt).await.expect("receipt applied");
    }
    assert_eq!(
        read([code_spend.clone(), account_spend.clone()]).await,
        [100_000, 0]
    );
    api.call(verification_start(
        "pump-b-late",
        &own_prefix(20),
        "198.51.100.99",
    ))
    .await
    .assert_error(503, "sms_unavailable");

    // A user who consented on their verified number.
    let prefs = PreferencesStore::new(api.env.dynamodb.clone(), &api.config.tables.preferences);
    let phone = "+14155550123";
    let mut user = Preferences::new("u-alerts");
    user.phone_number = Some(phone.into());
    user.phone_verified = true;
    let mut grant = ConsentEvent::new(
        "u-alerts",
        now,
        ConsentAction::Grant,
        ConsentMethod::OptInModal,
    );
    grant.phone_number = user.phone_number.clone();
    grant.apply_to(&mut user.consent);
    prefs.save(&mut user, &[grant], now).await.unwrap();

    // A security alert goes out.
    let sender = Sender::new(
        &api.config,
        api.env.dynamodb.clone(),
        api.env.sqs.clone(),
        EumSender::new(api.stub.client(), &api.config.sms),
        api.clock.clone(),
    );
    let alert = integration_tests::sender_fixture::request(
        "alert-after-pumping",
        MessageKind::SecurityAlert,
        "u-alerts",
    );
    let mut outcomes = Vec::new();
    for event in deliver(&api.env, &api.env.queues.transactional, &[alert]).await {
        outcomes.extend(sender.process(&event).await);
    }
    assert_eq!(outcomes, [Outcome::Sent]);

    // And so does the answer to HELP.
    let inbound = InboundSms::new(
        &api.config,
        api.env.dynamodb.clone(),
        EumSender::new(api.stub.client(), &api.config.sms),
        api.clock.clone(),
    );
    let help: SnsEvent = integration_tests::events::sns_event("sns-inbound-help.json", |_| {});
    assert_eq!(
        inbound.handle(help).await.unwrap(),
        [InboundOutcome::Processed {
            intent: Intent::Help,
            users_changed: 0,
            replied: true
        }]
    );
    let to_user: Vec<_> = api.stub.sent_to(phone);
    assert_eq!(to_user.len(), 2, "the alert and the help text: {to_user:?}");
}
