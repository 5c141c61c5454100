//! `sse-demo` as the compare page's browser scenarios run it: a real launcher process with
//! three real variant processes, stopped when the scenario ends, pass or fail.
//!
//! Cargo builds no `sse-demo` binary for this package's tests, so the test binary runs the
//! demo itself: started again with [`AS_DEMO`] set, its `main` hands over to `sse_demo::main`,
//! which re-runs the same binary once more for each variant (as the real demo re-runs
//! itself). The scenario reads the demo's start-up lines for the page's URL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Context, Outcome};

/// Set in the environment of a run of this binary that is to be the demo.
pub const AS_DEMO: &str = "SSE_E2E_AS_DEMO";
/// How long the demo may take to start its three variants and its page.
const START: Duration = Duration::from_secs(60);
/// How long it may take to stop them all (each variant has 5 s, in parallel).
const STOP: Duration = Duration::from_secs(15);

/// Whether this run of the test binary is the demo, or one of its variants.
pub fn is_demo_run() -> bool {
    std::env::var_os(AS_DEMO).is_some() || std::env::var_os(sse_demo::CHILD_VAR).is_some()
}

/// A running demo.
pub struct Demo {
    /// The launcher process.
    child: Child,
    /// The compare page's URL.
    pub page: String,
}

impl Demo {
    /// Starts `sse-demo --port 0 <flags> -- <variant_flags>`, quietly, and waits for its page.
    pub fn start(flags: &[&str], variant_flags: &[&str]) -> Outcome<Demo> {
        let exe = std::env::current_exe().context("finding the test binary")?;
        let mut child = Command::new(exe)
            .env(AS_DEMO, "1")
            .env("RUST_LOG", "warn")
            .args(["--port", "0"])
            .args(flags)
            .arg("--")
            .args(variant_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the demo")?;
        let stdout = child.stdout.take().ok_or("the demo's stdout")?;
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining after start-up, so the demo never writes into a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut demo = Demo {
            child,
            page: String::new(),
        };
        let deadline = Instant::now() + START;
        while demo.page.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received
                .recv_timeout(left)
                .map_err(|_| format!("expected the demo's page within {START:?}"))?;
            if let Some(url) = line.strip_prefix("compare page listening on ") {
                url.clone_into(&mut demo.page);
            }
        }
        Ok(demo)
    }

    /// Stops the demo (SIGTERM) and checks that it exits within [`STOP`], cleanly.
    pub fn stop(mut self) -> Outcome {
        self.terminate()
    }

    /// SIGTERM, then a bounded wait; kills a demo that outlives it.
    fn terminate(&mut self) -> Outcome {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).context("the demo's pid")?);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("expected the demo to exit 0; {status}")),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "expected the demo to stop within {STOP:?}; it was killed"
        ))
    }
}

impl Drop for Demo {
    /// A failed scenario must not leave the demo (and its variants) running; after `stop`,
    /// there is nothing left to do.
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}
