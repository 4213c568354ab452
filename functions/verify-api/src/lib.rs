//! `verify-api` (DESIGN §5): start and check phone verification of the signed-in user.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `{API_BASE_PATH}/notifications/me/phone-verification/` `{phone_number}` | 202 `{expires_in_seconds, resend_after_seconds, phone_number}` (masked) |
//! | POST | `{API_BASE_PATH}/notifications/me/phone-verification/check/` `{code}` | 200 `{phone_verified: true, phone_number}` |
//!
//! A successful check also binds a pending consent grant (the opt-in modal's, made without a
//! number) to the verified number, when it is at most 30 days old (§4), and then sends that
//! grant's opt-in confirmation, once ([`sms_shared::opt_in`], §8).
//!
//! Codes speak the user's language (the preferences' `locale`, else the request's
//! `Accept-Language`, else English), and spend their own monthly budget
//! (`VERIFICATION_MONTHLY_BUDGET_USD`, §7): each code reserves its estimated price in
//! `counter#code-spend#<month>` with one bounded atomic increment before it is sent, and is
//! refused (503 `sms_unavailable`) when the budget has no room. Codes never count toward the
//! account's spend that the promotional cap and the transactional hard cap read, so SMS
//! pumping can exhaust this budget and nothing else.
//!
//! Rules (§5) and where they are kept:
//! * codes come from the OS CSPRNG and are stored only as an HMAC-SHA256 bound to the user and
//!   the code instance ([`sms_shared::verification`]); the SMS log keeps the body with the
//!   code redacted, and no log line carries a code or a full number;
//! * one pending code per user, valid 10 minutes, 5 wrong checks end it, used once
//!   ([`VerificationStore::consume`]: of concurrent right checks exactly one wins);
//! * resend no sooner than 30 s ([`VerificationStore::put_code`] checks it atomically);
//! * fixed windows per user, IP, number, number prefix and country, each an atomic bounded
//!   counter; a refusal is 429 with `Retry-After`;
//! * premium-rate and shared-cost numbers get no code ([`rules::is_premium_rate`]);
//! * the country window is tighter for every country but the home market (US 100 an hour,
//!   others 20: [`WindowLimits`]);
//! * answers never depend on whether another user has the number.

use jiff::Timestamp;
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sms_shared::Config;
use sms_shared::auth::{Authenticator, Caller};
use sms_shared::clock::Clock;
use sms_shared::consent::{self, Decision, SendCheck, SuppressReason, Usage};
use sms_shared::http::{self as api, ApiError, json_response, parse_json};
use sms_shared::kinds::{MessageClass, MessageKind};
use sms_shared::locale::Locale;
use sms_shared::opt_in;
use sms_shared::outbound::{self, Outbound, Sent};
use sms_shared::phone::E164;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::secrets::SecretKey;
use sms_shared::sms::{SmsError, SmsSender};
use sms_shared::store::batch::read_preferences_and_counters;
use sms_shared::store::log::counter_ids;
use sms_shared::store::receipts::SPEND_COUNTER_KEEP;
use sms_shared::store::schema::LOG_KEY;
use sms_shared::store::{
    Bounded, Claim, CodeRecord, Counters, LogStore, NewLogRecord, PreferencesStore, PutCode,
    UpdateError, VerificationStore,
};
use sms_shared::template;
use sms_shared::verification::{
    self as rules, CODE_LIFETIME, MAX_ATTEMPTS, RESEND_COOLDOWN, WindowLimits, code_estimate_micros,
};
use std::sync::Arc;
use tracing::{error, info, warn};

/// Routes below `API_BASE_PATH`.
pub const START_PATH: &str = "/notifications/me/phone-verification";
pub const CHECK_PATH: &str = "/notifications/me/phone-verification/check";

/// Everything the handler needs, built once per cold start.
pub struct State<S> {
    pub config: Config,
    pub auth: Authenticator,
    /// Keys the HMAC of stored codes (from Secrets Manager).
    pub code_key: SecretKey,
    pub preferences: PreferencesStore,
    pub codes: VerificationStore,
    pub log: LogStore,
    /// Counters of the log table (the monthly spend).
    pub log_counters: Counters,
    pub sender: S,
    pub clock: Arc<dyn Clock>,
    pub windows: WindowLimits,
}

impl<S: SmsSender> State<S> {
    pub fn new(
        config: Config,
        auth: Authenticator,
        code_key: SecretKey,
        dynamodb: aws_sdk_dynamodb::Client,
        sender: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let tables = &config.tables;
        Self {
            preferences: PreferencesStore::new(dynamodb.clone(), tables.preferences.clone()),
            codes: VerificationStore::new(dynamodb.clone(), tables.verification.clone()),
            log: LogStore::new(dynamodb.clone(), tables.log.clone()),
            log_counters: Counters::new(dynamodb, tables.log.clone(), LOG_KEY),
            config,
            auth,
            code_key,
            sender,
            clock,
            windows: WindowLimits::default(),
        }
    }
}

type HttpResponse = lambda_http::http::Response<String>;

/// The Lambda handler: routes and answers; client mistakes are 4xx responses, faults 500
/// with the request id. Never `Err`.
pub async fn handler<S: SmsSender>(
    state: &State<S>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(context),
        _ => None,
    };
    let request_id = api::request_id(context)
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(|| "-".to_owned());
    let path = request.raw_http_path();
    let result = route(state, &request, context).await;
    Ok(api::answer(request.method(), path, &request_id, result).map(Body::from))
}

async fn route<S: SmsSender>(
    state: &State<S>,
    request: &Request,
    context: Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext>,
) -> Result<HttpResponse, ApiError> {
    let path = api::route_path(request.raw_http_path(), &state.config.api_base_path)
        .filter(|p| *p == START_PATH || *p == CHECK_PATH)
        .ok_or_else(ApiError::not_found)?;
    api::allow(request.method(), &[Method::POST], "POST")?;
    let caller = state
        .auth
        .authenticate(request.method(), context, request.headers())?;
    let body = request.body().as_ref();
    if path == START_PATH {
        start(state, &caller, request.headers(), body).await
    } else {
        check(state, &caller, request.headers(), body).await
    }
}

// ---- start ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    phone_number: String,
}

#[derive(Debug, Serialize)]
struct StartAnswer {
    expires_in_seconds: i64,
    resend_after_seconds: i64,
    /// Masked: the answer repeats as little of the number as possible.
    phone_number: String,
}

fn internal(what: &'static str, err: &dyn std::fmt::Display) -> ApiError {
    error!(error = %err, "{what}");
    ApiError::internal()
}

fn resend_too_soon(now: Timestamp, resend_after_ms: i64) -> ApiError {
    let until = Timestamp::from_millisecond(resend_after_ms).unwrap_or(now);
    ApiError::too_many_requests(
        "resend_too_soon",
        "a code was sent moments ago; wait before asking for another",
        rules::retry_after_secs(now, until),
    )
}

async fn start<S: SmsSender>(
    state: &State<S>,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: StartBody = parse_json(headers, body)?;
    let number = E164::parse_allowed(&body.phone_number, &state.config.allowed_countries)
        .map_err(|e| ApiError::invalid_field(e.code(), "phone_number", e.to_string()))?;
    // Premium-rate and shared-cost numbers earn their owner money per message: pumping's
    // target, never a user's phone. Refused before any window is counted.
    if rules::is_premium_rate(&number) {
        return Err(ApiError::invalid_field(
            "invalid_phone_number",
            "phone_number",
            "premium-rate numbers cannot receive verification codes",
        ));
    }
    let now = state.clock.now();
    let user_id = caller.user_id.as_str();

    // Cheap early answer inside the cooldown, before any window is counted. `put_code`
    // checks it again atomically.
    let pending = state
        .codes
        .get_code(user_id)
        .await
        .map_err(|e| internal("reading the pending code failed", &e))?;
    if let Some(pending) = &pending
        && pending.resend_after_ms > now.as_millisecond()
    {
        return Err(resend_too_soon(now, pending.resend_after_ms));
    }

    // Rate-limit windows, the caller's own first.
    for window in rules::windows(
        &state.windows,
        user_id,
        &number,
        caller.source_ip.as_deref(),
        now,
    ) {
        match state
            .codes
            .windows()
            .increment_within(&window.id, 1, window.cap, window.ends_at)
            .await
            .map_err(|e| internal("counting a verification window failed", &e))?
        {
            Bounded::Counted(_) => {}
            Bounded::CapReached => {
                warn!(window = window.kind.as_str(), to = %number.masked(), "verification window full");
                return Err(ApiError::too_many_requests(
                    "rate_limited",
                    "too many verification codes requested; try again later",
                    window.retry_after_secs(now),
                ));
            }
        }
    }

    // §4 for codes: the target's country and the hard spend cap (consent is not needed:
    // the user is asking for the code).
    // One BatchGetItem for both, as in the sender.
    let spend_id = counter_ids::month_spend(now);
    let mut read = read_preferences_and_counters(
        &state.preferences,
        &[user_id],
        &state.log_counters,
        std::slice::from_ref(&spend_id),
        now,
    )
    .await
    .map_err(|e| internal("reading preferences and the monthly spend failed", &e))?;
    let prefs = read.preferences.remove(user_id);
    let decision = consent::decide(&SendCheck {
        kind: MessageKind::PhoneVerification,
        prefs: prefs.as_ref(),
        verification_target: Some(&number),
        number_undeliverable: false,
        allowed_countries: &state.config.allowed_countries,
        usage: Usage {
            monthly_spend_micros: read.counters.get(&spend_id).copied().unwrap_or(0),
            ..Usage::default()
        },
        limits: &state.config.limits,
        now,
    });
    match decision {
        Decision::Send(_) => {}
        Decision::Suppress(SuppressReason::CountryNotAllowed) => {
            return Err(ApiError::invalid_field(
                "country_not_supported",
                "phone_number",
                "phone numbers from this country are not supported",
            ));
        }
        Decision::Suppress(reason) => {
            warn!(reason = reason.as_str(), "verification code not sent");
            return Err(ApiError {
                retry_after: Some(3600),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sms_unavailable",
                    "text messages cannot be sent right now; try again later",
                )
            });
        }
        Decision::Defer { .. } => {
            // Codes are transactional and never deferred; refuse rather than hold one.
            return Err(internal(
                "a verification code was deferred",
                &"unexpected decision",
            ));
        }
    }

    let code = rules::generate_code().map_err(|e| internal("no randomness for a code", &e))?;
    let code_id = rules::random_id().map_err(|e| internal("no randomness for an id", &e))?;
    let log_id = format!("verify-{code_id}");
    let params = Map::from_iter([("code".to_owned(), Value::String(code.expose().to_owned()))]);
    let locale = code_locale(prefs.as_ref(), headers);
    let rendered = template::render_in(
        MessageKind::PhoneVerification,
        &params,
        &state.config.branding,
        state.config.sms.max_segments,
        locale,
    )
    .map_err(|e| internal("the verification template does not render", &e))?;

    // The codes' own budget (§7), reserved before anything is sent: a pumping burst runs
    // ahead of the receipts, so a budget checked against them could be overrun.
    let budget = CodeBudget::reserve(state, rendered.segments.segments, now).await?;

    let record = CodeRecord {
        user_id: user_id.to_owned(),
        code_id: code_id.clone(),
        code_hmac: rules::code_hmac(state.code_key.expose(), user_id, &code_id, code.expose()),
        phone_number: number.as_str().to_owned(),
        created_at_ms: now.as_millisecond(),
        expires_at_ms: (now + CODE_LIFETIME).as_millisecond(),
        resend_after_ms: (now + RESEND_COOLDOWN).as_millisecond(),
        attempts: 0,
        consumed: false,
        log_id: log_id.clone(),
        provider_message_id: None,
    };
    match state
        .codes
        .put_code(&record, now)
        .await
        .map_err(|e| internal("storing the code failed", &e))?
    {
        PutCode::Stored => {}
        PutCode::Cooldown { resend_after_ms } => {
            budget.release(state).await;
            return Err(resend_too_soon(now, resend_after_ms));
        }
    }

    let token = match state
        .log
        .claim(
            &NewLogRecord {
                id: &log_id,
                user_id: Some(user_id),
                kind: MessageKind::PhoneVerification,
                related: None,
            },
            now,
            state.config.claim_lease,
        )
        .await
        .map_err(|e| internal("claiming the log record failed", &e))?
    {
        Claim::Claimed { token, .. } => token,
        other => {
            return Err(internal(
                "a fresh log id was already taken",
                &format!("{:?}", std::mem::discriminant(&other)),
            ));
        }
    };

    // The one send protocol: attempt recorded, sent, outcome recorded. No redelivery: a
    // refused code ends `rejected` and the user asks for another.
    let sent = Outbound {
        log: &state.log,
        sms: &state.sender,
        clock: state.clock.as_ref(),
        lease: state.config.claim_lease,
    }
    .send(&outbound::Message {
        id: &log_id,
        token: &token,
        to: number.as_str(),
        body: &rendered.body,
        log_body: &rendered.log_body,
        segments: rendered.segments.segments,
        encoding: rendered.segments.encoding.as_str(),
        class: MessageClass::Transactional,
        message_feedback: true,
        redelivered: false,
        start_by: None,
    })
    .await
    .map_err(|e| internal("recording the code's attempt failed", &e))?;
    let accepted = || {
        country_metric("VerificationCodesSent", number.country());
        Ok(json_response(
            StatusCode::ACCEPTED,
            &StartAnswer {
                expires_in_seconds: CODE_LIFETIME.as_secs(),
                resend_after_seconds: RESEND_COOLDOWN.as_secs(),
                phone_number: number.masked(),
            },
        ))
    };
    match sent {
        Sent::Sent { message_id, .. } => {
            // The code is out; a missing log outcome (logged by the protocol) must not make
            // the user retry.
            if let Err(e) = state
                .codes
                .set_provider_message_id(user_id, &code_id, &message_id)
                .await
            {
                warn!(error = %e, "remembering the code's message id failed");
            }
            info!(to = %number.masked(), log_id = %log_id, message_id = %message_id, "verification code sent");
            accepted()
        }
        // Maybe out: asking again now would replace a code that may be arriving. The user
        // can ask for another after the resend cooldown if none comes.
        Sent::InDoubt { error } => {
            warn!(to = %number.masked(), log_id = %log_id, error_code = error.code(), "no answer for the verification code; it may arrive");
            accepted()
        }
        // (No deadline is given here, so never too late.)
        Sent::ClaimLost | Sent::TooLate { .. } => Err(internal(
            "the code's fresh log record was taken",
            &"claim lost",
        )),
        Sent::Refused { error, .. } => {
            warn!(to = %number.masked(), log_id = %log_id, error_code = error.code(), "verification code not sent");
            // Refused: nothing to pay for.
            budget.release(state).await;
            match error {
                SmsError::OptedOut => Err(ApiError::bad_request(
                    "phone_opted_out",
                    "this number has opted out of our texts; reply START to one of them and try again",
                )),
                _ => Err(ApiError::internal()),
            }
        }
    }
}

// ---- check ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    code: String,
}

#[derive(Debug, Serialize)]
struct CheckAnswer {
    phone_verified: bool,
    phone_number: String,
}

fn gone(code: &'static str, message: &'static str) -> ApiError {
    ApiError::new(StatusCode::GONE, code, message)
}

async fn check<S: SmsSender>(
    state: &State<S>,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: CheckBody = parse_json(headers, body)?;
    let candidate = rules::parse_code(&body.code).ok_or_else(|| {
        ApiError::invalid_field("invalid_code", "code", "the code must be 6 digits")
    })?;
    let user_id = caller.user_id.as_str();
    let now = state.clock.now();
    let record = state
        .codes
        .get_code(user_id)
        .await
        .map_err(|e| internal("reading the pending code failed", &e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_pending_verification",
                "no verification code was requested",
            )
        })?;
    if record.consumed {
        return Err(gone(
            "code_used",
            "this code was already used; request a new one",
        ));
    }
    if record.attempts >= MAX_ATTEMPTS {
        return Err(gone(
            "too_many_attempts",
            "too many wrong codes; request a new one",
        ));
    }
    if record.expires_at_ms <= now.as_millisecond() {
        return Err(gone(
            "code_expired",
            "this code has expired; request a new one",
        ));
    }

    let key = state.code_key.expose();
    if !rules::code_matches(key, user_id, &record.code_id, candidate, &record.code_hmac) {
        let used = state
            .codes
            .record_wrong_attempt(user_id, &record.code_id, MAX_ATTEMPTS)
            .await
            .map_err(|e| internal("counting a wrong code failed", &e))?;
        return Err(match used {
            Some(used) => {
                let remaining = MAX_ATTEMPTS.saturating_sub(used);
                info!(attempts_remaining = remaining, "wrong verification code");
                ApiError {
                    attempts_remaining: Some(remaining),
                    ..ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "incorrect_code",
                        "the code is not correct",
                    )
                }
            }
            // Used up, used or replaced meanwhile.
            None => gone(
                "too_many_attempts",
                "this code can no longer be used; request a new one",
            ),
        });
    }

    // The code is used in the same transaction that saves the phone verified: if the save
    // fails, the code stays valid for the user's next try (§5).
    let consume = state
        .codes
        .consume_guard(user_id, &record.code_id, MAX_ATTEMPTS, now)
        .map_err(|e| internal("building the code's use failed", &e))?;
    let number = record.phone_number.clone();
    let mut before = None;
    let updated = state
        .preferences
        .update_guarded(user_id, now, std::slice::from_ref(&consume), |p| {
            before = Some(p.clone());
            if p.phone_number.as_deref() != Some(number.as_str()) {
                p.phone_number = Some(number.clone());
            }
            p.phone_verified = true;
            p.phone_verified_at = Some(now);
            // Verifying again is how a number marked undeliverable (§8) comes back.
            p.phone_undeliverable_at = None;
            let event = |action| {
                let mut event =
                    ConsentEvent::new(user_id, now, action, ConsentMethod::PhoneVerification);
                event.phone_number = Some(number.clone());
                event.ip = caller.source_ip.clone();
                event.user_agent = caller.user_agent.clone();
                event
            };
            let mut events = vec![event(ConsentAction::PhoneVerified)];
            // A grant made without a number (the modal) covers the first number verified (§4).
            if p.consent.pending_at(now) {
                let bind = event(ConsentAction::Bind);
                bind.apply_to(&mut p.consent);
                events.push(bind);
            }
            Ok::<_, UpdateError>(events)
        })
        .await;
    let prefs = match updated {
        Ok(updated) => updated.prefs,
        Err(UpdateError::GuardFailed) => {
            return Err(gone(
                "code_used",
                "this code can no longer be used; request a new one",
            ));
        }
        Err(e) => return Err(e.into()),
    };

    // Tell AWS the code arrived (fraud detection); best effort. The code's record has the
    // message id when the provider answered the send (not when its answer was lost).
    if let Some(message_id) = &record.provider_message_id
        && let Err(e) = state.sender.report_received(message_id).await
    {
        warn!(
            error_code = e.code(),
            "reporting the code as received failed"
        );
    }
    let country = E164::parse(&number)
        .map(|n| n.country().to_owned())
        .unwrap_or_default();
    country_metric("VerificationCodesVerified", &country);
    info!(to = %sms_shared::phone::mask(&number), "phone verified");
    // A pending grant bound now (the modal's opt-in): its confirmation (§8).
    confirm_bound_grant(state, before.as_ref(), &prefs).await;
    Ok(json_response(
        StatusCode::OK,
        &CheckAnswer {
            phone_verified: prefs.phone_verified,
            phone_number: prefs.phone_number.unwrap_or(number),
        },
    ))
}

/// Sends the confirmation of the grant the verification bound, if it did (once per grant;
/// the answer does not depend on it).
async fn confirm_bound_grant<S: SmsSender>(
    state: &State<S>,
    before: Option<&Preferences>,
    after: &Preferences,
) {
    let outbound = Outbound {
        log: &state.log,
        sms: &state.sender,
        clock: state.clock.as_ref(),
        lease: state.config.claim_lease,
    };
    let config = &state.config;
    if let Some(metric) = opt_in::confirm_change(
        &outbound,
        &config.branding,
        &config.allowed_countries,
        before,
        after,
    )
    .await
    {
        plain_metric(metric, 1.0, "Count");
    }
}

/// The language of a code: the user's, else the browser's (`Accept-Language`), else English.
fn code_locale(prefs: Option<&Preferences>, headers: &HeaderMap) -> Locale {
    prefs
        .and_then(|p| p.locale.as_deref())
        .and_then(Locale::from_tag)
        .or_else(|| {
            headers
                .get(lambda_http::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Locale::from_accept_language)
        })
        .unwrap_or_default()
}

/// A code's reservation in the codes' monthly budget (§7).
struct CodeBudget {
    counter: String,
    micros: u64,
    keep_until: Timestamp,
}

impl CodeBudget {
    /// Reserves the estimate of a code of `segments` parts, or refuses the code (503
    /// `sms_unavailable`, `Retry-After` until the month's end) when the budget has no room.
    async fn reserve<S: SmsSender>(
        state: &State<S>,
        segments: u32,
        now: Timestamp,
    ) -> Result<CodeBudget, ApiError> {
        let budget = CodeBudget {
            counter: counter_ids::month_code_spend(now),
            micros: code_estimate_micros(segments),
            keep_until: now + SPEND_COUNTER_KEEP,
        };
        let cap = state.config.limits.verification_monthly_budget_micros;
        match state
            .log_counters
            .increment_within(&budget.counter, budget.micros, cap, budget.keep_until)
            .await
            .map_err(|e| internal("reserving the code's budget failed", &e))?
        {
            Bounded::Counted(spent) => {
                plain_metric("VerificationSpendUsd", spent as f64 / 1e6, "None");
                Ok(budget)
            }
            Bounded::CapReached => {
                warn!(
                    budget_usd = cap as f64 / 1e6,
                    "the verification budget of the month is spent; code refused"
                );
                plain_metric("VerificationBudgetRefused", 1.0, "Count");
                Err(ApiError {
                    retry_after: Some(rules::retry_after_secs(now, rules::month_end(now))),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "sms_unavailable",
                        "text messages cannot be sent right now; try again later",
                    )
                })
            }
        }
    }

    /// Gives the reservation back (the code was not sent). Best effort.
    async fn release<S: SmsSender>(&self, state: &State<S>) {
        let by = -i64::try_from(self.micros).unwrap_or(i64::MAX);
        if let Err(e) = state
            .log_counters
            .add(&self.counter, by, self.keep_until)
            .await
        {
            warn!(error = %e, "giving back a code's budget reservation failed");
        }
    }
}

/// One EMF line of `verify-api` without dimensions but `Function`.
fn plain_metric(name: &str, value: f64, unit: &str) {
    let doc = json!({
        "_aws": {
            "Timestamp": Timestamp::now().as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": sms_shared::metrics::NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        },
        "Function": "verify-api",
        name: value,
    });
    sms_shared::metrics::write_documents(&[doc]);
}

/// One EMF line with a `Country` dimension: codes sent and verified per country give the
/// verification ratio (§5), an SMS-pumping signal.
fn country_metric(name: &str, country: &str) {
    let doc = json!({
        "_aws": {
            "Timestamp": Timestamp::now().as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": sms_shared::metrics::NAMESPACE,
                "Dimensions": [["Function", "Country"]],
                "Metrics": [{"Name": name, "Unit": "Count"}],
            }],
        },
        "Function": "verify-api",
        "Country": country,
        name: 1,
    });
    sms_shared::metrics::write_documents(&[doc]);
}
