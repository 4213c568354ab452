//! Support for the integration tests: one moto server per test process ([`moto`]), SDK
//! configuration that can only reach local servers ([`aws`]), fresh tables and queues per
//! test ([`env`], created by [`stack`]), an HTTP stub of the End User Messaging SMS API
//! ([`sms_stub`]) and the local stack that `make dev` and the `local-stack` binary create
//! ([`local_stack`]).
//!
//! Every test gets its own names (moto's reset is global), so tests run in parallel with no
//! leakage between them:
//!
//! ```no_run
//! # async fn demo() {
//! use integration_tests::{SmsStub, TestEnv};
//! let env = TestEnv::new().await;
//! let stub = SmsStub::start().await;
//! let config = env.config_with(&[("SMS_SENDER", "eum"), ("ORIGINATION_IDENTITY", "+18005550100")]);
//! let sms = stub.client();
//! # let _ = (config, sms);
//! # }
//! ```

pub mod aws;
pub mod conflict;
pub mod counting;
pub mod env;
pub mod events;
pub mod fault_proxy;
pub mod iam;
pub mod lambda_process;
pub mod local_stack;
pub mod moto;
pub mod runtime_api;
pub mod sender_fixture;
pub mod sms_stub;
pub mod sqs;
pub mod stack;
pub mod template;

pub use aws::{TEST_REGION, sdk_config};
pub use env::TestEnv;
pub use moto::moto_endpoint;
pub use sms_stub::{Behavior, FaultMix, SentSms, SmsStub};
