//! Who is calling the HTTP API, and whether a browser may have been tricked into it
//! (DESIGN §5).
//!
//! The caller is the web app's own user, identified exactly as the old Django backend did:
//! a SimpleJWT access token (HS256 by default, signed with the app's key) from the
//! `access_token` cookie the app sets httpOnly, or from an `Authorization: Bearer` header.
//! `token_type` must be `access`, `exp` is required and checked with 30 s of leeway, and the
//! user is the `user_id` claim (a number or a string). A deployment that fronts the API with
//! an OIDC JWT authorizer instead sets `AUTH_MODE=apigw_jwt`, and the user is a claim of the
//! authorizer's context. There is no other way in: no development header, no default key.
//!
//! A cookie travels with every request the browser makes, whoever's page caused it, so a
//! cookie-authenticated write must also prove it came from the app: the double-submit CSRF
//! check of Django (`X-CSRFToken` equal to the `csrftoken` cookie, compared in constant time)
//! and, when the browser names an `Origin`, one of `ALLOWED_ORIGINS`. A Bearer token is only
//! ever sent by code that holds it, so those requests are exempt.

use crate::config::{AuthMode, AuthSettings};
use crate::http::ApiError;
use crate::secrets::{self, SecretError, SecretKey};
use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use http::header::{AUTHORIZATION, COOKIE, HeaderMap, ORIGIN, USER_AGENT};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The cookie that carries the app's access token.
pub const ACCESS_TOKEN_COOKIE: &str = "access_token";
/// Django's CSRF cookie and the header the app copies it into.
pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_HEADER: &str = "x-csrftoken";
/// Seconds of clock difference tolerated on `exp` (SimpleJWT's `LEEWAY` as the app sets it).
pub const LEEWAY_SECONDS: u64 = 30;
/// Longest user id accepted from a token or a claim.
const MAX_USER_ID_CHARS: usize = 128;
/// Longest user agent kept in the consent record.
const MAX_USER_AGENT_CHARS: usize = 512;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The `access_token` cookie: writes must pass the CSRF check.
    Cookie,
    /// `Authorization: Bearer`: exempt from CSRF.
    Bearer,
    /// API Gateway's JWT authorizer checked it (`AUTH_MODE=apigw_jwt`).
    Authorizer,
}

/// Who is calling, and from where (the consent record keeps the IP and user agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub credential: Credential,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Checks credentials; built once per cold start.
pub struct Authenticator {
    mode: Mode,
    allowed_origins: Vec<String>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one value per cold start; boxing would only add an indirection per request"
)]
enum Mode {
    AppJwt {
        key: DecodingKey,
        validation: Validation,
    },
    ApigwJwt {
        claim: String,
    },
}

/// The claims of a SimpleJWT access token this API reads. Others (`jti`, `iat`) pass.
#[derive(Deserialize)]
struct AccessClaims {
    token_type: String,
    user_id: UserId,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Number(u64),
    Text(String),
}

impl Authenticator {
    /// The app's tokens, signed with `key` using `algorithm` (an HMAC one).
    pub fn app_jwt(key: &SecretKey, algorithm: Algorithm, allowed_origins: Vec<String>) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        // SimpleJWT sets no audience or issuer unless configured; the app's does not.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            mode: Mode::AppJwt {
                key: DecodingKey::from_secret(key.expose()).expect("a SecretKey is never empty"),
                validation,
            },
            allowed_origins,
        }
    }

    /// API Gateway's JWT authorizer checked the token; the user is its `claim`.
    pub fn apigw_jwt(claim: impl Into<String>, allowed_origins: Vec<String>) -> Self {
        Self {
            mode: Mode::ApigwJwt {
                claim: claim.into(),
            },
            allowed_origins,
        }
    }

    /// As configured: in `app_jwt` mode the signing key is read from Secrets Manager (at cold
    /// start, `secrets::ReadAtColdStart`), and a missing, unreadable or short key is an error,
    /// on which the function refuses to start, so nothing is served with it.
    pub async fn load(
        settings: &AuthSettings,
        secrets_client: &aws_sdk_secretsmanager::Client,
    ) -> Result<Self, SecretError> {
        let origins = settings.allowed_origins.clone();
        Ok(match settings.mode {
            AuthMode::AppJwt => {
                let key = secrets::read_key(
                    secrets_client,
                    "JWT_SIGNING_KEY_SECRET_ID",
                    settings.jwt_key_secret_id.as_deref(),
                )
                .await?;
                Self::app_jwt(&key, settings.algorithm, origins)
            }
            AuthMode::ApigwJwt => Self::apigw_jwt(settings.user_claim.clone(), origins),
        })
    }

    /// The caller of a request, or 401. Also the CSRF check (403) for a cookie-authenticated
    /// write, so no route can forget it.
    pub fn authenticate(
        &self,
        method: &Method,
        context: Option<&ApiGatewayV2httpRequestContext>,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        let (user_id, credential) = match &self.mode {
            Mode::AppJwt { key, validation } => {
                let (token, credential) = match bearer_token(headers) {
                    Some(token) => (token, Credential::Bearer),
                    None => (
                        cookie(headers, ACCESS_TOKEN_COOKIE).ok_or_else(ApiError::unauthorized)?,
                        Credential::Cookie,
                    ),
                };
                (verify_access_token(token, key, validation)?, credential)
            }
            Mode::ApigwJwt { claim } => {
                let value = context
                    .and_then(|c| c.authorizer.as_ref())
                    .and_then(|a| a.jwt.as_ref())
                    .and_then(|jwt| jwt.claims.get(claim.as_str()))
                    .ok_or_else(ApiError::unauthorized)?;
                (value.clone(), Credential::Authorizer)
            }
        };
        let user_id = clean_user_id(&user_id).ok_or_else(ApiError::unauthorized)?;
        if credential == Credential::Cookie && is_unsafe(method) {
            check_csrf(headers, &self.allowed_origins)?;
        }
        let http = context.map(|c| &c.http);
        let user_agent = http
            .and_then(|h| h.user_agent.as_deref())
            .or_else(|| headers.get(USER_AGENT).and_then(|v| v.to_str().ok()))
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Ok(Caller {
            user_id,
            credential,
            source_ip: http
                .and_then(|h| h.source_ip.clone())
                .filter(|ip| !ip.is_empty()),
            user_agent,
        })
    }
}

fn verify_access_token(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<String, ApiError> {
    let data = jsonwebtoken::decode::<AccessClaims>(token, key, validation).map_err(|e| {
        // The kind only (expired, bad signature, ...): never the token.
        tracing::info!(reason = ?e.kind(), "access token refused");
        ApiError::unauthorized()
    })?;
    if data.claims.token_type != "access" {
        tracing::info!("a token that is not an access token was refused");
        return Err(ApiError::unauthorized());
    }
    Ok(match data.claims.user_id {
        UserId::Number(n) => n.to_string(),
        UserId::Text(s) => s,
    })
}

/// A bounded id without control characters or surrounding blanks, or `None`.
fn clean_user_id(raw: &str) -> Option<String> {
    let id = raw.trim();
    (!id.is_empty() && id.chars().count() <= MAX_USER_ID_CHARS && !id.chars().any(char::is_control))
        .then(|| id.to_owned())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Django's double-submit check, and the origin when the browser gave one.
fn check_csrf(headers: &HeaderMap, allowed_origins: &[String]) -> Result<(), ApiError> {
    let refused = |why: &'static str| {
        tracing::info!(why, "CSRF check failed");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "CSRF verification failed; reload the page and try again",
        ))
    };
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return refused("origin not allowed");
        }
    }
    let Some(cookie) = cookie(headers, CSRF_COOKIE).filter(|c| !c.is_empty()) else {
        return refused("no csrftoken cookie");
    };
    let Some(header) = headers.get(CSRF_HEADER).map(|v| v.as_bytes()) else {
        return refused("no X-CSRFToken header");
    };
    if bool::from(cookie.as_bytes().ct_eq(header)) {
        Ok(())
    } else {
        refused("X-CSRFToken differs from the cookie")
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` from the request's `Cookie` header(s) (API Gateway's `cookies`
/// arrive there, joined with `; `). The first one wins, as in Django.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    };
    use http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const KEY: &str = "0123456789abcdef0123456789abcdef-test";
    const ORIGIN_OK: &str = "https://app.example.com";

    fn key() -> SecretKey {
        SecretKey::new(KEY.as_bytes().to_vec()).unwrap()
    }

    fn auth() -> Authenticator {
        Authenticator::app_jwt(&key(), Algorithm::HS256, vec![ORIGIN_OK.into()])
    }

    fn now() -> i64 {
        jiff::Timestamp::now().as_second()
    }

    fn token_with(claims: Value, key: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn token(user: Value, exp_in: i64) -> String {
        token_with(
            json!({"token_type": "access", "exp": now() + exp_in, "iat": now(), "jti": "j", "user_id": user}),
            KEY,
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn get(h: &HeaderMap) -> Result<Caller, ApiError> {
        auth().authenticate(&Method::GET, None, h)
    }

    fn post(h: &HeaderMap) -> Result<Caller, ApiError> {
        auth().authenticate(&Method::POST, None, h)
    }

    #[test]
    fn the_cookie_token_names_the_user() {
        let c = get(&headers(&[(
            "cookie",
            &format!("a=b; access_token={}; c=d", token(json!(42), 300)),
        )]))
        .unwrap();
        assert_eq!(c.user_id, "42");
        assert_eq!(c.credential, Credential::Cookie);
        let c = get(&headers(&[(
            "cookie",
            &format!("access_token={}", token(json!("u-7"), 300)),
        )]))
        .unwrap();
        assert_eq!(c.user_id, "u-7");
    }

    #[test]
    fn a_bearer_token_works_and_wins_over_the_cookie() {
        let h = headers(&[
            ("authorization", &format!("Bearer {}", token(json!(1), 300))),
            ("cookie", &format!("access_token={}", token(json!(2), 300))),
        ]);
        let c = post(&h).unwrap();
        assert_eq!(
            (c.user_id.as_str(), c.credential),
            ("1", Credential::Bearer)
        );
    }

    #[test]
    fn expiry_has_30_seconds_of_leeway_and_no_more() {
        let t = |exp_in| {
            get(&headers(&[(
                "cookie",
                &format!("access_token={}", token(json!(1), exp_in)),
            )]))
        };
        assert!(t(-10).is_ok(), "10 s past exp is within the leeway");
        assert_eq!(t(-60).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn bad_tokens_are_401() {
        let cookie = |t: &str| headers(&[("cookie", &format!("access_token={t}"))]);
        let refresh = token_with(
            json!({"token_type": "refresh", "exp": now() + 300, "user_id": 1}),
            KEY,
        );
        let other_key = token_with(
            json!({"token_type": "access", "exp": now() + 300, "user_id": 1}),
            "another-key-another-key-another-key",
        );
        let no_exp = token_with(json!({"token_type": "access", "user_id": 1}), KEY);
        let no_user = token_with(json!({"token_type": "access", "exp": now() + 300}), KEY);
        let sub_only = token_with(
            json!({"token_type": "access", "exp": now() + 300, "sub": "1"}),
            KEY,
        );
        let blank_user = token(json!("  "), 300);
        let none = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &json!({"token_type": "access", "exp": now() + 300, "user_id": 1}),
            &EncodingKey::from_secret(KEY.as_bytes()).unwrap(),
        )
        .unwrap();
        for t in [
            refresh,
            other_key,
            no_exp,
            no_user,
            sub_only,
            blank_user,
            none,
            "garbage".into(),
            String::new(),
        ] {
            assert_eq!(
                get(&cookie(&t)).unwrap_err().status,
                StatusCode::UNAUTHORIZED,
                "{t}"
            );
        }
        assert_eq!(get(&HeaderMap::new()).unwrap_err().code, "unauthorized");
        let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(get(&basic).unwrap_err().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn cookie_writes_need_the_csrf_pair_and_an_allowed_origin() {
        let t = token(json!(5), 300);
        let with = |extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("cookie", format!("access_token={t}; csrftoken=abc123"))];
            pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let h = headers(
                &pairs
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>(),
            );
            post(&h)
        };
        assert!(with(&[("x-csrftoken", "abc123")]).is_ok());
        assert!(with(&[("x-csrftoken", "abc123"), ("origin", ORIGIN_OK)]).is_ok());
        for bad in [
            vec![],
            vec![("x-csrftoken", "abc124")],
            vec![("x-csrftoken", "")],
            vec![
                ("x-csrftoken", "abc123"),
                ("origin", "https://evil.example"),
            ],
        ] {
            let err = with(&bad).unwrap_err();
            assert_eq!(
                (err.status, err.code),
                (StatusCode::FORBIDDEN, "csrf_failed"),
                "{bad:?}"
            );
        }
        // No csrftoken cookie at all.
        let h = headers(&[
            ("cookie", &format!("access_token={t}")),
            ("x-csrftoken", ""),
        ]);
        assert_eq!(post(&h).unwrap_err().code, "csrf_failed");
        // Reads need no CSRF pair; Bearer writes are exempt.
        assert!(get(&headers(&[("cookie", &format!("access_token={t}"))])).is_ok());
        let h = headers(&[
            ("authorization", &format!("Bearer {t}")),
            ("origin", "https://evil.example"),
        ]);
        assert!(post(&h).is_ok());
    }

    #[test]
    fn apigw_mode_reads_the_configured_claim_only() {
        let auth = Authenticator::apigw_jwt("email", vec![]);
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("email".into(), "a@example.com".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        ctx.authorizer = Some(authorizer);
        ctx.http.source_ip = Some("203.0.113.9".into());
        let c = auth
            .authenticate(&Method::POST, Some(&ctx), &HeaderMap::new())
            .unwrap();
        assert_eq!(c.user_id, "a@example.com");
        assert_eq!(c.source_ip.as_deref(), Some("203.0.113.9"));
        // A cookie token means nothing in this mode.
        let h = headers(&[("cookie", &format!("access_token={}", token(json!(1), 300)))]);
        assert!(auth.authenticate(&Method::GET, None, &h).is_err());
    }

    #[test]
    fn cookies_parse_like_a_browser_sends_them() {
        let h = headers(&[("cookie", "a=1; b=\"2\""), ("cookie", "c=3; a=9")]);
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any header bytes: an answer, never a panic, and an accepted id is clean.
            #[test]
            fn authenticate_never_panics(
                cookie in proptest::collection::vec(any::<u8>(), 0..300),
                authorization in proptest::collection::vec(any::<u8>(), 0..300),
                user in any::<String>(),
            ) {
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_bytes(&cookie) { h.insert(COOKIE, v); }
                if let Ok(v) = HeaderValue::from_bytes(&authorization) { h.insert(AUTHORIZATION, v); }
                let _ = post(&h);
                let t = token(json!(user), 300);
                if let Ok(c) = get(&headers(&[("cookie", &format!("access_token={t}"))])) {
                    prop_assert!(!c.user_id.is_empty());
                    prop_assert!(c.user_id.chars().count() <= MAX_USER_ID_CHARS);
                    prop_assert!(!c.user_id.chars().any(char::is_control));
                }
            }
        }
    }
}
