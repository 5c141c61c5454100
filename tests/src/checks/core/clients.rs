//! The core profile's clients: one that leaves gives its place back, and one from another
//! origin can read the stream with credentials when the server allows its origin.

use std::time::Duration;

use serde_json::Value;

use crate::checks::service::{poll, sample};
use crate::client::{self, Events, StreamRequest};
use crate::{Problem, Res, Target, ensure};

/// How many streams the release check opens and drops.
const STREAMS: usize = 3;
/// The gauge an sse-idioms server (and any server that copied it) names its clients with.
const GAUGE: &str = "sse_connected_clients";

/// Reads a client count from a body: a bare number, JSON holding one (the first number at
/// the top level of an object), or Prometheus text with [`GAUGE`].
pub fn count_in(body: &str) -> Option<f64> {
    if let Some(count) = sample(body, GAUGE) {
        return Some(count);
    }
    match serde_json::from_str::<Value>(body.trim()).ok()? {
        Value::Number(count) => count.as_f64(),
        Value::Object(fields) => fields.values().find_map(Value::as_f64),
        _ => None,
    }
}

/// Where the target reports its client count: `--clients-url`, else `/metrics` if it has
/// the gauge; `None` when the server exposes no count.
async fn count_source(target: &Target) -> Option<(Target, String)> {
    let metrics = target.base.join("/metrics").ok()?;
    let (source, path) = client::split_url(target, target.clients_url.as_ref().unwrap_or(&metrics));
    let answer = client::get(&source, &path).await.ok()?;
    (answer.status == 200 && count_in(&answer.body).is_some()).then_some((source, path))
}

/// The count now.
async fn count(source: &(Target, String)) -> Res<f64> {
    let answer = client::get(&source.0, &source.1).await?;
    count_in(&answer.body)
        .ok_or_else(|| Problem::fail(format!("a client count at {}", source.1), answer.summary()))
}

/// Polls the count until `done` holds, within `within`; the last count either way.
async fn count_until(
    source: &(Target, String),
    within: Duration,
    done: impl Fn(f64) -> bool,
) -> Res<f64> {
    let polled = poll(within, || count(source), done).await?;
    Ok(polled.unwrap_or_else(|last| last))
}

/// Practice: a client that disconnects is let go (its socket, its task, its place in any
/// limit), by the server's next write to it at the latest. Needs a count from the server.
pub async fn a_client_that_disconnects_is_released(target: Target) -> Res {
    let Some(source) = count_source(&target).await else {
        return Err(Problem::Skip(
            "the server exposes no client count; give --clients-url URL".into(),
        ));
    };
    let before = count(&source).await?;
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(Events::open(&target, &StreamRequest::default()).await?);
    }
    let wanted = before + STREAMS as f64;
    let counted = count_until(&source, target.timeout, |n| n >= wanted).await?;
    ensure!(
        counted >= wanted,
        format!("the {STREAMS} open streams counted at {}", source.1),
        format!("{before} before, {counted} with them open")
    );
    drop(streams);
    // Only the fall is known: other clients may come and go meanwhile.
    let left = count_until(&source, target.timeout, |n| n <= counted - STREAMS as f64).await?;
    ensure!(
        left <= counted - STREAMS as f64,
        format!(
            "the count to fall by {STREAMS} within {:?} of them leaving",
            target.timeout
        ),
        format!("{counted} with them, {left} after")
    );
    Ok(())
}

/// The Fetch standard's CORS check, as `new EventSource(url, {withCredentials: true})`
/// (§9.2.2) needs it: from an allowed origin, `Access-Control-Allow-Origin` is that origin
/// (`*` cannot carry credentials) and `Access-Control-Allow-Credentials` is `true`.
pub async fn cors_with_credentials_echoes_the_origin(target: Target) -> Res {
    let Some(origin) = target.allowed_origin.clone() else {
        return Err(Problem::Skip(
            "needs --origin (an origin the server allows)".into(),
        ));
    };
    let request = StreamRequest {
        origin: Some(origin.clone()),
        ..Default::default()
    };
    let events = Events::open(&target, &request).await?;
    let header = |name| client::header(&events.headers, name).to_owned();
    ensure!(
        header("access-control-allow-origin") == origin,
        format!("Access-Control-Allow-Origin: {origin}"),
        format!("{:?}", header("access-control-allow-origin"))
    );
    ensure!(
        header("access-control-allow-credentials") == "true",
        "Access-Control-Allow-Credentials: true",
        format!("{:?}", header("access-control-allow-credentials"))
    );
    Ok(())
}
