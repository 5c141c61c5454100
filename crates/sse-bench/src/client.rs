//! The load generator's two kinds of connection: an SSE subscriber and a keep-alive publisher.
//!
//! Both speak HTTP/1.1 over a raw `TcpStream` (or TLS over one, for a target that has a TLS
//! configuration) with the parsing in [`crate::wire`], so that a subscriber costs one task,
//! one socket, one read buffer and a few hundred bytes of state. A subscriber can also be
//! one stream of an HTTP/2 connection that it shares with others ([`H2Pool`]): hyper's
//! client connection does the framing, and the subscriber scans the DATA frames it gets.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::OnceCell;

use crate::tls::{self, Io};
use crate::wire::{ChunkedDecoder, Frame, Scanner, parse_response_head};

/// Where the server under test listens.
#[derive(Debug, Clone)]
pub struct Target {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Bearer token for `/publish`, if the server wants one.
    pub token: Option<String>,
    /// For an HTTPS server: the TLS configuration every raw-client connection goes through
    /// (trusting the server's certificate, offering `http/1.1` alone); `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// A plain-HTTP server at `addr`, its `Host` the address itself.
    pub fn plain(addr: SocketAddr, token: Option<String>) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            token,
            tls: None,
        }
    }
}

/// How a stream's body is framed.
#[derive(Debug)]
enum Body {
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedDecoder),
    /// Until the server closes (`Connection: close` framing).
    UntilClose,
}

impl Body {
    /// Whether a chunked body has ended.
    fn finished(&self) -> bool {
        matches!(self, Self::Chunked(d) if d.is_done())
    }
}

/// Where a stream's bytes come from.
enum Source {
    /// A connection of its own, HTTP/1.1.
    H1 {
        /// The connection.
        io: Io,
        /// The read buffer; its size is the main per-connection cost, so callers choose it.
        buf: Vec<u8>,
        /// Body framing.
        body: Body,
    },
    /// One stream of a shared HTTP/2 connection: its response body, DATA frame by frame.
    H2(Incoming),
}

/// An open `GET /stream`.
pub struct Subscriber {
    /// The stream's bytes.
    source: Source,
    /// Body bytes that arrived with the head, handed out on the first read.
    leftover: Vec<u8>,
    /// Frame scanner.
    scanner: Scanner,
}

/// Why opening a stream failed.
#[derive(Debug)]
pub enum OpenError {
    /// Connecting, writing or reading failed.
    Io(io::Error),
    /// The server answered something other than 200 (e.g. 503 past its client limit).
    Status(u16),
    /// The response was not HTTP.
    Protocol(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Status(s) => write!(f, "HTTP {s}"),
            Self::Protocol(p) => write!(f, "{p}"),
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl Subscriber {
    /// Connects and sends `GET /stream`, optionally with `Last-Event-ID`; returns once the
    /// response head has been read. `rcvbuf` shrinks the receive buffer (slow consumer).
    pub async fn open(
        target: &Target,
        last_event_id: Option<&str>,
        buf_size: usize,
        rcvbuf: Option<u32>,
    ) -> Result<Self, OpenError> {
        Self::open_path(target, "/stream", last_event_id, buf_size, rcvbuf).await
    }

    /// [`Self::open`] for `path` (`/stream` with a query, such as `?topic=t`).
    pub async fn open_path(
        target: &Target,
        path: &str,
        last_event_id: Option<&str>,
        buf_size: usize,
        rcvbuf: Option<u32>,
    ) -> Result<Self, OpenError> {
        let socket = if target.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(size) = rcvbuf {
            // Must be set before connecting for the window to be small from the start.
            socket.set_recv_buffer_size(size)?;
        }
        let mut io = tls::connect(target, socket).await?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
            target.host
        );
        if let Some(id) = last_event_id {
            request.push_str("Last-Event-ID: ");
            request.push_str(id);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        io.write_all(request.as_bytes()).await?;
        // TLS may hold the last record back until flushed; plain TCP has nothing to flush.
        io.flush().await?;
        let mut head = Vec::with_capacity(512);
        let mut buf = vec![0u8; buf_size.max(512)];
        let (parsed, len) = loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Err(OpenError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            head.extend_from_slice(&buf[..n]);
            match parse_response_head(&head) {
                Ok(Some(found)) => break found,
                Ok(None) if head.len() > 16 * 1024 => {
                    return Err(OpenError::Protocol("response head over 16 KiB".into()));
                }
                Ok(None) => {}
                Err(e) => return Err(OpenError::Protocol(e)),
            }
        };
        if parsed.status != 200 {
            return Err(OpenError::Status(parsed.status));
        }
        let body = if parsed.chunked {
            Body::Chunked(ChunkedDecoder::new())
        } else {
            Body::UntilClose
        };
        head.drain(..len);
        head.shrink_to_fit();
        Ok(Self {
            source: Source::H1 { io, buf, body },
            leftover: head,
            scanner: Scanner::new(),
        })
    }

    /// Reads once and passes every completed frame to `on_frame`.
    ///
    /// Returns `Ok(false)` at the end of the stream (EOF, the last chunk, the end of the
    /// HTTP/2 stream).
    pub async fn read_frames(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) -> io::Result<bool> {
        if !self.leftover.is_empty() {
            let leftover = std::mem::take(&mut self.leftover);
            return self.feed(&leftover, on_frame);
        }
        let Self {
            source, scanner, ..
        } = self;
        match source {
            Source::H1 { io, buf, body } => {
                let n = io.read(buf).await?;
                if n == 0 {
                    return Ok(false);
                }
                match body {
                    Body::Chunked(decoder) => decoder
                        .decode(&buf[..n], |bytes| scanner.feed(bytes, on_frame))
                        .map_err(io::Error::other)?,
                    Body::UntilClose => scanner.feed(&buf[..n], on_frame),
                }
                Ok(!body.finished())
            }
            Source::H2(incoming) => match incoming.frame().await {
                None => Ok(false),
                Some(Err(e)) => Err(io::Error::other(e)),
                Some(Ok(frame)) => {
                    // Trailers carry no events; only DATA frames are scanned.
                    if let Some(data) = frame.data_ref() {
                        scanner.feed(data, on_frame);
                    }
                    Ok(true)
                }
            },
        }
    }

    /// Feeds body bytes that are already in memory; `Ok(false)` if they end the body.
    fn feed(&mut self, bytes: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) -> io::Result<bool> {
        let Self {
            source, scanner, ..
        } = self;
        match source {
            Source::H1 {
                body: Body::Chunked(decoder),
                ..
            } => {
                decoder
                    .decode(bytes, |b| scanner.feed(b, on_frame))
                    .map_err(io::Error::other)?;
                Ok(!decoder.is_done())
            }
            Source::H1 {
                body: Body::UntilClose,
                ..
            }
            | Source::H2(_) => {
                scanner.feed(bytes, on_frame);
                Ok(true)
            }
        }
    }

    /// Grows the kernel receive buffer, so that a subscriber that was stalled with a tiny
    /// one can drain what the server queued quickly (a 4 KiB window drains at a few hundred
    /// KB/s on loopback, because every window update waits for a delayed ACK).
    pub fn grow_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let Source::H1 { io, .. } = &self.source else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an HTTP/2 stream shares its connection's receive buffer",
            ));
        };
        nix::sys::socket::setsockopt(io.tcp(), nix::sys::socket::sockopt::RcvBuf, &bytes)
            .map_err(io::Error::from)
    }

    /// Replaces the read buffer, e.g. with a tiny one once a held stream only idles (an
    /// HTTP/2 stream has none of its own: hyper reads its connection).
    pub fn set_buffer_size(&mut self, size: usize) {
        if let Source::H1 { buf, .. } = &mut self.source {
            *buf = vec![0u8; size.max(64)];
        }
    }

    /// Reads until `pred` holds for a frame; `Ok(false)` if the stream ended first.
    pub async fn until(&mut self, mut pred: impl FnMut(&Frame<'_>) -> bool) -> io::Result<bool> {
        let mut hit = false;
        while !hit {
            if !self.read_frames(&mut |f| hit |= pred(&f)).await? {
                return Ok(hit);
            }
        }
        Ok(true)
    }
}

/// HTTP/2 connections to one server that subscribers share: subscriber `i` opens its stream
/// on connection `i % connections`, which is made (TLS, ALPN `h2` only) when its first
/// stream opens. The connections close once the pool and every stream on them are gone.
pub struct H2Pool {
    /// The server.
    target: Target,
    /// The TLS configuration offering `h2`.
    tls: Arc<rustls::ClientConfig>,
    /// One slot per connection, filled by the first stream that needs it.
    conns: Vec<OnceCell<http2::SendRequest<Empty<Bytes>>>>,
}

impl H2Pool {
    /// `connections` connections to `target` over `tls` (at least one).
    pub fn new(target: Target, tls: Arc<rustls::ClientConfig>, connections: usize) -> Self {
        Self {
            target,
            tls,
            conns: (0..connections.max(1)).map(|_| OnceCell::new()).collect(),
        }
    }

    /// Connections made so far.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.initialized()).count()
    }

    /// Subscriber `i` opens `path` (`/stream...`) on its connection; returns once the
    /// response head has been read.
    pub async fn open(&self, i: usize, path: &str) -> Result<Subscriber, OpenError> {
        let slot = &self.conns[i % self.conns.len()];
        let mut sender = slot.get_or_try_init(|| self.handshake()).await?.clone();
        let request = http::Request::get(format!("https://{}{path}", self.target.host))
            .header(http::header::ACCEPT, "text/event-stream")
            .body(Empty::new())
            .map_err(|e| OpenError::Protocol(e.to_string()))?;
        sender.ready().await.map_err(io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        if response.status() != http::StatusCode::OK {
            return Err(OpenError::Status(response.status().as_u16()));
        }
        Ok(Subscriber {
            source: Source::H2(response.into_body()),
            leftover: Vec::new(),
            scanner: Scanner::new(),
        })
    }

    /// Makes one connection: TCP, TLS with ALPN `h2`, then HTTP/2's handshake; its driver
    /// runs as a task of its own.
    async fn handshake(&self) -> Result<http2::SendRequest<Empty<Bytes>>, OpenError> {
        let target = Target {
            tls: Some(self.tls.clone()),
            ..self.target.clone()
        };
        let io = tls::dial(&target).await?;
        let Io::Tls(stream) = io else {
            return Err(OpenError::Protocol("HTTP/2 needs TLS here".into()));
        };
        if stream.get_ref().1.alpn_protocol() != Some(tls::H2) {
            return Err(OpenError::Protocol("the server did not choose h2".into()));
        }
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        // Ends by itself once every sender and response body of the connection is gone.
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// A keep-alive connection that sends `POST /publish` requests one after another.
pub struct Publisher {
    /// Where to connect (again, if the server closes the connection).
    target: Target,
    /// The connection, opened lazily.
    stream: Option<Io>,
    /// Response bytes.
    buf: Vec<u8>,
}

impl Publisher {
    /// A publisher for `target`; it connects on first use.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Publishes one event without a topic and returns its id; retries once on a fresh
    /// connection when the kept-alive one was closed by the server.
    pub async fn publish(&mut self, event: &str, data: &str) -> io::Result<String> {
        self.publish_on(event, data, None).await
    }

    /// [`Self::publish`] on `topic` (none: the server's default topic).
    pub async fn publish_on(
        &mut self,
        event: &str,
        data: &str,
        topic: Option<&str>,
    ) -> io::Result<String> {
        let body = match topic {
            Some(topic) => serde_json::json!({ "event": event, "data": data, "topic": topic }),
            None => serde_json::json!({ "event": event, "data": data }),
        }
        .to_string();
        let mut request = format!(
            "POST /publish HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.target.host,
            body.len()
        );
        if let Some(token) = &self.target.token {
            request.push_str("Authorization: Bearer ");
            request.push_str(token);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let reused = self.stream.is_some();
        match self.exchange(request.as_bytes()).await {
            Ok(id) => Ok(id),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(request.as_bytes()).await
            }
            Err(e) => Err(e),
        }
    }

    /// One request/response on the kept-alive connection.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<String> {
        let result = tokio::time::timeout(Duration::from_secs(10), self.exchange_inner(request))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "publish timed out")));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// [`Self::exchange`] without the timeout.
    async fn exchange_inner(&mut self, request: &[u8]) -> io::Result<String> {
        if self.stream.is_none() {
            self.stream = Some(tls::dial(&self.target).await?);
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))?;
        stream.write_all(request).await?;
        stream.flush().await?;
        self.buf.clear();
        let mut chunk = [0u8; 2048];
        let (head, head_len) = loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(found) = parse_response_head(&self.buf).map_err(io::Error::other)? {
                break found;
            }
        };
        let mut body = Vec::new();
        let mut pending = self.buf.split_off(head_len);
        if head.chunked {
            let mut decoder = ChunkedDecoder::new();
            loop {
                decoder
                    .decode(&pending, |b| body.extend_from_slice(b))
                    .map_err(io::Error::other)?;
                if decoder.is_done() {
                    break;
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                pending = chunk[..n].to_vec();
            }
        } else {
            let len = head.content_length.unwrap_or(0);
            body = pending;
            while body.len() < len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        if head.status != 202 && head.status != 200 {
            return Err(io::Error::other(format!(
                "publish answered {}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(io::Error::other)?;
        Ok(value
            .get("id")
            .and_then(|id| id.as_str())
            .unwrap_or_default()
            .to_owned())
    }
}

/// A one-shot `GET` with `Connection: close`, returning the body (for `/metrics`).
pub async fn get(target: &Target, path: &str) -> io::Result<String> {
    let fetch = async {
        let mut stream = tls::dial(target).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            target.host
        );
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 8192];
        // Read the head, then the body by its framing: some servers keep the connection
        // open despite `Connection: close` until they have flushed.
        loop {
            let n = stream.read(&mut chunk).await?;
            raw.extend_from_slice(&chunk[..n]);
            if let Some((head, len)) = parse_response_head(&raw).map_err(io::Error::other)? {
                let mut body = raw.split_off(len);
                if head.chunked {
                    let mut decoder = ChunkedDecoder::new();
                    let mut out = Vec::new();
                    loop {
                        decoder
                            .decode(&body, |b| out.extend_from_slice(b))
                            .map_err(io::Error::other)?;
                        if decoder.is_done() {
                            break;
                        }
                        let n = stream.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        body = chunk[..n].to_vec();
                    }
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                let len = head.content_length.unwrap_or(usize::MAX);
                while body.len() < len {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                return Ok(String::from_utf8_lossy(&body).into_owned());
            }
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "GET timed out")))
}

/// The value of the first Prometheus sample `name` in `text`, whatever its labels.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let rest = match rest.strip_prefix('{') {
            Some(labels) => &labels[labels.find('}')? + 1..],
            None => rest,
        };
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_samples() {
        let text = "# HELP x\nsse_connected_clients 12\nsse_connected_clients_max 99\nprocess_resident_memory_bytes 1.5e6\n";
        assert_eq!(metric(text, "sse_connected_clients"), Some(12.0));
        assert_eq!(metric(text, "process_resident_memory_bytes"), Some(1.5e6));
        assert_eq!(metric(text, "sse_lagged_disconnects_total"), None);
        let labelled = "sse_lagged_disconnects_total{server=\"axum-stream-map\"} 3\n";
        assert_eq!(metric(labelled, "sse_lagged_disconnects_total"), Some(3.0));
    }
}
