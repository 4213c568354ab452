//! One configuration struct, read from the environment once per cold start.
//!
//! Every variable has a default that serves local use (`make dev`, tests); `template.yaml`
//! sets the production values. The README lists them all.

pub use sms_core::settings::{Branding, Limits, parse_usd_micros};
use sms_core::verification::WindowLimits;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A variable that is set but cannot be used. A missing variable takes its default.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

/// Which SMS sender the functions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// AWS End User Messaging SMS (`SendTextMessage`).
    EndUserMessaging,
    /// Prints `[CONSOLE SMS]` lines to stdout; local development.
    Console,
}

/// Names of the three DynamoDB tables (§9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub log: String,
    pub preferences: String,
    pub verification: String,
}

/// End User Messaging settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsSettings {
    pub sender: SenderKind,
    /// Phone number, pool, sender ID or their ARN; sends come only from here.
    pub origination_identity: Option<String>,
    pub configuration_set: Option<String>,
    /// Maximum price per message part in USD, as the API takes it (`"0.05"`).
    pub max_price: Option<String>,
    /// Time to live of a message at the provider.
    pub ttl: Duration,
    /// The origination identity's rate in message parts per second (§7).
    pub parts_per_second: f64,
    /// Largest body, in segments, that may be sent.
    pub max_segments: u32,
    /// Which keywords End User Messaging (or the carrier) answers itself, so `inbound-sms`
    /// does not answer them a second time (DESIGN §8).
    pub provider_answers: ProviderAnswers,
}

/// The keywords the provider answers itself (DESIGN §8: no keyword is answered twice). Each
/// is about the keywords the provider *recognises* ([`crate::keywords::provider_keyword`]):
/// a reply it did not recognise (a plain-language or Spanish opt-out, `AYUDA`) is always
/// answered by `inbound-sms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProviderAnswers {
    /// `PROVIDER_ANSWERS_STOP`: AWS (self-managed opt-outs off) or the toll-free carrier
    /// confirms STOP, CANCEL, END, QUIT, UNSUBSCRIBE, ... itself.
    pub stop: bool,
    /// `PROVIDER_ANSWERS_HELP`: AWS answers HELP with the number's HELP keyword message.
    pub help: bool,
    /// `PROVIDER_ANSWERS_START`: START and UNSTOP are registered as opt-in keywords, whose
    /// keyword message AWS sends.
    pub start: bool,
}

/// How the HTTP API knows its caller (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The app's own SimpleJWT access token, checked in code (`app_jwt`, the default).
    AppJwt,
    /// API Gateway's JWT authorizer checked an OIDC token; the user is a claim (`apigw_jwt`).
    ApigwJwt,
}

/// The HTTP API's authentication and browser settings (§5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// `app_jwt`: the HMAC algorithm the app signs with (SimpleJWT's `ALGORITHM`).
    pub algorithm: jsonwebtoken::Algorithm,
    /// `app_jwt`: the Secrets Manager secret holding the app's signing key.
    pub jwt_key_secret_id: Option<String>,
    /// `apigw_jwt`: the authorizer claim that names the user.
    pub user_claim: String,
    /// Origins of the web frontend: CORS (in the template) and the CSRF origin check.
    pub allowed_origins: Vec<String>,
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub tables: TableNames,
    pub transactional_queue_url: Option<String>,
    pub notifications_queue_url: Option<String>,
    pub transactional_dlq_url: Option<String>,
    pub notifications_dlq_url: Option<String>,
    pub sms: SmsSettings,
    pub branding: Branding,
    pub limits: Limits,
    /// ISO country codes numbers may belong to (§4).
    pub allowed_countries: Vec<String>,
    /// Path prefix of every HTTP route (`/api/v1`), without a trailing slash.
    pub api_base_path: String,
    pub auth: AuthSettings,
    /// The Secrets Manager secret holding the HMAC key of verification codes.
    pub code_hmac_key_secret_id: Option<String>,
    /// The windows of verification codes (DESIGN §5); the two per-country hourly ones come
    /// from `VERIFICATION_HOME_COUNTRY_HOURLY` and `VERIFICATION_OTHER_COUNTRY_HOURLY`, so a
    /// deployment sizes them to its number's capacity and its sign-up peak (§7).
    pub verification_windows: WindowLimits,
    /// How many records of one SQS batch are processed at once.
    pub sender_concurrency: usize,
    /// Lambda concurrency the sender may reach; the send rate is shared across it.
    pub sender_max_concurrency: u32,
    /// How long a claim or a send attempt keeps other invocations off a log record: longer
    /// than the function's timeout, so a live invocation never loses its record (§6).
    pub claim_lease: jiff::SignedDuration,
    /// How long an attempt whose answer was lost waits for its receipt before the takeover
    /// ends it `unknown` or sends a transactional message once more (§6, default 10 min).
    pub takeover_wait: jiff::SignedDuration,
    /// The sender starts no send later than this before its invocation's deadline: room for
    /// the call's own timeout and the outcome's write (§6 "Deadlines").
    pub sender_deadline_margin: jiff::SignedDuration,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from a map; for tests.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { get: &get };
        let sender = match env.string("SMS_SENDER", "console").as_str() {
            "console" => SenderKind::Console,
            "eum" | "end_user_messaging" => SenderKind::EndUserMessaging,
            other => {
                return Err(ConfigError {
                    name: "SMS_SENDER",
                    reason: format!("`{other}` is not `console` or `eum`"),
                });
            }
        };
        let origination_identity = env.optional("ORIGINATION_IDENTITY");
        if sender == SenderKind::EndUserMessaging && origination_identity.is_none() {
            return Err(ConfigError {
                name: "ORIGINATION_IDENTITY",
                reason: "required when SMS_SENDER=eum".into(),
            });
        }
        let brand = Branding::default();
        Ok(Self {
            tables: TableNames {
                log: env.string("LOG_TABLE", "sms-log"),
                preferences: env.string("PREFERENCES_TABLE", "sms-preferences"),
                verification: env.string("VERIFICATION_TABLE", "sms-verification"),
            },
            transactional_queue_url: env.optional("TRANSACTIONAL_QUEUE_URL"),
            notifications_queue_url: env.optional("NOTIFICATIONS_QUEUE_URL"),
            transactional_dlq_url: env.optional("TRANSACTIONAL_DLQ_URL"),
            notifications_dlq_url: env.optional("NOTIFICATIONS_DLQ_URL"),
            sms: SmsSettings {
                sender,
                origination_identity,
                configuration_set: env.optional("CONFIGURATION_SET"),
                max_price: env.optional("SMS_MAX_PRICE"),
                ttl: Duration::from_secs(env.parse("SMS_TTL_SECONDS", 3600u64)?),
                parts_per_second: env.parse("SMS_PARTS_PER_SECOND", 3.0f64)?,
                max_segments: env.parse("SMS_MAX_SEGMENTS", 3u32)?,
                provider_answers: ProviderAnswers {
                    stop: env.parse("PROVIDER_ANSWERS_STOP", false)?,
                    help: env.parse("PROVIDER_ANSWERS_HELP", false)?,
                    start: env.parse("PROVIDER_ANSWERS_START", false)?,
                },
            },
            branding: Branding {
                brand_name: env.string("BRAND_NAME", &brand.brand_name),
                support_url: env.string("SUPPORT_URL", &brand.support_url),
                stop_footer: env.string("STOP_FOOTER", &brand.stop_footer),
                frequency: env.string("MESSAGE_FREQUENCY", &brand.frequency),
                stop_footer_es: env.string("STOP_FOOTER_ES", &brand.stop_footer_es),
                frequency_es: env.string("MESSAGE_FREQUENCY_ES", &brand.frequency_es),
                support_email: env.optional("SUPPORT_EMAIL"),
                support_phone: env.optional("SUPPORT_PHONE"),
            },
            limits: Limits {
                promotional_per_user_per_day: env.parse("DAILY_PROMOTIONAL_CAP", 10u32)?,
                monthly_spend_cap_micros: usd_micros(&env, "MONTHLY_SPEND_CAP_USD", "50")?,
                transactional_hard_cap_micros: usd_micros(
                    &env,
                    "TRANSACTIONAL_HARD_CAP_USD",
                    "100",
                )?,
                verification_monthly_budget_micros: usd_micros(
                    &env,
                    "VERIFICATION_MONTHLY_BUDGET_USD",
                    "20",
                )?,
            },
            allowed_countries: env
                .string("ALLOWED_COUNTRIES", "US,CA")
                .split(',')
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect(),
            api_base_path: base_path(&env)?,
            auth: AuthSettings {
                mode: match env.string("AUTH_MODE", "app_jwt").as_str() {
                    "app_jwt" => AuthMode::AppJwt,
                    "apigw_jwt" => AuthMode::ApigwJwt,
                    other => {
                        return Err(ConfigError {
                            name: "AUTH_MODE",
                            reason: format!("`{other}` is not `app_jwt` or `apigw_jwt`"),
                        });
                    }
                },
                algorithm: match env.string("JWT_ALGORITHM", "HS256").as_str() {
                    "HS256" => jsonwebtoken::Algorithm::HS256,
                    "HS384" => jsonwebtoken::Algorithm::HS384,
                    "HS512" => jsonwebtoken::Algorithm::HS512,
                    other => {
                        return Err(ConfigError {
                            name: "JWT_ALGORITHM",
                            reason: format!("`{other}` is not HS256, HS384 or HS512"),
                        });
                    }
                },
                jwt_key_secret_id: env.optional("JWT_SIGNING_KEY_SECRET_ID"),
                user_claim: env.string("AUTH_USER_CLAIM", "sub"),
                allowed_origins: env
                    .string("ALLOWED_ORIGINS", "")
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            },
            code_hmac_key_secret_id: env.optional("CODE_HMAC_KEY_SECRET_ID"),
            verification_windows: verification_windows(&env)?,
            sender_concurrency: env.parse("SENDER_CONCURRENCY", 4usize)?.max(1),
            sender_max_concurrency: env.parse("SENDER_MAX_CONCURRENCY", 2u32)?.max(1),
            claim_lease: seconds(&env, "SEND_CLAIM_LEASE_SECONDS", 120)?,
            takeover_wait: seconds(&env, "SEND_TAKEOVER_WAIT_SECONDS", 600)?,
            sender_deadline_margin: seconds(&env, "SENDER_DEADLINE_MARGIN_SECONDS", 10)?,
        })
    }
}

struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                reason: e.to_string(),
            }),
        }
    }
}

/// A whole number of seconds.
fn seconds(
    env: &Env<'_>,
    name: &'static str,
    default: u32,
) -> Result<jiff::SignedDuration, ConfigError> {
    Ok(jiff::SignedDuration::from_secs(i64::from(
        env.parse(name, default)?,
    )))
}

/// `API_BASE_PATH`: `/api/v1` by default; `""` serves the routes at the root.
fn base_path(env: &Env<'_>) -> Result<String, ConfigError> {
    let raw = (env.get)("API_BASE_PATH").unwrap_or_else(|| "/api/v1".to_owned());
    let path = raw.trim().trim_end_matches('/');
    if !path.is_empty() && !path.starts_with('/') || path.contains("//") {
        return Err(ConfigError {
            name: "API_BASE_PATH",
            reason: format!("`{raw}` is not a path such as /api/v1"),
        });
    }
    Ok(path.to_owned())
}

/// [`WindowLimits::default`] with the country windows of the environment.
fn verification_windows(env: &Env<'_>) -> Result<WindowLimits, ConfigError> {
    let defaults = WindowLimits::default();
    Ok(WindowLimits {
        per_country_per_hour: positive_count(
            env,
            "VERIFICATION_HOME_COUNTRY_HOURLY",
            defaults.per_country_per_hour,
        )?,
        per_other_country_per_hour: positive_count(
            env,
            "VERIFICATION_OTHER_COUNTRY_HOURLY",
            defaults.per_other_country_per_hour,
        )?,
        ..defaults
    })
}

/// A whole number above zero, digits only: a window of 0 would refuse every code, and a
/// sign or a fraction is more likely a typo than a limit.
fn positive_count(env: &Env<'_>, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let Some(raw) = env.optional(name) else {
        return Ok(default);
    };
    let digits = raw.trim();
    let invalid = || ConfigError {
        name,
        reason: format!("`{raw}` is not a whole number above 0"),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match digits.parse::<u64>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(n) => Ok(n),
    }
}

fn usd_micros(env: &Env<'_>, name: &'static str, default: &str) -> Result<u64, ConfigError> {
    let raw = env.string(name, default);
    parse_usd_micros(&raw).ok_or_else(|| ConfigError {
        name,
        reason: format!("`{raw}` is not an amount in USD such as 50 or 12.75"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&vars)
    }

    #[test]
    fn defaults_serve_local_use() {
        let c = config(&[]).unwrap();
        assert_eq!(c.sms.sender, SenderKind::Console);
        assert_eq!(c.allowed_countries, ["US", "CA"]);
        assert_eq!(c.limits.promotional_per_user_per_day, 10);
        assert_eq!(c.limits.monthly_spend_cap_micros, 50_000_000);
        assert_eq!(c.limits.verification_monthly_budget_micros, 20_000_000);
        assert_eq!(
            c.sms.provider_answers,
            ProviderAnswers::default(),
            "locally nobody else answers a keyword"
        );
        assert_eq!(c.tables.log, "sms-log");
        assert_eq!(c.api_base_path, "/api/v1");
        assert_eq!(c.auth.mode, AuthMode::AppJwt);
        assert_eq!(c.auth.algorithm, jsonwebtoken::Algorithm::HS256);
        assert_eq!(c.auth.jwt_key_secret_id, None, "no key without a secret");
        assert!(
            c.auth.allowed_origins.is_empty(),
            "no origin allowed by default"
        );
    }

    #[test]
    fn values_are_read_and_checked() {
        let c = config(&[
            ("SMS_SENDER", "eum"),
            ("ORIGINATION_IDENTITY", "+18005550100"),
            ("ALLOWED_COUNTRIES", "us, gb"),
            ("MONTHLY_SPEND_CAP_USD", "12.5"),
            ("LOG_TABLE", "prod-log"),
        ])
        .unwrap();
        assert_eq!(c.sms.sender, SenderKind::EndUserMessaging);
        assert_eq!(c.allowed_countries, ["US", "GB"]);
        assert_eq!(c.limits.monthly_spend_cap_micros, 12_500_000);
        assert_eq!(c.tables.log, "prod-log");
    }

    #[test]
    fn invalid_values_fail_with_the_variable_name() {
        let err = config(&[("DAILY_PROMOTIONAL_CAP", "ten")]).unwrap_err();
        assert_eq!(err.name, "DAILY_PROMOTIONAL_CAP");
        let err = config(&[("SMS_SENDER", "eum")]).unwrap_err();
        assert_eq!(err.name, "ORIGINATION_IDENTITY");
        let err = config(&[("MONTHLY_SPEND_CAP_USD", "-3")]).unwrap_err();
        assert_eq!(err.name, "MONTHLY_SPEND_CAP_USD");
        assert_eq!(
            config(&[("AUTH_MODE", "none")]).unwrap_err().name,
            "AUTH_MODE"
        );
        assert_eq!(
            config(&[("JWT_ALGORITHM", "RS256")]).unwrap_err().name,
            "JWT_ALGORITHM"
        );
        assert_eq!(
            config(&[("API_BASE_PATH", "api")]).unwrap_err().name,
            "API_BASE_PATH"
        );
    }

    #[test]
    fn country_windows_default_to_the_core_rules_and_are_read_strictly() {
        let defaults = config(&[]).unwrap().verification_windows;
        assert_eq!(defaults, WindowLimits::default());
        assert_eq!(defaults.per_country("US"), 100);
        assert_eq!(defaults.per_country("CA"), 20);

        let c = config(&[
            ("VERIFICATION_HOME_COUNTRY_HOURLY", " 3000 "),
            ("VERIFICATION_OTHER_COUNTRY_HOURLY", "600"),
        ])
        .unwrap();
        assert_eq!(c.verification_windows.per_country("US"), 3000);
        assert_eq!(c.verification_windows.per_country("CA"), 600);
        assert_eq!(
            c.verification_windows.per_user_per_hour,
            WindowLimits::default().per_user_per_hour,
            "the other windows are not configurable"
        );

        for name in [
            "VERIFICATION_HOME_COUNTRY_HOURLY",
            "VERIFICATION_OTHER_COUNTRY_HOURLY",
        ] {
            for bad in ["0", "-5", "+5", "1.5", "1e3", "ten", "99999999999999999999"] {
                let err = config(&[(name, bad)]).unwrap_err();
                assert_eq!(err.name, name, "{name}={bad}");
                assert!(err.reason.contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn base_path_and_origins_are_normalised() {
        let c = config(&[
            ("API_BASE_PATH", "/api/v2/"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example/ ,"),
        ])
        .unwrap();
        assert_eq!(c.api_base_path, "/api/v2");
        assert_eq!(
            c.auth.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(config(&[("API_BASE_PATH", "")]).unwrap().api_base_path, "");
    }
}

/// Every environment variable [`Config::from_env`] reads. `template.yaml` sets all of them
/// that a deployment needs (`tests/it/template_drift.rs` checks that), and the test below keeps
/// this list equal to what the configuration really reads.
pub const ENV_VARS: &[&str] = &[
    "LOG_TABLE",
    "PREFERENCES_TABLE",
    "VERIFICATION_TABLE",
    "TRANSACTIONAL_QUEUE_URL",
    "NOTIFICATIONS_QUEUE_URL",
    "TRANSACTIONAL_DLQ_URL",
    "NOTIFICATIONS_DLQ_URL",
    "SMS_SENDER",
    "ORIGINATION_IDENTITY",
    "CONFIGURATION_SET",
    "SMS_MAX_PRICE",
    "SMS_TTL_SECONDS",
    "SMS_PARTS_PER_SECOND",
    "SMS_MAX_SEGMENTS",
    "PROVIDER_ANSWERS_STOP",
    "PROVIDER_ANSWERS_HELP",
    "PROVIDER_ANSWERS_START",
    "BRAND_NAME",
    "SUPPORT_URL",
    "STOP_FOOTER",
    "MESSAGE_FREQUENCY",
    "STOP_FOOTER_ES",
    "MESSAGE_FREQUENCY_ES",
    "SUPPORT_EMAIL",
    "SUPPORT_PHONE",
    "DAILY_PROMOTIONAL_CAP",
    "MONTHLY_SPEND_CAP_USD",
    "TRANSACTIONAL_HARD_CAP_USD",
    "VERIFICATION_MONTHLY_BUDGET_USD",
    "ALLOWED_COUNTRIES",
    "API_BASE_PATH",
    "AUTH_MODE",
    "JWT_ALGORITHM",
    "JWT_SIGNING_KEY_SECRET_ID",
    "AUTH_USER_CLAIM",
    "ALLOWED_ORIGINS",
    "CODE_HMAC_KEY_SECRET_ID",
    "VERIFICATION_HOME_COUNTRY_HOURLY",
    "VERIFICATION_OTHER_COUNTRY_HOURLY",
    "SENDER_CONCURRENCY",
    "SENDER_MAX_CONCURRENCY",
    "SEND_CLAIM_LEASE_SECONDS",
    "SEND_TAKEOVER_WAIT_SECONDS",
    "SENDER_DEADLINE_MARGIN_SECONDS",
];

#[cfg(test)]
mod env_vars_tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    #[test]
    fn env_vars_lists_exactly_the_variables_the_config_reads() {
        let asked = RefCell::new(BTreeSet::new());
        Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        })
        .expect("defaults are valid");
        let listed: BTreeSet<String> = ENV_VARS.iter().map(|n| n.to_string()).collect();
        assert_eq!(listed.len(), ENV_VARS.len(), "ENV_VARS has a duplicate");
        assert_eq!(
            asked.into_inner(),
            listed,
            "ENV_VARS and Config::from_lookup disagree"
        );
    }

    #[test]
    fn every_listed_variable_is_used_when_set() {
        // Production-like values for every name: each one must be accepted.
        let vars: HashMap<String, String> = ENV_VARS
            .iter()
            .map(|name| {
                let value = match *name {
                    "SMS_SENDER" => "eum",
                    "ORIGINATION_IDENTITY" => {
                        "arn:aws:sms-voice:us-east-1:123456789012:phone-number/phone-1"
                    }
                    "SMS_TTL_SECONDS" | "SMS_MAX_SEGMENTS" | "DAILY_PROMOTIONAL_CAP" => "7",
                    "SENDER_CONCURRENCY" | "SENDER_MAX_CONCURRENCY" => "7",
                    "SEND_CLAIM_LEASE_SECONDS" | "SEND_TAKEOVER_WAIT_SECONDS" => "7",
                    "SENDER_DEADLINE_MARGIN_SECONDS" => "7",
                    "SMS_PARTS_PER_SECOND" | "MONTHLY_SPEND_CAP_USD" => "7",
                    "TRANSACTIONAL_HARD_CAP_USD" | "SMS_MAX_PRICE" => "7",
                    "PROVIDER_ANSWERS_STOP" | "PROVIDER_ANSWERS_HELP" => "true",
                    "PROVIDER_ANSWERS_START" => "true",
                    "VERIFICATION_MONTHLY_BUDGET_USD" => "7",
                    "VERIFICATION_HOME_COUNTRY_HOURLY" => "7",
                    "VERIFICATION_OTHER_COUNTRY_HOURLY" => "8",
                    "API_BASE_PATH" => "/set",
                    "AUTH_MODE" => "apigw_jwt",
                    "JWT_ALGORITHM" => "HS512",
                    "ALLOWED_COUNTRIES" => "GB",
                    _ => "set",
                };
                (name.to_string(), value.to_string())
            })
            .collect();
        let c = Config::from_map(&vars).expect("every variable accepted");
        assert_eq!(c.tables.log, "set");
        assert_eq!(c.sms.sender, SenderKind::EndUserMessaging);
        assert_eq!(c.sms.max_segments, 7);
        assert_eq!(c.sender_max_concurrency, 7);
        assert_eq!(c.claim_lease, jiff::SignedDuration::from_secs(7));
        assert_eq!(c.takeover_wait, jiff::SignedDuration::from_secs(7));
        assert_eq!(c.sender_deadline_margin, jiff::SignedDuration::from_secs(7));
        assert_eq!(c.allowed_countries, ["GB"]);
        assert_eq!(c.code_hmac_key_secret_id.as_deref(), Some("set"));
        assert_eq!(c.auth.jwt_key_secret_id.as_deref(), Some("set"));
        assert_eq!(c.auth.mode, AuthMode::ApigwJwt);
        assert_eq!(c.api_base_path, "/set");
        assert_eq!(
            c.sms.provider_answers,
            ProviderAnswers {
                stop: true,
                help: true,
                start: true
            }
        );
        assert_eq!(c.limits.verification_monthly_budget_micros, 7_000_000);
        assert_eq!(c.verification_windows.per_country_per_hour, 7);
        assert_eq!(c.verification_windows.per_other_country_per_hour, 8);
    }
}
