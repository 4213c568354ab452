//! A minimal local Lambda Runtime API (the part a custom runtime talks to), on 127.0.0.1.
//!
//! * `GET /2018-06-01/runtime/invocation/next` waits for an invocation queued with
//!   [`RuntimeApi::invoke`] and answers with its event and the `Lambda-Runtime-*` headers;
//! * `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` end it;
//! * `POST /2018-06-01/runtime/init/error` reports a failed initialisation.
//!
//! Every request is reported, with the instant it arrived, as an [`ApiEvent`], which is what
//! the cold-start measurement (`bench`) and the process tests ([`crate::lambda_process`])
//! read. One instance serves one function process.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio::task::{JoinHandle, JoinSet};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// What the function process did, and when the request arrived.
#[derive(Debug)]
pub enum ApiEvent {
    /// It asked for the next invocation.
    Next(Instant),
    /// It answered invocation `id`.
    Response {
        id: String,
        at: Instant,
        body: Bytes,
    },
    /// It reported invocation `id` as failed.
    Error {
        id: String,
        at: Instant,
        body: Bytes,
    },
    /// Its initialisation failed.
    InitError { body: Bytes },
}

struct Invocation {
    id: String,
    body: Bytes,
}

struct Shared {
    function_arn: String,
    queue: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    events: mpsc::UnboundedSender<ApiEvent>,
}

/// The server; stops when dropped.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    invocations: mpsc::UnboundedSender<Invocation>,
    events: mpsc::UnboundedReceiver<ApiEvent>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1, in a task of the current runtime.
    pub async fn start(function_name: &str) -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API on 127.0.0.1");
        let addr = listener.local_addr().expect("Runtime API address");
        let (invocations, queue) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            queue: Mutex::new(queue),
            events: events_tx,
        });
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| handle(shared.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi {
            addr,
            invocations,
            events,
            server,
        }
    }

    /// Queues an invocation for the next `/next` request.
    pub fn invoke(&self, id: String, body: Vec<u8>) {
        let _ = self.invocations.send(Invocation {
            id,
            body: Bytes::from(body),
        });
    }

    /// The next thing the process did, or `None` after `timeout`.
    pub async fn event(&mut self, timeout: Duration) -> Option<ApiEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

type ApiResponse = Response<Full<Bytes>>;

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<ApiResponse, Infallible> {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::GET && path == NEXT {
        let _ = shared.events.send(ApiEvent::Next(at));
        let invocation = shared.queue.lock().await.recv().await;
        let Some(invocation) = invocation else {
            // The benchmark is over for this process: keep it waiting, as Lambda does
            // with a frozen environment.
            std::future::pending::<()>().await;
            unreachable!()
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 30_000;
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &invocation.id)
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header("lambda-runtime-invoked-function-arn", &shared.function_arn)
            .header(
                "lambda-runtime-trace-id",
                "Root=1-67890abc-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0",
            )
            .body(Full::new(invocation.body))
            .expect("valid response");
        return Ok(response);
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let event = if method != Method::POST {
        None
    } else if path == INIT_ERROR {
        Some(ApiEvent::InitError { body })
    } else if let Some(rest) = path.strip_prefix(INVOCATION) {
        if let Some(id) = rest.strip_suffix("/response") {
            Some(ApiEvent::Response {
                id: id.to_owned(),
                at,
                body,
            })
        } else {
            rest.strip_suffix("/error").map(|id| ApiEvent::Error {
                id: id.to_owned(),
                at,
                body,
            })
        }
    } else {
        None
    };
    let status = match event {
        Some(event) => {
            let _ = shared.events.send(event);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")))
        .expect("valid response"))
}
