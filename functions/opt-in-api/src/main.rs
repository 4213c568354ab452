//! Wiring only: configuration, the app's JWT key and the clients (DynamoDB, the SMS sender of
//! the opt-in confirmations), built once; the handler of `lib.rs`.

use lambda_http::{Error, run, service_fn};
use opt_in_api::{State, handler};
use sms_shared::auth::Authenticator;
use sms_shared::sms::AnySender;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // The phone number metadata takes ~7 ms to load: start it now, alongside the runtime.
    sms_shared::phone::warm_up_in_background();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let auth = Authenticator::load(&config.auth, &secrets).await?;
    // Opt-in confirmations (DESIGN §8), from the configured origination identity.
    let sender = AnySender::from_config(&config, &sdk);
    let state = State::new(
        config,
        auth,
        aws_sdk_dynamodb::Client::new(&sdk),
        sender,
        Arc::new(SystemClock),
    );
    let state = &state;
    run(service_fn(move |request| handler(state, request))).await
}
