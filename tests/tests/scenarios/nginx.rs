//! Behind a real nginx configured with `deploy/nginx.conf`: events reach the page as they
//! are published, and a restart of the server behind it (the page's reconnect gets 502
//! meanwhile) heals by itself.

use std::time::{Duration, Instant};

use sse_conformance::client;
use sse_conformance::nginx::Nginx;

use crate::e2e::pane;
use crate::e2e::stage::{STEP, Stage, addr_of, ensure, expect_tick_rows_have_ids};
use crate::e2e::{Context, Outcome};
use crate::{HEAL, PAGE_READY, RETRY_MS};

/// The contract's flush bound, end to end through the proxy.
const THROUGH_PROXY: Duration = Duration::from_secs(1);

/// nginx in front of `upstream`, or why not.
fn nginx(upstream: &sse_conformance::Target) -> Outcome<Nginx> {
    if !Nginx::available() {
        return Err("nginx is not installed (apt-get install nginx)".into());
    }
    Nginx::start(addr_of(upstream)?)
}

/// Three events, each published straight to the server, each listed on the page (which
/// reaches the server through nginx) within a second of its publish.
pub async fn events_reach_the_page_through_nginx_within_a_second(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&["--tick-ms", "0"])?;
    let proxy = nginx(&target)?;
    let browser = &stage.browser;
    browser.open(&format!("http://{}/", proxy.addr)).await?;
    pane::wait_until(browser, "the page open through nginx", PAGE_READY, |view| {
        view.state == "open" && !view.server.is_empty()
    })
    .await?;
    for n in 0..3 {
        let published = Instant::now();
        let id = client::publish(&target, Some("chat"), format!("through nginx {n}"))
            .await
            .context("publishing straight to the server")?;
        pane::wait_until(
            browser,
            &format!("event {id} on the page within {THROUGH_PROXY:?} of its publish"),
            THROUGH_PROXY.saturating_sub(published.elapsed()),
            |view| view.rows.iter().any(|row| row.id == id),
        )
        .await
        .map_err(|problem| format!("{problem}\nnginx: {}", proxy.error_log()))?;
    }
    browser.expect_no_console_errors(false).await
}

/// The server behind nginx stops, so the page's reconnect gets 502 from nginx (fatal for
/// EventSource); the server starts again on the same port, and the page is open and
/// receiving again within [`HEAL`], with no reload, showing the `foreign` reset of the
/// in-memory hub's new run.
pub async fn behind_nginx_a_restart_heals_the_page(stage: &mut Stage) -> Outcome {
    let flags = ["--retry-ms", RETRY_MS];
    let first = stage.serve_anywhere(&flags)?;
    let proxy = nginx(&first)?;
    stage
        .browser
        .open(&format!("http://{}/", proxy.addr))
        .await?;
    pane::wait_until(
        &stage.browser,
        "the page open through nginx with three events listed",
        PAGE_READY,
        |view| view.state == "open" && view.ids().len() >= 3,
    )
    .await?;

    stage.stop_servers().await?;
    pane::wait_until(
        &stage.browser,
        "the page refused with nginx's 502 and waiting to try again",
        STEP,
        |view| view.state == "waiting" && view.waiting.contains("502"),
    )
    .await?;
    stage.restart_on_the_same_port(&first, &flags).await?;
    let healed = pane::wait_until(
        &stage.browser,
        "the page open again through nginx, past the foreign reset, with three new events",
        HEAL,
        |view| {
            let after_reset = view
                .rows
                .iter()
                .rposition(|r| r.kind == "reset")
                .map(|at| view.rows[at..].iter().filter(|r| !r.id.is_empty()).count());
            view.state == "open" && after_reset.is_some_and(|n| n >= 3)
        },
    )
    .await
    .map_err(|problem| format!("{problem}\nnginx: {}", proxy.error_log()))?;
    ensure(
        healed.notice.contains("reset (foreign)"),
        "the notice to show the new run's `foreign` reset",
        || healed.describe(),
    )?;
    expect_tick_rows_have_ids(&healed)?;
    // The refused reconnects while the server was down are network errors; nothing else.
    stage.browser.expect_no_console_errors(true).await
}
