//! The SSE wire format, written once: an event's frame is encoded when the event is made,
//! and every subscriber that gets the event is handed the same bytes.
//!
//! At fan-out scale, building a framework's event value per subscriber (axum's and warp's
//! `Event` are builders that encode into a fresh buffer each) is most of what a pull idiom
//! spends per delivery; the bytes are the same for every subscriber, so `Event::frame`
//! holds them, reference-counted, and a delivery is a pointer copy. The framing is the
//! injection-proof one every check verifies: a name and an id are single lines by
//! construction, and data (already normalised to LF by [`crate::event`]) gets one `data:`
//! line per line.
//!
//! [`keep_alive`] is the other half of what the frameworks' SSE types did: a comment after a
//! quiet interval. It also joins the frames that are ready together ([`coalesce`]), so that a
//! resuming client's replay, or a subscriber's backlog, reaches hyper as one chunk.

use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::stream::poll_fn;
use tokio_stream::wrappers::IntervalStream;
use tokio_stream::{self as stream, Stream, StreamExt as _};

/// The stream's media type, which every frame here is written for.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// The comment sent after a quiet `--keepalive-secs`: ignored by browsers, it keeps proxies
/// from timing the connection out and reaches a dead peer's socket.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b": keep-alive\n\n");

/// The frame for an event: `id:`, `event:` and one `data:` line per line of data, then the
/// blank line that dispatches it.
pub fn encode(id: Option<&str>, name: Option<&str>, data: &str) -> Bytes {
    let lines = data.split('\n');
    let mut frame = BytesMut::with_capacity(data.len() + 32);
    if let Some(id) = id {
        put_field(&mut frame, "id", id);
    }
    if let Some(name) = name {
        put_field(&mut frame, "event", name);
    }
    for line in lines {
        put_field(&mut frame, "data", line);
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// `retry: <ms>`: the reconnection delay the browser waits after a drop.
pub fn retry(delay: Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", delay.as_millis()))
}

/// `name: value\n`. The value must hold no line break: callers pass names and ids (single
/// lines by construction) and data split on LF (the only line break left in it).
fn put_field(frame: &mut BytesMut, name: &str, value: &str) {
    debug_assert!(!value.contains(['\r', '\n']), "one field, one line");
    frame.put_slice(name.as_bytes());
    frame.put_slice(b": ");
    frame.put_slice(value.as_bytes());
    frame.put_u8(b'\n');
}

/// How many bytes [`coalesce`] gathers before it hands them on (one frame may take it past).
pub const COALESCE_BYTES: usize = 16 * 1024;

/// `frames`, with the frames that are ready at once joined into one buffer of about
/// [`COALESCE_BYTES`] at most; it never waits for a frame to join.
///
/// hyper writes each frame as its own HTTP/1.1 chunk (a size line, the frame, a CRLF) and
/// flushes its queue of buffers every sixteen, so a replay of 300 frames was about 20
/// writes; joined, it is a handful. A single ready frame goes on as it is, uncopied.
pub fn coalesce(frames: impl Stream<Item = Bytes>) -> impl Stream<Item = Bytes> {
    let mut frames = Box::pin(frames);
    let mut ended = false;
    poll_fn(move |cx| {
        if ended {
            return Poll::Ready(None);
        }
        let first = match frames.as_mut().poll_next(cx) {
            Poll::Ready(Some(frame)) => frame,
            other => return other,
        };
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(first.len(), BytesMut::len) < COALESCE_BYTES {
            match frames.as_mut().poll_next(cx) {
                Poll::Ready(Some(next)) => joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&next),
                // Hand on what was gathered; the end comes at the next poll.
                Poll::Ready(None) => {
                    ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        Poll::Ready(Some(joined.map_or(first, BytesMut::freeze)))
    })
}

/// `frames`, [`coalesce`]d, with [`KEEP_ALIVE`] so that the stream is never quiet for
/// `every`.
///
/// The clock ticks every half interval and is never reset: a tick that finds no frame
/// written since the one before sends the comment. So a quiet stream gets a comment between
/// `every / 2` and `every` after its last frame, and an idle one every `every`. Restarting a
/// timer at each frame instead (tokio-stream's `timeout_repeating`) reads the clock and
/// re-arms the timer per frame per subscriber: about 9 % of axum's CPU at 1,000 subscribers
/// (`perf record` under `sse-bench --scenarios fanout`).
pub fn keep_alive(frames: impl Stream<Item = Bytes>, every: Duration) -> impl Stream<Item = Bytes> {
    /// What the merged stream carries.
    enum Beat {
        Frame(Bytes),
        Tick,
        End,
    }
    let half = every / 2;
    let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
    // After a long wait for the socket, one tick, not a burst of the missed ones.
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticks = IntervalStream::new(clock).map(|_| Beat::Tick);
    // `End` after the last frame, since the clock alone never ends.
    let frames = coalesce(frames)
        .map(Beat::Frame)
        .chain(stream::iter([Beat::End]));
    // A frame (or a comment) went out since the last tick.
    let mut fresh = true;
    frames
        .merge(ticks)
        .take_while(|beat| !matches!(beat, Beat::End))
        .filter_map(move |beat| match beat {
            Beat::Frame(frame) => {
                fresh = true;
                Some(frame)
            }
            Beat::Tick => {
                let quiet = !fresh;
                fresh = quiet;
                quiet.then_some(KEEP_ALIVE)
            }
            Beat::End => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_data_is_its_own_field() {
        let frame = encode(Some("e-1"), Some("chat"), "one\n\ntwo\n");
        assert_eq!(
            &frame[..],
            b"id: e-1\nevent: chat\ndata: one\ndata: \ndata: two\ndata: \n\n"
        );
    }

    #[test]
    fn leading_spaces_survive_the_one_a_client_strips() {
        assert_eq!(&encode(None, None, " x")[..], b"data:  x\n\n");
    }

    #[test]
    fn retry_is_in_milliseconds() {
        assert_eq!(&retry(Duration::from_millis(2500))[..], b"retry: 2500\n\n");
    }

    #[tokio::test]
    async fn frames_ready_together_go_on_as_one_and_none_is_waited_for() {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut stream = std::pin::pin!(coalesce(tokio_stream::wrappers::ReceiverStream::new(rx)));
        for data in ["a", "b", "c"] {
            tx.send(encode(None, None, data)).await.unwrap();
        }
        let joined = stream.next().await.expect("the ready frames");
        assert_eq!(&joined[..], b"data: a\n\ndata: b\n\ndata: c\n\n");
        // Nothing ready: the next frame goes on alone, as soon as it comes.
        let alone = encode(None, None, "d");
        tx.send(alone.clone()).await.unwrap();
        let next = stream.next().await.expect("the next frame");
        assert_eq!(next.as_ptr(), alone.as_ptr(), "a lone frame is not copied");
        // A frame over the bound ends a batch; the stream ends after what was gathered.
        let big = encode(None, None, &"x".repeat(COALESCE_BYTES));
        tx.send(big.clone()).await.unwrap();
        tx.send(encode(None, None, "after")).await.unwrap();
        drop(tx);
        assert_eq!(stream.next().await, Some(big));
        assert_eq!(
            stream.next().await.as_deref(),
            Some(&b"data: after\n\n"[..])
        );
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_is_never_more_than_its_interval_after_the_last_frame() {
        let every = Duration::from_secs(16);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut stream = std::pin::pin!(keep_alive(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            every
        ));
        let started = tokio::time::Instant::now();
        assert_eq!(stream.next().await, Some(KEEP_ALIVE));
        assert_eq!(
            started.elapsed(),
            every,
            "an idle stream: one comment per interval"
        );
        let commented = tokio::time::Instant::now();
        assert_eq!(stream.next().await, Some(KEEP_ALIVE));
        assert_eq!(commented.elapsed(), every);

        // A frame 5 s into a half interval: the next tick finds it fresh, the one after
        // finds the stream quiet, 8 + 3 = 11 s after the frame.
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(Bytes::from_static(b"data: x\n\n")).await.unwrap();
        assert_eq!(stream.next().await.as_deref(), Some(&b"data: x\n\n"[..]));
        let sent = tokio::time::Instant::now();
        assert_eq!(stream.next().await, Some(KEEP_ALIVE));
        assert_eq!(sent.elapsed(), Duration::from_secs(11));
        assert!(sent.elapsed() <= every);
        drop(tx);
        assert_eq!(stream.next().await, None, "the stream ends with its frames");
    }
}
