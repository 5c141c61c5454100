//! Runs every check against every registered variant, as `cargo test`.
//!
//! Each check gets a fresh server, in this process on its own thread and runtime, started
//! through the variant's real `serve` with [`TEST_FLAGS`] (short tick and keep-alive), and
//! stopped afterwards: a server that does not stop within 5 s fails the check, so graceful
//! shutdown with open streams is tested every time. What only a process can show (signals,
//! flag errors, the `listening on` line) is checked by re-running this test binary as the
//! variant's own `main`, selected by the `SSE_CONFORMANCE_SERVE` environment variable.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sse_core::{CancellationToken, Config};

use crate::client::{Events, Publisher, StreamRequest};
use crate::redis_server::{Durability, RedisServer};
use crate::test_cert::TestCert;
use crate::{Check, Problem, Target, checks, run_check, shared_log, tokens};

/// A server implementation under test: one line in the registry.
#[derive(Clone, Copy)]
pub struct Variant {
    /// The name it gives in `welcome`, and the prefix of its test names.
    pub name: &'static str,
    /// Its blocking `serve(listener, config, shutdown)`, which its binary runs through
    /// `sse_core::cli::main`, and the in-process checks run on a thread.
    pub serve: sse_core::cli::Serve,
}

/// The publish token servers under test require.
pub const TOKEN: &str = "conformance-token";
/// The origin servers under test allow.
pub const ALLOWED_ORIGIN: &str = "http://allowed.test";
/// The longest a server may take to stop with streams open (contract point 12).
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// Flags for servers under test: a tick slower than keep-alive, so that both can be
/// observed quickly, and small history and queue, so that eviction and lag are cheap.
pub const TEST_FLAGS: [&str; 20] = [
    "--tick-ms",
    "400",
    "--keepalive-secs",
    "0.15",
    "--history",
    "256",
    "--queue",
    "64",
    "--retry-ms",
    "500",
    "--allowed-origins",
    ALLOWED_ORIGIN,
    "--publish-token",
    TOKEN,
    "--max-clients",
    "12",
    "--write-timeout-secs",
    "2",
    "--port",
    "0",
];

/// The checks only the harness can make, because they control the server's process or its
/// shutdown: run against every variant beside [`checks::all`], and named in CONTRACT.md.
pub const HARNESS_TRIALS: [&str; 6] = [
    "process::signals_end_streams_and_exit_0_within_5s",
    "process::bad_flags_are_refused_naming_the_flag",
    "process::workers_sets_the_serving_threads",
    "shutdown::a_stream_request_after_shutdown_began_gets_503",
    "shutdown::http2_streams_on_one_connection_end_within_5s",
    "clients::a_closed_stream_is_released_with_nothing_written",
];

/// One of the [`HARNESS_TRIALS`], run against a variant.
type HarnessTrial = fn(Variant) -> Result<(), Failed>;

/// The environment variable that makes the test binary run a variant's `main`.
const SERVE_VAR: &str = "SSE_CONFORMANCE_SERVE";

/// The test binary's entry: serve as a variant if asked to, else run every trial.
pub fn main(variants: &[Variant]) -> ExitCode {
    if let Ok(name) = std::env::var(SERVE_VAR) {
        return match variants.iter().find(|v| v.name == name) {
            Some(variant) => sse_core::cli::main(variant.name, variant.serve),
            None => ExitCode::FAILURE,
        };
    }
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        // Most checks wait on the server's clocks (ticks, keep-alives, timeouts), not on the
        // CPU: a run at one thread per core left the two cores idle for nine tenths of it.
        args.test_threads = Some(4);
    }
    let redis = RedisAvailability::here();
    let mut trials = Vec::new();
    for (n, variant) in variants.iter().copied().enumerate() {
        for check in checks::all() {
            if HTTP2_ONLY.contains(&check.name) {
                trials.push(Trial::test(
                    format!("{}+h2::{}", variant.name, check.name),
                    move || in_process(variant, check, HubUnderTest::MemoryOverHttp2),
                ));
                continue;
            }
            trials.push(Trial::test(
                format!("{}::{}", variant.name, check.name),
                move || in_process(variant, check, HubUnderTest::Memory),
            ));
            trials.push(redis.gate(Trial::test(
                format!("{}+redis::{}", variant.name, check.name),
                move || in_process(variant, check, HubUnderTest::Redis),
            )));
            if !HTTP1_ONLY.contains(&check.name) {
                trials.push(Trial::test(
                    format!("{}+h2::{}", variant.name, check.name),
                    move || in_process(variant, check, HubUnderTest::MemoryOverHttp2),
                ));
            }
        }
        // The other instance of the shared-log checks is of the next idiom.
        let other = variants[(n + 1) % variants.len()];
        for (name, trial) in tokens::TRIALS {
            trials.push(Trial::test(
                format!("{}::{name}", variant.name),
                move || trial(variant),
            ));
        }
        for (name, trial) in shared_log::TRIALS {
            trials.push(redis.gate(Trial::test(
                format!("{}::{name}", variant.name),
                move || trial(variant, other),
            )));
        }
        let harness_trials: [(&str, HarnessTrial); 6] = [
            (HARNESS_TRIALS[0], signals_end_streams),
            (HARNESS_TRIALS[1], bad_flags_refused),
            (HARNESS_TRIALS[2], workers_set_threads),
            (HARNESS_TRIALS[3], late_stream_request_refused),
            (HARNESS_TRIALS[4], http2_streams_end_on_shutdown),
            (HARNESS_TRIALS[5], closed_streams_released),
        ];
        for (name, trial) in harness_trials {
            trials.push(Trial::test(
                format!("{}::{name}", variant.name),
                move || trial(variant),
            ));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // The shared Redis is a child process: stop it before the binary exits.
    drop(lock_shared_redis().take());
    drop(lock_shared_cert().take());
    conclusion.exit_code()
}

/// Whether the `--hub redis` trials can run here.
enum RedisAvailability {
    /// `redis-server` is installed.
    Installed,
    /// It is not, and this is CI: the trials run, and fail saying what is missing.
    MissingInCi,
    /// It is not, here: the trials are listed as ignored.
    Missing,
}

impl RedisAvailability {
    /// Looks for `redis-server`, and at `CI`.
    fn here() -> Self {
        if RedisServer::available() {
            RedisAvailability::Installed
        } else if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            RedisAvailability::MissingInCi
        } else {
            eprintln!(
                "note: redis-server is not installed (apt-get install redis-server); the --hub redis trials are skipped (they fail under CI=true)"
            );
            RedisAvailability::Missing
        }
    }

    /// `trial`, ignored when Redis is missing outside CI.
    fn gate(&self, trial: Trial) -> Trial {
        trial.with_ignored_flag(matches!(self, RedisAvailability::Missing))
    }
}

/// Which hub a check's server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubUnderTest {
    /// `--hub memory`, the default.
    Memory,
    /// `--hub redis`, on the binary's shared test Redis, with a prefix of the check's own.
    Redis,
    /// `--hub memory` over HTTPS, the client offering `h2` (contract point 18).
    MemoryOverHttp2,
}

/// The checks that are about a connection's socket and so are not run over HTTP/2: a
/// stalled HTTP/2 stream is one stream of a connection whose socket keeps moving, which
/// contract point 18 covers with checks of its own ([`HTTP2_ONLY`]).
pub const HTTP1_ONLY: [&str; 2] = [
    "a_stalled_subscriber_is_cut_within_the_write_timeout",
    "a_stalled_subscriber_without_events_is_cut_on_keep_alives",
];

/// The checks that need an HTTP/2 connection (contract point 18), run only over HTTPS.
pub const HTTP2_ONLY: [&str; 2] = [
    "ten_streams_share_one_http2_connection",
    "a_stalled_http2_stream_holds_up_no_other_on_its_connection",
];

/// The certificate every HTTPS trial of this binary serves, made on first use.
static SHARED_CERT: std::sync::Mutex<Option<TestCert>> = std::sync::Mutex::new(None);

fn lock_shared_cert() -> std::sync::MutexGuard<'static, Option<TestCert>> {
    SHARED_CERT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `--tls-cert`/`--tls-key` flags of the shared certificate, and a client configuration
/// (ALPN `h2`, `http/1.1`) that trusts it.
pub fn shared_cert() -> Result<(Vec<String>, std::sync::Arc<rustls::ClientConfig>), Failed> {
    let mut shared = lock_shared_cert();
    if shared.is_none() {
        *shared = Some(TestCert::generate("harness")?);
    }
    let cert = shared.as_ref().ok_or("no certificate")?;
    Ok((cert.flags(), cert.client(false)?))
}

/// The Redis every `--hub redis` check shares, started on first use; each check gets a
/// prefix of its own, so each has a log of its own.
static SHARED_REDIS: std::sync::Mutex<Option<RedisServer>> = std::sync::Mutex::new(None);

fn lock_shared_redis() -> std::sync::MutexGuard<'static, Option<RedisServer>> {
    // A check that panicked while starting the server leaves nothing half-done behind.
    SHARED_REDIS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The flags that put a server on the shared test Redis, under a fresh prefix.
fn shared_redis_flags() -> Result<Vec<String>, Failed> {
    static PREFIXES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut shared = lock_shared_redis();
    if shared.is_none() {
        *shared = Some(RedisServer::start(Durability::Ephemeral)?);
    }
    let url = shared.as_ref().map(RedisServer::url).unwrap_or_default();
    let n = PREFIXES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(redis_flags(&url, &format!("check-{n}")))
}

/// `--hub redis --redis-url URL --redis-prefix PREFIX`.
pub fn redis_flags(url: &str, prefix: &str) -> Vec<String> {
    [
        "--hub",
        "redis",
        "--redis-url",
        url,
        "--redis-prefix",
        prefix,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A variant serving on a thread of this process.
pub struct Server {
    /// Where it listens, and what the checks may assume of it.
    pub target: Target,
    shutdown: CancellationToken,
    stopped: mpsc::Receiver<io::Result<()>>,
}

impl Server {
    /// Starts `variant` on 127.0.0.1 with [`TEST_FLAGS`].
    pub fn start(variant: Variant) -> io::Result<Server> {
        Server::start_with(variant, &[], SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts `variant` listening on `addr` with [`TEST_FLAGS`], where each flag named in
    /// `extra_flags` (`["--retry-ms", "300", ...]`) replaces the test flag of that name.
    ///
    /// A chosen address lets a test restart a server on the port a browser already knows;
    /// the extra flags let it allow the origin of a page it serves itself. The [`Target`]
    /// describes the server as configured, extra flags included.
    pub fn start_with(
        variant: Variant,
        extra_flags: &[&str],
        addr: SocketAddr,
    ) -> io::Result<Server> {
        // Bound as the real binaries bind (backlog, SO_REUSEADDR), so a restart on the same
        // port behaves as it would in production.
        let listener = sse_core::cli::bind(addr)?;
        let config = Config::parse_checked(std::iter::once("test").chain(with_flags(extra_flags)))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", listener.local_addr()?);
        let mut target = Target::new(url::Url::parse(&base).map_err(io::Error::other)?);
        target.token = config.publish_token.clone();
        target.allowed_origin = config.allowed_origins.first().cloned();
        target.max_clients = Some(config.max_clients);
        target.jwt_secret = flag_value(extra_flags, "--jwt-secret").map(str::to_owned);
        target.keepalive = Some(config.keepalive);
        let shutdown = CancellationToken::new();
        let (done, stopped) = mpsc::channel();
        let token = shutdown.clone();
        std::thread::spawn(move || {
            // The receiver may be gone if the check already failed; nothing to report then.
            let _ = done.send((variant.serve)(listener, config, token));
        });
        Ok(Server {
            target,
            shutdown,
            stopped,
        })
    }

    /// Starts the server's shutdown without waiting for it (see [`Server::stop`]).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Cancels the shutdown token and waits for `serve` to return, at most [`SHUTDOWN_BOUND`].
    pub fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        match self.stopped.recv_timeout(SHUTDOWN_BOUND) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("serve returned an error: {error}")),
            Err(_) => Err(format!(
                "the server did not stop within {SHUTDOWN_BOUND:?} of shutdown"
            )),
        }
    }
}

impl Drop for Server {
    /// A server dropped without [`Server::stop`] (a test that failed half-way) is still told
    /// to stop, so that its thread does not serve on for the rest of the test binary.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The value given for `flag` in a flag list, if any.
fn flag_value<'a>(flags: &[&'a str], flag: &str) -> Option<&'a str> {
    flags
        .windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1])
}

/// [`TEST_FLAGS`] with every flag named in `extra` replaced by `extra`'s value(s).
///
/// Replacing rather than appending keeps the meaning independent of how clap treats a
/// repeated flag (last wins for a value, appends for a list such as `--allowed-origins`).
fn with_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let named = |flag: &str| extra.contains(&flag);
    // Every test flag takes exactly one value, so they come in pairs.
    let mut flags: Vec<&str> = TEST_FLAGS
        .chunks(2)
        .filter(|pair| !named(pair[0]))
        .flatten()
        .copied()
        .collect();
    flags.extend_from_slice(extra);
    flags
}

/// A current-thread runtime for one trial's client side.
fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("no runtime: {e}")))
}

/// An id issued by another run of `variant` (on the Redis hub, another log: a prefix of its
/// own): a throwaway server publishes one event.
fn foreign_id(
    variant: Variant,
    hub: HubUnderTest,
    runtime: &tokio::runtime::Runtime,
) -> Result<String, Failed> {
    let flags = match hub {
        HubUnderTest::Memory | HubUnderTest::MemoryOverHttp2 => Vec::new(),
        HubUnderTest::Redis => shared_redis_flags()?,
    };
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let earlier = Server::start_with(variant, &flags, addr).map_err(|e| e.to_string())?;
    let id = runtime.block_on(crate::client::publish(
        &earlier.target,
        Some("earlier-run"),
        "x",
    ));
    earlier.stop()?;
    id.map_err(|problem| Failed::from(problem.to_string()))
}

/// Runs one check against a fresh in-process server of `variant` on `hub`.
fn in_process(variant: Variant, check: Check, hub: HubUnderTest) -> Result<(), Failed> {
    let runtime = runtime()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut flags: Vec<String> = check.flags.iter().map(|f| (*f).to_owned()).collect();
    let mut tls = None;
    match hub {
        HubUnderTest::Memory => {}
        HubUnderTest::Redis => flags.extend(shared_redis_flags()?),
        HubUnderTest::MemoryOverHttp2 => {
            let (cert_flags, client) = shared_cert()?;
            flags.extend(cert_flags);
            tls = Some(client);
        }
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(variant, &flags, addr).map_err(|e| e.to_string())?;
    let mut target = server.target.clone();
    target.tls = tls;
    if hub == HubUnderTest::MemoryOverHttp2 {
        // The dimension means nothing if the server quietly answers ALPN with HTTP/1.1.
        let negotiated = runtime.block_on(crate::client::connect(&target, None));
        if !negotiated.is_ok_and(|sender| sender.is_http2()) {
            drop(server.stop());
            return Err(
                "contract point 18: expected the server to choose h2 by ALPN; it did not".into(),
            );
        }
    }
    if check.name == "reset_when_id_is_from_an_earlier_run" {
        target.foreign_id = Some(foreign_id(variant, hub, &runtime)?);
    }
    let outcome = runtime.block_on(run_check(&check, target));
    // Stop even when the check failed, and report the check's problem first.
    let stopped = server.stop();
    match outcome {
        Ok(()) => Ok(stopped?),
        Err(Problem::Skip(reason)) => {
            Err(format!("the harness should provide what this check needs: {reason}").into())
        }
        Err(problem) => Err(format!("contract point {}: {problem}", check.point).into()),
    }
}

/// Starts `variant`'s real `main` in a child process with `args`.
pub fn spawn_main(variant: Variant, args: &[&str]) -> io::Result<Child> {
    spawn_main_logging(variant, args, "warn")
}

/// Like [`spawn_main`], logging at `level` (`RUST_LOG`) to its piped stderr.
pub fn spawn_main_logging(variant: Variant, args: &[&str], level: &str) -> io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .env(SERVE_VAR, variant.name)
        .env("RUST_LOG", level)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// Reads the child's `listening on http://ADDR` line, within 10 s.
pub fn listening_address(child: &mut Child) -> Result<String, Failed> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "no `listening on` line within 10 s")?;
    line.trim()
        .strip_prefix("listening on ")
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("expected `listening on http://ADDR` on stdout; got {line:?}").into()
        })
}

/// Waits for the child to exit, at most `bound`; kills it past that.
pub fn wait_exit(child: &mut Child, bound: Duration) -> Result<std::process::ExitStatus, Failed> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("the process did not exit within {bound:?}").into())
}

/// Points 12 and 13: `--port 0` prints the bound address; SIGINT and SIGTERM each end the
/// open streams and exit 0 within 5 s, even when the clients have stopped reading.
fn signals_end_streams(variant: Variant) -> Result<(), Failed> {
    let runtime = runtime()?;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // An idle server: no ticker, a long keep-alive, so only shutdown can end the streams.
        let mut child = spawn_main(
            variant,
            &["--port", "0", "--tick-ms", "0", "--keepalive-secs", "60"],
        )
        .map_err(|e| e.to_string())?;
        let base = listening_address(&mut child)?;
        let target = Target::new(url::Url::parse(&base).map_err(|e| e.to_string())?);
        let streams = runtime
            .block_on(async {
                let mut streams = Vec::new();
                for _ in 0..2 {
                    let mut events = Events::open(&target, &StreamRequest::default()).await?;
                    events.welcome().await?;
                    streams.push(events);
                }
                // None of them is read from now on; 6 MB of events fill their sockets, so
                // the server cannot write to them: shutdown must not wait on them for ever.
                let mut publisher = Publisher::connect(&target).await?;
                let payload = "x".repeat(60 * 1024);
                for _ in 0..100 {
                    publisher.publish(Some("fill"), payload.as_str()).await?;
                }
                Ok::<_, Problem>(streams)
            })
            .map_err(|p| p.to_string())?;
        let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| e.to_string())?);
        kill(pid, signal).map_err(|e| e.to_string())?;
        let status = wait_exit(&mut child, SHUTDOWN_BOUND)?;
        if !status.success() {
            return Err(format!("after {signal:?}: expected exit status 0; got {status}").into());
        }
        // The streams were open all through shutdown; only now may they go.
        drop(streams);
    }
    Ok(())
}

/// Point 9: clients that close their connections are let go within [`CLOSED_BOUND`] though
/// the server writes nothing to them (no ticker, a keep-alive longer than the check): a
/// page reloaded again and again must not fill `--max-clients` with streams nobody reads.
fn closed_streams_released(variant: Variant) -> Result<(), Failed> {
    const STREAMS: usize = 5;
    let runtime = runtime()?;
    let quiet = ["--tick-ms", "0", "--keepalive-secs", "60"];
    let server = Server::start_with(variant, &quiet, SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| e.to_string())?;
    let target = server.target.clone();
    let outcome = runtime.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..STREAMS {
            let mut events = Events::open(&target, &StreamRequest::default()).await?;
            events.welcome().await?;
            streams.push(events);
        }
        let open = STREAMS as f64;
        let clients = "sse_connected_clients";
        checks::service::wait_for_metric(&target, clients, target.timeout, |n| n >= open).await?;
        // Each close is a FIN: everything the server sent was read.
        drop(streams);
        checks::service::wait_for_metric(&target, clients, CLOSED_BOUND, |n| n == 0.0).await
    });
    let stopped = server.stop();
    outcome.map_err(|p| p.to_string())?;
    stopped.map_err(Failed::from)
}

/// How soon a client that closed its connection must be let go (contract point 9).
const CLOSED_BOUND: Duration = Duration::from_secs(2);

/// Point 13: an invalid flag value stops the server at start with a message naming the flag.
fn bad_flags_refused(variant: Variant) -> Result<(), Failed> {
    // Two certificates, to pair one's certificate with the other's key.
    let (ours, theirs) = (
        TestCert::generate("flags-a")?,
        TestCert::generate("flags-b")?,
    );
    let (ours, theirs) = (ours.flags(), theirs.flags());
    let mismatched = ["--tls-cert", &ours[1], "--tls-key", &theirs[3]];
    let no_key = ["--tls-cert", &ours[1], "--tls-key", "/no/such/key.pem"];
    let no_cert = ["--tls-cert", "/no/such/cert.pem", "--tls-key", &ours[3]];
    for (args, flag) in [
        (&mismatched[..], "--tls-key"),
        (&no_key[..], "--tls-key"),
        (&no_cert[..], "--tls-cert"),
        (&["--tls-cert", &ours[1]][..], "--tls-key"),
        (&["--history", "0"][..], "--history"),
        (&["--keepalive-secs", "soon"], "--keepalive-secs"),
        (&["--allowed-origins", "*"], "--allowed-origins"),
        (&["--port", "99999"], "--port"),
        (&["--workers", "0"], "--workers"),
        (&["--hub", "postgres"], "--hub"),
        (&["--redis-url", "http://127.0.0.1:6379"], "--redis-url"),
        (
            &["--jwt-public-key", "/no/such/key.pem"],
            "--jwt-public-key",
        ),
        (&["--jwt-secret", "short-secret"], "--jwt-secret"),
    ] {
        let mut child = spawn_main(variant, args).map_err(|e| e.to_string())?;
        let status = wait_exit(&mut child, Duration::from_secs(10))?;
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if status.success() || !stderr.contains(flag) {
            return Err(format!("{args:?}: expected a failing exit and a message naming {flag}; got {status} and {stderr:?}").into());
        }
        // A refused secret is never quoted back.
        if flag == "--jwt-secret" && stderr.contains(args[1]) {
            return Err(format!("{args:?}: the refused secret was printed: {stderr:?}").into());
        }
    }
    Ok(())
}

/// Point 13: `--workers N` sets how many threads serve connections, in every variant: a
/// process started with [`MORE_WORKERS`] has exactly the difference in threads more than one
/// started with one, once each has answered a request (actix starts its workers when it
/// starts serving, after the `listening on` line). Nothing else in the process depends on
/// the flag, so any other difference is the flag not being honoured.
fn workers_set_threads(variant: Variant) -> Result<(), Failed> {
    const MORE_WORKERS: usize = 4;
    let runtime = runtime()?;
    let mut threads = Vec::new();
    for workers in [1, MORE_WORKERS] {
        let workers = workers.to_string();
        let args = [
            "--port",
            "0",
            "--tick-ms",
            "0",
            "--workers",
            workers.as_str(),
        ];
        let mut child = spawn_main(variant, &args).map_err(|e| e.to_string())?;
        let counted = (|| {
            let base = listening_address(&mut child)?;
            let target = Target::new(url::Url::parse(&base).map_err(|e| e.to_string())?);
            let health = runtime.block_on(crate::client::get(&target, "/healthz"));
            let status = health.map_err(|p| p.to_string())?.status;
            if status != 200 {
                return Err(format!("--workers {workers}: /healthz answered {status}").into());
            }
            let tasks = std::fs::read_dir(format!("/proc/{}/task", child.id()));
            Ok::<_, Failed>(tasks.map_err(|e| e.to_string())?.count())
        })();
        let _ = child.kill();
        let _ = child.wait();
        threads.push(counted?);
    }
    if threads[1] != threads[0] + MORE_WORKERS - 1 {
        return Err(format!(
            "--workers 1 ran {} threads and --workers {MORE_WORKERS} ran {}: expected {} more",
            threads[0],
            threads[1],
            MORE_WORKERS - 1
        )
        .into());
    }
    Ok(())
}

/// Point 12: a `GET /stream` that the server handles once shutdown has begun is refused with
/// 503 JSON, in every variant, rather than answered 200 with a stream that ends at once (or,
/// worse, a client joined to a broadcaster that has stopped).
///
/// Such a request is one already on its way when the signal comes: its connection was
/// accepted and its head partly read, so the server finishes reading it. The check sends all
/// of the head but its final blank line, proves the connection was accepted (a request on a
/// later connection is answered, and both queue in one accept backlog), starts shutdown, and
/// then sends the blank line. A server that had not read the first bytes yet when the signal
/// came closes the connection unanswered, which proves nothing, so the check tries again on a
/// fresh server, a bounded number of times.
fn late_stream_request_refused(variant: Variant) -> Result<(), Failed> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const ATTEMPTS: usize = 20;
    let runtime = runtime()?;
    for _ in 0..ATTEMPTS {
        let server = Server::start(variant).map_err(|e| e.to_string())?;
        let addr = server.target.base.authority().to_owned();
        let answer = runtime.block_on(async {
            let mut late = tokio::net::TcpStream::connect(&addr).await?;
            let head =
                format!("GET /stream HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
            late.write_all(head.as_bytes()).await?;
            crate::client::get(&server.target, "/healthz")
                .await
                .map_err(|problem| std::io::Error::other(problem.to_string()))?;
            server.begin_shutdown();
            if late.write_all(b"\r\n").await.is_err() {
                // Closed before the head was read (a reset, if our bytes sat unread): the
                // same unanswered close as an empty answer, so another attempt.
                return Ok(String::new());
            }
            let mut response = Vec::new();
            let read = tokio::time::timeout(SHUTDOWN_BOUND, late.read_to_end(&mut response));
            match read.await {
                Ok(Ok(_)) | Ok(Err(_)) => Ok(String::from_utf8_lossy(&response).into_owned()),
                Err(_) => Ok(format!(
                    "{} (still open after {SHUTDOWN_BOUND:?})",
                    String::from_utf8_lossy(&response)
                )),
            }
        });
        let stopped = server.stop();
        let answer = answer.map_err(|e: std::io::Error| e.to_string())?;
        stopped?;
        if answer.is_empty() {
            continue;
        }
        let status = answer.split(' ').nth(1).unwrap_or_default();
        let json = answer
            .to_ascii_lowercase()
            .contains("content-type: application/json");
        if status == "503" && json && answer.contains(r#""error""#) {
            return Ok(());
        }
        return Err(format!(
            "expected 503 with a JSON error for a stream request handled after shutdown began; got {:?}",
            crate::client::tail(&answer)
        )
        .into());
    }
    Err(format!("in {ATTEMPTS} attempts the server never read a request that was on its way when shutdown began").into())
}

/// Over HTTPS, ten streams open on one HTTP/2 connection: once shutdown begins, every one
/// of them ends (the server sends GOAWAY and ends each stream), and `serve` returns, all
/// within [`SHUTDOWN_BOUND`].
fn http2_streams_end_on_shutdown(variant: Variant) -> Result<(), Failed> {
    const STREAMS: usize = 10;
    let runtime = runtime()?;
    let (cert_flags, client) = shared_cert()?;
    let flags: Vec<&str> = cert_flags.iter().map(String::as_str).collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start_with(variant, &flags, addr).map_err(|e| e.to_string())?;
    let mut target = server.target.clone();
    target.tls = Some(client);
    let ended = runtime.block_on(async {
        let mut connection = crate::client::connect(&target, None).await?;
        crate::ensure!(connection.is_http2(), "ALPN h2", "HTTP/1.1");
        let mut streams = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let mut events =
                Events::open_on(&mut connection, &target, &StreamRequest::default()).await?;
            events.welcome().await?;
            streams.push(events);
        }
        let began = Instant::now();
        server.begin_shutdown();
        for (n, events) in streams.iter_mut().enumerate() {
            let left = SHUTDOWN_BOUND.saturating_sub(began.elapsed());
            events
                .drain_to_end(left)
                .await
                .map_err(|p| p.concerning(format!("stream {} of {STREAMS}", n + 1)))?;
        }
        Ok::<_, Problem>(())
    });
    let stopped = server.stop();
    ended.map_err(|problem| format!("contract point 12 over HTTP/2: {problem}"))?;
    Ok(stopped?)
}
