//! Creates the local stack (tables, queues, SNS topics) on the server at `AWS_ENDPOINT_URL`
//! and prints `KEY=value` lines to source:
//!
//! ```sh
//! eval "$(AWS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -q -p integration-tests --bin local-stack)"
//! ```
//!
//! Table names come from the functions' own configuration (`LOG_TABLE`, ...); the queues are
//! `transactional`, `notifications` and their `-dlq`s. Idempotent. Uses static test
//! credentials only, so it cannot create anything in a real account.

use integration_tests::local_stack::{create_local_stack, local_endpoint};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let endpoint = match local_endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("local-stack: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match sms_shared::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("local-stack: {e}");
            return ExitCode::from(2);
        }
    };
    let sdk = integration_tests::sdk_config(&endpoint).await;
    match create_local_stack(&sdk, &config.tables, "").await {
        Ok(stack) => {
            print!("{}", stack.env_lines());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("local-stack: {e} (endpoint {endpoint})");
            ExitCode::FAILURE
        }
    }
}
