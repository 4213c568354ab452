//! A fresh set of tables and queues per test.

use crate::stack::{QueueUrls, create_queues, create_tables};
use crate::{moto::moto_endpoint, sdk_config};
use aws_config::SdkConfig;
use sms_shared::Config;
use sms_shared::config::TableNames;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Tables and queues of one test, on the process's moto server, under names no other test
/// (in this process or another one sharing the server) uses.
pub struct TestEnv {
    /// Configuration every client of this test is built from (moto endpoint, test credentials).
    pub sdk: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tables: TableNames,
    pub queues: QueueUrls,
    /// Prefix of every name of this test, e.g. `t4242-7-k2x9q1-`.
    pub prefix: String,
    /// The moto server's URL, for `AWS_ENDPOINT_URL` of a child process.
    pub endpoint: String,
}

/// A prefix unique per call: process id, a counter, and a time-based suffix so a reused
/// process id on a long-running shared server does not collide either.
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "t{}-{n}-{}-",
        std::process::id(),
        base36((nanos % 36u128.pow(6)) as u64)
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

impl TestEnv {
    /// Creates the three tables and the four queues under a fresh prefix.
    ///
    /// # Panics
    /// When moto cannot be reached or refuses to create them.
    pub async fn new() -> TestEnv {
        let endpoint = moto_endpoint().await;
        let sdk = sdk_config(endpoint).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let prefix = unique_prefix();
        let tables = TableNames {
            log: format!("{prefix}log"),
            preferences: format!("{prefix}preferences"),
            verification: format!("{prefix}verification"),
        };
        create_tables(&dynamodb, &tables)
            .await
            .unwrap_or_else(|e| panic!("create tables {prefix}* on moto at {endpoint}: {e}"));
        let queues = create_queues(&sqs, &prefix)
            .await
            .unwrap_or_else(|e| panic!("create queues {prefix}* on moto at {endpoint}: {e}"));
        TestEnv {
            sdk,
            dynamodb,
            sqs,
            tables,
            queues,
            prefix,
            endpoint: endpoint.to_owned(),
        }
    }

    /// The environment variables naming this test's tables and queues.
    pub fn vars(&self) -> HashMap<String, String> {
        [
            ("LOG_TABLE", &self.tables.log),
            ("PREFERENCES_TABLE", &self.tables.preferences),
            ("VERIFICATION_TABLE", &self.tables.verification),
            ("TRANSACTIONAL_QUEUE_URL", &self.queues.transactional),
            ("NOTIFICATIONS_QUEUE_URL", &self.queues.notifications),
            ("TRANSACTIONAL_DLQ_URL", &self.queues.transactional_dlq),
            ("NOTIFICATIONS_DLQ_URL", &self.queues.notifications_dlq),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    /// The functions' configuration for this test's tables and queues, defaults elsewhere.
    /// The log table's item `id` as the tests look at it (strings, numbers, booleans and string
    /// sets as JSON, a list as its length), read consistently; empty when there is none.
    pub async fn log_item(&self, id: &str) -> serde_json::Map<String, serde_json::Value> {
        use aws_sdk_dynamodb::types::AttributeValue;
        use serde_json::json;
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.tables.log)
            .key(
                sms_shared::store::schema::LOG_KEY,
                AttributeValue::S(id.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem on the log table")
            .item
            .unwrap_or_default();
        item.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    AttributeValue::S(s) => json!(s),
                    AttributeValue::N(n) => json!(n),
                    AttributeValue::Bool(b) => json!(b),
                    AttributeValue::Ss(ss) => json!(ss),
                    AttributeValue::L(l) => json!(l.len()),
                    _ => json!("other"),
                };
                (k, v)
            })
            .collect()
    }

    pub fn config(&self) -> Config {
        self.config_with(&[])
    }

    /// Like [`TestEnv::config`], with extra variables (which win over the table and queue ones).
    ///
    /// # Panics
    /// When the variables do not make a valid configuration.
    pub fn config_with(&self, extra: &[(&str, &str)]) -> Config {
        Config::from_map(&self.vars_with(extra))
            .unwrap_or_else(|e| panic!("test configuration: {e}"))
    }

    /// [`TestEnv::vars`] with extra variables (which win): what [`TestEnv::config_with`]
    /// reads, and what an [`crate::iam::Recorder`] maps to the template's resources.
    pub fn vars_with(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars = self.vars();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars
    }
}
