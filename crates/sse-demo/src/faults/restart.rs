//! Restart a variant: the demo stops its process (SIGTERM: the shutdown path) and starts a new
//! run on the same port. The page reconnects by itself; what it gets depends on the hub, not
//! the idiom: with `--hub memory` the new run cannot place the page's last id and says so with
//! a `reset`, with `--hub redis` the log outlived the process and the page resumes exactly.
//!
//! "Exactly" is checked, not assumed: a reference stream resuming from the page's last id on
//! the new run must get the same events, in the same order, as the page did.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Row, Target, page_back, page_query, poll_until};
use crate::client::Subscriber;

/// How many of the resumed page's events are compared with the reference.
const COMPARED: usize = 3;
/// How long the page may take to list them.
const CATCH_UP: Duration = Duration::from_secs(15);
/// A stop that takes longer than this is worth a word in the row.
const SLOW_STOP: Duration = Duration::from_secs(1);

/// Runs the fault against one variant.
pub async fn run(target: &Target) -> Row {
    let Some(last) = target.relay.seen(|seen| seen.last_id().map(str::to_owned)) else {
        return Row::failed(
            target,
            "the page has no events through the demo yet: open the page first",
        );
    };
    let began = Instant::now();
    let restarted = match target.variant.restart().await {
        Ok(restarted) => restarted,
        Err(error) => return Row::failed(target, format!("the restart failed: {error}")),
    };
    let back = page_back(target, began).await;
    let mut row = Row::new(target);
    row.seconds(
        "stopped_in_s",
        "old run stopped in",
        Some(restarted.stopped),
    )
    .figure("exit", "it exited with", restarted.status.clone(), "")
    .seconds(
        "listening_after_s",
        "new run listening after",
        Some(restarted.listening),
    )
    .seconds(
        "live_after_s",
        "page live again after",
        back.as_ref()
            .and_then(|s| s.first_event)
            .map(|at| at.duration_since(began)),
    );
    let Some(back) = back else {
        row.ok = false;
        row.note = "the page did not come back through the demo in time".to_owned();
        return row;
    };
    let reset = back.reset.as_deref().map(reset_reason);
    row.figure(
        "resumed_from",
        "page resumed after",
        back.resume_from.clone(),
        "",
    )
    .figure("reset", "reset", reset.clone(), "");
    let exact = match &reset {
        Some(_) => None,
        None => Some(compare(target, &last, back.at).await),
    };
    row.figure(
        "exact",
        "exact resume",
        exact.as_ref().map(|e| e.is_ok()),
        "",
    );
    row.ok = back.resume_from.as_deref() == Some(last.as_str())
        && exact.as_ref().is_none_or(Result::is_ok);
    let outcome = match (reset, exact) {
        (Some(reason), _) => format!(
            "the new run keeps a new log (a new epoch), so it cannot place {last}: it said so \
             with a reset ({reason}) and sent its own history"
        ),
        (None, Some(Ok(n))) => format!(
            "the log outlived the process: the page resumed after {last} with no reset, and its \
             next {n} events are the log's"
        ),
        (None, Some(Err(why))) => why,
        (None, None) => String::new(),
    };
    row.note = format!("{outcome}{}", slow_stop(target, restarted.stopped));
    row
}

/// What a slow stop says about the framework, if the old run took a while.
fn slow_stop(target: &Target, stopped: Duration) -> String {
    if stopped < SLOW_STOP {
        return String::new();
    }
    let why = match target.variant.name {
        "actix-push-loop" => {
            "actix waits up to its shutdown timeout (3 s) for open connections, an idle \
             keep-alive one included, though the broadcaster ended every stream at once"
        }
        _ => "the framework waited for connections still open",
    };
    format!(
        ". Its old run took {:.1} s to stop: {why}",
        stopped.as_secs_f64()
    )
}

/// A reset's reason, from its JSON data.
fn reset_reason(data: &str) -> String {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|reset| reset["reason"].as_str().map(str::to_owned))
        .unwrap_or_else(|| data.to_owned())
}

/// Whether the page's first events on its resumed stream (answered at `since`) are what a
/// reference resuming from `last` gets; `Ok(compared)` or what differed.
async fn compare(target: &Target, last: &str, since: Instant) -> Result<usize, String> {
    let page = poll_until(CATCH_UP, || {
        let ids = target.relay.seen(|seen| seen.ids_since(since));
        (ids.len() >= COMPARED).then_some(ids)
    })
    .await
    .ok_or("the page listed too few events after the restart to compare")?;
    let (_, reference) = Subscriber::open(target.addr(), &page_query(), Some(last))
        .await
        .map_err(|e| format!("the reference stream: {e}"))?;
    let mut reference = reference.ok_or("the reference stream was refused")?;
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    let mut expected = Vec::new();
    while expected.len() < COMPARED {
        match reference.next(deadline).await {
            Ok(Some(event)) if event.name == "reset" => {
                return Err("the reference got a reset the page did not".to_owned());
            }
            Ok(Some(event)) => expected.extend(event.id),
            Ok(None) | Err(_) => break,
        }
    }
    if page[..COMPARED] == expected[..] {
        Ok(COMPARED)
    } else {
        Err(format!(
            "after {last} the page got {:?}, the log has {expected:?}",
            &page[..COMPARED]
        ))
    }
}
