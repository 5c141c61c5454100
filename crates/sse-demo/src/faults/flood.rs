//! Flood: publish many events as fast as the demo can, and see what reaches the page, whom
//! each variant cuts for lagging, and what it costs in memory.
//!
//! Beside the page, the demo holds a slow reader of its own: a stream that reads nothing
//! during the flood and everything after it. It falls more than `--queue` behind, and where
//! each idiom notices that is the lag branch the code view shows: the push loop the moment its
//! queue is full (during the flood), the pull idioms only when the reader reads again and the
//! stream is polled (after it).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use super::{Params, Row, Target, mebibytes, poll_metrics, poll_until};
use crate::client::{self, Metrics, Publisher};

/// The topic of the flood's events: one the page takes.
const TOPIC: &str = "demo/flood";
/// Publishing connections: a few, so that the publisher is not what limits the rate.
const PUBLISHERS: usize = 4;
/// How long the page may take to receive the whole flood.
const DELIVERY: Duration = Duration::from_secs(30);
/// How long the slow reader may take to read to its stream's end once it reads again.
const DRAIN: Duration = Duration::from_secs(15);

/// Runs the fault against one variant.
pub async fn run(target: &Target, params: &Params) -> Row {
    match flood(target, params).await {
        Ok(row) => row,
        Err(error) => Row::failed(target, format!("the flood could not run: {error}")),
    }
}

/// What the flood measured.
struct Measured {
    /// `/metrics` before, and once the page had it all.
    before: Metrics,
    /// See `before`.
    after: Metrics,
    /// Lag cuts counted while the slow reader was still not reading.
    cut_during: f64,
    /// How long publishing took.
    published_in: Duration,
    /// Distinct new ids the page received, and when the last arrived after the first publish.
    delivered: (usize, Option<Duration>),
    /// How long the slow reader read before its stream ended (`None`: it did not end).
    slow_ended: Option<Duration>,
}

/// Publishes the flood with a slow reader beside the page, and measures.
async fn flood(target: &Target, params: &Params) -> std::io::Result<Row> {
    let before = Metrics::read(target.addr()).await?;
    let slow = client::stalled(target.addr(), "topic=demo%2Fflood").await?;
    let began = Instant::now();
    let flood = publish(target, params).await?;
    let published_in = began.elapsed();
    let mid = Metrics::read(target.addr()).await?;
    let slow_ended = drain(slow).await;
    // A pull idiom may count the slow reader only now, as it polls the stream again: a
    // moment for that before the final figures.
    let lagged = |m: &Metrics| m.count("sse_lagged_disconnects_total");
    poll_metrics(target.addr(), Duration::from_secs(2), |now| {
        (lagged(now) > lagged(&before)).then_some(())
    })
    .await;
    let delivered = delivered(target, began, &flood).await;
    let after = Metrics::read(target.addr()).await?;
    let measured = Measured {
        cut_during: mid.count("sse_lagged_disconnects_total")
            - before.count("sse_lagged_disconnects_total"),
        before,
        after,
        published_in,
        delivered,
        slow_ended,
    };
    Ok(row(target, params, &measured))
}

/// Publishes `params.events` events over [`PUBLISHERS`] connections at once; returns their
/// ids.
async fn publish(target: &Target, params: &Params) -> std::io::Result<HashSet<String>> {
    let data = "f".repeat(params.bytes);
    let share = params.events.div_ceil(PUBLISHERS);
    let mut publishers = Vec::new();
    for first in (0..params.events).step_by(share.max(1)) {
        let last = (first + share).min(params.events);
        let data = data.clone();
        let addr = target.addr();
        publishers.push(tokio::spawn(async move {
            let mut publisher = Publisher::connect(addr).await?;
            let mut ids = Vec::with_capacity(last - first);
            for n in first..last {
                ids.push(
                    publisher
                        .publish("flood", TOPIC, &format!("{n} {data}"))
                        .await?,
                );
            }
            Ok::<_, std::io::Error>(ids)
        }));
    }
    let mut ids = HashSet::with_capacity(params.events);
    for publisher in publishers {
        ids.extend(publisher.await.map_err(std::io::Error::other)??);
    }
    Ok(ids)
}

/// Waits until the page has received every one of the `flood`'s ids (at most
/// [`DELIVERY`]); returns how many it got, and when the last of them came after `began`.
async fn delivered(
    target: &Target,
    began: Instant,
    flood: &HashSet<String>,
) -> (usize, Option<Duration>) {
    let count = || {
        target.relay.seen(|seen| {
            let mut got = HashSet::new();
            let mut last = None;
            for (at, id) in seen.ids.iter().filter(|(at, _)| *at >= began) {
                if flood.contains(id) && got.insert(id.as_str()) {
                    last = Some(at.duration_since(began));
                }
            }
            (got.len(), last)
        })
    };
    poll_until(DELIVERY, || {
        let (got, last) = count();
        (got >= flood.len()).then_some((got, last))
    })
    .await
    .unwrap_or_else(count)
}

/// Reads the slow reader to its stream's end; returns how long that took, or `None` if the
/// stream did not end within [`DRAIN`] (nothing cut it).
async fn drain(mut slow: TcpStream) -> Option<Duration> {
    let began = Instant::now();
    let mut buffer = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return began.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(DRAIN, read_all).await.ok()
}

/// The result row.
fn row(target: &Target, params: &Params, measured: &Measured) -> Row {
    let mut row = Row::new(target);
    let (got, last) = measured.delivered;
    let rate = |events: f64, took: Duration| (events / took.as_secs_f64().max(0.001)).round();
    let lagged = |m: &Metrics| m.count("sse_lagged_disconnects_total");
    let cut_total = lagged(&measured.after) - lagged(&measured.before);
    row.figure("published", "published", params.events as u64, "events")
        .figure(
            "publish_rate",
            "publish rate",
            rate(params.events as f64, measured.published_in),
            "events/s",
        )
        .figure("page_received", "page received", got as u64, "events")
        .figure(
            "page_rate",
            "to the page",
            last.map_or(0.0, |took| rate(got as f64, took)),
            "events/s",
        )
        .figure(
            "lag_cuts_during",
            "lag cuts during",
            measured.cut_during,
            "",
        )
        .figure(
            "lag_cuts_after",
            "lag cuts after",
            cut_total - measured.cut_during,
            "",
        )
        .seconds(
            "slow_ended_s",
            "slow reader's stream ended after",
            measured.slow_ended,
        )
        .figure(
            "rss_before_mib",
            "memory before",
            mebibytes(&measured.before),
            "MiB",
        )
        .figure(
            "rss_after_mib",
            "memory after",
            mebibytes(&measured.after),
            "MiB",
        );
    row.ok = got >= params.events;
    let how = match target.variant.name {
        "actix-push-loop" => "the broadcaster found its queue full",
        _ => "its stream, polled again, found itself Lagged",
    };
    let slow = if measured.cut_during >= 1.0 {
        format!("the slow reader was cut during the flood: {how}")
    } else if cut_total >= 1.0 {
        format!("the slow reader was cut only once it read again: {how}")
    } else {
        "the slow reader was not cut: the kernels' buffers held the whole flood (try more or \
         bigger events)"
            .to_owned()
    };
    let page = if got >= params.events {
        "the page got every event"
    } else {
        "the page did not get every event in time"
    };
    row.note = format!("{slow}; {page}");
    row
}
