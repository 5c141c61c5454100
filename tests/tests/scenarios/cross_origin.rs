//! `withCredentials` streams work from an allowed origin and fail from any other.

use serde_json::Value;

use crate::PAGE_READY;
use crate::e2e::pages::{CROSS_ORIGIN_PAGE, CrossOriginReport, StaticPage};
use crate::e2e::stage::{STEP, Stage, TICK_TYPES, ensure};
use crate::e2e::{Context, Outcome, wait_for};

/// Scenario 5: a page from another origin opens `new EventSource(url, {withCredentials:
/// true})`. From an origin in `--allowed-origins` it receives the stream; from any other
/// origin the browser fails the connection.
pub async fn cross_origin_with_credentials(stage: &mut Stage) -> Outcome {
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
