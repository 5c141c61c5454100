//! Contract points 5 and 6: resuming after `Last-Event-ID`, and the `reset` cases.
//!
//! Ids are opaque, so no check guesses at their form: what a resumed stream must contain is
//! taken from a reference subscriber that was connected all along.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{self, Events, Publisher, Raw, StreamRequest, Welcome, describe};
use crate::event_stream::Event;
use crate::{Problem, Res, Target, ensure};

/// How long a stream may take to deliver what a check waits for.
const WITHIN: Duration = Duration::from_secs(20);

/// The ids of events that carry one (welcome and reset do not).
fn ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !e.id.is_empty())
        .map(|e| e.id.clone())
        .collect()
}

/// The ids after `after` in `ids`.
fn after<'a>(ids: &'a [String], after: &str) -> &'a [String] {
    ids.iter()
        .position(|id| id == after)
        .map_or(&[], |at| &ids[at + 1..])
}

/// Publishes five events, then resumes after the second with `request` and compares the
/// result with a reference subscriber.
async fn resume_after_second(
    target: &Target,
    request: impl FnOnce(String) -> StreamRequest,
) -> Res {
    let mut reference = Events::open(target, &StreamRequest::default()).await?;
    reference.welcome().await?;
    let mut publisher = Publisher::connect(target).await?;
    let mut published = Vec::new();
    for n in 0..5 {
        published.push(
            publisher
                .publish(Some("resume"), format!("resume {n}"))
                .await?,
        );
    }
    let last = published[4].clone();
    let expected = ids(&reference.until(WITHIN, |e| e.id == last).await?);
    let mut resumed = Events::open(target, &request(published[1].clone())).await?;
    let opening = resumed.opening().await?;
    ensure!(
        opening.reset().is_none(),
        "no reset when resuming after a retained id",
        format!("{:?}", opening.first)
    );
    let mut got: Vec<Event> = opening.first.into_iter().collect();
    if !got.iter().any(|e| e.id == last) {
        got.extend(resumed.until(WITHIN, |e| e.id == last).await?);
    }
    let got = ids(&got);
    let want = after(&expected, &published[1]);
    ensure!(
        got == want,
        format!("exactly the events after {}: {want:?}", published[1]),
        format!("{got:?}")
    );
    Ok(())
}

/// Point 5: `Last-Event-ID: X` replays every retained event after X, in order, once.
pub async fn resume_after_last_event_id_header(target: Target) -> Res {
    resume_after_second(&target, StreamRequest::resume).await
}

/// Point 5: `?lastEventId=X` does the same for clients that cannot set headers.
pub async fn resume_after_last_event_id_query(target: Target) -> Res {
    resume_after_second(&target, |id| StreamRequest {
        query_id: Some(id),
        ..Default::default()
    })
    .await
}

/// Point 5: clients resuming while two publishers are busy get history then live with no
/// gap and no duplicate at the splice.
pub async fn resume_splice_has_no_gap_or_duplicate_under_concurrent_publish(target: Target) -> Res {
    const PER_PUBLISHER: usize = 100;
    const RESUMERS: usize = 6;
    let mut reference = Events::open(&target, &StreamRequest::default()).await?;
    reference.welcome().await?;

    // The reference subscriber records every id; joiners resume from its latest.
    let (latest_tx, mut latest) = watch::channel((0usize, String::new()));
    // A `std` mutex: the reader holds it only for a push inside a synchronous callback.
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&recorded);
    let reference = tokio::spawn(async move {
        let events = reference
            .until(WITHIN, |event| {
                if !event.id.is_empty() {
                    let mut ids = record.lock().unwrap_or_else(|e| e.into_inner());
                    ids.push(event.id.clone());
                    latest_tx.send_replace((ids.len(), event.id.clone()));
                }
                event.event == "splice-end"
            })
            .await;
        events.map(|events| ids(&events))
    });

    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut publisher = Publisher::connect(&target).await?;
                for n in 0..PER_PUBLISHER {
                    publisher
                        .publish(Some("splice"), format!("{p}:{n}"))
                        .await?;
                }
                Ok::<_, Problem>(())
            })
        })
        .collect();

    let mut joiners = Vec::new();
    for j in 0..RESUMERS {
        let wanted = (j + 1) * PER_PUBLISHER * 2 / (RESUMERS + 2);
        let resume_at = latest
            .wait_for(|(count, _)| *count >= wanted)
            .await
            .map_err(|_| Problem::fail("the reference subscriber to keep reading", "it stopped"))?
            .1
            .clone();
        let mut joiner = Events::open(&target, &StreamRequest::resume(resume_at.clone())).await?;
        joiners.push((
            resume_at,
            tokio::spawn(async move {
                let opening = joiner.opening().await?;
                if let Some(reset) = opening.reset() {
                    return Err(Problem::fail(
                        "no reset for a retained id",
                        reset.to_string(),
                    ));
                }
                let mut events: Vec<Event> = opening.first.into_iter().collect();
                if !events.iter().any(|e| e.event == "splice-end") {
                    events.extend(joiner.until(WITHIN, |e| e.event == "splice-end").await?);
                }
                Ok(ids(&events))
            }),
        ));
    }
    for publisher in publishers {
        publisher
            .await
            .map_err(|e| Problem::fail("a publisher task", e.to_string()))??;
    }
    client::publish(&target, Some("splice-end"), "done").await?;

    let reference = reference
        .await
        .map_err(|e| Problem::fail("the reference task", e.to_string()))??;
    let mut unique = reference.clone();
    unique.sort();
    unique.dedup();
    ensure!(
        unique.len() == reference.len(),
        "no duplicate ids on the reference stream",
        format!("{} ids, {} distinct", reference.len(), unique.len())
    );
    for (resume_at, joiner) in joiners {
        let got = joiner
            .await
            .map_err(|e| Problem::fail("a joiner task", e.to_string()))??;
        let want = after(&reference, &resume_at);
        if got != want {
            let split = got.iter().zip(want).take_while(|(a, b)| a == b).count();
            return Err(Problem::fail(
                format!("after {resume_at}: the reference's {} events", want.len()),
                format!(
                    "{} events, first difference at #{split}: got {:?}, want {:?}",
                    got.len(),
                    got.get(split),
                    want.get(split)
                ),
            ));
        }
    }
    Ok(())
}

/// Opens a stream resuming after `id` and returns its reset JSON, failing if there is none.
async fn expect_reset(target: &Target, id: &str) -> Res<(serde_json::Value, Events)> {
    let mut events = Events::open(target, &StreamRequest::resume(id)).await?;
    let opening = events.opening().await?;
    let reset = opening.reset().ok_or_else(|| {
        Problem::fail(
            format!(
                "a `reset` event after welcome for Last-Event-ID {:?}",
                client::tail(id)
            ),
            format!("{:?}", opening.first),
        )
    })?;
    let oldest = &reset["oldest_id"];
    ensure!(
        reset["reason"].is_string() && (oldest.is_string() || oldest.is_null()),
        r#"reset JSON with "reason" and "oldest_id""#,
        reset.to_string()
    );
    Ok((reset, events))
}

/// Checks the reason of a reset.
fn reason_is(reset: &serde_json::Value, allowed: &[&str]) -> Res {
    let reason = reset["reason"].as_str().unwrap_or_default();
    ensure!(
        allowed.contains(&reason),
        format!("reset reason {}", allowed.join(" or ")),
        reset.to_string()
    );
    Ok(())
}

/// After a reset that should not replay anything: the next event with an id is live.
async fn continues_live(target: &Target, mut events: Events, before: &str) -> Res {
    let marker = client::publish(target, Some("after-reset"), "live").await?;
    let seen = events.until(WITHIN, |e| e.id == marker).await?;
    ensure!(
        !seen.iter().any(|e| e.id == before),
        "no replay of earlier events after this reset",
        describe(&seen)
    );
    Ok(())
}

/// Point 6: an id older than history gets `reset` (`too_old`) naming the oldest retained id,
/// then the retained events.
pub async fn reset_when_id_is_older_than_history(target: Target) -> Res {
    let history = Welcome::fetch(&target).await?.history;
    let mut publisher = Publisher::connect(&target).await?;
    let first = publisher.publish(Some("evict"), "0").await?;
    let mut last = first.clone();
    for n in 1..=history + 5 {
        last = publisher.publish(Some("evict"), n.to_string()).await?;
    }
    let (reset, mut events) = expect_reset(&target, &first).await?;
    reason_is(&reset, &["too_old"])?;
    let replay = events.until(WITHIN, |e| e.id == last).await?;
    let replayed = ids(&replay);
    ensure!(
        reset["oldest_id"].as_str() == replayed.first().map(String::as_str),
        "oldest_id to be the first replayed event",
        format!(
            "oldest_id {} then {}",
            reset["oldest_id"],
            describe(&replay)
        )
    );
    ensure!(
        replayed.len() as u64 <= history && !replayed.contains(&first),
        format!("at most the {history} retained events, without the evicted {first}"),
        format!("{} events", replayed.len())
    );
    Ok(())
}

/// Point 6: a malformed id gets `reset` (`malformed`), then live events only.
pub async fn reset_when_id_is_malformed(target: Target) -> Res {
    let before = client::publish(&target, Some("before"), "x").await?;
    let (reset, events) = expect_reset(&target, "not an id at all").await?;
    reason_is(&reset, &["malformed"])?;
    continues_live(&target, events, &before).await
}

/// Point 6: an id over 128 bytes is malformed and never echoed back.
pub async fn reset_when_id_is_over_128_bytes_and_not_echoed(target: Target) -> Res {
    let real = client::publish(&target, Some("long"), "x").await?;
    let long = format!("{real}{}", "7".repeat(200));
    let (reset, _) = expect_reset(&target, &long).await?;
    reason_is(&reset, &["malformed"])?;
    let mut raw = Raw::open(&target, &StreamRequest::resume(long.clone())).await?;
    raw.read_until(WITHIN, |text| {
        text.find("reset")
            .is_some_and(|at| text[at..].contains("\n\n"))
    })
    .await?;
    ensure!(
        !raw.text().contains(&"7".repeat(129)),
        "the long id never echoed back",
        client::tail(&raw.text()).to_owned()
    );
    Ok(())
}

/// Point 6: an id of this server's form that it never issued gets `reset`, then live only.
pub async fn reset_when_id_was_never_issued(target: Target) -> Res {
    let real = client::publish(&target, Some("never"), "x").await?;
    // Digits appended to a real id: the same form, a position far in the future.
    let (reset, events) = expect_reset(&target, &format!("{real}999")).await?;
    reason_is(&reset, &["unknown", "malformed"])?;
    continues_live(&target, events, &real).await
}

/// Point 6: an id from an earlier run of the server gets `reset` (`foreign`), never a
/// replay that treats it as a position in this run.
pub async fn reset_when_id_is_from_an_earlier_run(target: Target) -> Res {
    let Some(foreign) = target.foreign_id.clone() else {
        return Err(Problem::Skip(
            "needs --foreign-id (an id from an earlier run of this server)".into(),
        ));
    };
    let (reset, _) = expect_reset(&target, &foreign).await?;
    reason_is(&reset, &["foreign"])
}
