//! A real nginx in front of a server under test, configured with `deploy/nginx.conf`.
//!
//! The harness writes a main configuration of its own into a temp dir (pid file, logs and
//! temp paths there, in the foreground, one process) that includes the shipped
//! `deploy/nginx.conf` with only its upstream address and `listen` port changed, starts
//! nginx as a child process on a free port, waits until it accepts, and stops it on drop.
//! Nothing is global and nothing is left running.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts nginx.
const NGINX: &str = "/usr/sbin/nginx";
/// The upstream and port `deploy/nginx.conf` ships with, which the harness replaces.
const SHIPPED_UPSTREAM: &str = "server 127.0.0.1:3000;";
const SHIPPED_LISTEN: &str = "listen 8080;";
/// How long nginx may take to start accepting.
const START_BOUND: Duration = Duration::from_secs(10);

/// An nginx process proxying to one upstream.
pub struct Nginx {
    /// Where nginx listens.
    pub addr: SocketAddr,
    /// The nginx process.
    child: Child,
    /// The temp dir holding its configuration, pid file and logs; removed on drop.
    dir: PathBuf,
}

impl Nginx {
    /// Whether nginx is installed here (`apt-get install nginx`).
    pub fn available() -> bool {
        Path::new(NGINX).exists()
    }

    /// Starts nginx on a free 127.0.0.1 port in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Nginx, String> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("sse-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let site = shipped_config()?
            .replace(SHIPPED_UPSTREAM, &format!("server {upstream};"))
            .replace(SHIPPED_LISTEN, &format!("listen 127.0.0.1:{port};"));
        write(&dir.join("sse.conf"), &site)?;
        write(&dir.join("nginx.conf"), &main_config(&dir))?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {NGINX}: {e}"))?;
        let mut nginx = Nginx {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        nginx.wait_accepting()?;
        Ok(nginx)
    }

    /// Polls nginx's port until it accepts, failing early if nginx exited.
    fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "nginx exited at start ({status}): {}",
                    self.error_log()
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "nginx did not accept on {} within {START_BOUND:?}: {}",
            self.addr,
            self.error_log()
        ))
    }

    /// The tail of nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let start = (log.len().saturating_sub(2000)..log.len())
            .find(|&at| log.is_char_boundary(at))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `deploy/nginx.conf`, checked to still have the two lines the harness replaces.
fn shipped_config() -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf");
    let config =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    for line in [SHIPPED_UPSTREAM, SHIPPED_LISTEN] {
        if !config.contains(line) {
            return Err(format!("{} no longer contains {line:?}", path.display()));
        }
    }
    Ok(config)
}

/// A main configuration that keeps everything in `dir` and runs in the foreground, as one
/// process, so that the test owns it completely.
fn main_config(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log {dir}/access.log;\n  client_body_temp_path {dir}/body;\n  \
         proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
         uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  include {dir}/sse.conf;\n}}\n"
    )
}

/// A port nobody listens on now (bound and released; nginx takes it right after).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("a free port: {e}"))
}

/// Writes `text` to `path`.
fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
