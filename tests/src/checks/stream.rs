//! Contract points 1 to 4: what `GET /stream` looks like on the wire.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::client::{self, Events, Publisher, Raw, StreamRequest, Welcome, describe};
use crate::event_stream::{Line, Lines};
use crate::{Problem, Res, Target, ensure};

/// Point 1: status 200, `text/event-stream`, `no-cache`, `X-Accel-Buffering: no`.
pub async fn stream_has_the_contract_headers(target: Target) -> Res {
    let raw = Raw::open(&target, &StreamRequest::default()).await?;
    let header = |name| client::header(&raw.headers, name).to_ascii_lowercase();
    ensure!(raw.status == 200, "status 200", raw.status.to_string());
    ensure!(
        header("content-type").starts_with("text/event-stream"),
        "Content-Type: text/event-stream",
        header("content-type")
    );
    ensure!(
        header("cache-control").contains("no-cache"),
        "Cache-Control: no-cache",
        header("cache-control")
    );
    ensure!(
        header("x-accel-buffering") == "no",
        "X-Accel-Buffering: no",
        header("x-accel-buffering")
    );
    Ok(())
}

/// Point 1: a client that accepts gzip still gets an uncompressed stream (compression
/// buffers events until a block fills, which defeats streaming).
pub async fn stream_is_never_compressed(target: Target) -> Res {
    let options = StreamRequest {
        accept_encoding: Some("gzip, deflate, br, zstd".into()),
        ..Default::default()
    };
    let mut raw = Raw::open(&target, &options).await?;
    let encoding = client::header(&raw.headers, "content-encoding").to_owned();
    ensure!(
        encoding.is_empty() || encoding == "identity",
        "no Content-Encoding",
        encoding
    );
    raw.read_until(Duration::from_secs(5), |text| text.contains("welcome"))
        .await
}

/// Point 2: the stream opens with `retry: <ms>`, then a `welcome` without an id whose JSON
/// names the server and its last id.
pub async fn stream_opens_with_retry_then_welcome(target: Target) -> Res {
    let mut raw = Raw::open(&target, &StreamRequest::default()).await?;
    raw.read_until(Duration::from_secs(5), |text| {
        text.find("event: welcome")
            .or_else(|| text.find("event:welcome"))
            .is_some_and(|at| text[at..].contains("\n\n"))
    })
    .await?;
    let text = raw.text();
    ensure!(
        opening_retry(&text).is_some(),
        "the first field to be `retry: <ms>`",
        format!("{:?}", first_field(&text))
    );
    let frames = frames(&text);
    let welcome = frames
        .iter()
        .find(|frame| field(frame, "data").is_some())
        .ok_or_else(|| Problem::fail("a welcome frame", format!("{text:?}")))?;
    ensure!(
        field(welcome, "event") == Some("welcome"),
        "the first event to be `welcome`",
        format!("{welcome:?}")
    );
    ensure!(
        field(welcome, "id").is_none(),
        "no id on welcome (it must not move the client's resume point)",
        format!("{welcome:?}")
    );
    Welcome::parse(field(welcome, "data").unwrap_or_default()).map(drop)
}

/// Point 3: each tick sends a `message`, a `greeting` and an `update` with JSON
/// `{"timestamp", "value": 0..100, "status": "ok"}`, each with its own id.
pub async fn ticker_sends_message_greeting_and_update(target: Target) -> Res {
    let mut events = Events::open(&target, &StreamRequest::default()).await?;
    let tick = events.welcome().await?.tick_ms;
    if tick == 0 {
        return Err(Problem::Skip(
            "the server's ticker is off (tick_ms 0)".into(),
        ));
    }
    let within = Duration::from_millis(tick * 3) + Duration::from_secs(2);
    let mut wanted: HashSet<&str> = ["message", "greeting", "update"].into();
    let seen = events
        .until(within, |event| {
            wanted.remove(event.event.as_str());
            wanted.is_empty()
        })
        .await?;
    for event in seen
        .iter()
        .filter(|e| ["message", "greeting", "update"].contains(&e.event.as_str()))
    {
        ensure!(
            !event.id.is_empty(),
            "an id on every ticker event",
            describe(&seen)
        );
        ensure!(
            !event.data.is_empty(),
            "data on every ticker event",
            describe(&seen)
        );
    }
    let update = seen
        .iter()
        .rev()
        .find(|e| e.event == "update")
        .map(|e| e.data.clone())
        .unwrap_or_default();
    let json: Value = serde_json::from_str(&update).unwrap_or(Value::Null);
    ensure!(
        json["timestamp"].as_u64().is_some()
            && json["value"].as_u64().is_some_and(|v| v <= 100)
            && json["status"] == "ok",
        r#"update data {"timestamp": <ms>, "value": <0..100>, "status": "ok"}"#,
        update
    );
    Ok(())
}

/// Point 3: every event carries an id of its own, and no two share one (several events
/// sharing an id lose all but the first on resume).
pub async fn every_event_has_its_own_id(target: Target) -> Res {
    let mut raw = Raw::open(&target, &StreamRequest::default()).await?;
    raw.read_until(Duration::from_secs(5), |text| text.contains("welcome"))
        .await?;
    let mut publisher = Publisher::connect(&target).await?;
    let mut last = String::new();
    for n in 0..20 {
        last = publisher
            .publish(Some("id-check"), format!("event {n}"))
            .await?;
    }
    let has_last = |text: &str| {
        frames(text)
            .iter()
            .any(|frame| field(frame, "id") == Some(last.as_str()))
    };
    raw.read_until(Duration::from_secs(10), |text| {
        text.ends_with("\n\n") && has_last(text)
    })
    .await?;
    let mut ids = HashSet::new();
    for frame in frames(&raw.text())
        .iter()
        .filter(|frame| field(frame, "data").is_some())
    {
        let name = field(frame, "event").unwrap_or("message");
        if name == "welcome" || name == "reset" {
            continue;
        }
        let id = field(frame, "id")
            .ok_or_else(|| Problem::fail("an id on every event", format!("{frame:?}")))?;
        ensure!(
            ids.insert(id.to_owned()),
            "ids never repeat",
            format!("{id} twice")
        );
    }
    ensure!(
        ids.len() >= 20,
        "the 20 published events",
        format!("{} events with ids", ids.len())
    );
    Ok(())
}

/// Point 4: a comment line is sent whenever nothing else was written for the keep-alive
/// interval.
pub async fn keep_alive_comment_when_idle(target: Target) -> Res {
    let welcome = Welcome::fetch(&target).await?;
    if welcome.tick_ms > 0 && welcome.tick_ms <= welcome.keepalive_ms {
        return Err(Problem::Skip(format!(
            "the ticker ({} ms) writes before keep-alive ({} ms) is due; start the server with --tick-ms above --keepalive-secs",
            welcome.tick_ms, welcome.keepalive_ms
        )));
    }
    let mut raw = Raw::open(&target, &StreamRequest::default()).await?;
    let within = Duration::from_millis(welcome.keepalive_ms) + Duration::from_secs(2);
    raw.read_until(within, |text| {
        text.lines().any(|line| line.starts_with(':'))
    })
    .await
    .map_err(|_| {
        Problem::fail(
            format!("a `:` comment line within {within:?} of silence"),
            format!("{:?}", client::tail(&raw.text())),
        )
    })
}

/// The first field line of a stream (comments skipped).
fn first_field(text: &str) -> &str {
    text.lines()
        .find(|line| !line.is_empty() && !line.starts_with(':'))
        .unwrap_or_default()
}

/// The stream's `retry:` delay in milliseconds, if its first field is one.
pub fn opening_retry(text: &str) -> Option<u64> {
    first_field(text)
        .strip_prefix("retry:")
        .map(str::trim)
        .and_then(|ms| ms.parse::<u64>().ok())
}

/// Opens a fresh stream and reads its `retry:` delay.
pub async fn fresh_retry(target: &Target) -> Res<u64> {
    let mut raw = Raw::open(target, &StreamRequest::default()).await?;
    raw.read_until(Duration::from_secs(5), |text| text.contains("welcome"))
        .await?;
    opening_retry(&raw.text()).ok_or_else(|| {
        Problem::fail(
            "the first field to be `retry: <ms>`",
            format!("{:?}", first_field(&raw.text())),
        )
    })
}

/// Splits SSE text into frames (the fields between blank lines, as [`Lines`] reads them:
/// CR, LF and CRLF line ends, a BOM at the start), dropping comment lines.
pub fn frames(text: &str) -> Vec<Vec<(String, String)>> {
    let mut frames = Vec::new();
    let mut frame = Vec::new();
    for line in Lines::default().feed(text.as_bytes()) {
        match line {
            Line::Blank if !frame.is_empty() => frames.push(std::mem::take(&mut frame)),
            Line::Field { name, value, .. } => frame.push((name, value)),
            Line::Blank | Line::Comment(_) => {}
        }
    }
    frames
}

/// The first value of field `name` in a frame.
pub fn field<'a>(frame: &'a [(String, String)], name: &str) -> Option<&'a str> {
    frame
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}
