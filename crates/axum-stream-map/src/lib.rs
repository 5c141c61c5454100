//! axum-stream-map: the sse-idioms contract on axum, with each stream built as a pipeline.
//!
//! The idiom is in [`stream`]. This file is the plumbing every variant has in its own
//! framework's words: routes, the extractor that admits a stream, CORS, publish, and
//! start/stop. Everything the contract decides (status codes, bodies, headers) comes from
//! sse-core as a [`Reply`]; [`reply`] is the one place that turns it into an axum response.

pub mod stream;

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use sse_core::connection::Connection;
use sse_core::publish::MAX_BODY_BYTES;
use sse_core::{CancellationToken, Config, Opening, Reply, RequestHead, Service};

/// The name this variant gives in `welcome` and on metrics.
pub const SERVER: &str = "axum-stream-map";

/// The router: every endpoint of the contract, with the CORS policy around all of them.
pub fn app(service: Arc<Service>) -> Router {
    // Declared now, so that `/metrics` shows it before the first stream.
    service.metrics.idiom_gauge(&stream::PIPELINES);
    let stream = get(stream::stream).layer(middleware::map_response(stream_headers));
    Router::new()
        .route("/stream", stream)
        .route("/publish", post(publish))
        .route(
            "/metrics",
            get(|State(s): State<Arc<Service>>| async move { reply(s.metrics_reply()) }),
        )
        .route(
            "/healthz",
            get(|State(s): State<Arc<Service>>| async move { reply(s.health_reply()) }),
        )
        .fallback(unrouted)
        .method_not_allowed_fallback(unrouted)
        .layer(middleware::from_fn_with_state(Arc::clone(&service), cors))
        .with_state(service)
}

/// Serves `listener` until `shutdown` is cancelled, on a runtime of its own; every open
/// stream ends then too. This is what the binary runs (through `sse_core::cli::main`) and
/// what the conformance suite runs on a thread.
pub fn serve(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // One `Router` for every connection: each gets a clone, which shares the routes.
    sse_core::transport::run(SERVER, listener, config, shutdown, app)
}

/// A client admitted to `GET /stream`, with everything its stream opens with: the extractor
/// that keeps admission (the client limit, shutdown, `Last-Event-ID`) out of the idiom.
pub struct Admitted(pub Opening);

impl FromRequestParts<Arc<Service>> for Admitted {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        // The transport puts the connection in every request's extensions.
        let connection = parts.extensions.get::<Arc<Connection>>();
        let request =
            RequestHead::new(&parts.headers, parts.uri.query()).with_connection(connection);
        service
            .open_stream(&request)
            .await
            .map(Admitted)
            .map_err(reply)
    }
}

/// Adds the contract's stream headers to every `GET /stream` response.
async fn stream_headers(mut response: Response) -> Response {
    sse_core::reply::insert_stream_headers(response.headers_mut());
    response
}

/// `POST /publish`: reads at most 64 KiB, and lets sse-core judge the rest.
async fn publish(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|body| body.to_bytes());
    let body = match &bytes {
        Ok(bytes) => Ok(&bytes[..]),
        Err(error) if error.is::<LengthLimitError>() => Err(Reply::too_large(MAX_BODY_BYTES)),
        Err(error) => Err(Reply::unreadable_body(error)),
    };
    let request = RequestHead::new(&headers, uri.query());
    reply(service.publish(&request, body).await)
}

/// Everything no route took: the shared client, or the contract's JSON 404 and 405.
async fn unrouted(method: Method, uri: Uri) -> Response {
    reply(sse_core::routes::unrouted(method.as_str(), uri.path()))
}

/// Answers preflights, and adds the policy's headers to every other response.
async fn cors(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    let origin = RequestHead::new(request.headers(), None)
        .origin()
        .map(str::to_owned);
    if request.method() == Method::OPTIONS {
        return reply(service.cors.preflight(origin.as_deref()));
    }
    let mut response = next.run(request).await;
    let headers = service.cors.headers(origin.as_deref());
    sse_core::reply::append_headers(response.headers_mut(), headers);
    response
}

/// Writes a core [`Reply`] as an axum response.
pub fn reply(reply: Reply) -> Response {
    axum::http::Response::from(reply).map(Body::from)
}
