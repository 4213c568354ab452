//! The lambda-facing half of the HTTP side both APIs share (DESIGN §5). The rules (strict
//! JSON bodies, routes under `API_BASE_PATH`, the `{"error", "code", "details"}` shape) are
//! [`sms_core::http`], re-exported here so `sms_shared::http::…` keeps naming them; this
//! module adds what needs the API Gateway event types or the store's errors. Who the
//! caller is lives in [`crate::auth`].

pub use sms_core::http::*;

use crate::store::UpdateError;
use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use http::StatusCode;

/// API Gateway's request id, if the request came through it.
pub fn request_id(context: Option<&ApiGatewayV2httpRequestContext>) -> Option<String> {
    context.and_then(|c| c.request_id.clone())
}

/// How an API answers a preferences update that did not happen: 409 when other writers kept
/// winning (the client may try again), 500 for a store fault (logged here).
impl From<UpdateError> for ApiError {
    fn from(err: UpdateError) -> Self {
        match err {
            UpdateError::Contended => {
                tracing::warn!(error = %err, "preferences kept changing under this update");
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the preferences changed meanwhile; try again",
                )
            }
            UpdateError::Store(_) | UpdateError::GuardFailed => {
                tracing::error!(error = %err, "saving preferences failed");
                ApiError::internal()
            }
        }
    }
}

/// The request id a fault's answer quotes: API Gateway's, else the Lambda invocation's
/// (`invocation`), else `-`. What both APIs' handlers answer with.
pub fn quoted_request_id(
    context: Option<&ApiGatewayV2httpRequestContext>,
    invocation: Option<&str>,
) -> String {
    request_id(context)
        .or_else(|| invocation.map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(feature = "fakes")]
pub mod testing {
    //! What the two APIs' handler unit tests share: a sample request of `events/` as a given
    //! caller, and the answer read back.

    use aws_lambda_events::encodings::Body;
    use serde_json::{Value, json};

    /// The payload v2 event `events/<name>.json` (cookies removed) as `user` (the authorizer's
    /// claim `sub`; `None`: no identity), changed by `edit`: the JSON text
    /// `lambda_http::request::from_str` takes.
    pub fn event(name: &str, user: Option<&str>, edit: impl FnOnce(&mut Value)) -> String {
        let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut e: Value = serde_json::from_str(&text).expect("a sample event is JSON");
        if let Some(fields) = e.as_object_mut() {
            fields.remove("cookies");
        }
        if let Some(user) = user {
            e["requestContext"]["authorizer"] =
                json!({"jwt": {"claims": {"sub": user}, "scopes": []}});
        }
        edit(&mut e);
        e.to_string()
    }

    /// A handler's answer: its status, its JSON body (`Null` when it has none), its headers.
    #[derive(Debug)]
    pub struct Reply {
        pub status: u16,
        pub body: Value,
        pub headers: http::HeaderMap,
    }

    impl Reply {
        pub fn of(response: &http::Response<Body>) -> Self {
            let body = match response.body() {
                Body::Text(t) => serde_json::from_str(t).expect("a JSON body"),
                _ => Value::Null,
            };
            Reply {
                status: response.status().as_u16(),
                body,
                headers: response.headers().clone(),
            }
        }

        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        /// The error shape of §5 with this status and code.
        pub fn assert_error(&self, status: u16, code: &str) {
            assert_eq!(self.status, status, "{}", self.body);
            assert_eq!(self.body["code"], code, "{}", self.body);
            assert!(self.body["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
}
