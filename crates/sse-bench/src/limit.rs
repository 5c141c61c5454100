//! `limit`: the raw reference server, the physical limit of SSE fan-out on this machine.
//!
//! No framework, no per-event encoding: each published event is encoded once, already
//! wrapped in its HTTP chunk (`<hex len>\r\n<sse frame>\r\n`), and the same bytes go to every
//! subscriber through a `tokio::sync::broadcast` channel; each subscriber task writes what it
//! has with plain vectored writes, up to 64 queued events per call, without copying. The framing
//! is `Transfer-Encoding: chunked` so that the load generator parses exactly what it parses
//! from the variants. It honours the parts of the contract the scenarios exercise: `retry`
//! (drawn per connection within `--retry-jitter`) and `welcome` first, ids `<epoch>-<seq>`,
//! `POST /publish` answering `202 {"id"}`, a history ring for `Last-Event-ID`, a `--queue`
//! bound past which a lagging subscriber is disconnected, topics (`"topic"` on publish,
//! `GET /stream?topic=SEL` selecting a topic, `PREFIX/*` or `*`, filtered per subscriber
//! like the variants' broadcasts), a stream that ends when its client closes, and
//! `GET /metrics`. It skips validation, CORS, keep-alive comments, resets and the client
//! limit, which cost nothing measurable per event.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::broadcast;

use crate::wire::find;

/// Flags of the reference server; the names match the variants' so the runner passes the
/// same set to everyone (the ones it does not implement are accepted and ignored).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port; 0 picks a free one.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Events kept for replay.
    #[arg(long, default_value_t = 1000)]
    pub history: usize,
    /// How far a subscriber may fall behind before it is disconnected.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// The `retry:` sent to clients, before jitter.
    #[arg(long, default_value_t = 3000)]
    pub retry_ms: u64,
    /// Spread of each connection's `retry:`: drawn uniformly from --retry-ms times
    /// [1 - J, 1 + J]; 0 sends --retry-ms exactly (as the variants do).
    #[arg(long, default_value_t = 0.2, value_parser = parse_jitter)]
    pub retry_jitter: f64,
    /// Ignored (no ticker).
    #[arg(long, default_value_t = 0)]
    pub tick_ms: u64,
    /// Ignored (no keep-alive comments).
    #[arg(long, default_value_t = 15.0)]
    pub keepalive_secs: f64,
    /// Ignored (no client limit).
    #[arg(long, default_value_t = 10_000)]
    pub max_clients: usize,
    /// Leave Nagle's algorithm on (as the variants do), to see what `TCP_NODELAY` is worth.
    #[arg(long)]
    pub no_nodelay: bool,
    /// Ignored (no authentication).
    #[arg(long)]
    pub publish_token: Option<String>,
}

/// One encoded event as it travels to subscribers.
#[derive(Debug, Clone)]
struct Encoded {
    /// The sequence number in this run.
    seq: u64,
    /// The event's topic (`default` when published without one).
    topic: Arc<str>,
    /// The whole HTTP chunk.
    bytes: Bytes,
}

/// The topic of an event published without one, as the variants name it.
const DEFAULT_TOPIC: &str = "default";

/// What publishing and subscribing share.
struct Hub {
    /// The run's epoch, the first half of every id.
    epoch: String,
    /// History and the sender, under one lock so that a subscriber's snapshot of history
    /// and its place in the live channel are taken at the same instant (no gap, no
    /// duplicate at the splice).
    inner: Mutex<Inner>,
    /// Subscribers connected now.
    connected: AtomicU64,
    /// Subscribers dropped because they fell more than `queue` events behind.
    lagged: AtomicU64,
    /// Where this run's sequence of jitter draws starts.
    seed: u64,
    /// Jitter draws so far: the position in that sequence.
    draws: AtomicU64,
    /// Settings.
    args: LimitArgs,
}

/// The part of [`Hub`] behind its lock.
struct Inner {
    /// The last sequence number issued (0 = none yet).
    seq: u64,
    /// Retained events, oldest first.
    history: VecDeque<Encoded>,
    /// Live events.
    tx: broadcast::Sender<Encoded>,
}

/// Serves until the process is killed (the runner sends SIGTERM; nothing needs flushing).
pub fn main(args: LimitArgs) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// Binds, prints `listening on http://ADDR` like the variants, and accepts forever.
async fn serve(args: LimitArgs) -> io::Result<()> {
    let addr: std::net::SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--host/--port: {e}")))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The kernel caps this at net.core.somaxconn; a deep accept queue keeps a reconnect
    // storm from overflowing it into 1 s SYN retransmissions.
    let listener = socket.listen(4096)?;
    println!("listening on http://{}", listener.local_addr()?);
    let (tx, _) = broadcast::channel(args.queue.max(1));
    let epoch = format!("{:012x}", crate::now_us() & 0xffff_ffff_ffff);
    let hub = Arc::new(Hub {
        epoch,
        inner: Mutex::new(Inner {
            seq: 0,
            history: VecDeque::with_capacity(args.history),
            tx,
        }),
        connected: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
        seed: crate::now_us(),
        draws: AtomicU64::new(0),
        args,
    });
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors or similar: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Events are small writes that must leave at once: with Nagle on, a write waits
        // for the ACK of the previous one, which a delayed ACK can hold back 40 ms.
        if !hub.args.no_nodelay {
            let _ = socket.set_nodelay(true);
        }
        let hub = hub.clone();
        tokio::spawn(async move {
            let _ = connection(socket, hub).await;
        });
    }
}

impl Hub {
    /// The next connection's `retry:` delay in milliseconds.
    fn retry_ms(&self) -> u64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let draw = unit(self.seed.wrapping_add(n.wrapping_mul(GOLDEN)));
        jittered(self.args.retry_ms, self.args.retry_jitter, draw)
    }
}

/// Jitter is a fraction of the delay: from 0 (exact) up to, not including, 1 (which could
/// draw a zero delay), as the variants take it.
fn parse_jitter(value: &str) -> Result<f64, String> {
    let jitter: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a fraction such as 0.2"))?;
    if (0.0..1.0).contains(&jitter) {
        Ok(jitter)
    } else {
        Err("must be at least 0 and below 1".to_owned())
    }
}

/// `retry_ms` spread by `jitter`, for a `draw` uniform in [0, 1): the base times
/// 1 + jitter × (2 draw − 1), rounded to the millisecond.
fn jittered(retry_ms: u64, jitter: f64, draw: f64) -> u64 {
    let spread = 1.0 + jitter * (2.0 * draw - 1.0);
    (retry_ms as f64 * spread).round() as u64
}

/// The step between splitmix64 states: 2^64 divided by the golden ratio.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64's output for `state`, scaled to [0, 1): a well mixed draw from a plain
/// counter, which is all the jitter needs (one more dependency would buy nothing).
fn unit(state: u64) -> f64 {
    let mut z = state.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // The top 53 bits fill an f64's mantissa exactly.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A parsed request head.
struct Request {
    /// `GET`, `POST`, ...
    method: String,
    /// The path without the query.
    path: String,
    /// `Content-Length` (0 when absent).
    content_length: usize,
    /// `Last-Event-ID`, or the `lastEventId` query parameter.
    last_event_id: Option<String>,
    /// The `topic` query parameters: the stream's selectors (none: every topic).
    topics: Vec<String>,
}

/// Serves one connection: any number of keep-alive requests, or one stream.
async fn connection(mut socket: TcpStream, hub: Arc<Hub>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (request, head_len) = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break (parse_request(&buf[..end]), end + 4);
            }
            if buf.len() > 16 * 1024 {
                return Ok(());
            }
            // Straight into the Vec: a stack array here would be part of every stream's
            // task (the future is as large as its largest state), costing 4 KiB per stream.
            buf.reserve(2048);
            if socket.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        buf.drain(..head_len);
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/stream") => {
                // The request buffer is not needed while streaming.
                drop(buf);
                return stream(socket, hub, request.last_event_id, request.topics).await;
            }
            ("POST", "/publish") => {
                while buf.len() < request.content_length {
                    buf.reserve(request.content_length - buf.len());
                    if socket.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                let body: Vec<u8> = buf.drain(..request.content_length).collect();
                let (status, reply) = match publish(&hub, &body) {
                    Ok(id) => ("202 Accepted", serde_json::json!({ "id": id }).to_string()),
                    Err(error) => (
                        "400 Bad Request",
                        serde_json::json!({ "error": error }).to_string(),
                    ),
                };
                respond(&mut socket, status, "application/json", &reply).await?;
            }
            ("GET", "/metrics") => {
                let text = format!(
                    "sse_connected_clients {}\nsse_lagged_disconnects_total {}\nsse_events_published_total {}\n",
                    hub.connected.load(Ordering::Relaxed),
                    hub.lagged.load(Ordering::Relaxed),
                    hub.inner.lock().map(|i| i.seq).unwrap_or(0),
                );
                respond(&mut socket, "200 OK", "text/plain; version=0.0.4", &text).await?;
            }
            ("GET", "/healthz") => respond(&mut socket, "200 OK", "text/plain", "ok").await?,
            _ => {
                respond(
                    &mut socket,
                    "404 Not Found",
                    "application/json",
                    "{\"error\":\"not found\"}",
                )
                .await?;
            }
        }
    }
}

/// Writes a small complete response with `Content-Length` (the connection stays open).
async fn respond(socket: &mut TcpStream, status: &str, kind: &str, body: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await
}

/// Parses a request head (without the blank line); unknown shapes become a 404 later.
fn parse_request(head: &[u8]) -> Request {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method,
        path: path.to_owned(),
        content_length: 0,
        last_event_id: query
            .split('&')
            .find_map(|kv| kv.strip_prefix("lastEventId="))
            .map(str::to_owned),
        // Topics and selectors are URL-safe as they are (`A-Za-z0-9_.:/@~-` and `*`), so
        // the value is taken without percent-decoding.
        topics: query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("topic="))
            .map(str::to_owned)
            .collect(),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("last-event-id") {
            request.last_event_id = Some(value.to_owned());
        }
    }
    request
}

/// Encodes and broadcasts one event from a publish body; returns its id.
fn publish(hub: &Hub, body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Publish {
        event: Option<String>,
        data: serde_json::Value,
        topic: Option<String>,
    }
    let publish: Publish = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let data = match publish.data {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let mut inner = hub.inner.lock().map_err(|_| "poisoned")?;
    inner.seq += 1;
    let seq = inner.seq;
    let id = format!("{}-{seq}", hub.epoch);
    let mut frame = format!("id: {id}\n");
    if let Some(event) = &publish.event {
        frame.push_str("event: ");
        frame.push_str(event);
        frame.push('\n');
    }
    for line in data.lines() {
        frame.push_str("data: ");
        frame.push_str(line);
        frame.push('\n');
    }
    frame.push('\n');
    let encoded = Encoded {
        seq,
        topic: publish.topic.as_deref().unwrap_or(DEFAULT_TOPIC).into(),
        bytes: Bytes::from(chunk(frame.as_bytes())),
    };
    if inner.history.len() == hub.args.history {
        inner.history.pop_front();
    }
    if hub.args.history > 0 {
        inner.history.push_back(encoded.clone());
    }
    // No receivers is fine: the event is still in history.
    let _ = inner.tx.send(encoded);
    Ok(id)
}

/// Writes every buffer of `batch` with as few `writev` calls as the socket allows, then
/// empties it.
async fn write_all_vectored(socket: &mut TcpStream, batch: &mut Vec<Bytes>) -> io::Result<()> {
    use bytes::Buf as _;
    let mut start = 0;
    while start < batch.len() {
        let slices: Vec<io::IoSlice<'_>> =
            batch[start..].iter().map(|b| io::IoSlice::new(b)).collect();
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let first = &mut batch[start];
            if written >= first.len() {
                written -= first.len();
                start += 1;
            } else {
                first.advance(written);
                written = 0;
            }
        }
    }
    batch.clear();
    Ok(())
}

/// Wraps `payload` in one HTTP chunk.
fn chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether an event on `topic` is for a stream of `selectors`: every topic without any, else
/// those that one of them selects (a topic exactly, `PREFIX/*` every topic under `PREFIX/`,
/// `*` all).
fn selected(selectors: &[String], topic: &str) -> bool {
    selectors.is_empty()
        || selectors.iter().any(|s| match s.strip_suffix("/*") {
            _ if s == "*" => true,
            Some(prefix) => topic
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/')),
            None => s == topic,
        })
}

/// Serves one SSE stream until the client leaves or lags.
async fn stream(
    mut socket: TcpStream,
    hub: Arc<Hub>,
    last_event_id: Option<String>,
    topics: Vec<String>,
) -> io::Result<()> {
    let after = last_event_id
        .as_deref()
        .and_then(|id| id.strip_prefix(hub.epoch.as_str()))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|seq| seq.parse::<u64>().ok());
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let (mut rx, spliced) = {
        let inner = hub.inner.lock().map_err(|_| io::Error::other("poisoned"))?;
        let last_id = match inner.seq {
            0 => "null".to_owned(),
            seq => format!("\"{}-{seq}\"", hub.epoch),
        };
        let welcome = format!(
            "retry: {}\n\nevent: welcome\ndata: {{\"server\":\"limit\",\"last_id\":{last_id},\"history\":{},\"queue\":{},\"retry_ms\":{},\"retry_jitter\":{}}}\n\n",
            hub.retry_ms(),
            hub.args.history,
            hub.args.queue,
            hub.args.retry_ms,
            hub.args.retry_jitter
        );
        out.extend_from_slice(&chunk(welcome.as_bytes()));
        if let Some(after) = after {
            let replayed = inner.history.iter().filter(|e| e.seq > after);
            for event in replayed.filter(|e| selected(&topics, &e.topic)) {
                out.extend_from_slice(&event.bytes);
            }
        }
        (inner.tx.subscribe(), inner.seq)
    };
    hub.connected.fetch_add(1, Ordering::Relaxed);
    let result = async {
        socket.write_all(&out).await?;
        drop(out);
        // Allocated on the first event: an idle held stream costs no batch memory.
        let mut batch: Vec<Bytes> = Vec::new();
        // Anything the client sends after its request is ignored; its EOF ends the stream,
        // so that a client that leaves is noticed without an event to write.
        let mut probe = [0u8; 8];
        loop {
            let received = tokio::select! {
                received = rx.recv() => received,
                read = socket.read(&mut probe) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => continue,
                },
            };
            let first = match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    hub.lagged.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            // Drain what is already queued so that a burst costs one vectored write, not one
            // each, without copying the shared bytes. Events already sent from history, and
            // events of other topics, are skipped.
            let wanted = |e: &Encoded| e.seq > spliced && selected(&topics, &e.topic);
            if wanted(&first) {
                batch.push(first.bytes);
            }
            while batch.len() < 64 {
                match rx.try_recv() {
                    Ok(next) if !wanted(&next) => {}
                    Ok(next) => batch.push(next.bytes),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {
                        hub.lagged.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                write_all_vectored(&mut socket, &mut batch).await?;
            }
        }
    }
    .await;
    hub.connected.fetch_sub(1, Ordering::Relaxed);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        let r =
            parse_request(b"GET /stream?lastEventId=a-1 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: a-2");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/stream"));
        assert_eq!(r.last_event_id.as_deref(), Some("a-2"));
        let r = parse_request(b"POST /publish HTTP/1.1\r\ncontent-length: 12");
        assert_eq!(r.content_length, 12);
        assert_eq!(r.last_event_id, None);
        assert!(r.topics.is_empty());
        let r = parse_request(b"GET /stream?topic=a&lastEventId=x-1&topic=b/* HTTP/1.1");
        assert_eq!(
            (r.path.as_str(), r.topics.as_slice()),
            ("/stream", &["a".to_owned(), "b/*".to_owned()][..])
        );
    }

    #[test]
    fn selectors_pick_topics_exactly_under_a_prefix_or_all() {
        let sel = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(selected(&[], "anything"), "no selector: every topic");
        assert!(selected(&sel(&["*"]), "x"));
        assert!(selected(&sel(&["bench.1"]), "bench.1"));
        assert!(!selected(&sel(&["bench.1"]), "bench.10"));
        assert!(selected(&sel(&["a/*"]), "a/b/c"));
        assert!(
            !selected(&sel(&["a/*"]), "a"),
            "a/* does not match a itself"
        );
        assert!(!selected(&sel(&["a/*"]), "ab/c"));
        assert!(selected(&sel(&["x", "a/*"]), "a/b"), "the union");
    }

    #[test]
    fn retry_is_exact_without_jitter_and_spans_the_band_with_it() {
        assert_eq!(jittered(3000, 0.0, 0.0), 3000);
        assert_eq!(jittered(3000, 0.0, 0.999), 3000);
        assert_eq!(jittered(3000, 0.2, 0.0), 2400);
        assert_eq!(jittered(3000, 0.2, 0.5), 3000);
        assert_eq!(jittered(3000, 0.2, 0.999_999), 3600);
        assert!(parse_jitter("1").is_err() && parse_jitter("-0.1").is_err());
        assert_eq!(parse_jitter("0"), Ok(0.0));
    }

    #[test]
    fn draws_are_uniform_enough_to_fill_every_tenth() {
        let mut tenths = [0u32; 10];
        for n in 0..10_000u64 {
            let draw = unit(n.wrapping_mul(GOLDEN));
            assert!((0.0..1.0).contains(&draw), "{draw}");
            tenths[(draw * 10.0) as usize] += 1;
        }
        // 1,000 expected in each; a poor mix would pile draws into a few tenths.
        assert!(tenths.iter().all(|t| (900..1100).contains(t)), "{tenths:?}");
    }

    #[test]
    fn chunks_are_framed() {
        assert_eq!(
            chunk(b"hello world, hi"),
            b"f\r\nhello world, hi\r\n".to_vec()
        );
    }
}
