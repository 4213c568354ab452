//! The send request of the upstream SQS contract (DESIGN §6): parsing with clear reasons,
//! and a typed builder for Rust upstreams (`sms_shared::request::enqueue` sends what it builds).

use crate::kinds::{MessageClass, MessageKind};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only contract version this code speaks.
pub const VERSION: u32 = 1;
/// Longest accepted idempotency key.
pub const MAX_ID_CHARS: usize = 128;
/// Largest body accepted from the queue; real requests are far smaller.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The object a message is about (`related` of §6), kept on its log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// A valid send request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub v: u32,
    /// Idempotency key: at most one SMS per id, however often it is delivered.
    pub id: String,
    pub kind: MessageKind,
    pub user_id: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<Related>,
    /// Past this instant the request is logged `expired` instead of sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
}

/// Why a queue message is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not even an identifiable request: goes to the dead-letter queue only.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Identifiable (has an id) but invalid: logged `rejected` under its id, and dead-lettered.
    #[error("invalid request {id}: {reason}")]
    Invalid { id: String, reason: String },
}

impl RequestError {
    pub fn reason(&self) -> &str {
        match self {
            RequestError::Malformed(reason) | RequestError::Invalid { reason, .. } => reason,
        }
    }

    /// The request id, when the body had a usable one.
    pub fn id(&self) -> Option<&str> {
        match self {
            RequestError::Malformed(_) => None,
            RequestError::Invalid { id, .. } => Some(id),
        }
    }
}

/// The envelope, read loosely first so that a request with a good id but a bad field can be
/// rejected under its id.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    v: Option<Value>,
    id: Option<Value>,
    kind: Option<Value>,
    user_id: Option<Value>,
    params: Option<Value>,
    related: Option<Value>,
    not_after: Option<Value>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl SendRequest {
    /// Parses and validates a queue message body.
    pub fn parse(body: &str) -> Result<Self, RequestError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(RequestError::Malformed(format!(
                "body is {} bytes, over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            )));
        }
        let envelope: Envelope = serde_json::from_str(body)
            .map_err(|e| RequestError::Malformed(format!("body is not a JSON object: {e}")))?;
        let id = match envelope.id {
            Some(Value::String(id)) if valid_id(&id) => id,
            Some(Value::String(_)) => {
                return Err(RequestError::Malformed(format!(
                    "`id` must be 1-{MAX_ID_CHARS} printable characters"
                )));
            }
            Some(_) => return Err(RequestError::Malformed("`id` must be a string".into())),
            None => return Err(RequestError::Malformed("`id` is missing".into())),
        };
        let invalid = |reason: String| RequestError::Invalid {
            id: id.clone(),
            reason,
        };
        match envelope.v {
            Some(Value::Number(n)) if n.as_u64() == Some(u64::from(VERSION)) => {}
            Some(other) => return Err(invalid(format!("unsupported version `v`: {other}"))),
            None => return Err(invalid("`v` is missing".into())),
        }
        if let Some(field) = envelope.unknown.keys().next() {
            return Err(invalid(format!("unknown field `{field}`")));
        }
        let kind = match envelope.kind {
            Some(Value::String(kind)) => MessageKind::parse(&kind)
                .ok_or_else(|| invalid(format!("unknown kind `{}`", truncate(&kind))))?,
            Some(_) => return Err(invalid("`kind` must be a string".into())),
            None => return Err(invalid("`kind` is missing".into())),
        };
        if kind == MessageKind::PhoneVerification {
            return Err(invalid(
                "`phone_verification` is sent by verify-api only, never from a queue".into(),
            ));
        }
        let user_id = match envelope.user_id {
            Some(Value::String(user)) if !user.trim().is_empty() && user.len() <= 128 => user,
            Some(_) => {
                return Err(invalid(
                    "`userId` must be a non-empty string of at most 128 characters".into(),
                ));
            }
            None => return Err(invalid("`userId` is missing".into())),
        };
        let params = match envelope.params {
            Some(Value::Object(params)) => params,
            None => Map::new(),
            Some(_) => return Err(invalid("`params` must be an object".into())),
        };
        let related = match envelope.related {
            None | Some(Value::Null) => None,
            Some(value) => Some(serde_json::from_value::<Related>(value).map_err(|_| {
                invalid("`related` must be {\"type\": string, \"id\": string}".into())
            })?),
        };
        let not_after = match envelope.not_after {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.parse::<Timestamp>().map_err(|_| {
                invalid(
                    "`notAfter` must be an RFC 3339 timestamp such as 2026-11-24T21:00:00Z".into(),
                )
            })?),
            Some(_) => return Err(invalid("`notAfter` must be a string".into())),
        };
        Ok(SendRequest {
            v: VERSION,
            id,
            kind,
            user_id,
            params,
            related,
            not_after,
        })
    }

    /// Starts a request for upstream code.
    pub fn builder(
        id: impl Into<String>,
        kind: MessageKind,
        user_id: impl Into<String>,
    ) -> SendRequestBuilder {
        SendRequestBuilder {
            request: SendRequest {
                v: VERSION,
                id: id.into(),
                kind,
                user_id: user_id.into(),
                params: Map::new(),
                related: None,
                not_after: None,
            },
        }
    }
}

fn valid_id(id: &str) -> bool {
    let n = id.chars().count();
    (1..=MAX_ID_CHARS).contains(&n) && !id.chars().any(char::is_control)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Builds a [`SendRequest`] that [`SendRequest::parse`] accepts.
#[derive(Debug, Clone)]
pub struct SendRequestBuilder {
    request: SendRequest,
}

impl SendRequestBuilder {
    pub fn param(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.request.params.insert(name.to_owned(), value.into());
        self
    }

    pub fn related(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.request.related = Some(Related {
            kind: kind.into(),
            id: id.into(),
        });
        self
    }

    pub fn not_after(mut self, at: Timestamp) -> Self {
        self.request.not_after = Some(at);
        self
    }

    /// Checks the request as the sender will, so an upstream learns of a mistake at once.
    pub fn build(self) -> Result<SendRequest, RequestError> {
        let json = serde_json::to_string(&self.request)
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        SendRequest::parse(&json)
    }
}

/// The URLs of the two send queues an upstream enqueues to (§6). Not the sender's
/// `sender::Queues`, which hands records back to them.
#[derive(Debug, Clone)]
pub struct SendQueueUrls {
    pub transactional_url: String,
    pub notifications_url: String,
}

impl SendQueueUrls {
    /// Security alerts go to the transactional queue, so a promotional burst never delays them.
    pub fn url_for(&self, kind: MessageKind) -> &str {
        match kind.class() {
            MessageClass::Transactional => &self.transactional_url,
            MessageClass::Promotional => &self.notifications_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = r#"{"v": 1, "id": "battle-invite-81723", "kind": "battle_invitation", "userId": "u-42",
        "params": {"inviter_name": "Ada", "battle_topic": "Haiku", "invitation_link": "https://example.com/b/1"},
        "related": {"type": "BattleInvitation", "id": "81723"}, "notAfter": "2026-11-24T21:00:00Z"}"#;

    #[test]
    fn the_design_example_parses() {
        let r = SendRequest::parse(EXAMPLE).unwrap();
        assert_eq!(r.id, "battle-invite-81723");
        assert_eq!(r.kind, MessageKind::BattleInvitation);
        assert_eq!(r.user_id, "u-42");
        assert_eq!(r.params["inviter_name"], "Ada");
        assert_eq!(r.related.unwrap().id, "81723");
        assert_eq!(
            r.not_after.unwrap(),
            "2026-11-24T21:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn unidentifiable_bodies_are_malformed() {
        for body in ["", "not json", "[]", "{}", r#"{"id": 5}"#, r#"{"id": ""}"#] {
            assert!(
                matches!(SendRequest::parse(body), Err(RequestError::Malformed(_))),
                "{body}"
            );
        }
        let long = format!(r#"{{"id": "{}"}}"#, "x".repeat(129));
        assert!(matches!(
            SendRequest::parse(&long),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn identifiable_but_invalid_requests_are_rejected_under_their_id() {
        let cases = [
            (
                r#"{"id":"a","v":2,"kind":"battle_invitation","userId":"u"}"#,
                "version",
            ),
            (
                r#"{"id":"a","kind":"battle_invitation","userId":"u"}"#,
                "`v`",
            ),
            (
                r#"{"id":"a","v":1,"kind":"nope","userId":"u"}"#,
                "unknown kind",
            ),
            (
                r#"{"id":"a","v":1,"kind":"phone_verification","userId":"u"}"#,
                "verify-api",
            ),
            (r#"{"id":"a","v":1,"kind":"security_alert"}"#, "userId"),
            (
                r#"{"id":"a","v":1,"kind":"security_alert","userId":"u","params":[]}"#,
                "params",
            ),
            (
                r#"{"id":"a","v":1,"kind":"security_alert","userId":"u","notAfter":"tomorrow"}"#,
                "notAfter",
            ),
            (
                r#"{"id":"a","v":1,"kind":"security_alert","userId":"u","phone":"+14155550123"}"#,
                "unknown field",
            ),
        ];
        for (body, needle) in cases {
            match SendRequest::parse(body) {
                Err(RequestError::Invalid { id, reason }) => {
                    assert_eq!(id, "a");
                    assert!(reason.contains(needle), "{body}: {reason}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn builder_output_round_trips_through_parse() {
        let r = SendRequest::builder("sec-1", MessageKind::SecurityAlert, "u-1")
            .param("summary", "New login")
            .param("link", "https://example.com/s")
            .related("Login", "9")
            .build()
            .unwrap();
        let again = SendRequest::parse(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
        assert!(
            SendRequest::builder("", MessageKind::SecurityAlert, "u")
                .build()
                .is_err()
        );
    }

    #[test]
    fn kinds_are_routed_to_their_queue() {
        let q = SendQueueUrls {
            transactional_url: "t".into(),
            notifications_url: "n".into(),
        };
        assert_eq!(q.url_for(MessageKind::SecurityAlert), "t");
        assert_eq!(q.url_for(MessageKind::StreakAlert), "n");
    }

    proptest! {
        #[test]
        fn parse_never_panics(body in ".{0,300}") {
            let _ = SendRequest::parse(&body);
        }

        #[test]
        fn parse_never_panics_on_json_like_input(id in ".{0,140}", kind in "[a-z_]{0,20}", v in any::<i64>()) {
            let body = serde_json::json!({"v": v, "id": id, "kind": kind, "userId": "u"}).to_string();
            let _ = SendRequest::parse(&body);
        }

        /// A request the builder accepts serializes (as `enqueue` sends it) and parses back
        /// equal; a valid id, user and kind are always accepted.
        #[test]
        fn builder_requests_round_trip_through_parse(
            id in "[^\\p{Cc}]{1,128}",
            user_id in "[^\\p{Cc}]{0,40}",
            kind_index in 0..MessageKind::ALL.len(),
            params in proptest::collection::btree_map("\\PC{0,20}", param_value(), 0..5),
            related in proptest::option::of(("\\PC{0,30}", "\\PC{0,30}")),
            not_after in proptest::option::of((
                Timestamp::MIN.as_second()..=Timestamp::MAX.as_second() - 1,
                0i32..1_000_000_000,
            )),
        ) {
            let kind = MessageKind::ALL[kind_index];
            let mut builder = SendRequest::builder(id.clone(), kind, user_id.clone());
            for (name, value) in &params {
                builder = builder.param(name, value.clone());
            }
            if let Some((kind, id)) = &related {
                builder = builder.related(kind.as_str(), id.as_str());
            }
            if let Some((secs, nanos)) = not_after {
                builder = builder.not_after(Timestamp::new(secs, nanos).unwrap());
            }
            match builder.build() {
                Ok(r) => {
                    prop_assert_eq!(&r.id, &id);
                    prop_assert_eq!(&r.user_id, &user_id);
                    prop_assert_eq!(r.kind, kind);
                    prop_assert_eq!(r.params.len(), params.len());
                    let again = SendRequest::parse(&serde_json::to_string(&r).unwrap()).unwrap();
                    prop_assert_eq!(again, r);
                }
                Err(e) => {
                    let valid_user = !user_id.trim().is_empty() && user_id.len() <= 128;
                    prop_assert!(
                        kind == MessageKind::PhoneVerification || !valid_user,
                        "{e:?}"
                    );
                    prop_assert_eq!(e.id(), Some(id.as_str()));
                }
            }
        }
    }

    /// Parameter values that survive JSON exactly (floats may not without `float_roundtrip`).
    fn param_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }
}
