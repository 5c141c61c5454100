//! Contract point 18: HTTP/2 over TLS. What the rest of the contract says holds on every
//! stream of an HTTP/2 connection too (the harness runs every other check over HTTP/2 as
//! well); these two checks are about the connection itself: many streams share it, and
//! one that stops reading holds up none of the others.
//!
//! Both need an `https://` target whose server answers ALPN with `h2`, and skip otherwise.

use crate::checks::service::{Delivered, metric, stalled_reader_was_cut_and_resumes};
use crate::client::{self, Events, Publisher, Sender, StreamRequest, Welcome};
use crate::{Problem, Res, Target, ensure};

/// How many streams the sharing check opens on one connection: more than the six a
/// browser allows an origin over HTTP/1.1.
const STREAMS: usize = 10;
/// The stalled stream's receive window: small, so that it stalls after a few events.
const STALLED_WINDOW: u32 = 16 * 1024;

/// One connection to the target, which must be HTTP/2.
async fn http2_connection(target: &Target, window: Option<u32>) -> Res<Sender> {
    if target.base.scheme() != "https" {
        return Err(Problem::Skip(
            "needs an https:// target (HTTP/2 is negotiated over TLS)".into(),
        ));
    }
    let sender = match window {
        Some(window) => client::connect_with_stream_window(target, window).await?,
        None => client::connect(target, None).await?,
    };
    ensure!(
        sender.is_http2(),
        "the server to choose h2 by ALPN",
        "it chose HTTP/1.1"
    );
    Ok(sender)
}

/// Point 18: ten streams on one HTTP/2 connection each open with `welcome` and each get
/// the same published event.
pub async fn ten_streams_share_one_http2_connection(target: Target) -> Res {
    let mut connection = http2_connection(&target, None).await?;
    let mut streams = Vec::with_capacity(STREAMS);
    for n in 0..STREAMS {
        let mut events = Events::open_on(&mut connection, &target, &StreamRequest::default())
            .await
            .map_err(|p| p.concerning(format!("stream {} of {STREAMS}", n + 1)))?;
        events.welcome().await?;
        streams.push(events);
    }
    let id = client::publish(&target, Some("shared"), "one connection").await?;
    for (n, events) in streams.iter_mut().enumerate() {
        events
            .until(target.timeout, |e| e.id == id)
            .await
            .map_err(|p| p.concerning(format!("stream {} of {STREAMS}", n + 1)))?;
    }
    Ok(())
}

/// Point 18: on one HTTP/2 connection, a stream whose client stops reading (its window
/// closes) does not hold up another: the reading stream gets every event as it is
/// published, and the stalled one is cut as a slow consumer (point 7) and resumes exactly.
pub async fn a_stalled_http2_stream_holds_up_no_other_on_its_connection(target: Target) -> Res {
    let welcome = Welcome::fetch(&target).await?;
    let mut connection = http2_connection(&target, Some(STALLED_WINDOW)).await?;
    let lagged_before = metric(&target, "sse_lagged_disconnects_total").await?;
    let mut stalled = Events::open_on(&mut connection, &target, &StreamRequest::default()).await?;
    stalled.welcome().await?;
    let mut reading = Events::open_on(&mut connection, &target, &StreamRequest::default()).await?;
    reading.welcome().await?;

    // 16 KB events, enough to pass the stalled stream's window, what the server buffers
    // for it and then its queue, few enough that history keeps them all (with the ticker
    // off, nothing else takes room in it).
    if welcome.tick_ms != 0 {
        return Err(Problem::Skip(format!(
            "needs the ticker off (--tick-ms 0), so that history holds every event it publishes; this one ticks every {} ms",
            welcome.tick_ms
        )));
    }
    let count = (welcome.history * 3 / 4).min(welcome.queue + 100) as usize;
    let payload = "h".repeat(16 * 1024);
    let mut publisher = Publisher::connect(&target).await?;
    let before = publisher.publish(Some("slow-start"), "start").await?;
    let seen = reading.until(target.timeout, |e| e.id == before).await?;
    let mut ids: Vec<String> = seen
        .into_iter()
        .filter(|e| !e.id.is_empty())
        .map(|e| e.id)
        .collect();
    let mut published = Vec::with_capacity(count);
    for n in 0..count {
        let id = publisher
            .publish(Some("slow"), format!("{n}:{payload}"))
            .await?;
        // Each event reaches the reading stream before the next is published: a stall
        // shared with the other stream would stop it here.
        let seen = reading
            .until(target.timeout, |e| e.id == id)
            .await
            .map_err(|p| p.concerning(format!("the reading stream, at event {n}")))?;
        ids.extend(seen.into_iter().filter(|e| !e.id.is_empty()).map(|e| e.id));
        published.push(id);
    }
    let end = publisher.publish(Some("slow-end"), "end").await?;
    let seen = reading.until(target.timeout, |e| e.id == end).await?;
    ids.extend(seen.into_iter().filter(|e| !e.id.is_empty()).map(|e| e.id));
    let healthy = Delivered {
        ids,
        reconnects: 0,
        before,
        published,
        end,
    };
    // Keep the connection (and so the stalled stream) open while it reads again.
    let outcome =
        stalled_reader_was_cut_and_resumes(&target, stalled, &welcome, lagged_before, &healthy)
            .await;
    drop(connection);
    outcome.map_err(|p| {
        p.concerning(format!(
            "a stream stalled with a {STALLED_WINDOW}-byte window"
        ))
    })
}
