//! Wiring only: configuration, clients (once per cold start), the runtime loop.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sender::Sender;
use sms_shared::sms::AnySender;
use sms_shared::store::DynamoClient;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;
use std::time::SystemTime;

// One thread: a batch is one task that waits on the network almost all the time, and Lambda
// gives the function a seventh of a vCPU (256 MB). A multi-thread runtime only added wake-ups
// across threads: 13–19 % more CPU per message (docs/bench.md, "CPU per message").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // The phone number metadata (~7 ms of CPU) loads on an idle-priority thread started by
    // the first event, during its first round trips: a thread beside init delays the first
    // `/next` (docs/bench.md, "Cold start").
    let warm_up = std::sync::Once::new();
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
        warm_up.call_once(sms_shared::phone::warm_up_in_background);
        // The invocation's deadline, on the monotonic clock the pacer waits on. Lambda never
        // starts an invocation past its deadline, so one already past is not Lambda's:
        // `cargo lambda watch` sends a fixed `Lambda-Runtime-Deadline-Ms: 600000` (1970),
        // which would hand every record back unsent. No deadline then.
        let deadline = event
            .context
            .deadline()
            .duration_since(SystemTime::now())
            .ok()
            .map(|left| tokio::time::Instant::now() + left);
        sender.handle_until(event.payload, deadline)
    }))
    .await
}
