//! Fill max clients: the demo opens streams until the variant answers 503, then makes the
//! page reconnect into the full server, holds it full for a moment, and lets go: the page must
//! show the 503s and come back by itself.
//!
//! The refusal is sse-core's (admission happens before any idiom code runs); what the page
//! shows is its own backoff, and its way back in is a join like any other.

use std::time::{Duration, Instant};

use super::{Row, Target, page_back, poll_metrics, poll_until};
use crate::client::{Metrics, Subscriber};

/// The most streams the fault opens: a limit above it is too high to fill from a demo.
const MOST: usize = 500;
/// A topic no one publishes on: the held streams only get keep-alives.
const QUIET: &str = "topic=demo%2Fquiet";
/// How long the server stays full once the page has been refused.
const HOLD: Duration = Duration::from_secs(2);
/// How long the variant may take to notice that the page's cut stream is gone, and the page
/// to be refused once back: a closed stream is let go within 2 s (contract point 9; the push
/// loop sweeps its list every quarter second), then the page waits out its `retry:`.
const NOTICE: Duration = Duration::from_secs(10);

/// Runs the fault against one variant.
pub async fn run(target: &Target) -> Row {
    let mut held = Vec::new();
    let outcome = fill(target, &mut held).await;
    target.relay.restore();
    match outcome {
        Ok(row) => row,
        Err(why) => Row::failed(target, why),
    }
}

/// Opens streams until one is refused; returns how many opened.
async fn top_up(target: &Target, held: &mut Vec<Subscriber>) -> Result<usize, String> {
    let mut opened = 0;
    while held.len() < MOST {
        let (status, stream) = Subscriber::open(target.addr(), QUIET, None)
            .await
            .map_err(|e| format!("opening a stream: {e}"))?;
        match stream {
            Some(stream) => {
                held.push(stream);
                opened += 1;
            }
            None if status == 503 => return Ok(opened),
            None => return Err(format!("a stream was answered {status}, not 200 or 503")),
        }
    }
    Err(format!(
        "{MOST} streams did not fill it: start the demo with a lower limit, e.g. `-- --max-clients 5`"
    ))
}

/// Fills the variant, pushes the page into the full server, then frees it.
async fn fill(target: &Target, held: &mut Vec<Subscriber>) -> Result<Row, String> {
    if target.page_stream().is_none() {
        return Err("the page has no stream through the demo yet: open the page first".into());
    }
    top_up(target, held).await?;
    let limit = Metrics::read(target.addr())
        .await
        .map_err(|e| e.to_string())?
        .count("sse_connected_clients");
    // The page's stream goes, and the place it frees is taken before the page is back.
    target.relay.cut();
    let page_gone = poll_metrics(target.addr(), NOTICE, |now| {
        (now.count("sse_connected_clients") < limit).then_some(())
    })
    .await;
    if page_gone.is_none() {
        return Err("the variant did not notice the page's stream was gone".into());
    }
    top_up(target, held).await?;
    let back_in = Instant::now();
    target.relay.restore();
    let refused = poll_until(NOTICE, || {
        target.relay.seen(|seen| {
            let refusals = seen
                .streams_since(back_in)
                .filter(|s| s.status == 503)
                .count();
            (refusals > 0).then_some(())
        })
    })
    .await;
    tokio::time::sleep(HOLD).await;
    let freed = Instant::now();
    held.clear();
    // A place frees once the variant notices that one of the demo's streams is closed.
    let places = poll_metrics(target.addr(), NOTICE, |now| {
        (now.count("sse_connected_clients") < limit).then(|| freed.elapsed())
    })
    .await;
    let back = page_back(target, freed).await;
    let refusals = target.relay.seen(|seen| {
        seen.streams_since(back_in)
            .filter(|s| s.status == 503)
            .count()
    });
    let mut row = Row::new(target);
    row.figure("limit", "full at", limit, "streams")
        .figure("refused", "page refused", refusals as u64, "× 503")
        .seconds("places_freed_after_s", "places free after", places)
        .seconds(
            "recovered_after_s",
            "page back after",
            back.as_ref().map(|s| s.at.duration_since(freed)),
        );
    row.ok = refused.is_some() && back.is_some();
    let noticed = match places {
        Some(at) if at <= Duration::from_millis(300) => {
            "the variant noticed the demo's closed streams at once".to_owned()
        }
        Some(at) => format!(
            "the variant let the demo's closed streams go {:.1} s later (the push loop: at its \
             next sweep of its client list)",
            at.as_secs_f64()
        ),
        None => "the variant did not notice the demo's closed streams in time".to_owned(),
    };
    row.note = if row.ok {
        format!(
            "sse-core refused the page before any idiom code ran; {noticed}; the page backed \
             off with jitter and joined again"
        )
    } else {
        format!("the page was not refused, or did not come back, in time; {noticed}")
    };
    Ok(row)
}
