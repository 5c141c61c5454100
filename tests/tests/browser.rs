//! Browser end-to-end tests: the shared client (`shared-client/`) in headless Chromium
//! against every registered variant (`variants/mod.rs`), each scenario a trial named
//! `<variant>::<scenario>`.
//!
//! The trials are marked ignored, so a plain `cargo test` lists them without needing a
//! browser; `just e2e` (`cargo test -p sse-conformance --test browser -- --include-ignored`)
//! runs them. Each trial gets its own chromedriver and Chromium (see `e2e::chrome`) and its
//! own in-process server(s) started through `sse_conformance::harness`, and what the page
//! shows is compared with what the server sent, where that is known, as seen by a plain
//! subscriber (`client::Events`). A failing trial leaves a screenshot in
//! `target/e2e/<variant>-<scenario>-failed.png`; the page scenario always writes
//! `target/e2e/<variant>.png`.

mod e2e;
mod variants;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use sse_conformance::Target;
use sse_conformance::client::{Events, StreamRequest};
use sse_conformance::harness::{Server, TOKEN, Variant};

use e2e::chrome::Browser;
use e2e::pages::{CROSS_ORIGIN_PAGE, CrossOriginReport, StaticPage};
use e2e::pane::{self, PaneView};
use e2e::proxy::{self, Proxy};
use e2e::{Context, Outcome, artifacts_dir, wait_for};

/// The `retry:` the servers send when a scenario needs the browser to reconnect: short, so
/// that reconnects cost a fraction of a second.
const RETRY_MS: &str = "300";
/// How long a freshly opened page may take to connect and list a tick's worth of events
/// (the test servers tick every 400 ms).
const PAGE_READY: Duration = Duration::from_secs(15);
/// How long any other awaited change on the page may take.
const STEP: Duration = Duration::from_secs(10);
/// The ticker's event types.
const TICK_TYPES: [&str; 3] = ["message", "greeting", "update"];

/// How long each trial took, for the table printed after the run.
static TIMINGS: Mutex<Vec<(String, Duration, bool)>> = Mutex::new(Vec::new());

/// One browser scenario, run against each variant.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// The page loads, opens the stream and lists the ticker's events; no console errors.
    Page,
    /// An event published with the page's form reaches that page and a second one.
    Publish,
    /// Every connection is cut mid-stream; the page resumes with no gap and no duplicate.
    NetworkCut,
    /// The server restarts on the same port; the page shows the `foreign` reset, goes on.
    Restart,
    /// `withCredentials` streams work from an allowed origin and fail from another.
    CrossOrigin,
}

impl Scenario {
    /// Every scenario, in the order they run.
    const ALL: [Scenario; 5] = [
        Scenario::Page,
        Scenario::Publish,
        Scenario::NetworkCut,
        Scenario::Restart,
        Scenario::CrossOrigin,
    ];

    /// The trial name's second half, and the failure screenshot's suffix.
    fn name(self) -> &'static str {
        match self {
            Scenario::Page => "page_opens_and_lists_tick_events",
            Scenario::Publish => "form_publish_reaches_both_pages",
            Scenario::NetworkCut => "network_cut_resumes_without_gap_or_duplicate",
            Scenario::Restart => "server_restart_shows_foreign_reset",
            Scenario::CrossOrigin => "cross_origin_with_credentials",
        }
    }

    /// Runs the scenario on `stage`.
    async fn run(self, stage: &mut Stage) -> Outcome {
        match self {
            Scenario::Page => page_opens_and_lists_tick_events(stage).await,
            Scenario::Publish => form_publish_reaches_both_pages(stage).await,
            Scenario::NetworkCut => network_cut_resumes(stage).await,
            Scenario::Restart => server_restart_shows_foreign_reset(stage).await,
            Scenario::CrossOrigin => cross_origin_with_credentials(stage).await,
        }
    }
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One trial at a time unless asked otherwise: each runs a Chromium and a server, and
    // the time bounds assume they do not fight over a small machine's cores.
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let trials = variants::VARIANTS
        .iter()
        .copied()
        .flat_map(|variant| {
            Scenario::ALL.map(move |scenario| {
                Trial::test(
                    format!("{}::{}", variant.name, scenario.name()),
                    move || trial(variant, scenario),
                )
                // Ignored by default: a plain `cargo test` must not need a browser.
                .with_ignored_flag(true)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    print_timings();
    conclusion.exit_code()
}

/// Runs one scenario against one variant on a runtime of its own, and notes its time.
fn trial(variant: Variant, scenario: Scenario) -> Result<(), Failed> {
    let started = Instant::now();
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")
        .and_then(|runtime| runtime.block_on(staged(variant, scenario)));
    let mut timings = TIMINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    timings.push((
        format!("{}::{}", variant.name, scenario.name()),
        started.elapsed(),
        outcome.is_ok(),
    ));
    outcome.map_err(Failed::from)
}

/// Prints how long each trial that ran took.
fn print_timings() {
    let timings = TIMINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if timings.is_empty() {
        return;
    }
    println!("browser trial times:");
    for (name, took, ok) in timings.iter() {
        let verdict = if *ok { "ok" } else { "FAILED" };
        println!("  {:>6.1} s  {verdict:<6} {name}", took.as_secs_f64());
    }
}

/// Sets up the browser, runs the scenario, keeps a screenshot if it failed, tears down.
async fn staged(variant: Variant, scenario: Scenario) -> Outcome {
    let failed_shot =
        artifacts_dir()?.join(format!("{}-{}-failed.png", variant.name, scenario.name()));
    // A screenshot left by an earlier failed run would misreport this one.
    let _ = std::fs::remove_file(&failed_shot);
    let mut stage = Stage {
        browser: Browser::start().await?,
        variant,
        servers: Vec::new(),
    };
    let mut outcome = scenario.run(&mut stage).await;
    if let Err(problem) = &mut outcome {
        // Taken before the servers stop, so that it shows the page as the check saw it.
        match stage.browser.screenshot(&failed_shot).await {
            Ok(()) => problem.push_str(&format!("\nscreenshot: {}", failed_shot.display())),
            Err(error) => problem.push_str(&format!("\n(no screenshot: {error})")),
        }
    }
    let stopped = stage.stop_servers().await;
    let finished = stage.browser.finish().await;
    outcome.and(stopped).and(finished)
}

/// What a scenario works with: the browser, the variant, and the servers it started.
struct Stage {
    browser: Browser,
    variant: Variant,
    /// Stopped (and checked to stop in time) after the scenario, pass or fail.
    servers: Vec<Server>,
}

impl Stage {
    /// Starts the variant on `addr` with the test flags and `extra_flags`.
    fn serve(&mut self, extra_flags: &[&str], addr: SocketAddr) -> std::io::Result<Target> {
        let server = Server::start_with(self.variant, extra_flags, addr)?;
        let target = server.target.clone();
        self.servers.push(server);
        Ok(target)
    }

    /// Starts the variant on a free port.
    fn serve_anywhere(&mut self, extra_flags: &[&str]) -> Outcome<Target> {
        self.serve(extra_flags, SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("starting the server")
    }

    /// Stops every server started so far, each within the harness's shutdown bound.
    async fn stop_servers(&mut self) -> Outcome {
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
fn addr_of(target: &Target) -> Outcome<SocketAddr> {
    target
        .base
        .socket_addrs(|| None)
        .context("the server's address")?
        .first()
        .copied()
        .ok_or_else(|| format!("{} has no address", target.base))
}

/// Fails unless `cond` holds, with `expected` and what was seen.
fn ensure(cond: bool, expected: &str, seen: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(format!("expected {expected}; got {}", seen()))
    }
}

/// Every ticker event on the page carries its own id. The pane lists an event whose id
/// repeats the previous one without an id, so a row without one is a duplicate delivery.
fn expect_tick_rows_have_ids(view: &PaneView) -> Outcome {
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
fn expect_same_run(page: &[&str], reference: &[String]) -> Outcome {
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
struct Reference {
    /// Its stream, read only when a scenario needs to know how far the server got.
    events: Events,
    /// The ids received so far, in order.
    ids: Vec<String>,
}

impl Reference {
    /// Reads events until `done(ids so far)` holds, at most `bound`.
    async fn read_until(
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
    async fn read_through(&mut self, id: &str) -> Outcome {
        self.read_until(
            &format!("the reference subscriber to receive {id}"),
            STEP,
            |ids| ids.iter().any(|i| i == id),
        )
        .await
    }
}

/// The page is open and lists two ticks: two each of message, greeting and update, with ids.
fn shows_two_ticks(view: &PaneView) -> bool {
    view.state == "open"
        && TICK_TYPES.iter().all(|kind| {
            view.rows
                .iter()
                .filter(|r| r.kind == *kind && !r.id.is_empty())
                .count()
                >= 2
        })
}

/// Scenario 1: the page at `/` opens, names the server, lists the ticker's events with their
/// ids, draws `update` from its JSON, and logs no console error. Writes the screenshot.
async fn page_opens_and_lists_tick_events(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&[])?;
    let browser = &stage.browser;
    browser.open(target.base.as_str()).await?;
    let view = pane::wait_until(
        browser,
        "the pane open, listing two ticks' messages, greetings and updates with ids",
        PAGE_READY,
        shows_two_ticks,
    )
    .await?;
    let shot = artifacts_dir()?.join(format!("{}.png", stage.variant.name));
    browser.screenshot(&shot).await?;

    ensure(
        view.server == stage.variant.name,
        &format!("the pane to name the server {:?}", stage.variant.name),
        || view.describe(),
    )?;
    ensure(
        view.rows
            .first()
            .is_some_and(|r| r.kind == "welcome" && r.id.is_empty()),
        "the first row to be the welcome, without an id",
        || view.describe(),
    )?;
    ensure(
        view.ids().last() == Some(&view.last_id.as_str()),
        "the `last id` field to show the newest listed id",
        || view.describe(),
    )?;
    expect_tick_rows_have_ids(&view)?;
    for kind in TICK_TYPES {
        let row = view.first_of(kind).ok_or_else(|| view.describe())?;
        ensure(
            !row.data.trim().is_empty(),
            &format!("the {kind} row to show its data"),
            || format!("{row:?}"),
        )?;
    }
    // `update` is drawn from its JSON: "value N · ok · D ms late" and a bar N% wide.
    for update in view.rows.iter().filter(|r| r.kind == "update") {
        let value = update
            .data
            .strip_prefix("value ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<f64>().ok());
        ensure(
            !update.unparsed
                && value.is_some_and(|v| (0.0..=100.0).contains(&v))
                && update.data.contains(" · ok · ")
                && update.data.ends_with(" ms late"),
            "each update rendered from its JSON as `value N · ok · D ms late`",
            || format!("{update:?}"),
        )?;
        let width = value.map(|v| format!("{v}%"));
        ensure(
            update.bar.is_some() && update.bar == width,
            "each update's bar as wide as its value",
            || format!("bar {:?} for value {value:?}", update.bar),
        )?;
    }
    browser.expect_no_console_errors(false).await
}

/// Scenario 2: an event published through one page's form shows on that page and on a
/// second page open at the same time, with the id the server returned, as plain text.
async fn form_publish_reaches_both_pages(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&[])?;
    let browser = &stage.browser;
    let url = target.base.as_str();
    browser.open(url).await?;
    let open = |view: &PaneView| view.state == "open" && !view.server.is_empty();
    pane::wait_until(browser, "the first page open", PAGE_READY, open).await?;
    let first = browser.client.window().await.context("the first window")?;
    let second = browser
        .client
        .new_window(false)
        .await
        .context("opening a second window")?
        .handle;
    browser
        .client
        .switch_to_window(second.clone())
        .await
        .context("switching to the second window")?;
    browser.open(url).await?;
    pane::wait_until(browser, "the second page open", PAGE_READY, open).await?;

    browser
        .client
        .switch_to_window(first.clone())
        .await
        .context("switching back to the first window")?;
    // Unique per run, and with markup that must show as text.
    let data = format!(
        "from the form {} <b>as text</b>",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    // `chat` is one of the names every pane listens to, so the second page shows it too.
    pane::publish_with_form(browser, "chat", &data, TOKEN).await?;
    let view = pane::wait_until(
        browser,
        "the publish status to read `published <id>`",
        STEP,
        |view| view.publish_status.starts_with("published "),
    )
    .await?;
    let id = view
        .publish_status
        .trim_start_matches("published ")
        .trim()
        .to_owned();
    ensure(!id.is_empty(), "an id in the publish status", || {
        view.describe()
    })?;

    let published = |view: &PaneView| {
        view.rows
            .iter()
            .any(|r| r.kind == "chat" && r.id == id && r.data == data)
    };
    let what = format!("a `chat` row with id {id} and data {data:?}");
    for (window, name) in [(first, "first"), (second, "second")] {
        browser
            .client
            .switch_to_window(window)
            .await
            .context(&format!("switching to the {name} window"))?;
        let view = pane::wait_until(
            browser,
            &format!("{what} on the {name} page"),
            STEP,
            published,
        )
        .await?;
        expect_tick_rows_have_ids(&view)?;
        let chats = view.rows.iter().filter(|r| r.kind == "chat").count();
        ensure(
            chats == 1,
            &format!("one chat row on the {name} page"),
            || view.describe(),
        )?;
    }
    browser.expect_no_console_errors(false).await
}

/// Scenario 3: the page reaches the server through a proxy; every connection is cut
/// mid-stream and new ones are refused while the server publishes on. Once the network is
/// back the browser reconnects by itself with `Last-Event-ID`, and the page's ids are then
/// exactly what a subscriber connected directly received: no gap, no duplicate.
async fn network_cut_resumes(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&["--retry-ms", RETRY_MS])?;
    let proxy = Proxy::start(addr_of(&target)?).await?;
    // Connected before the page, so that it has every id the page will show.
    let mut events = Events::open(&target, &StreamRequest::default())
        .await
        .context("opening the reference subscriber")?;
    events.welcome().await.context("the reference's welcome")?;
    let mut reference = Reference {
        events,
        ids: Vec::new(),
    };

    let browser = &stage.browser;
    browser.open(&format!("http://{}/", proxy.addr)).await?;
    pane::wait_until(
        browser,
        "the page open through the proxy, with three events listed",
        PAGE_READY,
        |view| view.state == "open" && view.ids().len() >= 3,
    )
    .await?;

    let heads_before = proxy.heads().len();
    let cut = proxy.cut();
    ensure(
        cut >= 1,
        "the page's stream among the proxy's connections",
        || format!("{cut} open connections"),
    )?;
    let cut_off = pane::wait_until(
        browser,
        "the page to notice the cut (state no longer open)",
        STEP,
        |view| view.state != "open",
    )
    .await?;
    let last_seen = cut_off.last_id.clone();

    // Two ticks' worth of events the page can only get by resuming.
    reference
        .read_until("six events published during the cut", STEP, |ids| {
            ids.iter()
                .position(|id| *id == last_seen)
                .is_some_and(|at| ids.len() - at > 6)
        })
        .await?;
    let missed = reference
        .ids
        .iter()
        .rev()
        .take_while(|id| **id != last_seen)
        .count();
    let still_cut = PaneView::read(browser).await?;
    ensure(
        still_cut.state != "open" && still_cut.last_id == last_seen,
        "the page to stay cut off while the proxy refuses connections",
        || still_cut.describe(),
    )?;
    proxy.restore();

    // Resumed, and past the splice between history and live: as many events since the cut
    // as were missed, and three more. (Counting rather than looking for a missed id lets a
    // page that lost events get here too, so the comparison below can name them.)
    let view = pane::wait_until(
        browser,
        &format!(
            "the page open again with {} events after {last_seen}",
            missed + 3
        ),
        STEP,
        |view| {
            let ids = view.ids();
            view.state == "open"
                && ids
                    .iter()
                    .position(|id| *id == last_seen)
                    .is_some_and(|at| ids.len() - at > missed + 3)
        },
    )
    .await?;
    ensure(
        view.reconnects >= 1,
        "the reconnect counter to count the browser's own reconnect",
        || view.describe(),
    )?;
    ensure(
        view.notice.is_empty(),
        "no reset notice: every missed event was still in history",
        || view.describe(),
    )?;
    expect_tick_rows_have_ids(&view)?;
    let page_ids = view.ids();
    if let Some(last) = page_ids.last() {
        reference.read_through(last).await?;
    }
    expect_same_run(&page_ids, &reference.ids)?;

    let heads = proxy.heads();
    let reconnects: Vec<&String> = heads[heads_before.min(heads.len())..]
        .iter()
        .filter(|h| h.starts_with("GET /stream"))
        .collect();
    ensure(
        reconnects
            .iter()
            .any(|h| proxy::header(h, "last-event-id") == Some(last_seen.as_str())),
        &format!("the browser's reconnect to send Last-Event-ID: {last_seen}"),
        || format!("the requests for /stream after the cut: {reconnects:#?}"),
    )?;
    // Failed reconnects during the cut are logged as network errors; nothing else may be.
    browser.expect_no_console_errors(true).await
}

/// Scenario 4: the server stops and a new run starts on the same port. The page reconnects
/// by itself, shows the `foreign` reset (the new run cannot place the old id) and goes on
/// with the new run's events: its whole history first, then live, as a direct subscriber
/// resuming from the same old id receives them.
async fn server_restart_shows_foreign_reset(stage: &mut Stage) -> Outcome {
    let flags = ["--retry-ms", RETRY_MS];
    let first = stage.serve_anywhere(&flags)?;
    let addr = addr_of(&first)?;
    stage.browser.open(first.base.as_str()).await?;
    let before = pane::wait_until(
        &stage.browser,
        "the page open with three events listed",
        PAGE_READY,
        |view| view.state == "open" && view.ids().len() >= 3,
    )
    .await?;

    stage.stop_servers().await?;
    let gone = pane::wait_until(
        &stage.browser,
        "the page to notice the server stopped",
        STEP,
        |view| view.state != "open",
    )
    .await?;
    let old_ids: Vec<String> = gone.ids().iter().map(|id| id.to_string()).collect();
    let old_last = gone.last_id.clone();
    ensure(
        old_ids.len() >= before.ids().len(),
        "the page to keep the first run's events",
        || gone.describe(),
    )?;

    // The old run's socket may linger a moment after `serve` returns.
    let second = wait_for(
        "the port to be free for the new run",
        STEP,
        async || match stage.serve(&flags, addr) {
            Ok(target) => Ok(Ok(target)),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                Ok(Err(error.to_string()))
            }
            Err(error) => Err(format!("starting the new run on {addr}: {error}")),
        },
    )
    .await?;
    // A subscriber resuming from the page's old id: the reset, then the new run's ids.
    let mut events = Events::open(&second, &StreamRequest::resume(old_last.clone()))
        .await
        .context("opening the reference subscriber on the new run")?;
    let opening = events.opening().await.context("the new run's opening")?;
    let reset = opening.reset().unwrap_or(Value::Null);
    ensure(
        reset["reason"] == "foreign",
        "the new run to answer the old id with a `foreign` reset",
        || format!("{:?}", opening.first),
    )?;
    let mut reference = Reference {
        events,
        ids: Vec::new(),
    };

    let browser = &stage.browser;
    let view = pane::wait_until(
        browser,
        "the page open again, showing the foreign reset and three of the new run's events",
        STEP,
        |view| {
            let after_reset = view
                .rows
                .iter()
                .rposition(|r| r.kind == "reset")
                .map(|at| view.rows[at..].iter().filter(|r| !r.id.is_empty()).count());
            view.state == "open" && after_reset.is_some_and(|n| n >= 3)
        },
    )
    .await?;
    ensure(
        view.notice.contains("reset (foreign)"),
        "the notice to show the `foreign` reset",
        || view.describe(),
    )?;
    ensure(
        view.reconnects >= 1,
        "the reconnect counter to count the browser's own reconnect",
        || view.describe(),
    )?;
    expect_tick_rows_have_ids(&view)?;
    let reset_at = view
        .rows
        .iter()
        .rposition(|r| r.kind == "reset")
        .unwrap_or_default();
    let new_ids: Vec<&str> = view.rows[reset_at..]
        .iter()
        .filter(|r| !r.id.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    let reused: Vec<&&str> = new_ids
        .iter()
        .filter(|id| old_ids.iter().any(|old| old == *id))
        .collect();
    ensure(
        reused.is_empty(),
        "the new run's ids to differ from the old run's",
        || format!("{reused:?} in both"),
    )?;
    if let Some(last) = new_ids.last() {
        reference.read_through(last).await?;
    }
    // A foreign reset replays the new run's whole history: the page starts at its first id.
    ensure(
        new_ids.first().map(|id| id.to_string()) == reference.ids.first().cloned(),
        "the page to go on from the new run's first event",
        || {
            format!(
                "page from {:?}, new run from {:?}",
                new_ids.first(),
                reference.ids.first()
            )
        },
    )?;
    expect_same_run(&new_ids, &reference.ids)?;
    // The refused reconnects while the server was down are network errors; nothing else.
    browser.expect_no_console_errors(true).await
}

/// Scenario 5: a page from another origin opens `new EventSource(url, {withCredentials:
/// true})`. From an origin in `--allowed-origins` it receives the stream; from any other
/// origin the browser fails the connection.
async fn cross_origin_with_credentials(stage: &mut Stage) -> Outcome {
    let allowed = StaticPage::serve(CROSS_ORIGIN_PAGE).await?;
    let other = StaticPage::serve(CROSS_ORIGIN_PAGE).await?;
    let origin = allowed.origin();
    let target = stage.serve_anywhere(&["--allowed-origins", &origin])?;
    let stream = target.base.join("stream").context("the stream URL")?;
    let query: String = url::form_urlencoded::byte_serialize(stream.as_str().as_bytes()).collect();
    let browser = &stage.browser;

    browser.open(&format!("{origin}/?stream={query}")).await?;
    let report = wait_for(
        "the allowed origin's page to open the stream and receive welcome and a ticker event",
        PAGE_READY,
        async || {
            let report = CrossOriginReport::read(browser).await?;
            let ticked = report
                .events
                .iter()
                .any(|(kind, id, _)| TICK_TYPES.contains(&kind.as_str()) && !id.is_empty());
            Ok(if report.state == "open" && ticked {
                Ok(report)
            } else {
                Err(report.describe())
            })
        },
    )
    .await?;
    ensure(
        report.with_credentials,
        "the EventSource to be opened withCredentials",
        || report.describe(),
    )?;
    let welcome = report
        .events
        .iter()
        .find(|(kind, _, _)| kind == "welcome")
        .and_then(|(_, _, data)| serde_json::from_str::<Value>(data).ok())
        .unwrap_or(Value::Null);
    ensure(
        welcome["server"] == stage.variant.name,
        &format!("a welcome from {}", stage.variant.name),
        || report.describe(),
    )?;
    browser.expect_no_console_errors(false).await?;

    browser
        .open(&format!("{}/?stream={query}", other.origin()))
        .await?;
    let report = wait_for(
        "the other origin's page to see its stream fail (readyState CLOSED)",
        STEP,
        async || {
            let report = CrossOriginReport::read(browser).await?;
            Ok(if report.state == "closed" {
                Ok(report)
            } else {
                Err(report.describe())
            })
        },
    )
    .await?;
    ensure(
        !report.opened && report.events.is_empty() && report.errors >= 1,
        "the other origin's stream never open, with an error and no events",
        || report.describe(),
    )?;
    // The browser says why: the response lacks the CORS headers for this origin.
    let errors = browser.console_errors().await?;
    ensure(
        errors.iter().any(|e| e.message.contains("CORS")),
        "a console error blaming the CORS policy for the other origin's stream",
        || format!("{errors:#?}"),
    )
}
