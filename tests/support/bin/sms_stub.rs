//! The SMS stub of the integration tests ([`integration_tests::SmsStub`]) as a process, for
//! clients that are not Rust tests (the JavaScript contract test, `scripts/contract_test.sh`):
//!
//! ```sh
//! cargo run -q -p integration-tests --bin sms-stub -- --port 0
//! # SMS_STUB_URL=http://127.0.0.1:41234
//! ```
//!
//! It serves `SendTextMessage` and `PutMessageFeedback` (point
//! `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2` at the printed URL) and, for the test client,
//! `GET /messages` (accepted messages: `destination`, `body`, `message_id`, ...) and
//! `GET /feedback`. The first line on stdout is `SMS_STUB_URL=...`; it runs until killed.

use integration_tests::SmsStub;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: sms-stub [--port PORT]   (PORT 0 or absent: a free port of 127.0.0.1)";

fn port_from_args() -> Result<u16, String> {
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--port" | "-p" => args.next().ok_or("--port needs a value")?,
            _ => match arg.strip_prefix("--port=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unknown argument `{arg}`")),
            },
        };
        port = value
            .parse()
            .map_err(|_| format!("`{value}` is not a port number"))?;
    }
    Ok(port)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let port = match port_from_args() {
        Ok(port) => port,
        Err(e) => {
            eprintln!("sms-stub: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stub = match SmsStub::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(stub) => stub,
        Err(e) => {
            eprintln!("sms-stub: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "SMS_STUB_URL={}", stub.endpoint())
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(out);
    // Serves until the process is killed.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
