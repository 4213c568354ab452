//! One moto server per test process.
//!
//! `make test` starts one server and exports `SMS_TEST_MOTO_URL`; every test binary then
//! shares it. Without that variable the first test that asks starts
//! `<repo>/scripts/moto_server.py` (moto, one request at a time) on a free port; it dies with the test process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Variable that names an already running moto server (`http://127.0.0.1:5000`).
pub const MOTO_URL_VAR: &str = "SMS_TEST_MOTO_URL";

/// How long a freshly started server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried when the port picked was taken by someone else in the meantime.
const START_ATTEMPTS: usize = 3;

static ENDPOINT: OnceCell<String> = OnceCell::const_new();

/// URL of this process's moto server, started on first use.
///
/// # Panics
/// When the server cannot be started or does not answer within 30 s; the message says how
/// to fix it (usually: run `scripts/venv.sh`).
pub async fn moto_endpoint() -> &'static str {
    ENDPOINT
        .get_or_init(|| async {
            if let Some(url) = std::env::var(MOTO_URL_VAR)
                .ok()
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty())
            {
                return url;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            // The child is started from a thread that never ends: PR_SET_PDEATHSIG fires when
            // the *thread* that forked dies, and a test's own thread ends with the test.
            std::thread::Builder::new()
                .name("moto-server".into())
                .spawn(move || {
                    let started = start_server();
                    let (url, child) = match started {
                        Ok((url, child)) => (Ok(url), Some(child)),
                        Err(e) => (Err(e), None),
                    };
                    let _ = tx.send(url);
                    let _child = child;
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawn the moto-server thread");
            match rx.await {
                Ok(Ok(url)) => url,
                Ok(Err(message)) => panic!("{message}"),
                Err(_) => panic!("the moto-server thread ended without an answer"),
            }
        })
        .await
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the server and waits until it answers; blocking, run on its own thread.
fn start_server() -> Result<(String, Child), String> {
    // moto, with requests applied one at a time (see scripts/moto_server.py).
    let binary = repo_root().join(".venv/bin/python");
    let script = repo_root().join("scripts/moto_server.py");
    if !binary.exists() {
        return Err(format!(
            "{} is missing: run `scripts/venv.sh` once to create the virtualenv with moto \
             (or export {MOTO_URL_VAR} with the URL of a running moto server)",
            binary.display()
        ));
    }
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port().map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
        let log_path = std::env::temp_dir().join(format!("moto-{}-{port}.log", std::process::id()));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot reuse {}: {e}", log_path.display()))?;
        let mut command = Command::new(&binary);
        command
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("parent exited"));
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if answers(addr) {
                // The server keeps writing to the unlinked file, freed when it exits: no
                // log piles up in the temp directory, however many requests it serves.
                let _ = std::fs::remove_file(&log_path);
                return Ok((format!("http://127.0.0.1:{port}"), child));
            }
            if let Ok(Some(status)) = child.try_wait() {
                last_error = format!(
                    "moto_server exited with {status} before answering on port {port}; its log ({}):\n{}",
                    log_path.display(),
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "moto_server did not answer on port {port} within {READY_TIMEOUT:?}; its log ({}):\n{}\n\
                     If the virtualenv is broken, run `scripts/venv.sh`.",
                    log_path.display(),
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(last_error)
}

/// True when an HTTP server answers at `addr`.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
