//! The page at `/` opens, names the server, lists the ticker's events with their ids, draws
//! `update` from its JSON, and logs no console error.

use crate::PAGE_READY;
use crate::e2e::pane;
use crate::e2e::stage::{Stage, TICK_TYPES, ensure, expect_tick_rows_have_ids, shows_two_ticks};
use crate::e2e::{Outcome, artifacts_dir};

/// Scenario 1: the page at `/` opens, names the server, lists the ticker's events with their
/// ids, draws `update` from its JSON, and logs no console error. Writes the screenshot.
pub async fn page_opens_and_lists_tick_events(stage: &mut Stage) -> Outcome {
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
