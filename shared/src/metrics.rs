//! CloudWatch embedded metric format (EMF): one JSON line on stdout per batch, which
//! CloudWatch turns into metrics without any API call from the function.

use serde_json::{Map, Value, json};
use std::io::Write;

/// Namespace of every metric of the product.
pub const NAMESPACE: &str = "SmsNotifications";

/// Counts gathered during one invocation, emitted once.
#[derive(Debug, Default, Clone)]
pub struct MetricSet {
    /// (metric name, dimension value or "", value)
    entries: Vec<(&'static str, Option<&'static str>, f64)>,
}

impl MetricSet {
    /// Adds `value` to a metric (with an optional `Reason` dimension).
    pub fn add(&mut self, name: &'static str, reason: Option<&'static str>, value: f64) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|(n, r, _)| *n == name && *r == reason)
        {
            entry.2 += value;
        } else {
            self.entries.push((name, reason, value));
        }
    }

    pub fn count(&mut self, name: &'static str) {
        self.add(name, None, 1.0);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The EMF documents: one per dimension set (plain, and by reason).
    pub fn to_documents(&self, function: &str, timestamp_ms: i64) -> Vec<Value> {
        let mut docs = Vec::new();
        let mut plain = Map::new();
        let mut plain_names = Vec::new();
        for (name, reason, value) in &self.entries {
            match reason {
                None => {
                    plain.insert((*name).to_owned(), json!(value));
                    plain_names.push(json!({"Name": name, "Unit": "Count"}));
                }
                Some(reason) => docs.push(json!({
                    "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Function", "Reason"]],
                        "Metrics": [{"Name": name, "Unit": "Count"}]}]},
                    "Function": function,
                    "Reason": reason,
                    *name: value,
                })),
            }
        }
        if !plain_names.is_empty() {
            let mut doc = Map::new();
            doc.insert(
                "_aws".into(),
                json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": plain_names}]}),
            );
            doc.insert("Function".into(), json!(function));
            doc.extend(plain);
            docs.insert(0, Value::Object(doc));
        }
        docs
    }

    /// Prints the documents on stdout, where the Lambda log agent picks EMF up.
    pub fn emit(&self, function: &str) {
        if self.is_empty() {
            return;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        let mut out = std::io::stdout().lock();
        for doc in self.to_documents(function, now) {
            let _ = writeln!(out, "{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_embedded_metric_format() {
        let mut m = MetricSet::default();
        m.count("Sent");
        m.count("Sent");
        m.add("Suppressed", Some("daily_cap"), 1.0);
        let docs = m.to_documents("sender", 1_700_000_000_000);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["Sent"], 2.0);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            NAMESPACE
        );
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "Sent"
        );
        assert_eq!(docs[1]["Reason"], "daily_cap");
        assert_eq!(docs[1]["Suppressed"], 1.0);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][1],
            "Reason"
        );
    }
}
