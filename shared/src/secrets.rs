//! Keys from AWS Secrets Manager, read once per cold start (DESIGN §5): the app's JWT signing
//! key and the HMAC key of verification codes.
//!
//! A function that needs a key and cannot have a good one serves nothing: a missing secret
//! id, an unreadable secret, or a key shorter than [`MIN_KEY_BYTES`] is an error, so no
//! request is ever served with a guessable key. There is no built-in default; the local stack
//! creates both secrets in moto.
//!
//! The APIs read their keys at cold start ([`ReadAtColdStart`]), as DESIGN §5 requires, on a
//! task started at init: the read is a Secrets Manager round trip, and read before the
//! runtime's first `/next` it made `/next` 16–18 ms (the bare runtime: 1.7 ms); on its own
//! task `/next` does not wait for it, and the first request awaits it (docs/bench.md, "Cold
//! start"). A missing, unreadable or short key ends the process before it answers anything
//! ([`refuse_to_start`]): Lambda reports a runtime exit, and the next invocation is a fresh
//! cold start that reads again, as after a failed init.

use aws_sdk_secretsmanager::Client;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::SetOnce;

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

/// What a function builds from its keys (its handler's state), read and built at cold start
/// on a task of its own, so the runtime's first `/next` does not wait for the round trip.
/// Requests await it; a read that fails ends the process ([`refuse_to_start`]), so no
/// request ever finds no value.
pub struct ReadAtColdStart<T> {
    value: Arc<SetOnce<T>>,
}

impl<T: Send + Sync + 'static> ReadAtColdStart<T> {
    /// Starts `read` now (it needs a running Tokio runtime).
    pub fn start<F>(read: F) -> Self
    where
        F: Future<Output = Result<T, SecretError>> + Send + 'static,
    {
        Self::start_or(read, refuse_to_start)
    }

    /// [`Self::start`], with `refuse` called with a failed read's error.
    fn start_or<F>(read: F, refuse: fn(&SecretError) -> !) -> Self
    where
        F: Future<Output = Result<T, SecretError>> + Send + 'static,
    {
        let value = Arc::new(SetOnce::new());
        let set = value.clone();
        tokio::spawn(async move {
            let value = read.await.unwrap_or_else(|error| refuse(&error));
            // The only setter: this task, once.
            let _ = set.set(value);
        });
        Self { value }
    }

    /// The value, once the read started at cold start has finished.
    pub async fn get(&self) -> &T {
        self.value.wait().await
    }
}

/// Ends a process that has no good key, before it answers or does anything (DESIGN §5: "a
/// deployed function refuses to start with a missing or short key"), after an error log line
/// with the cause (the secret id and what is wrong, never the key). Lambda reports the
/// invocation in progress, if any, as a runtime exit error, and starts the next one cold.
pub fn refuse_to_start(error: &SecretError) -> ! {
    tracing::error!(%error, "no usable key: the function refuses to start");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    fn refused(error: &SecretError) -> ! {
        panic!("refused to start: {error}")
    }

    #[tokio::test]
    async fn the_read_starts_at_cold_start_and_every_request_gets_its_one_value() {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let (started, has_started) = oneshot::channel();
        let keys = ReadAtColdStart::start_or(
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = started.send(());
                SecretKey::new(vec![7; 32])
            },
            refused,
        );
        has_started.await.expect("the read ran before any request");
        let (first, second) = tokio::join!(keys.get(), keys.get());
        assert_eq!(first.expose(), &[7; 32][..]);
        assert_eq!(second.expose(), &[7; 32][..]);
        assert_eq!(keys.get().await.expose(), &[7; 32][..]);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the key is read once");
    }

    /// Where the refusal of the next test reports its cause (a `fn` pointer captures nothing).
    static REFUSAL: Mutex<Option<oneshot::Sender<String>>> = Mutex::new(None);

    fn reported(error: &SecretError) -> ! {
        if let Some(report) = REFUSAL.lock().unwrap().take() {
            let _ = report.send(error.to_string());
        }
        panic!("refused to start: {error}")
    }

    #[tokio::test]
    async fn a_short_key_is_refused_at_cold_start_without_a_request() {
        let (report, refusal) = oneshot::channel();
        *REFUSAL.lock().unwrap() = Some(report);
        let _keys = ReadAtColdStart::start_or(async { SecretKey::new(vec![7; 16]) }, reported);
        let why = refusal.await.expect("refused before any request");
        assert_eq!(why, "the key is 16 bytes; at least 32 are required");
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
