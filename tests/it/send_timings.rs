//! DESIGN §6 "Deadlines": the sender's timings in `template.yaml` follow from the rate, so a
//! full batch at the slowest pace fits one invocation. For every value the parameters allow
//! (the rate, the concurrency per queue, the largest message), the values the template
//! deploys (Mappings `SendTimings`) must keep:
//!
//! * timeout ≥ batch size × the slowest message + the deadline margin;
//! * visibility timeout ≥ 6 × timeout (AWS's advice for SQS event sources);
//! * timeout < claim lease ≤ visibility timeout, and the lease outlives every function;
//! * no batching window for a batch of one, none on the transactional queue;
//! * the takeover wait outlasts the lease.
//!
//! The slowest pace is the pacer's ([`Pacer`]): the rate less its safety margin, shared by
//! both queues' largest concurrency. No network: the template is read as YAML.

use integration_tests::template::{
    as_u64, functions, get_att, global_env, global_ref, intrinsic, of_type, ref_target, resource,
    template,
};
use serde_norway::Value;
use sms_shared::pacing::{Pacer, SAFETY_MARGIN};

/// The mapping every derived timing comes from.
const MAP: &str = "SendTimings";
/// The rate parameter that keys it.
const RATE: &str = "SmsPartsPerSecond";

/// A parameter's allowed values.
fn allowed(t: &Value, name: &str) -> Vec<String> {
    let p = &t["Parameters"][name];
    if let Some(values) = p["AllowedValues"].as_sequence() {
        return values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: allowed value {other:?}"),
            })
            .collect();
    }
    let min = as_u64(&p["MinValue"]).unwrap_or_else(|| panic!("{name}: MinValue"));
    let max = as_u64(&p["MaxValue"]).unwrap_or_else(|| panic!("{name}: MaxValue"));
    (min..=max).map(|v| v.to_string()).collect()
}

/// `!FindInMap [SendTimings, !Ref SmsPartsPerSecond, <key>]`: the key, or a panic naming `what`.
fn timing_key<'a>(value: &'a Value, what: &str) -> &'a str {
    let args = intrinsic(value, "FindInMap")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{what} is not !FindInMap [{MAP}, !Ref {RATE}, ...]: {value:?}"));
    assert_eq!(args[0].as_str(), Some(MAP), "{what}");
    assert_eq!(
        ref_target(&args[1]),
        Some(RATE),
        "{what} is keyed by {RATE}"
    );
    args[2].as_str().unwrap_or_else(|| panic!("{what}: key"))
}

fn number(v: &Value, what: &str) -> f64 {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{what}: not a number: {v:?}"))
}

fn mapping(t: &Value, rate: &str, key: &str) -> f64 {
    number(
        &t["Mappings"][MAP][rate][key],
        &format!("{MAP}.{rate}.{key}"),
    )
}

fn queue_ids(t: &Value) -> [&str; 2] {
    ["TRANSACTIONAL_QUEUE_URL", "NOTIFICATIONS_QUEUE_URL"].map(|var| global_ref(t, var))
}

fn global<'a>(t: &'a Value, var: &str) -> &'a Value {
    global_env(t)
        .get(var)
        .unwrap_or_else(|| panic!("Globals do not set {var}"))
}

#[test]
fn every_derived_timing_comes_from_the_rate() {
    let t = template();
    let fns = functions(&t);
    let (_, sender) = fns["sender"];
    assert_eq!(
        timing_key(&sender["Properties"]["Timeout"], "the sender's Timeout"),
        "TimeoutSeconds"
    );
    assert_eq!(
        timing_key(
            global(&t, "SEND_CLAIM_LEASE_SECONDS"),
            "SEND_CLAIM_LEASE_SECONDS"
        ),
        "ClaimLeaseSeconds"
    );
    for id in queue_ids(&t) {
        let queue = resource(&t, id);
        assert_eq!(
            timing_key(&queue["Properties"]["VisibilityTimeout"], id),
            "VisibilityTimeoutSeconds"
        );
        let mappings: Vec<&Value> = of_type(&t, "AWS::Lambda::EventSourceMapping")
            .into_iter()
            .map(|(_, m)| &m["Properties"])
            .filter(|p| get_att(&p["EventSourceArn"]).is_some_and(|(q, _)| q == id))
            .collect();
        assert_eq!(mappings.len(), 1, "{id}: one event source mapping");
        assert_eq!(
            timing_key(&mappings[0]["BatchSize"], "BatchSize"),
            "BatchSize"
        );
        let window = &mappings[0]["MaximumBatchingWindowInSeconds"];
        if id == queue_ids(&t)[0] {
            assert_eq!(as_u64(window), Some(0), "{id}: security alerts do not wait");
        } else {
            assert_eq!(timing_key(window, "window"), "BatchingWindowSeconds");
        }
    }
    // Every rate the parameter allows has its timings, and nothing else does.
    let rates = allowed(&t, RATE);
    let keyed: Vec<String> = t["Mappings"][MAP]
        .as_mapping()
        .expect("the SendTimings mapping")
        .keys()
        .map(|k| k.as_str().expect("string keys").to_owned())
        .collect();
    assert_eq!(keyed, rates);
}

#[test]
fn a_full_batch_at_the_slowest_pace_fits_one_invocation() {
    let t = template();
    let margin = number(
        global(&t, "SENDER_DEADLINE_MARGIN_SECONDS"),
        "SENDER_DEADLINE_MARGIN_SECONDS",
    );
    let wait = number(
        global(&t, "SEND_TAKEOVER_WAIT_SECONDS"),
        "SEND_TAKEOVER_WAIT_SECONDS",
    );
    // The send call's own timeout and the outcome's write fit in the margin.
    assert!(
        margin >= sms_shared::sms::SEND_TIMEOUT.as_secs_f64() + 2.0,
        "margin {margin} s"
    );
    let concurrency_total: u32 = allowed(&t, "SenderMaxConcurrencyPerQueue")
        .iter()
        .map(|c| 2 * c.parse::<u32>().unwrap())
        .max()
        .unwrap();
    let largest: f64 = allowed(&t, "SmsMaxSegments")
        .iter()
        .map(|s| s.parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    let other_timeouts: Vec<(String, f64)> = functions(&t)
        .into_iter()
        .filter(|(name, _)| name != "sender")
        .map(|(name, (_, f))| {
            let timeout = as_u64(&f["Properties"]["Timeout"])
                .or_else(|| as_u64(&t["Globals"]["Function"]["Timeout"]))
                .unwrap_or_else(|| panic!("{name}: a timeout"));
            (name, timeout as f64)
        })
        .collect();

    for rate in allowed(&t, RATE) {
        let rate_value: f64 = rate.parse().unwrap();
        let batch = mapping(&t, &rate, "BatchSize");
        let timeout = mapping(&t, &rate, "TimeoutSeconds");
        let visibility = mapping(&t, &rate, "VisibilityTimeoutSeconds");
        let lease = mapping(&t, &rate, "ClaimLeaseSeconds");
        let window = mapping(&t, &rate, "BatchingWindowSeconds");
        // The pacer's own share for one instance, at the slowest it can be configured.
        let pace = Pacer::new(rate_value, concurrency_total).rate();
        assert!(
            (pace - rate_value * SAFETY_MARGIN / f64::from(concurrency_total)).abs() < 1e-9,
            "rate {rate}: the pacer's share"
        );
        let slowest_message = largest / pace;
        let full_batch = batch * slowest_message;
        assert!(
            (1.0..=10.0).contains(&batch),
            "rate {rate}: SQS batch size {batch}"
        );
        assert!(
            timeout >= full_batch + margin,
            "rate {rate}: timeout {timeout} s < batch {batch} x {slowest_message:.1} s + margin {margin} s"
        );
        assert!(
            timeout <= 900.0,
            "rate {rate}: Lambda's timeout is at most 15 min"
        );
        assert!(
            visibility >= 6.0 * timeout,
            "rate {rate}: visibility {visibility} s < 6 x timeout {timeout} s"
        );
        assert!(
            lease > timeout && lease <= visibility,
            "rate {rate}: lease {lease} s must exceed the timeout {timeout} s and not the visibility"
        );
        for (name, other) in &other_timeouts {
            assert!(
                lease > *other,
                "rate {rate}: lease {lease} s vs {name}'s timeout"
            );
        }
        assert!(
            wait > lease,
            "rate {rate}: the takeover wait outlasts the lease"
        );
        if batch == 1.0 {
            assert_eq!(window, 0.0, "rate {rate}: no window for a batch of one");
        }
        assert!(
            window <= 300.0,
            "rate {rate}: SQS's largest window is 300 s"
        );
    }
}
