//! Wiring only: configuration, clients built once, the handler of `lib.rs`.

use aws_config::BehaviorVersion;
use lambda_http::{Error, run, service_fn};
use opt_in_api::{State, handler};
use sms_shared::{Config, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let state = State::new(
        config,
        aws_sdk_dynamodb::Client::new(&sdk),
        Arc::new(SystemClock),
    );
    let state = &state;
    run(service_fn(move |request| handler(state, request))).await
}
