//! Creating the tables and queues of DESIGN §6 and §9 on a local server: each test's own set
//! ([`crate::env::TestEnv`]) and the local stack of `make dev` ([`crate::local_stack`]). The
//! functions never create anything (the template does); they only need the names of
//! `sms_shared::store::schema`, from which the definitions here are built, and
//! `tests/it/template_drift.rs` holds `template.yaml` to these same definitions.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use sms_shared::config::TableNames;
use sms_shared::store::StoreError;
use sms_shared::store::schema::{
    LOG_BY_PROVIDER_ID_INDEX, LOG_BY_USER_INDEX, LOG_KEY, PREFS_BY_PHONE_INDEX, PREFS_PHONE_KEY,
    PREFS_PK, PREFS_SK, TTL_ATTRIBUTE, VERIFICATION_KEY,
};

/// One table definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    /// (attribute, type) of every key attribute, `S` or `N`.
    pub attributes: Vec<(&'static str, ScalarAttributeType)>,
    pub partition_key: &'static str,
    pub sort_key: Option<&'static str>,
    /// (index name, partition key, sort key)
    pub indexes: Vec<(&'static str, &'static str, Option<&'static str>)>,
    pub ttl_attribute: Option<&'static str>,
}

/// The three tables of DESIGN §9 under the given names.
pub fn table_specs(names: &TableNames) -> [TableSpec; 3] {
    use ScalarAttributeType::{N, S};
    [
        TableSpec {
            name: names.log.clone(),
            attributes: vec![
                (LOG_KEY, S),
                ("userId", S),
                ("createdAtMs", N),
                ("providerMessageId", S),
            ],
            partition_key: LOG_KEY,
            sort_key: None,
            indexes: vec![
                (LOG_BY_USER_INDEX, "userId", Some("createdAtMs")),
                (LOG_BY_PROVIDER_ID_INDEX, "providerMessageId", None),
            ],
            ttl_attribute: Some(TTL_ATTRIBUTE),
        },
        TableSpec {
            name: names.preferences.clone(),
            attributes: vec![(PREFS_PK, S), (PREFS_SK, S), (PREFS_PHONE_KEY, S)],
            partition_key: PREFS_PK,
            sort_key: Some(PREFS_SK),
            indexes: vec![(PREFS_BY_PHONE_INDEX, PREFS_PHONE_KEY, None)],
            ttl_attribute: None,
        },
        TableSpec {
            name: names.verification.clone(),
            attributes: vec![(VERIFICATION_KEY, S)],
            partition_key: VERIFICATION_KEY,
            sort_key: None,
            indexes: vec![],
            ttl_attribute: Some(TTL_ATTRIBUTE),
        },
    ]
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema has name and type")
}

fn key_schema(pk: &str, sk: Option<&str>) -> Vec<KeySchemaElement> {
    let mut keys = vec![key(pk, KeyType::Hash)];
    keys.extend(sk.map(|sk| key(sk, KeyType::Range)));
    keys
}

/// Creates the tables (on-demand, indexes projecting all attributes, TTL on) if they do not
/// exist yet. Safe to run twice.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    names: &TableNames,
) -> Result<(), StoreError> {
    for spec in table_specs(names) {
        let mut request = client
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(spec.partition_key, spec.sort_key)));
        for (name, kind) in &spec.attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*name)
                    .attribute_type(kind.clone())
                    .build()
                    .expect("attribute has name and type"),
            );
        }
        for (index, pk, sk) in &spec.indexes {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .set_key_schema(Some(key_schema(pk, *sk)))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index has name, keys and projection"),
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => return Err(err.into()),
        }
        if let Some(attribute) = spec.ttl_attribute {
            let result = client
                .update_time_to_live()
                .table_name(&spec.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build()
                        .expect("ttl spec has name and flag"),
                )
                .send()
                .await;
            // Already enabled is fine: the stack may be created twice.
            if let Err(err) = result {
                let already = err
                    .as_service_error()
                    .and_then(|e| e.meta().message())
                    .is_some_and(|m| m.contains("already"));
                if !already {
                    return Err(err.into());
                }
            }
        }
    }
    Ok(())
}

/// Names of the two send queues and their dead-letter queues (§6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub transactional: String,
    pub transactional_dlq: String,
    pub notifications: String,
    pub notifications_dlq: String,
}

/// Receives before SQS moves a message to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Visibility timeout of the send queues, above the sender's Lambda timeout.
pub const QUEUE_VISIBILITY_SECONDS: u32 = 60;

/// Creates `{prefix}transactional`, `{prefix}notifications` and their `-dlq`s with a redrive
/// policy. Idempotent (SQS returns the existing queue for the same attributes).
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
) -> Result<QueueUrls, aws_sdk_sqs::Error> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut urls = Vec::with_capacity(4);
    for name in ["transactional", "notifications"] {
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}{name}-dlq"))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{MAX_RECEIVE_COUNT}"}}"#
        );
        let url = sqs
            .create_queue()
            .queue_name(format!("{prefix}{name}"))
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                QUEUE_VISIBILITY_SECONDS.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        urls.push((url, dlq_url));
    }
    let (notifications, notifications_dlq) = urls.pop().expect("two queues");
    let (transactional, transactional_dlq) = urls.pop().expect("two queues");
    Ok(QueueUrls {
        transactional,
        transactional_dlq,
        notifications,
        notifications_dlq,
    })
}
