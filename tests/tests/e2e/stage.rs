//! What every browser scenario works with: the [`Stage`] (the browser, the variant, the
//! servers a scenario started), a [`Reference`] subscriber connected straight to the server
//! to compare the page with, and the comparisons the scenarios share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use sse_conformance::Target;
use sse_conformance::client::{Events, StreamRequest};
use sse_conformance::harness::{Server, Variant};

use super::chrome::Browser;
use super::pane::{self, PaneView};
use super::{Context, Outcome, wait_for};

/// How any awaited change on the page may take, once the page is open.
pub const STEP: Duration = Duration::from_secs(10);
/// The ticker's event types.
pub const TICK_TYPES: [&str; 3] = ["message", "greeting", "update"];

/// What a scenario works with: the browser, the variant, and the servers it started.
pub struct Stage {
    /// The Chromium this trial drives.
    pub browser: Browser,
    /// The variant under test.
    pub variant: Variant,
    /// Stopped (and checked to stop in time) after the scenario, pass or fail.
    pub servers: Vec<Server>,
}

impl Stage {
    /// Starts the variant on `addr` with the test flags and `extra_flags`.
    pub fn serve(&mut self, extra_flags: &[&str], addr: SocketAddr) -> std::io::Result<Target> {
        let server = Server::start_with(self.variant, extra_flags, addr)?;
        let target = server.target.clone();
        self.servers.push(server);
        Ok(target)
    }

    /// Starts the variant on a free port.
    pub fn serve_anywhere(&mut self, extra_flags: &[&str]) -> Outcome<Target> {
        self.serve(extra_flags, SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("starting the server")
    }

    /// Starts a new run of the variant on the port `first` had, waiting for the old run's
    /// socket to let go of it.
    pub async fn restart_on_the_same_port(
        &mut self,
        first: &Target,
        flags: &[&str],
    ) -> Outcome<Target> {
        let addr = addr_of(first)?;
        wait_for(
            "the port to be free for the new run",
            STEP,
            async || match self.serve(flags, addr) {
                Ok(target) => Ok(Ok(target)),
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                    Ok(Err(error.to_string()))
                }
                Err(error) => Err(format!("starting the new run on {addr}: {error}")),
            },
        )
        .await
    }

    /// Stops every server started so far, each within the harness's shutdown bound.
    pub async fn stop_servers(&mut self) -> Outcome {
        for server in std::mem::take(&mut self.servers) {
            // `stop` blocks while the server winds down; keep the runtime (and with it the
            // WebDriver session) responsive meanwhile.
            tokio::task::spawn_blocking(move || server.stop())
                .await
                .context("stopping the server")??;
        }
        Ok(())
    }
}

/// The socket address of a target.
pub fn addr_of(target: &Target) -> Outcome<SocketAddr> {
    target
        .base
        .socket_addrs(|| None)
        .context("the server's address")?
        .first()
        .copied()
        .ok_or_else(|| format!("{} has no address", target.base))
}

/// Fails unless `cond` holds, with `expected` and what was seen.
pub fn ensure(cond: bool, expected: &str, seen: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(format!("expected {expected}; got {}", seen()))
    }
}

/// Every ticker event on the page carries its own id. The pane lists an event whose id
/// repeats the previous one without an id, so a row without one is a duplicate delivery.
pub fn expect_tick_rows_have_ids(view: &PaneView) -> Outcome {
    let bare: Vec<&pane::Row> = view
        .rows
        .iter()
        .filter(|r| TICK_TYPES.contains(&r.kind.as_str()) && r.id.is_empty())
        .collect();
    ensure(
        bare.is_empty(),
        "every message, greeting and update row to carry its own id (a row without one \
         repeats the previous id: a duplicate)",
        || format!("{bare:?} in {}", view.describe()),
    )
}

/// The page's ids, in order, are exactly the run of the reference's ids from the page's
/// first to its last: no gap, no duplicate, nothing the server did not send.
pub fn expect_same_run(page: &[&str], reference: &[String]) -> Outcome {
    let (Some(first), Some(last)) = (page.first(), page.last()) else {
        return Err("expected the page to list events with ids; it lists none".into());
    };
    let position = |id: &str| reference.iter().position(|r| r == id);
    let (Some(start), Some(end)) = (position(first), position(last)) else {
        return Err(format!(
            "expected the page's first and last ids ({first}, {last}) among the {} ids the \
             reference subscriber received ({:?} .. {:?})",
            reference.len(),
            reference.first(),
            reference.last()
        ));
    };
    let expected: Vec<&str> = reference[start..=end.max(start)]
        .iter()
        .map(String::as_str)
        .collect();
    if page == expected.as_slice() {
        return Ok(());
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in page {
        *counts.entry(id).or_default() += 1;
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|id| !counts.contains_key(id))
        .collect();
    let duplicated: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|id| counts.get(id).is_some_and(|n| *n > 1))
        .collect();
    let foreign: Vec<&str> = page
        .iter()
        .copied()
        .filter(|id| !expected.contains(id))
        .collect();
    Err(format!(
        "expected the page's ids to be the reference's {} ids from {first} to {last}, in \
         order; missing {missing:?}, duplicated {duplicated:?}, not from the reference \
         {foreign:?}, page order {page:?}",
        expected.len()
    ))
}

/// A subscriber connected straight to the server: what the server sent, to compare the
/// page with.
pub struct Reference {
    /// Its stream, read only when a scenario needs to know how far the server got.
    events: Events,
    /// The ids received so far, in order.
    pub ids: Vec<String>,
}

impl Reference {
    /// A reference reading `events`, whose opening frames the caller has read.
    pub fn new(events: Events) -> Reference {
        Reference {
            events,
            ids: Vec::new(),
        }
    }

    /// Opens a fresh stream on `target` and reads its welcome.
    pub async fn open(target: &Target) -> Outcome<Reference> {
        let mut events = Events::open(target, &StreamRequest::default())
            .await
            .context("opening the reference subscriber")?;
        events.welcome().await.context("the reference's welcome")?;
        Ok(Reference::new(events))
    }

    /// Reads events until `done(ids so far)` holds, at most `bound`.
    pub async fn read_until(
        &mut self,
        what: &str,
        bound: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Outcome {
        let deadline = tokio::time::Instant::now() + bound;
        while !done(&self.ids) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.events.next(left).await {
                // welcome and reset carry no id; the parser would repeat the previous one.
                Ok(Some(event)) if event.event == "welcome" || event.event == "reset" => {}
                Ok(Some(event)) => self.ids.push(event.id),
                Ok(None) => return Err(format!("expected {what}; the reference stream ended")),
                Err(problem) => {
                    return Err(format!(
                        "expected {what} within {bound:?}: {problem} (the reference has {} \
                         ids, last {:?})",
                        self.ids.len(),
                        self.ids.last()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads until the reference has received `id`.
    pub async fn read_through(&mut self, id: &str) -> Outcome {
        self.read_until(
            &format!("the reference subscriber to receive {id}"),
            STEP,
            |ids| ids.iter().any(|i| i == id),
        )
        .await
    }
}

/// The page is open and lists two ticks: two each of message, greeting and update, with ids.
pub fn shows_two_ticks(view: &PaneView) -> bool {
    view.state == "open"
        && TICK_TYPES.iter().all(|kind| {
            view.rows
                .iter()
                .filter(|r| r.kind == *kind && !r.id.is_empty())
                .count()
                >= 2
        })
}
