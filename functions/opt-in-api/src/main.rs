//! Wiring only (`sms_shared::api_main`): the app's JWT key, read at cold start, and the
//! handler of `lib.rs`.

use lambda_http::Error;
use opt_in_api::{State, handler};
use sms_shared::api_main::{self, Clients};
use sms_shared::auth::Authenticator;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let read_state = |c: Clients| async move {
        let auth = Authenticator::load(&c.config.auth, &c.secrets).await?;
        Ok(State::new(c.config, auth, c.dynamodb, c.sender, c.clock))
    };
    api_main::serve(read_state, handler).await
}
