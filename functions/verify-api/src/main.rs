//! Wiring only: configuration, the clients built once, and both keys, read by the first
//! request; the handler of `lib.rs`.

use lambda_http::request::RequestContext;
use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use sms_shared::auth::Authenticator;
use sms_shared::http as api;
use sms_shared::secrets::{self, OnFirstRequest, SecretError};
use sms_shared::sms::AnySender;
use sms_shared::{Clock, Config, SystemClock};
use std::sync::{Arc, Once};
use verify_api::{State, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk);
    let sender = AnySender::from_config(&config, &sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Both keys in parallel (one round trip), read by the first request, not before the first
    // `/next` (sms_shared::secrets).
    let state = OnFirstRequest::new(move || {
        let (config, secrets_client) = (config.clone(), secrets_client.clone());
        let (dynamodb, sender, clock) = (dynamodb.clone(), sender.clone(), clock.clone());
        async move {
            let (auth, code_key) = tokio::try_join!(
                Authenticator::load(&config.auth, &secrets_client),
                secrets::read_key(
                    &secrets_client,
                    "CODE_HMAC_KEY_SECRET_ID",
                    config.code_hmac_key_secret_id.as_deref(),
                ),
            )?;
            Ok(State::new(config, auth, code_key, dynamodb, sender, clock))
        }
    });
    // The phone number metadata (~7 ms of CPU) loads on an idle-priority thread started by
    // the first request, during the keys' round trip (docs/bench.md, "Cold start").
    let warm_up = Once::new();
    let (state, warm_up) = (&state, &warm_up);
    run(service_fn(move |request: Request| async move {
        warm_up.call_once(sms_shared::phone::warm_up_in_background);
        match state.get().await {
            Ok(state) => handler(state, request).await,
            Err(error) => Ok(refused(&request, &error)),
        }
    }))
    .await
}

/// The 500 of a request that came before good keys, quoting the id `lib.rs` would.
fn refused(request: &Request, error: &SecretError) -> Response<Body> {
    let context = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(context),
        _ => None,
    };
    let invocation = request.lambda_context_ref().map(|c| c.request_id.as_str());
    let request_id = api::quoted_request_id(context, invocation);
    secrets::refuse(
        request.method(),
        request.raw_http_path(),
        &request_id,
        error,
    )
    .map(Body::from)
}
