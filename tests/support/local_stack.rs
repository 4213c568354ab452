//! The local stack: tables, queues, SNS topics and the two secrets on a local server (moto),
//! idempotently.
//! The `local-stack` binary runs [`create_local_stack`] and prints [`LocalStack::env_lines`].

use crate::stack::{QueueUrls, create_queues, create_tables};
use aws_config::SdkConfig;
use sms_shared::config::TableNames;
use std::fmt;

/// Topic the configuration set's event destination publishes delivery receipts to.
pub const DELIVERY_TOPIC: &str = "sms-delivery-events";
/// Topic the phone number's two-way channel publishes inbound SMS to.
pub const INBOUND_TOPIC: &str = "sms-inbound";
/// Secret holding the app's JWT signing key (the web app's SimpleJWT `SIGNING_KEY`).
pub const JWT_KEY_SECRET: &str = "sms-local/jwt-signing-key";
/// Secret holding the HMAC key of verification codes.
pub const CODE_HMAC_KEY_SECRET: &str = "sms-local/code-hmac-key";
/// The local stack's JWT signing key. Fixed, so the tokens of `events/http-*.json` work under
/// `make dev`; local only (a deployed stack reads the app's real key, §5).
pub const LOCAL_JWT_SIGNING_KEY: &str = "local-stack-only-jwt-signing-key-0123456789abcdef";
/// The local stack's code HMAC key; local only (the template generates a random one).
pub const LOCAL_CODE_HMAC_KEY: &str = "local-stack-only-code-hmac-key-0123456789abcdef";

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStack {
    pub tables: TableNames,
    pub queues: QueueUrls,
    pub delivery_topic_arn: String,
    pub inbound_topic_arn: String,
    pub jwt_key_secret_arn: String,
    pub code_hmac_key_secret_arn: String,
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
    let (jwt_key_secret_arn, code_hmac_key_secret_arn) = create_secrets(sdk, queue_prefix).await?;
    Ok(LocalStack {
        tables: tables.clone(),
        queues,
        delivery_topic_arn,
        inbound_topic_arn,
        jwt_key_secret_arn,
        code_hmac_key_secret_arn,
    })
}

/// Creates (or finds) the two secrets `{prefix}sms-local/...` with the local keys: the ARNs
/// of the JWT signing key's and the code HMAC key's secret.
pub async fn create_secrets(
    sdk: &SdkConfig,
    prefix: &str,
) -> Result<(String, String), LocalStackError> {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let jwt = put_secret(
        &secrets,
        &format!("{prefix}{JWT_KEY_SECRET}"),
        LOCAL_JWT_SIGNING_KEY,
    )
    .await?;
    let code = put_secret(
        &secrets,
        &format!("{prefix}{CODE_HMAC_KEY_SECRET}"),
        LOCAL_CODE_HMAC_KEY,
    )
    .await?;
    Ok((jwt, code))
}

/// Creates the secret `name` with `value`, or finds it; its ARN.
pub async fn put_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String, LocalStackError> {
    let failed =
        |e: &dyn std::fmt::Display| LocalStackError(format!("creating the secret {name}: {e}"));
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.arn,
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            client
                .describe_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| failed(&aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?
                .arn
        }
        Err(e) => {
            return Err(failed(&aws_sdk_secretsmanager::error::DisplayErrorContext(
                e,
            )));
        }
    };
    arn.ok_or_else(|| LocalStackError(format!("no ARN for the secret {name}")))
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
            ("JWT_SIGNING_KEY_SECRET_ID", &self.jwt_key_secret_arn),
            ("CODE_HMAC_KEY_SECRET_ID", &self.code_hmac_key_secret_arn),
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
