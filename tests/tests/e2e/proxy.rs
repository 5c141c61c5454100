//! A TCP proxy between the browser and a server, whose connections the test can cut.
//!
//! The browser loads the page through the proxy, so its stream runs through it too. `cut`
//! drops every relayed connection at once (both sockets close, as when a network path
//! dies) and refuses new ones until `restore`, so that events published meanwhile can only
//! reach the page through resume. The proxy also notes the head of every HTTP request the
//! browser sends, so a test can see the `Last-Event-ID` header of a reconnect.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use super::{Context, Outcome};

/// A running proxy; it stops (and drops every connection) when dropped.
pub struct Proxy {
    /// Where the browser connects.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// What the accept loop, the relays and the test share.
///
/// The two lists are behind `std` mutexes: each is held for one push or one drain, never
/// across an `.await`, and never together with the other, so there is no order to keep.
struct Shared {
    /// The server behind the proxy.
    upstream: SocketAddr,
    /// While set, new connections are closed at once.
    down: AtomicBool,
    /// The relays, to abort on a cut.
    relays: Mutex<Vec<AbortHandle>>,
    /// Every request head seen, in arrival order.
    heads: Mutex<Vec<String>>,
}

/// Locks a mutex even if a relay panicked while holding it: the data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port and relays every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Outcome<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let addr = listener.local_addr().context("the proxy's address")?;
        let shared = Arc::new(Shared {
            upstream,
            down: AtomicBool::new(false),
            relays: Mutex::new(Vec::new()),
            heads: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy {
            addr,
            shared,
            accept,
        })
    }

    /// Drops every open connection and refuses new ones until [`Proxy::restore`]; returns
    /// how many connections were open.
    pub fn cut(&self) -> usize {
        self.shared.down.store(true, Ordering::SeqCst);
        let relays: Vec<AbortHandle> = lock(&self.shared.relays).drain(..).collect();
        let open = relays.iter().filter(|r| !r.is_finished()).count();
        for relay in relays {
            relay.abort();
        }
        open
    }

    /// Accepts and relays connections again.
    pub fn restore(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// The request heads seen so far (request line and headers), oldest first.
    pub fn heads(&self) -> Vec<String> {
        lock(&self.shared.heads).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Accepts connections for as long as the proxy lives.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.down.load(Ordering::SeqCst) {
            // The network is "down": the browser sees its request fail and tries again.
            drop(client);
            continue;
        }
        let relay = tokio::spawn(relay(client, shared.clone()));
        let mut relays = lock(&shared.relays);
        relays.retain(|r| !r.is_finished());
        relays.push(relay.abort_handle());
    }
}

/// Relays one connection both ways until both directions end (or the relay is aborted,
/// which drops, and so closes, both sockets).
async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        // Dropping the client's socket makes the browser see a failed request.
        return;
    };
    let (from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let upstream = forward_noting_heads(from_client, &mut to_server, &shared);
    let downstream = async {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        // Pass the server's end of the stream on, as a network path would.
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// Copies the browser's bytes to the server, noting each request head on the way.
async fn forward_noting_heads(mut from: OwnedReadHalf, to: &mut OwnedWriteHalf, shared: &Shared) {
    let mut heads = HeadReader::default();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        let found = heads.feed(chunk);
        if !found.is_empty() {
            lock(&shared.heads).extend(found);
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Finds HTTP/1.1 request heads in a byte stream, skipping bodies by `Content-Length`.
#[derive(Default)]
struct HeadReader {
    /// Bytes of a head not yet complete.
    pending: Vec<u8>,
    /// Body bytes still to skip.
    skip: usize,
}

impl HeadReader {
    /// Takes the next bytes and returns the heads they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut heads = Vec::new();
        loop {
            let skipped = self.skip.min(self.pending.len());
            self.pending.drain(..skipped);
            self.skip -= skipped;
            if self.skip > 0 {
                break;
            }
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
            self.pending.drain(..end + 4);
            self.skip = content_length(&head);
            heads.push(head);
        }
        heads
    }
}

/// The `Content-Length` of a request head (0 when absent).
fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in a request head, if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}
