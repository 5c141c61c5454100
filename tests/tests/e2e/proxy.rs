//! A TCP proxy between the browser and a server, whose connections the test can cut: the
//! demo's own relay ([`sse_demo::relay`]), which the compare page's network cut uses too.
//!
//! The browser loads the page through the proxy, so its stream runs through it too. `cut`
//! drops every relayed connection at once (both sockets close, as when a network path
//! dies) and refuses new ones until `restore`, so that events published meanwhile can only
//! reach the page through resume. The relay also notes each stream request the browser
//! sends, so a test can see the `Last-Event-ID` header of a reconnect.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use sse_demo::relay::Relay;

use super::{Context, Outcome};

/// A running proxy on 127.0.0.1; it stops (and drops every connection) when dropped.
pub struct Proxy(Relay);

impl Proxy {
    /// Listens on a free 127.0.0.1 port and relays every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Outcome<Proxy> {
        Relay::start(Ipv4Addr::LOCALHOST.into(), upstream)
            .await
            .map(Proxy)
            .context("starting the proxy")
    }

    /// Where the browser connects.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Drops every open connection and refuses new ones until [`Proxy::restore`]; returns
    /// how many connections were open.
    pub fn cut(&self) -> usize {
        self.0.cut()
    }

    /// Accepts and relays connections again.
    pub fn restore(&self) {
        self.0.restore();
    }

    /// The `Last-Event-ID` headers of the stream requests answered since `since`, in order
    /// (`None` for a request without one).
    pub fn last_event_ids_since(&self, since: Instant) -> Vec<Option<String>> {
        self.0.seen(|seen| {
            seen.streams_since(since)
                .map(|stream| stream.last_event_id.clone())
                .collect()
        })
    }
}
