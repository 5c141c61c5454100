//! A page on a server that requires tokens: with a token cookie it sees the topics it asks
//! for (from the page's own URL) and that its token grants, and nothing else; with an
//! expired token it says why it is not receiving, rather than spinning.

use sse_conformance::client;
use sse_conformance::harness::TOKEN;
use sse_core::auth::{SigningKey, now_secs};

use crate::PAGE_READY;
use crate::e2e::pane;
use crate::e2e::stage::{STEP, Stage, ensure};
use crate::e2e::{Context, Outcome};

/// The secret the scenario's server verifies tokens with.
const SECRET: &str = "browser-jwt-secret-0123456789";

/// Sets the `sse_token` cookie for the page's origin, as a login page would, and reloads
/// the page. (Set from the page's script: chromedriver refuses WebDriver cookies for an IP
/// address host.)
async fn with_cookie(stage: &Stage, token: String) -> Outcome {
    let browser = &stage.browser;
    browser
        .run(
            "document.cookie = `sse_token=${arguments[0]}; path=/; SameSite=Lax`;",
            vec![token.into()],
        )
        .await
        .context("setting the token cookie")?;
    browser.client.refresh().await.context("reloading the page")
}

/// The page at `/?topic=alpha` with a cookie granting `alpha` and `beta/*` lists alpha's
/// events and not beta's; an expired cookie leaves it waiting, saying `401`.
pub async fn a_token_cookie_shows_its_topics_only(stage: &mut Stage) -> Outcome {
    let target = stage.serve_anywhere(&["--jwt-secret", SECRET])?;
    let key = SigningKey::Secret(SECRET.into());
    let mint = |ttl_from_now: i64| {
        let expires = (now_secs() as i64 + ttl_from_now).max(0) as u64;
        key.mint(Some(vec!["alpha".into(), "beta/*".into()]), None, expires)
            .map_err(|e| format!("minting a token: {e}"))
    };
    let url = format!("{}?topic=alpha", target.base);
    stage.browser.open(&url).await?;
    with_cookie(stage, mint(300)?).await?;
    pane::wait_until(
        &stage.browser,
        "the page open on topic alpha",
        PAGE_READY,
        |view| view.state == "open" && view.topics == "alpha",
    )
    .await?;

    let mut ids = Vec::new();
    for topic in ["beta/x", "alpha", "beta/y", "alpha"] {
        let body = serde_json::json!({ "event": "chat", "data": topic, "topic": topic });
        let bearer = format!("Bearer {TOKEN}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ];
        let receipt = client::fetch(
            &target,
            http::Method::POST,
            "/publish",
            &headers,
            body.to_string(),
        )
        .await
        .map_err(|p| p.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&receipt.body).unwrap_or_default();
        ids.push((topic, json["id"].as_str().unwrap_or_default().to_owned()));
    }
    let last = ids[3].1.clone();
    let view = pane::wait_until(
        &stage.browser,
        "the second alpha event on the page",
        STEP,
        |view| view.rows.iter().any(|r| r.id == last),
    )
    .await?;
    let shown: Vec<&str> = view
        .rows
        .iter()
        .filter(|r| r.kind == "chat")
        .map(|r| r.data.as_str())
        .collect();
    ensure(
        shown == ["alpha", "alpha"],
        "only alpha's events on the page",
        || view.describe(),
    )?;
    // The first load, before the cookie, was refused: network errors; nothing else may be.
    stage.browser.expect_no_console_errors(true).await?;

    with_cookie(stage, mint(-30)?).await?;
    let refused = pane::wait_until(
        &stage.browser,
        "the page saying its token is refused (401)",
        PAGE_READY,
        |view| view.state == "waiting" && view.waiting.contains("401"),
    )
    .await?;
    ensure(
        refused.waiting.contains("expired"),
        "the page to say the token expired",
        || refused.describe(),
    )
}
