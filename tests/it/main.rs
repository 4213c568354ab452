//! The integration tests: one test binary, one module per area (one link of the AWS SDK
//! instead of one per area; `api_common` shared without `#[path]`). All areas run in one
//! process: one global tracing subscriber (`api_common::LogCapture`, installed once, lazily),
//! and one IAM recording (`iam-calls/<this binary>.jsonl`) that the IAM contract reads.
//!
//! Run one area with its module path: `cargo test -p integration-tests --test it sender::`.

mod api_common;

mod abuse;
mod delivery_status;
mod iam;
mod inbound_sms;
mod load;
mod opt_in_api;
mod reliability;
mod send_timings;
mod sender;
mod sms_sender;
mod stores;
mod support_selftest;
mod template_drift;
mod verify_api;
