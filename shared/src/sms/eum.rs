//! AWS End User Messaging SMS (`pinpoint-sms-voice-v2`) adapter.

use super::{OutboundSms, SentSms, SmsError, SmsSender};
use crate::config::SmsSettings;
use crate::kinds::MessageClass;
use aws_sdk_pinpointsmsvoicev2::Client;
use aws_sdk_pinpointsmsvoicev2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_pinpointsmsvoicev2::operation::send_text_message::SendTextMessageError;
use aws_sdk_pinpointsmsvoicev2::types::{
    ConflictExceptionReason, MessageFeedbackStatus, MessageType,
    ServiceQuotaExceededExceptionReason,
};
use std::sync::Arc;

/// Context key under which the log id travels to delivery receipts (core: the receipt
/// parser reads it).
pub use sms_core::receipt::CONTEXT_LOG_ID;

/// Sends through `SendTextMessage` from the configured origination identity only.
#[derive(Debug, Clone)]
pub struct EumSender {
    client: Client,
    settings: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    origination_identity: Option<String>,
    configuration_set: Option<String>,
    max_price: Option<String>,
    ttl_seconds: i32,
}

impl EumSender {
    pub fn new(client: Client, settings: &SmsSettings) -> Self {
        Self {
            client,
            settings: Arc::new(Settings {
                origination_identity: settings.origination_identity.clone(),
                configuration_set: settings.configuration_set.clone(),
                max_price: settings.max_price.clone(),
                ttl_seconds: i32::try_from(settings.ttl.as_secs()).unwrap_or(i32::MAX),
            }),
        }
    }
}

impl SmsSender for EumSender {
    async fn send(&self, sms: &OutboundSms<'_>) -> Result<SentSms, SmsError> {
        let s = &self.settings;
        let message_type = match sms.class {
            MessageClass::Promotional => MessageType::Promotional,
            MessageClass::Transactional => MessageType::Transactional,
        };
        let output = self
            .client
            .send_text_message()
            .destination_phone_number(sms.to)
            .set_origination_identity(s.origination_identity.clone())
            .message_body(sms.body)
            .message_type(message_type)
            .set_configuration_set_name(s.configuration_set.clone())
            .set_max_price(s.max_price.clone())
            .time_to_live(s.ttl_seconds)
            .context(CONTEXT_LOG_ID, sms.log_id)
            .message_feedback_enabled(sms.message_feedback)
            .send()
            .await
            .map_err(classify_send_error)?;
        let message_id = output.message_id.ok_or_else(|| SmsError::InDoubt {
            code: "MissingMessageId".into(),
            message: "SendTextMessage answered without a message id".into(),
        })?;
        Ok(SentSms { message_id })
    }

    async fn report_received(&self, message_id: &str) -> Result<(), SmsError> {
        self.client
            .put_message_feedback()
            .message_id(message_id)
            .message_feedback_status(MessageFeedbackStatus::Received)
            .send()
            .await
            .map(|_| ())
            .map_err(classify_generic)
    }
}

/// DESIGN §6: only throttling, internal errors and 5xx are transient; no answer at all
/// (timeouts, connection faults) is in doubt.
fn classify_send_error<R>(err: SdkError<SendTextMessageError, R>) -> SmsError
where
    R: std::fmt::Debug + HttpStatus,
{
    if let SdkError::ServiceError(service) = &err {
        let status = service.raw().status_code();
        match service.err() {
            SendTextMessageError::ThrottlingException(e) => {
                return transient("ThrottlingException", e.message());
            }
            SendTextMessageError::InternalServerException(e) => {
                return transient("InternalServerException", e.message());
            }
            SendTextMessageError::ConflictException(e)
                if e.reason() == Some(&ConflictExceptionReason::DestinationPhoneNumberOptedOut) =>
            {
                return SmsError::OptedOut;
            }
            SendTextMessageError::ServiceQuotaExceededException(e)
                if e.reason()
                    == Some(
                        &ServiceQuotaExceededExceptionReason::MonthlySpendLimitReachedForText,
                    ) =>
            {
                return SmsError::SpendLimitReached;
            }
            other if status >= 500 => {
                return transient(other.code().unwrap_or("ServerError"), other.message());
            }
            other => {
                return SmsError::Permanent {
                    code: other.code().unwrap_or("Unknown").to_owned(),
                    message: other.message().unwrap_or_default().to_owned(),
                };
            }
        }
    }
    classify_generic(err)
}

/// Errors outside the service's own answers: timeouts, connection faults, bad responses.
fn classify_generic<E: ProvideErrorMetadata, R: std::fmt::Debug + HttpStatus>(
    err: SdkError<E, R>,
) -> SmsError {
    match &err {
        // The request may have reached the provider: in doubt, not transient.
        SdkError::TimeoutError(_) => in_doubt("Timeout", "request timed out"),
        SdkError::DispatchFailure(_) => in_doubt("DispatchFailure", "connection failed"),
        SdkError::ResponseError(_) => in_doubt("ResponseError", "unreadable response"),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            if service.raw().status_code() >= 500 || code == "ThrottlingException" {
                SmsError::Transient { code, message }
            } else {
                SmsError::Permanent { code, message }
            }
        }
        _ => SmsError::Permanent {
            code: "ConstructionFailure".into(),
            message: "request could not be built".into(),
        },
    }
}

fn in_doubt(code: &str, message: &str) -> SmsError {
    SmsError::InDoubt {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}

fn transient(code: &str, message: Option<&str>) -> SmsError {
    SmsError::Transient {
        code: code.to_owned(),
        message: message.unwrap_or_default().to_owned(),
    }
}

/// The HTTP status of a raw response, whatever the SDK's response type.
trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_pinpointsmsvoicev2::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
