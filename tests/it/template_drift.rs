//! `template.yaml` must declare what the local stack creates and what the functions read:
//! the tables with their keys, indexes and TTL attributes (`stack::table_specs` of the test
//! support), the queues with their dead-letter queues and receive count
//! (`stack::create_queues`; the timings, which follow from
//! the rate, are `send_timings.rs`'s), the SNS topics,
//! and every environment variable of `Config` (`ENV_VARS`). No network, no moto: the
//! template is read as YAML, with CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`)
//! kept as tagged values.

use integration_tests::local_stack::{DELIVERY_TOPIC, INBOUND_TOPIC, LocalStack};
use integration_tests::stack::{MAX_RECEIVE_COUNT, QueueUrls, TableSpec, table_specs};
use integration_tests::template::{
    as_u64, function_env, functions, get_att, global_env, global_ref, of_type, ref_target,
    repo_root, resource, sub_string, template,
};
use serde_norway::Value;
use sms_shared::config::{ENV_VARS, TableNames};
use std::collections::{BTreeMap, BTreeSet};

/// The queue names `create_queues` gives (before the prefix): each has a `-dlq`.
const LOCAL_QUEUES: [&str; 2] = ["transactional", "notifications"];
/// Variables the template may set beyond `ENV_VARS` (read by the runtime, not by `Config`).
const RUNTIME_VARS: [&str; 1] = ["RUST_LOG"];
/// The secrets each function reads at cold start, as (variable, the template's secret, the
/// functions that get it): nobody else gets the variable or may read the secret.
const SECRET_VARS: [(&str, &str, &[&str]); 2] = [
    (
        "JWT_SIGNING_KEY_SECRET_ID",
        "AppJwtSecretArn",
        &["opt-in-api", "verify-api"],
    ),
    (
        "CODE_HMAC_KEY_SECRET_ID",
        "CodeHmacKeySecret",
        &["verify-api"],
    ),
];
/// Retention of the local dead-letter queues (14 days).
const DLQ_RETENTION_SECONDS: u64 = 1_209_600;

#[test]
fn template_declares_one_function_per_crate() {
    let t = template();
    let crates: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions"))
        .expect("functions/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let fns = functions(&t);
    let declared: BTreeSet<String> = fns.keys().cloned().collect();
    assert_eq!(declared, crates, "template functions vs functions/*");
    assert_eq!(
        declared,
        [
            "delivery-status",
            "inbound-sms",
            "opt-in-api",
            "sender",
            "verify-api"
        ]
        .map(String::from)
        .into(),
    );
    for (name, (id, f)) in &fns {
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name} ({id}) is built by cargo-lambda"
        );
    }
    let g = &t["Globals"]["Function"];
    assert_eq!(g["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(g["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(g["Tracing"].as_str(), Some("Active"));
    assert_eq!(
        g["Architectures"].as_sequence().map(|a| a.as_slice()),
        Some([Value::from("arm64")].as_slice())
    );
}

/// The table of the template with the keys of one `TableSpec`.
fn assert_table_matches(t: &Value, spec: &TableSpec) {
    let id = spec.name.as_str();
    let table = resource(t, id);
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"), "{id}");
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"), "{id}");

    let attrs: BTreeSet<(String, String)> = p["AttributeDefinitions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{id}: AttributeDefinitions"))
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap_or_default().to_owned(),
                a["AttributeType"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = spec
        .attributes
        .iter()
        .map(|(n, k)| ((*n).to_owned(), k.as_str().to_owned()))
        .collect();
    assert_eq!(attrs, want, "{id}: attribute definitions");

    assert_eq!(
        key_schema(&p["KeySchema"]),
        (
            spec.partition_key.to_owned(),
            spec.sort_key.map(str::to_owned)
        ),
        "{id}: key schema"
    );

    let indexes: BTreeMap<String, (String, Option<String>)> = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .map(|s| s.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|gsi| {
            let name = gsi["IndexName"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                gsi["Projection"]["ProjectionType"].as_str(),
                Some("ALL"),
                "{id}.{name}: the local stack projects all attributes"
            );
            (name, key_schema(&gsi["KeySchema"]))
        })
        .collect();
    let want: BTreeMap<String, (String, Option<String>)> = spec
        .indexes
        .iter()
        .map(|(n, pk, sk)| ((*n).to_owned(), ((*pk).to_owned(), sk.map(str::to_owned))))
        .collect();
    assert_eq!(indexes, want, "{id}: global secondary indexes");

    let ttl = &p["TimeToLiveSpecification"];
    match spec.ttl_attribute {
        Some(attr) => {
            assert_eq!(ttl["AttributeName"].as_str(), Some(attr), "{id}: TTL");
            assert_eq!(ttl["Enabled"].as_bool(), Some(true), "{id}: TTL on");
        }
        None => assert!(ttl.is_null(), "{id}: the local stack has no TTL here"),
    }
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true),
        "{id}: point-in-time recovery"
    );
    assert!(
        !p["DeletionProtectionEnabled"].is_null(),
        "{id}: deletion protection is set (parameterised)"
    );
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"), "{id}");
    assert_eq!(
        table["UpdateReplacePolicy"].as_str(),
        Some("Retain"),
        "{id}"
    );
}

/// `(hash key, range key)` of a KeySchema list.
fn key_schema(value: &Value) -> (String, Option<String>) {
    let mut hash = None;
    let mut range = None;
    for k in value.as_sequence().expect("KeySchema is a list") {
        let name = k["AttributeName"].as_str().map(str::to_owned);
        match k["KeyType"].as_str() {
            Some("HASH") => hash = name,
            Some("RANGE") => range = name,
            other => panic!("unknown KeyType {other:?}"),
        }
    }
    (hash.expect("a HASH key"), range)
}

#[test]
fn tables_match_the_local_stack() {
    let t = template();
    // Name each table after the resource the functions' variable points to, so the specs
    // are compared with the tables the functions really use.
    let names = TableNames {
        log: global_ref(&t, "LOG_TABLE").to_owned(),
        preferences: global_ref(&t, "PREFERENCES_TABLE").to_owned(),
        verification: global_ref(&t, "VERIFICATION_TABLE").to_owned(),
    };
    let specs = table_specs(&names);
    for spec in &specs {
        assert_table_matches(&t, spec);
    }
    let declared: BTreeSet<&str> = of_type(&t, "AWS::DynamoDB::Table")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let local: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(declared, local, "tables beyond the local stack's");
}

#[test]
fn queues_match_the_local_stack() {
    let t = template();
    let vars = [
        ("TRANSACTIONAL_QUEUE_URL", "TRANSACTIONAL_DLQ_URL"),
        ("NOTIFICATIONS_QUEUE_URL", "NOTIFICATIONS_DLQ_URL"),
    ];
    for (name, (queue_var, dlq_var)) in LOCAL_QUEUES.iter().zip(vars) {
        let queue_id = global_ref(&t, queue_var);
        let dlq_id = global_ref(&t, dlq_var);
        let queue = resource(&t, queue_id);
        let dlq = resource(&t, dlq_id);
        for (id, r) in [(queue_id, queue), (dlq_id, dlq)] {
            assert_eq!(r["Type"].as_str(), Some("AWS::SQS::Queue"), "{id}");
            assert!(
                r["Properties"]["FifoQueue"].is_null(),
                "{id}: the send queues are standard queues"
            );
        }
        let queue_name = sub_string(&queue["Properties"]["QueueName"])
            .unwrap_or_else(|| panic!("{queue_id}: QueueName is !Sub"));
        assert!(
            queue_name.ends_with(&format!("-{name}")),
            "{queue_id}: {queue_name} is not the local queue {name}"
        );
        let dlq_name = sub_string(&dlq["Properties"]["QueueName"])
            .unwrap_or_else(|| panic!("{dlq_id}: QueueName is !Sub"));
        assert!(
            dlq_name.ends_with(&format!("-{name}-dlq")),
            "{dlq_id}: {dlq_name} is not the local queue {name}-dlq"
        );
        // The deployed visibility timeout follows from the rate (tests/it/send_timings.rs); the
        // local stack keeps QUEUE_VISIBILITY_SECONDS.
        let redrive = &queue["Properties"]["RedrivePolicy"];
        assert_eq!(
            as_u64(&redrive["maxReceiveCount"]),
            Some(u64::from(MAX_RECEIVE_COUNT)),
            "{queue_id}: maxReceiveCount"
        );
        assert_eq!(
            get_att(&redrive["deadLetterTargetArn"]),
            Some((dlq_id.to_owned(), "Arn".to_owned())),
            "{queue_id}: redrives to {dlq_id}"
        );
        assert_eq!(
            as_u64(&dlq["Properties"]["MessageRetentionPeriod"]),
            Some(DLQ_RETENTION_SECONDS),
            "{dlq_id}: retention"
        );

        // The sender consumes it with partial batch failures and a maximum concurrency.
        let (_, (sender_id, _)) = functions(&t)
            .into_iter()
            .find(|(n, _)| n == "sender")
            .expect("a sender function");
        let mappings: Vec<&Value> = of_type(&t, "AWS::Lambda::EventSourceMapping")
            .into_iter()
            .map(|(_, m)| &m["Properties"])
            .filter(|p| get_att(&p["EventSourceArn"]).is_some_and(|(id, _)| id == queue_id))
            .collect();
        assert_eq!(mappings.len(), 1, "{queue_id}: one event source mapping");
        let m = mappings[0];
        assert_eq!(ref_target(&m["FunctionName"]), Some(sender_id));
        assert_eq!(
            m["FunctionResponseTypes"]
                .as_sequence()
                .map(|s| s.as_slice()),
            Some([Value::from("ReportBatchItemFailures")].as_slice()),
            "{queue_id}: the sender's batchItemFailures are honoured"
        );
        assert!(
            !m["ScalingConfig"]["MaximumConcurrency"].is_null(),
            "{queue_id}: maximum concurrency"
        );
    }
}

#[test]
fn topics_match_the_local_stack_and_feed_their_functions() {
    let t = template();
    let fns = functions(&t);
    for (topic, function) in [
        (DELIVERY_TOPIC, "delivery-status"),
        (INBOUND_TOPIC, "inbound-sms"),
    ] {
        let (topic_id, _) = of_type(&t, "AWS::SNS::Topic")
            .into_iter()
            .find(|(_, r)| {
                sub_string(&r["Properties"]["TopicName"])
                    .is_some_and(|n| n.ends_with(&format!("-{topic}")))
            })
            .unwrap_or_else(|| panic!("no topic named like the local {topic}"));

        // The function is subscribed, with an on-failure destination on an SQS queue.
        let (_, f) = fns[function];
        let subscribed = f["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{function} has events"))
            .values()
            .any(|e| {
                e["Type"].as_str() == Some("SNS")
                    && ref_target(&e["Properties"]["Topic"]) == Some(topic_id)
            });
        assert!(subscribed, "{function} is subscribed to {topic_id}");
        let on_failure = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
        assert_eq!(on_failure["Type"].as_str(), Some("SQS"), "{function}");
        let (dlq, _) = get_att(&on_failure["Destination"])
            .unwrap_or_else(|| panic!("{function}: on-failure destination"));
        assert_eq!(resource(&t, &dlq)["Type"].as_str(), Some("AWS::SQS::Queue"));
        let alarmed = of_type(&t, "AWS::CloudWatch::Alarm")
            .into_iter()
            .any(|(_, a)| {
                a["Properties"]["Dimensions"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|d| get_att(&d["Value"]).is_some_and(|(id, _)| id == dlq))
            });
        assert!(alarmed, "{dlq} has an alarm");

        // End User Messaging may publish, from this account only.
        let policy = of_type(&t, "AWS::SNS::TopicPolicy")
            .into_iter()
            .find(|(_, p)| {
                p["Properties"]["Topics"]
                    .as_sequence()
                    .is_some_and(|ts| ts.iter().any(|x| ref_target(x) == Some(topic_id)))
            })
            .unwrap_or_else(|| panic!("{topic_id} has a topic policy"))
            .1;
        let statements = policy["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .expect("statements");
        assert!(
            statements.iter().any(|s| {
                s["Principal"]["Service"].as_str() == Some("sms-voice.amazonaws.com")
                    && s["Action"].as_str() == Some("sns:Publish")
                    && !s["Condition"]["StringEquals"]["aws:SourceAccount"].is_null()
                    && !s["Condition"]["ArnLike"]["aws:SourceArn"].is_null()
            }),
            "{topic_id}: sms-voice.amazonaws.com may publish, scoped by source account and ARN"
        );
    }
}

#[test]
fn environment_is_what_the_config_reads() {
    let t = template();
    let known: BTreeSet<&str> = ENV_VARS.iter().copied().chain(RUNTIME_VARS).collect();
    let globals: BTreeMap<&str, &Value> = global_env(&t)
        .iter()
        .map(|(k, v)| (k.as_str().expect("variable names are strings"), v))
        .collect();

    // Every variable the local stack hands the functions is one the config reads and the
    // template sets.
    let stack = LocalStack {
        tables: TableNames {
            log: String::new(),
            preferences: String::new(),
            verification: String::new(),
        },
        queues: QueueUrls {
            transactional: String::new(),
            transactional_dlq: String::new(),
            notifications: String::new(),
            notifications_dlq: String::new(),
        },
        delivery_topic_arn: String::new(),
        inbound_topic_arn: String::new(),
        jwt_key_secret_arn: String::new(),
        code_hmac_key_secret_arn: String::new(),
    };
    for (var, _) in stack.env_pairs() {
        if ENV_VARS.contains(&var) && !SECRET_VARS.iter().any(|(v, _, _)| *v == var) {
            assert!(globals.contains_key(var), "the template does not set {var}");
        }
    }

    for (name, (id, f)) in functions(&t) {
        let env = function_env(&t, f);
        for var in env.keys() {
            assert!(
                known.contains(var),
                "{name} ({id}) sets {var}, which the configuration does not read"
            );
        }
        for var in ENV_VARS {
            if SECRET_VARS.iter().any(|(v, _, _)| v == var) {
                continue;
            }
            assert!(env.contains_key(var), "{name} ({id}) does not get {var}");
        }
        assert_eq!(
            env["SMS_SENDER"].as_str(),
            Some("eum"),
            "{name}: real sender"
        );
        for (var, secret, readers) in SECRET_VARS {
            let reads = readers.contains(&name.as_str());
            match env.get(var) {
                Some(v) => {
                    assert!(reads, "{name} gets {var}; only {readers:?} need it");
                    assert_eq!(
                        ref_target(v),
                        Some(secret),
                        "{name}: {var} is !Ref {secret}"
                    );
                }
                None => assert!(!reads, "{name} does not get {var}"),
            }
            assert_eq!(
                secret_readable(f, secret),
                reads,
                "{name}: secretsmanager:GetSecretValue on {secret} exactly when it needs it"
            );
        }
    }

    // The development identity header of earlier versions is gone for good.
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    for gone in ["DEV_AUTH_HEADER", "x-dev-user-id", "JwtAuthorizer"] {
        assert!(!text.contains(gone), "template.yaml mentions {gone}");
    }
    assert!(
        t["Parameters"]["AppJwtSecretArn"]["Default"].is_null(),
        "the app's JWT secret has no default"
    );
    assert_eq!(
        t["Resources"]["CodeHmacKeySecret"]["Properties"]["GenerateSecretString"]["PasswordLength"]
            .as_u64(),
        Some(64),
        "the code HMAC key is generated, 64 characters"
    );
}

/// Whether `function` may `secretsmanager:GetSecretValue` the secret `!Ref secret`, and
/// nothing but named secrets.
fn secret_readable(function: &Value, secret: &str) -> bool {
    let mut allowed = false;
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for s in policy["Statement"].as_sequence().into_iter().flatten() {
            if s["Action"].as_str() != Some("secretsmanager:GetSecretValue") {
                continue;
            }
            let resources: Vec<&Value> = match &s["Resource"] {
                Value::Sequence(seq) => seq.iter().collect(),
                one => vec![one],
            };
            assert!(
                resources.iter().all(|r| ref_target(r).is_some()),
                "GetSecretValue only on named secrets: {resources:?}"
            );
            allowed |= resources.iter().any(|r| ref_target(r) == Some(secret));
        }
    }
    allowed
}

#[test]
fn the_http_api_has_no_authorizer_and_cors_never_allows_any_origin() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    assert!(
        api["Auth"].is_null(),
        "the app's token is checked in code (§5)"
    );
    let cors = &api["CorsConfiguration"];
    assert_eq!(ref_target(&cors["AllowOrigins"]), Some("AllowedOrigins"));
    assert_eq!(cors["AllowCredentials"].as_bool(), Some(true));
    let headers: BTreeSet<&str> = cors["AllowHeaders"]
        .as_sequence()
        .expect("allowed headers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        headers,
        BTreeSet::from(["content-type", "x-csrftoken", "authorization"])
    );
    let origins = t["Parameters"]["AllowedOrigins"]["Default"]
        .as_str()
        .unwrap_or_default();
    assert!(!origins.contains('*'), "never *");
    // Every route lives under the base path.
    for (name, (_, f)) in functions(&t) {
        for (_, event) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("HttpApi") {
                let path = sub_string(&event["Properties"]["Path"]).unwrap_or_default();
                assert!(
                    path.starts_with("${ApiBasePath}/notifications/"),
                    "{name}: {path}"
                );
            }
        }
    }
}

#[test]
fn functions_send_only_from_the_configured_identity() {
    let t = template();
    for (name, (id, f)) in functions(&t) {
        for policy in f["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for s in policy["Statement"].as_sequence().into_iter().flatten() {
                let actions: Vec<&str> = match &s["Action"] {
                    Value::String(a) => vec![a.as_str()],
                    Value::Sequence(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                assert!(
                    !actions.iter().any(|a| a.contains('*')),
                    "{name} ({id}): wildcard action in {actions:?}"
                );
                if !actions.contains(&"sms-voice:SendTextMessage") {
                    continue;
                }
                let resources = s["Resource"].as_sequence().expect("a list of resources");
                assert!(
                    resources
                        .iter()
                        .any(|r| ref_target(r) == Some("OriginationIdentityArn")),
                    "{name}: sends from the configured origination identity"
                );
                assert!(
                    resources
                        .iter()
                        .any(|r| get_att(r).is_some_and(|(c, _)| c == "SmsConfigurationSet")),
                    "{name}: sends with the configuration set"
                );
                assert!(
                    !resources.iter().any(|r| r.as_str() == Some("*")),
                    "{name}: SendTextMessage on *"
                );
            }
        }
    }
}

/// The alarms an operator needs (DESIGN §10, issue 14): errors and throttles of every
/// function, API 5xx, the month's spend over a parameter, and the verified share of codes per
/// country, on the metrics verify-api emits; every alarm notifies the alarm topic.
#[test]
fn alarms_cover_functions_api_spend_and_verification_ratio_and_budget() {
    let t = template();
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let on = |namespace: &str, metric: &str, dimension: &str| -> Vec<&Value> {
        alarms
            .iter()
            .map(|(_, a)| &a["Properties"])
            .filter(|p| {
                p["Namespace"].as_str() == Some(namespace)
                    && p["MetricName"].as_str() == Some(metric)
            })
            .flat_map(|p| p["Dimensions"].as_sequence().into_iter().flatten())
            .filter(|d| d["Name"].as_str() == Some(dimension))
            .map(|d| &d["Value"])
            .collect()
    };
    for (name, (id, _)) in functions(&t) {
        for metric in ["Errors", "Throttles"] {
            assert!(
                on("AWS/Lambda", metric, "FunctionName")
                    .iter()
                    .any(|v| ref_target(v) == Some(id)),
                "{name}: no {metric} alarm"
            );
        }
    }
    assert!(
        on("AWS/ApiGateway", "5xx", "ApiId")
            .iter()
            .any(|v| ref_target(v) == Some("HttpApi")),
        "no API 5xx alarm"
    );
    let spend = alarms
        .iter()
        .find(|(_, a)| a["Properties"]["MetricName"].as_str() == Some("TextMessageMonthlySpend"))
        .expect("a monthly spend alarm");
    assert_eq!(
        ref_target(&spend.1["Properties"]["Threshold"]),
        Some("MonthlySpendAlarmUsd")
    );
    let text = std::fs::read_to_string(repo_root().join("functions/verify-api/src/lib.rs"))
        .expect("verify-api source");
    for country in ["US", "CA"] {
        let ratio = alarms
            .iter()
            .map(|(_, a)| &a["Properties"])
            .find(|p| {
                let metrics = p["Metrics"]
                    .as_sequence()
                    .map(|m| m.as_slice())
                    .unwrap_or_default();
                metrics.iter().any(|m| {
                    m["MetricStat"]["Metric"]["Dimensions"]
                        .as_sequence()
                        .is_some_and(|d| d.iter().any(|d| d["Value"].as_str() == Some(country)))
                })
            })
            .unwrap_or_else(|| panic!("no verified-code ratio alarm for {country}"));
        for m in ratio["Metrics"].as_sequence().unwrap() {
            if let Some(metric) = m["MetricStat"]["Metric"]["MetricName"].as_str() {
                assert!(
                    text.contains(&format!("\"{metric}\"")),
                    "verify-api emits {metric}"
                );
            }
        }
        assert_eq!(
            ref_target(&ratio["Threshold"]),
            Some("MinVerifiedCodeRatio")
        );
    }
    // The codes' own budget (§7): its spend, and codes refused once it is spent, both on
    // metrics verify-api really emits.
    for (metric, threshold) in [
        ("VerificationSpendUsd", Some("VerificationSpendAlarmUsd")),
        ("VerificationBudgetRefused", None),
    ] {
        let alarm = alarms
            .iter()
            .map(|(_, a)| &a["Properties"])
            .find(|p| {
                p["Namespace"].as_str() == Some("SmsNotifications")
                    && p["MetricName"].as_str() == Some(metric)
            })
            .unwrap_or_else(|| panic!("no alarm on {metric}"));
        assert!(
            text.contains(&format!("\"{metric}\"")),
            "verify-api emits {metric}"
        );
        if let Some(threshold) = threshold {
            assert_eq!(ref_target(&alarm["Threshold"]), Some(threshold));
        }
    }
    for (id, a) in &alarms {
        let actions = a["Properties"]["AlarmActions"].as_sequence();
        assert!(
            actions.is_some_and(|a| a.iter().any(|v| ref_target(v) == Some("AlarmTopic"))),
            "{id} notifies nobody"
        );
    }
}
