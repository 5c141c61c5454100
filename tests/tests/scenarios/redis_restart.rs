//! On the Redis hub, a server restart costs the page nothing: the log outlives the process,
//! so the page resumes exactly where it was, with no reset and no gap.

use sse_conformance::client::{Events, StreamRequest};
use sse_conformance::harness::redis_flags;
use sse_conformance::redis_server::{Durability, RedisServer};

use crate::e2e::pane;
use crate::e2e::stage::{STEP, Stage, ensure, expect_tick_rows_have_ids};
use crate::e2e::{Context, Outcome};
use crate::{PAGE_READY, RETRY_MS};

/// The server (on `--hub redis`) stops and a new run starts on the same port and the same
/// log; the page reconnects by itself with its last id, and what it lists across the
/// restart is exactly the log's run of events: no `reset`, no gap, no duplicate.
pub async fn server_restart_on_redis_resumes_without_reset(stage: &mut Stage) -> Outcome {
    if !RedisServer::available() {
        return Err("redis-server is not installed (apt-get install redis-server)".into());
    }
    let redis = RedisServer::start(Durability::Ephemeral)?;
    let mut flags = redis_flags(&redis.url(), "browser-restart");
    flags.extend(["--retry-ms", RETRY_MS].map(str::to_owned));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let first = stage.serve_anywhere(&flags)?;
    stage.browser.open(first.base.as_str()).await?;
    let before = pane::wait_until(
        &stage.browser,
        "the page open with three events listed",
        PAGE_READY,
        |view| view.state == "open" && view.ids().len() >= 3,
    )
    .await?;

    stage.stop_servers().await?;
    stage.restart_on_the_same_port(&first, &flags).await?;
    let count = before.ids().len();
    let after = pane::wait_until(
        &stage.browser,
        "the page open again, listing events from the new run",
        STEP,
        |view| view.state == "open" && view.reconnects >= 1 && view.ids().len() >= count + 6,
    )
    .await?;
    ensure(
        after.notice.is_empty() && !after.rows.iter().any(|r| r.kind == "reset"),
        "no reset: the log outlived the server",
        || after.describe(),
    )?;
    expect_tick_rows_have_ids(&after)?;

    // The log's own run from the page's first id: what the page must list after it.
    let ids = after.ids();
    let (Some(first_id), Some(last_id)) = (ids.first(), ids.last()) else {
        return Err(format!("expected events on the page; {}", after.describe()));
    };
    let mut log = Events::open(&first, &StreamRequest::resume(*first_id))
        .await
        .context("opening a subscriber resuming from the page's first id")?;
    let opening = log.opening().await.context("its opening")?;
    let mut run: Vec<String> = opening.first.into_iter().map(|e| e.id).collect();
    if run.last().map(String::as_str) != Some(*last_id) {
        let rest = log
            .until(STEP, |e| e.id == *last_id)
            .await
            .context("the log's run up to the page's last id")?;
        run.extend(rest.into_iter().map(|e| e.id));
    }
    ensure(
        ids[1..] == run,
        "the page's ids after its first to be the log's run, with no gap or duplicate across the restart",
        || format!("page {:?}\nlog  {run:?}", &ids[1..]),
    )?;
    // The refused reconnects while the server was down are network errors; nothing else.
    stage.browser.expect_no_console_errors(true).await
}
