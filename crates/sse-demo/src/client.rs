//! The demo's own HTTP client, for what the faults do to the variants directly: read
//! `/metrics`, publish, subscribe as a reference, and hold streams that never read.
//!
//! Every call is bounded by [`REQUEST_TIMEOUT`], so a variant that stopped answering costs a
//! fault a few seconds, never a hang.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::watch::{EventScanner, Scanned};

/// How long one request may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The receive buffer of a stream that never reads: small, so that its window closes soon.
const STALLED_BUFFER: u32 = 4096;

/// Turns a timeout into an error that says what timed out.
async fn bounded<T>(what: &str, work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{what}: no answer")))?
}

/// An HTTP/1.1 connection to a variant, driven by a task of its own.
async fn connect(addr: SocketAddr) -> io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A request to `addr`.
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Bytes,
) -> io::Result<http::Request<Full<Bytes>>> {
    http::Request::builder()
        .method(method)
        .uri(target)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(io::Error::other)
}

/// Sends `request` on `sender` and reads the whole answer.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> io::Result<(u16, String)> {
    let response = sender
        .send_request(request)
        .await
        .map_err(io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A variant's `/metrics`, as text.
#[derive(Debug, Clone, Default)]
pub struct Metrics(String);

impl Metrics {
    /// Reads `/metrics` from the variant at `addr`.
    pub async fn read(addr: SocketAddr) -> io::Result<Metrics> {
        bounded("GET /metrics", async {
            let mut sender = connect(addr).await?;
            let (status, body) =
                exchange(&mut sender, request(addr, "GET", "/metrics", Bytes::new())?).await?;
            if status != 200 {
                return Err(io::Error::other(format!("GET /metrics answered {status}")));
            }
            Ok(Metrics(body))
        })
        .await
    }

    /// The sample `name`, summed over its labels; `None` if the variant has no such metric.
    pub fn get(&self, name: &str) -> Option<f64> {
        let mut total = None;
        for line in self.0.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                continue;
            }
            if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *total.get_or_insert(0.0) += value;
            }
        }
        total
    }

    /// The sample `name`, 0 when absent (every figure the faults read is a count).
    pub fn count(&self, name: &str) -> f64 {
        self.get(name).unwrap_or(0.0)
    }
}

/// A keep-alive connection that publishes.
pub struct Publisher {
    /// The variant.
    addr: SocketAddr,
    /// The connection.
    sender: SendRequest<Full<Bytes>>,
}

impl Publisher {
    /// Opens a connection to the variant at `addr`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Publisher> {
        let sender = bounded("connecting to publish", connect(addr)).await?;
        Ok(Publisher { addr, sender })
    }

    /// Publishes one event; returns its id.
    pub async fn publish(&mut self, event: &str, topic: &str, data: &str) -> io::Result<String> {
        let body = serde_json::json!({ "event": event, "topic": topic, "data": data }).to_string();
        let request = request(self.addr, "POST", "/publish", Bytes::from(body))?;
        let (status, answer) =
            bounded("POST /publish", exchange(&mut self.sender, request)).await?;
        let id = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|receipt| receipt["id"].as_str().map(str::to_owned));
        match (status, id) {
            (202, Some(id)) => Ok(id),
            _ => Err(io::Error::other(format!(
                "POST /publish answered {status}: {answer}"
            ))),
        }
    }
}

/// A stream read as the page reads it, to compare the page with.
pub struct Subscriber {
    /// The response body.
    body: Incoming,
    /// Reads events out of it.
    scanner: EventScanner,
    /// Events read but not yet taken.
    ready: VecDeque<Scanned>,
}

impl Subscriber {
    /// Opens `GET /stream?query` on the variant at `addr`, resuming after `last_event_id`;
    /// returns the status and, for a 200, the stream.
    pub async fn open(
        addr: SocketAddr,
        query: &str,
        last_event_id: Option<&str>,
    ) -> io::Result<(u16, Option<Subscriber>)> {
        bounded("GET /stream", async {
            let mut sender = connect(addr).await?;
            let mut request = request(addr, "GET", &format!("/stream?{query}"), Bytes::new())?;
            if let Some(id) = last_event_id {
                let value = http::HeaderValue::from_str(id).map_err(io::Error::other)?;
                request.headers_mut().insert("last-event-id", value);
            }
            let response = sender
                .send_request(request)
                .await
                .map_err(io::Error::other)?;
            let status = response.status().as_u16();
            let stream = (status == 200).then(|| Subscriber {
                body: response.into_body(),
                scanner: EventScanner::default(),
                ready: VecDeque::new(),
            });
            Ok((status, stream))
        })
        .await
    }

    /// The next event, waiting until `deadline` at most; `None` when the stream ended.
    pub async fn next(&mut self, deadline: Instant) -> io::Result<Option<Scanned>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no event in time"))?;
            match frame {
                None => return Ok(None),
                Some(Err(error)) => return Err(io::Error::other(error)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.ready.extend(self.scanner.feed(&data));
                    }
                }
            }
        }
    }

    /// Reads events with ids until one is `id` or `deadline` passes; returns the ids read.
    pub async fn ids_through(&mut self, id: &str, deadline: Instant) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        while ids.last().map(String::as_str) != Some(id) {
            match self.next(deadline).await? {
                Some(event) => ids.extend(event.id),
                None => break,
            }
        }
        Ok(ids)
    }
}

/// A stream that reads its answer's first bytes (so it is surely subscribed) and then never
/// reads again, through a small receive buffer: a reader that stopped reading. It asks for
/// `Connection: close`, so that once it does read, the stream's end is the socket's.
pub async fn stalled(addr: SocketAddr, query: &str) -> io::Result<TcpStream> {
    bounded("opening a stalled stream", async {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Set before connecting, so that the window it advertises is small from the start.
        socket.set_recv_buffer_size(STALLED_BUFFER)?;
        let mut stream = socket.connect(addr).await?;
        let head = format!(
            "GET /stream?{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        // Up to the welcome, which the stream sends once it has joined the hub.
        let mut got = Vec::new();
        let mut buffer = [0u8; 1024];
        while !got.windows(7).any(|w| w == b"welcome") && got.len() < 64 * 1024 {
            match stream.read(&mut buffer).await? {
                0 => return Err(io::Error::other("the stream ended before its welcome")),
                n => got.extend_from_slice(&buffer[..n]),
            }
        }
        Ok(stream)
    })
    .await
}
