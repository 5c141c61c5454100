//! The transport the hyper-based variants (axum, warp) share: accept connections, serve each
//! with hyper, and stop gracefully within a bound.
//!
//! `axum::serve` and warp's server are both this loop, hyper-util's connection builder per
//! accepted socket, with nothing of it to configure. Owning the loop once, here, is what lets
//! both variants get the same socket options, protocol settings and shutdown, written once;
//! the frameworks still do what they are for (routing, extractors, their SSE types), and
//! hand over a tower `Service`. actix-web has its own HTTP stack and keeps its own server.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::tls;
use crate::{Config, Service};

/// How long graceful shutdown may wait for open responses before the server stops anyway.
///
/// Every stream ends on the shutdown token, but only when hyper next polls it, and a client
/// that stopped reading keeps its socket full, so its stream is never polled again. Without
/// a deadline, one such client would hold the whole server open for ever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long to pause accepting after an error that is not about one connection (out of file
/// descriptors, say), so that the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A framework's app as the hyper loop serves it: a cloneable tower service from requests to
/// responses that cannot fail (errors are responses), such as axum's `Router` or warp's
/// filters through `warp::service`.
pub trait App:
    tower_service::Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The response body type.
    type Body: Body<Data: Send, Error: Into<Box<dyn StdError + Send + Sync>>> + Send + 'static;
}

impl<S, B> App for S
where
    S: tower_service::Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn StdError + Send + Sync>>> + Send + 'static,
{
    type Body = B;
}

/// The whole blocking `serve` of a hyper-based variant: on a runtime of its own, starts the
/// [`Service`] for `server` and serves the tower service `app` builds on it until
/// `shutdown` (see [`serve`]).
pub fn run<A: App>(
    server: &'static str,
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
    app: impl FnOnce(Arc<Service>) -> A,
) -> io::Result<()> {
    crate::cli::block_on(config.workers, async {
        let service = Service::start(server, config, shutdown).await?;
        serve(listener, app(Arc::clone(&service)), &service).await
    })
}

/// Serves `app` on `listener` until `service`'s shutdown token is cancelled, then stops
/// accepting, asks every connection to finish, and returns once they have, or
/// [`SHUTDOWN_GRACE`] later.
///
/// Every accepted socket gets the write timeout and is watched, and the TLS handshake when
/// the server has a certificate ([`tls::accept`]); every request on it carries its
/// [`Connection`] in its extensions, where the framework's stream route finds it for
/// admission. Over TLS, HTTP/2 or HTTP/1.1 is the client's choice (ALPN).
pub async fn serve<A: App>(
    listener: std::net::TcpListener,
    app: A,
    service: &Service,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let listen = Listen {
        tls: service.config.tls.clone(),
        write_timeout: service.config.write_timeout,
        shutdown: service.shutdown.clone(),
    };
    serve_app(listener, app, listen).await;
    Ok(())
}

/// How [`serve_app`] listens: TLS or not, the write timeout, and when to stop.
pub struct Listen {
    /// The certificate to serve HTTPS with; plain HTTP/1.1 without one.
    pub tls: Option<tls::Tls>,
    /// How long a write may stall before the connection is cut.
    pub write_timeout: Duration,
    /// Cancelled to stop: accepting ends, connections are asked to finish.
    pub shutdown: CancellationToken,
}

/// The loop under [`serve`], for any app (the demo's compare page is served with it too, so
/// that `sse-demo --tls` serves the page over HTTPS like the variants).
pub async fn serve_app<A: App>(listener: tokio::net::TcpListener, app: A, listen: Listen) {
    let Listen {
        tls,
        write_timeout,
        shutdown,
    } = listen;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if tls.is_none() {
        // Plain HTTP/1.1, as browsers speak it in clear (they speak HTTP/2 only over TLS).
        builder = builder.http1_only();
    }
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        let (app, builder, tls) = (app.clone(), builder.clone(), tls.clone());
        let watcher = graceful.watcher();
        // The TLS handshake is the connection task's, so that a slow one never holds up
        // the accept loop.
        tokio::spawn(async move {
            let io = match tls::accept(stream, write_timeout, tls.as_ref()).await {
                Ok(io) => io,
                Err(error) => return tracing::debug!(%error, "connection refused at accept"),
            };
            let app = WithConnection {
                app,
                connection: Arc::clone(io.connection()),
            };
            let connection =
                builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                // A client that goes away mid-response is ordinary for SSE.
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "responses still open after the grace period; stopping anyway");
        }
    }
}

/// A connection's app: every request gets the [`Connection`] in its extensions.
#[derive(Clone)]
struct WithConnection<A> {
    /// The framework's app.
    app: A,
    /// The connection its requests arrive on.
    connection: Arc<Connection>,
}

impl<A: App> tower_service::Service<Request<Incoming>> for WithConnection<A> {
    type Response = A::Response;
    type Error = Infallible;
    type Future = A::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.app.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(Arc::clone(&self.connection));
        self.app.call(request)
    }
}

/// Handles an `accept` error: one about a single connection (it was reset before we took
/// it) is no reason to pause; anything else (`EMFILE`, say) is logged and waited out.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; pausing before accepting again");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
