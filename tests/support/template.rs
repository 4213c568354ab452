//! `template.yaml` read as YAML, with CloudFormation's short tags (`!Ref`, `!GetAtt`, `!Sub`)
//! kept as tagged values: the helpers the drift check (`tests/it/template_drift.rs`) and the IAM
//! contract ([`crate::iam`]) share, and a *resolver* that turns intrinsic functions into the
//! values a deployment named after the logical ids would have ([`Deployed`]).

use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `template.yaml`, parsed (read on every call: a test may compare it with an edited copy).
/// `SMS_TEMPLATE_PATH` names another copy to check instead (a scratch edit, e.g. with a
/// statement removed, to see what the IAM contract says about it).
pub fn template() -> Value {
    let path = std::env::var_os("SMS_TEMPLATE_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("template.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text)
}

/// A template's text, parsed.
pub fn parse(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("parsing template.yaml: {e}"))
}

/// `template.yaml`, parsed once per process.
pub fn shared_template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(template)
}

/// A CloudFormation function call in short (`!Ref X`) or long (`{Ref: X}`) form.
pub fn intrinsic<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => {
            let long = if name == "Ref" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            map.get(long.as_str())
        }
        _ => None,
    }
}

/// The logical id of `!Ref X`.
pub fn ref_target(value: &Value) -> Option<&str> {
    intrinsic(value, "Ref")?.as_str()
}

/// `(logical id, attribute)` of `!GetAtt X.Attr` or `!GetAtt [X, Attr]`.
pub fn get_att(value: &Value) -> Option<(String, String)> {
    let args = intrinsic(value, "GetAtt")?;
    if let Some(s) = args.as_str() {
        let (id, attr) = s.split_once('.')?;
        return Some((id.to_owned(), attr.to_owned()));
    }
    let seq = args.as_sequence()?;
    Some((
        seq.first()?.as_str()?.to_owned(),
        seq.get(1)?.as_str()?.to_owned(),
    ))
}

/// The string of `!Sub "..."` (or of `!Sub ["...", {...}]`).
pub fn sub_string(value: &Value) -> Option<&str> {
    let args = intrinsic(value, "Sub")?;
    args.as_str()
        .or_else(|| args.as_sequence()?.first()?.as_str())
}

pub fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().expect("Resources is a mapping")
}

pub fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    t["Resources"]
        .get(id)
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
}

pub fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("logical ids are strings"), r))
        .collect()
}

/// Variables of the Globals section.
pub fn global_env(t: &Value) -> &Mapping {
    t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Globals.Function.Environment.Variables")
}

/// The logical id a global variable refers to (`LOG_TABLE: !Ref LogTable`).
pub fn global_ref<'a>(t: &'a Value, var: &str) -> &'a str {
    let value = global_env(t)
        .get(var)
        .unwrap_or_else(|| panic!("Globals do not set {var}"));
    ref_target(value).unwrap_or_else(|| panic!("{var} is not a !Ref to a resource"))
}

/// `{function directory name: (logical id, resource)}` of the SAM functions.
pub fn functions(t: &Value) -> BTreeMap<String, (&str, &Value)> {
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let code = f["Properties"]["CodeUri"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: CodeUri is a path"));
            let name = code
                .strip_prefix("functions/")
                .unwrap_or_else(|| panic!("{id}: CodeUri {code} is not functions/<name>"));
            (name.to_owned(), (id, f))
        })
        .collect()
}

/// The environment a function gets: Globals, then its own variables.
pub fn function_env<'a>(t: &'a Value, function: &'a Value) -> BTreeMap<&'a str, &'a Value> {
    let own = function["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .into_iter()
        .flatten();
    global_env(t)
        .iter()
        .chain(own)
        .map(|(k, v)| (k.as_str().expect("variable names are strings"), v))
        .collect()
}

pub fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// A value, or each value of a list.
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(seq) => seq.iter().collect(),
        Value::Null => vec![],
        one => vec![one],
    }
}

/// The account, region and stack name of the deployment the resolver imagines.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = crate::aws::TEST_REGION;
pub const PARTITION: &str = "aws";
pub const STACK: &str = "sms";

/// Values of the parameters that have no default (a deployment must pass them).
const REQUIRED_PARAMETERS: [(&str, &str); 2] = [
    (
        "AppJwtSecretArn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/jwt-signing-key-AbCdEf",
    ),
    (
        "OriginationIdentityArn",
        "arn:aws:sms-voice:us-east-1:123456789012:phone-number/phone-0123456789abcdef",
    ),
];

/// The template as deployed to account [`ACCOUNT`] in [`REGION`] as stack [`STACK`], every
/// resource's physical name being its logical id: `!GetAtt LogTable.Arn` is
/// `arn:aws:dynamodb:us-east-1:123456789012:table/LogTable`, `!Ref TransactionalQueue` is
/// `https://sqs.us-east-1.amazonaws.com/123456789012/TransactionalQueue`. Parameters take
/// their defaults, or a made-up value of the right shape when they have none.
pub struct Deployed<'a> {
    pub template: &'a Value,
}

impl<'a> Deployed<'a> {
    pub fn new(template: &'a Value) -> Self {
        Self { template }
    }

    /// The value of `value`, intrinsics resolved; `None` for what cannot be known before a
    /// deployment (conditions, mappings) or is not a string.
    pub fn resolve(&self, value: &Value) -> Option<String> {
        if let Value::String(s) = value {
            return Some(s.clone());
        }
        if let Some(id) = ref_target(value) {
            return self.reference(id);
        }
        if let Some((id, attr)) = get_att(value) {
            return self.attribute(&id, &attr);
        }
        if let Some(args) = intrinsic(value, "Sub") {
            let (text, vars) = match args {
                Value::Sequence(seq) => (seq.first()?.as_str()?, seq.get(1)),
                other => (other.as_str()?, None),
            };
            return self.substitute(text, vars);
        }
        if let Some(args) = intrinsic(value, "Join") {
            let seq = args.as_sequence()?;
            let separator = seq.first()?.as_str()?;
            let parts = one_or_many(seq.get(1)?)
                .into_iter()
                .map(|p| self.resolve(p))
                .collect::<Option<Vec<_>>>()?;
            return Some(parts.join(separator));
        }
        match value {
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `!Ref id`: a parameter's value, a pseudo parameter, or a resource's reference value.
    pub fn reference(&self, id: &str) -> Option<String> {
        match id {
            "AWS::AccountId" => return Some(ACCOUNT.into()),
            "AWS::Region" => return Some(REGION.into()),
            "AWS::Partition" => return Some(PARTITION.into()),
            "AWS::StackName" => return Some(STACK.into()),
            "AWS::URLSuffix" => return Some("amazonaws.com".into()),
            _ => {}
        }
        if let Some(param) = self.template["Parameters"].get(id) {
            return match REQUIRED_PARAMETERS.iter().find(|(p, _)| *p == id) {
                Some((_, v)) => Some((*v).to_owned()),
                None => self.resolve(&param["Default"]),
            };
        }
        let kind = self.template["Resources"].get(id)?["Type"].as_str()?;
        Some(match kind {
            "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{id}"),
            "AWS::SNS::Topic" => format!("arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{id}"),
            "AWS::SecretsManager::Secret" => {
                format!("arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{id}-AbCdEf")
            }
            // Tables, functions, configuration sets, log groups: the name.
            _ => id.to_owned(),
        })
    }

    /// `!GetAtt id.attr`.
    pub fn attribute(&self, id: &str, attr: &str) -> Option<String> {
        let kind = self.template["Resources"].get(id)?["Type"].as_str()?;
        Some(match (kind, attr) {
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{id}")
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{id}"),
            ("AWS::SQS::Queue", "QueueName") => id.to_owned(),
            ("AWS::SQS::Queue", "QueueUrl") => self.reference(id)?,
            ("AWS::SNS::Topic", "TopicArn") => self.reference(id)?,
            ("AWS::SMSVOICE::ConfigurationSet", "Arn") => {
                format!("arn:{PARTITION}:sms-voice:{REGION}:{ACCOUNT}:configuration-set/{id}")
            }
            ("AWS::Logs::LogGroup", "Arn") => {
                format!("arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{id}:*")
            }
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{id}")
            }
            _ => return None,
        })
    }

    /// `!Sub text` with `${X}`, `${X.Attr}`, `${AWS::...}` and the variables of its
    /// two-argument form; `${!X}` stays literal.
    fn substitute(&self, text: &str, vars: Option<&Value>) -> Option<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.and_then(|v| v.get(name)) {
                out.push_str(&self.resolve(v)?);
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intrinsics_resolve_to_the_imagined_deployment() {
        let t = parse(
            r#"
Parameters:
  Name: {Type: String, Default: Default}
Resources:
  T: {Type: "AWS::DynamoDB::Table"}
  Q: {Type: "AWS::SQS::Queue"}
  X:
    Type: Custom
    Properties:
      A: !GetAtt T.Arn
      B: !Sub "${T.Arn}/index/*"
      C: !Ref Q
      D: !Sub "arn:${AWS::Partition}:sms-voice:${AWS::Region}:${AWS::AccountId}:opt-out-list/${Name}"
      E: !Sub ["${Q.Arn}-${x}", {x: !Ref Name}]
      F: !Join [",", [a, !Ref Name]]
      G: !Sub "${!Literal}"
"#,
        );
        let d = Deployed::new(&t);
        let p = &t["Resources"]["X"]["Properties"];
        let r = |k: &str| d.resolve(&p[k]).unwrap();
        assert_eq!(r("A"), "arn:aws:dynamodb:us-east-1:123456789012:table/T");
        assert_eq!(
            r("B"),
            "arn:aws:dynamodb:us-east-1:123456789012:table/T/index/*"
        );
        assert_eq!(r("C"), "https://sqs.us-east-1.amazonaws.com/123456789012/Q");
        assert_eq!(
            r("D"),
            "arn:aws:sms-voice:us-east-1:123456789012:opt-out-list/Default"
        );
        assert_eq!(r("E"), "arn:aws:sqs:us-east-1:123456789012:Q-Default");
        assert_eq!(r("F"), "a,Default");
        assert_eq!(r("G"), "${Literal}");
    }
}
