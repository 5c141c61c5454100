//! sse-conformance: SSE servers checked as black boxes, in two profiles: `core`, what any SSE
//! server must do (the WHATWG rules and the practice around them), and `sse-idioms`, this
//! project's whole contract (docs/CONTRACT.md).
//!
//! Every check takes a [`Target`] (a base URL and what the caller knows about the server)
//! and talks plain HTTP/1.1 to it, like any client would: byte-level checks read the raw
//! body, event-level checks parse it as a browser does ([`event_stream`]). Nothing here
//! links to a server's code, so the same checks run
//! - from `cargo test`, against every variant registered in `tests/variants/mod.rs`, each
//!   check on a fresh in-process server ([`harness`]), and against the fixtures in
//!   `tests/fixtures/` (servers written as the guide's snippets are), and
//! - from the `sse-check URL` command, against any running server, yours included
//!   ([`report`] is what it prints).
//!
//! A check passes, fails naming what it expected and what came back, or is skipped when it
//! needs something the caller did not give (a token, an allowed origin, ...).

pub mod checks;
pub mod client;
pub mod event_stream;
pub mod harness;
pub mod nginx;
pub mod redis_server;
pub mod report;
pub mod shared_log;
pub mod test_cert;
pub mod tokens;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How long the checks wait for the server (a response, the next event) unless told.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server under test, and what the caller knows about its configuration.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub base: url::Url,
    /// The path (and query, if any) of the event stream: `/stream` unless told.
    pub stream_path: String,
    /// Headers sent with every request (a cookie, a token): their values are secrets, never
    /// printed ([`Target::secrets`]).
    pub headers: Vec<(String, String)>,
    /// A request that makes the server emit an event, for servers with no events of their
    /// own (the core checks then feed the stream with it).
    pub publish: Option<Publish>,
    /// The longest the checks wait for a response or for the server's next event.
    pub timeout: Duration,
    /// The longest the stream may stay silent (keep-alive); 15 s, the spec's advice, unless
    /// told.
    pub keepalive: Option<Duration>,
    /// Where the server reports how many clients it holds (a number, JSON with one, or
    /// Prometheus text with `sse_connected_clients`); `/metrics` is tried without it.
    pub clients_url: Option<url::Url>,
    /// The `--publish-token`, if the server has one.
    pub token: Option<String>,
    /// An origin in the server's `--allowed-origins`, for the CORS checks.
    pub allowed_origin: Option<String>,
    /// The server's `--max-clients`, for the limit check (it opens that many streams).
    pub max_clients: Option<u32>,
    /// An id issued by an earlier run of the same server, for the foreign-id check.
    pub foreign_id: Option<String>,
    /// The server's `--jwt-secret`, so that the token checks can mint tokens.
    pub jwt_secret: Option<String>,
    /// For `https://` targets: the TLS client configuration (trusted roots, ALPN).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Target {
    /// A target at `base` about which nothing else is known.
    pub fn new(base: url::Url) -> Self {
        Target {
            base,
            stream_path: "/stream".to_owned(),
            headers: Vec::new(),
            publish: None,
            timeout: DEFAULT_TIMEOUT,
            keepalive: None,
            clients_url: None,
            token: None,
            allowed_origin: None,
            max_clients: None,
            foreign_id: None,
            jwt_secret: None,
            tls: None,
        }
    }

    /// Every value the caller gave that must not appear in a report: header values, the
    /// publish token and the JWT secret.
    pub fn secrets(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(_, value)| value.clone())
            .chain(self.token.clone())
            .chain(self.jwt_secret.clone())
            .filter(|secret| !secret.is_empty())
            .collect()
    }

    /// How long a whole check may run: room for several waits of [`Target::timeout`] and a
    /// keep-alive interval, and never less than [`CHECK_TIMEOUT`].
    pub fn check_bound(&self) -> Duration {
        let keepalive = self.keepalive.unwrap_or(Duration::ZERO);
        CHECK_TIMEOUT.max(self.timeout * 6 + keepalive * 2)
    }
}

/// The request that makes a server emit an event: `POST url` with `body`.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Where to post.
    pub url: url::Url,
    /// What to post (sent as JSON when it parses as JSON, else as plain text).
    pub body: String,
}

/// Which set of checks a server is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// What any SSE server must do, judged only from its own events.
    Core,
    /// This project's contract, docs/CONTRACT.md, on top of the core.
    SseIdioms,
}

impl Profile {
    /// The profile's name, as `--profile` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Core => "core",
            Profile::SseIdioms => "sse-idioms",
        }
    }
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The server broke the contract.
    Fail {
        /// What the contract asks for.
        expected: String,
        /// What the server did instead.
        got: String,
    },
    /// The check needs something the caller did not provide.
    Skip(String),
}

impl Problem {
    /// A failure: `expected` is the contract's words, `got` the server's behaviour.
    pub fn fail(expected: impl Into<String>, got: impl Into<String>) -> Self {
        Problem::Fail {
            expected: expected.into(),
            got: got.into(),
        }
    }
}

impl Problem {
    /// The same problem, with what it concerns added to the expectation (a skip is kept).
    pub fn concerning(self, what: impl fmt::Display) -> Self {
        match self {
            Problem::Fail { expected, got } => Problem::fail(format!("{expected} for {what}"), got),
            skip => skip,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Fail { expected, got } => write!(f, "expected {expected}; got {got}"),
            Problem::Skip(reason) => write!(f, "skipped: {reason}"),
        }
    }
}

/// What every check and helper returns.
pub type Res<T = ()> = Result<T, Problem>;

/// Returns a failure from the enclosing check unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $expected:expr, $got:expr $(,)?) => {{
        // Negating a bool rather than the condition itself: clippy's
        // neg_cmp_op_on_partial_ord would flag every `ensure!(a > b, ..)` on floats.
        let holds: bool = $cond;
        if !holds {
            return Err($crate::Problem::fail($expected, $got));
        }
    }};
}

/// A check's future.
pub type CheckFuture = Pin<Box<dyn Future<Output = Res> + Send>>;

/// One named check of the contract.
#[derive(Clone, Copy)]
pub struct Check {
    /// A name that reads like the contract line it checks.
    pub name: &'static str,
    /// The profile it belongs to.
    pub profile: Profile,
    /// The contract point (docs/CONTRACT.md) it covers; 0 is the core profile's section.
    pub point: u8,
    /// The rule it tests, short: a WHATWG section, or the contract point.
    pub rule: &'static str,
    /// The checks whose failure makes this one meaningless (it is still run): the report
    /// names those first.
    pub after: &'static [&'static str],
    /// Runs the check against a target.
    pub run: fn(Target) -> CheckFuture,
    /// Flags the check needs its server started with (the harness passes them; against
    /// another server the check reads the settings from `welcome` and skips, saying which
    /// flags it needs, when they do not fit).
    pub flags: &'static [&'static str],
}

/// Longest any single check may run before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `check` against `target` with the overall time bound.
pub async fn run_check(check: &Check, target: Target) -> Res {
    let bound = target.check_bound();
    match tokio::time::timeout(bound, (check.run)(target)).await {
        Ok(result) => result,
        Err(_) => Err(Problem::fail(
            format!("the check to finish within {bound:?}"),
            "it was still waiting on the server",
        )),
    }
}
