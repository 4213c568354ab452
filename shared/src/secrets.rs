//! Keys from AWS Secrets Manager, read once per cold start (DESIGN §5): the app's JWT signing
//! key and the HMAC key of verification codes.
//!
//! A function that needs a key and cannot have a good one serves nothing: a missing secret
//! id, an unreadable secret, or a key shorter than [`MIN_KEY_BYTES`] is an error, so no
//! request is ever served with a guessable key. There is no built-in default; the local stack
//! creates both secrets in moto.
//!
//! The APIs read their keys with their first request ([`OnFirstRequest`]), not during init:
//! the read is a Secrets Manager round trip, and the runtime's first `/next` waits for all of
//! init. Read before `/next` it made `/next` 9–16 ms (the bare runtime: 1.7 ms); started
//! during init on a task of its own it still took the CPU `/next` needed (4.1 ms against
//! 2.9); read by the first request, `/next` is 2.9 ms and the first response as early as
//! either (docs/bench.md, "Cold start"). A request that finds no good key is answered 500
//! having done nothing ([`refuse`], after an error log line with the cause), and the next
//! request reads again, as Lambda would have re-run a failed init for it.

use crate::http::ApiError;
use aws_sdk_secretsmanager::Client;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::OnceCell;

/// Shortest key accepted: 256 bits, the output size of the HMAC-SHA256 it keys.
pub const MIN_KEY_BYTES: usize = 32;

/// A secret key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    /// A key of at least [`MIN_KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(SecretError::TooShort {
                len: bytes.len(),
                min: MIN_KEY_BYTES,
            });
        }
        Ok(Self(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({} bytes)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{variable} is not set: the function cannot start without its key")]
    NotConfigured { variable: &'static str },
    #[error("reading secret {secret_id} failed: {message}")]
    Read { secret_id: String, message: String },
    #[error("secret {secret_id} has no value")]
    Empty { secret_id: String },
    #[error("the key is {len} bytes; at least {min} are required")]
    TooShort { len: usize, min: usize },
    #[error("secret {secret_id}: {source}")]
    Invalid {
        secret_id: String,
        #[source]
        source: Box<SecretError>,
    },
}

/// Reads the key stored in the secret named by `secret_id` (the value of environment variable
/// `variable`): its `SecretString` as UTF-8 bytes, or its `SecretBinary`.
pub async fn read_key(
    client: &Client,
    variable: &'static str,
    secret_id: Option<&str>,
) -> Result<SecretKey, SecretError> {
    let secret_id = secret_id.ok_or(SecretError::NotConfigured { variable })?;
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            secret_id: secret_id.to_owned(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    let bytes = match (output.secret_string, output.secret_binary) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(blob)) => blob.into_inner(),
        (None, None) => {
            return Err(SecretError::Empty {
                secret_id: secret_id.to_owned(),
            });
        }
    };
    SecretKey::new(bytes).map_err(|e| SecretError::Invalid {
        secret_id: secret_id.to_owned(),
        source: Box::new(e),
    })
}

type Read<T> = Pin<Box<dyn Future<Output = Result<T, SecretError>> + Send>>;

/// What a function builds from its keys (its handler's state), built by the first request
/// that needs it: [`OnFirstRequest::get`] reads the keys and builds it once, and reads again
/// after a failed read (a failure is never kept).
pub struct OnFirstRequest<T> {
    value: OnceCell<T>,
    read: Box<dyn Fn() -> Read<T> + Send + Sync>,
}

impl<T> OnFirstRequest<T> {
    /// `read` reads the keys and builds the value; nothing runs until the first [`Self::get`].
    pub fn new<F, Fut>(read: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, SecretError>> + Send + 'static,
    {
        Self {
            value: OnceCell::new(),
            read: Box::new(move || Box::pin(read())),
        }
    }

    /// The value, read and built by the first call that needs it.
    pub async fn get(&self) -> Result<&T, SecretError> {
        self.value.get_or_try_init(|| (self.read)()).await
    }
}

/// The answer to a request that came before a good key: 500 with the request id and no cause
/// (DESIGN §5), after an error log line with the cause. Nothing of the request is done.
pub fn refuse(
    method: &http::Method,
    path: &str,
    request_id: &str,
    error: &SecretError,
) -> http::Response<String> {
    tracing::error!(%error, "no usable key: request refused with 500; the next request reads the key again");
    crate::http::answer(method, path, request_id, Err(ApiError::internal()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_failed_read_is_read_again_and_a_good_one_is_kept() {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        // The first read finds a short key, the next ones a good key.
        let keys = OnFirstRequest::new(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { SecretKey::new(vec![7; if n == 0 { 16 } else { 32 }]) }
        });
        assert_eq!(
            reads.load(Ordering::SeqCst),
            0,
            "nothing is read before a request"
        );
        let first = keys.get().await.unwrap_err();
        assert!(
            matches!(first, SecretError::TooShort { len: 16, .. }),
            "{first}"
        );
        assert_eq!(keys.get().await.unwrap().expose(), &[7; 32][..]);
        assert_eq!(keys.get().await.unwrap().expose(), &[7; 32][..]);
        assert_eq!(reads.load(Ordering::SeqCst), 2, "a good key is read once");
    }

    #[test]
    fn a_refusal_is_a_500_with_the_request_id_and_no_cause() {
        let error = SecretError::NotConfigured {
            variable: "JWT_SIGNING_KEY_SECRET_ID",
        };
        let response = refuse(&http::Method::GET, "/api/v1/x", "req-1", &error);
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["code"], "internal_error");
        assert_eq!(body["request_id"], "req-1");
        assert!(
            !response.body().contains("JWT_SIGNING"),
            "{}",
            response.body()
        );
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(matches!(
            SecretKey::new(vec![1; 31]),
            Err(SecretError::TooShort { len: 31, min: 32 })
        ));
        let key = SecretKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(32 bytes)");
    }
}
