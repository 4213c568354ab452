//! IAM as AWS enforces it (DESIGN §10), for a local stack that enforces none.
//!
//! moto accepts every call, so a role that lacks a permission passes every test and fails in
//! AWS. Here each function's SDK clients get a [`Recorder`]: an interceptor that turns every
//! call into the authorization requests IAM evaluates for it ([`Access`]: one action on one
//! resource ARN), checks them against that function's role as `template.yaml` declares it
//! ([`Role`]), **refuses** the call when the role does not allow it (the SDK call fails, as
//! with AWS's `AccessDeniedException`, and nothing reaches the server), and records it. It
//! also refuses requests over the limits AWS enforces and moto does not ([`limits`]).
//!
//! How IAM evaluates a call (the service authorization reference):
//! * DynamoDB: the operation's action on the table ARN; `Query`/`Scan` on an index on the
//!   index ARN (`table/T/index/I`); `TransactWriteItems` needs, per item, the action of the
//!   matching single-item call (`PutItem`, `UpdateItem`, `DeleteItem`, `ConditionCheckItem`)
//!   on its table; `TransactGetItems` needs `GetItem` per table; `BatchGetItem` and
//!   `BatchWriteItem` need their own action on every table of the request.
//! * SQS: the action on the queue ARN; the `...Batch` calls need the single call's action.
//! * Secrets Manager: `GetSecretValue` on the secret ARN.
//! * End User Messaging (`sms-voice`): `SendTextMessage` on the origination identity, the
//!   configuration set and the opt-out list; `PutMessageFeedback` on the message
//!   (`message/<MessageId>`).
//!
//! Resources are named as in a deployment of the template whose physical names are the
//! logical ids ([`Deployed`]): the test's table `t42-7-x-log` is `table/LogTable`, because the
//! function reads it from `LOG_TABLE`, which the template sets to `!Ref LogTable`.
//!
//! Every recorded call is also appended to `<target>/<profile>/iam-calls/<test binary>.jsonl`,
//! so the IAM contract test (`tests/it/iam.rs`) can check what the whole suite called
//! ([`suite_calls`]).

use crate::template::{self, ACCOUNT, Deployed, PARTITION, REGION};
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// One authorization request: an action on a resource ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Access {
    pub action: String,
    pub resource: String,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)
    }
}

/// One SDK call of a function and what IAM checks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub function: String,
    /// e.g. `DynamoDB`, `SQS`.
    pub service: String,
    /// e.g. `TransactWriteItems`.
    pub operation: String,
    pub accesses: Vec<Access>,
    /// The accesses the role did not allow (the call was refused).
    #[serde(default)]
    pub denied: Vec<Access>,
    /// A service limit the request breaks (the call was refused, as AWS would refuse it).
    #[serde(default)]
    pub over_limit: Option<String>,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}.{}", self.function, self.service, self.operation)
    }
}

/// One grant of a role: an action pattern on a resource pattern, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The statement's `Sid`, or what added it (`SAM: ...`).
    pub statement: String,
    pub action: String,
    /// The resource ARN pattern, resolved.
    pub resource: String,
    /// The resource as written in the template (`!Sub "${LogTable.Arn}/index/*"`).
    pub written: String,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "statement `{}`: {} on {}",
            self.statement, self.action, self.written
        )
    }
}

/// A function's role as the template declares it: its `Policies` (inline statements and SAM
/// policy templates, expanded) and what SAM adds by itself (the on-failure destination's
/// `SQSSendMessagePolicy`). Only `Allow` statements without conditions are understood; any
/// other element makes [`Role::of`] panic rather than guess.
#[derive(Debug, Clone)]
pub struct Role {
    pub function: String,
    pub logical_id: String,
    pub grants: Vec<Grant>,
}

/// `*` and `?` wildcards, as IAM matches actions (case-insensitively) and resources.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    // Classic two-pointer glob with backtracking on the last `*`.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Grant {
    pub fn allows(&self, access: &Access) -> bool {
        wildcard_match(&self.action, &access.action, true)
            && wildcard_match(&self.resource, &access.resource, false)
    }
}

/// How a resource is written in the template, for messages.
pub fn written(value: &Value) -> String {
    if let Value::String(s) = value {
        return s.clone();
    }
    if let Some(id) = template::ref_target(value) {
        return format!("!Ref {id}");
    }
    if let Some((id, attr)) = template::get_att(value) {
        return format!("!GetAtt {id}.{attr}");
    }
    if let Some(s) = template::sub_string(value) {
        return format!("!Sub \"{s}\"");
    }
    serde_norway::to_string(value)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// SAM policy templates (`samtranslator/policy_templates_data/policy_templates.json`) this
/// checker can expand: name, parameter, actions, resource ARN patterns (`{}` is the parameter).
const SAM_POLICY_TEMPLATES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "DynamoDBCrudPolicy",
        "TableName",
        &[
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
        &[
            "arn:{p}:dynamodb:{r}:{a}:table/{}",
            "arn:{p}:dynamodb:{r}:{a}:table/{}/index/*",
        ],
    ),
    (
        "DynamoDBReadPolicy",
        "TableName",
        &[
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ],
        &[
            "arn:{p}:dynamodb:{r}:{a}:table/{}",
            "arn:{p}:dynamodb:{r}:{a}:table/{}/index/*",
        ],
    ),
    (
        "DynamoDBWritePolicy",
        "TableName",
        &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        ],
        &[
            "arn:{p}:dynamodb:{r}:{a}:table/{}",
            "arn:{p}:dynamodb:{r}:{a}:table/{}/index/*",
        ],
    ),
    (
        "SQSPollerPolicy",
        "QueueName",
        &[
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        &["arn:{p}:sqs:{r}:{a}:{}"],
    ),
    (
        "SQSSendMessagePolicy",
        "QueueName",
        &["sqs:SendMessage*"],
        &["arn:{p}:sqs:{r}:{a}:{}"],
    ),
    (
        "SNSPublishMessagePolicy",
        "TopicName",
        &["sns:Publish"],
        &["arn:{p}:sns:{r}:{a}:{}"],
    ),
    (
        "AWSSecretsManagerGetSecretValuePolicy",
        "SecretArn",
        &["secretsmanager:GetSecretValue"],
        &["{}"],
    ),
];

fn sam_grants(statement: &str, name: &str, parameter: &str, written: &str) -> Vec<Grant> {
    let (_, _, actions, resources) = SAM_POLICY_TEMPLATES
        .iter()
        .find(|(n, ..)| *n == name)
        .unwrap_or_else(|| {
            panic!("tests/support/iam.rs cannot expand the SAM policy template {name}: add it")
        });
    let mut grants = Vec::new();
    for action in *actions {
        for pattern in *resources {
            let resource = pattern
                .replace("{p}", PARTITION)
                .replace("{r}", REGION)
                .replace("{a}", ACCOUNT)
                .replace("{}", parameter);
            let suffix = pattern.rsplit("{}").next().unwrap_or_default();
            grants.push(Grant {
                statement: statement.to_owned(),
                action: (*action).to_owned(),
                written: format!("{written}{suffix} ({name})"),
                resource,
            });
        }
    }
    grants
}

impl Role {
    /// The role of the function built from `functions/<function>` in `t`.
    pub fn of(t: &Value, function: &str) -> Role {
        let functions = template::functions(t);
        let (logical_id, f) = functions
            .get(function)
            .unwrap_or_else(|| panic!("template.yaml has no function functions/{function}"));
        let deployed = Deployed::new(t);
        let resolve = |v: &Value| {
            deployed
                .resolve(v)
                .unwrap_or_else(|| panic!("{logical_id}: cannot resolve {}", written(v)))
        };
        let mut grants = Vec::new();
        let policies = &f["Properties"]["Policies"];
        for policy in template::one_or_many(policies) {
            if matches!(policy, Value::String(_)) {
                panic!(
                    "{logical_id}: managed policy {} cannot be checked; write its statements",
                    written(policy)
                );
            }
            if let Some(statements) = policy.get("Statement") {
                for (i, s) in template::one_or_many(statements).into_iter().enumerate() {
                    let sid = s["Sid"]
                        .as_str()
                        .map_or_else(|| format!("#{}", i + 1), str::to_owned);
                    for element in ["Condition", "NotAction", "NotResource", "Principal"] {
                        assert!(
                            s.get(element).is_none(),
                            "{logical_id} statement {sid}: {element} is not understood by the IAM check"
                        );
                    }
                    assert_eq!(
                        s["Effect"].as_str(),
                        Some("Allow"),
                        "{logical_id} statement {sid}: only Allow is understood by the IAM check"
                    );
                    for action in template::one_or_many(&s["Action"]) {
                        for r in template::one_or_many(&s["Resource"]) {
                            grants.push(Grant {
                                statement: sid.clone(),
                                action: action
                                    .as_str()
                                    .unwrap_or_else(|| panic!("{logical_id} {sid}: action"))
                                    .to_owned(),
                                resource: resolve(r),
                                written: written(r),
                            });
                        }
                    }
                }
                continue;
            }
            let map = policy
                .as_mapping()
                .unwrap_or_else(|| panic!("{logical_id}: policy {}", written(policy)));
            for (name, args) in map {
                let name = name.as_str().expect("policy template names are strings");
                let (_, param, ..) = SAM_POLICY_TEMPLATES
                    .iter()
                    .find(|(n, ..)| *n == name)
                    .unwrap_or_else(|| {
                        panic!("tests/support/iam.rs cannot expand the SAM policy template {name}")
                    });
                let value = &args[*param];
                grants.extend(sam_grants(
                    &format!("SAM {name}"),
                    name,
                    &resolve(value),
                    &written(value),
                ));
            }
        }
        // SAM gives the role the right to send to an SQS on-failure destination (Lambda sends
        // the failed event with the function's role).
        let on_failure = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
        if on_failure["Type"].as_str() == Some("SQS") {
            let arn = resolve(&on_failure["Destination"]);
            let queue = arn.rsplit(':').next().unwrap_or_default().to_owned();
            grants.extend(sam_grants(
                "SAM: EventInvokeConfig OnFailure (SQSSendMessagePolicy)",
                "SQSSendMessagePolicy",
                &queue,
                &written(&on_failure["Destination"]),
            ));
        }
        Role {
            function: function.to_owned(),
            logical_id: (*logical_id).to_owned(),
            grants,
        }
    }

    /// The grants that allow `access`.
    pub fn allowing(&self, access: &Access) -> Vec<&Grant> {
        self.grants.iter().filter(|g| g.allows(access)).collect()
    }

    pub fn allows(&self, access: &Access) -> bool {
        self.grants.iter().any(|g| g.allows(access))
    }

    /// The role with one statement removed.
    pub fn without_statement(&self, statement: &str) -> Role {
        let mut role = self.clone();
        role.grants.retain(|g| g.statement != statement);
        role
    }

    /// Statement names, in order.
    pub fn statements(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for g in &self.grants {
            if !seen.contains(&g.statement) {
                seen.push(g.statement.clone());
            }
        }
        seen
    }

    /// A one-line summary of the statements, for failure messages.
    pub fn summary(&self) -> String {
        self.statements()
            .iter()
            .map(|s| {
                let actions: BTreeSet<&str> = self
                    .grants
                    .iter()
                    .filter(|g| &g.statement == s)
                    .map(|g| g.action.as_str())
                    .collect();
                let resources: BTreeSet<&str> = self
                    .grants
                    .iter()
                    .filter(|g| &g.statement == s)
                    .map(|g| g.written.as_str())
                    .collect();
                format!("`{s}` {actions:?} on {resources:?}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A role's problem with a set of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A recorded call needs an access no statement allows.
    Denied { call: String, access: Access },
    /// A grant that no recorded access needs (none uses it, or another grant allows all
    /// those that do).
    Unneeded { grant: Grant, used: bool },
}

/// What is wrong with `role` for `calls`: accesses it denies, and grants no access needs
/// (except those `excused` says are needed by someone other than the code).
pub fn findings(role: &Role, calls: &[Call], excused: impl Fn(&Grant) -> bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let accesses: BTreeSet<(&Access, String)> = calls
        .iter()
        .filter(|c| c.function == role.function)
        .flat_map(|c| c.accesses.iter().map(move |a| (a, c.to_string())))
        .collect();
    let mut reported = BTreeSet::new();
    for (access, call) in &accesses {
        if !role.allows(access) && reported.insert(*access) {
            out.push(Finding::Denied {
                call: call.clone(),
                access: (*access).clone(),
            });
        }
    }
    for grant in &role.grants {
        if excused(grant) {
            continue;
        }
        let using: Vec<&Access> = accesses
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| grant.allows(a))
            .collect();
        let needed = using.iter().any(|a| role.allowing(a).len() == 1);
        if !needed {
            out.push(Finding::Unneeded {
                grant: grant.clone(),
                used: !using.is_empty(),
            });
        }
    }
    out
}

/// The findings as the failure message: function, call, and the missing or unused statement.
pub fn report(role: &Role, findings: &[Finding]) -> String {
    let mut lines = Vec::new();
    for f in findings {
        lines.push(match f {
            Finding::Denied { call, access } => format!(
                "{}: {call} needs {access}, which no statement of {} allows",
                role.function, role.logical_id
            ),
            Finding::Unneeded { grant, used: false } => format!(
                "{}: {} of {} is not used by any recorded call",
                role.function, grant, role.logical_id
            ),
            Finding::Unneeded { grant, used: true } => format!(
                "{}: {} of {} only allows what other statements allow too",
                role.function, grant, role.logical_id
            ),
        });
    }
    if !lines.is_empty() {
        lines.push(format!(
            "{} ({}) statements: {}",
            role.function,
            role.logical_id,
            role.summary()
        ));
    }
    lines.join("\n")
}

/// Test values of the functions' variables mapped to what the deployed template gives them.
#[derive(Debug, Clone, Default)]
struct Names {
    /// test value -> deployed value
    values: HashMap<String, String>,
    opt_out_list: String,
}

impl Names {
    fn new(t: &Value, function: &str, test_vars: &HashMap<String, String>) -> Names {
        let functions = template::functions(t);
        let (_, f) = functions
            .get(function)
            .unwrap_or_else(|| panic!("template.yaml has no function functions/{function}"));
        let deployed = Deployed::new(t);
        let mut values = HashMap::new();
        for (var, value) in template::function_env(t, f) {
            let (Some(test), Some(real)) = (test_vars.get(var), deployed.resolve(value)) else {
                continue;
            };
            if !test.is_empty() && !real.is_empty() {
                values.insert(test.clone(), real);
            }
        }
        let opt_out_list = deployed
            .reference("OptOutListName")
            .unwrap_or_else(|| "Default".into());
        Names {
            values,
            opt_out_list,
        }
    }

    /// The deployed value of a test value, or a marker that names it as unknown.
    fn deployed(&self, test_value: &str) -> String {
        self.values
            .get(test_value)
            .cloned()
            .unwrap_or_else(|| format!("<not from template.yaml: {test_value}>"))
    }

    fn table(&self, name: &str) -> String {
        let name = name.rsplit("table/").next().unwrap_or(name);
        format!(
            "arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{}",
            self.deployed(name)
        )
    }

    fn index(&self, table: &str, index: &str) -> String {
        format!("{}/index/{index}", self.table(table))
    }

    fn queue(&self, url: &str) -> String {
        let deployed = self.deployed(url);
        let name = deployed.rsplit('/').next().unwrap_or_default();
        format!("arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}")
    }

    fn secret(&self, id: &str) -> String {
        self.deployed(id)
    }

    fn sms(&self, kind: &str, name: &str) -> String {
        format!("arn:{PARTITION}:sms-voice:{REGION}:{ACCOUNT}:{kind}/{name}")
    }
}

fn access(action: &str, resource: String) -> Access {
    Access {
        action: action.to_owned(),
        resource,
    }
}

/// `(service, operation, accesses)` of an SDK input, or `None` for an input this recorder
/// does not know (it then refuses the call: teach it the operation).
fn accesses_of(
    names: &Names,
    context: &BeforeSerializationInterceptorContextRef<'_>,
) -> Option<(&'static str, &'static str, Vec<Access>)> {
    use aws_sdk_dynamodb::operation as ddb;
    let input = context.input();
    macro_rules! one {
        ($ty:ty, $service:literal, $op:literal, $action:literal, |$i:ident| $resource:expr) => {
            if let Some($i) = input.downcast_ref::<$ty>() {
                return Some(($service, $op, vec![access($action, $resource)]));
            }
        };
    }
    let table = |t: Option<&str>| names.table(t.unwrap_or_default());
    let on_index = |t: Option<&str>, i: Option<&str>| match i {
        Some(i) => names.index(t.unwrap_or_default(), i),
        None => table(t),
    };
    one!(
        ddb::get_item::GetItemInput,
        "DynamoDB",
        "GetItem",
        "dynamodb:GetItem",
        |i| table(i.table_name())
    );
    one!(
        ddb::put_item::PutItemInput,
        "DynamoDB",
        "PutItem",
        "dynamodb:PutItem",
        |i| table(i.table_name())
    );
    one!(
        ddb::update_item::UpdateItemInput,
        "DynamoDB",
        "UpdateItem",
        "dynamodb:UpdateItem",
        |i| table(i.table_name())
    );
    one!(
        ddb::delete_item::DeleteItemInput,
        "DynamoDB",
        "DeleteItem",
        "dynamodb:DeleteItem",
        |i| table(i.table_name())
    );
    one!(
        ddb::describe_table::DescribeTableInput,
        "DynamoDB",
        "DescribeTable",
        "dynamodb:DescribeTable",
        |i| table(i.table_name())
    );
    one!(
        ddb::query::QueryInput,
        "DynamoDB",
        "Query",
        "dynamodb:Query",
        |i| on_index(i.table_name(), i.index_name())
    );
    one!(
        ddb::scan::ScanInput,
        "DynamoDB",
        "Scan",
        "dynamodb:Scan",
        |i| on_index(i.table_name(), i.index_name())
    );
    if let Some(i) = input.downcast_ref::<ddb::batch_get_item::BatchGetItemInput>() {
        let tables = i.request_items().into_iter().flat_map(|m| m.keys());
        let accesses = tables.map(|t| access("dynamodb:BatchGetItem", names.table(t)));
        return Some(("DynamoDB", "BatchGetItem", accesses.collect()));
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_write_item::BatchWriteItemInput>() {
        let tables = i.request_items().into_iter().flat_map(|m| m.keys());
        let accesses = tables.map(|t| access("dynamodb:BatchWriteItem", names.table(t)));
        return Some(("DynamoDB", "BatchWriteItem", accesses.collect()));
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_write_items::TransactWriteItemsInput>() {
        let mut accesses = Vec::new();
        for item in i.transact_items() {
            let (action, t) = if let Some(x) = item.put() {
                ("dynamodb:PutItem", x.table_name())
            } else if let Some(x) = item.update() {
                ("dynamodb:UpdateItem", x.table_name())
            } else if let Some(x) = item.delete() {
                ("dynamodb:DeleteItem", x.table_name())
            } else if let Some(x) = item.condition_check() {
                ("dynamodb:ConditionCheckItem", x.table_name())
            } else {
                continue;
            };
            accesses.push(access(action, names.table(t)));
        }
        return Some(("DynamoDB", "TransactWriteItems", accesses));
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_get_items::TransactGetItemsInput>() {
        let accesses = i
            .transact_items()
            .iter()
            .filter_map(|item| item.get())
            .map(|g| access("dynamodb:GetItem", names.table(g.table_name())));
        return Some(("DynamoDB", "TransactGetItems", accesses.collect()));
    }

    use aws_sdk_sqs::operation as sqs;
    let queue = |url: Option<&str>| names.queue(url.unwrap_or_default());
    one!(
        sqs::send_message::SendMessageInput,
        "SQS",
        "SendMessage",
        "sqs:SendMessage",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::send_message_batch::SendMessageBatchInput,
        "SQS",
        "SendMessageBatch",
        "sqs:SendMessage",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::change_message_visibility::ChangeMessageVisibilityInput,
        "SQS",
        "ChangeMessageVisibility",
        "sqs:ChangeMessageVisibility",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::change_message_visibility_batch::ChangeMessageVisibilityBatchInput,
        "SQS",
        "ChangeMessageVisibilityBatch",
        "sqs:ChangeMessageVisibility",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::delete_message::DeleteMessageInput,
        "SQS",
        "DeleteMessage",
        "sqs:DeleteMessage",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::delete_message_batch::DeleteMessageBatchInput,
        "SQS",
        "DeleteMessageBatch",
        "sqs:DeleteMessage",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::receive_message::ReceiveMessageInput,
        "SQS",
        "ReceiveMessage",
        "sqs:ReceiveMessage",
        |i| queue(i.queue_url())
    );
    one!(
        sqs::get_queue_attributes::GetQueueAttributesInput,
        "SQS",
        "GetQueueAttributes",
        "sqs:GetQueueAttributes",
        |i| queue(i.queue_url())
    );

    use aws_sdk_secretsmanager::operation as sm;
    one!(
        sm::get_secret_value::GetSecretValueInput,
        "Secrets Manager",
        "GetSecretValue",
        "secretsmanager:GetSecretValue",
        |i| names.secret(i.secret_id().unwrap_or_default())
    );

    use aws_sdk_pinpointsmsvoicev2::operation as eum;
    if let Some(i) = input.downcast_ref::<eum::send_text_message::SendTextMessageInput>() {
        let mut accesses = Vec::new();
        let mut on =
            |resource: String| accesses.push(access("sms-voice:SendTextMessage", resource));
        if let Some(identity) = i.origination_identity() {
            // An ARN as configured, or a phone number / pool id / sender id by name.
            let deployed = names.deployed(identity);
            on(if deployed.starts_with("arn:") {
                deployed
            } else {
                names.sms("phone-number", &deployed)
            });
        }
        if let Some(set) = i.configuration_set_name() {
            let deployed = names.deployed(set);
            on(if deployed.starts_with("arn:") {
                deployed
            } else {
                names.sms("configuration-set", &deployed)
            });
        }
        // Every send is checked against the identity's opt-out list.
        on(names.sms("opt-out-list", &names.opt_out_list));
        return Some(("Pinpoint SMS Voice V2", "SendTextMessage", accesses));
    }
    one!(
        eum::put_message_feedback::PutMessageFeedbackInput,
        "Pinpoint SMS Voice V2",
        "PutMessageFeedback",
        "sms-voice:PutMessageFeedback",
        |i| names.sms("message", i.message_id().unwrap_or_default())
    );
    None
}

/// Limits AWS enforces and the local servers do not (moto takes a batch of 26 writes or 101
/// reads, and any item size).
pub mod limits {
    /// Keys of one `BatchGetItem`, over all its tables.
    pub const BATCH_GET_KEYS: usize = 100;
    /// Requests of one `BatchWriteItem`.
    pub const BATCH_WRITE_ITEMS: usize = 25;
    /// Items of one `TransactWriteItems` or `TransactGetItems`.
    pub const TRANSACTION_ITEMS: usize = 100;
    /// Size of one DynamoDB item (names and values, UTF-8).
    pub const ITEM_BYTES: usize = 400 * 1024;
    /// Size of one `TransactWriteItems`, all its items together.
    pub const TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
    /// Size of one SQS message: body and message attributes together.
    pub const SQS_MESSAGE_BYTES: usize = 256 * 1024;
    /// Entries of one SQS `...Batch` call.
    pub const SQS_BATCH_ENTRIES: usize = 10;
    /// Characters of one `SendTextMessage` body.
    pub const SMS_BODY_CHARS: usize = 1600;
}

/// DynamoDB's size of an attribute value (the sizes it documents; numbers approximated by
/// their digits).
pub fn value_bytes(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match v {
        V::S(s) | V::N(s) => s.len(),
        V::B(b) => b.as_ref().len(),
        V::Ss(l) | V::Ns(l) => l.iter().map(String::len).sum(),
        V::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        V::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_bytes(v) + 1)
                .sum::<usize>()
        }
        V::L(l) => 3 + l.iter().map(|v| value_bytes(v) + 1).sum::<usize>(),
        _ => 1,
    }
}

/// DynamoDB's size of an item.
pub fn item_bytes(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn sqs_attributes_bytes(
    attributes: Option<&HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>>,
) -> usize {
    attributes
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            k.len()
                + v.data_type().len()
                + v.string_value().map_or(0, str::len)
                + v.binary_value().map_or(0, |b| b.as_ref().len())
        })
        .sum()
}

/// What one item of a transaction weighs: its key or item, and its expressions' values.
fn transaction_item_bytes(item: &aws_sdk_dynamodb::types::TransactWriteItem) -> usize {
    let values = |v: Option<&HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>| {
        v.map_or(0, item_bytes)
    };
    if let Some(p) = item.put() {
        item_bytes(p.item()) + values(p.expression_attribute_values())
    } else if let Some(u) = item.update() {
        item_bytes(u.key()) + u.update_expression().len() + values(u.expression_attribute_values())
    } else if let Some(d) = item.delete() {
        item_bytes(d.key()) + values(d.expression_attribute_values())
    } else if let Some(c) = item.condition_check() {
        item_bytes(c.key()) + values(c.expression_attribute_values())
    } else {
        0
    }
}

/// Attribute names that are part of a table's primary key in `template.yaml` (a `Put` names
/// its item whole: these attributes of it are its key).
fn key_attributes() -> &'static BTreeSet<String> {
    static KEYS: OnceLock<BTreeSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let t = template::shared_template();
        template::resources(t)
            .values()
            .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"))
            .filter_map(|r| r.get("Properties")?.get("KeySchema")?.as_sequence())
            .flatten()
            .filter_map(|k| k.get("AttributeName")?.as_str().map(str::to_owned))
            .collect()
    })
}

/// DynamoDB refuses a transaction with two operations on one item ("Transaction request
/// cannot include multiple operations on one item"); moto takes it.
fn one_item_twice(items: &[aws_sdk_dynamodb::types::TransactWriteItem]) -> Option<String> {
    let keys = key_attributes();
    let mut seen = BTreeSet::new();
    for item in items {
        let (table, key) = if let Some(p) = item.put() {
            let key: BTreeSet<String> = p
                .item()
                .iter()
                .filter(|(name, _)| keys.contains(*name))
                .map(|(name, value)| format!("{name}={value:?}"))
                .collect();
            (p.table_name(), key)
        } else if let Some(u) = item.update() {
            let key = u.key().iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            (u.table_name(), key)
        } else if let Some(d) = item.delete() {
            let key = d.key().iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            (d.table_name(), key)
        } else if let Some(c) = item.condition_check() {
            let key = c.key().iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            (c.table_name(), key)
        } else {
            continue;
        };
        if !seen.insert((table.to_owned(), key.clone())) {
            return Some(format!(
                "two operations on one item in one TransactWriteItems ({table} {key:?})"
            ));
        }
    }
    None
}

/// The limit a request breaks, as AWS would say it, or `None`.
fn over_limit(context: &BeforeSerializationInterceptorContextRef<'_>) -> Option<String> {
    use aws_sdk_dynamodb::operation as ddb;
    use aws_sdk_sqs::operation as sqs;
    let input = context.input();
    let too_many = |what: &str, n: usize, max: usize| {
        (n > max).then(|| format!("{what}: {n} in one request, at most {max}"))
    };
    let too_big = |what: &str, n: usize, max: usize| {
        (n > max).then(|| format!("{what} of {n} bytes, at most {max}"))
    };
    if let Some(i) = input.downcast_ref::<ddb::batch_get_item::BatchGetItemInput>() {
        let keys = i
            .request_items()
            .into_iter()
            .flatten()
            .map(|(_, k)| k.keys().len());
        return too_many("BatchGetItem keys", keys.sum(), limits::BATCH_GET_KEYS);
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_write_item::BatchWriteItemInput>() {
        let n = i
            .request_items()
            .into_iter()
            .flatten()
            .map(|(_, r)| r.len());
        return too_many(
            "BatchWriteItem requests",
            n.sum(),
            limits::BATCH_WRITE_ITEMS,
        );
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_write_items::TransactWriteItemsInput>() {
        let items = i.transact_items();
        let largest = items
            .iter()
            .filter_map(|t| t.put())
            .map(|p| item_bytes(p.item()))
            .max()
            .unwrap_or(0);
        return too_many(
            "TransactWriteItems items",
            items.len(),
            limits::TRANSACTION_ITEMS,
        )
        .or_else(|| too_big("an item", largest, limits::ITEM_BYTES))
        .or_else(|| {
            too_big(
                "a transaction",
                items.iter().map(transaction_item_bytes).sum(),
                limits::TRANSACTION_BYTES,
            )
        })
        .or_else(|| one_item_twice(items));
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_get_items::TransactGetItemsInput>() {
        let n = i.transact_items().len();
        return too_many("TransactGetItems items", n, limits::TRANSACTION_ITEMS);
    }
    if let Some(i) = input.downcast_ref::<ddb::put_item::PutItemInput>() {
        let size = i.item().map_or(0, item_bytes);
        return too_big("an item", size, limits::ITEM_BYTES);
    }
    if let Some(i) = input.downcast_ref::<sqs::send_message::SendMessageInput>() {
        let size =
            i.message_body().map_or(0, str::len) + sqs_attributes_bytes(i.message_attributes());
        return too_big(
            "a message (body and attributes)",
            size,
            limits::SQS_MESSAGE_BYTES,
        );
    }
    if let Some(i) = input.downcast_ref::<sqs::send_message_batch::SendMessageBatchInput>() {
        let entries = i.entries();
        let size: usize = entries
            .iter()
            .map(|e| e.message_body().len() + sqs_attributes_bytes(e.message_attributes()))
            .sum();
        return too_many(
            "SendMessageBatch entries",
            entries.len(),
            limits::SQS_BATCH_ENTRIES,
        )
        .or_else(|| too_big("a message batch", size, limits::SQS_MESSAGE_BYTES));
    }
    if let Some(i) = input.downcast_ref::<sqs::delete_message_batch::DeleteMessageBatchInput>() {
        return too_many(
            "DeleteMessageBatch entries",
            i.entries().len(),
            limits::SQS_BATCH_ENTRIES,
        );
    }
    use aws_sdk_pinpointsmsvoicev2::operation as eum;
    if let Some(i) = input.downcast_ref::<eum::send_text_message::SendTextMessageInput>() {
        let chars = i.message_body().map_or(0, |b| b.chars().count());
        return too_many(
            "SendTextMessage body characters",
            chars,
            limits::SMS_BODY_CHARS,
        );
    }
    None
}

/// The calls of one function, checked against its role as they happen.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    function: String,
    role: Role,
    names: Names,
    calls: Mutex<Vec<Call>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recorder({})", self.inner.function)
    }
}

impl Recorder {
    /// A recorder for `function` (the directory name under `functions/`) whose clients run
    /// with the test's variables `test_vars` (table names, queue URLs, secret ids, ...).
    pub fn new(function: &str, test_vars: &HashMap<String, String>) -> Recorder {
        Self::with_template(template::shared_template(), function, test_vars)
    }

    /// Like [`Recorder::new`] against another template (a test of the checker itself).
    pub fn with_template(
        t: &Value,
        function: &str,
        test_vars: &HashMap<String, String>,
    ) -> Recorder {
        Recorder {
            inner: Arc::new(Inner {
                function: function.to_owned(),
                role: Role::of(t, function),
                names: Names::new(t, function, test_vars),
                calls: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn function(&self) -> &str {
        &self.inner.function
    }

    pub fn role(&self) -> &Role {
        &self.inner.role
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The calls the role refused.
    pub fn denied(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| !c.denied.is_empty())
            .collect()
    }

    /// The calls refused for breaking a service limit.
    pub fn over_limit(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.over_limit.is_some())
            .collect()
    }

    fn interceptor(&self) -> RecordCalls {
        RecordCalls(self.clone())
    }

    /// `client` with this recorder added (its other interceptors stay).
    pub fn dynamodb(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    pub fn sqs(&self, client: &aws_sdk_sqs::Client) -> aws_sdk_sqs::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    pub fn secrets(
        &self,
        client: &aws_sdk_secretsmanager::Client,
    ) -> aws_sdk_secretsmanager::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    pub fn sms(
        &self,
        client: &aws_sdk_pinpointsmsvoicev2::Client,
    ) -> aws_sdk_pinpointsmsvoicev2::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.interceptor())
            .build();
        aws_sdk_pinpointsmsvoicev2::Client::from_conf(config)
    }

    /// Evaluates and records one call; the error refuses it.
    fn check(&self, context: &BeforeSerializationInterceptorContextRef<'_>) -> Result<(), String> {
        let inner = &self.inner;
        let Some((service, operation, accesses)) = accesses_of(&inner.names, context) else {
            return Err(format!(
                "IAM check ({}): tests/support/iam.rs does not know how IAM evaluates this \
                 operation; add it to accesses_of",
                inner.function
            ));
        };
        let denied: Vec<Access> = accesses
            .iter()
            .filter(|a| !inner.role.allows(a))
            .cloned()
            .collect();
        let call = Call {
            function: inner.function.clone(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            accesses,
            denied,
            over_limit: over_limit(context),
        };
        append_to_suite_log(&call);
        let over = call.over_limit.as_ref().map(|limit| {
            format!("ValidationException (a limit AWS enforces): {call} sends {limit}")
        });
        let refused = over.or_else(|| {
            (!call.denied.is_empty()).then(|| {
                format!(
                    "AccessDenied (IAM as template.yaml grants it): {call} needs {}, which no \
                 statement of {} allows",
                    call.denied
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    inner.role.logical_id
                )
            })
        });
        inner
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
        refused.map_or(Ok(()), Err)
    }
}

/// The interceptor: runs once per operation (not per retry), before the request is built.
#[derive(Debug)]
struct RecordCalls(Recorder);

impl Intercept for RecordCalls {
    fn name(&self) -> &'static str {
        "RecordCalls"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.check(context).map_err(Into::into)
    }
}

/// One line of a suite recording: a call, and the build of the binary that made it.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Modification time of the test binary (ns since the epoch) when it recorded the call.
    built: u128,
    #[serde(flatten)]
    call: Call,
}

fn modified_ns(path: &std::path::Path) -> Option<u128> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos(),
    )
}

/// `<target>/<profile>/iam-calls`, next to the `deps/` directory of the test binaries.
pub fn suite_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("iam-calls"))
}

/// The suite log of this process: `<suite_dir>/<binary>.jsonl`. On the first call of the
/// process it keeps only the lines the current build of the binary recorded (earlier runs of
/// the same build, e.g. a filtered run), so it holds every distinct call the current build has
/// made; a line already there is not written again. All the integration tests are one binary
/// (`tests/it`), so the IAM contract reads this same file while the other modules append to it.
fn append_to_suite_log(call: &Call) {
    struct Log {
        file: std::fs::File,
        built: u128,
        written: std::collections::HashSet<String>,
    }
    static LOG: OnceLock<Mutex<Option<Log>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let open = || {
            let exe = std::env::current_exe().ok()?;
            let dir = suite_dir()?;
            std::fs::create_dir_all(&dir).ok()?;
            let name = format!("{}.jsonl", exe.file_name()?.to_string_lossy());
            let path = dir.join(name);
            let built = modified_ns(&exe)?;
            let mut written = std::collections::HashSet::new();
            let mut kept = String::new();
            for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                let fresh = serde_json::from_str::<Line>(line).is_ok_and(|l| l.built == built);
                if fresh && written.insert(line.to_owned()) {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            let mut file = std::fs::File::create(&path).ok()?;
            file.write_all(kept.as_bytes()).ok()?;
            Some(Log {
                file,
                built,
                written,
            })
        };
        Mutex::new(open())
    });
    let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(log) = guard.as_mut() {
        let line = Line {
            built: log.built,
            call: call.clone(),
        };
        if let Ok(text) = serde_json::to_string(&line)
            && log.written.insert(text.clone())
        {
            // Best effort: the recording is an inventory, the check happened already.
            // One write per line, so a reader never sees half of one it can parse.
            let _ = log.file.write_all(format!("{text}\n").as_bytes());
        }
    }
}

/// The calls the test binaries recorded (this one included: the other modules of `tests/it`
/// and earlier runs of the same build), as long as each binary is still the build that
/// recorded them (a rebuilt binary's old recordings are dropped until it runs again).
/// Also returns the binaries that were read.
pub fn suite_calls() -> (Vec<Call>, Vec<String>) {
    let mut calls = Vec::new();
    let mut binaries = Vec::new();
    let (Some(dir), Ok(me)) = (suite_dir(), std::env::current_exe()) else {
        return (calls, binaries);
    };
    let Some(deps) = me.parent() else {
        return (calls, binaries);
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (calls, binaries);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(binary) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        let Some(built) = modified_ns(&deps.join(binary)) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut fresh = false;
        for line in text.lines() {
            if let Ok(line) = serde_json::from_str::<Line>(line)
                && line.built == built
            {
                fresh = true;
                calls.push(line.call);
            }
        }
        if fresh {
            binaries.push(binary.to_owned());
        }
    }
    binaries.sort();
    (calls, binaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard_match("sqs:SendMessage*", "sqs:SendMessage", true));
        assert!(wildcard_match(
            "sqs:SendMessage*",
            "SQS:sendmessagebatch",
            true
        ));
        assert!(!wildcard_match("sqs:SendMessage*", "sqs:Send", true));
        assert!(wildcard_match(
            "arn:x:table/T/index/*",
            "arn:x:table/T/index/byUser",
            false
        ));
        assert!(!wildcard_match(
            "arn:x:table/T/index/*",
            "arn:x:table/T",
            false
        ));
        assert!(!wildcard_match("arn:x:table/T", "arn:x:table/t", false));
        assert!(wildcard_match("a?c*e", "abcdxe", false));
        assert!(wildcard_match("*", "", false));
    }
}
