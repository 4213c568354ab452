//! CloudWatch embedded metric format (EMF): one JSON line on stdout per batch, which
//! CloudWatch turns into metrics without any API call from the function.
//!
//! `SMS_METRICS=off` silences the lines: the test runner sets it (scripts/test.sh), because
//! the integration tests run the handlers in-process, where the test harness does not capture
//! what spawned tasks print, so every batch's metrics landed among the test results. Unset (as
//! in the template) or any other value, metrics are written. It is read here, once per
//! process, not in `Config`: it switches an output channel, not the product's behaviour.

use serde_json::{Map, Value, json};
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
/// nothing when metrics are switched off. Through `println!`, which a unit test's harness
/// captures (what other threads print, it does not: hence the switch).
pub fn write_documents(docs: &[Value]) {
    if enabled() {
        for doc in docs {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
fn write_to(out: &mut impl std::io::Write, docs: &[Value]) {
    for doc in docs {
        let _ = writeln!(out, "{doc}");
    }
}

/// Metrics gathered during one invocation, emitted once.
#[derive(Debug, Default, Clone)]
pub struct MetricSet {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: &'static str,
    /// A dimension besides `Function` (`Reason`, `Country`) and its value.
    dimension: Option<(&'static str, String)>,
    unit: &'static str,
    value: f64,
    /// A gauge keeps its last value; a count adds up.
    gauge: bool,
}

impl MetricSet {
    /// Adds `value` to a count (with an optional `Reason` dimension).
    pub fn add(&mut self, name: &'static str, reason: Option<&'static str>, value: f64) {
        self.push(Entry {
            name,
            dimension: reason.map(|r| ("Reason", r.to_owned())),
            unit: "Count",
            value,
            gauge: false,
        });
    }

    pub fn count(&mut self, name: &'static str) {
        self.add(name, None, 1.0);
    }

    /// Counts one under another dimension than `Reason` (`Country`: the verified-to-sent
    /// ratio of codes per country, DESIGN §5).
    pub fn count_by(&mut self, name: &'static str, dimension: &'static str, value: &str) {
        self.push(Entry {
            name,
            dimension: Some((dimension, value.to_owned())),
            unit: "Count",
            value: 1.0,
            gauge: false,
        });
    }

    /// A value that is not a count (`VerificationSpendUsd`, unit `None`): the last one set.
    pub fn gauge(&mut self, name: &'static str, value: f64, unit: &'static str) {
        self.push(Entry {
            name,
            dimension: None,
            unit,
            value,
            gauge: true,
        });
    }

    fn push(&mut self, entry: Entry) {
        match self
            .entries
            .iter_mut()
            .find(|e| e.name == entry.name && e.dimension == entry.dimension)
        {
            Some(e) if entry.gauge => e.value = entry.value,
            Some(e) => e.value += entry.value,
            None => self.entries.push(entry),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The EMF documents: one for the metrics with only the `Function` dimension, one per
    /// metric with another dimension.
    pub fn to_documents(&self, function: &str, timestamp_ms: i64) -> Vec<Value> {
        let mut docs = Vec::new();
        let mut plain = Map::new();
        let mut plain_names = Vec::new();
        for e in &self.entries {
            match &e.dimension {
                None => {
                    plain.insert(e.name.to_owned(), json!(e.value));
                    plain_names.push(json!({"Name": e.name, "Unit": e.unit}));
                }
                Some((dimension, value)) => docs.push(json!({
                    "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Function", dimension]],
                        "Metrics": [{"Name": e.name, "Unit": e.unit}]}]},
                    "Function": function,
                    *dimension: value,
                    e.name: e.value,
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
    fn countries_and_gauges_keep_their_dimension_and_unit() {
        let mut m = MetricSet::default();
        m.count_by("VerificationCodesSent", "Country", "US");
        m.count_by("VerificationCodesSent", "Country", "US");
        m.count_by("VerificationCodesSent", "Country", "CA");
        m.gauge("VerificationSpendUsd", 0.01, "None");
        m.gauge("VerificationSpendUsd", 0.02, "None");
        let docs = m.to_documents("verify-api", 1_700_000_000_000);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0]["VerificationSpendUsd"], 0.02,
            "a gauge keeps its last value"
        );
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "None"
        );
        assert_eq!(docs[1]["Country"], "US");
        assert_eq!(docs[1]["VerificationCodesSent"], 2.0);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Country"]])
        );
        assert_eq!(docs[2]["Country"], "CA");
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
