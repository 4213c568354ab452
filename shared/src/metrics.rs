//! CloudWatch embedded metric format (EMF): one JSON line on stdout per batch, which
//! CloudWatch turns into metrics without any API call from the function.
//!
//! `SMS_METRICS=off` silences the lines: the test runner sets it (scripts/test.sh), because
//! the integration tests run the handlers in-process, where the test harness does not capture
//! what spawned tasks print, so every batch's metrics landed among the test results. Unset (as
//! in the template) or any other value, metrics are written. It is read here, once per
//! process, not in `Config`: it switches an output channel, not the product's behaviour.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::OnceLock;

/// Namespace of every metric of the product.
pub const NAMESPACE: &str = "SmsNotifications";

/// The variable that turns the EMF lines off (`off`, `0`, `false`, `no`).
pub const SWITCH_VAR: &str = "SMS_METRICS";

/// Whether a value of [`SWITCH_VAR`] lets metrics out: anything but an explicit "off".
pub fn switch_allows(value: Option<&str>) -> bool {
    let value = value.map(|v| v.trim().to_ascii_lowercase());
    !matches!(value.as_deref(), Some("off" | "0" | "false" | "no"))
}

/// [`switch_allows`] for this process's environment, read once.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| switch_allows(std::env::var(SWITCH_VAR).ok().as_deref()))
}

/// Prints EMF documents on stdout, one line each, where the Lambda log agent picks them up;
/// nothing when metrics are switched off.
pub fn write_documents(docs: &[Value]) {
    if enabled() {
        write_to(&mut std::io::stdout().lock(), docs);
    }
}

fn write_to(out: &mut impl Write, docs: &[Value]) {
    for doc in docs {
        let _ = writeln!(out, "{doc}");
    }
}

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

    /// Prints the documents on stdout (see [`write_documents`]).
    pub fn emit(&self, function: &str) {
        if self.is_empty() || !enabled() {
            return;
        }
        let now = jiff::Timestamp::now().as_millisecond();
        write_documents(&self.to_documents(function, now));
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

    #[test]
    fn only_an_explicit_off_silences_metrics() {
        for off in ["off", "OFF", " off ", "0", "false", "no"] {
            assert!(
                !switch_allows(Some(off)),
                "{off:?} should switch metrics off"
            );
        }
        // Unset (the deployed template sets nothing), empty or anything else: metrics stay on.
        for on in [
            None,
            Some(""),
            Some("on"),
            Some("1"),
            Some("true"),
            Some("of"),
        ] {
            assert!(switch_allows(on), "{on:?} should leave metrics on");
        }
    }

    #[test]
    fn each_document_is_one_json_line() {
        let mut m = MetricSet::default();
        m.count("Sent");
        m.add("Suppressed", Some("daily_cap"), 1.0);
        let mut out = Vec::new();
        write_to(&mut out, &m.to_documents("sender", 1_700_000_000_000));
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            let doc: Value = serde_json::from_str(line).unwrap();
            assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        }
    }
}
