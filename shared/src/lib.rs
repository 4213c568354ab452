//! The AWS side of the SMS functions, on top of the pure rules of `sms-core`.
//!
//! Two crates, both under `shared/` (docs/crates.md):
//! * `sms-core` (`shared/core/`): the pure rules, with no AWS, Lambda or HTTP-server
//!   dependency — kinds, phone, segments, template, quiet hours, consent, preferences,
//!   keywords, verification rules, locale, disclosure, pacing, clock, background, request
//!   parsing, the JSON-body and error-shape rules of [`http`], and the settings they read
//!   ([`config::Branding`], [`config::Limits`]).
//! * `sms-shared` (this crate): what talks to AWS or Lambda. Every core module is re-exported
//!   here under its old path, so a function may import a pure rule from either
//!   `sms_shared::kinds` or `sms_core::kinds`: the same item.
//!
//! Cargo features keep SDKs out of the functions that do not call them: `sms` ([`sms`],
//! [`outbound`], [`opt_in`]: every function that sends), `secretsmanager` ([`auth`],
//! [`secrets`]: the two HTTP APIs) and `sqs` ([`request::enqueue`]: the sender).
//!
//! Here: the DynamoDB tables of DESIGN §9 ([`store`]); End User Messaging `SendTextMessage`
//! and a console sender for local runs ([`sms`]); the one send protocol every function sends
//! through (claim, record the attempt, send, finish: [`outbound`]) and the opt-in
//! confirmation sent through it once per grant ([`opt_in`]); the caller's identity
//! ([`auth`]), the secrets ([`secrets`]), the HTTPS client every SDK client shares ([`aws`]),
//! metrics ([`metrics`]), the SNS loop ([`sns`]), the lambda-facing parts of [`http`],
//! [`request::enqueue`] (SQS), and [`config`] (one struct read from the environment).

#[cfg(all(feature = "secretsmanager", feature = "sms"))]
pub mod api_main;
#[cfg(feature = "secretsmanager")]
pub mod auth;
pub mod aws;
pub mod config;
pub mod http;
pub mod metrics;
#[cfg(feature = "sms")]
pub mod opt_in;
#[cfg(feature = "sms")]
pub mod outbound;
pub mod request;
#[cfg(feature = "secretsmanager")]
pub mod secrets;
#[cfg(feature = "sms")]
pub mod sms;
pub mod sns;
pub mod store;

// The pure rules, under the paths they had before the split.
pub use sms_core::{
    background, clock, consent, disclosure, keywords, kinds, locale, pacing, phone, preferences,
    quiet_hours, segments, template, verification,
};

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use kinds::{Category, MessageClass, MessageKind};
pub use phone::{E164, PhoneError};
