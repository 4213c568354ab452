//! The send request of the upstream SQS contract (DESIGN §6). Parsing and the typed builder
//! are [`sms_core::request`], re-exported here; this module adds `enqueue` (feature `sqs`),
//! the one part that talks to SQS.

pub use sms_core::request::*;

#[cfg(feature = "sqs")]
use aws_sdk_sqs::Client as SqsClient;

/// Enqueues a request on the queue of its class. Returns the SQS message id.
#[cfg(feature = "sqs")]
pub async fn enqueue(
    sqs: &SqsClient,
    queues: &SendQueueUrls,
    request: &SendRequest,
) -> Result<String, aws_sdk_sqs::Error> {
    let body = serde_json::to_string(request).expect("a SendRequest always serializes");
    let out = sqs
        .send_message()
        .queue_url(queues.url_for(request.kind))
        .message_body(body)
        .send()
        .await?;
    Ok(out.message_id.unwrap_or_default())
}
