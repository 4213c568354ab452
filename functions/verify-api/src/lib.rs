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
//! `counter#code-spend#<month>` with a bounded atomic increment before it is sent, and is
//! refused (503 `sms_unavailable`) when the budget has no room. Codes never count toward the
//! account's spend that the promotional cap and the transactional hard cap read, so SMS
//! pumping can exhaust this budget and nothing else.
//!
//! Rules (§5) and where they are kept:
//! * codes come from the OS CSPRNG and are stored only as an HMAC-SHA256 bound to the user and
//!   the code instance ([`sms_shared::verification`]); the SMS log keeps the body with the
//!   code redacted, and no log line carries a code or a full number;
//! * one pending code per user, valid 10 minutes, 5 wrong checks end it, used once (its use
//!   is a conditional write in the transaction that saves the phone verified: of concurrent
//!   right checks exactly one wins);
//! * resend no sooner than 30 s (the code's write is conditional on it);
//! * fixed windows per user, IP, number, number prefix and country, each an atomic bounded
//!   counter; a refusal is 429 with `Retry-After`;
//! * the code, its windows, its budget reservation and its log record are one transaction
//!   ([`ports::CodeIssue`]): a refused request counts in no window;
//! * premium-rate and shared-cost numbers get no code ([`rules::is_premium_rate`]);
//! * the country window is tighter for every country but the home market (by default US 100
//!   an hour, others 20: [`WindowLimits`]; `VERIFICATION_HOME_COUNTRY_HOURLY` and
//!   `VERIFICATION_OTHER_COUNTRY_HOURLY` size them per deployment);
//! * answers never depend on whether another user has the number.
//!
//! DynamoDB round trips (docs/http-api.md): a start reads the pending code, the preferences
//! and the spend counters in one `BatchGetItem`, writes everything in one
//! `TransactWriteItems`, and records the SMS's outcome: three. A check reads in one
//! `BatchGetItem`, then saves (the code's use, the verified phone, a bound grant's
//! confirmation record) while reading the code's message id, then records the confirmation's
//! outcome: three.

use jiff::Timestamp;
use lambda_http::http::{HeaderMap, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sms_shared::Config;
use sms_shared::auth::{Authenticator, Caller};
use sms_shared::clock::Clock;
use sms_shared::consent::{self, Decision, SendCheck, SuppressReason, Usage};
use sms_shared::http::{self as api, ApiError, json_response, parse_json};
use sms_shared::kinds::{MessageClass, MessageKind};
use sms_shared::locale::Locale;
use sms_shared::metrics::MetricSet;
use sms_shared::opt_in::{self, ConfirmationSend, Confirming, ConsentStore};
use sms_shared::outbound::{self, Sent};
use sms_shared::phone::E164;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::secrets::SecretKey;
use sms_shared::sms::{SmsError, SmsSender};
use sms_shared::store::log::counter_ids;
use sms_shared::store::receipts::SPEND_COUNTER_KEEP;
use sms_shared::store::schema::LOG_KEY;
use sms_shared::store::verification::Reservation;
use sms_shared::store::{
    Attempt, CodeRecord, Counters, LogStore, PreferencesStore, UpdateError, VerificationStore,
};
use sms_shared::template;
use sms_shared::verification::{
    self as rules, CODE_LIFETIME, MAX_ATTEMPTS, RESEND_COOLDOWN, WindowLimits, code_estimate_micros,
};
use std::sync::Arc;
use tracing::{error, info, warn};

pub mod ports;
pub mod stores;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

use ports::{
    CodeIssue, CodeSend, FirstReads, Issuing, NewCode, PhoneVerification, Ports, WrongAttempts,
};
pub use stores::Stores;

/// Routes below `API_BASE_PATH`.
pub const START_PATH: &str = "/notifications/me/phone-verification";
pub const CHECK_PATH: &str = "/notifications/me/phone-verification/check";

/// The name metrics carry in their `Function` dimension.
const FUNCTION: &str = "verify-api";

/// Everything the handler needs, built once per cold start. `P`: the ports
/// ([`Stores`] in production).
pub struct State<P> {
    pub config: Config,
    pub auth: Authenticator,
    /// Keys the HMAC of stored codes (from Secrets Manager).
    pub code_key: SecretKey,
    pub ports: P,
    pub clock: Arc<dyn Clock>,
    pub windows: WindowLimits,
}

impl<S: SmsSender> State<Stores<S>> {
    /// The production wiring: every port over DynamoDB and `sender`.
    pub fn new(
        config: Config,
        auth: Authenticator,
        code_key: SecretKey,
        dynamodb: aws_sdk_dynamodb::Client,
        sender: S,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let tables = &config.tables;
        let ports = Stores {
            codes: VerificationStore::new(dynamodb.clone(), tables.verification.clone()),
            consent: ConsentStore {
                preferences: PreferencesStore::new(dynamodb.clone(), tables.preferences.clone()),
                log_table: tables.log.clone(),
                branding: config.branding.clone(),
                allowed_countries: config.allowed_countries.clone(),
                lease: config.claim_lease,
            },
            log: LogStore::new(dynamodb.clone(), tables.log.clone()),
            log_counters: Counters::new(dynamodb, tables.log.clone(), LOG_KEY),
            sender,
            clock: clock.clone(),
            lease: config.claim_lease,
        };
        // The country windows are the deployment's (`VERIFICATION_*_COUNTRY_HOURLY`).
        let windows = config.verification_windows;
        Self {
            config,
            auth,
            code_key,
            ports,
            clock,
            windows,
        }
    }
}

type HttpResponse = lambda_http::http::Response<String>;

/// The Lambda handler: routes and answers; client mistakes are 4xx responses, faults 500
/// with the request id. Never `Err`.
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
    let mut metrics = MetricSet::default();
    let result = route(state, &request, context, &mut metrics).await;
    metrics.emit(FUNCTION);
    Ok(api::answer(request.method(), path, &request_id, result).map(Body::from))
}

async fn route<P: Ports>(
    state: &State<P>,
    request: &Request,
    context: Option<&lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext>,
    metrics: &mut MetricSet,
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
        start(state, &caller, request.headers(), body, metrics).await
    } else {
        check(state, &caller, request.headers(), body, metrics).await
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

fn sms_unavailable(retry_after: u64) -> ApiError {
    ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sms_unavailable",
            "text messages cannot be sent right now; try again later",
        )
    }
}

fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "too many requests at once; try again",
    )
}

/// Starts a verification in three DynamoDB round trips: one read (pending code, preferences,
/// spend), one transaction (code, windows, budget, log record), the SMS's outcome.
async fn start<P: FirstReads + CodeIssue + CodeSend>(
    state: &State<P>,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
    metrics: &mut MetricSet,
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

    // Round trip 1: the pending code (a cheap early answer inside the cooldown, which the
    // code's write checks again atomically), the preferences (the code's language) and the
    // month's account spend (the hard cap) and code spend (the budget metric).
    let spend_id = counter_ids::month_spend(now);
    let code_spend_id = counter_ids::month_code_spend(now);
    let read = state
        .ports
        .first_read(user_id, &[spend_id.clone(), code_spend_id.clone()], now)
        .await
        .map_err(|e| internal("reading the pending code, preferences and spend failed", &e))?;
    if let Some(pending) = &read.code
        && pending.resend_after_ms > now.as_millisecond()
    {
        return Err(resend_too_soon(now, pending.resend_after_ms));
    }

    // §4 for codes: the target's country and the hard spend cap (consent is not needed:
    // the user is asking for the code).
    let prefs = read.prefs.as_ref();
    let decision = consent::decide(&SendCheck {
        kind: MessageKind::PhoneVerification,
        prefs,
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
            return Err(sms_unavailable(3600));
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
    let rendered = template::render_in(
        MessageKind::PhoneVerification,
        &params,
        &state.config.branding,
        state.config.sms.max_segments,
        code_locale(prefs, headers),
    )
    .map_err(|e| internal("the verification template does not render", &e))?;

    // The codes' own budget (§7), reserved with the code, before anything is sent: a
    // pumping burst runs ahead of the receipts, so a budget checked against them could be
    // overrun.
    let budget = Reservation {
        counter: code_spend_id.clone(),
        micros: code_estimate_micros(rendered.segments.segments),
        cap: state.config.limits.verification_monthly_budget_micros,
        keep_until: now + SPEND_COUNTER_KEEP,
    };
    let windows = rules::windows(
        &state.windows,
        user_id,
        &number,
        caller.source_ip.as_deref(),
        now,
    );
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
    };
    let encoding = rendered.segments.encoding.as_str();
    let attempt = Attempt {
        phone_number: number.as_str(),
        body: &rendered.log_body,
        segments: rendered.segments.segments,
        encoding,
    };

    // Round trip 2: the code, the windows, the budget and the log record, all or nothing.
    let issued = state
        .ports
        .issue(
            &NewCode {
                record: &record,
                windows: &windows,
                budget: &budget,
                attempt,
            },
            now,
        )
        .await
        .map_err(|e| internal("storing the code failed", &e))?;
    let token = match issued {
        Issuing::Issued { token } => token,
        Issuing::Cooldown { resend_after_ms } => return Err(resend_too_soon(now, resend_after_ms)),
        Issuing::WindowFull { index } => {
            let window = &windows[index];
            warn!(window = window.kind.as_str(), to = %number.masked(), "verification window full");
            return Err(ApiError::too_many_requests(
                "rate_limited",
                "too many verification codes requested; try again later",
                window.retry_after_secs(now),
            ));
        }
        Issuing::BudgetSpent => {
            let cap = state.config.limits.verification_monthly_budget_micros;
            warn!(
                budget_usd = cap as f64 / 1e6,
                "the verification budget of the month is spent; code refused"
            );
            metrics.count("VerificationBudgetRefused");
            return Err(sms_unavailable(rules::retry_after_secs(
                now,
                rules::month_end(now),
            )));
        }
        Issuing::Contended => {
            warn!("the verification counters stayed busy; code refused");
            return Err(conflict());
        }
    };
    let spent = read.counters.get(&code_spend_id).copied().unwrap_or(0) + budget.micros;
    metrics.gauge("VerificationSpendUsd", spent as f64 / 1e6, "None");

    // The one send protocol from the recorded attempt on; round trip 3 is the outcome. No
    // redelivery: a refused code ends `rejected` and the user asks for another.
    let sent = state
        .ports
        .send_code(
            &outbound::Message {
                id: &log_id,
                token: &token,
                to: number.as_str(),
                body: &rendered.body,
                log_body: &rendered.log_body,
                segments: rendered.segments.segments,
                encoding,
                class: MessageClass::Transactional,
                message_feedback: true,
                redelivered: false,
                start_by: None,
            },
            &budget,
        )
        .await
        .map_err(|e| internal("recording the code's attempt failed", &e))?;
    let mut accepted = || {
        metrics.count_by("VerificationCodesSent", "Country", number.country());
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
        // The code is out; a missing log outcome (logged by the protocol) must not make the
        // user retry.
        Sent::Sent { message_id, .. } => {
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
            // Refused: its budget reservation was given back.
            warn!(to = %number.masked(), log_id = %log_id, error_code = error.code(), "verification code not sent");
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

/// Checks a code in at most three DynamoDB round trips: one read (code, preferences), the
/// wrong attempt or the save (while the code's message id is read), the confirmation's
/// outcome.
async fn check<P: FirstReads + CodeSend + WrongAttempts + PhoneVerification + ConfirmationSend>(
    state: &State<P>,
    caller: &Caller,
    headers: &HeaderMap,
    body: &[u8],
    metrics: &mut MetricSet,
) -> Result<HttpResponse, ApiError> {
    let body: CheckBody = parse_json(headers, body)?;
    let candidate = rules::parse_code(&body.code).ok_or_else(|| {
        ApiError::invalid_field("invalid_code", "code", "the code must be 6 digits")
    })?;
    let user_id = caller.user_id.as_str();
    let now = state.clock.now();
    let read = state
        .ports
        .first_read(user_id, &[], now)
        .await
        .map_err(|e| internal("reading the pending code and preferences failed", &e))?;
    let record = read.code.ok_or_else(|| {
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
            .ports
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

    // The code is used in the same write that saves the phone verified: if the save fails,
    // the code stays valid for the user's next try (§5). The code's message id (for the
    // feedback) is read meanwhile.
    let number = record.phone_number.clone();
    let read_prefs = Some(
        read.prefs
            .unwrap_or_else(|| Preferences::new(user_id.to_owned())),
    );
    let verify = state.ports.verify(
        user_id,
        &record.code_id,
        MAX_ATTEMPTS,
        now,
        read_prefs,
        |p: &mut Preferences| {
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
        },
    );
    let message_id = state.ports.message_id(&record.log_id);
    let (verified, message_id) = tokio::join!(verify, message_id);
    let change = match verified {
        Ok(change) => change,
        Err(UpdateError::GuardFailed) => {
            return Err(gone(
                "code_used",
                "this code can no longer be used; request a new one",
            ));
        }
        Err(e) => return Err(e.into()),
    };

    // Tell AWS the code arrived (fraud detection); best effort. The log has the message id
    // when the provider answered the send (not when its answer was lost).
    match message_id {
        Ok(Some(message_id)) => {
            if let Err(e) = state.ports.report_received(&message_id).await {
                warn!(
                    error_code = e.code(),
                    "reporting the code as received failed"
                );
            }
        }
        Ok(None) => {}
        Err(e) => warn!(error = %e, "reading the code's message id failed; no feedback"),
    }
    let country = E164::parse(&number)
        .map(|n| n.country().to_owned())
        .unwrap_or_default();
    metrics.count_by("VerificationCodesVerified", "Country", &country);
    info!(to = %sms_shared::phone::mask(&number), "phone verified");
    // A pending grant bound now (the modal's opt-in): its confirmation (§8).
    confirm(&state.ports, &change.confirmation, metrics).await;
    let prefs = change.updated.prefs;
    Ok(json_response(
        StatusCode::OK,
        &CheckAnswer {
            phone_verified: prefs.phone_verified,
            phone_number: prefs.phone_number.unwrap_or(number),
        },
    ))
}

/// Sends the confirmation a saved change claimed, if it did (the answer does not depend on
/// it), and counts it.
async fn confirm<P: ConfirmationSend>(ports: &P, confirming: &Confirming, metrics: &mut MetricSet) {
    let metric = match confirming {
        Confirming::Claimed(claimed) => ports.send_claimed(claimed).await,
        other => opt_in::unsendable_metric(other),
    };
    if let Some(metric) = metric {
        metrics.count(metric);
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
