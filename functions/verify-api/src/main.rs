//! Wiring only: configuration, clients built once, the handler of `lib.rs`.

use lambda_http::{Error, run, service_fn};
use sms_shared::sms::AnySender;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;
use verify_api::{State, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // The phone number metadata takes ~7 ms to load: start it now, alongside the runtime.
    sms_shared::phone::warm_up_in_background();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let sender = AnySender::from_config(&config, &sdk);
    let state = State::new(
        config,
        aws_sdk_dynamodb::Client::new(&sdk),
        sender,
        Arc::new(SystemClock),
    );
    let state = &state;
    run(service_fn(move |request| handler(state, request))).await
}
