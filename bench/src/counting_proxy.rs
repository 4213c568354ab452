//! A TCP proxy in front of moto that counts the DynamoDB requests passing through it, by
//! operation (`X-Amz-Target: DynamoDB_20120810.<Operation>`), whoever makes them: our sender's
//! binary and the Python peer alike, so requests per message are read from the run instead of
//! assumed. Bytes are forwarded untouched; only the client's side is read for the header.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Requests per DynamoDB operation.
pub type Counts = BTreeMap<String, usize>;

/// A running proxy; dropping it stops it (open connections end with their tasks).
pub struct CountingProxy {
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    /// Forwards 127.0.0.1:<random port> to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> CountingProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let counts = Arc::new(Mutex::new(Counts::new()));
        let task = {
            let counts = counts.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let counts = counts.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&upstream).await {
                            forward(client, server, counts).await;
                        }
                    });
                }
            })
        };
        CountingProxy { addr, counts, task }
    }

    /// `http://127.0.0.1:<port>`: the `AWS_ENDPOINT_URL` of the processes to count.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counts since the last call, and starts again from zero.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().expect("counts lock"))
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, server: TcpStream, counts: Arc<Mutex<Counts>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    });
    let mut scanner = TargetScanner::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let found = scanner.feed(&buf[..n]);
        if !found.is_empty() {
            let mut counts = counts.lock().expect("counts lock");
            for operation in found {
                *counts.entry(operation).or_default() += 1;
            }
        }
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = server_write.shutdown().await;
    let _ = answers.await;
}

const HEADER: &[u8] = b"\nx-amz-target:";
const SERVICE: &str = "dynamodb_20120810.";
/// Longest header line kept between reads, so a header split across two reads is found.
const CARRY: usize = 128;

/// Finds `X-Amz-Target: DynamoDB_20120810.<Operation>` header lines in a request stream,
/// across read boundaries.
#[derive(Default)]
struct TargetScanner {
    pending: Vec<u8>,
}

impl TargetScanner {
    /// The DynamoDB operations whose header line completed in this chunk.
    fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let lower = self.pending.to_ascii_lowercase();
        let mut found = Vec::new();
        let mut consumed = 0;
        let mut from = 0;
        while let Some(at) = find(&lower[from..], HEADER).map(|i| i + from) {
            let value_start = at + HEADER.len();
            let Some(end) = lower[value_start..].iter().position(|&b| b == b'\r') else {
                // The line is not complete yet: look at it again with the next chunk.
                break;
            };
            let value = String::from_utf8_lossy(&self.pending[value_start..value_start + end]);
            let value = value.trim();
            if value.to_ascii_lowercase().starts_with(SERVICE) {
                found.push(value[SERVICE.len()..].to_owned());
            }
            consumed = value_start + end;
            from = consumed;
        }
        let keep_from = consumed.max(self.pending.len().saturating_sub(CARRY));
        // An incomplete header line must survive even when it is longer than the carry.
        let keep_from = match find(&lower[consumed..], HEADER) {
            Some(i) => keep_from.min(consumed + i),
            None => keep_from,
        };
        self.pending.drain(..keep_from);
        found
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"POST / HTTP/1.1\r\nhost: x\r\nX-Amz-Target: DynamoDB_20120810.UpdateItem\r\ncontent-length: 2\r\n\r\n{}";

    #[test]
    fn counts_each_request_once_however_the_stream_is_cut() {
        let stream = [
            REQUEST,
            REQUEST,
            b"POST / HTTP/1.1\r\nx-amz-target: AmazonSQS.SendMessage\r\n\r\n",
        ]
        .concat();
        for cut in 1..stream.len() {
            let mut scanner = TargetScanner::default();
            let mut found = Vec::new();
            for chunk in stream.chunks(cut) {
                found.extend(scanner.feed(chunk));
            }
            assert_eq!(found, ["UpdateItem", "UpdateItem"], "chunks of {cut}");
        }
    }
}
