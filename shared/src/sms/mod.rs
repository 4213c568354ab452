//! Sending SMS: a small port ([`SmsSender`]) with two adapters, End User Messaging
//! ([`EumSender`]) for AWS and [`ConsoleSender`] for local runs.
//!
//! Static dispatch through [`AnySender`] keeps the hot path free of boxed futures.

mod console;
mod eum;

pub use console::ConsoleSender;
pub use eum::{CONTEXT_LOG_ID, EumSender};

use crate::kinds::MessageClass;
use std::future::Future;

/// Longest a `SendTextMessage` call may take before it counts as unanswered (in doubt). The
/// sender starts no send later than this (plus the outcome write) before its deadline.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One message to send.
#[derive(Debug, Clone, Copy)]
pub struct OutboundSms<'a> {
    /// E.164 destination.
    pub to: &'a str,
    pub body: &'a str,
    pub class: MessageClass,
    /// The log record id, attached as `Context` so delivery receipts find their record.
    pub log_id: &'a str,
    /// Ask AWS to track feedback (used for verification codes, reported on success).
    pub message_feedback: bool,
}

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    pub message_id: String,
}

/// Why the provider did not take a message, classified for retry decisions (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// Throttling and 5xx answers: the provider did not take it; try again later.
    #[error("transient provider error {code}: {message}")]
    Transient { code: String, message: String },
    /// No usable answer (a timeout, a broken connection, an unreadable response): the provider
    /// may have taken the message. Never retried as if it had not been (DESIGN §6): the log
    /// keeps the attempt `sending` until a receipt or the takeover settles it.
    #[error("no answer from the provider ({code}): {message}")]
    InDoubt { code: String, message: String },
    /// AWS or the carrier holds an opt-out for the destination.
    #[error("destination phone number is opted out")]
    OptedOut,
    /// The account's monthly SMS spend limit is reached.
    #[error("monthly SMS spend limit reached")]
    SpendLimitReached,
    /// Anything else (validation, access denied, unknown resource): retrying will not help.
    #[error("permanent provider error {code}: {message}")]
    Permanent { code: String, message: String },
}

impl SmsError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SmsError::Transient { .. })
    }

    /// The provider asked us to slow down.
    pub fn is_throttling(&self) -> bool {
        matches!(self, SmsError::Transient { code, .. } if code == "ThrottlingException")
    }

    /// Short code for logs and the log record.
    pub fn code(&self) -> &str {
        match self {
            SmsError::Transient { code, .. }
            | SmsError::InDoubt { code, .. }
            | SmsError::Permanent { code, .. } => code,
            SmsError::OptedOut => "DESTINATION_PHONE_NUMBER_OPTED_OUT",
            SmsError::SpendLimitReached => "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
        }
    }
}

/// The port every function sends through.
pub trait SmsSender: Send + Sync {
    fn send(&self, sms: &OutboundSms<'_>)
    -> impl Future<Output = Result<SentSms, SmsError>> + Send;

    /// Reports that the recipient received the message (a verification code was entered),
    /// which feeds AWS's fraud detection (`PutMessageFeedback`).
    fn report_received(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<(), SmsError>> + Send;
}

/// The sender chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnySender {
    EndUserMessaging(EumSender),
    Console(ConsoleSender),
}

impl AnySender {
    /// Builds the sender `config.sms.sender` names; the AWS client is only built for EUM.
    pub fn from_config(config: &crate::Config, sdk: &aws_config::SdkConfig) -> Self {
        match config.sms.sender {
            crate::config::SenderKind::EndUserMessaging => {
                // No SDK retries: a retried timeout could send the message twice. The send
                // protocol decides what happens after a failure (DESIGN §6).
                let client = aws_sdk_pinpointsmsvoicev2::config::Builder::from(sdk)
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .operation_timeout(SEND_TIMEOUT)
                            .build(),
                    )
                    .build();
                AnySender::EndUserMessaging(EumSender::new(
                    aws_sdk_pinpointsmsvoicev2::Client::from_conf(client),
                    &config.sms,
                ))
            }
            crate::config::SenderKind::Console => AnySender::Console(ConsoleSender::default()),
        }
    }
}

impl SmsSender for AnySender {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<SentSms, SmsError> {
        match self {
            AnySender::EndUserMessaging(s) => s.send(sms).await,
            AnySender::Console(s) => s.send(sms).await,
        }
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        match self {
            AnySender::EndUserMessaging(s) => s.report_received(message_id).await,
            AnySender::Console(s) => s.report_received(message_id).await,
        }
    }
}
