//! warp-generator: the sse-idioms contract on warp, with each stream written as a generator.
//!
//! The idiom is in [`generator`]. This file is the plumbing every variant has in its own
//! framework's words: routes, admitting a stream, CORS, publish, and start/stop.
//! Everything the contract decides (status codes, bodies, headers) comes from sse-core as a
//! [`Reply`]; [`reply`] is the one place that turns it into a warp response.

pub mod generator;

use std::convert::Infallible;
use std::io;
use std::pin::pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use sse_core::connection::Connection;
use sse_core::publish::MAX_BODY_BYTES;
use sse_core::{CancellationToken, Config, Reply, RequestHead, Service};
use warp::filters::path::FullPath;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Buf, Filter, Reply as _};

/// The name this variant gives in `welcome` and on metrics.
pub const SERVER: &str = "warp-generator";

/// The routes: every endpoint of the contract, with the CORS policy around all of them.
///
/// The error type is `Infallible`: the last route answers every method and path, so no
/// request ever falls through to warp's own rejections, whose bodies are text and whose
/// status codes (405 for an unknown path tried with one route's wrong method) differ from
/// the contract's.
pub fn routes(
    service: Arc<Service>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    // Declared now, so that `/metrics` shows it before the first stream.
    service.metrics.idiom_gauge(&generator::GENERATORS);
    let service = warp::any().map(move || Arc::clone(&service));
    let headers = warp::header::headers_cloned();
    // `query::raw` rejects a request that has no query; here that is just no query.
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();

    let stream = warp::get()
        .and(warp::path!("stream"))
        .and(service.clone())
        .and(headers)
        .and(query)
        // The transport puts the connection in every request's extensions.
        .and(warp::ext::optional::<Arc<Connection>>())
        .then(
            |service,
             headers: HeaderMap,
             query: Option<String>,
             connection: Option<Arc<Connection>>| async move {
                let request = RequestHead::new(&headers, query.as_deref());
                stream(service, &request.with_connection(connection.as_ref())).await
            },
        );
    let publish = warp::post()
        .and(warp::path!("publish"))
        .and(service.clone())
        .and(headers)
        .and(query)
        .and(warp::body::stream())
        .then(publish);
    let metrics = warp::get()
        .and(warp::path!("metrics"))
        .and(service.clone())
        .map(|service: Arc<Service>| reply(service.metrics_reply()));
    let healthz = warp::get()
        .and(warp::path!("healthz"))
        .and(service.clone())
        .map(|service: Arc<Service>| reply(service.health_reply()));
    let unrouted = warp::method().and(warp::path::full()).map(unrouted);

    let endpoints = stream
        .or(publish)
        .unify()
        .or(metrics)
        .unify()
        .or(healthz)
        .unify()
        .or(unrouted)
        .unify();

    // Preflights are answered whole by the policy; every other response gets its headers.
    let preflight = warp::options().and(service.clone()).and(headers).map(
        |service: Arc<Service>, headers: HeaderMap| {
            let origin = RequestHead::new(&headers, None).origin();
            reply(service.cors.preflight(origin))
        },
    );
    let with_cors = service.and(headers).and(endpoints).map(
        |service: Arc<Service>, headers: HeaderMap, mut response: Response| {
            let origin = RequestHead::new(&headers, None).origin();
            let cors = service.cors.headers(origin);
            sse_core::reply::append_headers(response.headers_mut(), cors);
            response
        },
    );
    preflight.or(with_cors).unify()
}

/// Serves `listener` until `shutdown` is cancelled, on a runtime of its own; every open
/// stream ends then too. warp's filters become one tower service, which sse-core's hyper
/// loop serves (warp's own server has no settings to give, and no TLS in 0.4).
pub fn serve(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    sse_core::transport::run(SERVER, listener, config, shutdown, |service| {
        warp::service(routes(service))
    })
}

/// `GET /stream`: admits the client and hands its opening to the generator, or answers the
/// refusal; either way with the contract's stream headers.
async fn stream(service: Arc<Service>, request: &RequestHead<'_>) -> Response {
    let mut response = match service.open_stream(request).await {
        Ok(opening) => generator::stream(&service, opening).into_response(),
        Err(refused) => reply(refused),
    };
    sse_core::reply::insert_stream_headers(response.headers_mut());
    response
}

/// `POST /publish`: reads at most 64 KiB, and lets sse-core judge the rest.
async fn publish<B: Buf>(
    service: Arc<Service>,
    headers: HeaderMap,
    query: Option<String>,
    body: impl Stream<Item = Result<B, warp::Error>>,
) -> Response {
    let bytes = read_limited(body).await;
    let body = bytes.as_deref().map_err(Reply::clone);
    let request = RequestHead::new(&headers, query.as_deref());
    reply(service.publish(&request, body).await)
}

/// Reads a body up to [`MAX_BODY_BYTES`], stopping at the first byte past it.
///
/// warp's `content_length_limit` trusts `Content-Length` and rejects a chunked body that has
/// none, so the limit is counted here, as the bytes arrive.
async fn read_limited<B: Buf>(
    body: impl Stream<Item = Result<B, warp::Error>>,
) -> Result<Vec<u8>, Reply> {
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(Reply::unreadable_body)?;
        if bytes.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(Reply::too_large(MAX_BODY_BYTES));
        }
        bytes.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    Ok(bytes)
}

/// Everything no route took: the shared client, or the contract's JSON 404 and 405.
fn unrouted(method: Method, path: FullPath) -> Response {
    reply(sse_core::routes::unrouted(method.as_str(), path.as_str()))
}

/// Writes a core [`Reply`] as a warp response.
pub fn reply(reply: Reply) -> Response {
    warp::http::Response::from(reply).into_response()
}
