//! Wiring only: configuration, clients (once per cold start), the runtime loop.

use aws_lambda_events::event::sns::SnsEvent;
use inbound_sms::{InboundError, InboundSms, answer};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sms_shared::sms::AnySender;
use sms_shared::store::DynamoClient;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // The phone number metadata (~7 ms of CPU) loads on an idle-priority thread started by
    // the first event, during its first round trips: a thread beside init delays the first
    // `/next` (docs/bench.md, "Cold start").
    let warm_up = std::sync::Once::new();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let sms = AnySender::from_config(&config, &sdk);
    let handler = InboundSms::new(&config, DynamoClient::new(&sdk), sms, Arc::new(SystemClock));
    // The answer says what each record did (Lambda discards it for SNS; `cargo lambda invoke`
    // shows it).
    run(service_fn(|event: LambdaEvent<SnsEvent>| async {
        warm_up.call_once(sms_shared::phone::warm_up_in_background);
        let labels = answer::labels(&event.payload);
        let outcomes = handler.handle(event.payload).await?;
        Ok::<_, InboundError>(answer::answer(&labels, &outcomes))
    }))
    .await
}
