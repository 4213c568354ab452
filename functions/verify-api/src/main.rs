//! Wiring only: configuration, both keys and the clients, built once; the handler of `lib.rs`.

use lambda_http::{Error, run, service_fn};
use sms_shared::auth::Authenticator;
use sms_shared::secrets;
use sms_shared::sms::AnySender;
use sms_shared::{Config, SystemClock};
use std::sync::Arc;
use verify_api::{State, handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // The phone number metadata takes ~7 ms to load: start it now, alongside the runtime.
    sms_shared::phone::warm_up_in_background();
    let config = Config::from_env()?;
    let sdk = sms_shared::aws::load_sdk_config().await;
    // Both keys in parallel: one round trip of init, not two.
    let secrets_client = aws_sdk_secretsmanager::Client::new(&sdk);
    let (auth, code_key) = tokio::try_join!(
        Authenticator::load(&config.auth, &secrets_client),
        secrets::read_key(
            &secrets_client,
            "CODE_HMAC_KEY_SECRET_ID",
            config.code_hmac_key_secret_id.as_deref(),
        ),
    )?;
    let sender = AnySender::from_config(&config, &sdk);
    let state = State::new(
        config,
        auth,
        code_key,
        aws_sdk_dynamodb::Client::new(&sdk),
        sender,
        Arc::new(SystemClock),
    );
    let state = &state;
    run(service_fn(move |request| handler(state, request))).await
}
