//! A page refused with 503 (the server is full) heals by itself once a place frees: no
//! reload, however the EventSource processing model treats a 503 as fatal.

use crate::e2e::pane::{self, PaneView};
use crate::e2e::stage::{Stage, ensure};
use crate::e2e::{Context, Outcome};
use crate::{HEAL, PAGE_READY, RETRY_MS};

/// With `--max-clients 1`, a second page gets 503 and says it is waiting to try again;
/// once the first page is closed, the second is open and receiving within [`HEAL`].
pub async fn a_refused_page_heals_once_a_place_frees(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&["--max-clients", "1", "--retry-ms", RETRY_MS])?;
    let browser = &stage.browser;
    let url = target.base.as_str();
    browser.open(url).await?;
    let open = |view: &PaneView| view.state == "open" && !view.ids().is_empty();
    pane::wait_until(
        browser,
        "the first page open and receiving",
        PAGE_READY,
        open,
    )
    .await?;
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
    let refused = pane::wait_until(
        browser,
        "the second page refused with 503 and waiting to try again",
        PAGE_READY,
        |view| view.state == "waiting" && view.waiting.contains("503"),
    )
    .await?;
    ensure(
        refused.waiting.contains("trying again in"),
        "the page to say when it tries again",
        || refused.describe(),
    )?;

    browser
        .client
        .switch_to_window(first)
        .await
        .context("switching to the first window")?;
    browser
        .client
        .close_window()
        .await
        .context("closing the first page")?;
    browser
        .client
        .switch_to_window(second)
        .await
        .context("switching back to the second window")?;
    let healed = pane::wait_until(
        browser,
        "the second page open and receiving, with no reload",
        HEAL,
        open,
    )
    .await?;
    ensure(
        healed.waiting.is_empty(),
        "the waiting line gone once the stream is open",
        || healed.describe(),
    )?;
    // The refused connections are logged as network errors; nothing else may be.
    browser.expect_no_console_errors(true).await
}
