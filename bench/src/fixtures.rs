//! Data and clients the parts share: opted-in users, send requests, the sample events of
//! `events/` made unique per invocation, and an SMS client configured like production's.

use aws_config::{BehaviorVersion, Region};
use integration_tests::SmsStub;
use integration_tests::aws::test_credentials;
use jiff::Timestamp;
use serde_json::Value;
use sms_shared::MessageKind;
use sms_shared::preferences::{ConsentAction, ConsentEvent, ConsentMethod, Preferences};
use sms_shared::request::SendRequest;
use sms_shared::store::PreferencesStore;

pub const ORIGINATION: &str = "+18005550100";

/// Saves `user` as opted in with a verified `phone`, every toggle on.
pub async fn seed_user(
    store: &PreferencesStore,
    user: &str,
    phone: &str,
    zone: Option<&str>,
    now: Timestamp,
) {
    let mut prefs = Preferences::new(user);
    prefs.phone_number = Some(phone.into());
    prefs.phone_verified = true;
    prefs.allow_sms_invitations = true;
    prefs.time_zone = zone.map(Into::into);
    let mut grant = ConsentEvent::new(user, now, ConsentAction::Grant, ConsentMethod::OptInModal);
    grant.phone_number = prefs.phone_number.clone();
    grant.apply_to(&mut prefs.consent);
    store
        .save(&mut prefs, &[grant], now)
        .await
        .unwrap_or_else(|e| panic!("seed user {user}: {e}"));
}

/// `VERIFICATION_HOME_COUNTRY_HOURLY` of the parts that verify many US numbers within an
/// hour (each from its own user, IP and number prefix): above any run's count, so the country
/// window (DESIGN §5, 100 an hour by default) never refuses a code the part measures.
pub const HOME_COUNTRY_HOURLY_FOR_BENCH: &str = "1000000";

/// `+1415555dddd`: a valid US number per index (up to 10,000).
pub fn phone(i: usize) -> String {
    format!("+1415555{:04}", i % 10_000)
}

/// A battle invitation request body.
pub fn invitation(id: &str, user: &str) -> String {
    let request = SendRequest::builder(id, MessageKind::BattleInvitation, user)
        .param("inviter_name", "Ada")
        .param("battle_topic", "Haiku")
        .param("invitation_link", "https://example.com/battles/81723")
        .build()
        .expect("valid request");
    serde_json::to_string(&request).expect("serialisable request")
}

/// A `SendTextMessage` client for the stub as `main.rs` builds it in production
/// (`aws_config` defaults: standard retry mode, default timeouts), only aimed at the stub.
pub async fn production_like_sms_client(stub: &SmsStub) -> aws_sdk_pinpointsmsvoicev2::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(sms_shared::aws::https_client())
        .region(Region::new(integration_tests::TEST_REGION))
        .credentials_provider(test_credentials())
        .endpoint_url(stub.endpoint())
        .load()
        .await;
    aws_sdk_pinpointsmsvoicev2::Client::new(&sdk)
}

/// `events/<file>` as JSON, `None` when the file does not exist (yet).
pub fn event_file(file: &str) -> Option<Value> {
    let path = crate::util::repo_root().join("events").join(file);
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Makes an SQS event's request ids (and message ids) unique with `tag`.
pub fn tag_sqs(mut event: Value, tag: &str) -> Value {
    if let Some(records) = event["Records"].as_array_mut() {
        for (k, record) in records.iter_mut().enumerate() {
            record["messageId"] = format!("bench-{tag}-{k}").into();
            let body = record["body"].as_str().unwrap_or_default().to_owned();
            if let Ok(mut request) = serde_json::from_str::<Value>(&body) {
                if let Some(id) = request["id"].as_str() {
                    request["id"] = format!("{id}-{tag}-{k}").into();
                }
                record["body"] = request.to_string().into();
            }
        }
    }
    event
}

/// Makes an SNS event unique with `tag`: its SNS message id and, in inbound SMS records,
/// the inbound message id (processed once each).
pub fn tag_sns(mut event: Value, tag: &str) -> Value {
    if let Some(records) = event["Records"].as_array_mut() {
        for record in records {
            let sns = &mut record["Sns"];
            sns["MessageId"] = format!("bench-{tag}").into();
            let message = sns["Message"].as_str().unwrap_or_default().to_owned();
            if let Ok(mut inner) = serde_json::from_str::<Value>(&message) {
                if let Some(id) = inner["inboundMessageId"].as_str() {
                    inner["inboundMessageId"] = format!("{id}-{tag}").into();
                }
                sns["Message"] = inner.to_string().into();
            }
        }
    }
    event
}

/// The CSRF pair of the benchmark's requests.
const CSRF: &str = "bench-csrf-token";

/// The origin the HTTP samples of `events/` send (the app's): cookie writes from any other
/// are refused 403 (CSRF, DESIGN §5).
const APP_ORIGIN: &str = "https://app.example.com";

/// The app's tokens under the local stack's key, from the app's origin.
pub fn authenticator() -> sms_shared::auth::Authenticator {
    let key = sms_shared::secrets::SecretKey::new(
        integration_tests::local_stack::LOCAL_JWT_SIGNING_KEY
            .as_bytes()
            .to_vec(),
    )
    .expect("a long key");
    sms_shared::auth::Authenticator::app_jwt(
        &key,
        jsonwebtoken::Algorithm::HS256,
        vec![APP_ORIGIN.to_owned()],
    )
}

/// The code HMAC key of the local stack.
pub fn code_key() -> sms_shared::secrets::SecretKey {
    sms_shared::secrets::SecretKey::new(
        integration_tests::local_stack::LOCAL_CODE_HMAC_KEY
            .as_bytes()
            .to_vec(),
    )
    .expect("a long key")
}

/// A SimpleJWT access token for `user`, valid for an hour, signed with the local key.
pub fn access_token(user: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"token_type": "access", "exp": now + 3600, "user_id": user}),
        &jsonwebtoken::EncodingKey::from_secret(
            integration_tests::local_stack::LOCAL_JWT_SIGNING_KEY.as_bytes(),
        )
        .expect("a key"),
    )
    .expect("a token")
}

/// An HTTP API (payload v2) event as `user`, from `ip`, with `phoneNumber` (when the body
/// has one) replaced by `phone`: the per-user, per-IP and per-number limits of
/// verification never bite a benchmark.
pub fn http_as(mut event: Value, user: &str, ip: &str, phone: &str) -> Value {
    event["cookies"] = serde_json::json!([
        format!("access_token={}", access_token(user)),
        format!("csrftoken={CSRF}"),
    ]);
    event["headers"]["x-csrftoken"] = CSRF.into();
    event["requestContext"]["http"]["sourceIp"] = ip.into();
    event["requestContext"]["requestId"] = format!("bench-{user}").into();
    if let Some(body) = event["body"].as_str()
        && let Ok(mut body) = serde_json::from_str::<Value>(body)
    {
        if body.get("phone_number").is_some() {
            body["phone_number"] = phone.into();
        }
        event["body"] = body.to_string().into();
    }
    event
}

/// A distinct IPv4 address per index.
pub fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// A number with its own prefix per index (the verification's per-prefix window).
pub fn prefixed_phone(i: usize) -> String {
    // Exchange codes 200..=999 without the N11 service codes: 720 distinct prefixes.
    let exchange = (200..1000)
        .filter(|n| n % 100 != 11)
        .nth(i % 720)
        .unwrap_or(555);
    format!("+1415{exchange}0123")
}

/// The first run of exactly six digits in `body` (the verification code).
pub fn code_in(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(body[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}
