//! Support code for the browser tests (`browser.rs`): Chromium driven over WebDriver
//! ([`chrome`]), the shared page read through its DOM hooks ([`pane`]), a TCP proxy whose
//! connections a test can cut ([`proxy`]), a static server for pages of another origin
//! ([`pages`]), what every scenario works with ([`stage`]), and the demo with its compare
//! page ([`demo`], [`compare`]).
//!
//! Everything here reports problems as a sentence (`Outcome`), which becomes the trial's
//! failure message, and every wait is [`wait_for`]: a condition polled until it holds or a
//! bound runs out, never a fixed sleep.

pub mod chrome;
pub mod compare;
pub mod demo;
pub mod pages;
pub mod pane;
pub mod proxy;
pub mod stage;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// A step's result: `Err` says what was expected and what happened instead.
pub type Outcome<T = ()> = Result<T, String>;

/// How often [`wait_for`] looks again: often enough that a wait costs little beyond the
/// condition itself, rarely enough that WebDriver round trips do not load the machine.
const POLL: Duration = Duration::from_millis(100);

/// Adds what was being done to an error, so that failures read as sentences.
pub trait Context<T> {
    /// Maps the error to `"<what>: <error>"`.
    fn context(self, what: &str) -> Outcome<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Outcome<T> {
        self.map_err(|error| format!("{what}: {error}"))
    }
}

/// Polls `probe` until it yields `Ok(Ok(value))`, at most `bound`.
///
/// The probe answers `Ok(Err(seen))` while the condition does not hold yet, `seen` saying
/// what it saw instead (the last one goes into the timeout message), and `Err` to give up at
/// once. It always runs at least once, even when the bound is already spent.
pub async fn wait_for<T>(
    what: &str,
    bound: Duration,
    mut probe: impl AsyncFnMut() -> Outcome<Result<T, String>>,
) -> Outcome<T> {
    let deadline = Instant::now() + bound;
    loop {
        let seen = match probe().await? {
            Ok(value) => return Ok(value),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(format!("expected {what} within {bound:?}; last saw {seen}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a page shows, read in one script, so that its parts agree with each other.
pub trait Snapshot: Sized {
    /// Takes one.
    async fn take(browser: &chrome::Browser) -> Outcome<Self>;
    /// A summary for failure messages.
    fn summary(&self) -> String;
}

/// Waits until the page's [`Snapshot`] satisfies `condition`, at most `bound`; returns it.
pub async fn wait_until_shown<S: Snapshot>(
    browser: &chrome::Browser,
    what: &str,
    bound: Duration,
    condition: impl Fn(&S) -> bool,
) -> Outcome<S> {
    wait_for(what, bound, async || {
        let shown = S::take(browser).await?;
        Ok(if condition(&shown) {
            Ok(shown)
        } else {
            Err(shown.summary())
        })
    })
    .await
}

/// `target/e2e/`, where screenshots go, created if needed.
///
/// The target directory is `CARGO_TARGET_DIR` when set (cargo passes it on to tests only if
/// the caller set it), else the workspace's `target/`.
pub fn artifacts_dir() -> Outcome<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let package = Path::new(env!("CARGO_MANIFEST_DIR"));
            package.parent().unwrap_or(package).join("target")
        });
    let dir = target.join("e2e");
    std::fs::create_dir_all(&dir).context(&format!("creating {}", dir.display()))?;
    Ok(dir)
}
