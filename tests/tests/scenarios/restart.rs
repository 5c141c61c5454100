//! The server restarts on the same port; the page shows the `foreign` reset and goes on.

use serde_json::Value;
use sse_conformance::Target;
use sse_conformance::client::{Events, StreamRequest};

use crate::e2e::pane::{self, PaneView};
use crate::e2e::stage::{
    Reference, STEP, Stage, ensure, expect_same_run, expect_tick_rows_have_ids,
};
use crate::e2e::{Context, Outcome};
use crate::{PAGE_READY, RETRY_MS};

/// The server stops and a new run starts on the same port. The page reconnects by itself,
/// shows the `foreign` reset (the new run cannot place the old id) and goes on with the new
/// run's events: its whole history first, then live, as a direct subscriber resuming from
/// the same old id receives them.
pub async fn server_restart_shows_foreign_reset(stage: &mut Stage) -> Outcome {
    let flags = ["--retry-ms", RETRY_MS];
    let first = stage.serve_anywhere(&flags)?;
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
    ensure(
        old_ids.len() >= before.ids().len(),
        "the page to keep the first run's events",
        || gone.describe(),
    )?;

    let second = stage.restart_on_the_same_port(&first, &flags).await?;
    let mut reference = resume_foreign(&second, &gone.last_id).await?;
    let view = wait_open_after_reset(stage).await?;
    let new_ids = ids_after_last_reset(&view);
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
    stage.browser.expect_no_console_errors(true).await
}

/// A subscriber resuming on the new run from the page's old id: it must get the `foreign`
/// reset, then the new run's ids, which the page must match.
async fn resume_foreign(second: &Target, old_last: &str) -> Outcome<Reference> {
    let mut events = Events::open(second, &StreamRequest::resume(old_last))
        .await
        .context("opening the reference subscriber on the new run")?;
    let opening = events.opening().await.context("the new run's opening")?;
    let reset = opening.reset().unwrap_or(Value::Null);
    ensure(
        reset["reason"] == "foreign",
        "the new run to answer the old id with a `foreign` reset",
        || format!("{:?}", opening.first),
    )?;
    Ok(Reference::new(events))
}

/// Waits until the page is open again with the reset's notice and three of the new run's
/// events after it.
async fn wait_open_after_reset(stage: &Stage) -> Outcome<PaneView> {
    let view = pane::wait_until(
        &stage.browser,
        "the page open again, showing the foreign reset and three of the new run's events",
        STEP,
        |view| view.state == "open" && ids_after_last_reset(view).len() >= 3,
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
    Ok(view)
}

/// The ids the page lists after its last `reset` row (none if it shows no reset).
fn ids_after_last_reset(view: &PaneView) -> Vec<&str> {
    let Some(reset_at) = view.rows.iter().rposition(|r| r.kind == "reset") else {
        return Vec::new();
    };
    view.rows[reset_at..]
        .iter()
        .filter(|r| !r.id.is_empty())
        .map(|r| r.id.as_str())
        .collect()
}
