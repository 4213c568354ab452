//! Keys from AWS Secrets Manager, read once per cold start (DESIGN §5): the app's JWT signing
//! key and the HMAC key of verification codes.
//!
//! A function that needs a key and cannot have a good one does not start: a missing secret
//! id, an unreadable secret, or a key shorter than [`MIN_KEY_BYTES`] fails init, so no
//! request is ever served with a guessable key. There is no built-in default; the local stack
//! creates both secrets in moto.

use aws_sdk_secretsmanager::Client;

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

#[cfg(test)]
mod tests {
    use super::*;

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
