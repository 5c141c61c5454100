//! Contract point 17, the parts only the harness can check: tokens signed with a private key
//! the test generates (ES256, the server holding only the public key), the algorithm-confusion
//! attack, and that no token or secret ever reaches the server's log, at any level.
//!
//! Harness trials named `<variant>::tokens::<check>`.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::Failed;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sse_core::auth::{SigningKey, now_secs};

use crate::checks::topics::on_topics;
use crate::client::{self, Events, StreamRequest};
use crate::harness::{self, Server, Variant};
use crate::{Problem, Res, Target};

/// A token trial.
pub type TokenTrial = fn(Variant) -> Result<(), Failed>;

/// Every token trial, with its name.
pub const TRIALS: [(&str, TokenTrial); 2] = [
    (
        "tokens::es256_tokens_verify_and_hs256_forgeries_with_the_public_key_fail",
        public_key_tokens,
    ),
    (
        "tokens::no_token_or_secret_reaches_a_log_line",
        tokens_never_logged,
    ),
];

/// A file in a temp dir of its own, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Result<Self, Failed> {
        let dir = std::env::temp_dir().join(format!("sse-tokens-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| e.to_string())?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs `check` on a fresh client runtime.
fn run(check: impl std::future::Future<Output = Res>) -> Result<(), Failed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?
        .block_on(check)
        .map_err(|problem| format!("contract point 17: {problem}").into())
}

/// A stream request with `token` as a bearer header.
fn bearer(token: &str) -> StreamRequest {
    StreamRequest {
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        ..Default::default()
    }
}

/// With `--jwt-public-key` holding a P-256 key the test generated: an ES256 token signed
/// with its private half opens a stream; an HS256 token "signed" with the public key's PEM
/// (the algorithm-confusion attack) is refused with 401.
fn public_key_tokens(variant: Variant) -> Result<(), Failed> {
    let pair = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let public = TempFile::new("public.pem", &pair.public_key_pem())?;
    let path = public.0.display().to_string();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start_with(variant, &["--jwt-public-key", &path], addr)
        .map_err(|e| e.to_string())?;
    let private = SigningKey::private_pem(pair.serialize_pem().as_bytes())?;
    let forger = SigningKey::Secret(pair.public_key_pem());
    let target = server.target.clone();
    let outcome = run(async move {
        let genuine = private
            .mint(Some(vec!["*".into()]), None, now_secs() + 60)
            .map_err(|e| Problem::fail("an ES256 token", e))?;
        let mut events = Events::open(&target, &bearer(&genuine)).await?;
        events.welcome().await?;
        let forged = forger
            .mint(
                Some(vec!["*".into()]),
                Some(vec!["*".into()]),
                now_secs() + 60,
            )
            .map_err(|e| Problem::fail("an HS256 forgery", e))?;
        let response = client::open(&target, &bearer(&forged)).await?;
        crate::ensure!(
            response.status() == 401,
            "401 for an HS256 token signed with the server's public key",
            response.status().to_string()
        );
        Ok(())
    });
    let stopped = server.stop().map_err(Failed::from);
    outcome.and(stopped)
}

/// The real binary at `RUST_LOG=trace`, with a secret, serving streams and publishes whose
/// tokens come in every way a request can carry them (valid and not): neither the secret
/// nor any token is anywhere in what it prints.
fn tokens_never_logged(variant: Variant) -> Result<(), Failed> {
    const SECRET: &str = "log-redaction-secret-0123456789";
    let key = SigningKey::Secret(SECRET.into());
    let mint = |topic: &str| {
        key.mint(
            Some(vec![topic.into()]),
            Some(vec![topic.into()]),
            now_secs() + 60,
        )
        .map_err(Failed::from)
    };
    let (query, cookie, header, publisher) = (mint("q")?, mint("c")?, mint("h")?, mint("p")?);
    let bogus = format!("{query}tampered");
    let args = ["--port", "0", "--jwt-secret", SECRET, "--tick-ms", "0"];
    let mut child =
        harness::spawn_main_logging(variant, &args, "trace").map_err(|e| e.to_string())?;
    // Drained as it comes: a trace log fills a pipe's buffer long before the end, and a
    // child blocked on a full pipe would stop serving.
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let base = harness::listening_address(&mut child)?;
    let target = Target::new(url::Url::parse(&base).map_err(|e| e.to_string())?);
    let requests = run(async {
        let in_query = StreamRequest {
            params: vec![("access_token".to_owned(), query.clone())],
            ..on_topics(&["q"])
        };
        let in_cookie = StreamRequest {
            headers: vec![("cookie".to_owned(), format!("sse_token={cookie}"))],
            ..Default::default()
        };
        let bad_query = StreamRequest {
            params: vec![("access_token".to_owned(), bogus.clone())],
            ..Default::default()
        };
        for request in [in_query, in_cookie, bearer(&header)] {
            let mut events = Events::open(&target, &request).await?;
            events.welcome().await?;
        }
        let _ = client::open(&target, &bad_query).await?;
        let body = serde_json::json!({ "data": "x", "topic": "p" }).to_string();
        let authorization = format!("Bearer {publisher}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        let receipt =
            client::fetch(&target, http::Method::POST, "/publish", &headers, body).await?;
        crate::ensure!(
            receipt.status == 202,
            "202 for a claimed publish",
            receipt.status.to_string()
        );
        Ok(())
    });
    let pid = Pid::from_raw(i32::try_from(child.id()).map_err(|e| e.to_string())?);
    let _ = kill(pid, Signal::SIGTERM);
    harness::wait_exit(&mut child, Duration::from_secs(10))?;
    let printed = log.join().map_err(|_| "the log reader panicked")?;
    requests?;
    if printed.len() < 1000 {
        return Err(format!(
            "expected a trace log to search; got {} bytes",
            printed.len()
        )
        .into());
    }
    for (what, secret) in [
        ("the --jwt-secret", SECRET),
        ("a token in ?access_token=", query.as_str()),
        ("a bad token in ?access_token=", bogus.as_str()),
        ("a token in the cookie", cookie.as_str()),
        ("a token in Authorization", header.as_str()),
        ("a publisher's token", publisher.as_str()),
    ] {
        // The signature (after the last dot) is what a log line must never hold.
        let signature = secret.rsplit('.').next().unwrap_or(secret);
        if printed.contains(signature) {
            let at = printed.find(signature).unwrap_or(0);
            let line = printed[..at].rfind('\n').map_or(0, |n| n + 1);
            let end = printed[at..].find('\n').map_or(printed.len(), |n| at + n);
            return Err(format!(
                "{what} reached the log at RUST_LOG=trace: {:?}",
                client::tail(&printed[line..end])
            )
            .into());
        }
    }
    Ok(())
}
