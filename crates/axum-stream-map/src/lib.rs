//! axum-stream-map: the sse-idioms contract on axum, with each stream built as a pipeline.
//!
//! The idiom is in [`stream`]. This file is the plumbing every variant has in its own
//! framework's words: routes, CORS, publish, metrics, the shared client, and start/stop.
//! Everything the contract decides (status codes, bodies, headers) comes from sse-core as a
//! [`Reply`]; [`reply`] is the one place that turns it into an axum response.

pub mod stream;

use std::future::IntoFuture as _;
use std::io;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use sse_core::publish::MAX_BODY_BYTES;
use sse_core::{CancellationToken, Config, Reply, Service};

/// The name this variant gives in `welcome` and on metrics.
pub const SERVER: &str = "axum-stream-map";

/// The router: every endpoint of the contract, with the CORS policy around all of them.
pub fn app(service: Arc<Service>) -> Router {
    Router::new()
        .route("/stream", get(stream::stream))
        .route("/publish", post(publish))
        .route(
            "/metrics",
            get(|State(s): State<Arc<Service>>| async move { reply(s.metrics_reply()) }),
        )
        .route(
            "/healthz",
            get(|State(s): State<Arc<Service>>| async move { reply(s.health_reply()) }),
        )
        .fallback(assets)
        .method_not_allowed_fallback(|uri: Uri| async move {
            reply(Reply::method_not_allowed(uri.path()))
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&service), cors))
        .with_state(service)
}

/// Serves `listener` until `shutdown` is cancelled; every open stream ends then too.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let service = Service::new(SERVER, config, shutdown.clone());
    sse_core::ticker::spawn(Arc::clone(&service));
    // `into_make_service` turns the router into routes once. Handing axum the `Router`
    // itself would redo that for every connection (a few KiB of route tables each, found
    // with valgrind's massif while holding 2,000 streams).
    let server = axum::serve(listener, app(service).into_make_service())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::select! {
        served = server.into_future() => served,
        () = sse_core::cli::grace_expired(shutdown) => Ok(()),
    }
}

/// [`run`] on a runtime of its own, for callers without one (`main`, the conformance suite).
pub fn serve(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    sse_core::cli::block_on(run(listener, config, shutdown))
}

/// The whole program: flags, logs, bind, serve until SIGINT or SIGTERM.
pub fn main() -> ExitCode {
    sse_core::cli::main(SERVER, serve)
}

/// `POST /publish`: reads at most 64 KiB, and lets sse-core judge the rest.
async fn publish(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> Response {
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|body| body.to_bytes());
    let body = match &bytes {
        Ok(bytes) => Ok(&bytes[..]),
        Err(error) if error.is::<LengthLimitError>() => Err(Reply::too_large(MAX_BODY_BYTES)),
        Err(error) => Err(Reply::error(
            400,
            format!("could not read the body: {error}"),
        )),
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    reply(
        service
            .publish(header(CONTENT_TYPE), header(AUTHORIZATION), body)
            .await,
    )
}

/// Everything no contract route took: the shared client, or the contract's JSON errors.
async fn assets(method: Method, uri: Uri) -> Response {
    reply(sse_core::assets::fallback(method.as_str(), uri.path()))
}

/// Answers preflights, and adds the policy's headers to every other response.
async fn cors(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if request.method() == Method::OPTIONS {
        return reply(service.cors.preflight(origin.as_deref()));
    }
    let mut response = next.run(request).await;
    append_headers(
        response.headers_mut(),
        service.cors.headers(origin.as_deref()),
    );
    response
}

/// Writes a core [`Reply`] as an axum response.
pub fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(CONTENT_TYPE, reply.content_type)],
        reply.body.into_owned(),
    )
        .into_response();
    append_headers(response.headers_mut(), reply.headers);
    response
}

fn append_headers(map: &mut HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        // Header values come from validated config and our own formatting; skip rather
        // than panic if one ever is not a valid header value.
        if let Ok(value) = HeaderValue::try_from(value) {
            map.append(HeaderName::from_static(name), value);
        }
    }
}
