//! The local stack: tables, queues and SNS topics on a local server (moto), idempotently.
//! The `local-stack` binary runs [`create_local_stack`] and prints [`LocalStack::env_lines`].

use aws_config::SdkConfig;
use sms_shared::config::TableNames;
use sms_shared::store::schema::{QueueUrls, create_queues, create_tables};
use std::fmt;

/// Topic the configuration set's event destination publishes delivery receipts to.
pub const DELIVERY_TOPIC: &str = "sms-delivery-events";
/// Topic the phone number's two-way channel publishes inbound SMS to.
pub const INBOUND_TOPIC: &str = "sms-inbound";

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStack {
    pub tables: TableNames,
    pub queues: QueueUrls,
    pub delivery_topic_arn: String,
    pub inbound_topic_arn: String,
}

/// A resource that could not be created.
#[derive(Debug)]
pub struct LocalStackError(pub String);

impl fmt::Display for LocalStackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LocalStackError {}

/// The local endpoint from `AWS_ENDPOINT_URL`; refuses to run without one, so the local
/// stack can never be created in a real account.
pub fn local_endpoint() -> Result<String, LocalStackError> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(LocalStackError(
            "AWS_ENDPOINT_URL is not set: the local stack is only created on a local server \
             (e.g. AWS_ENDPOINT_URL=http://127.0.0.1:5000), never in real AWS"
                .into(),
        ));
    }
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        return Err(LocalStackError(format!(
            "AWS_ENDPOINT_URL `{endpoint}` is not an http(s) URL"
        )));
    }
    Ok(endpoint.to_owned())
}

/// Creates the three tables, the queues `{queue_prefix}transactional`,
/// `{queue_prefix}notifications` and their `-dlq`s, and the topics
/// `{queue_prefix}sms-delivery-events` and `{queue_prefix}sms-inbound`. Running it twice
/// succeeds and returns the same names.
pub async fn create_local_stack(
    sdk: &SdkConfig,
    tables: &TableNames,
    queue_prefix: &str,
) -> Result<LocalStack, LocalStackError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sns = aws_sdk_sns::Client::new(sdk);
    create_tables(&dynamodb, tables)
        .await
        .map_err(|e| LocalStackError(format!("creating the tables: {e}")))?;
    let queues = create_queues(&sqs, queue_prefix)
        .await
        .map_err(|e| LocalStackError(format!("creating the queues: {e}")))?;
    let mut arns = Vec::with_capacity(2);
    for topic in [DELIVERY_TOPIC, INBOUND_TOPIC] {
        let name = format!("{queue_prefix}{topic}");
        let arn = sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .map_err(|e| {
                LocalStackError(format!(
                    "creating the topic {name}: {}",
                    aws_sdk_sns::Error::from(e)
                ))
            })?
            .topic_arn
            .ok_or_else(|| LocalStackError(format!("no ARN for the topic {name}")))?;
        arns.push(arn);
    }
    let inbound_topic_arn = arns.pop().expect("two topics");
    let delivery_topic_arn = arns.pop().expect("two topics");
    Ok(LocalStack {
        tables: tables.clone(),
        queues,
        delivery_topic_arn,
        inbound_topic_arn,
    })
}

impl LocalStack {
    /// `(KEY, value)` pairs in the names the functions' configuration reads.
    pub fn env_pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("LOG_TABLE", &self.tables.log),
            ("PREFERENCES_TABLE", &self.tables.preferences),
            ("VERIFICATION_TABLE", &self.tables.verification),
            ("TRANSACTIONAL_QUEUE_URL", &self.queues.transactional),
            ("NOTIFICATIONS_QUEUE_URL", &self.queues.notifications),
            ("TRANSACTIONAL_DLQ_URL", &self.queues.transactional_dlq),
            ("NOTIFICATIONS_DLQ_URL", &self.queues.notifications_dlq),
            ("DELIVERY_TOPIC_ARN", &self.delivery_topic_arn),
            ("INBOUND_TOPIC_ARN", &self.inbound_topic_arn),
        ]
    }

    /// `KEY=value` lines a shell can source (values single-quoted when they need it).
    pub fn env_lines(&self) -> String {
        self.env_pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect()
    }
}

fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@%+=,".contains(&b));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}
