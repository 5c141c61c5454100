//! The program around a variant: flags, logs, the listening socket, and signals.
//!
//! Each variant's binary is one line calling [`main`] with its blocking `serve` function,
//! so that all three start, report and stop the same way, and the conformance suite (and
//! the demo) can run exactly that code in a child process.

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// A variant's blocking entry: serve `listener` until `shutdown` is cancelled.
pub type Serve = fn(TcpListener, Config, CancellationToken) -> io::Result<()>;

/// Parses flags, binds, prints `listening on http://ADDR`, serves until SIGINT or SIGTERM.
///
/// Bad flags exit with status 2 and clap's message naming the flag; a port that cannot be
/// bound exits with status 1 and a message naming `--host`/`--port`.
pub fn main(server: &'static str, serve: Serve) -> ExitCode {
    let config = Config::parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit());
    init_tracing();
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match bind(addr) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "error: cannot listen on --host {} --port {}: {error}",
                config.host, config.port
            );
            return ExitCode::FAILURE;
        }
    };
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    match listener.local_addr() {
        Ok(bound) => println!("listening on {scheme}://{bound}"),
        Err(error) => eprintln!("warning: bound, but cannot read the address: {error}"),
    }
    // Scripts wait for that line; make sure it is out before serving.
    let _ = io::stdout().flush();
    tracing::info!(server, "serving");
    let shutdown = CancellationToken::new();
    on_signal_cancel(shutdown.clone());
    match serve(listener, config, shutdown) {
        Ok(()) => {
            tracing::info!(server, "stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Connections the kernel may queue before the server accepts them.
///
/// `std::net::TcpListener::bind` asks for 128, and a burst of reconnecting clients larger
/// than that (a server restart, a proxy dropping every connection at once) then loses SYNs
/// and waits out the kernel's one-second SYN retry: a resume storm of 1,000 clients took
/// 2 s instead of 60 ms in `just bench` for that reason alone.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds `addr` for serving: `SO_REUSEADDR` (so a restarted server can take its port back
/// while old connections linger in TIME_WAIT), `TCP_NODELAY`, and a backlog of
/// [`LISTEN_BACKLOG`].
///
/// `TCP_NODELAY` is set on the listener because accepted sockets inherit it, which reaches
/// every framework, including warp, whose accept loop offers no hook. Without it, Nagle's
/// algorithm holds a small event back until the previous one is acknowledged, and a delayed
/// ACK makes that up to 40 ms: `just bench` saw healthy subscribers' p99 jump from 8 ms to
/// 35–40 ms.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Logs to stderr (stdout carries only the `listening on` line), filtered by `RUST_LOG`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file are noise.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
///
/// The watcher has its own thread and runtime so that it works the same under every
/// framework's runtime; actix, for one, would otherwise install handlers of its own.
fn on_signal_cancel(shutdown: CancellationToken) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            tracing::error!("no signal handling: cannot build a runtime");
            return;
        };
        runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("signal received; ending every stream and stopping");
            shutdown.cancel();
        });
    });
}

/// Runs `future` on a fresh multi-threaded tokio runtime of `workers` threads (`None`: one
/// per core, tokio's default): the blocking `serve` of the tokio-based variants.
pub fn block_on<F: std::future::Future>(workers: Option<u16>, future: F) -> F::Output {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(usize::from(workers));
    }
    builder
        .enable_all()
        .build()
        .expect("a tokio runtime can always be built on a supported OS")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let _client =
            std::net::TcpStream::connect(listener.local_addr().expect("bound")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        assert!(
            accepted.nodelay().expect("readable option"),
            "TCP_NODELAY not inherited"
        );
    }
}
