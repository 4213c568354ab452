//! The baseline of the cold-start benchmark: the `cargo lambda new` hello world, nothing else
//! (the runtime's tracing subscriber, `run(service_fn(..))`, an echo handler).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
