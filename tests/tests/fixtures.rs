//! The core profile against servers that are not ours: the fixtures in `tests/fixtures/`,
//! written as the guide's Express and Flask snippets are, bugs kept on purpose. Each test
//! starts its fixture as a child process on a free port, waits for its `listening on` line,
//! and kills it at the end; each asserts the exact set of checks the fixture fails, so a
//! check that stops finding the guide's bugs (or starts failing what they do right) fails
//! the build. Then `sse-check` itself, run as a user runs it, and a variant with no events
//! of its own, fed through `--publish-url`.

mod variants;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sse_conformance::checks::{self, core::STREAM};
use sse_conformance::harness::{self, Server};
use sse_conformance::report::{Outcome, Report, WIDTH};
use sse_conformance::test_cert::TestCert;
use sse_conformance::{Profile, Publish, Target, run_check};

/// The fixtures' tick: fast, so that a run takes seconds.
const TICK_MS: &str = "250";
/// The keep-alive interval the fixtures are held to: a few of their ticks.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long a check waits for a fixture.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The origin the Node fixture allows.
const ORIGIN: &str = "http://app.test";

/// A fixture server running as a child process, killed when dropped.
struct Fixture {
    child: Child,
    base: url::Url,
}

impl Fixture {
    /// Starts `program script` on a free port and waits for its `listening on` line.
    fn start(program: &str, script: &str, env: &[(&str, &str)]) -> Fixture {
        let path = format!("{}/fixtures/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(program)
            .arg(&path)
            .arg("0")
            .env("TICK_MS", TICK_MS)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} {path}: {e} (.ci/run installs {program})"));
        let listening = harness::listening_address(&mut child);
        let base = match listening {
            Ok(base) => base,
            Err(failed) => {
                let _ = child.kill();
                panic!("{script}: {failed:?}");
            }
        };
        let base = url::Url::parse(&base).expect("the fixture prints a URL");
        Fixture { child, base }
    }

    /// The Node fixture, in the Express snippet's style.
    fn express() -> Fixture {
        Fixture::start("node", "guide-express.js", &[("ALLOWED_ORIGIN", ORIGIN)])
    }

    /// The Python fixture, in the Flask snippet's style.
    fn flask() -> Fixture {
        Fixture::start("python3", "guide_flask.py", &[])
    }

    /// A target for the fixture, held to a short keep-alive and timeout.
    fn target(&self) -> Target {
        let mut target = Target::new(self.base.clone());
        target.keepalive = Some(KEEPALIVE);
        target.timeout = TIMEOUT;
        target
    }
}

impl Drop for Fixture {
    /// Nothing is left running, whatever the test did.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Detects the target's profile (the report says which), then runs every core check
/// against it, as `sse-check --profile core` does.
fn core_report(target: &Target) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (profile, why) = runtime
        .block_on(checks::detect(target, checks::DETECT_WITHIN))
        .expect("the server answers");
    let mut report = Report::new(target.base.to_string(), profile, why, target.secrets());
    for check in checks::core::all() {
        let start = Instant::now();
        let result = runtime.block_on(run_check(&check, target.clone()));
        report.outcomes.push(Outcome {
            check,
            result,
            took: start.elapsed(),
        });
    }
    report
}

/// Holds `target` to the core profile, which it must be detected as, and asserts that
/// exactly `failed` failed and `skipped` were skipped (all else passed); the report, and its
/// text for further assertions.
fn held_to_core(target: &Target, failed: &[&str], skipped: &[&str]) -> (Report, String) {
    let report = core_report(target);
    let named = |verdict| -> BTreeSet<&str> {
        let outcomes = report.outcomes.iter().filter(|o| o.verdict() == verdict);
        outcomes.map(|o| o.check.name).collect()
    };
    let text = report.text();
    assert_eq!(report.profile, Profile::Core, "{text}");
    assert_eq!(named("FAIL"), failed.iter().copied().collect(), "{text}");
    assert_eq!(named("SKIP"), skipped.iter().copied().collect(), "{text}");
    (report, text)
}

#[test]
fn the_express_fixture_fails_only_on_the_guides_shared_ids() {
    let fixture = Fixture::express();
    let mut target = fixture.target();
    target.clients_url = Some(fixture.base.join("/clients").expect("a URL"));
    target.allowed_origin = Some(ORIGIN.into());
    let shared_ids = [
        "ids_are_unique_and_never_reused",
        "resume_after_last_event_id_continues_without_repeat",
    ];
    let (report, text) = held_to_core(&target, &shared_ids, &[]);
    let roots = report.fix_first();
    assert_eq!(roots[0].name, "ids_are_unique_and_never_reused", "{text}");
    assert!(
        text.contains("on 3 events: message, greeting, update"),
        "{text}"
    );
    assert!(text.contains("(no history)"), "{text}");
}

#[test]
fn the_flask_fixture_fails_on_per_connection_ids_and_bare_headers() {
    let fixture = Fixture::flask();
    let (_, text) = held_to_core(
        &fixture.target(),
        &[
            "stream_is_marked_no_cache",
            "stream_tells_proxies_not_to_buffer",
            "ids_are_unique_and_never_reused",
            "resume_after_last_event_id_continues_without_repeat",
        ],
        &[
            "a_client_that_disconnects_is_released",
            "cors_with_credentials_echoes_the_origin",
        ],
    );
    assert!(text.contains("on one connection"), "{text}");
    assert!(
        text.contains("again: the server reads no Last-Event-ID"),
        "{text}"
    );
}

/// Runs the `sse-check` binary with `args`, bounded by a minute.
fn sse_check(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-check"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sse-check runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("sse-check's status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sse-check {args:?} ran for over a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("sse-check's output")
}

#[test]
fn sse_check_names_the_shared_id_bug_first_in_100_columns() {
    let fixture = Fixture::express();
    let url = fixture.base.to_string();
    let output = sse_check(&[&url, "--keepalive", "1", "--timeout", "5"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().all(|l| l.chars().count() <= WIDTH),
        "{stdout}"
    );
    assert!(
        stdout.contains("profile core: the first event is `message`"),
        "{stdout}"
    );
    let fix_first = stdout.split("Fix first:").nth(1).unwrap_or_default();
    let first = fix_first.trim_start().lines().next().unwrap_or_default();
    assert!(
        first.starts_with("1. ids_are_unique_and_never_reused: id "),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("PASS {STREAM}")), "{stdout}");
}

#[test]
fn sse_check_json_reports_each_check_for_ci() {
    let fixture = Fixture::express();
    let url = fixture.base.to_string();
    let output = sse_check(&[
        &url,
        "--json",
        "--only",
        "ids_are,stream_answers",
        "--timeout",
        "5",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let outcomes: Vec<(&str, &str)> = json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (STREAM, "pass"),
            ("ids_are_unique_and_never_reused", "fail")
        ]
    );
    assert_eq!(
        json["fix_first"][0]["check"],
        "ids_are_unique_and_never_reused"
    );
    assert_eq!(json["profile"], "core");
}

#[test]
fn sse_check_exits_2_when_nothing_listens() {
    // A port that was free a moment ago: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let output = sse_check(&[&format!("http://127.0.0.1:{port}")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn sse_check_exits_2_on_a_bad_flag_naming_it() {
    for (args, flag) in [
        (
            &["http://127.0.0.1:9", "--header", "no colon"][..],
            "--header",
        ),
        (&["http://127.0.0.1:9", "--timeout", "soon"], "--timeout"),
        (&["http://127.0.0.1:9", "--keepalive", "0"], "--keepalive"),
        (&["http://127.0.0.1:9", "--profile", "fast"], "--profile"),
        (&["ftp://127.0.0.1:9"], "URL"),
        (&["http://127.0.0.1:9", "--ca", "cert.pem"], "--ca"),
        (&["http://127.0.0.1:9", "--http1"], "--http1"),
        (
            &["https://127.0.0.1:9", "--ca", "/no/such/cert.pem"],
            "--ca",
        ),
        (&["not a url"], "URL"),
    ] {
        let output = sse_check(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn sse_check_help_explains_every_flag_with_an_example() {
    let output = sse_check(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    for flag in [
        "--profile",
        "--stream-path",
        "--header",
        "--publish-url",
        "--publish-body",
        "--timeout",
        "--keepalive",
        "--clients-url",
        "--origin",
        "--only",
        "--skip",
        "--json",
        "--token",
        "--max-clients",
        "--foreign-id",
        "--ca",
        "--http1",
    ] {
        // Long help gives each flag a block of its own: its line, then its doc.
        // (The first block under a heading starts with the heading's line.)
        let heads = |line: &str| {
            line == format!("      {flag}") || line.starts_with(&format!("      {flag} "))
        };
        let block = help.split("\n\n").find(|block| block.lines().any(heads));
        let block = block.unwrap_or_else(|| panic!("no {flag} in {help}"));
        assert!(block.contains("e.g."), "{flag} has no example: {block}");
    }
    assert!(help.contains("Exit status: 0"), "{help}");
    assert!(help.lines().all(|l| l.chars().count() <= WIDTH), "{help}");
}

#[test]
fn sse_check_speaks_http2_over_tls_with_the_given_ca() {
    let variant = variants::VARIANTS[0];
    let cert = TestCert::generate("sse-check").expect("a test certificate");
    let cert_flags = cert.flags();
    let flags: Vec<&str> = cert_flags.iter().map(String::as_str).collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start_with(variant, &flags, addr).expect("a server");
    let url = server.target.base.to_string();
    assert!(url.starts_with("https://"), "{url}");
    let outcomes = |extra: &[&str]| {
        let only = "stream_answers,ten_streams_share_one_http2_connection";
        let mut args = vec![url.as_str(), "--ca", flags[1], "--token", harness::TOKEN];
        args.extend(["--only", only, "--json"]);
        args.extend_from_slice(extra);
        let output = sse_check(&args);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("JSON from {args:?}: {output:?}"));
        let outcomes: Vec<(String, String)> = json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| (c["name"].to_string(), c["outcome"].to_string()))
            .collect();
        (output.status.code(), outcomes)
    };
    let (status, over_h2) = outcomes(&[]);
    assert_eq!(status, Some(0), "{over_h2:?}");
    // Offering only HTTP/1.1, the server's stream still passes, and the HTTP/2 check says
    // what it wanted.
    let (status, over_h1) = outcomes(&["--http1"]);
    assert_eq!(status, Some(1), "{over_h1:?}");
    assert_eq!(over_h1[0].1, r#""pass""#, "{over_h1:?}");
    assert_eq!(over_h1[1].1, r#""fail""#, "{over_h1:?}");
    server.stop().expect("the server stops");
}

#[test]
fn a_variant_without_a_ticker_passes_the_core_when_fed_through_publish() {
    let variant = variants::VARIANTS[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start_with(variant, &["--tick-ms", "0"], addr).expect("a server");
    let mut target = server.target.clone();
    target.publish = Some(Publish {
        url: target.base.join("/publish").expect("a URL"),
        body: r#"{"event": "fed", "data": "fed by sse-check"}"#.into(),
    });
    let report = core_report(&target);
    let text = report.text();
    assert_eq!(report.profile, Profile::SseIdioms, "{text}");
    assert_eq!(report.counts(), (checks::core::all().len(), 0, 0), "{text}");
    server.stop().expect("the server stops");
}
