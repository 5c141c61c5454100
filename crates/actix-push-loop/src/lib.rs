//! actix-push-loop: the sse-idioms contract on actix-web, with one task pushing every event
//! to a list of connected clients.
//!
//! The idiom is in [`broadcaster`]. This file is the plumbing every variant has in its own
//! framework's words: routes, admitting a stream, CORS, publish, and start/stop.
//! Everything the contract decides (status codes, bodies, headers) comes from sse-core as a
//! [`Reply`]; [`reply`] is the one place that turns it into an actix response.

pub mod broadcaster;

use std::io;
use std::sync::Arc;

use actix_http::{Extensions, HttpService, Protocol};
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, fn_service, map_config};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{AppConfig, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{Next, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::web::{self, Data};
use actix_web::{App, HttpRequest, HttpResponse, Resource, Route};
use sse_core::connection::Connection;
use sse_core::publish::MAX_BODY_BYTES;
use sse_core::tls::{self, Conn};
use sse_core::{CancellationToken, Config, Headers, Reply, RequestHead, STREAM_HEADERS, Service};

use crate::broadcaster::Broadcaster;

/// The name this variant gives in `welcome` and on metrics.
pub const SERVER: &str = "actix-push-loop";

/// Seconds actix waits for open connections at shutdown before dropping them.
///
/// The broadcaster ends every stream as soon as shutdown is cancelled, so healthy clients
/// are gone at once; this bound is for a stalled client that never drains its queue, and
/// keeps the whole stop within the contract's 5 s.
const SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// The app: every endpoint of the contract, with the CORS policy around all of them.
pub fn app(
    service: Arc<Service>,
    broadcaster: Arc<Broadcaster>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(Data::from(service))
        .app_data(Data::from(broadcaster))
        .service(endpoint("/stream", web::get().to(stream)))
        .service(endpoint("/publish", web::post().to(publish)))
        .service(endpoint(
            "/metrics",
            web::get().to(|s: Data<Service>| async move { reply(s.metrics_reply()) }),
        ))
        .service(endpoint(
            "/healthz",
            web::get().to(|s: Data<Service>| async move { reply(s.health_reply()) }),
        ))
        .default_service(web::to(unrouted))
        .wrap(from_fn(cors))
}

/// Serves `listener` until `shutdown` is cancelled, on an actix `System` of its own; every
/// open stream ends then too.
///
/// This is actix-web's `HttpServer` spelled out (actix-server accepting, actix-http
/// serving the app), because `HttpServer` gives no way to wrap a connection's I/O: each
/// accepted socket gets the write timeout and is [`Watched`], and its requests carry the
/// [`Connection`] (actix's connection data), exactly as sse-core's hyper transport does for
/// the other two variants.
pub fn serve(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let service = Service::start(SERVER, config, shutdown.clone()).await?;
        let broadcaster = Broadcaster::start(Arc::clone(&service));
        let write_timeout = service.config.write_timeout;
        let tls = service.config.tls.clone();
        let mut server = actix_server::Server::build();
        // actix's default is one worker per core: each worker writes the shared frames to
        // its own clients, so the writing scales with workers. `--workers` overrides it.
        if let Some(workers) = service.config.workers {
            server = server.workers(usize::from(workers));
        }
        let server = server
            .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
            // sse-core owns the signals (one watcher for every variant), so actix installs
            // none and starts its graceful stop when the token is cancelled instead.
            .disable_signals()
            .shutdown_signal(shutdown.cancelled_owned())
            .listen(SERVER, listener, move || {
                let app = app(Arc::clone(&service), Arc::clone(&broadcaster))
                    .into_factory()
                    .map_err(|error| error.error_response());
                let http = HttpService::build()
                    .on_connect_ext(|io: &Conn, data: &mut Extensions| {
                        data.insert(Arc::clone(io.connection()));
                    })
                    .finish(map_config(app, |_| AppConfig::default()));
                let tls = tls.clone();
                fn_service(move |stream: TcpStream| {
                    let tls = tls.clone();
                    async move {
                        let peer = stream.peer_addr().ok();
                        let io = tls::accept(stream, write_timeout, tls.as_ref()).await?;
                        let protocol = if io.is_http2() {
                            Protocol::Http2
                        } else {
                            Protocol::Http1
                        };
                        Ok::<_, std::io::Error>((io, protocol, peer))
                    }
                })
                .map_err(|error| tracing::debug!(%error, "connection refused at accept"))
                .and_then(http.map_err(|error| tracing::debug!(?error, "connection failed")))
            })?
            .run();
        server.await
    })
}

/// A contract path: `route` for its method, the contract's JSON 405 for any other.
///
/// actix answers a wrong method on a resource with an empty 405 of its own and never
/// reaches the app's default service, so each resource sends it there itself.
fn endpoint(path: &'static str, route: Route) -> Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(unrouted))
}

/// actix's header map, as sse-core reads headers.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(HeaderValue::as_bytes)
    }
}

/// `GET /stream`: admits the client and joins it to the broadcaster, or answers the
/// refusal; either way with the contract's stream headers.
async fn stream(
    service: Data<Service>,
    broadcaster: Data<Broadcaster>,
    request: HttpRequest,
) -> HttpResponse {
    let headers = ActixHeaders(request.headers());
    let connection = request.conn_data::<Arc<Connection>>();
    let head = RequestHead::new(&headers, Some(request.query_string())).with_connection(connection);
    let admitted = service.admit(&head).await.and_then(|admission| {
        // The broadcaster stops only after shutdown began, so this is the race where shutdown
        // came between admission and joining.
        broadcaster::stream(&broadcaster, admission).ok_or_else(|| service.shutting_down())
    });
    let mut response = match admitted {
        Ok(response) => response,
        Err(refused) => reply(refused),
    };
    for (name, value) in STREAM_HEADERS {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// `POST /publish`: reads at most 64 KiB, and lets sse-core judge the rest.
async fn publish(
    service: Data<Service>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let bytes = payload.to_bytes_limited(MAX_BODY_BYTES).await;
    let body = match &bytes {
        Ok(Ok(bytes)) => Ok(&bytes[..]),
        Ok(Err(error)) => Err(Reply::unreadable_body(error)),
        Err(_) => Err(Reply::too_large(MAX_BODY_BYTES)),
    };
    let headers = ActixHeaders(request.headers());
    let head = RequestHead::new(&headers, Some(request.query_string()));
    reply(service.publish(&head, body).await)
}

/// Everything no route took: the shared client, or the contract's JSON 404 and 405.
async fn unrouted(request: HttpRequest) -> HttpResponse {
    reply(sse_core::routes::unrouted(
        request.method().as_str(),
        request.path(),
    ))
}

/// Answers preflights, and adds the policy's headers to every other response.
async fn cors(
    service: Data<Service>,
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let headers = ActixHeaders(request.headers());
    let origin = RequestHead::new(&headers, None).origin().map(str::to_owned);
    if request.method() == Method::OPTIONS {
        return Ok(request.into_response(reply(service.cors.preflight(origin.as_deref()))));
    }
    let mut response = next.call(request).await?;
    append_headers(
        response.headers_mut(),
        service.cors.headers(origin.as_deref()),
    );
    Ok(response)
}

/// Writes a core [`Reply`] as an actix response.
pub fn reply(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status)
        .content_type(reply.content_type)
        .body(reply.body);
    append_headers(response.headers_mut(), reply.headers);
    response
}

/// Appends `headers` to an actix header map: sse-core's `append_headers` in actix's own
/// header types, which are not the `http` crate's.
fn append_headers(map: &mut HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        // Values come from validated config and our own formatting; skip rather than panic
        // if one ever is not a valid header value.
        if let Ok(value) = HeaderValue::try_from(value) {
            map.append(HeaderName::from_static(name), value);
        }
    }
}
