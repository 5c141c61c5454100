//! A real `redis-server` for the tests, started by the harness as its own child process.
//!
//! Each one lives in a temp dir of its own and listens on a unix socket there (no port to
//! collide on, nothing global); it is killed and its dir removed on drop. A test can kill it
//! hard (`SIGKILL`), start it again on the same socket, with its data (append-only file,
//! `fsync` on every write) or without, roll it back to a snapshot, flush it, or cut every
//! client connection, which is how the shared-log checks make Redis fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer `PING` after starting.
const START_BOUND: Duration = Duration::from_secs(10);

/// Whether the data survives a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No persistence at all: a restart comes back empty.
    Ephemeral,
    /// An append-only file written and `fsync`ed on every command.
    Durable,
}

/// A running (or, between [`RedisServer::kill`] and [`RedisServer::start_again`], stopped)
/// `redis-server`.
pub struct RedisServer {
    /// The process, while it runs.
    child: Option<Child>,
    /// The temp dir: socket, data files, log.
    dir: PathBuf,
    /// How it persists.
    durability: Durability,
}

impl RedisServer {
    /// Whether `redis-server` is on the `PATH` (`apt-get install redis-server`).
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts a server in a fresh temp dir.
    pub fn start(durability: Durability) -> Result<RedisServer, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sse-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut server = RedisServer {
            child: None,
            dir,
            durability,
        };
        server.start_again()?;
        Ok(server)
    }

    /// The URL instances connect with.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The unix socket it listens on.
    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Starts the server again on the same socket and data dir (after [`RedisServer::kill`]):
    /// a durable one comes back with its data, an ephemeral one empty.
    pub fn start_again(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--daemonize")
            .arg("no")
            .arg("--save")
            .arg("");
        match self.durability {
            Durability::Ephemeral => command.args(["--appendonly", "no"]),
            Durability::Durable => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting redis-server: {e}"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls `PING` until the server answers, failing early if it exited.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "redis-server exited at start ({status}): {}",
                    self.log()
                ));
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not answer within {START_BOUND:?}: {}",
            self.log()
        ))
    }

    /// Whether the server answers `PING` now.
    fn ping(&self) -> bool {
        use std::io::{Read as _, Write as _};
        let Ok(mut socket) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        socket.write_all(b"PING\r\n").is_ok()
            && socket.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Kills the server with `SIGKILL`: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Removes every data file, so that the next start comes back empty.
    pub fn wipe(&self) -> Result<(), String> {
        for entry in std::fs::read_dir(&self.dir).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("appendonly") || name.ends_with(".rdb") {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(|e| format!("removing {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Runs one command and returns its reply.
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        name: &str,
        args: &[&str],
    ) -> Result<T, String> {
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("connecting to the test Redis: {e}"))?;
        let mut command = redis::cmd(name);
        for arg in args {
            command.arg(*arg);
        }
        command
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("{name} {args:?}: {e}"))
    }

    /// The tail of the server's log, for failure messages.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let start = (log.len().saturating_sub(1500)..log.len())
            .find(|&at| log.is_char_boundary(at))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
