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
