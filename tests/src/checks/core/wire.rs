//! The core profile on the wire: events that parse as a browser parses them, written as
//! they happen, and a stream that is never silent long enough for a proxy to cut it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Arrival, Feed, no_events, read_until};
use crate::client::{Events, Raw, StreamRequest};
use crate::{Problem, Res, Target, ensure};

/// How many events the framing check reads.
const FRAMING_SAMPLE: usize = 6;
/// How far apart, by the server's clock, the events the flushing check compares must be
/// produced: a buffer shows only across more time than [`FLUSH_SLACK`].
const FLUSH_SPAN: Duration = Duration::from_secs(2);
/// How much more one event may be delayed than another before it counts as held back.
const FLUSH_SLACK: Duration = Duration::from_secs(1);
/// Arrivals closer than this are one burst (one write, or one tick's several events).
const BURST_GAP: Duration = Duration::from_millis(100);
/// How many separate bursts show a stream written as it goes, when events carry no time.
const RHYTHM_BURSTS: usize = 3;
/// The interval the spec's authoring notes advise for comments, when the caller gives none.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Scheduling slack on top of the keep-alive interval.
const KEEPALIVE_SLACK: Duration = Duration::from_secs(1);

/// WHATWG §9.2.5–9.2.6: every line the server writes means to a browser what it seems to:
/// no field name a browser does not know (`Data:`, `evnt:`, a stray BOM), no `retry` but
/// digits, no id with NUL, no event without data (never dispatched), only UTF-8. CR, LF
/// and CRLF line ends are all fine.
pub async fn framing_reads_as_a_browser_reads_it(target: Target) -> Res {
    let _feed = Feed::start(&target);
    let mut events = Events::open(&target, &StreamRequest::default()).await?;
    let seen = read_until(&mut events, target.timeout, |seen| {
        seen.len() >= FRAMING_SAMPLE
    })
    .await;
    let flaws = events.parser().flaws();
    if let Some(first) = flaws.first() {
        return Err(Problem::fail(
            "every line to mean what it seems to a browser",
            format!(
                "{} misread line(s); first {:?}: {}",
                flaws.len(),
                first.line,
                first.why
            ),
        ));
    }
    ensure!(
        !seen.is_empty(),
        "events a browser dispatches",
        no_events(target.timeout)
    );
    Ok(())
}

/// Practice (§9.2.7: layers "unaware of the timing requirements"): each event is written
/// and flushed as it is produced. Judged by the server's own clock when its events carry a
/// time (an RFC 3339 string, or seconds or milliseconds since the epoch, as the data or as
/// a JSON field): events held back together arrive with delays that differ by the time they
/// were held. Without times, by their rhythm: a stream written as it goes arrives in
/// separate bursts, a buffered one not at all (too few bursts to tell is a skip: a server
/// that sends a first batch and then waits is not buffering).
pub async fn events_are_flushed_as_they_are_produced(target: Target) -> Res {
    let _feed = Feed::start(&target);
    let mut events = Events::open(&target, &StreamRequest::default()).await?;
    let seen = read_until(&mut events, target.timeout, |seen| {
        produced_span(seen).is_some_and(|span| span >= FLUSH_SPAN)
            || (bursts(seen) >= RHYTHM_BURSTS && produced_span(seen).is_none())
    })
    .await;
    ensure!(!seen.is_empty(), "events", no_events(target.timeout));
    match produced_span(&seen) {
        Some(span) if span >= FLUSH_SPAN => delays_agree(&seen),
        _ if bursts(&seen) >= RHYTHM_BURSTS => Ok(()),
        _ => Err(Problem::Skip(format!(
            "too few events to judge in {:?} ({} in {} bursts); give a longer --timeout",
            target.timeout,
            seen.len(),
            bursts(&seen)
        ))),
    }
}

/// Fails when some event arrived more than [`FLUSH_SLACK`] later, after it was produced,
/// than another: it was held back. (Only differences count, so the two clocks need not
/// agree.)
fn delays_agree(seen: &[Arrival]) -> Res {
    let delays: Vec<(f64, &Arrival)> = seen
        .iter()
        .filter_map(|arrival| {
            let produced = timestamp(&arrival.event.data)?;
            Some((seconds(arrival.at) - seconds(produced), arrival))
        })
        .collect();
    let fastest = delays.iter().map(|(d, _)| *d).fold(f64::INFINITY, f64::min);
    let Some((slowest, event)) = delays.iter().max_by(|a, b| a.0.total_cmp(&b.0)) else {
        return Ok(());
    };
    ensure!(
        slowest - fastest <= FLUSH_SLACK.as_secs_f64(),
        format!("every event within {FLUSH_SLACK:?} of when it was produced"),
        format!(
            "{}#{} arrived {:.1} s later than the quickest (held back, then sent in a burst)",
            event.event.event,
            event.event.id,
            slowest - fastest
        )
    );
    Ok(())
}

/// How far apart, by their own timestamps, the timed events in `seen` were produced.
fn produced_span(seen: &[Arrival]) -> Option<Duration> {
    let times: Vec<f64> = seen
        .iter()
        .filter_map(|arrival| timestamp(&arrival.event.data))
        .map(seconds)
        .collect();
    let first = times.iter().copied().reduce(f64::min)?;
    let last = times.iter().copied().reduce(f64::max)?;
    Some(Duration::from_secs_f64(last - first))
}

/// How many separate bursts the events of `seen` arrived in.
fn bursts(seen: &[Arrival]) -> usize {
    let starts = seen.windows(2).filter(|pair| {
        pair[1]
            .at
            .duration_since(pair[0].at)
            .is_ok_and(|gap| gap >= BURST_GAP)
    });
    usize::from(!seen.is_empty()) + starts.count()
}

/// Seconds since the epoch, as a float (times before it count as 0).
fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// When an event says it was produced: its data, or a top-level field of its JSON data,
/// that is an RFC 3339 time or a plausible epoch time in seconds or milliseconds.
pub fn timestamp(data: &str) -> Option<SystemTime> {
    let data = data.trim();
    if let Some(time) = time_of(&Value::String(data.to_owned())) {
        return Some(time);
    }
    match serde_json::from_str::<Value>(data).ok()? {
        Value::Object(fields) => fields.values().find_map(time_of),
        value => time_of(&value),
    }
}

/// A JSON value read as a time, if it plausibly is one (between 2001 and 2286).
fn time_of(value: &Value) -> Option<SystemTime> {
    let seconds = match value {
        Value::String(text) => match humantime::parse_rfc3339_weak(text) {
            Ok(time) => return Some(time),
            Err(_) => text.parse::<f64>().ok()?,
        },
        Value::Number(number) => number.as_f64()?,
        _ => return None,
    };
    // In whole microseconds, which f64 holds exactly for these magnitudes.
    let micros = match seconds {
        s if (1e9..1e10).contains(&s) => s * 1e6,
        ms if (1e12..1e13).contains(&ms) => ms * 1e3,
        _ => return None,
    };
    Some(UNIX_EPOCH + Duration::from_micros(micros.round() as u64))
}

/// WHATWG §9.2.7 (authoring notes): proxies drop connections that stay idle, so a stream
/// writes something (a `:` comment does) at least every keep-alive interval: `--keepalive`,
/// or the spec's "every 15 seconds or so".
pub async fn silence_never_outlasts_the_keep_alive_interval(target: Target) -> Res {
    let interval = target.keepalive.unwrap_or(DEFAULT_KEEPALIVE);
    let bound = interval + KEEPALIVE_SLACK;
    let mut raw = Raw::open(&target, &StreamRequest::default()).await?;
    let start = tokio::time::Instant::now();
    while start.elapsed() < bound {
        let expected = format!("some bytes (a `:` comment will do) at least every {interval:?}");
        match raw.read_chunk(bound).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Problem::fail(
                    expected,
                    format!("the stream ended after {} bytes", raw.bytes.len()),
                ));
            }
            Err(_) => {
                return Err(Problem::fail(
                    expected,
                    format!("{bound:?} of silence after {} bytes", raw.bytes.len()),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_read_from_the_guides_events() {
        let at = |data| {
            timestamp(data)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis())
        };
        assert_eq!(at("2026-12-01T10:11:09.123Z"), Some(1_796_119_869_123));
        assert_eq!(
            at(r#"{"timestamp": 1796119869123, "value": 5}"#),
            Some(1_796_119_869_123)
        );
        assert_eq!(at("1796119869.5"), Some(1_796_119_869_500));
        assert_eq!(at("Hello from x (tick 3)"), None);
        assert_eq!(at(r#"{"value": 42, "status": "ok"}"#), None);
    }
}
