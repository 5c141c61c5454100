//! sse-demo: the three idioms side by side, live.
//!
//! One command starts every variant as its own process, on consecutive ports after the
//! compare page's, and serves the compare page: three stream panes, one per variant, each an
//! `EventSource` to that variant across origins (the launcher passes the page's origin to
//! `--allowed-origins`). Separate processes keep the comparison honest: each variant has
//! its own runtime, memory and `/metrics`, exactly as when run alone.
//!
//! The variants are not found on disk: this binary links all three and re-runs itself as
//! one of them, selected by [`CHILD_VAR`], so `cargo run -p sse-demo` needs nothing else
//! built. Ctrl-C (or SIGTERM) stops every variant cleanly; if one variant dies, the demo
//! says so and stops the rest.

use std::net::{IpAddr, SocketAddr};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sse_core::config::HubKind;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Prints a line on stdout, ignoring a closed pipe (`sse-demo | head -3` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The environment variable that makes this binary run one variant's `main`.
pub const CHILD_VAR: &str = "SSE_DEMO_VARIANT";

/// How long a variant may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write to a page client may stall before its connection is cut.
const PAGE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a variant may take to exit after SIGTERM (the contract says 5 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(6);

/// The variants, in the order their columns appear: name and blocking `serve`, which
/// `sse_core::cli::main` runs as the variant's own binary does.
const VARIANTS: [(&str, sse_core::cli::Serve); 3] = [
    (axum_stream_map::SERVER, axum_stream_map::serve),
    (actix_push_loop::SERVER, actix_push_loop::serve),
    (warp_generator::SERVER, warp_generator::serve),
];

/// The compare page's own files; the pane module and styles come from sse-core's assets.
const PAGE: &str = include_str!("../../../shared-client/compare.html");
const PAGE_SCRIPT: &str = include_str!("../../../shared-client/compare.js");

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

/// A running variant.
struct Variant {
    /// The crate name, which the variant also gives in `welcome`: the pane's title.
    name: &'static str,
    /// Its base URL, from its `listening on` line.
    url: String,
    /// The child process.
    child: Child,
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
    let mut variants = Vec::new();
    for (offset, (name, _)) in (1u16..).zip(VARIANTS) {
        let port = if args.port == 0 {
            0
        } else {
            args.port.saturating_add(offset)
        };
        match start(
            name,
            args.host,
            port,
            &allowed_origins(scheme, page),
            &args.variant_flags(),
        )
        .await
        {
            Ok(variant) => {
                say!(
                    "{name} listening on {} (pid {})",
                    variant.url,
                    variant.child.id().unwrap_or(0)
                );
                variants.push(variant);
            }
            Err(error) => {
                eprintln!("error: {name} did not start: {error}");
                stop_all(&mut variants).await;
                return ExitCode::FAILURE;
            }
        }
    }
    let listing: Vec<_> = variants
        .iter()
        .map(|v| serde_json::json!({ "name": v.name, "url": v.url }))
        .collect();
    let app = Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/compare.js",
            get(|| async { asset("text/javascript; charset=utf-8", PAGE_SCRIPT) }),
        )
        .route(
            "/variants.json",
            get(|State(listing): State<serde_json::Value>| async move { axum::Json(listing) }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            sse_core::assets::get(uri.path()).map_or_else(
                || (axum::http::StatusCode::NOT_FOUND, "not found").into_response(),
                |reply| asset(reply.content_type, reply.body.into_owned()),
            )
        })
        .with_state(serde_json::Value::Array(listing));
    let stop_page = sse_core::CancellationToken::new();
    let listen = sse_core::transport::Listen {
        tls,
        write_timeout: PAGE_WRITE_TIMEOUT,
        shutdown: stop_page.clone(),
    };
    let page_server = tokio::spawn(sse_core::transport::serve_app(listener, app, listen));
    say!("compare page listening on {scheme}://{page}");

    let outcome = tokio::select! {
        _ = stop_signal() => {
            say!("stopping the three variants");
            ExitCode::SUCCESS
        }
        (name, status) = first_exit(&mut variants) => {
            eprintln!("error: {name} exited ({status}); stopping the others");
            ExitCode::FAILURE
        }
    };
    stop_all(&mut variants).await;
    stop_page.cancel();
    let _ = page_server.await;
    outcome
}

/// The origins the page is reachable at, for the variants' `--allowed-origins`.
fn allowed_origins(scheme: &str, page: SocketAddr) -> String {
    let mut origins = vec![format!("{scheme}://{page}")];
    if page.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{}", page.port()));
    }
    origins.join(",")
}

/// Starts one variant and reads its `listening on http://ADDR` line.
async fn start(
    name: &'static str,
    host: IpAddr,
    port: u16,
    origins: &str,
    flags: &[String],
) -> std::io::Result<Variant> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD_VAR, name)
        .arg("--host")
        .arg(host.to_string())
        .arg("--port")
        .arg(port.to_string())
        .arg("--allowed-origins")
        .arg(origins)
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut line = String::new();
    let read =
        tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
    match (read, line.trim().strip_prefix("listening on ")) {
        (Ok(Ok(_)), Some(url)) => Ok(Variant {
            name,
            url: url.to_owned(),
            child,
        }),
        _ => {
            let _ = child.kill().await;
            Err(std::io::Error::other(format!(
                "no `listening on` line (got {line:?})"
            )))
        }
    }
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

/// Resolves when any variant exits, with its name and status.
async fn first_exit(variants: &mut [Variant]) -> (&'static str, String) {
    let exits = variants.iter_mut().map(|variant| {
        Box::pin(async move {
            let status = variant.child.wait().await;
            (
                variant.name,
                status.map_or_else(|e| e.to_string(), |s| s.to_string()),
            )
        })
    });
    futures_util::future::select_all(exits).await.0
}

/// Sends SIGTERM to every variant still running and waits for each, killing any that
/// outlives [`STOP_TIMEOUT`].
async fn stop_all(variants: &mut [Variant]) {
    for variant in variants.iter() {
        if let Some(pid) = variant.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    for variant in variants.iter_mut() {
        match tokio::time::timeout(STOP_TIMEOUT, variant.child.wait()).await {
            Ok(Ok(status)) => say!("{} stopped ({status})", variant.name),
            _ => {
                eprintln!(
                    "{} did not stop within {STOP_TIMEOUT:?}; killing it",
                    variant.name
                );
                let _ = variant.child.kill().await;
            }
        }
    }
}

/// A static asset response.
fn asset(content_type: &'static str, body: impl Into<String>) -> Response {
    ([(CONTENT_TYPE, content_type)], body.into()).into_response()
}
