//! The core profile's ids: what a browser sends back as `Last-Event-ID` when it reconnects,
//! and what the server makes of it.
//!
//! An id must name one event: a client that resumes after an id shared by several events
//! skips the others, and one reused by another connection for another event resumes from
//! the wrong place. Ids are opaque, so the checks compare events, never guess at ids' form.

use std::collections::HashMap;

use super::{Arrival, Feed, no_events, read_until, with_ids};
use crate::client::{Events, Raw, StreamRequest};
use crate::event_stream::Event;
use crate::{Problem, Res, Target, ensure};

/// How many events with ids each connection reads.
const SAMPLE: usize = 4;

/// Last-Event-ID values no server issued: garbage, huge, negative, non-ASCII, hostile.
const BAD_IDS: [&str; 6] = [
    "not-an-id-at-all",
    "-1",
    "99999999999999999999999999999999",
    "ünïcødé ✓",
    "'; DROP TABLE events; --",
    "%00%0d%0a",
];

/// An event as a comparison sees it: its type and data (its id is the key).
fn content(event: &Event) -> (&str, &str) {
    (&event.event, &event.data)
}

/// Fails when two events of `events`, read on one connection, carry the same id.
fn unique_within(events: &[&Event]) -> Res {
    let mut by_id: HashMap<&str, Vec<&str>> = HashMap::new();
    for event in events {
        by_id.entry(&event.id).or_default().push(&event.event);
    }
    let shared = events
        .iter()
        .map(|event| event.id.as_str())
        .find(|id| by_id[id].len() > 1);
    if let Some(id) = shared {
        return Err(Problem::fail(
            "each id on one event only (a client resuming after it skips the others)",
            format!(
                "id {id:?} on {} events: {}",
                by_id[id].len(),
                by_id[id].join(", ")
            ),
        ));
    }
    Ok(())
}

/// Opens a stream and reads until it has [`SAMPLE`] events with ids, or the timeout.
async fn sample(target: &Target, request: &StreamRequest) -> Res<(Events, Vec<Arrival>)> {
    let mut events = Events::open(target, request).await?;
    let seen = read_until(&mut events, target.timeout, |seen| {
        with_ids(seen).len() >= SAMPLE
    })
    .await;
    Ok((events, seen))
}

/// WHATWG §9.2.6 (`id` sets the last event ID) and §9.2.4: an id names one event. No two
/// events on a connection share one, and a second connection that gets the same id gets
/// the same event with it.
pub async fn ids_are_unique_and_never_reused(target: Target) -> Res {
    let _feed = Feed::start(&target);
    let (_first, seen) = sample(&target, &StreamRequest::default()).await?;
    let first = with_ids(&seen);
    if first.is_empty() {
        return Err(Problem::Skip(if seen.is_empty() {
            no_events(target.timeout)
        } else {
            "no event carries an id (the resume check says what that costs)".into()
        }));
    }
    unique_within(&first)?;
    let (_second, later) = sample(&target, &StreamRequest::default()).await?;
    let second = with_ids(&later);
    unique_within(&second)?;
    let earlier: HashMap<&str, &Event> = first.iter().map(|e| (e.id.as_str(), *e)).collect();
    for event in second {
        if let Some(before) = earlier.get(event.id.as_str()) {
            ensure!(
                content(before) == content(event),
                "an id to name the same event on every connection",
                format!(
                    "id {:?} named {:?} on one connection, {:?} on the next",
                    event.id,
                    crate::report::one_line(&before.data, 24),
                    crate::report::one_line(&event.data, 24)
                )
            );
        }
    }
    Ok(())
}

/// WHATWG §9.2.4: a client that reconnects with `Last-Event-ID: X` (an id it received)
/// gets what follows X: no event again, and, if the server keeps history, none lost. A
/// first connection stays open as the reference for what followed.
pub async fn resume_after_last_event_id_continues_without_repeat(target: Target) -> Res {
    let _feed = Feed::start(&target);
    let (mut reference, mut seen) = sample(&target, &StreamRequest::default()).await?;
    let Some(resume_at) = with_ids(&seen).first().map(|e| (*e).clone()) else {
        return Err(Problem::fail(
            "events with ids, so that a reconnecting client can say where it was",
            if seen.is_empty() {
                no_events(target.timeout)
            } else {
                format!(
                    "{} events, none with an id: a client that reconnects loses what it missed",
                    seen.len()
                )
            },
        ));
    };
    let (_resumed, resumed) = sample(&target, &StreamRequest::resume(&resume_at.id)).await?;
    let got: Vec<Event> = with_ids(&resumed).into_iter().cloned().collect();
    let Some(next) = got.first() else {
        return Err(Problem::fail(
            format!("events after resuming from {:?}", resume_at.id),
            no_events(target.timeout),
        ));
    };
    let upto = seen
        .iter()
        .position(|a| a.event == resume_at)
        .map_or(0, |at| at + 1);
    ensure!(
        !with_ids(&seen[..upto]).iter().any(|e| e.id == next.id),
        format!("the events after {:?}, not that one again", resume_at.id),
        format!(
            "{}#{} again: the server reads no Last-Event-ID and starts over",
            next.event, next.id
        )
    );
    // Read the reference on until it has what the resumed stream got, to compare.
    let last = got.last().map_or("", |e| e.id.as_str());
    let more = read_until(&mut reference, target.timeout, |more| {
        more.iter().any(|a| a.event.id == last)
    })
    .await;
    seen.extend(more);
    continues(&resume_at.id, &with_ids(&seen[upto..]), &got)
}

/// Fails unless `got`, read after resuming from `from`, is what the reference read after
/// it (`after`): from its first event on, none lost, none out of place.
fn continues(from: &str, after: &[&Event], got: &[Event]) -> Res {
    let Some(start) = got
        .first()
        .and_then(|next| after.iter().position(|e| e.id == next.id))
    else {
        let next = got.first().map(|e| format!("{}#{}", e.event, e.id));
        return Err(Problem::fail(
            format!("the events after {from:?}"),
            format!("{next:?}, which the open connection never got"),
        ));
    };
    ensure!(
        start == 0,
        format!("the events after {from:?}, none lost"),
        format!(
            "it went on at {:?}: {start} event(s) sent meanwhile were lost (no history)",
            after[start].id
        )
    );
    let differ = got
        .iter()
        .zip(after)
        .position(|(got, want)| got.id != want.id || content(got) != content(want));
    if let Some(at) = differ {
        return Err(Problem::fail(
            format!("the events after {from:?} in order"),
            format!(
                "event {} after it was {}#{}, not {}#{}",
                at + 1,
                got[at].event,
                got[at].id,
                after[at].event,
                after[at].id
            ),
        ));
    }
    Ok(())
}

/// WHATWG §9.2.4: a `Last-Event-ID` is whatever a client sends, so one the server never
/// issued (garbage, huge, non-ASCII) gets a stream (200) or a clean refusal (4xx), never a
/// 5xx or a dropped connection, and the server goes on serving.
pub async fn a_bad_last_event_id_gets_200_or_a_clean_4xx(target: Target) -> Res {
    let huge = "9".repeat(4000);
    for id in BAD_IDS.iter().copied().chain([huge.as_str()]) {
        let shown = crate::report::one_line(id, 24);
        let mut answer = Raw::open(&target, &StreamRequest::resume(id))
            .await
            .map_err(|problem| problem.concerning(format_args!("Last-Event-ID {shown:?}")))?;
        if !(answer.status == 200 || (400..500).contains(&answer.status)) {
            return Err(Problem::fail(
                format!("200 or a 4xx for Last-Event-ID {shown:?}"),
                answer.summary().await,
            ));
        }
    }
    let after = Events::open(&target, &StreamRequest::default()).await;
    after
        .map(drop)
        .map_err(|problem| problem.concerning("a plain stream after the bad ids"))
}
