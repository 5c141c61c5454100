//! The launcher's life cycle, run as a user runs it: `sse-demo --port 0` starts three
//! variant processes and the compare page; Ctrl-C stops them all; a variant that dies takes
//! the demo down with it, and the others too; `--tls` serves it all over HTTPS. And the
//! control API's guard rails: every bad input is a JSON 400, another origin is refused, and
//! off loopback (or over TLS, where the demo cannot read what it relays) there is no API.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sse_conformance::Target;
use sse_conformance::client::{self, Events, StreamRequest};

/// A running demo and what it printed at start.
struct Demo {
    child: Child,
    page: String,
    /// `(name, url, pid)` per variant.
    variants: Vec<(String, String, i32)>,
}

impl Drop for Demo {
    /// A failed test must not leave the demo (and its variants) running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Starts `sse-demo --port 0` and reads its start-up lines.
fn start() -> Demo {
    start_with(&[])
}

/// Starts `sse-demo --port 0` with `flags` before the variants' own, and reads its start-up
/// lines.
#[expect(
    clippy::zombie_processes,
    reason = "the child is waited on when its Demo drops"
)]
fn start_with(flags: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args(["--port", "0"])
        .args(flags)
        .args(["--", "--tick-ms", "300"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sse-demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps draining after start-up, so the demo never writes into a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut variants = Vec::new();
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .expect("start-up lines within 60 s");
        if let Some(url) = line.strip_prefix("compare page listening on ") {
            return Demo {
                child,
                page: url.to_owned(),
                variants,
            };
        }
        // "<name> listening on <url> (pid <pid>)"; other lines say what is off, say.
        let Some((name, rest)) = line.split_once(" listening on ") else {
            continue;
        };
        let (url, pid) = rest.split_once(" (pid ").expect("a pid");
        let pid = pid.trim_end_matches(')').parse().expect("a numeric pid");
        variants.push((name.to_owned(), url.to_owned(), pid));
    }
}

fn target(url: &str) -> Target {
    Target::new(url::Url::parse(url).expect("a URL"))
}

/// Waits for `child` to exit within `bound`.
fn wait_exit(child: &mut Child, bound: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sse-demo did not exit within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}

fn stderr_text(stderr: Option<ChildStderr>) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = stderr {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_three_variants_with_a_compare_page_and_stops_them_on_ctrl_c() {
    let mut demo = start();
    let names: Vec<_> = demo
        .variants
        .iter()
        .map(|(name, _, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        ["axum-stream-map", "actix-push-loop", "warp-generator"]
    );

    let page = target(&demo.page);
    let html = client::get(&page, "/").await.expect("the page");
    assert!(
        html.status == 200 && html.body.contains("compare.js"),
        "{html:?}"
    );
    let listing = client::get(&page, "/variants.json")
        .await
        .expect("the listing");
    for (name, url, _) in &demo.variants {
        assert!(
            listing.body.contains(name) && listing.body.contains(url),
            "{}",
            listing.body
        );
    }
    for path in ["/compare.js", "/stream-pane.js", "/style.css"] {
        assert_eq!(
            client::get(&page, path).await.expect("an asset").status,
            200,
            "{path}"
        );
    }

    // Each variant streams to the page's origin, with credentials.
    for (name, url, _) in &demo.variants {
        let request = StreamRequest {
            origin: Some(demo.page.clone()),
            ..Default::default()
        };
        let mut events = Events::open(&target(url), &request)
            .await
            .expect("a stream");
        assert_eq!(
            client::header(&events.headers, "access-control-allow-origin"),
            demo.page,
            "{name}"
        );
        assert_eq!(events.welcome().await.expect("welcome").server, *name);
    }

    kill(Pid::from_raw(demo.child.id() as i32), Signal::SIGINT).expect("signal");
    let status = wait_exit(&mut demo.child, Duration::from_secs(10));
    assert!(
        status.success(),
        "{status}: {}",
        stderr_text(demo.child.stderr.take())
    );
    for (name, _, pid) in &demo.variants {
        assert!(gone(*pid), "{name} still running");
    }
}

/// With `--tls`, the page and the three variants are served over HTTPS, each choosing
/// HTTP/2 by ALPN, and every variant allows the page's `https://` origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_the_page_and_every_variant_speak_http2() {
    let cert = sse_conformance::test_cert::TestCert::generate("demo").expect("a certificate");
    let flags = cert.flags();
    let mut demo = start_with(&["--tls", &flags[0], &flags[1], &flags[2], &flags[3]]);
    assert!(demo.page.starts_with("https://"), "{}", demo.page);
    let tls = cert.client(false).expect("a client configuration");
    let secure = |url: &str| {
        let mut target = target(url);
        target.tls = Some(tls.clone());
        target
    };
    let page = secure(&demo.page);
    let connection = client::connect(&page, None).await.expect("a connection");
    assert!(connection.is_http2(), "the page over HTTP/2");
    let html = client::get(&page, "/").await.expect("the page");
    assert!(
        html.status == 200 && html.body.contains("compare.js"),
        "{html:?}"
    );
    // The demo cannot read the streams it would relay over TLS: it offers no faults.
    let faults = client::get(&page, "/faults").await.expect("an answer");
    assert_eq!(faults.status, 404, "{}", faults.summary());
    for (name, url, _) in &demo.variants {
        assert!(url.starts_with("https://"), "{name}: {url}");
        let variant = secure(url);
        let mut connection = client::connect(&variant, None).await.expect("a connection");
        assert!(connection.is_http2(), "{name} over HTTP/2");
        let request = StreamRequest {
            origin: Some(demo.page.clone()),
            ..Default::default()
        };
        let mut events = Events::open_on(&mut connection, &variant, &request)
            .await
            .expect("a stream");
        assert_eq!(
            client::header(&events.headers, "access-control-allow-origin"),
            demo.page,
            "{name}"
        );
        assert_eq!(events.welcome().await.expect("welcome").server, *name);
    }
    kill(Pid::from_raw(demo.child.id() as i32), Signal::SIGINT).expect("signal");
    let status = wait_exit(&mut demo.child, Duration::from_secs(10));
    assert!(
        status.success(),
        "{status}: {}",
        stderr_text(demo.child.stderr.take())
    );
}

/// `--tls` without a certificate names the flag and the command that makes one.
#[test]
fn tls_without_a_certificate_says_how_to_make_one() {
    let output = Command::new(env!("CARGO_BIN_EXE_sse-demo"))
        .args(["--port", "0", "--tls", "--tls-cert", "/no/such/cert.pem"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("sse-demo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--tls-cert") && stderr.contains("dev-cert"),
        "{stderr}"
    );
}

#[test]
fn a_variant_that_dies_stops_the_demo_and_the_others() {
    let mut demo = start();
    let (victim, _, pid) = demo.variants[1].clone();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("signal");
    let status = wait_exit(&mut demo.child, Duration::from_secs(15));
    assert!(!status.success(), "the demo must fail when a variant dies");
    let stderr = stderr_text(demo.child.stderr.take());
    assert!(stderr.contains(&format!("{victim} exited")), "{stderr}");
    for (name, _, pid) in &demo.variants {
        assert!(gone(*pid), "{name} still running");
    }
}

/// With `--hub redis`, the three variants share one log: one publish reaches all three with
/// one id. Needs `redis-server` (skipped with a note when it is missing, failing under CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_redis_hub_one_publish_shows_one_id_in_every_variant() {
    use sse_conformance::redis_server::{Durability, RedisServer};
    if !RedisServer::available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is not installed (apt-get install redis-server)"
        );
        eprintln!("note: redis-server is not installed; skipping the --hub redis demo test");
        return;
    }
    let redis = RedisServer::start(Durability::Ephemeral).expect("a test Redis");
    let demo = start_with(&["--hub", "redis", "--redis-url", &redis.url()]);
    let mut streams = Vec::new();
    for (name, url, _) in &demo.variants {
        let mut events = Events::open(&target(url), &StreamRequest::default())
            .await
            .expect("a stream");
        let welcome = events.welcome().await.expect("welcome");
        assert_eq!(welcome.hub.as_deref(), Some("redis"), "{name}");
        streams.push(events);
    }
    let from = target(&demo.variants[0].1);
    let id = client::publish(&from, Some("demo"), "one log")
        .await
        .expect("published");
    for (events, (name, _, _)) in streams.iter_mut().zip(&demo.variants) {
        let seen = events
            .until(Duration::from_secs(5), |e| e.event == "demo")
            .await
            .expect("the event");
        assert_eq!(
            seen.last().map(|e| e.id.as_str()),
            Some(id.as_str()),
            "{name}"
        );
    }
    drop(demo);
}

/// `POST /faults/{fault}` with `body` and `headers`, on the demo's page.
async fn trigger(
    demo: &Demo,
    fault: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> client::Fetched {
    let page = target(&demo.page);
    client::fetch(
        &page,
        http::Method::POST,
        &format!("/faults/{fault}"),
        headers,
        body.to_owned(),
    )
    .await
    .expect("an answer")
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_answers_bad_input_with_json_400s_and_other_origins_with_403() {
    let demo = start();
    for (fault, headers, body, says) in [
        ("nope", vec![JSON], "{}", "unknown fault \"nope\""),
        (
            "stall",
            vec![JSON],
            r#"{"variants": ["nope"]}"#,
            "unknown variant \"nope\"",
        ),
        (
            "stall",
            vec![JSON],
            r#"{"variants": []}"#,
            "`variants` is empty",
        ),
        (
            "flood",
            vec![JSON],
            r#"{"events": 0}"#,
            "`events` must be 1 to 20000",
        ),
        (
            "stall",
            vec![JSON],
            r#"{"seconds": 2}"#,
            "`seconds` is for the cut fault only",
        ),
        (
            "cut",
            vec![JSON],
            r#"{"sekonds": 2}"#,
            "unknown field `sekonds`",
        ),
        ("cut", vec![JSON], "not json", "the body:"),
        ("cut", vec![], r#"{"seconds": 2}"#, "must be JSON"),
    ] {
        let answer = trigger(&demo, fault, &headers, body).await;
        answer.expect_json_error(400).expect("a JSON 400");
        let json: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{fault} {body}: {error}");
    }
    let foreign = [JSON, ("origin", "http://evil.example")];
    trigger(&demo, "restart", &foreign, "{}")
        .await
        .expect_json_error(403)
        .expect("a JSON 403 for another origin");

    let page = target(&demo.page);
    let missing = client::get(&page, "/faults/99").await.expect("an answer");
    missing
        .expect_json_error(404)
        .expect("a JSON 404 for an unknown job");
    client::get(&page, "/faults/x")
        .await
        .expect("an answer")
        .expect_json_error(400)
        .expect("a JSON 400 for a bad job id");
    let listed = client::get(&page, "/faults").await.expect("the list");
    for fault in ["stall", "flood", "cut", "restart", "max-clients"] {
        assert!(
            listed.body.contains(&format!("\"{fault}\"")),
            "{}",
            listed.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_gets_each_idiom_file_with_its_regions() {
    let demo = start();
    let page = target(&demo.page);
    for (name, _, _) in &demo.variants {
        let code = client::get(&page, &format!("/code/{name}"))
            .await
            .expect("the code");
        let json: serde_json::Value = serde_json::from_str(&code.body).expect("JSON");
        for moment in ["join", "lag", "disconnect", "shutdown"] {
            let region = &json["regions"][moment];
            assert!(
                region["first"].as_u64().is_some_and(|first| first > 0),
                "{name} {moment}: {region}"
            );
        }
    }
    let docs = client::get(&page, "/docs/IDIOMS.md")
        .await
        .expect("the guide");
    assert!(
        docs.status == 200 && docs.body.contains("## Push loop"),
        "{}",
        docs.summary()
    );
}

/// Off loopback the page is for others to see too, and the faults would let anyone restart
/// the variants: the demo serves no control API there, and says so.
#[test]
fn off_loopback_there_is_no_control_api() {
    let mut demo = start_with(&["--host", "0.0.0.0"]);
    let port = demo.page.rsplit(':').next().expect("a port").to_owned();
    let page = target(&format!("http://127.0.0.1:{port}"));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let answer = runtime
        .block_on(client::get(&page, "/faults"))
        .expect("an answer");
    assert_eq!(answer.status, 404, "{}", answer.summary());
    kill(Pid::from_raw(demo.child.id() as i32), Signal::SIGINT).expect("signal");
    wait_exit(&mut demo.child, Duration::from_secs(10));
}
