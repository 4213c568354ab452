//! The HTTP side both APIs share (DESIGN §5): who the caller is, strict JSON bodies, and the
//! `{"error", "code"}` error shape.
//!
//! Works on the `http` crate's types and the API Gateway request context of
//! `aws_lambda_events` (payload v2), so `shared` does not depend on `lambda_http`: each
//! function hands its request's parts in and maps the `http::Response<String>` back into
//! a `lambda_http` response.

use crate::preferences::{ConsentEvent, Preferences};
use crate::store::{PreferencesStore, SaveOutcome};
use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Method, Response, StatusCode};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Development only (`DEV_AUTH_HEADER=true`): the header that names the user when no JWT
/// authorizer ran, as under `cargo lambda watch`.
pub const DEV_USER_HEADER: &str = "x-dev-user-id";
/// Longest user id accepted from a claim or the dev header.
const MAX_USER_ID_CHARS: usize = 128;
/// Longest user agent kept in the consent record.
const MAX_USER_AGENT_CHARS: usize = 512;

/// An answer other than success: status, machine code, human text, and the extras some
/// statuses carry. Client mistakes and faults alike end as one of these; handlers never
/// return `Err` for input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 (and 503).
    pub retry_after: Option<u64>,
    /// For 422 (wrong code).
    pub attempts_remaining: Option<u32>,
    /// For 405: the methods the path allows.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            attempts_remaining: None,
            allow: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication required",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this resource",
            )
        }
    }

    pub fn too_many_requests(
        code: &'static str,
        message: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    /// A fault of ours. The cause is logged where it happened; the response says nothing
    /// about it, only the request id to quote.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; quote the request id when reporting it",
        )
    }

    /// The JSON response: `{"error", "code"}` plus `attemptsRemaining` on 422 and
    /// `requestId` on 5xx; `Retry-After` and `Allow` headers where they apply.
    pub fn to_response(&self, request_id: &str) -> Response<String> {
        let mut body = json!({"error": self.message, "code": self.code});
        if let Some(remaining) = self.attempts_remaining {
            body["attemptsRemaining"] = json!(remaining);
        }
        if let Some(secs) = self.retry_after {
            body["retryAfterSeconds"] = json!(secs);
        }
        if self.status.is_server_error() {
            body["requestId"] = json!(request_id);
        }
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// A JSON response that no cache keeps (these are a user's own data).
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<String> {
    // Serializing our own response structs cannot fail; an empty object is the safe fallback.
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(text);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Who is calling, and from where (the consent record keeps the IP and user agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The caller: the JWT `sub` claim of the HTTP API authorizer, or, only when
/// `dev_auth_header` is enabled and no claim is present, the [`DEV_USER_HEADER`] header.
/// Anything else is 401.
pub fn caller(
    context: Option<&ApiGatewayV2httpRequestContext>,
    headers: &HeaderMap,
    dev_auth_header: bool,
) -> Result<Caller, ApiError> {
    let claim = context
        .and_then(|c| c.authorizer.as_ref())
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .map(String::as_str);
    let user_id = match claim {
        Some(sub) => sub,
        None if dev_auth_header => headers
            .get(DEV_USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?,
        None => return Err(ApiError::unauthorized()),
    };
    let user_id = user_id.trim();
    if user_id.is_empty()
        || user_id.chars().count() > MAX_USER_ID_CHARS
        || user_id.chars().any(char::is_control)
    {
        return Err(ApiError::unauthorized());
    }
    let http = context.map(|c| &c.http);
    let user_agent = http
        .and_then(|h| h.user_agent.as_deref())
        .or_else(|| {
            headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
        })
        .map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT_CHARS)
                .collect()
        })
        .filter(|ua: &String| !ua.is_empty());
    Ok(Caller {
        user_id: user_id.to_owned(),
        source_ip: http
            .and_then(|h| h.source_ip.clone())
            .filter(|ip| !ip.is_empty()),
        user_agent,
    })
}

/// The answer to one request, logged once with its status: the route's response, or its
/// refusal in the §5 error shape (a fault carries the request id, never its cause).
pub fn answer(
    method: &Method,
    path: &str,
    request_id: &str,
    result: Result<Response<String>, ApiError>,
) -> Response<String> {
    match result {
        Ok(response) => {
            tracing::info!(%method, path, status = response.status().as_u16(), "request");
            response
        }
        Err(error) => {
            tracing::info!(%method, path, status = error.status.as_u16(), code = error.code, "request refused");
            error.to_response(request_id)
        }
    }
}

/// API Gateway's request id, if the request came through it.
pub fn request_id(context: Option<&ApiGatewayV2httpRequestContext>) -> Option<String> {
    context.and_then(|c| c.request_id.clone())
}

/// The path without trailing slashes, so `/x/` and `/x` route alike (the Django frontend
/// uses the trailing slash). A leading `/lambda-url/<function>` (the URL shape of
/// `cargo lambda watch`) is dropped should the emulator pass it through; API Gateway never
/// routes such a path to these functions.
pub fn route_path(path: &str) -> &str {
    let path = match path.strip_prefix("/lambda-url/") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// Refuses a method the route does not serve.
pub fn allow(method: &Method, allowed: &[Method], header: &'static str) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(header))
    }
}

/// Parses a JSON object body into `T` strictly: at most [`MAX_BODY_BYTES`] (413), a JSON
/// content type when one is given (415), an object (not an array or a scalar), no trailing
/// data, and whatever `T` demands (unknown fields, types, duplicates): all 400 with a code.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    if let Some(content_type) = headers.get(CONTENT_TYPE)
        && !is_json_content_type(content_type)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be application/json",
        ));
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body is empty",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "request body must be a JSON object",
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| json_error(&e))
}

fn is_json_content_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
            && essence
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/")))
}

/// Maps a serde error to a code and a message without the position noise.
fn json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => &full,
    };
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            return ApiError::bad_request("invalid_json", "request body is not valid JSON");
        }
        Category::Data if message.starts_with("unknown field") => "unknown_field",
        Category::Data if message.starts_with("missing field") => "missing_field",
        Category::Data if message.starts_with("duplicate field") => "duplicate_field",
        Category::Data => "invalid_field",
    };
    let message: String = message.chars().take(300).collect();
    ApiError::bad_request(code, message)
}

/// `Option<Option<T>>` for PATCH fields: absent is `None`, `null` is `Some(None)`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// For PATCH fields that may be absent but not `null`: absent is `None`, `null` is an error.
/// Use with `#[serde(default, deserialize_with = "non_null")]`.
pub fn non_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// How often a preferences update is tried when other writers keep winning.
pub const SAVE_ATTEMPTS: usize = 3;

/// Read-modify-write of a user's preferences without lost updates: reads the current item,
/// lets `apply` change it (and name the consent events to append), and saves conditionally
/// on the version read, again from a fresh read when someone else saved first. `apply`
/// refusing the change (an `Err`) leaves everything as it was. Nothing is written when
/// `apply` changed nothing. Store faults are logged here and answered 500; a conflict that
/// persists for [`SAVE_ATTEMPTS`] tries is 409.
pub async fn update_preferences<F>(
    store: &PreferencesStore,
    user_id: &str,
    now: Timestamp,
    mut apply: F,
) -> Result<Preferences, ApiError>
where
    F: FnMut(&mut Preferences) -> Result<Vec<ConsentEvent>, ApiError>,
{
    for _ in 0..SAVE_ATTEMPTS {
        let current = load_preferences(store, user_id).await?;
        let mut next = current.clone();
        let events = apply(&mut next)?;
        if events.is_empty() && next == current {
            return Ok(current);
        }
        match store.save(&mut next, &events, now).await {
            Ok(SaveOutcome::Saved) => return Ok(next),
            Ok(SaveOutcome::Conflict) => continue,
            Err(e) => {
                tracing::error!(error = %e, "saving preferences failed");
                return Err(ApiError::internal());
            }
        }
    }
    tracing::warn!(
        attempts = SAVE_ATTEMPTS,
        "preferences kept changing under this update"
    );
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the preferences changed meanwhile; try again",
    ))
}

/// A user's preferences, or the defaults of a new user; store faults are logged and 500.
pub async fn load_preferences(
    store: &PreferencesStore,
    user_id: &str,
) -> Result<Preferences, ApiError> {
    match store.get(user_id).await {
        Ok(found) => Ok(found.unwrap_or_else(|| Preferences::new(user_id))),
        Err(e) => {
            tracing::error!(error = %e, "reading preferences failed");
            Err(ApiError::internal())
        }
    }
}

/// Top-level keys of a JSON object body, for checks serde cannot express (read-only fields).
/// Call after [`parse_json`] succeeded.
pub fn object_keys(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    };
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body {
        flag: Option<bool>,
        #[serde(default, deserialize_with = "nullable")]
        phone_number: Option<Option<String>>,
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h
    }

    fn parse(body: &str) -> Result<Body, ApiError> {
        parse_json(&json_headers(), body.as_bytes())
    }

    fn context(sub: Option<&str>) -> ApiGatewayV2httpRequestContext {
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        if let Some(sub) = sub {
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims.insert("sub".into(), sub.into());
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.jwt = Some(jwt);
            ctx.authorizer = Some(authorizer);
        }
        ctx.http.source_ip = Some("203.0.113.9".into());
        ctx.http.user_agent = Some("Mozilla/5.0".into());
        ctx.request_id = Some("req-1".into());
        ctx
    }

    #[test]
    fn strict_bodies() {
        assert_eq!(
            parse(r#"{"flag": true}"#).unwrap(),
            Body {
                flag: Some(true),
                phone_number: None
            }
        );
        assert_eq!(
            parse(r#"{"phoneNumber": null}"#).unwrap().phone_number,
            Some(None)
        );
        let code = |b: &str| parse(b).unwrap_err().code;
        assert_eq!(code(r#"{"flag": "yes"}"#), "invalid_field");
        assert_eq!(code(r#"{"other": 1}"#), "unknown_field");
        assert_eq!(code(r#"{"flag": true, "flag": false}"#), "duplicate_field");
        assert_eq!(code(r#"{"flag": tru"#), "invalid_json");
        assert_eq!(code(r#"{"flag": true} x"#), "invalid_json");
        assert_eq!(code(r#"[true]"#), "invalid_json");
        assert_eq!(code(""), "invalid_json");
        assert_eq!(code("null"), "invalid_json");
        let big = format!(r#"{{"flag": true, "x": "{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        let err = parse(&big).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
    }

    #[test]
    fn content_type_must_be_json_when_given() {
        let mut h = HeaderMap::new();
        assert!(
            parse_json::<Body>(&h, b"{}").is_ok(),
            "absent content type is accepted"
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            parse_json::<Body>(&h, b"{}").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/merge-patch+json"),
        );
        assert!(parse_json::<Body>(&h, b"{}").is_ok());
    }

    #[test]
    fn caller_comes_from_the_jwt_sub_claim() {
        let ctx = context(Some("u-42"));
        let c = caller(Some(&ctx), &HeaderMap::new(), false).unwrap();
        assert_eq!(c.user_id, "u-42");
        assert_eq!(c.source_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(c.user_agent.as_deref(), Some("Mozilla/5.0"));
        assert_eq!(request_id(Some(&ctx)).as_deref(), Some("req-1"));
    }

    #[test]
    fn no_claim_is_401_and_the_dev_header_is_off_by_default() {
        let mut h = HeaderMap::new();
        h.insert(DEV_USER_HEADER, HeaderValue::from_static("u-dev"));
        let ctx = context(None);
        assert_eq!(
            caller(Some(&ctx), &h, false).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            caller(None, &h, false).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(caller(None, &h, true).unwrap().user_id, "u-dev");
        // A real claim always wins over the header.
        let ctx = context(Some("u-real"));
        assert_eq!(caller(Some(&ctx), &h, true).unwrap().user_id, "u-real");
        // The default configuration leaves it off.
        let config = crate::Config::from_map(&Default::default()).unwrap();
        assert!(!config.dev_auth_header);
        assert!(caller(None, &h, config.dev_auth_header).is_err());
    }

    #[test]
    fn odd_user_ids_are_refused() {
        for sub in ["", "  ", "a\nb", &"x".repeat(129)] {
            let ctx = context(Some(sub));
            assert!(
                caller(Some(&ctx), &HeaderMap::new(), false).is_err(),
                "{sub:?}"
            );
        }
    }

    #[test]
    fn error_shape() {
        let r = ApiError::bad_request("invalid_phone_number", "bad number").to_response("r-1");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(
            body,
            json!({"error": "bad number", "code": "invalid_phone_number"})
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");

        let r = ApiError::internal().to_response("r-1");
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["requestId"], "r-1");
        assert_eq!(body["code"], "internal_error");

        let r = ApiError::too_many_requests("rate_limited", "slow down", 30).to_response("r");
        assert_eq!(r.headers()[RETRY_AFTER], "30");
        let r = ApiError::method_not_allowed("GET, POST").to_response("r");
        assert_eq!(r.headers()[http::header::ALLOW], "GET, POST");
    }

    #[test]
    fn trailing_slashes_do_not_matter() {
        assert_eq!(route_path("/a/b/"), "/a/b");
        assert_eq!(route_path("/a/b"), "/a/b");
        assert_eq!(route_path("/"), "/");
        assert_eq!(route_path(""), "/");
        assert_eq!(route_path("/lambda-url/opt-in-api/a/b/"), "/a/b");
        assert_eq!(route_path("/lambda-url/opt-in-api"), "/");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde::Serialize;

        /// The shape of the preferences PATCH body of opt-in-api (its struct is private there):
        /// strict, `nullable` where `null` means "clear", `non_null` elsewhere.
        #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Patch {
            #[serde(
                default,
                deserialize_with = "non_null",
                skip_serializing_if = "Option::is_none"
            )]
            allow_sms_invitations: Option<bool>,
            #[serde(
                default,
                deserialize_with = "nullable",
                skip_serializing_if = "Option::is_none"
            )]
            phone_number: Option<Option<String>>,
            #[serde(
                default,
                deserialize_with = "non_null",
                skip_serializing_if = "Option::is_none"
            )]
            sms_battle_reminders: Option<bool>,
            #[serde(
                default,
                deserialize_with = "nullable",
                skip_serializing_if = "Option::is_none"
            )]
            time_zone: Option<Option<String>>,
        }

        fn patch() -> impl Strategy<Value = Patch> {
            let nullable_text = || proptest::option::of(proptest::option::of(any::<String>()));
            (
                proptest::option::of(any::<bool>()),
                nullable_text(),
                proptest::option::of(any::<bool>()),
                nullable_text(),
            )
                .prop_map(|(a, p, r, z)| Patch {
                    allow_sms_invitations: a,
                    phone_number: p,
                    sms_battle_reminders: r,
                    time_zone: z,
                })
        }

        fn content_type() -> impl Strategy<Value = Option<HeaderValue>> {
            proptest::option::of(prop_oneof![
                Just(HeaderValue::from_static("application/json")),
                Just(HeaderValue::from_static(
                    "Application/Merge-Patch+JSON; charset=utf-8"
                )),
                proptest::collection::vec(any::<u8>(), 0..40)
                    .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok()),
            ])
        }

        proptest! {
            /// Any body and any content type: an answer, never a panic; refusals are 4xx.
            #[test]
            fn parse_json_never_panics(
                body in prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..200),
                    "\\PC{0,200}".prop_map(String::into_bytes),
                    "[ {}\\[\\]\":,0-9a-zA-Z\\\\nul]{0,120}".prop_map(String::into_bytes),
                ],
                content_type in content_type(),
            ) {
                let mut headers = HeaderMap::new();
                if let Some(value) = content_type {
                    headers.insert(CONTENT_TYPE, value);
                }
                let errors = [
                    parse_json::<Patch>(&headers, &body).err(),
                    parse_json::<Value>(&headers, &body).err(),
                ];
                for e in errors.into_iter().flatten() {
                    prop_assert!(e.status.is_client_error(), "{e:?}");
                    prop_assert!(e.message.chars().count() <= 300);
                }
                let _ = object_keys(&body);
            }

            /// Every body the client would send for a PATCH is accepted as it was meant,
            /// `null` included, and `object_keys` names exactly the fields it set.
            #[test]
            fn patch_bodies_round_trip(patch in patch(), pretty in any::<bool>()) {
                let body = if pretty {
                    serde_json::to_vec_pretty(&patch).unwrap()
                } else {
                    serde_json::to_vec(&patch).unwrap()
                };
                let parsed: Patch = parse_json(&json_headers(), &body).unwrap();
                let mut keys = object_keys(&body);
                keys.sort();
                let mut expected: Vec<String> = match serde_json::to_value(&patch).unwrap() {
                    Value::Object(map) => map.keys().cloned().collect(),
                    other => panic!("{other}"),
                };
                expected.sort();
                prop_assert_eq!(parsed, patch);
                prop_assert_eq!(keys, expected);
            }

            /// `null` where the field may not be cleared, an unknown field and trailing data
            /// are each refused with their own code.
            #[test]
            fn strict_rules_hold_for_any_patch(patch in patch(), extra in "[a-z]{1,12}") {
                let mut value = serde_json::to_value(&patch).unwrap();
                value["smsBattleReminders"] = Value::Null;
                let err = parse_json::<Patch>(&json_headers(), value.to_string().as_bytes());
                prop_assert_eq!(err.unwrap_err().code, "invalid_field");

                let mut value = serde_json::to_value(&patch).unwrap();
                value[format!("x{extra}")] = json!(1);
                let err = parse_json::<Patch>(&json_headers(), value.to_string().as_bytes());
                prop_assert_eq!(err.unwrap_err().code, "unknown_field");

                let body = format!("{} {extra}", serde_json::to_string(&patch).unwrap());
                let err = parse_json::<Patch>(&json_headers(), body.as_bytes());
                prop_assert_eq!(err.unwrap_err().code, "invalid_json");
            }

            /// Any claim, header and user agent: never a panic, and an accepted caller is a
            /// clean, bounded id.
            #[test]
            fn caller_never_panics(
                sub in proptest::option::of(any::<String>()),
                header in proptest::collection::vec(any::<u8>(), 0..200),
                user_agent in proptest::option::of(any::<String>()),
                dev in any::<bool>(),
            ) {
                let mut ctx = context(sub.as_deref());
                ctx.http.user_agent = user_agent;
                let mut headers = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_bytes(&header) {
                    headers.insert(DEV_USER_HEADER, value);
                }
                for ctx in [Some(&ctx), None] {
                    if let Ok(c) = caller(ctx, &headers, dev) {
                        prop_assert!(!c.user_id.is_empty());
                        prop_assert!(c.user_id.chars().count() <= MAX_USER_ID_CHARS);
                        prop_assert!(!c.user_id.chars().any(char::is_control));
                        prop_assert_eq!(c.user_id.trim(), c.user_id.as_str());
                        if let Some(ua) = &c.user_agent {
                            prop_assert!(ua.chars().count() <= MAX_USER_AGENT_CHARS);
                            prop_assert!(!ua.chars().any(char::is_control));
                        }
                    }
                }
            }

            /// Any path routes somewhere without a trailing slash (except the root).
            #[test]
            fn route_path_never_panics(path in "(/lambda-url/)?[/a-z\\-]{0,40}|\\PC{0,60}") {
                let routed = route_path(&path);
                prop_assert!(!routed.is_empty());
                prop_assert!(routed == "/" || !routed.ends_with('/'));
            }
        }
    }
}
