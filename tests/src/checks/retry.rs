//! Contract points 2 and 11, the reconnection delays: each connection's `retry:` and each
//! 503's `Retry-After` are drawn from the base times [1 - J, 1 + J] (`--retry-jitter`), so
//! that clients cut off together (a restart, a proxy dropping everyone) come back spread out
//! rather than all at once.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::checks::service::{metric, wait_for_metric};
use crate::checks::stream::fresh_retry;
use crate::client::{self, Events, StreamRequest, Welcome};
use crate::{Problem, Res, Target, ensure};

/// How many fresh streams the `retry:` checks sample.
const SAMPLES: usize = 10;

/// The server's jitter, as its `welcome` announces it.
async fn announced_jitter(target: &Target) -> Res<(Welcome, f64)> {
    let welcome = Welcome::fetch(target).await?;
    let jitter = welcome
        .retry_jitter
        .ok_or_else(|| Problem::Skip("the server announces no retry_jitter in welcome".into()))?;
    Ok((welcome, jitter))
}

/// Point 2: each stream's `retry:` lies within `--retry-ms` × [1 - J, 1 + J], and streams do
/// not all get the same one.
pub async fn retry_is_drawn_per_connection_within_the_jitter(target: Target) -> Res {
    let (welcome, jitter) = announced_jitter(&target).await?;
    let base = welcome.retry_ms as f64;
    if jitter == 0.0 || base * jitter < 10.0 {
        return Err(Problem::Skip(format!(
            "the server's retry is exact ({} ms, jitter {jitter}); start it with --retry-jitter 0.2",
            welcome.retry_ms
        )));
    }
    let (low, high) = (
        (base * (1.0 - jitter)).floor(),
        (base * (1.0 + jitter)).ceil(),
    );
    let mut seen = Vec::new();
    for _ in 0..SAMPLES {
        seen.push(fresh_retry(&target).await?);
    }
    ensure!(
        seen.iter().all(|ms| (low..=high).contains(&(*ms as f64))),
        format!("every retry within {low}..={high} ms (--retry-ms {base}, jitter {jitter})"),
        format!("{seen:?}")
    );
    let distinct: BTreeSet<_> = seen.iter().collect();
    ensure!(
        distinct.len() > 1,
        "streams to get different retry delays (each drawn on its own)",
        format!("{seen:?}")
    );
    Ok(())
}

/// Point 2: with `--retry-jitter 0`, every stream gets `--retry-ms` exactly.
pub async fn retry_is_exact_without_jitter(target: Target) -> Res {
    let (welcome, jitter) = announced_jitter(&target).await?;
    if jitter != 0.0 {
        return Err(Problem::Skip(format!(
            "the server jitters its retry ({jitter}); start it with --retry-jitter 0"
        )));
    }
    for _ in 0..SAMPLES / 2 {
        let retry = fresh_retry(&target).await?;
        ensure!(
            retry == welcome.retry_ms,
            format!("retry: {} on every stream", welcome.retry_ms),
            format!("retry: {retry}")
        );
    }
    Ok(())
}

/// Point 11: the `Retry-After` of 503s past `--max-clients` is spread like `retry:`, in
/// whole seconds.
pub async fn retry_after_is_spread_like_retry(target: Target) -> Res {
    let before = metric(&target, "sse_connected_clients").await?;
    let (welcome, jitter) = announced_jitter(&target).await?;
    let Some(max) = target.max_clients else {
        return Err(Problem::Skip(
            "needs --max-clients (the server's limit; the check opens that many streams)".into(),
        ));
    };
    let base = welcome.retry_ms as f64 / 1000.0;
    if base * jitter < 1.5 {
        return Err(Problem::Skip(format!(
            "the jitter spans less than whole seconds ({base} s × {jitter}); start the server with --retry-ms 10000"
        )));
    }
    // The welcome's stream counts until the server next writes to it and finds it gone.
    let settle = Duration::from_millis(welcome.keepalive_ms) * 2 + Duration::from_secs(2);
    wait_for_metric(&target, "sse_connected_clients", settle, |n| n <= before).await?;
    let mut open = Vec::new();
    for _ in (before as u32)..max {
        let mut events = Events::open(&target, &StreamRequest::default()).await?;
        events.welcome().await?;
        open.push(events);
    }
    let (low, high) = (
        (base * (1.0 - jitter)).floor().max(1.0),
        (base * (1.0 + jitter)).ceil(),
    );
    let mut waits = Vec::new();
    for _ in 0..20 {
        let refused = client::get(&target, "/stream").await?;
        refused.expect_json_error(503)?;
        let wait = refused.header("retry-after").parse::<f64>().map_err(|_| {
            Problem::fail(
                "Retry-After: <seconds>",
                format!("{:?}", refused.header("retry-after")),
            )
        })?;
        waits.push(wait);
    }
    ensure!(
        waits.iter().all(|s| (low..=high).contains(s)),
        format!("every Retry-After within {low}..={high} s"),
        format!("{waits:?}")
    );
    let distinct: BTreeSet<u64> = waits.iter().map(|s| *s as u64).collect();
    ensure!(
        distinct.len() > 1,
        "refusals to get different Retry-After values",
        format!("{waits:?}")
    );
    drop(open);
    Ok(())
}
