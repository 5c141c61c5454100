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
    /// Flags passed to every variant, after `--` (e.g. `-- --tick-ms 500`).
    #[arg(last = true)]
    variant_flags: Vec<String>,
}

impl Args {
    /// The flags every variant gets: the hub's, then those after `--`.
    fn variant_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
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
    sse_core::cli::block_on(launch(args))
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
    let page = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let origins = allowed_origins(page);
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
    let page_server = tokio::spawn(axum::serve(listener, app(&demo, args.host)).into_future());
    say!("compare page listening on http://{page}");

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
    page_server.abort();
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
            say!("{name} listening on {} (pid {pid})", variant.url());
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

/// The compare page's routes, and the control API's when the demo listens on loopback.
fn app(demo: &Arc<Demo>, host: IpAddr) -> Router {
    let listing = listing(demo);
    let mut app = Router::new()
        .route(
            "/variants.json",
            get(move || async move { axum::Json(listing) }),
        )
        .route("/code/{variant}", get(code))
        .fallback(asset);
    if host.is_loopback() {
        app = app.merge(control::routes(Arc::clone(demo)));
    } else {
        // Faults on a page that others can reach would let anyone restart the variants.
        say!("fault controls are off: --host {host} is not loopback");
    }
    app
}

/// `GET /variants.json`: each variant's name, the URL the page streams from (the relay),
/// the variant's own URL (for `/metrics`), its idiom gauge and the page's topics.
fn listing(demo: &Demo) -> Value {
    let variants: Vec<Value> = demo
        .targets
        .iter()
        .map(|target| {
            json!({
                "name": target.variant.name,
                "url": format!("http://{}", target.relay.addr),
                "direct": target.variant.url(),
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
fn allowed_origins(page: SocketAddr) -> Vec<String> {
    let mut origins = vec![format!("http://{page}")];
    if page.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", page.port()));
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
