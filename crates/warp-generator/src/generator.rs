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
//! - The live feed carries every topic; an `if` keeps the client's (its replay comes
//!   filtered from sse-core).
//! - warp wants the stream `Send + Sync` (see [`generator`]).
//! - Per-connection state is the generator's locals. The client's place in the
//!   connected-clients gauge is a guard moved into the generator: when hyper drops the
//!   response on disconnect, the generator drops, and the guard with it.

use std::convert::Infallible;
use std::sync::Arc;

use async_stream::stream;
use futures_util::Stream;
use sse_core::metrics::GaugeSpec;
use sse_core::{Opening, Service};
use tokio::sync::broadcast::error::RecvError;
use warp::sse::Event;

/// This idiom's own figure on `/metrics`. A connection's state is its generator's locals,
/// so the figure is the connected clients again, counted by what holds them.
pub static GENERATORS: GaugeSpec = GaugeSpec {
    name: "sse_generators_running",
    help: "Generators alive now, one per stream (an sse-idioms extension).",
};

/// `GET /stream`: the contract's event stream for one admitted client, as a generator with
/// warp's keep-alive around it.
pub fn stream(service: &Arc<Service>, opening: Opening) -> impl warp::Reply {
    let keep_alive = warp::sse::keep_alive()
        .interval(service.config.keepalive)
        .text("keep-alive");
    warp::sse::reply(keep_alive.stream(generator(Arc::clone(service), opening)))
}

/// One client's connection, as a generator of frames in contract order.
///
/// `Sync` is warp's demand (`sse::reply` takes only `Send + Sync` streams). The generator
/// keeps it by holding the `broadcast::Receiver` itself across its awaits: a boxed stream
/// held there (`BroadcastStream`, say) is not `Sync`, and the generator would not compile.
fn generator(
    service: Arc<Service>,
    opening: Opening,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + Sync + 'static {
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

        yield Ok(Event::default().retry(retry));
        yield Ok(to_warp(&welcome));
        if let Some(reset) = reset {
            yield Ok(to_warp(&reset));
        }
        for event in replay {
            yield Ok(to_warp(&event));
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
                    yield Ok(to_warp(&event));
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

/// One core event as warp's SSE event, written `field: value` as the spec's examples and the
/// other variants write it.
///
/// warp writes `field:value`, with no space, and a client removes one space after the colon,
/// so data that began with a space would arrive one space short. Starting every value, and
/// every line of data, with a space of our own keeps such data intact. sse-core has already
/// validated the name and normalised the data to LF-separated lines, which is all warp
/// splits on, so every line of data gets its own `data: ` prefix.
fn to_warp(event: &sse_core::Event) -> Event {
    let mut out = Event::default();
    if let Some(name) = event.name_str() {
        out = out.event(format!(" {name}"));
    }
    if let Some(id) = event.id_str() {
        out = out.id(format!(" {id}"));
    }
    // warp's Event owns its text, so each client copies it once, as it writes it.
    out.data(format!(" {}", event.data.replace('\n', "\n ")))
}
