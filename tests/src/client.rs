//! A small HTTP client on hyper's connection API, built for checking a server: HTTP/1.1 in
//! clear, and over TLS (`https://` targets) HTTP/2 or HTTP/1.1 as the server's ALPN answers.
//!
//! Each stream gets its own TCP connection whose socket the check controls: it can shrink
//! the receive buffer and stop reading (a stalled client), or drop the connection (a client
//! that goes away). Publishing reuses one keep-alive connection, so checks that publish
//! hundreds of events stay fast. Every request carries the target's own headers (a cookie,
//! a token). Every wait has a bound; none sleeps.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::time::timeout;

use crate::event_stream::{Event, Parser};
use crate::{Problem, Res, Target};

/// How long a plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after `welcome` a `reset` may take to arrive.
const RESET_WAIT: Duration = Duration::from_millis(1500);
/// How much of an unexpected body a failure quotes.
const QUOTED_BYTES: usize = 48;

/// Options for opening `GET /stream`.
#[derive(Debug, Default, Clone)]
pub struct StreamRequest {
    /// Sent as the `Last-Event-ID` header.
    pub last_event_id: Option<String>,
    /// Sent as `?lastEventId=`.
    pub query_id: Option<String>,
    /// Sent as `Origin`.
    pub origin: Option<String>,
    /// Sent as `Accept-Encoding`.
    pub accept_encoding: Option<String>,
    /// `SO_RCVBUF` for the socket, to make a stalled reader fill up quickly.
    pub recv_buffer: Option<u32>,
    /// Query parameters (`topic`, `access_token`, ...), in order, after `lastEventId`.
    pub params: Vec<(String, String)>,
    /// More request headers (`authorization`, `cookie`, ...).
    pub headers: Vec<(String, String)>,
}

impl StreamRequest {
    /// A request that resumes after `id` with the `Last-Event-ID` header.
    pub fn resume(id: impl Into<String>) -> Self {
        StreamRequest {
            last_event_id: Some(id.into()),
            ..Default::default()
        }
    }
}

/// A response whose body was read whole.
#[derive(Debug)]
pub struct Fetched {
    /// The response's status code.
    pub status: u16,
    /// The response's headers.
    pub headers: HeaderMap,
    /// The body as text (lossily, so a check can quote a non-UTF-8 body in its failure).
    pub body: String,
}

impl Fetched {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        header(&self.headers, name)
    }

    /// Checks the contract's error shape: a JSON body `{"error": "<text>"}`.
    pub fn expect_json_error(&self, status: u16) -> Res {
        crate::ensure!(
            self.status == status,
            format!("status {status}"),
            self.summary()
        );
        crate::ensure!(
            self.header("content-type").starts_with("application/json"),
            "Content-Type: application/json on the error",
            format!("{:?}", self.header("content-type"))
        );
        let json: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        crate::ensure!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            r#"a body {"error": "<what is wrong>"}"#,
            self.summary()
        );
        Ok(())
    }

    /// The response on one line: status, content type and the body's first bytes.
    pub fn summary(&self) -> String {
        summary(self.status, &self.headers, self.body.as_bytes())
    }
}

/// A response on one line, for a failure: `404 text/html "<!DOCTYPE html><html…"`. A body
/// (an HTML error page, say) is never quoted whole.
pub fn summary(status: u16, headers: &HeaderMap, body: &[u8]) -> String {
    let content_type = match header(headers, "content-type") {
        "" => "(no content type)",
        content_type => content_type,
    };
    let mut quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BYTES)]).into_owned();
    if body.len() > QUOTED_BYTES {
        quoted.push('…');
    }
    format!("{status} {content_type} {quoted:?}")
}

/// A header as text ("" when absent or not text).
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// One connection's request side: HTTP/1.1 (one request at a time) or HTTP/2 (many at
/// once).
pub enum Sender {
    /// HTTP/1.1.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Sends one request.
    pub async fn send_request(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::H1(sender) => sender.send_request(origin_form(request)).await,
            Sender::H2(sender) => sender.send_request(request).await,
        }
    }

    /// Resolves when the connection can take a request; an error once it is closed.
    pub async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(sender) => sender.ready().await,
            Sender::H2(sender) => sender.ready().await,
        }
    }

    /// Whether this is an HTTP/2 connection.
    pub fn is_http2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }
}

/// `request` as HTTP/1.1 servers expect it: the path alone on the request line, the
/// authority in `Host`. (The absolute form is valid HTTP/1.1, but actix-web answers it 400.)
fn origin_form(mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    if let Some(authority) = request.uri().authority().cloned()
        && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
    {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert(value);
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Ok(uri) = path.parse() {
        *request.uri_mut() = uri;
    }
    request
}

/// Opens a connection to the target: TCP, then TLS for `https://` (ALPN `h2`, then
/// `http/1.1`, as the target's TLS configuration offers), then hyper's handshake for what
/// was negotiated.
pub async fn connect(target: &Target, recv_buffer: Option<u32>) -> Res<Sender> {
    connect_with(target, recv_buffer, None).await
}

/// Like [`connect`], with HTTP/2's per-stream receive window set to `window` bytes (hyper's
/// default is 2 MiB): a stream whose body is not read stalls once that much is unread.
pub async fn connect_with_stream_window(target: &Target, window: u32) -> Res<Sender> {
    connect_with(target, None, Some(window)).await
}

/// [`connect`], with the socket's receive buffer and HTTP/2's stream window as given.
async fn connect_with(
    target: &Target,
    recv_buffer: Option<u32>,
    stream_window: Option<u32>,
) -> Res<Sender> {
    let host = target.base.host_str().unwrap_or("127.0.0.1");
    let port = target.base.port_or_known_default().unwrap_or(80);
    let unreachable = |error: std::io::Error| {
        Problem::fail(
            format!("a TCP connection to {host}:{port}"),
            error.to_string(),
        )
    };
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| Problem::fail(format!("{host} to resolve"), "no address"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(unreachable)?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).map_err(unreachable)?;
    }
    let stream = timeout(REQUEST_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| Problem::fail("a TCP connection", "connect timed out"))?
        .map_err(unreachable)?;
    if target.base.scheme() != "https" {
        return handshake_http1(TokioIo::new(stream)).await;
    }
    let Some(tls) = target.tls.clone() else {
        return Err(Problem::fail(
            "a TLS configuration for an https:// target",
            "none was given",
        ));
    };
    // An IP address is a server name too (the certificate must list it).
    let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|e| Problem::fail(format!("{host} as a TLS server name"), e.to_string()))?;
    let handshake = tokio_rustls::TlsConnector::from(tls).connect(name, stream);
    let stream = timeout(REQUEST_TIMEOUT, handshake)
        .await
        .map_err(|_| Problem::fail("a TLS handshake", "it timed out"))?
        .map_err(|e| Problem::fail("a TLS handshake", e.to_string()))?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return handshake_http1(TokioIo::new(stream)).await;
    }
    let mut builder = http2::Builder::new(TokioExecutor::new());
    if let Some(window) = stream_window {
        builder.initial_stream_window_size(window);
    }
    let (sender, connection) = builder
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Problem::fail("an HTTP/2 connection", e.to_string()))?;
    // Ends by itself once every sender and response body of the connection is dropped.
    tokio::spawn(connection);
    Ok(Sender::H2(sender))
}

/// Runs hyper's HTTP/1.1 handshake on `io`.
async fn handshake_http1<I>(io: I) -> Res<Sender>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(io)
        .await
        .map_err(|e| Problem::fail("an HTTP/1.1 connection", e.to_string()))?;
    // The connection task ends by itself when the sender and the response body are dropped.
    tokio::spawn(connection);
    Ok(Sender::H1(sender))
}

/// A TLS client configuration that trusts `ca` (PEM: a CA or a self-signed certificate)
/// and offers `h2` and `http/1.1` by ALPN, or `http/1.1` alone.
pub fn tls_trusting(
    ca: &[u8],
    http1_only: bool,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no certificate in it".to_owned());
    }
    tls_with_roots(roots, http1_only)
}

/// A TLS client configuration that trusts the public web's CAs (Mozilla's list, as
/// `webpki-roots` carries it), for an `https://` server with a real certificate.
pub fn tls_public(http1_only: bool) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tls_with_roots(roots, http1_only)
}

/// The configuration both of the above build: `ring`, TLS 1.2 and 1.3, no client
/// certificate, ALPN as asked.
fn tls_with_roots(
    roots: rustls::RootCertStore,
    http1_only: bool,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(std::sync::Arc::new(config))
}

/// Builds a request for `path` (which may carry a query) on the target.
fn request(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Res<Request<Full<Bytes>>> {
    let authority = target.base.authority().to_owned();
    // Absolute, with the authority in it: what HTTP/2's pseudo-headers are built from (an
    // HTTP/1.1 sender moves it to `Host`: [`origin_form`]).
    let uri = format!("{}://{authority}{path}", target.base.scheme());
    let mut builder = Request::builder().method(method).uri(uri);
    // As bytes, so that a value may be UTF-8 (an id a browser echoes in Last-Event-ID).
    let own = target.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    for (name, value) in own.chain(headers.iter().copied()) {
        builder = builder.header(name, value.as_bytes());
    }
    builder
        .body(Full::new(body))
        .map_err(|e| Problem::fail("a valid request", e.to_string()))
}

/// Sends one request on its own connection and reads the whole response.
pub async fn fetch(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Res<Fetched> {
    let mut sender = connect(target, None).await?;
    let request = request(target, method, path, headers, body.into())?;
    read_whole(&mut sender, request).await
}

/// Sends `request` on `sender` and reads the whole response, within [`REQUEST_TIMEOUT`].
async fn read_whole(sender: &mut Sender, request: Request<Full<Bytes>>) -> Res<Fetched> {
    let what = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>(Fetched {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    match timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(fetched)) => Ok(fetched),
        Ok(Err(error)) => Err(Problem::fail(
            format!("a response to {what}"),
            error.to_string(),
        )),
        Err(_) => Err(Problem::fail(
            format!("a response to {what} within {REQUEST_TIMEOUT:?}"),
            "none",
        )),
    }
}

/// A URL the caller gave (`--publish-url`, `--clients-url`) as the target to send to (its
/// origin, with the caller's headers) and the path (with any query) to request there.
pub fn split_url(target: &Target, url: &url::Url) -> (Target, String) {
    let mut at = target.clone();
    at.base = url.clone();
    at.base.set_path("");
    at.base.set_query(None);
    at.base.set_fragment(None);
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    (at, path)
}

/// `GET path`.
pub async fn get(target: &Target, path: &str) -> Res<Fetched> {
    fetch(target, Method::GET, path, &[], Bytes::new()).await
}

/// A keep-alive connection for `POST /publish`, carrying the target's token.
pub struct Publisher {
    target: Target,
    sender: Sender,
}

impl Publisher {
    /// Connects to the target.
    pub async fn connect(target: &Target) -> Res<Self> {
        Ok(Publisher {
            target: target.clone(),
            sender: connect(target, None).await?,
        })
    }

    /// Sends a raw publish request (the body as given) with the token, if any.
    pub async fn send(&mut self, content_type: &str, body: impl Into<Bytes>) -> Res<Fetched> {
        let bearer = self.target.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", content_type)];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        if self.sender.ready().await.is_err() {
            // The server closed the keep-alive connection; open another.
            self.sender = connect(&self.target, None).await?;
        }
        let request = request(
            &self.target,
            Method::POST,
            "/publish",
            &headers,
            body.into(),
        )?;
        read_whole(&mut self.sender, request).await
    }

    /// Publishes `{"event": event, "data": data}` and returns the id from the 202 receipt.
    pub async fn publish(&mut self, event: Option<&str>, data: impl Into<Value>) -> Res<String> {
        let mut body = serde_json::json!({ "data": data.into() });
        if let Some(event) = event {
            body["event"] = event.into();
        }
        let receipt = self.send("application/json", body.to_string()).await?;
        let json: Value = serde_json::from_str(&receipt.body).unwrap_or(Value::Null);
        match (receipt.status, json["id"].as_str()) {
            (202, Some(id)) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(Problem::fail(
                r#"202 with {"id": "<id>"} for a valid publish"#,
                receipt.summary(),
            )),
        }
    }
}

/// Publishes one event on a fresh connection.
pub async fn publish(target: &Target, event: Option<&str>, data: impl Into<Value>) -> Res<String> {
    Publisher::connect(target).await?.publish(event, data).await
}

/// Sends `GET` for the target's stream path and returns the response with its body unread.
pub async fn open(target: &Target, options: &StreamRequest) -> Res<Response<Incoming>> {
    let mut sender = connect(target, options.recv_buffer).await?;
    open_on(&mut sender, target, options).await
}

/// Like [`open`], on a connection the caller holds: over HTTP/2, many streams share it.
pub async fn open_on(
    sender: &mut Sender,
    target: &Target,
    options: &StreamRequest,
) -> Res<Response<Incoming>> {
    // Built in a block: the serializer is not `Send`, so it must be gone before an await.
    let query = {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(id) = &options.query_id {
            query.append_pair("lastEventId", id);
        }
        for (name, value) in &options.params {
            query.append_pair(name, value);
        }
        query.finish()
    };
    let mut path = target.stream_path.clone();
    if !query.is_empty() {
        let joint = if path.contains('?') { '&' } else { '?' };
        path = format!("{path}{joint}{query}");
    }
    let mut headers = vec![("accept", "text/event-stream")];
    for (name, value) in &options.headers {
        headers.push((name.as_str(), value.as_str()));
    }
    for (name, value) in [
        ("last-event-id", &options.last_event_id),
        ("origin", &options.origin),
        ("accept-encoding", &options.accept_encoding),
    ] {
        if let Some(value) = value {
            headers.push((name, value));
        }
    }
    let request = request(target, Method::GET, &path, &headers, Bytes::new())?;
    let what = format!("GET {}", target.stream_path);
    match timeout(REQUEST_TIMEOUT, sender.send_request(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(Problem::fail(
            format!("a response to {what}"),
            error.to_string(),
        )),
        Err(_) => Err(Problem::fail(
            format!("response headers for {what}"),
            "none within 10 s",
        )),
    }
}

/// The first bytes of a body (up to 1 KiB, and no more than a second's worth), so that a
/// failure can quote an answer whose body never ends.
pub async fn first_bytes(body: &mut BodyDataStream<Incoming>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = body.next().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() >= 1024 {
                break;
            }
        }
    };
    // Whatever came within the second is enough to quote.
    let _ = timeout(Duration::from_secs(1), read).await;
    bytes
}

/// An open stream read as events, parsed as a browser parses them ([`Parser`]).
pub struct Events {
    /// The response headers.
    pub headers: HeaderMap,
    body: BodyDataStream<Incoming>,
    parser: Parser,
    /// Events parsed but not yet returned, each with the moment its bytes arrived.
    ready: VecDeque<(Event, SystemTime)>,
    /// When the bytes of the event last returned arrived.
    arrived: SystemTime,
}

impl Events {
    /// Opens the target's stream and expects 200.
    pub async fn open(target: &Target, options: &StreamRequest) -> Res<Self> {
        let mut sender = connect(target, options.recv_buffer).await?;
        Events::open_on(&mut sender, target, options).await
    }

    /// Like [`Events::open`], on a connection the caller holds (see [`open_on`]).
    pub async fn open_on(
        sender: &mut Sender,
        target: &Target,
        options: &StreamRequest,
    ) -> Res<Self> {
        let response = open_on(sender, target, options).await?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let mut body = body.into_data_stream();
        if status != 200 {
            return Err(Problem::fail(
                format!("200 for GET {}", target.stream_path),
                summary(status, &parts.headers, &first_bytes(&mut body).await),
            ));
        }
        Ok(Events {
            headers: parts.headers,
            body,
            parser: Parser::new(),
            ready: VecDeque::new(),
            arrived: SystemTime::now(),
        })
    }

    /// When the bytes of the event [`Events::next`] last returned arrived (by this machine's
    /// clock, to compare with the server's own timestamps).
    pub fn arrived(&self) -> SystemTime {
        self.arrived
    }

    /// The parser, for what it noticed on the way ([`Parser::flaws`]).
    pub fn parser(&self) -> &Parser {
        &self.parser
    }

    /// The next event, however long it takes; `Ok(None)` when the stream ends.
    ///
    /// Cancel-safe: a chunk is parsed in the same poll that receives it, so a timeout around
    /// this loses nothing.
    async fn pull(&mut self) -> Result<Option<Event>, hyper::Error> {
        loop {
            if let Some((event, arrived)) = self.ready.pop_front() {
                self.arrived = arrived;
                return Ok(Some(event));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    let now = SystemTime::now();
                    let events = self.parser.feed(&chunk);
                    self.ready.extend(events.into_iter().map(|e| (e, now)));
                }
                Some(Err(error)) => return Err(error),
                None => return Ok(None),
            }
        }
    }

    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self, within: Duration) -> Res<Option<Event>> {
        match timeout(within, self.pull()).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(error)) => Err(Problem::fail(
                "the stream to stay readable",
                error.to_string(),
            )),
            Err(_) => Err(Problem::fail(
                format!("another event within {within:?}"),
                "nothing",
            )),
        }
    }

    /// Like [`Events::next`], but a stream the server's kernel reset (a connection it cut)
    /// counts as ended, not as broken: `Ok(None)`.
    pub async fn next_or_end(&mut self, within: Duration) -> Res<Option<Event>> {
        match timeout(within, self.pull()).await {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(_)) => Ok(None),
            Err(_) => Err(Problem::fail(
                format!("another event within {within:?}"),
                "nothing",
            )),
        }
    }

    /// Reads what is left until the server ends the stream, cleanly or with a reset; the
    /// number of events read, or a failure if it is still open after `within`.
    pub async fn drain_to_end(&mut self, within: Duration) -> Res<usize> {
        let deadline = tokio::time::Instant::now() + within;
        let mut read = 0;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_or_end(left).await {
                Ok(Some(_)) => read += 1,
                Ok(None) => return Ok(read),
                Err(_) => {
                    return Err(Problem::fail(
                        format!(
                            "the stream to end within {within:?} once its buffered bytes were read"
                        ),
                        format!("still open after {read} more events"),
                    ));
                }
            }
        }
    }

    /// Events up to and including the first one that matches `done`, all within `within`.
    pub async fn until(
        &mut self,
        within: Duration,
        mut done: impl FnMut(&Event) -> bool,
    ) -> Res<Vec<Event>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Ok(Some(event)) => {
                    let finished = done(&event);
                    seen.push(event);
                    if finished {
                        return Ok(seen);
                    }
                }
                Ok(None) => {
                    return Err(Problem::fail(
                        "the stream to stay open",
                        format!("it ended after {} events", seen.len()),
                    ));
                }
                Err(_) => {
                    return Err(Problem::fail(
                        format!("the awaited event within {within:?}"),
                        describe(&seen),
                    ));
                }
            }
        }
    }

    /// Reads the `welcome` that opens every stream.
    pub async fn welcome(&mut self) -> Res<Welcome> {
        let welcome = self
            .next(REQUEST_TIMEOUT)
            .await?
            .ok_or_else(|| Problem::fail("a welcome event", "end of stream"))?;
        crate::ensure!(
            welcome.event == "welcome",
            "the first event to be `welcome`",
            describe(std::slice::from_ref(&welcome))
        );
        Welcome::parse(&welcome.data)
    }

    /// Reads the `welcome` and the event after it, which is the `reset` if there is one.
    ///
    /// A server writes a reset together with its welcome, so the wait for it is short.
    pub async fn opening(&mut self) -> Res<Opening> {
        let welcome = self.welcome().await?;
        Ok(Opening {
            welcome,
            first: self.next(RESET_WAIT).await.ok().flatten(),
        })
    }
}

/// The stream's first frames: the welcome, and the event after it (a `reset`, or not).
pub struct Opening {
    /// The parsed welcome.
    pub welcome: Welcome,
    /// The event after the welcome, if one came within the request timeout.
    pub first: Option<Event>,
}

impl Opening {
    /// The reset's JSON, if the event after the welcome was a `reset`.
    pub fn reset(&self) -> Option<Value> {
        self.first
            .as_ref()
            .filter(|e| e.event == "reset")
            .map(|e| serde_json::from_str(&e.data).unwrap_or(Value::Null))
    }
}

/// The settings a server announces in `welcome`, with the contract's defaults for any it
/// leaves out.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The variant speaking (`"server"`), which checks name in their failures.
    pub server: String,
    /// What backs its hub (`"hub"`: `memory` or `redis`), if told.
    pub hub: Option<String>,
    /// The newest id issued when the stream opened (`"last_id"`), if any.
    pub last_id: Option<String>,
    /// Events kept for replay (`"history"`): how far back a resume can reach.
    pub history: u64,
    /// How far a subscriber may fall behind (`"queue"`): what the slow-consumer check fills.
    pub queue: u64,
    /// The ticker's period (`"tick_ms"`), 0 when off: how long ticker checks wait.
    pub tick_ms: u64,
    /// Silence before a keep-alive comment (`"keepalive_ms"`): the keep-alive check's bound.
    pub keepalive_ms: u64,
    /// The stream's effective topic selectors (`"topics"`), if told.
    pub topics: Option<Vec<String>>,
    /// Whether the server requires tokens (`"auth"`), if told.
    pub auth: Option<bool>,
    /// The base reconnection delay (`"retry_ms"`), before jitter.
    pub retry_ms: u64,
    /// How far each connection's `retry:` may stray from it (`"retry_jitter"`), if told.
    pub retry_jitter: Option<f64>,
    /// How long a stalled subscriber is kept (`"write_timeout_ms"`), if told.
    pub write_timeout_ms: Option<u64>,
}

impl Welcome {
    /// Parses the welcome's JSON data.
    pub fn parse(data: &str) -> Res<Self> {
        let json: Value = serde_json::from_str(data)
            .map_err(|e| Problem::fail("welcome data to be JSON", format!("{data:?} ({e})")))?;
        let server = json["server"].as_str().unwrap_or_default().to_owned();
        crate::ensure!(
            !server.is_empty(),
            r#"welcome JSON naming the variant in "server""#,
            data.to_owned()
        );
        crate::ensure!(
            json.get("last_id").is_some(),
            r#"welcome JSON with "last_id""#,
            data.to_owned()
        );
        let number = |key: &str, default: u64| json[key].as_u64().unwrap_or(default);
        Ok(Welcome {
            server,
            hub: json["hub"].as_str().map(str::to_owned),
            topics: json["topics"].as_array().map(|topics| {
                topics
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            }),
            auth: json["auth"].as_bool(),
            last_id: json["last_id"].as_str().map(str::to_owned),
            history: number("history", 1000),
            queue: number("queue", 256),
            tick_ms: number("tick_ms", 2000),
            keepalive_ms: number("keepalive_ms", 15_000),
            retry_ms: number("retry_ms", 3000),
            retry_jitter: json["retry_jitter"].as_f64(),
            write_timeout_ms: json["write_timeout_ms"].as_u64(),
        })
    }

    /// Reads the welcome of a fresh stream.
    pub async fn fetch(target: &Target) -> Res<Self> {
        Events::open(target, &StreamRequest::default())
            .await?
            .welcome()
            .await
    }
}

/// An open stream read as raw bytes, for framing checks.
pub struct Raw {
    /// The response's status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    body: BodyDataStream<Incoming>,
    /// Everything read so far.
    pub bytes: Vec<u8>,
}

impl Raw {
    /// Opens the target's stream without parsing it.
    pub async fn open(target: &Target, options: &StreamRequest) -> Res<Self> {
        let (parts, body) = open(target, options).await?.into_parts();
        Ok(Raw {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.into_data_stream(),
            bytes: Vec::new(),
        })
    }

    /// Reads until `done(bytes so far)` holds, within `within`.
    pub async fn read_until(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> Res<()> {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.text()) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(left, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.bytes.extend_from_slice(&chunk),
                Ok(Some(Err(error))) => {
                    return Err(Problem::fail(
                        "the stream to stay readable",
                        error.to_string(),
                    ));
                }
                Ok(None) => {
                    return Err(Problem::fail(
                        "the stream to stay open",
                        format!("it ended after {:?}", self.text()),
                    ));
                }
                Err(_) => {
                    return Err(Problem::fail(
                        format!("the awaited bytes within {within:?}"),
                        format!("{:?}", tail(&self.text())),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The response on one line ([`summary`]), with what the body sends in its first second.
    pub async fn summary(&mut self) -> String {
        let bytes = first_bytes(&mut self.body).await;
        self.bytes.extend_from_slice(&bytes);
        summary(self.status, &self.headers, &self.bytes)
    }

    /// Reads the next chunk, within `within`: its length, or `None` when the stream ended.
    pub async fn read_chunk(&mut self, within: Duration) -> Res<Option<usize>> {
        match timeout(within, self.body.next()).await {
            Ok(Some(Ok(chunk))) => {
                self.bytes.extend_from_slice(&chunk);
                Ok(Some(chunk.len()))
            }
            Ok(Some(Err(error))) => Err(Problem::fail(
                "the stream to stay readable",
                error.to_string(),
            )),
            Ok(None) => Ok(None),
            Err(_) => Err(Problem::fail(
                format!("some bytes within {within:?}"),
                format!("nothing after {:?}", tail(&self.text())),
            )),
        }
    }

    /// What was read, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A short description of events, for failure messages.
pub fn describe(events: &[Event]) -> String {
    let shown: Vec<String> = events
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(|e| format!("{}#{}:{:?}", e.event, e.id, tail(&e.data)))
        .collect();
    format!("{} events, last: [{}]", events.len(), shown.join(", "))
}

/// The last 200 characters of `text`.
pub fn tail(text: &str) -> &str {
    let start = text.char_indices().rev().nth(199).map_or(0, |(i, _)| i);
    &text[start..]
}
