//! Contract point 15: several instances on one Redis log (`--hub redis`), checked with two
//! instances of different idioms and a real `redis-server` that the checks kill, restart
//! (with its data, empty, or from an older snapshot), flush, and cut the connections of.
//!
//! These need control of Redis and of the instances, so they are harness trials, named
//! `<variant>::redis::<check>`, where the variant is instance A and the next registered
//! variant is instance B. Each trial starts its own Redis in a temp dir and stops it.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use serde_json::Value;

use crate::checks::service::{metric, wait_for_metric};
use crate::client::{self, Events, Fetched, Publisher, Raw, StreamRequest};
use crate::harness::{self, Server, Variant, redis_flags};
use crate::redis_server::{Durability, RedisServer};
use crate::{Problem, Res, Target, ensure};

/// A shared-log trial: instance A's variant, instance B's.
pub type SharedLogTrial = fn(Variant, Variant) -> Result<(), Failed>;

/// Every shared-log trial, with its name.
pub const TRIALS: [(&str, SharedLogTrial); 12] = [
    (
        "redis::an_event_reaches_both_instances_with_one_id",
        one_id_everywhere,
    ),
    (
        "redis::resume_on_the_other_instance_is_exact_while_both_publish",
        resume_across,
    ),
    (
        "redis::concurrent_publishes_get_consecutive_ids_their_receipts_name",
        concurrent_publishes,
    ),
    (
        "redis::a_restarted_instance_resumes_old_ids_without_reset",
        restarted_instance,
    ),
    (
        "redis::unreachable_redis_at_start_exits_1_naming_redis_url",
        unreachable_at_start,
    ),
    (
        "redis::lost_redis_refuses_publish_with_503_and_keeps_streams_open",
        lost_redis,
    ),
    (
        "redis::redis_back_with_its_data_continues_without_reset",
        back_with_data,
    ),
    (
        "redis::redis_back_empty_starts_a_new_log_and_ends_streams",
        back_empty,
    ),
    ("redis::flushall_starts_a_new_log_and_ends_streams", flushed),
    (
        "redis::rolled_back_redis_starts_a_new_log_and_ends_streams",
        rolled_back,
    ),
    (
        "redis::killed_connections_recover_without_reset",
        connections_killed,
    ),
    (
        "redis::history_is_trimmed_and_older_ids_get_too_old",
        trimmed_history,
    ),
];

/// The contract's bound on cross-instance delivery (point 15.1).
const ACROSS: Duration = Duration::from_secs(1);
/// Slack on top of the contract's bounds, for a loaded test machine.
const SLACK: Duration = Duration::from_secs(1);

/// Flags for an instance on `redis` under `prefix`, quiet unless a trial needs the ticker.
fn instance_flags(redis: &RedisServer, prefix: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = redis_flags(&redis.url(), prefix);
    flags.extend(["--tick-ms", "0"].map(str::to_owned));
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    flags
}

/// Starts `variant` with `flags` on a free port.
fn instance(variant: Variant, flags: &[String]) -> Result<Server, Failed> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    Server::start_with(variant, &flags, addr)
        .map_err(|e| format!("starting {}: {e}", variant.name).into())
}

/// Runs `check` on a fresh client runtime, turning its problem into the trial's failure.
fn run(check: impl std::future::Future<Output = Res>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    runtime
        .block_on(check)
        .map_err(|problem| format!("contract point 15: {problem}").into())
}

/// Stops every server, reporting the first that did not stop in time.
fn stop(servers: impl IntoIterator<Item = Server>) -> Result<(), Failed> {
    let mut first = Ok(());
    for server in servers {
        if let Err(error) = server.stop() {
            first = first.and(Err(error.into()));
        }
    }
    first
}

/// A subscriber that has read its welcome (checked to name the Redis hub).
async fn subscriber(target: &Target) -> Res<Events> {
    let mut events = Events::open(target, &StreamRequest::default()).await?;
    let welcome = events.welcome().await?;
    ensure!(
        welcome.hub.as_deref() == Some("redis"),
        r#"welcome with "hub": "redis""#,
        format!("{:?}", welcome.hub)
    );
    Ok(events)
}

/// The epoch part of an id (`<epoch>-<seq>`).
fn epoch_of(id: &str) -> &str {
    id.split_once('-').map_or(id, |(epoch, _)| epoch)
}

/// Publishes until the server accepts (202), within `within`; the id and how long it took.
async fn publish_when_back(
    target: &Target,
    data: &str,
    within: Duration,
) -> Res<(String, Duration)> {
    let started = Instant::now();
    loop {
        match client::publish(target, Some("after"), data).await {
            Ok(id) => return Ok((id, started.elapsed())),
            Err(problem) if started.elapsed() < within => {
                let _ = problem;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(problem) => {
                return Err(problem.concerning(format_args!(
                    "a publish within {within:?} of Redis coming back"
                )));
            }
        }
    }
}

/// 15.1: an event published on A reaches subscribers on A and on B with the same id within
/// a second, and the same from B.
fn one_id_everywhere(a: Variant, b: Variant) -> Result<(), Failed> {
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "one-id", &[]);
    let (on_a, on_b) = (instance(a, &flags)?, instance(b, &flags)?);
    let outcome = run(async {
        let mut streams = [
            subscriber(&on_a.target).await?,
            subscriber(&on_b.target).await?,
        ];
        for (from, name) in [(&on_a.target, "from-a"), (&on_b.target, "from-b")] {
            let id = client::publish(from, Some(name), "shared").await?;
            for events in &mut streams {
                let seen = events
                    .until(ACROSS + SLACK, |e| e.event == name)
                    .await
                    .map_err(|p| p.concerning(format_args!("{name} on both instances")))?;
                let got = seen.last().map(|e| e.id.clone()).unwrap_or_default();
                ensure!(
                    got == id,
                    format!("{name} under the receipt's id {id}"),
                    got
                );
            }
        }
        Ok(())
    });
    outcome.and(stop([on_a, on_b]))
}

/// 15.2: a client resuming on B with an id it got from A receives exactly the events after
/// it, while both instances publish.
fn resume_across(a: Variant, b: Variant) -> Result<(), Failed> {
    const PER_INSTANCE: usize = 60;
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "resume-across", &[]);
    let (on_a, on_b) = (instance(a, &flags)?, instance(b, &flags)?);
    let outcome = run(async {
        let mut reference = subscriber(&on_a.target).await?;
        let publishers = [on_a.target.clone(), on_b.target.clone()].map(|target| {
            tokio::spawn(async move {
                let mut publisher = Publisher::connect(&target).await?;
                for n in 0..PER_INSTANCE {
                    publisher.publish(Some("both"), format!("{n}")).await?;
                }
                Ok::<_, Problem>(())
            })
        });
        // Resume points taken from A's stream while both publish.
        let mut seen = Vec::new();
        let mut joiners = Vec::new();
        while joiners.len() < 3 {
            let event = reference
                .next(Duration::from_secs(10))
                .await?
                .ok_or_else(|| Problem::fail("A's stream to stay open", "it ended"))?;
            seen.push(event.id.clone());
            if seen.len() % 25 == 0 {
                let joiner =
                    Events::open(&on_b.target, &StreamRequest::resume(event.id.clone())).await?;
                joiners.push((event.id, joiner));
            }
        }
        for publisher in publishers {
            publisher
                .await
                .map_err(|e| Problem::fail("a publisher task", e.to_string()))??;
        }
        let end = client::publish(&on_a.target, Some("both-end"), "end").await?;
        let rest = reference
            .until(Duration::from_secs(10), |e| e.id == end)
            .await?;
        seen.extend(rest.into_iter().map(|e| e.id));
        for (resumed_at, mut joiner) in joiners {
            let opening = joiner.opening().await?;
            ensure!(
                opening.reset().is_none(),
                format!("no reset on B for {resumed_at}, an id from A"),
                format!("{:?}", opening.first)
            );
            let mut got: Vec<String> = opening.first.into_iter().map(|e| e.id).collect();
            if got.last() != Some(&end) {
                let more = joiner
                    .until(Duration::from_secs(10), |e| e.id == end)
                    .await?;
                got.extend(more.into_iter().map(|e| e.id));
            }
            let from = seen
                .iter()
                .position(|id| *id == resumed_at)
                .map_or(0, |at| at + 1);
            ensure!(
                got == seen[from..],
                format!(
                    "on B, exactly A's {} events after {resumed_at}",
                    seen.len() - from
                ),
                format!("{} events, first {:?}", got.len(), got.first())
            );
        }
        Ok(())
    });
    outcome.and(stop([on_a, on_b]))
}

/// 15.1 and 15.2 under concurrent publishers: publishes that arrive together (and that the
/// hub may commit in one script call) each get their own id, consecutive, and the one its
/// receipt names, on both instances.
fn concurrent_publishes(a: Variant, b: Variant) -> Result<(), Failed> {
    const PUBLISHERS: usize = 16;
    const EACH: usize = 25;
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "concurrent", &[]);
    let (on_a, on_b) = (instance(a, &flags)?, instance(b, &flags)?);
    let outcome = run(async {
        let mut streams = [
            subscriber(&on_a.target).await?,
            subscriber(&on_b.target).await?,
        ];
        let publishers = (0..PUBLISHERS).map(|p| {
            let target = on_a.target.clone();
            tokio::spawn(async move {
                let mut publisher = Publisher::connect(&target).await?;
                let mut receipts = Vec::with_capacity(EACH);
                for n in 0..EACH {
                    let data = format!("p{p}-{n}");
                    receipts.push((publisher.publish(Some("burst"), data.clone()).await?, data));
                }
                Ok::<_, Problem>(receipts)
            })
        });
        let mut receipts = std::collections::HashMap::new();
        for publisher in publishers.collect::<Vec<_>>() {
            let published = publisher
                .await
                .map_err(|e| Problem::fail("a publisher task", e.to_string()))??;
            receipts.extend(published);
        }
        let total = PUBLISHERS * EACH;
        ensure!(
            receipts.len() == total,
            format!("{total} distinct ids in the receipts"),
            receipts.len().to_string()
        );
        for events in &mut streams {
            let mut got = Vec::with_capacity(total);
            while got.len() < total {
                let more = events
                    .until(Duration::from_secs(10), |e| e.event == "burst")
                    .await
                    .map_err(|p| p.concerning(format_args!("{} of {total} events", got.len())))?;
                got.extend(more.into_iter().filter(|e| e.event == "burst"));
            }
            let seqs: Vec<u64> = got
                .iter()
                .filter_map(|e| e.id.rsplit_once('-')?.1.parse().ok())
                .collect();
            ensure!(
                seqs.windows(2).all(|pair| pair[1] == pair[0] + 1) && seqs.len() == total,
                format!("{total} events with consecutive ids"),
                format!("{:?}", seqs.iter().take(10).collect::<Vec<_>>())
            );
            for event in &got {
                let named = receipts.get(&event.id).map(String::as_str);
                ensure!(
                    named == Some(event.data.as_str()),
                    format!("event {} to carry what its receipt published", event.id),
                    format!("{:?} (receipt for {:?})", event.data, named)
                );
            }
        }
        Ok(())
    });
    outcome.and(stop([on_a, on_b]))
}

/// 15.3: an instance restarted while Redis keeps its data resumes old ids exactly, with no
/// reset.
fn restarted_instance(a: Variant, _b: Variant) -> Result<(), Failed> {
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "restart", &[]);
    let first = instance(a, &flags)?;
    let ids = run_value(async {
        let mut publisher = Publisher::connect(&first.target).await?;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(publisher.publish(Some("before"), format!("{n}")).await?);
        }
        Ok(ids)
    });
    stop([first])?;
    let ids = ids?;
    let again = instance(a, &flags)?;
    let outcome = run(async {
        let mut resumed =
            Events::open(&again.target, &StreamRequest::resume(ids[1].clone())).await?;
        let opening = resumed.opening().await?;
        ensure!(
            opening.reset().is_none(),
            "no reset for an id the log still holds, after the restart",
            format!("{:?}", opening.first)
        );
        let mut got: Vec<String> = opening.first.into_iter().map(|e| e.id).collect();
        if got.last() != ids.last() {
            let last = ids[4].clone();
            got.extend(
                resumed
                    .until(Duration::from_secs(10), |e| e.id == last)
                    .await?
                    .into_iter()
                    .map(|e| e.id),
            );
        }
        ensure!(
            got == ids[2..],
            format!("exactly {:?}", &ids[2..]),
            format!("{got:?}")
        );
        Ok(())
    });
    outcome.and(stop([again]))
}

/// [`run`] for a check that returns a value.
fn run_value<T>(check: impl std::future::Future<Output = Res<T>>) -> Result<T, Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?;
    runtime
        .block_on(check)
        .map_err(|problem| format!("contract point 15: {problem}").into())
}

/// 15.4: with Redis unreachable at start, the server exits 1 within 10 s, naming
/// `--redis-url` (and never printing the URL's password).
fn unreachable_at_start(a: Variant, _b: Variant) -> Result<(), Failed> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = closed.local_addr().map_err(|e| e.to_string())?.port();
    drop(closed);
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let args = ["--port", "0", "--hub", "redis", "--redis-url", url.as_str()];
    let started = Instant::now();
    let mut child = harness::spawn_main(a, &args).map_err(|e| e.to_string())?;
    let status = harness::wait_exit(&mut child, Duration::from_secs(10))?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if status.code() != Some(1) || !stderr.contains("--redis-url") || stderr.contains("hunter2") {
        return Err(format!(
            "expected exit status 1 within 10 s and a message naming --redis-url without its password; got {status} after {:?} and {stderr:?}",
            started.elapsed()
        )
        .into());
    }
    Ok(())
}

/// A stream read raw (to see keep-alive comments) from an instance.
async fn raw_stream(target: &Target) -> Res<Raw> {
    let mut raw = Raw::open(target, &StreamRequest::default()).await?;
    raw.read_until(Duration::from_secs(5), |text| text.contains("welcome"))
        .await?;
    Ok(raw)
}

/// Publishes once and expects the contract's 503: JSON, `Retry-After`, within 2 s.
async fn expect_publish_refused(target: &Target, data: &str) -> Res {
    let mut publisher = Publisher::connect(target).await?;
    let body = serde_json::json!({ "event": "lost", "data": data }).to_string();
    let started = Instant::now();
    let refused: Fetched = publisher.send("application/json", body).await?;
    let took = started.elapsed();
    refused.expect_json_error(503)?;
    ensure!(
        refused.header("retry-after").parse::<u64>().is_ok(),
        "Retry-After on the 503",
        format!("{:?}", refused.header("retry-after"))
    );
    ensure!(
        took <= Duration::from_secs(2) + SLACK,
        "the 503 within 2 s",
        format!("{took:?}")
    );
    Ok(())
}

/// Kills a durable Redis under an instance with an open stream, and checks what the
/// contract says of that time: publishes refused, the stream kept open on keep-alives, the
/// hub reported down. Returns the open stream.
async fn lose_redis(redis: &mut RedisServer, target: &Target) -> Res<Raw> {
    let mut raw = raw_stream(target).await?;
    redis.kill();
    expect_publish_refused(target, "never delivered").await?;
    wait_for_metric(target, "sse_hub_up", Duration::from_secs(2) + SLACK, |up| {
        up == 0.0
    })
    .await?;
    let health = client::get(target, "/healthz").await?;
    ensure!(
        health.status == 200,
        "/healthz 200 while Redis is down (see CONTRACT.md)",
        format!("{} {}", health.status, client::tail(&health.body))
    );
    // Two keep-alive intervals' worth of comments, and the stream still open.
    let comments =
        |text: &str| text.matches(":keep-alive").count() + text.matches(": keep-alive").count();
    let before = comments(&raw.text());
    raw.read_until(Duration::from_secs(3), |text| comments(text) >= before + 2)
        .await?;
    Ok(raw)
}

/// 15.5: Redis lost while running: publish answers 503 JSON with Retry-After within 2 s,
/// nothing is delivered, open streams stay open on keep-alives, `sse_hub_up` drops to 0.
fn lost_redis(a: Variant, _b: Variant) -> Result<(), Failed> {
    let mut redis = RedisServer::start(Durability::Durable)?;
    let flags = instance_flags(&redis, "lost", &[]);
    let server = instance(a, &flags)?;
    let outcome = run(async {
        let raw = lose_redis(&mut redis, &server.target).await?;
        ensure!(
            !raw.text().contains("never delivered"),
            "a refused publish delivered to nobody",
            client::tail(&raw.text()).to_owned()
        );
        Ok(())
    });
    outcome.and(stop([server]))
}

/// 15.6: Redis back with its data: publishing works again within 5 s, the open stream goes
/// on in order with no reset, and the refused event never appears.
fn back_with_data(a: Variant, _b: Variant) -> Result<(), Failed> {
    let mut redis = RedisServer::start(Durability::Durable)?;
    let flags = instance_flags(&redis, "back", &[]);
    let server = instance(a, &flags)?;
    let outcome = run(async {
        let before = client::publish(&server.target, Some("before"), "kept").await?;
        let mut raw = lose_redis(&mut redis, &server.target).await?;
        redis
            .start_again()
            .map_err(|e| Problem::fail("Redis to start again", e))?;
        let (after, _) =
            publish_when_back(&server.target, "after", Duration::from_secs(5) + SLACK).await?;
        ensure!(
            epoch_of(&after) == epoch_of(&before),
            format!("the same log (epoch of {before}) once Redis is back with its data"),
            after.clone()
        );
        raw.read_until(Duration::from_secs(5), |text| text.contains(&after))
            .await?;
        let text = raw.text();
        ensure!(
            !text.contains("event: reset")
                && !text.contains("event:reset")
                && !text.contains("never delivered"),
            "the open stream going on with no reset and without the refused event",
            client::tail(&text).to_owned()
        );
        wait_for_metric(&server.target, "sse_hub_up", SLACK * 5, |up| up == 1.0).await?;
        Ok(())
    });
    outcome.and(stop([server]))
}

/// How the shared-log checks take Redis's data away.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Kill Redis and start it again with no data.
    RestartEmpty,
    /// `FLUSHALL` while everything runs.
    Flush,
    /// Snapshot (`SAVE`), publish more, kill Redis, start it again from the snapshot.
    RollBack,
}

impl Loss {
    /// Takes the data away.
    async fn inflict(self, redis: &mut RedisServer) -> Res {
        let failed = |e: String| Problem::fail("the test's Redis to do as told", e);
        match self {
            Loss::RestartEmpty => {
                redis.kill();
                redis.wipe().map_err(failed)?;
                redis.start_again().map_err(failed)
            }
            Loss::Flush => redis
                .command::<String>("FLUSHALL", &[])
                .await
                .map(drop)
                .map_err(failed),
            Loss::RollBack => {
                redis.kill();
                redis.start_again().map_err(failed)
            }
        }
    }
}

/// 15.7, shared by the lost-data cases: with a stream open on A and ids from the old log,
/// `loss` takes the data away; the first publish after it gets a new epoch, the open stream
/// ends within 5 s of it, an old id then gets a `foreign` reset and the new log's history,
/// and no id of the new log repeats one of the old.
fn new_log_after(a: Variant, b: Variant, loss: Loss) -> Result<(), Failed> {
    let mut redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "new-log", &[]);
    let (on_a, on_b) = (instance(a, &flags)?, instance(b, &flags)?);
    let outcome = run(async {
        let mut old = Vec::new();
        for n in 0..3 {
            old.push(client::publish(&on_b.target, Some("old"), format!("{n}")).await?);
        }
        let mut open = subscriber(&on_a.target).await?;
        if let Loss::RollBack = loss {
            // The snapshot holds the first three; three more are published after it, and
            // the instances see them, before Redis goes back to the snapshot.
            redis
                .command::<String>("SAVE", &[])
                .await
                .map_err(|e| Problem::fail("SAVE to answer", e))?;
            for n in 3..6 {
                old.push(client::publish(&on_b.target, Some("old"), format!("{n}")).await?);
            }
            let last = old[5].clone();
            open.until(Duration::from_secs(5), |e| e.id == last).await?;
        }
        loss.inflict(&mut redis).await?;
        let (first_new, _) =
            publish_when_back(&on_b.target, "new log", Duration::from_secs(5) + SLACK).await?;
        ensure!(
            epoch_of(&first_new) != epoch_of(&old[0]),
            format!(
                "a new epoch after the data was lost (the old one was {})",
                epoch_of(&old[0])
            ),
            first_new.clone()
        );
        ensure!(!old.contains(&first_new), "no id reused", first_new.clone());
        open.drain_to_end(Duration::from_secs(5) + SLACK)
            .await
            .map_err(|p| p.concerning("the stream open on the lost log"))?;
        let mut resumed = Events::open(
            &on_a.target,
            &StreamRequest::resume(old[old.len() - 1].clone()),
        )
        .await?;
        let opening = resumed.opening().await?;
        let reason = opening
            .reset()
            .map(|r| r["reason"].clone())
            .unwrap_or(Value::Null);
        ensure!(
            reason == "foreign",
            "a foreign reset for an id of the lost log",
            format!("{:?}", opening.first)
        );
        let history = resumed
            .until(Duration::from_secs(5), |e| e.id == first_new)
            .await?;
        let reused: Vec<_> = history.iter().filter(|e| old.contains(&e.id)).collect();
        ensure!(
            reused.is_empty(),
            "the new log's history, with no old id",
            format!("{reused:?}")
        );
        Ok(())
    });
    outcome.and(stop([on_a, on_b]))
}

/// 15.7: Redis killed and started again empty.
fn back_empty(a: Variant, b: Variant) -> Result<(), Failed> {
    new_log_after(a, b, Loss::RestartEmpty)
}

/// 15.7: `FLUSHALL` while everything runs.
fn flushed(a: Variant, b: Variant) -> Result<(), Failed> {
    new_log_after(a, b, Loss::Flush)
}

/// 15.7: Redis back from an older snapshot: its numbering would repeat ids already handed
/// out, so the log gets a new epoch instead.
fn rolled_back(a: Variant, b: Variant) -> Result<(), Failed> {
    new_log_after(a, b, Loss::RollBack)
}

/// 15.7: `CLIENT KILL` of every connection (the data intact): publishing and delivery come
/// back within 3 s, with no reset.
fn connections_killed(a: Variant, _b: Variant) -> Result<(), Failed> {
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "killed", &[]);
    let server = instance(a, &flags)?;
    let outcome = run(async {
        let before = client::publish(&server.target, Some("before"), "x").await?;
        let mut raw = raw_stream(&server.target).await?;
        let killed: i64 = redis
            .command("CLIENT", &["KILL", "TYPE", "normal"])
            .await
            .map_err(|e| Problem::fail("CLIENT KILL to answer", e))?;
        ensure!(
            killed >= 2,
            "CLIENT KILL to cut the instance's connections",
            killed.to_string()
        );
        let (after, took) =
            publish_when_back(&server.target, "after", Duration::from_secs(3)).await?;
        ensure!(
            epoch_of(&after) == epoch_of(&before),
            "the same log after CLIENT KILL",
            after.clone()
        );
        let left = (Duration::from_secs(3) + SLACK).saturating_sub(took);
        raw.read_until(left, |text| text.contains(&after)).await?;
        ensure!(
            !raw.text().contains("reset"),
            "no reset after CLIENT KILL",
            client::tail(&raw.text()).to_owned()
        );
        Ok(())
    });
    outcome.and(stop([server]))
}

/// 15.8: history is `--history` events, the stream trimmed with `MAXLEN ~`; a resume from
/// before it gets `too_old`.
fn trimmed_history(a: Variant, _b: Variant) -> Result<(), Failed> {
    const HISTORY: u64 = 16;
    const PUBLISHED: usize = 600;
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let flags = instance_flags(&redis, "trim", &["--history", "16"]);
    let server = instance(a, &flags)?;
    let outcome = run(async {
        let mut publisher = Publisher::connect(&server.target).await?;
        let first = publisher.publish(Some("trim"), "0").await?;
        let mut last = first.clone();
        for n in 1..PUBLISHED {
            last = publisher.publish(Some("trim"), n.to_string()).await?;
        }
        let length: u64 = redis
            .command("XLEN", &["{trim}:log"])
            .await
            .map_err(|e| Problem::fail("XLEN to answer", e))?;
        ensure!(
            (HISTORY..PUBLISHED as u64 / 2).contains(&length),
            format!("the stream trimmed near {HISTORY} entries (MAXLEN ~), never below"),
            format!("{length} entries after {PUBLISHED} publishes")
        );
        let mut resumed = Events::open(&server.target, &StreamRequest::resume(first)).await?;
        let opening = resumed.opening().await?;
        let reason = opening
            .reset()
            .map(|r| r["reason"].clone())
            .unwrap_or(Value::Null);
        ensure!(
            reason == "too_old",
            "a too_old reset for an evicted id",
            format!("{:?}", opening.first)
        );
        let replay = resumed
            .until(Duration::from_secs(5), |e| e.id == last)
            .await?;
        let replayed = replay.iter().filter(|e| e.event == "trim").count() as u64;
        ensure!(
            replayed == HISTORY,
            format!("the {HISTORY} retained events"),
            replayed.to_string()
        );
        let published = metric(&server.target, "sse_events_published_total").await?;
        ensure!(
            published >= PUBLISHED as f64,
            "the log's sequence counted",
            published.to_string()
        );
        Ok(())
    });
    outcome.and(stop([server]))
}
