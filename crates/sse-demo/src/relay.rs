//! The page reaches each variant through a relay of the demo's own, so that the demo can cut
//! the page's network and see what the page received.
//!
//! A [`Relay`] is a plain TCP relay in front of one variant: the page's streams and publishes
//! go through it, byte for byte. [`Relay::cut`] drops every connection at once, as a dead
//! network path would, and refuses new ones until [`Relay::restore`]; meanwhile the
//! variant publishes on, so whatever the page gets afterwards it gets by resuming. On the way
//! the relay reads both directions ([`crate::watch`]) and keeps a [`Seen`]: the page's stream
//! requests, how each was answered, and every id delivered.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::watch::{EventScanner, Piece, Request, Requests, Responses, Scanned, Seen};

/// The relay's read buffer, per direction and connection.
const BUFFER: usize = 16 * 1024;

/// A relay in front of one variant; it stops, dropping every connection, when dropped.
pub struct Relay {
    /// Where the page connects.
    pub addr: SocketAddr,
    /// What the accept loop and every connection share.
    shared: Arc<Shared>,
    /// The accept loop.
    accept: JoinHandle<()>,
}

/// What the relay's tasks and the faults share.
///
/// Both lists are behind `std` mutexes, each held for one update and never across an
/// `.await`, and never together with the other.
struct Shared {
    /// The variant behind the relay.
    upstream: SocketAddr,
    /// While set, new connections are closed at once: the network is down.
    down: AtomicBool,
    /// The connections being relayed, to abort on a cut.
    connections: Mutex<Vec<AbortHandle>>,
    /// What went to the page.
    seen: Mutex<Seen>,
}

/// Locks a mutex even if a relay task panicked holding it: every update is one step, so the
/// data is whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Relay {
    /// Listens on a free port of `host` and relays every connection to `upstream`.
    pub async fn start(host: IpAddr, upstream: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(SocketAddr::new(host, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            down: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            seen: Mutex::new(Seen::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Relay {
            addr,
            shared,
            accept,
        })
    }

    /// Drops every open connection and refuses new ones until [`Relay::restore`]; returns
    /// how many were open.
    pub fn cut(&self) -> usize {
        self.shared.down.store(true, Ordering::SeqCst);
        self.drop_connections()
    }

    /// Drops every open connection, but lets the page connect again at once.
    pub fn drop_connections(&self) -> usize {
        let connections: Vec<AbortHandle> = lock(&self.shared.connections).drain(..).collect();
        let open = connections.iter().filter(|c| !c.is_finished()).count();
        for connection in connections {
            connection.abort();
        }
        open
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Reads what the page received so far.
    pub fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&lock(&self.shared.seen))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Accepts connections for as long as the relay lives.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((page, _)) = listener.accept().await else {
            // Out of file descriptors, say: the page retries, and so do we.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        if shared.down.load(Ordering::SeqCst) {
            // The network is down: the page sees its request fail, and tries again.
            drop(page);
            continue;
        }
        let _ = page.set_nodelay(true);
        let connection = tokio::spawn(relay(page, Arc::clone(&shared)));
        let mut connections = lock(&shared.connections);
        connections.retain(|c| !c.is_finished());
        connections.push(connection.abort_handle());
    }
}

/// Relays one connection both ways until both directions end (or the relay is aborted,
/// which drops, and so closes, both sockets).
async fn relay(page: TcpStream, shared: Arc<Shared>) {
    let Ok(variant) = TcpStream::connect(shared.upstream).await else {
        // The variant is down (restarting, say): the page sees a failed request.
        return;
    };
    let _ = variant.set_nodelay(true);
    let (from_page, mut to_page) = page.into_split();
    let (from_variant, mut to_variant) = variant.into_split();
    let pending = Pending::default();
    let upstream = forward_requests(from_page, &mut to_variant, &pending);
    let downstream = forward_responses(from_variant, &mut to_page, &pending, &shared);
    tokio::join!(upstream, downstream);
}

/// Copies `from` to `to` until either side ends, calling `before` with each chunk before it
/// is written and `after` with what `before` returned once it is; then passes the end on, as
/// a network path would.
async fn copy_watching<T>(
    mut from: OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mut before: impl FnMut(&[u8]) -> T,
    mut after: impl FnMut(T),
) {
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let noted = before(&buffer[..read]);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        after(noted);
    }
    let _ = to.shutdown().await;
}

/// Copies the page's bytes to the variant, noting each request on the way: before the
/// variant can see a request, so before its response can come.
async fn forward_requests(from: OwnedReadHalf, to: &mut OwnedWriteHalf, pending: &Pending) {
    let mut requests = Requests::default();
    let note = |chunk: &[u8]| lock(pending).extend(requests.feed(chunk));
    copy_watching(from, to, note, |()| {}).await;
}

/// Copies the variant's bytes to the page, noting what each stream delivers once it is
/// written: what the page had when a cut came is what it resumes after.
async fn forward_responses(
    from: OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    pending: &Pending,
    shared: &Shared,
) {
    let mut watch = ResponseWatch::default();
    let read = |chunk: &[u8]| watch.feed(chunk, pending, shared);
    let record = |events: Vec<(u64, Scanned)>| {
        if !events.is_empty() {
            let mut seen = lock(&shared.seen);
            for (number, event) in &events {
                seen.event(*number, event);
            }
        }
    };
    copy_watching(from, to, read, record).await;
}

/// The requests a connection carries, oldest first, to pair with their responses: browsers
/// send the next request only once the previous response has come.
type Pending = Mutex<VecDeque<Request>>;

/// Reads a connection's responses as they go to the page.
#[derive(Default)]
struct ResponseWatch {
    /// Splits the bytes into responses.
    responses: Responses,
    /// The stream the current response answers, and its reader; `None` for other responses.
    stream: Option<(u64, EventScanner)>,
}

impl ResponseWatch {
    /// Reads one chunk: notes each stream request's answer; returns the events delivered.
    fn feed(&mut self, chunk: &[u8], pending: &Pending, shared: &Shared) -> Vec<(u64, Scanned)> {
        let mut events = Vec::new();
        for piece in self.responses.feed(chunk) {
            match piece {
                Piece::Head {
                    status,
                    event_stream,
                } => {
                    let request = lock(pending).pop_front().unwrap_or_default();
                    self.stream = None;
                    if request.is_stream {
                        let number = lock(&shared.seen).open(&request, status);
                        // A refusal's JSON is no event stream: nothing to scan in it.
                        self.stream = event_stream.then(|| (number, EventScanner::default()));
                    }
                }
                Piece::Body(body) => {
                    if let Some((number, scanner)) = self.stream.as_mut() {
                        events.extend(scanner.feed(&body).into_iter().map(|e| (*number, e)));
                    }
                }
            }
        }
        events
    }
}
