//! Contract points 7, 9, 10, 11 and 14: slow consumers, metrics, CORS, the client limit,
//! the page, and JSON errors for everything else.

use std::future::Future;
use std::time::Duration;

use http::Method;

use crate::client::{self, Events, Publisher, StreamRequest, Welcome, describe};
use crate::{Problem, Res, Target, ensure};

/// Reads one sample (summed over labels) from Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The current value of metric `name`.
pub async fn metric(target: &Target, name: &str) -> Res<f64> {
    let metrics = client::get(target, "/metrics").await?;
    sample(&metrics.body, name).ok_or_else(|| {
        Problem::fail(
            format!("metric {name} in /metrics"),
            client::tail(&metrics.body).to_owned(),
        )
    })
}

/// Reads a value every 50 ms until `done` holds or `within` passes: `Ok` with the value that
/// satisfied `done`, or `Err` with the last one read.
pub async fn poll<F: Future<Output = Res<f64>>>(
    within: Duration,
    mut read: impl FnMut() -> F,
    done: impl Fn(f64) -> bool,
) -> Res<Result<f64, f64>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut polls = tokio::time::interval(Duration::from_millis(50));
    loop {
        polls.tick().await;
        let value = read().await?;
        if done(value) {
            return Ok(Ok(value));
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(Err(value));
        }
    }
}

/// Polls metric `name` until `done` holds, within `within`.
pub async fn wait_for_metric(
    target: &Target,
    name: &str,
    within: Duration,
    done: impl Fn(f64) -> bool,
) -> Res<f64> {
    poll(within, || metric(target, name), done)
        .await?
        .map_err(|value| {
            Problem::fail(
                format!("{name} to reach the awaited value within {within:?}"),
                value.to_string(),
            )
        })
}

/// Point 7: a subscriber that stops reading is disconnected once it falls more than its
/// queue behind, without slowing the others; when it reconnects with its last id it gets
/// everything it missed from history.
pub async fn slow_consumer_is_disconnected_and_resumes_from_history(target: Target) -> Res {
    let welcome = Welcome::fetch(&target).await?;
    let lagged_before = metric(&target, "sse_lagged_disconnects_total").await?;
    // Enough 60 KB events to fill the kernel's socket buffers (a few MB on loopback) and
    // then the queue, but few enough that history still holds them for the resume.
    let count = (welcome.history * 3 / 4).min(welcome.queue + 400) as usize;
    let payload = "s".repeat(60 * 1024);

    let stalled_request = StreamRequest {
        recv_buffer: Some(4096),
        ..Default::default()
    };
    let mut stalled = Events::open(&target, &stalled_request).await?;
    stalled.welcome().await?;

    // A healthy subscriber that reads everything, reconnecting like a browser would.
    let mut healthy = Events::open(&target, &StreamRequest::default()).await?;
    healthy.welcome().await?;
    let healthy_target = target.clone();
    let healthy =
        tokio::spawn(async move { read_all_resuming(&healthy_target, healthy, "slow-end").await });

    let mut publisher = Publisher::connect(&target).await?;
    let before = publisher.publish(Some("slow-start"), "start").await?;
    let mut published = Vec::with_capacity(count);
    for n in 0..count {
        published.push(
            publisher
                .publish(Some("slow"), format!("{n}:{payload}"))
                .await?,
        );
    }
    let end = publisher.publish(Some("slow-end"), "end").await?;
    let (healthy_ids, healthy_reconnects) = healthy
        .await
        .map_err(|e| Problem::fail("the healthy reader", e.to_string()))??;
    for id in &published {
        ensure!(
            healthy_ids.contains(id),
            "the healthy subscriber to get every event",
            format!("{id} missing")
        );
    }

    let healthy = Delivered {
        ids: healthy_ids,
        reconnects: healthy_reconnects,
        before,
        published,
        end,
    };
    stalled_reader_was_cut_and_resumes(&target, stalled, &welcome, lagged_before, &healthy).await
}

/// What a healthy subscriber received while another one stalled: the baseline the stalled
/// one is judged against.
pub struct Delivered {
    /// Every id the healthy subscriber received, in order.
    pub ids: Vec<String>,
    /// How often it had to reconnect.
    pub reconnects: usize,
    /// The id of a small event published before the `slow` ones, when both subscribers
    /// were open.
    pub before: String,
    /// The ids of the published `slow` events.
    pub published: Vec<String>,
    /// The id of the `slow-end` event published after them.
    pub end: String,
}

/// The stalled subscriber reads again: it must find its stream ended before `end` (the
/// server ended it, or its kernel reset the connection for the write timeout), counted in
/// `sse_lagged_disconnects_total`; reconnecting with its last id, it gets with no reset
/// exactly the `slow` events the healthy one got after that id.
pub async fn stalled_reader_was_cut_and_resumes(
    target: &Target,
    mut stalled: Events,
    welcome: &Welcome,
    lagged_before: f64,
    healthy: &Delivered,
) -> Res {
    let Delivered {
        ids: healthy_ids,
        reconnects: healthy_reconnects,
        before,
        published,
        end,
    } = healthy;
    let count = published.len();
    let mut last_id = String::new();
    let mut received = 0usize;
    loop {
        match stalled.next_or_end(Duration::from_secs(20)).await? {
            Some(event) if event.id == *end => {
                return Err(Problem::fail(
                    format!(
                        "the stalled subscriber to be disconnected after falling more than queue={} behind",
                        welcome.queue
                    ),
                    format!("it received all {count} events (the server buffered them all)"),
                ));
            }
            Some(event) => {
                if !event.id.is_empty() {
                    last_id = event.id;
                    received += 1;
                }
            }
            None => break,
        }
    }
    // A reset connection loses what its kernel still held, so a subscriber cut under load
    // may have read no whole event: it was sent everything after `before`, and resumes there.
    if last_id.is_empty() {
        last_id.clone_from(before);
    }
    wait_for_metric(
        target,
        "sse_lagged_disconnects_total",
        Duration::from_secs(5),
        |v| v > lagged_before,
    )
    .await?;

    // Reconnecting with its last id, it gets the rest from history, with no reset.
    let mut resumed = Events::open(target, &StreamRequest::resume(last_id.clone())).await?;
    let opening = resumed.opening().await?;
    ensure!(
        opening.reset().is_none(),
        "no reset: what it missed is still in history",
        format!(
            "{:?} (healthy reader reconnected {healthy_reconnects} times)",
            opening.first
        )
    );
    let mut rest: Vec<_> = opening.first.into_iter().collect();
    if !rest.iter().any(|e| e.id == *end) {
        rest.extend(
            resumed
                .until(Duration::from_secs(30), |e| e.id == *end)
                .await?,
        );
    }
    let got: Vec<&String> = rest
        .iter()
        .filter(|e| e.event == "slow")
        .map(|e| &e.id)
        .collect();
    let start = healthy_ids
        .iter()
        .position(|id| *id == last_id)
        .map_or(0, |at| at + 1);
    let missed: Vec<&String> = healthy_ids[start..]
        .iter()
        .filter(|id| published.contains(id))
        .collect();
    ensure!(
        got == missed,
        format!(
            "the {} events after {last_id} (it had read {received})",
            missed.len()
        ),
        describe(&rest)
    );
    Ok(())
}

/// Reads every event from `events` until one named `end`, reconnecting with
/// `Last-Event-ID` whenever the server ends the stream; returns the ids and the number of
/// reconnects.
pub async fn read_all_resuming(
    target: &Target,
    mut events: Events,
    end: &str,
) -> Res<(Vec<String>, usize)> {
    let mut ids = Vec::new();
    let mut reconnects = 0;
    loop {
        loop {
            match events.next(Duration::from_secs(30)).await? {
                Some(event) if event.event == end => return Ok((ids, reconnects)),
                Some(event) if !event.id.is_empty() => ids.push(event.id),
                Some(_) => {}
                None => break,
            }
        }
        reconnects += 1;
        ensure!(
            reconnects < 20,
            "a healthy reader to stay connected",
            "20 disconnects"
        );
        events = Events::open(
            target,
            &StreamRequest::resume(ids.last().cloned().unwrap_or_default()),
        )
        .await?;
        events.welcome().await?;
    }
}

/// Point 9: `/metrics` is Prometheus text with the contract's counters, and they move.
pub async fn metrics_expose_the_contract_counters(target: Target) -> Res {
    let metrics = client::get(&target, "/metrics").await?;
    ensure!(
        metrics.status == 200,
        "200 for /metrics",
        metrics.status.to_string()
    );
    ensure!(
        metrics.header("content-type").starts_with("text/plain"),
        "Content-Type: text/plain",
        metrics.header("content-type").to_owned()
    );
    for name in [
        "sse_connected_clients",
        "sse_events_published_total",
        "sse_events_replayed_total",
        "sse_lagged_disconnects_total",
        "sse_history_len",
    ] {
        ensure!(
            sample(&metrics.body, name).is_some(),
            format!("metric {name}"),
            client::tail(&metrics.body).to_owned()
        );
    }
    let published = metric(&target, "sse_events_published_total").await?;
    let id = client::publish(&target, Some("counted"), "x").await?;
    let after = metric(&target, "sse_events_published_total").await?;
    ensure!(
        after > published,
        "sse_events_published_total to grow after a publish",
        format!("{published} then {after}")
    );
    let replayed = metric(&target, "sse_events_replayed_total").await?;
    // Resume only once a live stream has the next event: until the push loop's broadcaster
    // has pushed an event, a joining client gets it live, not from history.
    let mut live = Events::open(&target, &StreamRequest::default()).await?;
    live.welcome().await?;
    let next = client::publish(&target, Some("counted"), "y").await?;
    live.until(target.timeout, |e| e.id == next).await?;
    drop(live);
    let mut resumed = Events::open(&target, &StreamRequest::resume(id)).await?;
    resumed.welcome().await?;
    drop(resumed);
    let after = metric(&target, "sse_events_replayed_total").await?;
    ensure!(
        after > replayed,
        "sse_events_replayed_total to grow after a resume",
        format!("{replayed} then {after}")
    );
    Ok(())
}

/// Point 9: `/healthz` answers 200.
pub async fn healthz_answers_200(target: Target) -> Res {
    let health = client::get(&target, "/healthz").await?;
    ensure!(
        health.status == 200,
        "200 for /healthz",
        format!("{} {}", health.status, health.body)
    );
    Ok(())
}

/// Point 9: the connected-clients gauge counts open streams and drops when clients go away,
/// by the next tick or keep-alive at the latest.
pub async fn connected_gauge_drops_when_clients_leave(target: Target) -> Res {
    let mut streams = Vec::new();
    let mut welcome = None;
    for _ in 0..3 {
        let mut events = Events::open(&target, &StreamRequest::default()).await?;
        welcome = Some(events.welcome().await?);
        streams.push(events);
    }
    let welcome = welcome.ok_or_else(|| Problem::fail("a welcome", "none"))?;
    // Streams an earlier check dropped may still be counted until the server next writes
    // to them, so the gauge is only known to move down on its own: the three streams must
    // be counted now, and the gauge must fall by three once they are gone.
    let counted = wait_for_metric(
        &target,
        "sse_connected_clients",
        Duration::from_secs(5),
        |v| v >= 3.0,
    )
    .await?;
    drop(streams);
    let tick = if welcome.tick_ms == 0 {
        u64::MAX
    } else {
        welcome.tick_ms
    };
    let bound = Duration::from_millis(tick.min(welcome.keepalive_ms)) * 2 + Duration::from_secs(2);
    wait_for_metric(&target, "sse_connected_clients", bound, |v| {
        v <= counted - 3.0
    })
    .await
    .map(drop)
}

/// Point 10: an allowed origin gets itself echoed with credentials allowed and
/// `Vary: Origin`, on the stream and on the publish preflight.
pub async fn cors_allows_configured_origins_with_credentials(target: Target) -> Res {
    let Some(origin) = target.allowed_origin.clone() else {
        return Err(Problem::Skip(
            "needs --origin (one of the server's --allowed-origins)".into(),
        ));
    };
    let events = Events::open(
        &target,
        &StreamRequest {
            origin: Some(origin.clone()),
            ..Default::default()
        },
    )
    .await?;
    let header = |name| client::header(&events.headers, name).to_owned();
    ensure!(
        header("access-control-allow-origin") == origin,
        format!("Access-Control-Allow-Origin: {origin}"),
        header("access-control-allow-origin")
    );
    ensure!(
        header("access-control-allow-credentials") == "true",
        "Access-Control-Allow-Credentials: true",
        header("access-control-allow-credentials")
    );
    ensure!(
        events.headers.get_all("vary").iter().any(|v| v
            .to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("origin")),
        "Vary: Origin",
        header("vary")
    );
    let preflight = client::fetch(
        &target,
        Method::OPTIONS,
        "/publish",
        &[
            ("origin", &origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, authorization",
            ),
        ],
        "",
    )
    .await?;
    ensure!(
        (200..300).contains(&preflight.status),
        "a 2xx preflight answer",
        preflight.status.to_string()
    );
    ensure!(
        preflight.header("access-control-allow-origin") == origin,
        "the origin echoed on the preflight",
        preflight.header("access-control-allow-origin").to_owned()
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .to_ascii_uppercase();
    let headers = preflight
        .header("access-control-allow-headers")
        .to_ascii_lowercase();
    ensure!(
        methods.contains("POST"),
        "POST in Access-Control-Allow-Methods",
        methods
    );
    ensure!(
        headers.contains("content-type") && headers.contains("authorization"),
        "content-type and authorization allowed",
        headers
    );
    Ok(())
}

/// Point 10: any other origin gets no CORS headers at all.
pub async fn cors_gives_other_origins_no_headers(target: Target) -> Res {
    let origin = "http://not-allowed.invalid";
    let events = Events::open(
        &target,
        &StreamRequest {
            origin: Some(origin.into()),
            ..Default::default()
        },
    )
    .await?;
    let preflight = client::fetch(
        &target,
        Method::OPTIONS,
        "/publish",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await?;
    for headers in [&events.headers, &preflight.headers] {
        let cors: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        ensure!(
            cors.is_empty(),
            format!("no Access-Control-* headers for {origin}"),
            format!("{cors:?}")
        );
    }
    Ok(())
}

/// Point 11: past `--max-clients`, `GET /stream` answers 503 with `Retry-After`; a place
/// frees up when a client leaves.
pub async fn max_clients_answers_503_with_retry_after(target: Target) -> Res {
    let Some(max) = target.max_clients else {
        return Err(Problem::Skip(
            "needs --max-clients (the server's limit; the check opens that many streams)".into(),
        ));
    };
    let base = metric(&target, "sse_connected_clients").await? as u32;
    let mut open = Vec::new();
    for _ in base..max {
        let mut events = Events::open(&target, &StreamRequest::default()).await?;
        events.welcome().await?;
        open.push(events);
    }
    let refused = client::get(&target, "/stream").await?;
    refused.expect_json_error(503)?;
    let retry_after = refused.header("retry-after");
    ensure!(
        retry_after.parse::<u64>().is_ok(),
        "Retry-After: <seconds>",
        format!("{retry_after:?}")
    );
    open.pop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Events::open(&target, &StreamRequest::default()).await {
            Ok(_) => return Ok(()),
            Err(problem) if tokio::time::Instant::now() > deadline => {
                return Err(Problem::fail(
                    "a stream to be admitted once a client left",
                    problem.to_string(),
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Point 14: the shared client is served at `/` with its modules.
pub async fn page_and_assets_are_served(target: Target) -> Res {
    for (path, content_type, needle) in [
        ("/", "text/html", "app.js"),
        ("/app.js", "javascript", "mountStreamPane"),
        ("/stream-pane.js", "javascript", "EventSource"),
        ("/style.css", "text/css", "{"),
    ] {
        let asset = client::get(&target, path).await?;
        ensure!(
            asset.status == 200,
            format!("200 for {path}"),
            asset.status.to_string()
        );
        ensure!(
            asset.header("content-type").contains(content_type),
            format!("{content_type} for {path}"),
            asset.header("content-type").to_owned()
        );
        ensure!(
            asset.body.contains(needle),
            format!("{path} to contain {needle:?}"),
            client::tail(&asset.body).to_owned()
        );
    }
    Ok(())
}

/// Point 14: unknown paths are 404 and wrong methods 405, each with a JSON error body.
pub async fn unknown_paths_and_methods_get_json_errors(target: Target) -> Res {
    client::get(&target, "/no-such-path")
        .await?
        .expect_json_error(404)?;
    client::get(&target, "/publish")
        .await?
        .expect_json_error(405)?;
    client::fetch(&target, Method::POST, "/stream", &[], "")
        .await?
        .expect_json_error(405)
}
