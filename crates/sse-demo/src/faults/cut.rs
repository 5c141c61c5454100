//! Cut the network: the relay drops the page's connections and refuses new ones for a few
//! seconds while the variant publishes on; then the page must come back by itself, resume
//! after the last id it had, and miss nothing.
//!
//! What the page should get after the cut is known exactly: a reference stream of the demo's
//! own, resuming from the same id with the page's topics, gets it from the variant directly.
//! The row compares the two: events lost, events duplicated.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{Params, Row, Target, page_back, page_query, poll_until};
use crate::client::{Publisher, Subscriber};

/// The topic of the events published during the cut: one the page takes.
const TOPIC: &str = "demo/cut";
/// Events published as the network goes down, on top of the ticker's (and one more as it
/// comes back).
const DURING: usize = 3;
/// How long the page may take to list what it missed once it is back.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Runs the fault against one variant.
pub async fn run(target: &Target, params: &Params) -> Row {
    let Some(last) = target.relay.seen(|seen| seen.last_id().map(str::to_owned)) else {
        return Row::failed(
            target,
            "the page has no events through the demo yet: open the page first",
        );
    };
    match cut(target, params, &last).await {
        Ok(row) => row,
        Err(error) => {
            target.relay.restore();
            Row::failed(target, format!("the cut could not run: {error}"))
        }
    }
}

/// Cuts, publishes, restores, and compares the page with the reference.
async fn cut(target: &Target, params: &Params, last: &str) -> std::io::Result<Row> {
    let (status, reference) = Subscriber::open(target.addr(), &page_query(), Some(last)).await?;
    let mut reference =
        reference.ok_or_else(|| std::io::Error::other(format!("the reference got {status}")))?;
    let cut_at = Instant::now();
    let dropped = target.relay.cut();
    let mut publisher = Publisher::connect(target.addr()).await?;
    for n in 1..=DURING {
        let data = format!("sent during the cut, {n} of {DURING}");
        publisher.publish("cut", TOPIC, &data).await?;
    }
    let down = Duration::from_secs_f64(params.seconds);
    tokio::time::sleep(down.saturating_sub(cut_at.elapsed())).await;
    // The last event of the cut: everything the page missed comes up to and with it.
    let newest = publisher
        .publish("cut", TOPIC, "sent as the network comes back")
        .await?;
    let restored = Instant::now();
    target.relay.restore();

    let deadline = tokio::time::Instant::now() + CATCH_UP;
    let expected = reference.ids_through(&newest, deadline).await?;
    let back = page_back(target, restored).await;
    let caught_up = poll_until(CATCH_UP, || {
        let ids = target.relay.seen(|seen| seen.ids_since(restored));
        ids.contains(&newest).then_some(ids)
    })
    .await;
    let page = caught_up.unwrap_or_else(|| target.relay.seen(|seen| seen.ids_since(restored)));
    let had = target.relay.seen(|seen| {
        seen.ids
            .iter()
            .filter(|(at, _)| *at < cut_at)
            .map(|(_, id)| id.clone())
            .collect::<HashSet<String>>()
    });
    let compared = Compared::new(&expected, &page, &had);
    let mut row = Row::new(target);
    row.figure("dropped", "connections dropped", dropped as u64, "")
        .seconds(
            "down_s",
            "network down",
            Some(restored.duration_since(cut_at)),
        )
        .figure(
            "missed",
            "published meanwhile",
            expected.len() as u64,
            "events",
        )
        .seconds(
            "back_after_s",
            "page back after",
            back.as_ref().map(|s| s.at.duration_since(restored)),
        )
        .figure(
            "resumed_from",
            "resumed after",
            back.as_ref().and_then(|s| s.resume_from.clone()),
            "",
        )
        .figure("replayed", "page got", compared.got as u64, "of them")
        .figure("lost", "lost", compared.lost as u64, "")
        .figure("duplicated", "duplicated", compared.duplicated as u64, "");
    let resumed_right = back.as_ref().and_then(|s| s.resume_from.as_deref()) == Some(last);
    row.ok = back.is_some() && resumed_right && compared.lost == 0 && compared.duplicated == 0;
    row.note = if row.ok {
        format!(
            "the browser reconnected by itself with Last-Event-ID {last}, and the replay and the \
             live feed joined with no gap and no duplicate"
        )
    } else if back.is_none() {
        "the page did not come back through the demo in time".to_owned()
    } else {
        "the page's events after the cut differ from what the variant sent".to_owned()
    };
    Ok(row)
}

/// The page's ids after the cut, against what it should have got.
struct Compared {
    /// Expected events the page got.
    got: usize,
    /// Expected events the page did not get.
    lost: usize,
    /// Events the page got twice, or had before the cut already.
    duplicated: usize,
}

impl Compared {
    /// Compares `page` (ids since the network came back) with `expected` (the reference's
    /// ids after the page's last one), given the ids the page `had` before the cut.
    fn new(expected: &[String], page: &[String], had: &HashSet<String>) -> Compared {
        let mut seen = HashSet::new();
        let duplicated = page
            .iter()
            .filter(|id| had.contains(*id) || !seen.insert(id.as_str()))
            .count();
        let lost = expected
            .iter()
            .filter(|id| !seen.contains(id.as_str()))
            .count();
        Compared {
            got: expected.len() - lost,
            lost,
            duplicated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn losses_and_duplicates_are_counted() {
        let had: HashSet<String> = ids(&["a-1", "a-2"]).into_iter().collect();
        let exact = Compared::new(&ids(&["a-3", "a-4"]), &ids(&["a-3", "a-4", "a-5"]), &had);
        assert_eq!((exact.got, exact.lost, exact.duplicated), (2, 0, 0));
        let bad = Compared::new(&ids(&["a-3", "a-4"]), &ids(&["a-2", "a-4", "a-4"]), &had);
        assert_eq!((bad.got, bad.lost, bad.duplicated), (1, 1, 2));
    }
}
