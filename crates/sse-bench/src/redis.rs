//! The Redis scenarios' own `redis-server`, the `--hub redis` instances they start on it, and
//! `redis-benchmark`'s XADD rate on it: the reference that the publish rate through
//! `--hub redis` is held against.
//!
//! Each `redis-server` is a child process of the bench in a temp dir of its own, listening on
//! a unix socket there and on no TCP port, with no persistence: nothing collides with a Redis
//! the machine may run, nothing is written but the log, and nothing outlives the scenario,
//! which stops it, or, should the scenario end early, drops it (it is killed on drop, and its
//! dir removed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use crate::server::{Launch, Server, cpu_secs_of};

/// What a Redis scenario reports when there is no `redis-server` to start.
pub const NOT_INSTALLED: &str = "not run: redis-server is not installed";

/// How long `redis-server` may take to answer `PING` after starting.
const START_BOUND: Duration = Duration::from_secs(10);

/// How long one `redis-benchmark` run may take: 200,000 XADDs take about 2 s here.
const BENCHMARK_BOUND: Duration = Duration::from_secs(300);

/// A running `redis-server` of the bench's own.
pub struct RedisServer {
    /// The process (killed on drop); `None` once stopped.
    child: Option<Child>,
    /// Its temp dir: the socket and the log.
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one in a fresh temp dir and waits until it answers `PING`; [`NOT_INSTALLED`]
    /// when there is no `redis-server` on the `PATH`.
    pub async fn start() -> Result<Self, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sse-bench-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let spawned = Command::new("redis-server")
            .args(server_args(&dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(if e.kind() == std::io::ErrorKind::NotFound {
                    NOT_INSTALLED.to_owned()
                } else {
                    format!("cannot start redis-server: {e}")
                });
            }
        };
        let mut server = Self {
            child: Some(child),
            dir,
        };
        // On failure the server is dropped here, which kills it and removes its dir.
        server.wait_ready().await?;
        Ok(server)
    }

    /// The unix socket it listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The `--redis-url` of the instances that use it.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// CPU time it has used so far, in seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        cpu_secs_of(self.child.as_ref()?.id()?)
    }

    /// `launch` as an instance of the shared log `prefix` in this server.
    pub fn instance(&self, launch: &Launch, prefix: &str) -> Launch {
        launch
            .with_flag("--hub", "redis")
            .with_flag("--redis-url", &self.url())
            .with_flag("--redis-prefix", prefix)
    }

    /// Starts `count` instances of `launch` on the shared log `prefix`, each on a free port
    /// with its share of this machine's cores (`--workers`, see [`workers_each`]), their
    /// `/publish` wanting `token` if there is one; stops those started if one fails.
    pub async fn instances(
        &self,
        launch: &Launch,
        prefix: &str,
        count: usize,
        token: Option<String>,
    ) -> Result<Vec<Server>, String> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = workers_each(cores, count).to_string();
        let launch = self
            .instance(launch, prefix)
            .with_flag("--workers", &workers);
        let mut started = Vec::with_capacity(count);
        for i in 0..count {
            match Server::start(&launch, token.clone()).await {
                Ok(server) => started.push(server),
                Err(e) => {
                    stop_all(started).await;
                    return Err(format!("instance {} on Redis: {e}", i + 1));
                }
            }
        }
        Ok(started)
    }

    /// Kills it and waits until it has exited (its dir goes when it is dropped, right after).
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }

    /// Polls `PING` until the server answers, failing early if it exited.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_BOUND {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "redis-server exited at start ({status}): {}",
                    self.log_tail()
                ));
            }
            if ping(&self.socket()).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "redis-server did not answer within {START_BOUND:?}: {}",
            self.log_tail()
        ))
    }

    /// The end of its log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    }

    /// `redis-benchmark`'s XADD rate on this server: `clients` connections, each with one
    /// request in flight, `requests` in all, entries of `payload` bytes.
    pub async fn xadd_rate(
        &self,
        requests: usize,
        clients: usize,
        payload: usize,
    ) -> Result<Xadd, String> {
        let output = Command::new("redis-benchmark")
            .args(xadd_args(&self.socket(), requests, clients, payload))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(BENCHMARK_BOUND, output)
            .await
            .map_err(|_| format!("redis-benchmark took over {BENCHMARK_BOUND:?}"))?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    "redis-benchmark is not installed".to_owned()
                } else {
                    format!("cannot run redis-benchmark: {e}")
                }
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let rate = parse_benchmark_csv(&text).map_err(|e| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            format!("redis-benchmark: {e} ({})", stderr.trim())
        })?;
        Ok(Xadd {
            clients,
            requests,
            ..rate
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `--workers` of each of `count` instances on `cores` cores: an equal share, at least
/// one.
///
/// Why not each its default of one per core: two instances that both take every core of a
/// 2-core machine run four serving threads on two cores, and the fan-out through Redis lost
/// a quarter of its rate to that alone (0.67–0.78x of the in-memory hub's with the default,
/// 0.85–0.97x with a share each, `--scenarios redis-fanout --variants axum`). Instances
/// that share a host are sized to it in a deployment too (one per core, or a container's
/// CPU limit), and the in-memory hub's one instance gets every core, so both halves of a
/// comparison serve on the same cores.
pub fn workers_each(cores: usize, count: usize) -> usize {
    (cores / count.max(1)).max(1)
}

/// Stops every server in `servers`, one after another.
pub async fn stop_all(servers: Vec<Server>) {
    for server in servers {
        server.stop().await;
    }
}

/// Why a Redis scenario cannot run against the server `launch` starts, if it cannot: it
/// starts instances of its own, so not without a launch (`--url`), and `limit` has only
/// its in-memory hub.
pub fn unfit(launch: Option<&Launch>) -> Result<&Launch, String> {
    match launch {
        None => Err("not run: it starts instances of its own, so not with --url".into()),
        Some(launch) if launch.name == "limit" => {
            Err("not run: limit has no Redis hub (--hub)".into())
        }
        Some(launch) => Ok(launch),
    }
}

/// `redis-server`'s command line: a unix socket in `dir` and no TCP port, in the foreground
/// (so that the bench's child is the server itself), with no persistence.
fn server_args(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut flag = |name: &str, value: &std::ffi::OsStr| {
        args.push(name.into());
        args.push(value.to_owned());
    };
    flag("--port", "0".as_ref());
    flag("--unixsocket", dir.join("redis.sock").as_os_str());
    flag("--unixsocketperm", "700".as_ref());
    flag("--dir", dir.as_os_str());
    flag("--logfile", dir.join("redis.log").as_os_str());
    flag("--daemonize", "no".as_ref());
    flag("--save", "".as_ref());
    flag("--appendonly", "no".as_ref());
    args
}

/// `redis-benchmark`'s command line for the XADD reference.
///
/// Why these arguments: `-s`, the same unix socket the instances use, so that both pay for
/// the same transport; `-c clients` with `-P 1`, as many connections as the publish
/// scenario has HTTP publishers, each with one request in flight as each publisher has;
/// `-n requests` (200,000 by default: a couple of seconds here, long enough to be steady).
/// The command is spelled out, not `-t xadd`: redis-benchmark 7.0 (Debian's) has no xadd
/// test and silently runs nothing for `-t xadd`; it is the one that later versions' xadd
/// test sends (`XADD <key> * myfield <data>`), with data of `payload` bytes, the size of
/// the events' data. `--csv` because its one result row is plainer to read than `-q`'s
/// progress lines.
fn xadd_args(socket: &Path, requests: usize, clients: usize, payload: usize) -> Vec<String> {
    let mut args: Vec<String> = vec!["-s".into(), socket.display().to_string()];
    args.extend(["-n".into(), requests.to_string()]);
    args.extend(["-c".into(), clients.to_string()]);
    args.extend(["-P", "1", "--csv", "XADD", "bench-xadd", "*", "myfield"].map(String::from));
    args.push("x".repeat(payload.max(1)));
    args
}

/// Whether something at `socket` answers `PING` with `PONG` within half a second.
async fn ping(socket: &Path) -> bool {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), exchange).await,
        Ok(Ok(true))
    )
}

/// `redis-benchmark`'s XADD rate on the bench's Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Xadd {
    /// XADDs per second.
    pub requests_per_sec: f64,
    /// Median latency (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency (ms).
    pub p99_ms: Option<f64>,
    /// Connections it used (`-c`).
    pub clients: usize,
    /// XADDs it sent (`-n`).
    pub requests: usize,
}

/// Reads `redis-benchmark --csv`'s output: a header row naming the columns, then one row
/// per test; the first test's `rps` (and latencies, where given) is the rate.
fn parse_benchmark_csv(text: &str) -> Result<Xadd, String> {
    let mut rows = text.lines().map(csv_fields).filter(|row| !row.is_empty());
    let header = rows
        .find(|row| row.first().is_some_and(|f| f == "test"))
        .ok_or_else(|| format!("no CSV header in {:?}", text.trim()))?;
    let row = rows
        .next()
        .ok_or("no result row: the command was not run".to_owned())?;
    let column = |name: &str| -> Option<f64> {
        let at = header.iter().position(|h| h == name)?;
        row.get(at)?.parse().ok()
    };
    let requests_per_sec = column("rps")
        .filter(|rps: &f64| rps.is_finite() && *rps > 0.0)
        .ok_or_else(|| format!("no rate in {row:?}"))?;
    Ok(Xadd {
        requests_per_sec,
        p50_ms: column("p50_latency_ms"),
        p99_ms: column("p99_latency_ms"),
        clients: 0,
        requests: 0,
    })
}

/// The fields of one CSV line: `"a","b c",d`, with `""` for a quote inside quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let line = line.trim();
    if line.is_empty() {
        return Vec::new();
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-benchmark 7.0.15 printed for the reference here (-n 50000 -c 32 -P 1).
    const CSV: &str = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
        \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
        \"XADD bench-xadd * myfield xxx\",\"104166.67\",\"0.196\",\"0.048\",\"0.183\",\"0.327\",\
        \"0.375\",\"0.943\"\n";

    #[test]
    fn the_rate_and_latencies_are_read_by_column_name() {
        let xadd = parse_benchmark_csv(CSV).expect("a rate");
        assert_eq!(xadd.requests_per_sec, 104_166.67);
        assert_eq!(xadd.p50_ms, Some(0.183));
        assert_eq!(xadd.p99_ms, Some(0.375));
    }

    #[test]
    fn a_header_without_a_row_is_a_command_that_did_not_run() {
        // What `-t xadd` gives on redis-benchmark 7.0: the header and nothing else.
        let header = CSV.lines().next().expect("a header");
        let error = parse_benchmark_csv(header).expect_err("no rate");
        assert!(error.contains("not run"), "{error}");
        assert!(parse_benchmark_csv("").is_err());
        let zero = CSV.replace("104166.67", "0.00");
        assert!(
            parse_benchmark_csv(&zero).is_err(),
            "a zero rate is no rate"
        );
    }

    #[test]
    fn csv_fields_keep_commas_and_quotes_inside_quotes() {
        assert_eq!(
            csv_fields(r#""a,b","say ""hi""",3"#),
            ["a,b", r#"say "hi""#, "3"]
        );
        assert_eq!(csv_fields("  "), Vec::<String>::new());
    }

    #[test]
    fn the_reference_runs_xadd_on_the_socket_without_pipelining() {
        let args = xadd_args(Path::new("/tmp/r/redis.sock"), 200_000, 32, 4);
        assert_eq!(
            args.join(" "),
            "-s /tmp/r/redis.sock -n 200000 -c 32 -P 1 --csv XADD bench-xadd * myfield xxxx"
        );
    }

    #[test]
    fn instances_share_the_cores_and_each_gets_one_at_least() {
        assert_eq!(workers_each(2, 1), 2, "one instance: every core");
        assert_eq!(workers_each(2, 2), 1);
        assert_eq!(workers_each(8, 3), 2);
        assert_eq!(workers_each(2, 4), 1, "more instances than cores");
        assert_eq!(workers_each(4, 0), 4);
    }

    #[test]
    fn redis_scenarios_need_a_launch_with_a_redis_hub() {
        let launch = |name: &str| Launch {
            name: name.into(),
            program: "x".into(),
            prefix: Vec::new(),
            flags: vec!["--port".into(), "0".into()],
            log: "x.log".into(),
        };
        assert!(unfit(None).is_err());
        assert!(unfit(Some(&launch("limit"))).is_err());
        let axum = launch("axum-stream-map");
        assert_eq!(unfit(Some(&axum)).map(|l| l.name.clone()), Ok(axum.name));
    }
}
