//! Everything the SMS functions share.
//!
//! Pure domain rules (no AWS types, plain functions over plain data):
//! [`kinds`], [`phone`], [`segments`], [`template`], [`quiet_hours`], [`consent`], [`preferences`].
//!
//! AWS adapters behind small traits: [`store`] (DynamoDB tables of DESIGN §9) and [`sms`]
//! (End User Messaging `SendTextMessage`, and a console sender for local runs).
//!
//! The one send protocol every function sends through (claim, record the attempt, send,
//! finish): [`outbound`]; the opt-in confirmation sent through it once per grant:
//! [`opt_in`].
//!
//! Wiring: [`config`] (one struct read from the environment) and [`clock`].

pub mod auth;
pub mod aws;
pub mod background;
pub mod clock;
pub mod config;
pub mod consent;
pub mod disclosure;
pub mod http;
pub mod keywords;
pub mod kinds;
pub mod locale;
pub mod metrics;
pub mod opt_in;
pub mod outbound;
pub mod pacing;
pub mod phone;
pub mod preferences;
pub mod quiet_hours;
pub mod request;
pub mod secrets;
pub mod segments;
pub mod sms;
pub mod sns;
pub mod store;
pub mod template;
pub mod verification;

pub use clock::{Clock, SystemClock};
pub use config::Config;
pub use kinds::{Category, MessageClass, MessageKind};
pub use phone::{E164, PhoneError};
