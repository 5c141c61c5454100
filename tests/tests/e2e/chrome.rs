//! Headless Chromium driven over WebDriver with fantoccini.
//!
//! Every [`Browser`] is its own chromedriver (on a free port, started and killed here) and
//! its own Chromium with a fresh profile in a temporary directory, so that no state (cache,
//! cookies, a remembered `retry`) carries over from one trial to the next. The browser's
//! console is read through chromedriver's log endpoint (`goog:loggingPrefs` asks Chromium to
//! keep it); a probe message checks that reading actually works before the absence of errors
//! counts for anything.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use sse_conformance::Target;

use super::{Context, Outcome, wait_for};

/// Debian's Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver, of the same version.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Chromium's flags: headless, no sandbox (containers lack the namespaces it needs), and no
/// background traffic (updates, sync, QUIC probes) that could reach the network or add to
/// the console. The profile directory is added per browser.
const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    // The HTTPS scenario's servers use a certificate made for the test run; nothing else
    // this browser opens is on the network.
    "--ignore-certificate-errors",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
];
/// How long chromedriver may take to answer `GET /status`.
const DRIVER_START: Duration = Duration::from_secs(10);
/// How long a new session (a cold Chromium start) may take on a small, busy machine.
const SESSION_START: Duration = Duration::from_secs(60);
/// How long closing the session (and with it Chromium) may take.
const SESSION_CLOSE: Duration = Duration::from_secs(15);
/// Written to the console to prove that console messages are collected at all.
const PROBE: &str = "sse-e2e-console-probe";
/// The window size: wide enough for the pane's status line, tall enough for a dozen events
/// in the screenshot.
const WINDOW: (u32, u32) = (1100, 1100);

/// A running chromedriver; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    async fn start() -> Outcome<Driver> {
        // Ask the kernel for a free port; the short window in which another process could
        // take it before chromedriver binds it does not matter on a test machine.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port for chromedriver")?
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(&format!("starting {CHROMEDRIVER}"))?;
        let mut driver = Driver { child, port };
        let status = Target::new(driver.url().parse().context("chromedriver's URL")?);
        wait_for(
            "chromedriver to answer GET /status",
            DRIVER_START,
            async || {
                if let Some(exit) = driver.child.try_wait().context("watching chromedriver")? {
                    return Err(format!("chromedriver exited at start with {exit}"));
                }
                Ok(
                    match sse_conformance::client::get(&status, "/status").await {
                        Ok(answer) if answer.status == 200 => Ok(()),
                        Ok(answer) => Err(format!("status {}", answer.status)),
                        Err(problem) => Err(problem.to_string()),
                    },
                )
            },
        )
        .await?;
        Ok(driver)
    }

    /// Its WebDriver URL.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ours alone, by its id; it may have exited already, so errors say nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh Chromium profile directory; removed when dropped.
struct Profile(PathBuf);

impl Profile {
    /// Creates an empty directory under the system's temporary directory.
    fn create() -> Outcome<Profile> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sse-e2e-profile-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A directory left by an earlier, killed run with the same pid would not be fresh.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).context(&format!("creating {}", dir.display()))?;
        Ok(Profile(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        // Best effort: a leftover profile in the temp directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One entry of the browser's console, as chromedriver reports it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// `console-api` (console.*), `javascript` (uncaught errors), `network`, ...
    pub source: String,
    /// The text, prefixed with where it came from.
    pub message: String,
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log: the console entries
/// since the previous read (reading drains them).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// A Chromium session, its chromedriver and its profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    // Dropped after `client`: chromedriver ends Chromium when the session closes.
    driver: Driver,
    profile: Profile,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Outcome<Browser> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(program).exists() {
                return Err(format!(
                    "{program} is missing; the browser tests need Debian's Chromium: \
                     apt-get install chromium chromium-driver"
                ));
            }
        }
        let profile = Profile::create()?;
        let driver = Driver::start().await?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.0.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            return Err("capabilities must be a JSON object".into());
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let url = driver.url();
        let connect = builder.connect(&url);
        let client = tokio::time::timeout(SESSION_START, connect)
            .await
            .map_err(|_| format!("no Chromium session within {SESSION_START:?}"))?
            .context("starting a Chromium session")?;
        let browser = Browser {
            client,
            driver,
            profile,
        };
        browser
            .client
            .set_window_size(WINDOW.0, WINDOW.1)
            .await
            .context("sizing the window")?;
        Ok(browser)
    }

    /// Ends the session (which ends Chromium), then chromedriver, and removes the profile.
    pub async fn finish(self) -> Outcome {
        let Browser {
            client,
            driver,
            profile,
        } = self;
        let closed = tokio::time::timeout(SESSION_CLOSE, client.close()).await;
        drop(driver);
        drop(profile);
        match closed {
            Ok(result) => result.context("closing the Chromium session"),
            Err(_) => Err(format!(
                "the session did not close within {SESSION_CLOSE:?}"
            )),
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the current page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Outcome<Value> {
        self.client
            .execute(script, args)
            .await
            .context("running a script in the page")
    }

    /// Opens `url` in the current window, waiting for the page's load event.
    pub async fn open(&self, url: &str) -> Outcome {
        self.client
            .goto(url)
            .await
            .context(&format!("opening {url}"))
    }

    /// The console entries since the last read.
    pub async fn console(&self) -> Outcome<Vec<LogEntry>> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .context("reading the browser log (POST /session/{id}/se/log)")?;
        let text = |entry: &Value, key: &str| entry[key].as_str().unwrap_or_default().to_owned();
        Ok(entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| LogEntry {
                        level: text(entry, "level"),
                        source: text(entry, "source"),
                        message: text(entry, "message"),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The console's errors (level `SEVERE`) since the last read, after checking with a
    /// probe `console.error` that the console is being collected at all.
    pub async fn console_errors(&self) -> Outcome<Vec<LogEntry>> {
        self.run(&format!("console.error({PROBE:?});"), vec![])
            .await?;
        let entries = self.console().await?;
        if !entries.iter().any(|e| e.message.contains(PROBE)) {
            return Err(format!(
                "the browser log to hold the probe console.error (else console errors go \
                 unseen); got {entries:?}"
            ));
        }
        Ok(entries
            .into_iter()
            .filter(|e| e.level == "SEVERE" && !e.message.contains(PROBE))
            .collect())
    }

    /// Fails on any console error (uncaught exceptions, `console.error`, failed requests)
    /// since the last read; with `allow_network`, failed requests are expected and pass.
    pub async fn expect_no_console_errors(&self, allow_network: bool) -> Outcome {
        let errors: Vec<LogEntry> = self
            .console_errors()
            .await?
            .into_iter()
            .filter(|e| !(allow_network && e.source == "network"))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("expected no console errors; got {errors:#?}"))
        }
    }

    /// Writes a PNG of the current window to `path`.
    pub async fn screenshot(&self, path: &Path) -> Outcome {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        std::fs::write(path, png).context(&format!("writing {}", path.display()))
    }
}
