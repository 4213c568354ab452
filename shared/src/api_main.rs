//! The wiring both HTTP APIs share: configuration, the clients built once per cold start, the
//! handler's state read at cold start ([`ReadAtColdStart`]: it needs the keys), the phone
//! metadata warmed up with the first event, and the Lambda loop.

use crate::secrets::{ReadAtColdStart, SecretError};
use crate::sms::AnySender;
use crate::{Clock, Config, SystemClock};
use lambda_http::{Body, Error, Request, Response, run, service_fn};
use std::future::Future;
use std::sync::{Arc, Once};

/// What an API's state is built from, made once per cold start.
pub struct Clients {
    pub config: Config,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Opt-in confirmations (DESIGN §8), from the configured origination identity.
    pub sender: AnySender,
    pub clock: Arc<dyn Clock>,
}

/// Runs an API: `read_state` reads its keys and builds its state from the [`Clients`],
/// started at init and awaited by the first request (a read that fails ends the process:
/// `sms_shared::secrets`); `handler` answers each request with it.
pub async fn serve<S, Read, ReadState, Handler, Answer>(
    read_state: Read,
    handler: Handler,
) -> Result<(), Error>
where
    Read: FnOnce(Clients) -> ReadState,
    ReadState: Future<Output = Result<S, SecretError>> + Send + 'static,
    S: Send + Sync + 'static,
    Handler: Fn(&'static S, Request) -> Answer + Sync,
    Answer: Future<Output = Result<Response<Body>, Error>> + Send,
{
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = crate::aws::load_sdk_config().await;
    let clients = Clients {
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        sender: AnySender::from_config(&config, &sdk),
        clock: Arc::new(SystemClock),
        config,
    };
    // One per process, for its whole life: leaked, so the handler may borrow the state.
    let state: &'static ReadAtColdStart<S> =
        Box::leak(Box::new(ReadAtColdStart::start(read_state(clients))));
    // The phone number metadata (~7 ms of CPU) loads on an idle-priority thread started by
    // the first event, while it awaits the keys (docs/bench.md, "Cold start").
    let warm_up = Once::new();
    let (warm_up, handler) = (&warm_up, &handler);
    run(service_fn(move |request: Request| async move {
        warm_up.call_once(crate::phone::warm_up_in_background);
        let state = state.get().await;
        handler(state, request).await
    }))
    .await
}
