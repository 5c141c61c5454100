//! Every connection is cut mid-stream and new ones are refused while the server publishes
//! on; once the network is back, the page resumes with no gap and no duplicate.

use crate::e2e::Outcome;
use crate::e2e::chrome::Browser;
use crate::e2e::pane::{self, PaneView};
use crate::e2e::proxy::Proxy;
use crate::e2e::stage::{
    Reference, STEP, Stage, addr_of, ensure, expect_same_run, expect_tick_rows_have_ids,
};
use crate::{PAGE_READY, RETRY_MS};

/// The page reaches the server through a proxy; every connection is cut mid-stream and new
/// ones are refused while the server publishes on. Once the network is back the browser
/// reconnects by itself with `Last-Event-ID`, and the page's ids are then exactly what a
/// subscriber connected directly received: no gap, no duplicate.
pub async fn network_cut_resumes(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&["--retry-ms", RETRY_MS])?;
    let proxy = Proxy::start(addr_of(&target)?).await?;
    // Connected before the page, so that it has every id the page will show.
    let mut reference = Reference::open(&target).await?;
    let browser = &stage.browser;
    browser.open(&format!("http://{}/", proxy.addr())).await?;
    pane::wait_until(
        browser,
        "the page open through the proxy, with three events listed",
        PAGE_READY,
        |view| view.state == "open" && view.ids().len() >= 3,
    )
    .await?;

    let cut_at = std::time::Instant::now();
    let (last_seen, missed) = cut_while_publishing(browser, &proxy, &mut reference).await?;
    proxy.restore();
    let view = wait_resumed(browser, &last_seen, missed).await?;
    expect_tick_rows_have_ids(&view)?;
    let page_ids = view.ids();
    if let Some(last) = page_ids.last() {
        reference.read_through(last).await?;
    }
    expect_same_run(&page_ids, &reference.ids)?;
    expect_reconnect_sent(&proxy.last_event_ids_since(cut_at), &last_seen)?;
    // Failed reconnects during the cut are logged as network errors; nothing else may be.
    browser.expect_no_console_errors(true).await
}

/// Cuts every connection and keeps the network down until the reference has seen two
/// ticks' worth of events the page can only get by resuming; returns the page's last id
/// before the cut and how many events it missed.
async fn cut_while_publishing(
    browser: &Browser,
    proxy: &Proxy,
    reference: &mut Reference,
) -> Outcome<(String, usize)> {
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
    Ok((last_seen, missed))
}

/// Waits until the page is open again and past the splice between history and live: as
/// many events since `last_seen` as were missed, and three more. (Counting rather than
/// looking for a missed id lets a page that lost events get here too, so the comparison
/// with the reference can name them.)
async fn wait_resumed(browser: &Browser, last_seen: &str, missed: usize) -> Outcome<PaneView> {
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
    Ok(view)
}

/// Among the stream requests the proxy saw answered after the cut, one carried
/// `Last-Event-ID: last_seen`: the browser resumed by itself.
fn expect_reconnect_sent(last_event_ids: &[Option<String>], last_seen: &str) -> Outcome {
    ensure(
        last_event_ids
            .iter()
            .any(|id| id.as_deref() == Some(last_seen)),
        &format!("the browser's reconnect to send Last-Event-ID: {last_seen}"),
        || format!("the Last-Event-ID of each stream request after the cut: {last_event_ids:?}"),
    )
}
