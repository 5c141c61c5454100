//! The browser's six connections per origin, and HTTP/2 lifting them: one page opens eight
//! `EventSource`s to one origin, over HTTPS (HTTP/2, all on one connection) and over plain
//! HTTP/1.1 (six connections, and the rest wait).

use serde_json::{Value, json};
use sse_conformance::client;
use sse_conformance::test_cert::TestCert;

use crate::PAGE_READY;
use crate::e2e::chrome::Browser;
use crate::e2e::stage::{STEP, Stage, ensure};
use crate::e2e::{Outcome, wait_for};

/// How many `EventSource`s the page opens: more than HTTP/1.1's six.
const SOURCES: usize = 8;
/// Chromium's limit of connections per origin over HTTP/1.1.
const HTTP1_LIMIT: usize = 6;

/// Opens [`SOURCES`] `EventSource`s to `/stream` from the current page, each noting its
/// state and every event id it receives in `window.sources`.
const OPEN_SOURCES: &str = r#"
    window.sources = [];
    for (let n = 0; n < arguments[0]; n++) {
        const source = { es: new EventSource('/stream'), ids: [], welcomed: false };
        source.es.addEventListener('welcome', () => { source.welcomed = true; });
        source.es.addEventListener('h2', (e) => { source.ids.push(e.lastEventId); });
        window.sources.push(source);
    }
"#;

/// Each source's `[readyState, welcomed, ids]`.
const READ_SOURCES: &str = r#"
    return window.sources.map((s) => [s.es.readyState, s.welcomed, s.ids]);
"#;

/// One source as the page sees it.
struct Source {
    /// `EventSource.readyState`: 0 connecting, 1 open, 2 closed.
    state: u64,
    /// Whether its `welcome` arrived.
    welcomed: bool,
    /// The ids of the `h2` events it received.
    ids: Vec<String>,
}

/// Reads every source's state.
async fn sources(browser: &Browser) -> Outcome<Vec<Source>> {
    let read = browser.run(READ_SOURCES, vec![]).await?;
    let rows = read.as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|row| Source {
            state: row[0].as_u64().unwrap_or(0),
            welcomed: row[1].as_bool().unwrap_or(false),
            ids: row[2]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// `[state, welcomed, events]` per source, for a failure message.
fn describe(sources: &[Source]) -> String {
    let shown: Vec<String> = sources
        .iter()
        .map(|s| format!("[{} {} {}]", s.state, s.welcomed, s.ids.len()))
        .collect();
    shown.join(" ")
}

/// Over HTTPS all eight sources open and each gets the published event; over plain
/// HTTP/1.1 only six open, the other two wait until one of the six is closed.
pub async fn eight_streams_open_over_http2_but_six_over_http1(stage: &mut Stage) -> Outcome {
    let cert = TestCert::generate("browser")?;
    let cert_flags = cert.flags();
    let flags: Vec<&str> = cert_flags.iter().map(String::as_str).collect();
    let mut https = stage.serve_anywhere(&flags)?;
    https.tls = Some(cert.client(false)?);
    let browser = &stage.browser;

    browser.open(&format!("{}healthz", https.base)).await?;
    browser.run(OPEN_SOURCES, vec![json!(SOURCES)]).await?;
    wait_for("all 8 sources open over HTTPS", PAGE_READY, async || {
        let seen = sources(browser).await?;
        let open = seen.iter().filter(|s| s.state == 1 && s.welcomed).count();
        Ok(if open == SOURCES {
            Ok(())
        } else {
            Err(describe(&seen))
        })
    })
    .await?;
    let id = client::publish(&https, Some("h2"), "to all eight")
        .await
        .map_err(|p| p.to_string())?;
    wait_for("the published event in all 8 sources", STEP, async || {
        let seen = sources(browser).await?;
        let got = seen.iter().filter(|s| s.ids.contains(&id)).count();
        Ok(if got == SOURCES {
            Ok(())
        } else {
            Err(describe(&seen))
        })
    })
    .await?;

    let plain = stage.serve_anywhere(&[])?;
    let browser = &stage.browser;
    browser.open(&format!("{}healthz", plain.base)).await?;
    browser.run(OPEN_SOURCES, vec![json!(SOURCES)]).await?;
    wait_for("6 sources open over HTTP/1.1", PAGE_READY, async || {
        let seen = sources(browser).await?;
        let open = seen.iter().filter(|s| s.welcomed).count();
        Ok(if open >= HTTP1_LIMIT {
            Ok(())
        } else {
            Err(describe(&seen))
        })
    })
    .await?;
    // An event published now reaches the six: if the other two could connect, they would
    // have by the time it has gone round.
    let id = client::publish(&plain, Some("h2"), "to the six")
        .await
        .map_err(|p| p.to_string())?;
    let seen = wait_for(
        "the published event in the open sources",
        STEP,
        async || {
            let seen = sources(browser).await?;
            let got = seen.iter().filter(|s| s.ids.contains(&id)).count();
            Ok(if got >= HTTP1_LIMIT {
                Ok(seen)
            } else {
                Err(describe(&seen))
            })
        },
    )
    .await?;
    let waiting = seen.iter().filter(|s| s.state == 0 && !s.welcomed).count();
    ensure(
        waiting == SOURCES - HTTP1_LIMIT,
        "exactly 2 of 8 sources still connecting over HTTP/1.1 (Chromium's 6 per origin)",
        || describe(&seen),
    )?;
    // Closing one of the six frees a connection for a waiting one.
    browser.run("window.sources[0].es.close();", vec![]).await?;
    wait_for(
        "a waiting source to open once one closes",
        STEP,
        async || {
            let seen = sources(browser).await?;
            let open = seen.iter().skip(1).filter(|s| s.welcomed).count();
            Ok(if open == HTTP1_LIMIT {
                Ok(())
            } else {
                Err(describe(&seen))
            })
        },
    )
    .await?;
    // Network errors are allowed: opening /healthz makes Chromium ask for /favicon.ico (404).
    browser.expect_no_console_errors(true).await
}
