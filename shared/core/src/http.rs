//! The HTTP rules both APIs share (DESIGN §5): routes under `API_BASE_PATH`, strict
//! snake_case JSON bodies, and the `{"error", "code", "details"}` error shape.
//!
//! Works on the `http` crate's types only, so the rules need neither `lambda_http` nor the
//! API Gateway event types: each function hands its request's parts in and maps the
//! `http::Response<String>` back into a `lambda_http` response. The parts that read the
//! API Gateway context or the preferences table live in `sms_shared::http`.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use http::{Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Map;
use serde_json::{Value, json};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

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
    /// For 400: field (its wire name) → what is wrong with it, as the app's forms show it.
    pub details: Option<Map<String, Value>>,
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
            details: None,
        }
    }

    /// A 400 about one field, named in `details` as the client sent it.
    pub fn invalid_field(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            details: Some(Map::from_iter([(
                field.to_owned(),
                json!([message.clone()]),
            )])),
            ..Self::bad_request(code, message)
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

    /// The JSON response: `{"error", "code"}` plus `details` on a field error,
    /// `attempts_remaining` on 422, `retry_after_seconds` on 429 and `request_id` on 5xx;
    /// `Retry-After` and `Allow` headers where they apply.
    pub fn to_response(&self, request_id: &str) -> Response<String> {
        let mut body = json!({"error": self.message, "code": self.code});
        if let Some(details) = &self.details {
            body["details"] = Value::Object(details.clone());
        }
        if let Some(remaining) = self.attempts_remaining {
            body["attempts_remaining"] = json!(remaining);
        }
        if let Some(secs) = self.retry_after {
            body["retry_after_seconds"] = json!(secs);
        }
        if self.status.is_server_error() {
            body["request_id"] = json!(request_id);
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

/// The route of `path` below `base` (`API_BASE_PATH`), without trailing slashes, so
/// `/api/v1/x/` and `/api/v1/x` route alike (the app's client sends the trailing slash);
/// `None` when the path is not below `base` (404).
pub fn route_path<'p>(path: &'p str, base: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(base)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let trimmed = rest.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed })
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
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| json_error(e.inner(), &e.path().to_string()))?;
    deserializer
        .end()
        .map_err(|_| ApiError::bad_request("invalid_json", "request body is not valid JSON"))?;
    Ok(value)
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

/// Maps a serde error at `path` (`.`, or the field's wire name) to a code, a message without
/// the position noise, and `details` naming the field.
fn json_error(e: &serde_json::Error, path: &str) -> ApiError {
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
    // Unknown and missing fields are named in the message (`unknown field `x``); other
    // errors sit at the path of the field.
    let field = match code {
        "unknown_field" | "missing_field" | "duplicate_field" => {
            message.split('`').nth(1).unwrap_or(path).to_owned()
        }
        _ => path.trim_start_matches('.').to_owned(),
    };
    if field.is_empty() || field == "." {
        return ApiError::bad_request(code, message);
    }
    let what = match code {
        "unknown_field" => "unknown field".to_owned(),
        "missing_field" => "this field is required".to_owned(),
        "duplicate_field" => "given more than once".to_owned(),
        _ => message
            .split(", expected")
            .next()
            .unwrap_or(&message)
            .to_owned(),
    };
    ApiError {
        details: Some(Map::from_iter([(field, json!([what]))])),
        ..ApiError::bad_request(code, message)
    }
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
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
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
            parse(r#"{"phone_number": null}"#).unwrap().phone_number,
            Some(None)
        );
        let code = |b: &str| parse(b).unwrap_err().code;
        assert_eq!(code(r#"{"flag": "yes"}"#), "invalid_field");
        let details = |b: &str| parse(b).unwrap_err().details.map(Value::Object);
        assert_eq!(
            details(r#"{"flag": "yes"}"#),
            Some(json!({"flag": ["invalid type: string \"yes\""]}))
        );
        assert_eq!(
            details(r#"{"other": 1}"#),
            Some(json!({"other": ["unknown field"]}))
        );
        assert_eq!(
            details(r#"{"flag": tru"#),
            None,
            "syntax errors name no field"
        );
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
    fn error_shape() {
        let r = ApiError::bad_request("invalid_phone_number", "bad number").to_response("r-1");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(
            body,
            json!({"error": "bad number", "code": "invalid_phone_number"})
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");

        let r = ApiError::invalid_field("invalid_time_zone", "time_zone", "not a zone")
            .to_response("r-1");
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["details"], json!({"time_zone": ["not a zone"]}));

        let r = ApiError {
            attempts_remaining: Some(3),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "incorrect_code", "no")
        }
        .to_response("r-1");
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["attempts_remaining"], 3);

        let r = ApiError::internal().to_response("r-1");
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["request_id"], "r-1");
        assert_eq!(body["code"], "internal_error");

        let r = ApiError::too_many_requests("rate_limited", "slow down", 30).to_response("r");
        assert_eq!(r.headers()[RETRY_AFTER], "30");
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(body["retry_after_seconds"], 30);
        let r = ApiError::method_not_allowed("GET, POST").to_response("r");
        assert_eq!(r.headers()[http::header::ALLOW], "GET, POST");
    }

    #[test]
    fn routes_live_below_the_base_path_and_trailing_slashes_do_not_matter() {
        let base = "/api/v1";
        assert_eq!(route_path("/api/v1/a/b/", base), Some("/a/b"));
        assert_eq!(route_path("/api/v1/a/b", base), Some("/a/b"));
        assert_eq!(route_path("/api/v1", base), Some("/"));
        assert_eq!(route_path("/api/v1/", base), Some("/"));
        assert_eq!(route_path("/a/b", base), None);
        assert_eq!(route_path("/api/v10/a", base), None);
        assert_eq!(route_path("/a/b/", ""), Some("/a/b"));
        assert_eq!(route_path("", ""), Some("/"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde::Serialize;

        /// The shape of the preferences PATCH body of opt-in-api (its struct is private there):
        /// strict, `nullable` where `null` means "clear", `non_null` elsewhere.
        #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, rename_all = "snake_case")]
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
                value["sms_battle_reminders"] = Value::Null;
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

            /// Any path routes somewhere without a trailing slash (except the root).
            #[test]
            fn route_path_never_panics(path in "(/api/v1)?[/a-z\\-]{0,40}|\\PC{0,60}") {
                if let Some(routed) = route_path(&path, "/api/v1") {
                    prop_assert!(!routed.is_empty());
                    prop_assert!(routed == "/" || !routed.ends_with('/'));
                }
            }
        }
    }
}
