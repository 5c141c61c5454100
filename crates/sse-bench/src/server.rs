//! Servers under test: starting a variant or `limit` as a child process, and reading its
//! memory and CPU time from `/proc`.
//!
//! Every scenario gets a fresh process, so that one scenario's leftovers (history, TIME_WAIT
//! sockets on the same port, grown allocator arenas) never colour the next one's figures.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::client::Target;

/// How to start one server.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The name reported in tables (`limit`, `axum-stream-map`, ...).
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Arguments before the common flags (`limit` for the bench binary itself).
    pub prefix: Vec<String>,
    /// The flags every server gets.
    pub flags: Vec<String>,
    /// Where the server's stderr goes.
    pub log: PathBuf,
}

impl Launch {
    /// The same launch with flag `name` (given as `name value`, as the runner writes its
    /// flags) set to `value`: replaced where the flags have it, appended where they do not.
    /// The storm scenario uses it for `--retry-jitter`, and for `--port` to start a fresh
    /// process on the port of the one it stopped; the Redis scenarios for `--hub`,
    /// `--redis-url` and `--redis-prefix`.
    pub fn with_flag(&self, name: &str, value: &str) -> Self {
        let mut flags = self.flags.clone();
        match flags.iter().position(|f| f == name) {
            Some(at) if at + 1 < flags.len() => flags[at + 1] = value.to_owned(),
            _ => flags.extend([name.to_owned(), value.to_owned()]),
        }
        Self {
            flags,
            ..self.clone()
        }
    }
}

/// A running server: a child process, or an external one given by `--url` (and `--pid`).
pub struct Server {
    /// The child, when we started it (killed on drop).
    child: Option<Child>,
    /// The process to read `/proc` from.
    pub pid: Option<u32>,
    /// Where it listens.
    pub target: Target,
}

impl Server {
    /// Starts `launch` on a free port and waits for its `listening on http://ADDR` line
    /// (`https://` for a variant started with `--tls-cert`: the caller then gives the
    /// target the TLS configuration to reach it with).
    pub async fn start(launch: &Launch, token: Option<String>) -> io::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)?;
        let mut child = Command::new(&launch.program)
            .args(&launch.prefix)
            .args(&launch.flags)
            // Connect/disconnect logging at info level would cost the variants a log line
            // per client; the benchmark measures serving, not logging.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::NotFound {
                    " (build it first: cargo build --release -p <variant>, or see --bin-dir)"
                } else {
                    ""
                };
                io::Error::new(e.kind(), format!("{}: {e}{hint}", launch.program.display()))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                let line = line.trim();
                let addr = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"));
                if let Some(addr) = addr {
                    return addr
                        .parse::<SocketAddr>()
                        .map_err(|e| io::Error::other(format!("bad address {addr:?}: {e}")));
                }
            }
            Err(io::Error::other(format!(
                "{} exited before listening (see {})",
                launch.name,
                launch.log.display()
            )))
        })
        .await
        .map_err(|_| io::Error::other(format!("{} did not start within 20 s", launch.name)))??;
        // Keep draining stdout so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            target: Target::plain(addr, token),
        })
    }

    /// A server we did not start.
    pub fn external(target: Target, pid: Option<u32>) -> Self {
        Self {
            child: None,
            pid,
            target,
        }
    }

    /// Resident memory in bytes: `/proc/<pid>/status` `VmRSS`, or the server's own
    /// `process_resident_memory_bytes` when there is no pid to read.
    pub async fn rss(&self) -> Option<u64> {
        if let Some(pid) = self.pid {
            return status_bytes(pid, "VmRSS:");
        }
        let text = crate::client::get(&self.target, "/metrics").await.ok()?;
        crate::client::metric(&text, "process_resident_memory_bytes").map(|b| b as u64)
    }

    /// The most resident memory the process has had since it started, in bytes:
    /// `/proc/<pid>/status` `VmHWM` (the kernel's high-water mark, so that no sampling can
    /// miss a peak); `None` without a pid.
    pub fn rss_peak(&self) -> Option<u64> {
        status_bytes(self.pid?, "VmHWM:")
    }

    /// CPU time used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        cpu_secs_of(self.pid?)
    }

    /// The server's `/metrics` sample `name`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = crate::client::get(&self.target, "/metrics").await.ok()?;
        crate::client::metric(&text, name)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.target.addr.port()
    }

    /// Stops the server with SIGTERM (SIGKILL after 5 s); returns how long it took.
    pub async fn stop(mut self) -> Option<Duration> {
        let mut child = self.child.take()?;
        let started = std::time::Instant::now();
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(_) => Some(started.elapsed()),
            Err(_) => {
                let _ = child.kill().await;
                None
            }
        }
    }
}

/// A `/proc/<pid>/status` line of kilobytes (`VmRSS:`, `VmHWM:`), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, field).map(|kib| kib * 1024)
}

/// The value of `field` (`VmRSS:`) in the text of a `/proc/<pid>/status`, in KiB.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time process `pid` has used so far (user + system), in seconds, from
/// `/proc/<pid>/stat`: the servers' and the Redis scenarios' `redis-server`'s.
pub fn cpu_secs_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after `)`.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

/// Clock ticks per second for `/proc/<pid>/stat` (100 on every Linux we know of).
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A launch whose flags are `flags`.
    fn launch(flags: &[&str]) -> Launch {
        Launch {
            name: "x".into(),
            program: "x".into(),
            prefix: Vec::new(),
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            log: "x.log".into(),
        }
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(8192));
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
        // RSS first: the other tests' threads allocate meanwhile, and only the peak read
        // after it is sure to be at least as high.
        let now = status_bytes(std::process::id(), "VmRSS:").expect("this process's RSS");
        let own = status_bytes(std::process::id(), "VmHWM:").expect("this process's peak");
        assert!(
            own >= now,
            "the high-water mark is at least the current RSS"
        );
    }

    #[test]
    fn a_flag_is_replaced_where_it_is_and_appended_where_it_is_not() {
        let base = launch(&["--port", "0", "--retry-ms", "3000"]);
        assert_eq!(
            base.with_flag("--port", "4001").flags,
            ["--port", "4001", "--retry-ms", "3000"]
        );
        assert_eq!(
            base.with_flag("--retry-jitter", "0").flags,
            ["--port", "0", "--retry-ms", "3000", "--retry-jitter", "0"]
        );
        // A flag at the very end without a value is not taken for a value's place.
        assert_eq!(
            launch(&["--port"]).with_flag("--port", "1").flags,
            ["--port", "--port", "1"]
        );
    }
}
