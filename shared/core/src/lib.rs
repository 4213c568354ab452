//! The pure rules of the SMS functions: plain functions over plain data, no AWS SDK, no
//! Lambda runtime, no HTTP server (the compiler keeps it so: this crate depends on none of
//! them). `sms-shared` builds the adapters on top and re-exports every module here under its
//! old path, so `sms_shared::kinds` and `sms_core::kinds` name the same thing.
//!
//! * Messages: [`kinds`] (the catalogue, §3), [`template`] and [`segments`] (bodies),
//!   [`locale`], [`disclosure`] (the consent texts shown, versioned).
//! * Who may be texted: [`phone`] (E.164, countries), [`consent`] and [`quiet_hours`] (§4),
//!   [`preferences`] (the stored consent state and its events), [`keywords`] (STOP, HELP, …).
//! * Inputs from outside: [`request`] (the SQS send request, §6), [`http`] (strict JSON
//!   bodies and the error shape, §5), [`receipt`] and [`inbound`] (the SNS messages of End User
//!   Messaging, §8), [`verification`] (codes and their rules).
//! * The log's vocabulary: [`status`] (what a record has come to, §9).
//! * Settings the rules read: [`settings`]; time and pacing: [`clock`], [`pacing`];
//!   [`background`] (low-priority threads for work off the init path).

pub mod background;
pub mod clock;
pub mod consent;
pub mod disclosure;
pub mod http;
pub mod inbound;
pub mod keywords;
pub mod kinds;
pub mod locale;
pub mod pacing;
pub mod phone;
pub mod preferences;
pub mod quiet_hours;
pub mod receipt;
pub mod request;
pub mod segments;
pub mod settings;
pub mod status;
pub mod template;
pub mod verification;

pub use clock::{Clock, SystemClock};
pub use kinds::{Category, MessageClass, MessageKind};
pub use phone::{E164, PhoneError};
