//! Wiring only: configuration, clients (once per cold start), the runtime loop.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sender::Sender;
use sms_shared::sms::AnySender;
use sms_shared::store::DynamoClient;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // The phone number metadata takes ~7 ms to load: start it now, alongside the runtime.
    sms_shared::phone::warm_up_in_background();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let sms = AnySender::from_config(&config, &sdk);
    let sender = Sender::new(
        &config,
        DynamoClient::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        sms,
        Arc::new(SystemClock),
    );
    run(service_fn(|event: LambdaEvent<_>| {
        sender.handle(event.payload)
    }))
    .await
}
