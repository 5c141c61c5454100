//! Contract point 7, for readers that stop reading altogether: a subscriber whose peer
//! acknowledges none of the bytes waiting for it for `--write-timeout-secs` is disconnected
//! within a second more and counted as a slow consumer, whether events are waiting for it or
//! only keep-alives, while everyone else goes on receiving.

use std::time::Duration;

use crate::checks::service::{metric, read_all_resuming, wait_for_metric};
use crate::client::{Events, Publisher, StreamRequest, Welcome};
use crate::{Problem, Res, Target, ensure};

/// Scheduling slack on top of the contract's bound, for a loaded test machine.
const SLACK: Duration = Duration::from_secs(2);
/// The stalled reader's receive buffer: small, so that its window closes quickly.
const STALLED_BUFFER: u32 = 4096;

/// The server's write timeout from `welcome`, if it is short enough to check quickly.
fn write_timeout(welcome: &Welcome) -> Res<Duration> {
    let Some(ms) = welcome.write_timeout_ms else {
        return Err(Problem::Skip(
            "the server announces no write_timeout_ms in welcome".into(),
        ));
    };
    if ms > 10_000 {
        return Err(Problem::Skip(format!(
            "the server's write timeout is {} s; start it with --write-timeout-secs 2 to check it",
            ms / 1000
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// A subscriber that reads its welcome and then never reads again.
async fn stalled_subscriber(target: &Target) -> Res<Events> {
    let request = StreamRequest {
        recv_buffer: Some(STALLED_BUFFER),
        ..Default::default()
    };
    let mut stalled = Events::open(target, &request).await?;
    stalled.welcome().await?;
    Ok(stalled)
}

/// After the server cut it: once the stalled reader drains what the kernels buffered, its
/// stream must end (EOF or reset), and the connected gauge must have let it go.
async fn expect_cut(target: &Target, mut stalled: Events, connected_with_it: f64) -> Res {
    wait_for_metric(target, "sse_connected_clients", SLACK, |n| {
        n <= connected_with_it - 1.0
    })
    .await
    .map_err(|problem| problem.concerning("the stalled subscriber's place in the gauge"))?;
    stalled
        .drain_to_end(Duration::from_secs(10))
        .await
        .map(drop)
}

/// Point 7: a subscriber that stops reading while events pile up for it is cut within the
/// write timeout plus a second of the last event, counted in `sse_lagged_disconnects_total`,
/// and its connection closed; a healthy subscriber gets every event meanwhile.
pub async fn a_stalled_subscriber_is_cut_within_the_write_timeout(target: Target) -> Res {
    let welcome = Welcome::fetch(&target).await?;
    let timeout = write_timeout(&welcome)?;
    let lagged_before = metric(&target, "sse_lagged_disconnects_total").await?;
    let stalled = stalled_subscriber(&target).await?;
    let mut healthy = Events::open(&target, &StreamRequest::default()).await?;
    healthy.welcome().await?;
    let connected = metric(&target, "sse_connected_clients").await?;
    let reader_target = target.clone();
    let healthy =
        tokio::spawn(async move { read_all_resuming(&reader_target, healthy, "stall-end").await });

    // Enough to close the stalled reader's window and fill what the kernel will buffer
    // behind it, but within history, so a healthy reader that lags can still catch up.
    let count = (welcome.history / 2).min(150) as usize;
    let payload = "w".repeat(16 * 1024);
    let mut publisher = Publisher::connect(&target).await?;
    let mut published = Vec::with_capacity(count);
    for n in 0..count {
        published.push(
            publisher
                .publish(Some("stall"), format!("{n}:{payload}"))
                .await?,
        );
    }
    publisher.publish(Some("stall-end"), "end").await?;

    wait_for_metric(
        &target,
        "sse_lagged_disconnects_total",
        timeout + Duration::from_secs(1) + SLACK,
        |v| v > lagged_before,
    )
    .await
    .map_err(|problem| problem.concerning("the stalled subscriber, after the last event"))?;
    let (healthy_ids, _) = healthy
        .await
        .map_err(|e| Problem::fail("the healthy reader", e.to_string()))??;
    let missing = published
        .iter()
        .filter(|id| !healthy_ids.contains(id))
        .count();
    ensure!(
        missing == 0,
        "the healthy subscriber to get every event",
        format!("{missing} of {count} missing")
    );
    expect_cut(&target, stalled, connected).await
}

/// Point 7: a stalled subscriber that is sent no events, only keep-alives, is cut too: its
/// window closes on keep-alives alone, and the write timeout runs from there.
pub async fn a_stalled_subscriber_without_events_is_cut_on_keep_alives(target: Target) -> Res {
    let welcome = Welcome::fetch(&target).await?;
    let timeout = write_timeout(&welcome)?;
    if welcome.tick_ms != 0 || welcome.keepalive_ms > 50 {
        return Err(Problem::Skip(format!(
            "needs a server that sends only keep-alives, often (--tick-ms 0 --keepalive-secs 0.01); this one ticks every {} ms and keeps alive every {} ms",
            welcome.tick_ms, welcome.keepalive_ms
        )));
    }
    let lagged_before = metric(&target, "sse_lagged_disconnects_total").await?;
    let stalled = stalled_subscriber(&target).await?;
    let connected = metric(&target, "sse_connected_clients").await?;
    // A keep-alive is about 14 bytes; the window closes once the receive buffer (about twice
    // what was asked for) is full of them.
    let per_second = 14.0 * 1000.0 / welcome.keepalive_ms.max(1) as f64;
    let filled = Duration::from_secs_f64(2.0 * f64::from(STALLED_BUFFER) / per_second);
    wait_for_metric(
        &target,
        "sse_lagged_disconnects_total",
        filled + timeout + Duration::from_secs(1) + SLACK,
        |v| v > lagged_before,
    )
    .await
    .map_err(|problem| problem.concerning("a subscriber stalled on keep-alives alone"))?;
    expect_cut(&target, stalled, connected).await
}
