//! Wiring only: configuration, clients (once per cold start), the runtime loop.

use aws_lambda_events::event::sns::SnsEvent;
use delivery_status::{DeliveryStatus, DeliveryStatusError, answer};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sms_shared::store::DynamoClient;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    let handler = DeliveryStatus::new(&config, DynamoClient::new(&sdk), Arc::new(SystemClock));
    // The answer says what each record did (Lambda discards it for SNS; `cargo lambda invoke`
    // shows it).
    run(service_fn(|event: LambdaEvent<SnsEvent>| async {
        let labels = answer::labels(&event.payload);
        let outcomes = handler.handle(event.payload).await?;
        Ok::<_, DeliveryStatusError>(answer::answer(&labels, &outcomes))
    }))
    .await
}
