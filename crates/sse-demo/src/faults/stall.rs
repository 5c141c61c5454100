//! Stall a subscriber: the demo opens a stream that never reads, fills its window, and
//! watches each variant count it (`sse_lagged_disconnects_total`) and free its place.
//!
//! The cut itself is the same in all three (the kernel's `TCP_USER_TIMEOUT`, set by sse-core),
//! and lands within `--write-timeout-secs` plus a second of the last byte that could not be
//! sent. What differs is the idiom's own state: the pull idioms' pipeline or generator goes
//! with the connection, while the push loop's list entry stays until the broadcaster's next
//! sweep finds its sender closed, up to a quarter second later.

use std::time::{Duration, Instant};

use super::{Row, Target, poll_metrics, welcome};
use crate::client::{self, Metrics, Publisher};

/// The topic only the stalled reader takes: the page does not see the filler.
const FILLER_TOPIC: &str = "stall/filler";
/// Filler events: enough to close a 4 KiB window and fill what the kernels buffer behind it,
/// fewer than `--queue`, so that the push loop cannot cut the reader for lagging instead.
const FILLER_EVENTS: u64 = 150;
/// Each filler event's data.
const FILLER_BYTES: usize = 16 * 1024;
/// Beyond the contract's bound, how long to keep looking before calling it missed.
const SLACK: Duration = Duration::from_secs(5);

/// Runs the fault against one variant.
pub async fn run(target: &Target) -> Row {
    match stall(target).await {
        Ok(row) => row,
        Err(error) => Row::failed(target, format!("the stall could not run: {error}")),
    }
}

/// What the figures are measured against.
struct Before {
    /// `/metrics` before the stalled reader connected.
    metrics: Metrics,
    /// The write timeout the variant announced.
    timeout: Duration,
}

/// Opens the stalled reader, fills it, and times what the variant does.
async fn stall(target: &Target) -> std::io::Result<Row> {
    let settings = welcome(target).await?;
    let timeout = Duration::from_millis(settings["write_timeout_ms"].as_u64().unwrap_or(30_000));
    let history = settings["history"].as_u64().unwrap_or(1000);
    let before = Before {
        metrics: Metrics::read(target.addr()).await?,
        timeout,
    };
    let query = format!("topic={}", FILLER_TOPIC.replace('/', "%2F"));
    let stalled = client::stalled(target.addr(), &query).await?;
    let mut publisher = Publisher::connect(target.addr()).await?;
    let filler = "w".repeat(FILLER_BYTES);
    for n in 0..FILLER_EVENTS.min(history / 2) {
        publisher
            .publish("filler", FILLER_TOPIC, &format!("{n}:{filler}"))
            .await?;
    }
    let filled = Instant::now();
    let seen = watch(target, &before, filled).await;
    drop(stalled);
    Ok(row(target, &before, &seen))
}

/// When the variant counted the stalled reader and let go of its place.
struct Watched {
    /// `sse_lagged_disconnects_total` went up, after the filler.
    counted: Option<Duration>,
    /// `sse_connected_clients` was back where it was.
    freed: Option<Duration>,
    /// The idiom's own gauge was back where it was (before any extra event).
    idiom: Option<Duration>,
}

/// Watches `/metrics` until the reader is counted and freed, and the idiom's gauge is back,
/// at most the write timeout plus a second plus [`SLACK`] after the filler.
async fn watch(target: &Target, before: &Before, filled: Instant) -> Watched {
    let mut seen = Watched {
        counted: None,
        freed: None,
        idiom: None,
    };
    let bound = before.timeout + Duration::from_secs(1) + SLACK;
    let gauge = target.idiom_gauge();
    poll_metrics(target.addr(), bound, |now| {
        let at = filled.elapsed();
        let was = &before.metrics;
        if seen.counted.is_none()
            && now.count("sse_lagged_disconnects_total") > was.count("sse_lagged_disconnects_total")
        {
            seen.counted = Some(at);
        }
        if seen.freed.is_none()
            && now.count("sse_connected_clients") <= was.count("sse_connected_clients")
        {
            seen.freed = Some(at);
        }
        if seen.idiom.is_none() && now.count(gauge) <= was.count(gauge) {
            seen.idiom = Some(at);
        }
        (seen.counted.is_some() && seen.freed.is_some() && seen.idiom.is_some()).then_some(())
    })
    .await;
    seen
}

/// The result row.
fn row(target: &Target, before: &Before, seen: &Watched) -> Row {
    let mut row = Row::new(target);
    let timeout = before.timeout;
    row.seconds("write_timeout_s", "write timeout", Some(timeout))
        .seconds("counted_after_s", "counted after", seen.counted)
        .seconds("freed_after_s", "place freed after", seen.freed)
        .seconds("idiom_freed_after_s", "idiom state freed after", seen.idiom);
    let bound = timeout + Duration::from_secs(1);
    row.ok =
        seen.counted.is_some_and(|at| at <= bound) && seen.freed.is_some() && seen.idiom.is_some();
    row.note = match (seen.counted, target.variant.name) {
        (None, _) => format!(
            "not counted within {:.1} s of the last filler event",
            (bound + SLACK).as_secs_f64()
        ),
        (Some(_), _) if seen.idiom.is_none() => format!(
            "counted and cut, but the idiom's state was still held {:.1} s after the filler",
            (bound + SLACK).as_secs_f64()
        ),
        (Some(_), "actix-push-loop") => {
            "the kernel cut the connection and the body went with it; the list entry stayed \
             until the broadcaster's sweep (every quarter second) found its sender closed"
                .to_owned()
        }
        (Some(_), _) => {
            "the kernel cut the connection (TCP_USER_TIMEOUT); hyper dropped the stream, and the \
             idiom's state went with it: there is nothing else to free"
                .to_owned()
        }
    };
    row
}
