//! `opt-in-api` (DESIGN §5): the opt-in prompt, the SMS preferences and the consent record
//! of the signed-in user.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `{API_BASE_PATH}/notifications/sms-opt-in/` | `{show_prompt, already_opted_in, phone_number, phone_verified}` |
//! | POST | `{API_BASE_PATH}/notifications/sms-opt-in/` | `{success, allow_sms_invitations}` |
//! | GET | `{API_BASE_PATH}/notifications/me/sms-preferences/` | the preferences view |
//! | PATCH | `{API_BASE_PATH}/notifications/me/sms-preferences/` | `{success, updated, ...the preferences view}` |
//!
//! Bodies are snake_case both ways, with the old Django backend's field names. The user is
//! the app's access token ([`sms_shared::auth`]); every read and write is keyed by it, so no
//! request can reach another user's preferences. Writes go through the one update protocol
//! ([`sms_shared::store::PreferencesStore::update`]: conditional on the version read, retried).
//!
//! The handlers are generic over the ports of [`sms_shared::opt_in`] ([`Ports`]: reading
//! preferences, changing them with the confirmation they owe, sending it); `main.rs` wires the
//! DynamoDB and SMS adapters ([`Stores`]), the unit tests the in-memory fake. DynamoDB round
//! trips (docs/http-api.md): a GET of the preferences is one read; the prompt's GET a read and
//! a conditional write; an opt-in or a PATCH a read, one write (the preferences, the consent
//! history and, when the change owes one, the confirmation's log record, in one transaction)
//! and the confirmation's outcome: at most three.
//!
//! Consent is bound to a number (§4): a grant covers the user's verified number, or is
//! pending (the modal sends no number) until the user verifies one.
//!
//! An opt-in that leaves consent covering the verified number when it did not before (the
//! modal's opt-in or the settings switch, on a verified number) sends the opt-in confirmation
//! of that grant, once, in the user's language ([`sms_shared::opt_in`], DESIGN §8). The
//! answer does not depend on it: the opt-in is done whether or not the text goes out.

use jiff::{SignedDuration, Timestamp};
use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use sms_shared::Config;
use sms_shared::auth::{Authenticator, Caller};
use sms_shared::clock::Clock;
use sms_shared::disclosure;
use sms_shared::http::{self as api, ApiError, json_response, non_null, nullable, parse_json};
use sms_shared::kinds::Category;
use sms_shared::locale::Locale;
use sms_shared::metrics::MetricSet;
use sms_shared::opt_in::{
    self, Claimed, ConfirmationSend, ConfirmationSender, Confirming, ConsentStore, ConsentWrites,
    PreferencesRead,
};
use sms_shared::phone::E164;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::sms::SmsSender;
use sms_shared::store::{LogStore, PreferencesStore, StoreError, UpdateError};
use std::sync::Arc;

#[cfg(test)]
mod handler_tests;

/// The prompt is not shown again within this time of being shown.
pub const PROMPT_INTERVAL: SignedDuration = SignedDuration::from_hours(24);
/// "Remind me later" hides the prompt for this long.
pub const REMIND_LATER: SignedDuration = SignedDuration::from_hours(72);
/// Longest IANA zone name accepted.
const MAX_TIME_ZONE_CHARS: usize = 64;

pub const OPT_IN_PATH: &str = "/notifications/sms-opt-in";
pub const PREFERENCES_PATH: &str = "/notifications/me/sms-preferences";

/// Everything the handlers need: the ports of [`sms_shared::opt_in`].
pub trait Ports: PreferencesRead + ConsentWrites + ConfirmationSend {}

impl<T: PreferencesRead + ConsentWrites + ConfirmationSend> Ports for T {}

/// The DynamoDB and SMS adapters of [`Ports`].
pub struct Stores<S> {
    pub consent: ConsentStore,
    pub confirmations: ConfirmationSender<S>,
}

impl<S: Send + Sync> PreferencesRead for Stores<S> {
    async fn current(&self, user_id: &str) -> Result<Option<Preferences>, StoreError> {
        self.consent.current(user_id).await
    }
}

impl<S: Send + Sync> ConsentWrites for Stores<S> {
    async fn change<E, F>(
        &self,
        user_id: &str,
        now: Timestamp,
        read: Option<Preferences>,
        change: F,
    ) -> Result<opt_in::Change, E>
    where
        E: From<UpdateError> + Send,
        F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, E> + Send,
    {
        self.consent.change(user_id, now, read, change).await
    }
}

impl<S: SmsSender> ConfirmationSend for Stores<S> {
    async fn send_claimed(&self, claimed: &Claimed) -> Option<&'static str> {
        self.confirmations.send_claimed(claimed).await
    }
}

/// Everything the handler needs, built once per cold start. `P`: the ports ([`Stores`] in
/// production).
pub struct State<P> {
    pub config: Config,
    pub auth: Authenticator,
    pub ports: P,
    pub clock: Arc<dyn Clock>,
}

impl<S: SmsSender> State<Stores<S>> {
    /// The production wiring: the preferences and log tables, and `sender` for the opt-in
    /// confirmations.
    pub fn new(
        config: Config,
        auth: Authenticator,
        dynamodb: aws_sdk_dynamodb::Client,
        sender: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let ports = Stores {
            consent: ConsentStore {
                preferences: PreferencesStore::new(
                    dynamodb.clone(),
                    config.tables.preferences.clone(),
                ),
                log_table: config.tables.log.clone(),
                branding: config.branding.clone(),
                allowed_countries: config.allowed_countries.clone(),
                lease: config.claim_lease,
            },
            confirmations: ConfirmationSender {
                log: LogStore::new(dynamodb, config.tables.log.clone()),
                sms: sender,
                clock: clock.clone(),
                lease: config.claim_lease,
            },
        };
        Self {
            config,
            auth,
            ports,
            clock,
        }
    }
}

impl<P: Ports> State<P> {
    /// Sends the confirmation a saved change claimed, if it did (the answer does not depend
    /// on it), and counts it.
    async fn confirm(&self, confirming: &Confirming) {
        let metric = match confirming {
            Confirming::Claimed(claimed) => self.ports.send_claimed(claimed).await,
            other => opt_in::unsendable_metric(other),
        };
        if let Some(metric) = metric {
            let mut set = MetricSet::default();
            set.count(metric);
            set.emit("opt-in-api");
        }
    }
}

/// The Lambda handler: routes, answers every client mistake with the §5 error shape, and
/// returns `Err` never (faults are 500 responses with the request id).
pub async fn handler<P: Ports>(
    state: &State<P>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(context),
        _ => None,
    };
    let invocation = request.lambda_context_ref().map(|c| c.request_id.as_str());
    let request_id = api::quoted_request_id(context, invocation);
    let path = request.raw_http_path();
    let result = route(state, &request, context).await;
    Ok(api::answer(request.method(), path, &request_id, result).map(Body::from))
}

async fn route<P: Ports>(
    state: &State<P>,
    request: &Request,
    context: Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext>,
) -> Result<lambda_http::http::Response<String>, ApiError> {
    let method = request.method();
    let path = api::route_path(request.raw_http_path(), &state.config.api_base_path)
        .ok_or_else(ApiError::not_found)?;
    let allowed: &[Method] = match path {
        OPT_IN_PATH => &[Method::GET, Method::POST],
        PREFERENCES_PATH => &[Method::GET, Method::PATCH],
        _ => return Err(ApiError::not_found()),
    };
    let allow_header = if path == OPT_IN_PATH {
        "GET, POST"
    } else {
        "GET, PATCH"
    };
    api::allow(method, allowed, allow_header)?;
    let caller = state
        .auth
        .authenticate(method, context, request.headers())?;
    let body = request.body().as_ref();
    match (path, method) {
        (OPT_IN_PATH, &Method::GET) => get_prompt(state, &caller).await,
        (OPT_IN_PATH, _) => post_opt_in(state, &caller, request.headers(), body).await,
        (_, &Method::GET) => get_preferences(state, &caller).await,
        _ => patch_preferences(state, &caller, request.headers(), body).await,
    }
}

// ---- GET /notifications/sms-opt-in/ ----

#[derive(Debug, Serialize)]
struct PromptView {
    show_prompt: bool,
    already_opted_in: bool,
    /// `""` when none, as the old backend answered.
    phone_number: String,
    phone_verified: bool,
}

fn already_opted_in(p: &Preferences, now: Timestamp) -> bool {
    p.allow_sms_invitations && p.has_consent_at(now)
}

/// Whether the prompt may be shown now (§5): not when opted in, dismissed, asked to remind
/// later and that time has not come, or shown within the last 24 hours.
pub fn should_show_prompt(p: &Preferences, now: Timestamp) -> bool {
    !already_opted_in(p, now)
        && p.prompt.dismissed_at.is_none()
        && p.prompt.remind_after.is_none_or(|t| t <= now)
        && p.prompt.shown_at.is_none_or(|t| t + PROMPT_INTERVAL <= now)
}

async fn get_prompt<P: Ports>(
    state: &State<P>,
    caller: &Caller,
) -> Result<lambda_http::http::Response<String>, ApiError> {
    let now = state.clock.now();
    let mut show = false;
    // Recording `shown_at` is a write: concurrent GETs resolve through the version check,
    // and only the one that saved answers true.
    let prefs = state
        .ports
        .change::<ApiError, _>(&caller.user_id, now, None, |p| {
            show = should_show_prompt(p, now);
            if show {
                p.prompt.shown_at = Some(now);
            }
            Ok(Vec::new())
        })
        .await?
        .updated
        .prefs;
    Ok(json_response(
        StatusCode::OK,
        &PromptView {
            show_prompt: show,
            already_opted_in: already_opted_in(&prefs, now),
            phone_number: prefs.phone_number.clone().unwrap_or_default(),
            phone_verified: prefs.phone_verified,
        },
    ))
}

// ---- POST /notifications/sms-opt-in/ ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PromptAction {
    OptIn,
    Dismiss,
    RemindLater,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptInBody {
    action: PromptAction,
    #[serde(default, deserialize_with = "nullable")]
    phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    disclosure_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    locale: Option<String>,
}

#[derive(Debug, Serialize)]
struct OptInAnswer {
    success: bool,
    allow_sms_invitations: bool,
}

async fn post_opt_in<P: Ports>(
    state: &State<P>,
    caller: &Caller,
    headers: &lambda_http::http::HeaderMap,
    body: &[u8],
) -> Result<lambda_http::http::Response<String>, ApiError> {
    let body: OptInBody = parse_json(headers, body)?;
    // Validated whatever the action, so a bad value is always a 400; applied on opt_in only.
    let phone = match body.phone_number.flatten().filter(|n| !n.trim().is_empty()) {
        Some(raw) => Some(parse_phone(&raw, &state.config.allowed_countries)?),
        None => None,
    };
    let time_zone = match body.time_zone.flatten() {
        Some(raw) => Some(parse_time_zone(&raw)?),
        None => None,
    };
    let disclosure = parse_disclosure(body.disclosure_version.flatten().as_deref())?;
    // The language of the user's texts: as asked, else (the first time) the browser's.
    let locale = match body.locale.as_deref() {
        Some(raw) => Some(parse_locale(raw)?),
        None => headers
            .get(lambda_http::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Locale::from_accept_language),
    };
    let asked_locale = body.locale.is_some();
    let now = state.clock.now();
    let change = state
        .ports
        .change::<ApiError, _>(&caller.user_id, now, None, |p| {
            match body.action {
                PromptAction::Dismiss => {
                    p.prompt.dismissed_at = Some(now);
                    Ok(Vec::new())
                }
                PromptAction::RemindLater => {
                    p.prompt.remind_after = Some(now + REMIND_LATER);
                    Ok(Vec::new())
                }
                PromptAction::OptIn => {
                    if let Some(phone) = &phone {
                        set_phone(p, Some(phone));
                    }
                    if let Some(zone) = &time_zone {
                        p.time_zone = Some(zone.clone());
                    }
                    if let Some(locale) = locale
                        && (asked_locale || p.locale.is_none())
                    {
                        p.locale = Some(locale.as_str().to_owned());
                    }
                    p.allow_sms_invitations = true;
                    // Every opt-in is recorded, even a repeated one: it is a fresh act of consent
                    // under the disclosure shown now. Without a verified number it is pending (§4).
                    let event = grant(caller, p, now, ConsentMethod::OptInModal, disclosure);
                    event.apply_to(&mut p.consent);
                    Ok(vec![event])
                }
            }
        })
        .await?;
    state.confirm(&change.confirmation).await;
    let prefs = change.updated.prefs;
    Ok(json_response(
        StatusCode::OK,
        &OptInAnswer {
            success: true,
            allow_sms_invitations: prefs.allow_sms_invitations,
        },
    ))
}

// ---- GET / PATCH /notifications/me/sms-preferences/ ----

#[derive(Debug, Serialize)]
struct PreferencesView {
    allow_sms_invitations: bool,
    /// `""` when none, as the old backend answered.
    phone_number: String,
    phone_verified: bool,
    sms_battle_invitations: bool,
    sms_battle_results: bool,
    sms_battle_reminders: bool,
    sms_streak_alerts: bool,
    sms_direct_messages: bool,
    sms_achievements: bool,
    time_zone: Option<String>,
    locale: String,
    has_consent: bool,
    consent_given_at: Option<Timestamp>,
}

impl PreferencesView {
    fn new(p: &Preferences, now: Timestamp) -> Self {
        let t = &p.toggles;
        let has_consent = p.has_consent_at(now);
        Self {
            allow_sms_invitations: p.allow_sms_invitations,
            phone_number: p.phone_number.clone().unwrap_or_default(),
            phone_verified: p.phone_verified,
            sms_battle_invitations: t.battle_invitations,
            sms_battle_results: t.battle_results,
            sms_battle_reminders: t.battle_reminders,
            sms_streak_alerts: t.streak_alerts,
            sms_direct_messages: t.direct_messages,
            sms_achievements: t.achievements,
            time_zone: p.time_zone.clone(),
            locale: p.locale().as_str().to_owned(),
            has_consent,
            consent_given_at: has_consent.then_some(p.consent.given_at).flatten(),
        }
    }
}

async fn get_preferences<P: Ports>(
    state: &State<P>,
    caller: &Caller,
) -> Result<lambda_http::http::Response<String>, ApiError> {
    let prefs = match state.ports.current(&caller.user_id).await {
        Ok(found) => found.unwrap_or_else(|| Preferences::new(caller.user_id.clone())),
        Err(e) => {
            tracing::error!(error = %e, "reading preferences failed");
            return Err(ApiError::internal());
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &PreferencesView::new(&prefs, state.clock.now()),
    ))
}

/// The writable fields; `null` is accepted only where it means "clear" (phone, zone), and
/// `disclosure_version` names the text shown with the switch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, deserialize_with = "non_null")]
    allow_sms_invitations: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    sms_battle_invitations: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    sms_battle_results: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    sms_battle_reminders: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    sms_streak_alerts: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    sms_direct_messages: Option<bool>,
    #[serde(default, deserialize_with = "non_null")]
    sms_achievements: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    locale: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    disclosure_version: Option<Option<String>>,
}

/// Fields of the view the client may not write.
const READ_ONLY_FIELDS: [&str; 3] = ["phone_verified", "has_consent", "consent_given_at"];

impl PatchBody {
    fn toggles(&self) -> [(Category, &'static str, Option<bool>); 6] {
        [
            (
                Category::BattleInvitations,
                "sms_battle_invitations",
                self.sms_battle_invitations,
            ),
            (
                Category::BattleResults,
                "sms_battle_results",
                self.sms_battle_results,
            ),
            (
                Category::BattleReminders,
                "sms_battle_reminders",
                self.sms_battle_reminders,
            ),
            (
                Category::StreakAlerts,
                "sms_streak_alerts",
                self.sms_streak_alerts,
            ),
            (
                Category::DirectMessages,
                "sms_direct_messages",
                self.sms_direct_messages,
            ),
            (
                Category::Achievements,
                "sms_achievements",
                self.sms_achievements,
            ),
        ]
    }

    /// The fields the request set, in the order of the view.
    fn updated(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.allow_sms_invitations.is_some() {
            out.push("allow_sms_invitations");
        }
        if self.phone_number.is_some() {
            out.push("phone_number");
        }
        out.extend(
            self.toggles()
                .into_iter()
                .filter(|(_, _, v)| v.is_some())
                .map(|(_, name, _)| name),
        );
        if self.time_zone.is_some() {
            out.push("time_zone");
        }
        if self.locale.is_some() {
            out.push("locale");
        }
        out
    }
}

#[derive(Debug, Serialize)]
struct PatchAnswer {
    success: bool,
    updated: Vec<&'static str>,
    #[serde(flatten)]
    preferences: PreferencesView,
}

async fn patch_preferences<P: Ports>(
    state: &State<P>,
    caller: &Caller,
    headers: &lambda_http::http::HeaderMap,
    raw: &[u8],
) -> Result<lambda_http::http::Response<String>, ApiError> {
    let body: PatchBody = match parse_json(headers, raw) {
        Ok(body) => body,
        Err(e) if e.code == "unknown_field" => {
            let keys = api::object_keys(raw);
            return Err(
                match keys.iter().find(|k| READ_ONLY_FIELDS.contains(&k.as_str())) {
                    Some(field) => ApiError::invalid_field(
                        "read_only_field",
                        field,
                        format!("`{field}` cannot be changed here"),
                    ),
                    None => e,
                },
            );
        }
        Err(e) => return Err(e),
    };
    // Everything is validated before anything is written.
    // `""` clears the number as `null` does (the old backend's forms sent "").
    let phone = match &body.phone_number {
        Some(Some(raw)) if !raw.trim().is_empty() => {
            Some(Some(parse_phone(raw, &state.config.allowed_countries)?))
        }
        Some(_) => Some(None),
        None => None,
    };
    let time_zone = match &body.time_zone {
        Some(Some(raw)) => Some(Some(parse_time_zone(raw)?)),
        Some(None) => Some(None),
        None => None,
    };
    let locale = body.locale.as_deref().map(parse_locale).transpose()?;
    let disclosure = parse_disclosure(body.disclosure_version.clone().flatten().as_deref())?;
    let now = state.clock.now();
    let change = state
        .ports
        .change::<ApiError, _>(&caller.user_id, now, None, |p| {
            let mut events = Vec::new();
            if let Some(locale) = locale {
                p.locale = Some(locale.as_str().to_owned());
            }
            if let Some(phone) = &phone {
                set_phone(p, phone.as_ref());
            }
            if let Some(zone) = &time_zone {
                p.time_zone = zone.clone();
            }
            for (category, _, value) in body.toggles() {
                if let Some(on) = value {
                    p.toggles.set(category, on);
                }
            }
            match body.allow_sms_invitations {
                Some(true) => {
                    p.allow_sms_invitations = true;
                    // A grant unless one already covers this user's number (or is pending).
                    if !p.has_consent_at(now) {
                        let event = grant(caller, p, now, ConsentMethod::SettingsPage, disclosure);
                        event.apply_to(&mut p.consent);
                        events.push(event);
                    }
                }
                Some(false) => {
                    p.allow_sms_invitations = false;
                    if p.consent.given {
                        let mut event = ConsentEvent::new(
                            &caller.user_id,
                            now,
                            ConsentAction::Revoke,
                            ConsentMethod::SettingsPage,
                        );
                        event.phone_number = p.phone_number.clone();
                        event.ip = caller.source_ip.clone();
                        event.user_agent = caller.user_agent.clone();
                        event.apply_to(&mut p.consent);
                        events.push(event);
                    }
                }
                None => {}
            }
            Ok(events)
        })
        .await?;
    state.confirm(&change.confirmation).await;
    let prefs = change.updated.prefs;
    Ok(json_response(
        StatusCode::OK,
        &PatchAnswer {
            success: true,
            updated: body.updated(),
            preferences: PreferencesView::new(&prefs, now),
        },
    ))
}

// ---- helpers ----

fn parse_phone(raw: &str, allowed: &[String]) -> Result<E164, ApiError> {
    E164::parse_allowed(raw, allowed)
        .map_err(|e| ApiError::invalid_field(e.code(), "phone_number", e.to_string()))
}

/// One of the locales the texts exist in (`es`, `es-MX`, ...).
fn parse_locale(raw: &str) -> Result<Locale, ApiError> {
    Locale::from_tag(raw).ok_or_else(|| {
        ApiError::invalid_field("invalid_locale", "locale", "locale must be `en` or `es`")
    })
}

/// The disclosure the client showed: the version it names, else the current one.
fn parse_disclosure(version: Option<&str>) -> Result<&'static disclosure::Disclosure, ApiError> {
    disclosure::lookup(version).map_err(|_| {
        ApiError::invalid_field(
            "unknown_disclosure_version",
            "disclosure_version",
            "unknown disclosure version",
        )
    })
}

/// An IANA zone name the bundled database knows (`America/Chicago`).
fn parse_time_zone(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let invalid = || {
        ApiError::invalid_field(
            "invalid_time_zone",
            "time_zone",
            "time_zone is not a known IANA time zone",
        )
    };
    if name.is_empty() || name.len() > MAX_TIME_ZONE_CHARS {
        return Err(invalid());
    }
    let zone = jiff::tz::TimeZone::get(name).map_err(|_| invalid())?;
    Ok(zone.iana_name().unwrap_or(name).to_owned())
}

/// Sets (or clears) the number; a different number is unverified until verified again.
fn set_phone(p: &mut Preferences, phone: Option<&E164>) {
    let new = phone.map(|n| n.as_str().to_owned());
    if p.phone_number != new {
        p.phone_number = new;
        p.phone_verified = false;
        p.phone_verified_at = None;
        // The undeliverable mark (§8) belonged to the old number.
        p.phone_undeliverable_at = None;
    }
}

/// A consent grant with everything the record keeps (§9): time, method, the number it
/// covers (none: pending, §4), IP, user agent, and the exact disclosure text and version.
fn grant(
    caller: &Caller,
    p: &Preferences,
    now: Timestamp,
    method: ConsentMethod,
    disclosure: &disclosure::Disclosure,
) -> ConsentEvent {
    let mut event = ConsentEvent::new(&caller.user_id, now, ConsentAction::Grant, method);
    event.phone_number = p.number_to_bind();
    event.ip = caller.source_ip.clone();
    event.user_agent = caller.user_agent.clone();
    event.disclosure_text = Some(disclosure.text.to_owned());
    event.disclosure_version = Some(disclosure.version.to_owned());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn prompt_rules() {
        let now = at("2026-11-25T12:00:00Z");
        let mut p = Preferences::new("u");
        assert!(should_show_prompt(&p, now));
        p.prompt.shown_at = Some(at("2026-11-25T00:00:00Z"));
        assert!(!should_show_prompt(&p, now), "shown 12 h ago");
        p.prompt.shown_at = Some(at("2026-11-24T12:00:00Z"));
        assert!(should_show_prompt(&p, now), "shown 24 h ago");
        p.prompt.remind_after = Some(at("2026-11-26T00:00:00Z"));
        assert!(!should_show_prompt(&p, now), "remind later not due");
        p.prompt.remind_after = None;
        p.prompt.dismissed_at = Some(at("2026-01-01T00:00:00Z"));
        assert!(!should_show_prompt(&p, now), "dismissed");
        let mut q = Preferences::new("u");
        q.allow_sms_invitations = true;
        q.consent.given = true;
        q.consent.pending_until = Some(now);
        assert!(!should_show_prompt(&q, now), "opted in");
    }

    #[test]
    fn time_zones_must_be_iana_names() {
        assert_eq!(
            parse_time_zone("America/Chicago").unwrap(),
            "America/Chicago"
        );
        for bad in ["", "Mars/Olympus", "CST6CDT/../../etc", &"A".repeat(65)] {
            assert_eq!(
                parse_time_zone(bad).unwrap_err().code,
                "invalid_time_zone",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_new_number_resets_verification_and_the_same_one_does_not() {
        let mut p = Preferences::new("u");
        p.phone_number = Some("+14155550123".into());
        p.phone_verified = true;
        p.phone_undeliverable_at = Some("2026-01-01T00:00:00Z".parse().unwrap());
        set_phone(&mut p, Some(&E164::parse("+14155550123").unwrap()));
        assert!(p.phone_verified);
        set_phone(&mut p, Some(&E164::parse("+14155550124").unwrap()));
        assert!(!p.phone_verified);
        assert_eq!(p.phone_undeliverable_at, None);
        assert_eq!(p.phone_number.as_deref(), Some("+14155550124"));
        set_phone(&mut p, None);
        assert_eq!(p.phone_number, None);
    }
}
