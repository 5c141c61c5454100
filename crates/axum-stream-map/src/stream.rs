//! The stream-map idiom (Spring WebFlux style): a stream is a pipeline, not a loop.
//!
//! `GET /stream` builds one value and returns it: the `retry` frame, then `welcome`, then a
//! `reset` when the hub needs one, then the replayed history, then the live broadcast, each a
//! stream, chained in that order and mapped to each event's frame. Nothing here loops or
//! awaits per event: axum polls the pipeline when the socket can take more, so backpressure
//! comes for free, and the whole connection is one expression you can read top to bottom.
//!
//! Where the idiom needs care:
//! - The splice between replay and live is not this file's to get right: the hub hands out
//!   the replay and the live receiver atomically, and `chain` keeps their order.
//! - A subscriber that falls more than `--queue` events behind gets `Lagged` from the
//!   broadcast channel; `map_while` ends the stream there (the slow-consumer policy), and the
//!   browser reconnects with `Last-Event-ID` and resumes from history.
//! - axum's graceful shutdown waits for open responses, and an SSE response never finishes
//!   by itself, so the pipeline ends with `take_until` the stream's end (shutdown, or the
//!   client's token expiring).
//! - The live broadcast may carry other topics (the hub gives a stream of several
//!   selectors every event); a `filter` keeps the client's (its replay comes filtered from
//!   sse-core).
//! - The client's place in the connected-clients gauge is a guard moved into the pipeline:
//!   when hyper drops the stream on disconnect, the guard drops with it.
//! - The pipeline's items are the events' frames, encoded once by sse-core for every
//!   subscriber, and the body is axum's plain `Body::from_stream`, not its `Sse`: `Sse` takes
//!   only axum's own `Event`, a builder that encodes into a fresh buffer per subscriber, and
//!   at 1,000 subscribers that was most of the server's work (docs/IDIOMS.md has the figures).

use std::convert::Infallible;
use std::future::ready;
use std::iter::once;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use futures_util::stream::{self, StreamExt as _};
use sse_core::metrics::GaugeSpec;
use sse_core::{Service, frame};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::Admitted;

/// This idiom's own figure on `/metrics`. It keeps no state outside the pipeline, so the
/// figure is the connected clients again, counted by what holds them.
pub static PIPELINES: GaugeSpec = GaugeSpec {
    name: "sse_pipelines_open",
    help: "Stream-map pipelines alive now (an sse-idioms extension).",
};

/// `GET /stream`: the contract's event stream for one admitted client, as one pipeline.
pub async fn stream(
    State(service): State<Arc<Service>>,
    Admitted(opening): Admitted,
) -> impl IntoResponse {
    // Live events until this subscriber lags past its queue; then the stream ends. Only
    // its topics pass: a filter, like any other step of the pipeline.
    let metrics = Arc::clone(&service.metrics);
    let topics = opening.topics;
    let live = BroadcastStream::new(opening.live);
    let live = tokio_stream::StreamExt::map_while(live, move |received| match received {
        Ok(event) => Some(event),
        Err(BroadcastStreamRecvError::Lagged(missed)) => {
            metrics.add_lagged(missed);
            None
        }
    })
    .filter(move |event| ready(topics.matches(&event.topic)));

    // retry, welcome, reset?, replay..., live...: the contract's order, as one chain.
    let catch_up = once(opening.welcome)
        .chain(opening.reset)
        .chain(opening.replay);
    let events = stream::iter(catch_up)
        .chain(live)
        .map(|event| event.frame());
    let frames = stream::once(ready(frame::retry(opening.retry)))
        .chain(events)
        .take_until(opening.end);

    // The client's places in the connected-clients gauge and in the open pipelines.
    let guards = (
        opening.guard,
        service.metrics.idiom_gauge(&PIPELINES).hold(),
    );
    let body = frame::keep_alive(frames, service.config.keepalive).map(move |frame| {
        // Owning the guards here ties the gauges to the stream's life.
        let _connected = &guards;
        Ok::<_, Infallible>(frame)
    });
    (
        [(CONTENT_TYPE, frame::CONTENT_TYPE)],
        Body::from_stream(body),
    )
}
