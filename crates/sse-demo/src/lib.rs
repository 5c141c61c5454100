//! sse-demo: the three idioms side by side, live, and faults to watch them differ.
//!
//! One command starts every variant as its own process, on consecutive ports after the
//! compare page's, and serves the compare page: three stream panes, one per variant, each an
//! `EventSource` to that variant across origins (the launcher passes the page's origin to
//! `--allowed-origins`). Separate processes keep the comparison honest: each variant has
//! its own runtime, memory and `/metrics`, exactly as when run alone.
//!
//! Beside each pane the page shows the variant's idiom file, as built into this binary
//! ([`code`]), and buttons that make the demo fault all three variants at once (the control
//! API in `control`, on loopback only): a stalled reader, a flood, a network cut, a restart,
//! a full server. For the cut, and to see what the page received, each pane's stream goes
//! through a relay of the demo's own (`relay`).
//!
//! The variants are not found on disk: this binary links all three and re-runs itself as
//! one of them, selected by [`CHILD_VAR`], so `cargo run -p sse-demo` needs nothing else
//! built. Ctrl-C (or SIGTERM) stops every variant cleanly; if one variant dies by itself,
//! the demo says so and stops the rest.

/// Prints a line on stdout, ignoring a closed pipe (`sse-demo | head -3` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod children;
mod client;
pub mod code;
mod control;
mod faults;
pub mod relay;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use serde_json::{Value, json};
use sse_core::config::HubKind;
use tokio::sync::mpsc;

use crate::children::{Recipe, Variant};
use crate::code::IdiomFile;
use crate::control::Demo;
use crate::faults::{PAGE_TOPICS, Target};
use crate::relay::Relay;

/// The environment variable that makes this binary run one variant's `main`.
pub const CHILD_VAR: &str = "SSE_DEMO_VARIANT";

/// How long a write to a page client may stall before its connection is cut.
const PAGE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The variants, in the order their columns appear: name and blocking `serve`, which
/// `sse_core::cli::main` runs as the variant's own binary does.
const VARIANTS: [(&str, sse_core::cli::Serve); 3] = [
    (axum_stream_map::SERVER, axum_stream_map::serve),
    (actix_push_loop::SERVER, actix_push_loop::serve),
    (warp_generator::SERVER, warp_generator::serve),
];

/// The compare page's own files, `(path, content type, body)`; the pane module and styles
/// come from sse-core's assets.
const PAGE_FILES: [(&str, &str, &str); 5] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../shared-client/compare.html"),
    ),
    (
        "/compare.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../shared-client/compare.js"),
    ),
    (
        "/code-view.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../shared-client/code-view.js"),
    ),
    (
        "/faults.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../shared-client/faults.js"),
    ),
    (
        "/docs/IDIOMS.md",
        "text/plain; charset=utf-8",
        code::IDIOMS_MD,
    ),
];

/// Starts the three variants and a compare page for them.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address for the page and the variants.
    #[arg(long, env = "SSE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the compare page; the variants take the next three (0: any free ports).
    #[arg(long, env = "SSE_DEMO_PORT", default_value_t = 3000)]
    port: u16,
    /// Where the variants keep their events: `memory` (each its own log) or `redis` (one
    /// shared log, so that one publish shows the same id in all three panes; start a Redis
    /// first, e.g. `redis-server --port 6379 --save ""`).
    #[arg(long, env = "SSE_HUB", value_enum, default_value_t = HubKind::Memory)]
    hub: HubKind,
    /// The Redis of `--hub redis`, passed to every variant.
    #[arg(
        long,
        env = "SSE_REDIS_URL",
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    redis_url: String,
    /// Serve the page and the variants over HTTPS (HTTP/2 by ALPN), with --tls-cert and
    /// --tls-key: by default the certificate `cargo run -p sse-demo --bin dev-cert` makes.
    #[arg(long)]
    tls: bool,
    /// The certificate for --tls (PEM).
    #[arg(long, value_name = "PEM", default_value = "target/dev-cert/cert.pem")]
    tls_cert: std::path::PathBuf,
    /// The private key for --tls (PEM).
    #[arg(long, value_name = "PEM", default_value = "target/dev-cert/key.pem")]
    tls_key: std::path::PathBuf,
    /// Flags passed to every variant, after `--` (e.g. `-- --tick-ms 500`).
    #[arg(last = true)]
    variant_flags: Vec<String>,
}

impl Args {
    /// The flags every variant gets: the hub's, then those after `--`.
    fn variant_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.tls {
            let path = |p: &std::path::Path| p.display().to_string();
            flags.extend(["--tls-cert".to_owned(), path(&self.tls_cert)]);
            flags.extend(["--tls-key".to_owned(), path(&self.tls_key)]);
        }
        if self.hub == HubKind::Redis {
            flags.extend(["--hub".to_owned(), "redis".to_owned()]);
            flags.extend(["--redis-url".to_owned(), self.redis_url.clone()]);
        }
        flags.extend(self.variant_flags.iter().cloned());
        flags
    }
}

/// The whole program: a variant if [`CHILD_VAR`] says so, else the launcher.
pub fn main() -> ExitCode {
    if let Ok(name) = std::env::var(CHILD_VAR) {
        return match VARIANTS.iter().find(|(variant, _)| *variant == name) {
            Some((name, serve)) => sse_core::cli::main(name, *serve),
            None => {
                eprintln!("error: {CHILD_VAR}={name} names no variant");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    sse_core::cli::init_tracing();
    sse_core::cli::block_on(None, launch(args))
}

/// Starts the page and the variants, then waits for a signal or for a variant to die.
async fn launch(args: Args) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port)).await
    {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "error: cannot listen on --host {} --port {}: {error}",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let tls = match args
        .tls
        .then(|| sse_core::tls::Tls::load(&args.tls_cert, &args.tls_key))
    {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(why)) => {
            eprintln!(
                "error: --tls: {why}\n(make a certificate for this machine with `cargo run -p sse-demo --bin dev-cert`)"
            );
            return ExitCode::FAILURE;
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let page = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let origins = allowed_origins(scheme, page);
    let recipe = Recipe {
        host: args.host,
        origins: origins.join(","),
        flags: args.variant_flags(),
    };
    let (died, mut deaths) = mpsc::channel(VARIANTS.len());
    let demo = match start_variants(&args, recipe, died).await {
        Ok(targets) => Demo::new(targets, origins),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let stop_page = sse_core::CancellationToken::new();
    let listen = sse_core::transport::Listen {
        tls,
        write_timeout: PAGE_WRITE_TIMEOUT,
        shutdown: stop_page.clone(),
    };
    let app = app(&demo, faults_off(&args));
    let page_server = tokio::spawn(sse_core::transport::serve_app(listener, app, listen));
    say!("compare page listening on {scheme}://{page}");

    let outcome = tokio::select! {
        _ = stop_signal() => {
            say!("stopping the three variants");
            ExitCode::SUCCESS
        }
        Some((name, status)) = deaths.recv() => {
            eprintln!("error: {name} exited ({status}); stopping the others");
            ExitCode::FAILURE
        }
    };
    demo.stop().await;
    stop_page.cancel();
    let _ = page_server.await;
    outcome
}

/// Starts every variant, each with a relay in front of it; a variant that does not start
/// stops the ones before it.
async fn start_variants(
    args: &Args,
    recipe: Recipe,
    died: mpsc::Sender<children::Died>,
) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = Vec::new();
    for (offset, (name, _)) in (1u16..).zip(VARIANTS) {
        let port = if args.port == 0 {
            0
        } else {
            args.port.saturating_add(offset)
        };
        let started = async {
            let (variant, pid) = Variant::start(name, port, recipe.clone(), died.clone()).await?;
            say!("{name} listening on {} (pid {pid})", variant.url);
            let relay = Relay::start(args.host, variant.addr).await?;
            Ok::<_, std::io::Error>(Target { variant, relay })
        };
        match started.await {
            Ok(target) => targets.push(target),
            Err(error) => {
                for target in &targets {
                    target.variant.stop().await;
                }
                return Err(format!("{name} did not start: {error}"));
            }
        }
    }
    Ok(targets)
}

/// Why the demo offers no faults, if it does not: off loopback, faults on a page that others
/// can reach would let anyone restart the variants; over TLS, the relay cannot read what it
/// relays, and the demo's own client speaks plain HTTP.
fn faults_off(args: &Args) -> Option<String> {
    if !args.host.is_loopback() {
        return Some(format!("--host {} is not loopback", args.host));
    }
    args.tls
        .then(|| "with --tls the demo cannot read the streams it relays".to_owned())
}

/// The compare page's routes, and the control API's unless `faults_off` says why not.
fn app(demo: &Arc<Demo>, faults_off: Option<String>) -> Router {
    let listing = listing(demo, faults_off.is_none());
    let app = Router::new()
        .route(
            "/variants.json",
            get(move || async move { axum::Json(listing) }),
        )
        .route("/code/{variant}", get(code))
        .fallback(asset);
    match faults_off {
        None => app.merge(control::routes(Arc::clone(demo))),
        Some(why) => {
            say!("fault controls are off: {why}");
            app
        }
    }
}

/// `GET /variants.json`: each variant's name, the URL the page streams from (the relay, when
/// the demo offers faults), the variant's own URL (for `/metrics`), its idiom gauge and the
/// page's topics.
fn listing(demo: &Demo, relayed: bool) -> Value {
    let variants: Vec<Value> = demo
        .targets
        .iter()
        .map(|target| {
            let stream_from = if relayed {
                format!("http://{}", target.relay.addr)
            } else {
                target.variant.url.clone()
            };
            json!({
                "name": target.variant.name,
                "url": stream_from,
                "direct": target.variant.url,
                "gauge": target.idiom_gauge(),
                "topics": PAGE_TOPICS,
            })
        })
        .collect();
    Value::Array(variants)
}

/// `GET /code/{variant}`: the idiom file and its regions.
async fn code(Path(variant): Path<String>) -> Response {
    match IdiomFile::of(&variant) {
        Some(file) => axum::Json(file.to_json()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": format!("no variant {variant:?}") })),
        )
            .into_response(),
    }
}

/// The page's files, then the shared client's (the pane module, the styles).
async fn asset(uri: axum::http::Uri) -> Response {
    if let Some((_, content_type, body)) =
        PAGE_FILES.iter().find(|(path, _, _)| *path == uri.path())
    {
        return ([(CONTENT_TYPE, *content_type)], *body).into_response();
    }
    match sse_core::assets::get(uri.path()) {
        Some(reply) => (
            [(CONTENT_TYPE, reply.content_type)],
            reply.body.into_owned(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The origins the page is reachable at, for the variants' `--allowed-origins` and the
/// control API's origin check.
fn allowed_origins(scheme: &str, page: SocketAddr) -> Vec<String> {
    let mut origins = vec![format!("{scheme}://{page}")];
    if page.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{}", page.port()));
    }
    origins
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
