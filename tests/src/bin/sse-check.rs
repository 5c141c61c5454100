//! `sse-check URL`: checks any running SSE server, in any language, and prints a report a
//! person can read in an 100-column terminal (or JSON, for CI): one line per check, what it
//! wanted and what came back when it did not pass, and what to fix first.
//!
//! The profile is detected from the stream (an sse-idioms server opens it with `welcome`;
//! any other server is held to the core profile) unless `--profile` says. Exit status: 0
//! when every check passed, 1 when one failed, 2 when the server cannot be reached or a
//! flag is wrong.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use sse_conformance::client::{self, Raw, StreamRequest};
use sse_conformance::report::{Outcome, Report};
use sse_conformance::{Check, Profile, Publish, Target, checks, run_check};

/// Examples and exit codes, after the flags in `--help`.
const AFTER_HELP: &str = "\
Examples:
  sse-check http://127.0.0.1:3000
  sse-check http://127.0.0.1:8080/events                     # the stream is at /events
  sse-check http://127.0.0.1:3000 --header 'Cookie: session=abc123' --origin http://localhost:5173
  sse-check http://127.0.0.1:3000 --publish-url /notify --publish-body '{\"text\":\"hi\"}'
  sse-check http://127.0.0.1:3000 --only ids,resume --json > report.json
  sse-check https://127.0.0.1:3443 --ca target/dev-cert/cert.pem     # HTTP/2 over TLS

Exit status: 0 every check passed (skips allowed), 1 a check failed,
2 the server could not be reached or a flag is wrong.";

/// Checks a running SSE server: what any SSE server must do (the core profile, WHATWG's
/// rules and the practice around them), or this project's whole contract (sse-idioms).
#[derive(Parser)]
#[command(version, verbatim_doc_comment, after_help = AFTER_HELP, next_line_help = true)]
struct Args {
    /// The server's base URL (http://127.0.0.1:3000), or its stream's own URL, whose path is
    /// then the stream path (http://127.0.0.1:3000/events). An https:// URL is checked over
    /// HTTP/2 when the server offers it (ALPN), else HTTP/1.1.
    #[arg(verbatim_doc_comment)]
    url: url::Url,
    /// Which checks: `core` (any SSE server), `sse-idioms` (core and this project's
    /// contract), or `auto`: sse-idioms when the stream opens with its `welcome` event,
    /// e.g. --profile core
    #[arg(verbatim_doc_comment, long, value_enum, default_value_t = ProfileArg::Auto)]
    profile: ProfileArg,
    /// Path of the event stream, e.g. --stream-path /api/events [default: /stream, or the
    /// URL's own path].
    #[arg(verbatim_doc_comment, long, value_name = "PATH")]
    stream_path: Option<String>,
    /// A header sent with every request, e.g. --header 'Authorization: Bearer T'
    /// (repeatable). Its value is never printed.
    #[arg(verbatim_doc_comment, long = "header", value_name = "NAME: VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Where a POST makes the server emit an event, for a server with no events of its own,
    /// e.g. --publish-url /publish (a path on the server, or a URL).
    #[arg(verbatim_doc_comment, long, value_name = "URL")]
    publish_url: Option<String>,
    /// The body of that POST (sent as JSON when it is JSON), e.g. --publish-body '{"data":"x"}'.
    #[arg(
        verbatim_doc_comment,
        long,
        value_name = "BODY",
        default_value = r#"{"data":"sse-check"}"#
    )]
    publish_body: String,
    /// The longest to wait for a response or the next event, e.g. --timeout 30 for a server
    /// that emits every 20 s.
    #[arg(verbatim_doc_comment, long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    timeout: Duration,
    /// The longest the stream may stay silent before a keep-alive is due, e.g.
    /// --keepalive 30 [default: 15, the spec's advice].
    #[arg(verbatim_doc_comment, long, value_name = "SECS", value_parser = seconds)]
    keepalive: Option<Duration>,
    /// Where the server reports its connected clients (a number, JSON with one, or
    /// Prometheus text with sse_connected_clients), e.g. --clients-url /clients
    /// [default: /metrics, if it has that gauge].
    #[arg(verbatim_doc_comment, long, value_name = "URL")]
    clients_url: Option<String>,
    /// An origin the server allows, to check CORS with credentials, e.g.
    /// --origin http://localhost:5173
    #[arg(verbatim_doc_comment, long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// Run only the checks whose name contains NAME, e.g. --only ids,resume (repeatable).
    #[arg(verbatim_doc_comment, long, value_name = "NAME", value_delimiter = ',')]
    only: Vec<String>,
    /// Leave out the checks whose name contains NAME, e.g. --skip keep_alive (repeatable).
    #[arg(verbatim_doc_comment, long, value_name = "NAME", value_delimiter = ',')]
    skip: Vec<String>,
    /// Print the report as JSON (one object: every check's outcome, what to fix first,
    /// the counts), for CI, e.g. --json > report.json
    #[arg(verbatim_doc_comment, long)]
    json: bool,
    /// The server's --publish-token, to check that publishing requires it (never printed),
    /// e.g. --token "$SSE_PUBLISH_TOKEN"
    #[arg(
        verbatim_doc_comment,
        long,
        help_heading = "For the sse-idioms profile"
    )]
    token: Option<String>,
    /// The server's --max-clients, to check the limit (opens that many streams), e.g.
    /// --max-clients 50
    #[arg(
        verbatim_doc_comment,
        long,
        help_heading = "For the sse-idioms profile"
    )]
    max_clients: Option<u32>,
    /// An id issued by an earlier run of the server, to check that it is called foreign,
    /// e.g. --foreign-id 3fa2c91b07de-41
    #[arg(
        verbatim_doc_comment,
        long,
        help_heading = "For the sse-idioms profile"
    )]
    foreign_id: Option<String>,
    /// The server's --jwt-secret, so that the token checks can mint tokens of their own
    /// (never printed), e.g. --jwt-secret "$SSE_JWT_SECRET"
    #[arg(
        verbatim_doc_comment,
        long,
        help_heading = "For the sse-idioms profile",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// For an https:// URL: trust this certificate (PEM: your CA, or the server's own
    /// self-signed certificate) instead of the public web's CAs,
    /// e.g. --ca target/dev-cert/cert.pem
    #[arg(verbatim_doc_comment, long, value_name = "PEM", help_heading = "HTTPS")]
    ca: Option<std::path::PathBuf>,
    /// For an https:// URL: offer only HTTP/1.1 (ALPN), to check a server's HTTP/1.1 over
    /// TLS rather than its HTTP/2, e.g. sse-check https://127.0.0.1:3443 --http1
    #[arg(verbatim_doc_comment, long, help_heading = "HTTPS")]
    http1: bool,
}

/// `--profile`'s values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileArg {
    /// Detect it from the stream's first event.
    Auto,
    /// What any SSE server must do.
    Core,
    /// Core and this project's contract (docs/CONTRACT.md).
    SseIdioms,
}

/// Parses `--header 'Name: value'`.
fn header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or("expected NAME: VALUE, e.g. 'Cookie: session=abc'")?;
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a header name"))?;
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Parses a positive number of seconds (fractions allowed).
fn seconds(arg: &str) -> Result<Duration, String> {
    match arg.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("{arg:?} is not a positive number of seconds")),
    }
}

/// Exits with status 2 and clap's usage message, naming `flag`.
fn refuse(flag: &str, why: impl std::fmt::Display) -> ! {
    Args::command()
        .error(ErrorKind::InvalidValue, format!("{flag}: {why}"))
        .exit()
}

/// A URL given as a path on the server or as a URL of its own.
fn on_server(base: &url::Url, flag: &str, given: &str) -> url::Url {
    base.join(given).unwrap_or_else(|error| refuse(flag, error))
}

/// The target the flags describe.
fn target(args: &Args) -> Target {
    let https = match args.url.scheme() {
        "http" => false,
        "https" => true,
        other => refuse("URL", format!("{other}:// is not http:// or https://")),
    };
    if !https && (args.ca.is_some() || args.http1) {
        let flag = if args.ca.is_some() { "--ca" } else { "--http1" };
        refuse(flag, "only means something for an https:// URL");
    }
    let mut base = args.url.clone();
    let own_path = match (base.path(), base.query()) {
        ("/", None) => None,
        (path, Some(query)) => Some(format!("{path}?{query}")),
        (path, None) => Some(path.to_owned()),
    };
    base.set_path("");
    base.set_query(None);
    let mut target = Target::new(base);
    let stream_path = args.stream_path.clone().or(own_path);
    if let Some(path) = stream_path {
        if !path.starts_with('/') {
            refuse("--stream-path", "a path starts with /, e.g. /events");
        }
        target.stream_path = path;
    }
    target.headers = args.headers.clone();
    target.publish = args.publish_url.as_deref().map(|url| Publish {
        url: on_server(&target.base, "--publish-url", url),
        body: args.publish_body.clone(),
    });
    target.timeout = args.timeout;
    target.keepalive = args.keepalive;
    let clients_url = args.clients_url.as_deref();
    target.clients_url = clients_url.map(|url| on_server(&target.base, "--clients-url", url));
    target.allowed_origin = args.origin.clone();
    target.token = args.token.clone();
    target.max_clients = args.max_clients;
    target.foreign_id = args.foreign_id.clone();
    target.jwt_secret = args.jwt_secret.clone();
    if https {
        target.tls = Some(tls(args));
    }
    target
}

/// The TLS client configuration `--ca` and `--http1` describe.
fn tls(args: &Args) -> std::sync::Arc<rustls::ClientConfig> {
    let Some(ca) = &args.ca else {
        return client::tls_public(args.http1).unwrap_or_else(|why| refuse("URL", why));
    };
    let pem =
        std::fs::read(ca).unwrap_or_else(|e| refuse("--ca", format!("{}: {e}", ca.display())));
    client::tls_trusting(&pem, args.http1)
        .unwrap_or_else(|why| refuse("--ca", format!("{}: {why}", ca.display())))
}

/// The checks of `profile` that `--only` and `--skip` let through; none is a flag error.
fn selected(args: &Args, profile: Profile) -> Vec<Check> {
    let named =
        |patterns: &[String], check: &Check| patterns.iter().any(|p| check.name.contains(p));
    let chosen: Vec<Check> = checks::profile(profile)
        .into_iter()
        .filter(|check| args.only.is_empty() || named(&args.only, check))
        .filter(|check| !named(&args.skip, check))
        .collect();
    if chosen.is_empty() {
        refuse(
            "--only/--skip",
            format!("no {} check is left to run", profile.name()),
        );
    }
    chosen
}

/// The profile to hold the server to, and why; `Err` when the server cannot be reached.
async fn choose(args: &Args, target: &Target) -> Result<(Profile, String), String> {
    // Any answer at all proves the server is there; what it answered is for the checks.
    let reach = Raw::open(target, &StreamRequest::default()).await;
    let status = reach.map_err(|problem| problem.to_string())?.status;
    match args.profile {
        ProfileArg::Core => Ok((Profile::Core, "chosen with --profile".into())),
        ProfileArg::SseIdioms => Ok((Profile::SseIdioms, "chosen with --profile".into())),
        ProfileArg::Auto if status != 200 => Ok((
            Profile::Core,
            format!("the stream answers {status}, so it has no sse-idioms `welcome`"),
        )),
        ProfileArg::Auto => {
            let within = checks::DETECT_WITHIN.min(target.timeout);
            checks::detect(target, within)
                .await
                .map_err(|problem| problem.to_string())
        }
    }
}

/// The stream's URL as the report shows it: no password, even one given in the URL.
fn shown(target: &Target) -> String {
    let mut base = target.base.clone();
    // Only a URL that cannot have a password refuses one: nothing to hide then.
    let _ = base.set_password(None);
    format!(
        "{}{}",
        base.as_str().trim_end_matches('/'),
        target.stream_path
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let target = target(&args);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start a runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let shown = shown(&target);
    let (profile, why) = match runtime.block_on(choose(&args, &target)) {
        Ok(chosen) => chosen,
        Err(why) => {
            let why = sse_conformance::report::redact(&why, &target.secrets());
            eprintln!("error: cannot reach {shown}: {why}");
            return ExitCode::from(2);
        }
    };
    let checks = selected(&args, profile);
    let mut report = Report::new(shown, profile, why, target.secrets());
    let width = checks
        .iter()
        .map(|check| check.name.len())
        .max()
        .unwrap_or(0);
    if !args.json {
        print!("{}", report.header());
    }
    for check in checks {
        let start = Instant::now();
        let result = runtime.block_on(run_check(&check, target.clone()));
        let outcome = Outcome {
            check,
            result,
            took: start.elapsed(),
        };
        if !args.json {
            print!("{}", report.lines(&outcome, width));
            // Each line as its check ends: a whole run takes a while.
            let _ = std::io::stdout().flush();
        }
        report.outcomes.push(outcome);
    }
    if args.json {
        println!("{:#}", report.json());
    } else {
        print!("{}", report.footer());
    }
    ExitCode::from(report.exit_code())
}
