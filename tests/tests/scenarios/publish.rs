//! An event published through one page's form reaches that page and a second one.

use crate::PAGE_READY;
use crate::e2e::pane::{self, PaneView};
use crate::e2e::stage::{STEP, Stage, ensure, expect_tick_rows_have_ids};
use crate::e2e::{Context, Outcome};
use sse_conformance::harness::TOKEN;

/// Scenario 2: an event published through one page's form shows on that page and on a
/// second page open at the same time, with the id the server returned, as plain text.
pub async fn form_publish_reaches_both_pages(stage: &mut Stage) -> Outcome {
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
