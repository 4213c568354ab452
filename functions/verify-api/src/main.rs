//! Wiring only (`sms_shared::api_main`): both keys, read at cold start, and the handler of
//! `lib.rs`.

use lambda_http::Error;
use sms_shared::api_main::{self, Clients};
use sms_shared::auth::Authenticator;
use sms_shared::secrets;
use verify_api::{State, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Both keys in parallel: one round trip.
    let read_state = |c: Clients| async move {
        let (auth, code_key) = tokio::try_join!(
            Authenticator::load(&c.config.auth, &c.secrets),
            secrets::read_key(
                &c.secrets,
                "CODE_HMAC_KEY_SECRET_ID",
                c.config.code_hmac_key_secret_id.as_deref(),
            ),
        )?;
        Ok(State::new(
            c.config, auth, code_key, c.dynamodb, c.sender, c.clock,
        ))
    };
    api_main::serve(read_state, handler).await
}
