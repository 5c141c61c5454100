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
//!
//! The demo's compare page has trials of its own, `sse-demo::<scenario>`, each against a
//! real `sse-demo` (three variant processes) that this binary runs as itself (see
//! `e2e::demo`); each writes `target/e2e/compare-<fault>.png`.

mod e2e;
mod scenarios;
mod variants;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use sse_conformance::harness::Variant;

use e2e::chrome::Browser;
use e2e::demo;
use e2e::stage::Stage;
use e2e::{Context, Outcome, artifacts_dir};

/// The `retry:` the servers send when a scenario needs the browser to reconnect: short, so
/// that reconnects cost a fraction of a second.
const RETRY_MS: &str = "300";
/// How long a freshly opened page may take to connect and list a tick's worth of events
/// (the test servers tick every 400 ms).
const PAGE_READY: Duration = Duration::from_secs(15);
/// How long a page refused for good may take to be open and receiving again by itself,
/// once the server can take it (the contract's bound: its backoff is capped at 30 s).
const HEAL: Duration = Duration::from_secs(40);

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
    /// Refused with 503 at `--max-clients 1`, a page heals once a place frees.
    MaxClients,
    /// Through nginx, events arrive within a second of their publish.
    NginxFlush,
    /// Through nginx, a server restart (502s meanwhile) heals by itself.
    NginxRestart,
    /// On the Redis hub, a server restart resumes the page with no reset and no gap.
    RedisRestart,
    /// With a token cookie the page sees its topics only; an expired one shows why.
    TokenCookie,
    /// Eight EventSources on one origin: all open over HTTPS (HTTP/2), six over HTTP/1.1.
    Http2,
}

impl Scenario {
    /// Every scenario, in the order they run.
    const ALL: [Scenario; 11] = [
        Scenario::Page,
        Scenario::Publish,
        Scenario::NetworkCut,
        Scenario::Restart,
        Scenario::CrossOrigin,
        Scenario::MaxClients,
        Scenario::NginxFlush,
        Scenario::NginxRestart,
        Scenario::RedisRestart,
        Scenario::TokenCookie,
        Scenario::Http2,
    ];

    /// The trial name's second half, and the failure screenshot's suffix.
    fn name(self) -> &'static str {
        match self {
            Scenario::Page => "page_opens_and_lists_tick_events",
            Scenario::Publish => "form_publish_reaches_both_pages",
            Scenario::NetworkCut => "network_cut_resumes_without_gap_or_duplicate",
            Scenario::Restart => "server_restart_shows_foreign_reset",
            Scenario::CrossOrigin => "cross_origin_with_credentials",
            Scenario::MaxClients => "refused_page_heals_once_a_place_frees",
            Scenario::NginxFlush => "events_reach_the_page_through_nginx_within_a_second",
            Scenario::NginxRestart => "behind_nginx_a_restart_heals_the_page",
            Scenario::RedisRestart => "server_restart_on_redis_resumes_without_reset",
            Scenario::TokenCookie => "a_token_cookie_shows_its_topics_only",
            Scenario::Http2 => "eight_streams_open_over_http2_but_six_over_http1",
        }
    }

    /// Runs the scenario on `stage`.
    async fn run(self, stage: &mut Stage) -> Outcome {
        match self {
            Scenario::Page => scenarios::page::page_opens_and_lists_tick_events(stage).await,
            Scenario::Publish => scenarios::publish::form_publish_reaches_both_pages(stage).await,
            Scenario::NetworkCut => scenarios::network_cut::network_cut_resumes(stage).await,
            Scenario::Restart => {
                scenarios::restart::server_restart_shows_foreign_reset(stage).await
            }
            Scenario::CrossOrigin => {
                scenarios::cross_origin::cross_origin_with_credentials(stage).await
            }
            Scenario::MaxClients => {
                scenarios::max_clients::a_refused_page_heals_once_a_place_frees(stage).await
            }
            Scenario::NginxFlush => {
                scenarios::nginx::events_reach_the_page_through_nginx_within_a_second(stage).await
            }
            Scenario::NginxRestart => {
                scenarios::nginx::behind_nginx_a_restart_heals_the_page(stage).await
            }
            Scenario::RedisRestart => {
                scenarios::redis_restart::server_restart_on_redis_resumes_without_reset(stage).await
            }
            Scenario::TokenCookie => {
                scenarios::tokens::a_token_cookie_shows_its_topics_only(stage).await
            }
            Scenario::Http2 => {
                scenarios::http2::eight_streams_open_over_http2_but_six_over_http1(stage).await
            }
        }
    }
}

/// One scenario of the demo's compare page, run once against its three variants.
#[derive(Debug, Clone, Copy)]
enum CompareScenario {
    /// The page opens with code, internals and live panes.
    Page,
    /// The stall fault's rows.
    Stall,
    /// The flood fault's rows.
    Flood,
    /// The network cut's rows.
    Cut,
    /// The restart's rows, on the memory hub.
    Restart,
    /// The restart's rows, on one Redis log.
    RedisRestart,
    /// The max-clients fault's rows, and the panes' 503s.
    MaxClients,
}

impl CompareScenario {
    /// Every compare scenario, in the order they run.
    const ALL: [CompareScenario; 7] = [
        CompareScenario::Page,
        CompareScenario::Stall,
        CompareScenario::Flood,
        CompareScenario::Cut,
        CompareScenario::Restart,
        CompareScenario::RedisRestart,
        CompareScenario::MaxClients,
    ];

    /// The trial name's second half, and the failure screenshot's suffix.
    fn name(self) -> &'static str {
        match self {
            CompareScenario::Page => "compare_page_shows_code_and_internals",
            CompareScenario::Stall => "stall_fault_rows_and_code",
            CompareScenario::Flood => "flood_fault_rows_and_code",
            CompareScenario::Cut => "cut_fault_rows_and_code",
            CompareScenario::Restart => "restart_fault_rows_and_code",
            CompareScenario::RedisRestart => "restart_on_redis_fault_resumes_exactly",
            CompareScenario::MaxClients => "max_clients_fault_rows_and_503s",
        }
    }

    /// Runs the scenario in `browser`.
    async fn run(self, browser: &Browser) -> Outcome {
        use scenarios::compare;
        match self {
            CompareScenario::Page => compare::compare_page_shows_code_and_internals(browser).await,
            CompareScenario::Stall => compare::stall_fault(browser).await,
            CompareScenario::Flood => compare::flood_fault(browser).await,
            CompareScenario::Cut => compare::cut_fault(browser).await,
            CompareScenario::Restart => compare::restart_fault(browser).await,
            CompareScenario::RedisRestart => compare::restart_on_redis_fault(browser).await,
            CompareScenario::MaxClients => compare::max_clients_fault(browser).await,
        }
    }
}

fn main() -> ExitCode {
    // This binary also runs the demo (and the demo's variants) for the compare scenarios.
    if demo::is_demo_run() {
        return sse_demo::main();
    }
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
        .chain(CompareScenario::ALL.map(|scenario| {
            Trial::test(format!("sse-demo::{}", scenario.name()), move || {
                compare_trial(scenario)
            })
            .with_ignored_flag(true)
        }))
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
    note_time(
        format!("{}::{}", variant.name, scenario.name()),
        started,
        outcome.is_ok(),
    );
    outcome.map_err(Failed::from)
}

/// Runs one compare scenario on a runtime of its own, and notes its time.
fn compare_trial(scenario: CompareScenario) -> Result<(), Failed> {
    let started = Instant::now();
    let name = format!("sse-demo::{}", scenario.name());
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building a runtime")
        .and_then(|runtime| runtime.block_on(compare_staged(scenario)));
    note_time(name, started, outcome.is_ok());
    outcome.map_err(Failed::from)
}

/// Starts a browser, runs the compare scenario, keeps a screenshot if it failed.
async fn compare_staged(scenario: CompareScenario) -> Outcome {
    let failed_shot = artifacts_dir()?.join(format!("sse-demo-{}-failed.png", scenario.name()));
    // A screenshot left by an earlier failed run would misreport this one.
    let _ = std::fs::remove_file(&failed_shot);
    let browser = Browser::start().await?;
    let mut outcome = scenario.run(&browser).await;
    if let Err(problem) = &mut outcome {
        match browser.screenshot(&failed_shot).await {
            Ok(()) => problem.push_str(&format!("\nscreenshot: {}", failed_shot.display())),
            Err(error) => problem.push_str(&format!("\n(no screenshot: {error})")),
        }
    }
    let finished = browser.finish().await;
    outcome.and(finished)
}

/// Notes how long a trial took, for the table printed after the run.
fn note_time(name: String, started: Instant, ok: bool) {
    let mut timings = TIMINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    timings.push((name, started.elapsed(), ok));
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
