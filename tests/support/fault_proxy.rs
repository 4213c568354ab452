//! A TCP proxy between an SDK client and moto that can cut the line: while it is broken, open
//! connections are closed and new ones are refused, and moto keeps its data. It stands in for
//! "DynamoDB unreachable" in the middle of a batch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    broken: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:<random port> to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let broken = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let task = {
            let broken = broken.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if broken.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let mut cut = cut.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        FaultProxy {
            addr,
            broken,
            cut,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: use as the client's endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every open connection and refuses new ones until [`FaultProxy::heal`].
    pub fn break_line(&self) {
        self.broken.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn heal(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
