//! The generator idiom (Flask style): every connection runs its own generator.
//!
//! `GET /stream` starts one `async_stream::stream!` per client and hands it to warp. The
//! generator reads like the loop a Flask view would write with `yield`: send `retry`, send
//! `welcome`, send a `reset` if the hub asks for one, send the replayed history, then wait for
//! the next live event and send it, again and again, until there is a reason to stop. Each
//! `yield` is one frame on the wire, written when warp next polls the generator, so the
//! socket's pace is the generator's pace.
//!
//! Where the idiom needs care:
//! - The splice between replay and live is not this file's to get right: the hub hands out
//!   the replay and the live receiver atomically, and the generator drains one, then the other.
//! - A subscriber that falls more than `--queue` events behind gets `Lagged` from the
//!   broadcast channel; the generator counts it and returns (the slow-consumer policy), and
//!   the browser reconnects with `Last-Event-ID` and resumes from history.
//! - warp's graceful shutdown waits for open responses, and an SSE response never finishes by
//!   itself, so the wait for a live event is a `select!` against the stream's end (shutdown,
//!   or the client's token expiring).
//! - The live feed may carry other topics (the hub gives a stream of several selectors
//!   every event); an `if` keeps the client's (its replay comes filtered from sse-core).
//! - warp wants the stream `Send + Sync` (see [`generator`]).
//! - What it yields is each event's frame, encoded once by sse-core for every subscriber,
//!   and the body is warp's plain `reply::stream`, not `sse::reply`: that takes only warp's
//!   own `Event`, which encodes into a fresh `String` per subscriber, and at 1,000
//!   subscribers that was most of the server's work (docs/IDIOMS.md has the figures).
//! - Per-connection state is the generator's locals. The client's place in the
//!   connected-clients gauge is a guard moved into the generator: when hyper drops the
//!   response on disconnect, the generator drops, and the guard with it.

use std::convert::Infallible;
use std::sync::Arc;

use async_stream::stream;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use sse_core::metrics::GaugeSpec;
use sse_core::{Opening, Service, frame};
use tokio::sync::broadcast::error::RecvError;

/// This idiom's own figure on `/metrics`. A connection's state is its generator's locals,
/// so the figure is the connected clients again, counted by what holds them.
pub static GENERATORS: GaugeSpec = GaugeSpec {
    name: "sse_generators_running",
    help: "Generators alive now, one per stream (an sse-idioms extension).",
};

/// `GET /stream`: the contract's event stream for one admitted client, as a generator with
/// keep-alive comments around it.
pub fn stream(service: &Arc<Service>, opening: Opening) -> impl warp::Reply {
    let frames = generator(Arc::clone(service), opening);
    let body = frame::keep_alive(frames, service.config.keepalive).map(Ok::<_, Infallible>);
    warp::reply::with_header(
        warp::reply::stream(body),
        "content-type",
        frame::CONTENT_TYPE,
    )
}

/// One client's connection, as a generator of frames in contract order.
///
/// `Sync` is warp's demand (`reply::stream` takes only `Send + Sync` streams). The generator
/// keeps it by holding the `broadcast::Receiver` itself across its awaits: a boxed stream
/// held there (`BroadcastStream`, say) is not `Sync`, and the generator would not compile.
fn generator(
    service: Arc<Service>,
    opening: Opening,
) -> impl Stream<Item = Bytes> + Send + Sync + 'static {
    let Opening {
        guard,
        retry,
        welcome,
        reset,
        replay,
        mut live,
        topics,
        mut end,
    } = opening;
    let running = service.metrics.idiom_gauge(&GENERATORS).hold();
    stream! {
        // Owned by the generator, so the gauges count this client exactly as long as warp
        // keeps the stream: hyper drops it when the client goes or the generator returns.
        let _connected = (guard, running);

        yield frame::retry(retry);
        yield welcome.frame();
        if let Some(reset) = reset {
            yield reset.frame();
        }
        for event in replay {
            yield event.frame();
        }

        // Live: one event per turn of the loop, and every reason to stop is a `return` next
        // to the await that discovers it. The generator only runs when warp polls it for the
        // next frame, so shutdown can only be noticed here, at the wait.
        loop {
            let received = tokio::select! {
                // Checked first so that a busy feed cannot keep a stopping server (or an
                // expired token) waiting.
                biased;
                () = &mut end => return,
                received = live.recv() => received,
            };
            match received {
                // The feed carries every topic; an `if` keeps the client's.
                Ok(event) => if topics.matches(&event.topic) {
                    yield event.frame();
                },
                // More than `--queue` behind: end the response; the browser reconnects with
                // Last-Event-ID and gets the rest from history.
                Err(RecvError::Lagged(missed)) => {
                    service.metrics.add_lagged(missed);
                    return;
                }
                // The hub is gone: nothing more will come.
                Err(RecvError::Closed) => return,
            }
        }
    }
}
