//! The variants as child processes of the demo, each owned by a supervisor task of its own.
//!
//! The supervisor is the only code that touches its child: it starts it (this binary again,
//! with [`crate::CHILD_VAR`] naming the variant), restarts it on the same port when the
//! restart fault asks, stops it at the end, and tells the launcher if it dies by itself. So a
//! restart the demo asked for is never mistaken for a crash, and a crash is never missed.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{self, Child};
use tokio::sync::{mpsc, oneshot};

/// How long a variant may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a variant may take to exit after SIGTERM (the contract says 5 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(6);
/// How often a restart tries to bind the old port, which the old run may still hold for a
/// moment after it exits, and how long it waits between tries.
const RESTART_TRIES: u32 = 20;
/// See [`RESTART_TRIES`].
const RESTART_PAUSE: Duration = Duration::from_millis(250);

/// What every variant is started with.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The address to listen on.
    pub host: IpAddr,
    /// `--allowed-origins`: the page's origins.
    pub origins: String,
    /// The flags every variant gets (the hub's, then the user's).
    pub flags: Vec<String>,
}

/// A running variant, as the rest of the demo sees it.
#[derive(Debug)]
pub struct Variant {
    /// The crate name, which the variant also gives in `welcome`.
    pub name: &'static str,
    /// Its base URL, from its `listening on` line (`https://` with `--tls`).
    pub url: String,
    /// Where it listens (the same across restarts).
    pub addr: SocketAddr,
    /// Its supervisor's mailbox.
    commands: mpsc::Sender<Ask>,
}

/// What a restart took.
#[derive(Debug, Clone)]
pub struct Restarted {
    /// From SIGTERM until the old run exited.
    pub stopped: Duration,
    /// How the old run exited.
    pub status: String,
    /// From SIGTERM until the new run printed `listening on`.
    pub listening: Duration,
}

/// What a supervisor can be asked.
#[derive(Debug)]
enum Ask {
    /// Stop the child and start a new run on the same port.
    Restart(oneshot::Sender<std::io::Result<Restarted>>),
    /// Stop the child for good.
    Stop(oneshot::Sender<()>),
}

/// A variant that exited without being asked: its name and status.
pub type Died = (&'static str, String);

impl Variant {
    /// Starts `name` on `port` (0: any free one) under a supervisor, which reports on
    /// `died` if the variant exits by itself.
    pub async fn start(
        name: &'static str,
        port: u16,
        recipe: Recipe,
        died: mpsc::Sender<Died>,
    ) -> std::io::Result<(Variant, u32)> {
        let (child, url, addr) = spawn(name, &recipe, port).await?;
        let pid = child.id().unwrap_or(0);
        let (commands, mailbox) = mpsc::channel(4);
        tokio::spawn(supervise(
            Supervisor {
                name,
                recipe,
                port: addr.port(),
                died,
            },
            child,
            mailbox,
        ));
        Ok((
            Variant {
                name,
                url,
                addr,
                commands,
            },
            pid,
        ))
    }

    /// Stops the variant (SIGTERM) and starts a new run on the same port.
    pub async fn restart(&self) -> std::io::Result<Restarted> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Ask::Restart(reply))
            .await
            .map_err(|_| std::io::Error::other(format!("{} is not running", self.name)))?;
        answer
            .await
            .map_err(|_| std::io::Error::other(format!("{} stopped meanwhile", self.name)))?
    }

    /// Stops the variant for good and waits until it has exited.
    pub async fn stop(&self) {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Ask::Stop(reply)).await.is_ok() {
            let _ = answer.await;
        }
    }
}

/// What a supervisor knows besides its child.
struct Supervisor {
    /// The variant's name.
    name: &'static str,
    /// How to start it again.
    recipe: Recipe,
    /// The port it keeps across restarts.
    port: u16,
    /// Where to report a death.
    died: mpsc::Sender<Died>,
}

/// Owns one child until it is stopped or dies.
async fn supervise(supervisor: Supervisor, mut child: Child, mut mailbox: mpsc::Receiver<Ask>) {
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                let _ = supervisor.died.send((supervisor.name, status)).await;
                return;
            }
            command = mailbox.recv() => match command {
                Some(Ask::Restart(reply)) => {
                    let outcome = restart(&supervisor, &mut child).await;
                    let failed = outcome.is_err();
                    let _ = reply.send(outcome);
                    if failed {
                        let status = "its restart failed".to_owned();
                        let _ = supervisor.died.send((supervisor.name, status)).await;
                        return;
                    }
                }
                Some(Ask::Stop(reply)) => {
                    let status = stop(supervisor.name, &mut child).await;
                    say!("{} stopped ({status})", supervisor.name);
                    let _ = reply.send(());
                    return;
                }
                // The demo itself is going: `kill_on_drop` ends the child with this task.
                None => return,
            },
        }
    }
}

/// Stops `child` and puts a new run on the same port in its place.
async fn restart(supervisor: &Supervisor, child: &mut Child) -> std::io::Result<Restarted> {
    let began = Instant::now();
    let status = stop(supervisor.name, child).await;
    let stopped = began.elapsed();
    let mut tries = 0;
    let (next, _, _) = loop {
        tries += 1;
        match spawn(supervisor.name, &supervisor.recipe, supervisor.port).await {
            Ok(started) => break started,
            // The old run's socket may hold the port a moment longer.
            Err(_) if tries < RESTART_TRIES => tokio::time::sleep(RESTART_PAUSE).await,
            Err(error) => return Err(error),
        }
    };
    let pid = next.id().unwrap_or(0);
    *child = next;
    say!("{} restarted (pid {pid})", supervisor.name);
    Ok(Restarted {
        stopped,
        status,
        listening: began.elapsed(),
    })
}

/// Starts one variant and reads its `listening on URL` line; returns the child, the URL and
/// the address in it.
async fn spawn(
    name: &'static str,
    recipe: &Recipe,
    port: u16,
) -> std::io::Result<(Child, String, SocketAddr)> {
    let mut child = process::Command::new(std::env::current_exe()?)
        .env(crate::CHILD_VAR, name)
        .arg("--host")
        .arg(recipe.host.to_string())
        .arg("--port")
        .arg(port.to_string())
        .arg("--allowed-origins")
        .arg(&recipe.origins)
        .args(&recipe.flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut line = String::new();
    let read =
        tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
    let url = line.trim().strip_prefix("listening on ").map(str::to_owned);
    let addr = url
        .as_deref()
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, addr)| addr.parse().ok());
    match (read, url, addr) {
        (Ok(Ok(_)), Some(url), Some(addr)) => Ok((child, url, addr)),
        _ => {
            let _ = child.kill().await;
            Err(std::io::Error::other(format!(
                "no `listening on` line (got {line:?})"
            )))
        }
    }
}

/// Sends SIGTERM and waits for the exit, killing a child that outlives [`STOP_TIMEOUT`];
/// returns how it exited.
async fn stop(name: &str, child: &mut Child) -> String {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        _ => {
            eprintln!("{name} did not stop within {STOP_TIMEOUT:?}; killing it");
            let _ = child.kill().await;
            "killed".to_owned()
        }
    }
}
