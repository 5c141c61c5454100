//! The core profile: what any SSE server must do, judged only from its own events, so that
//! it runs against a server in any language that has never heard of this project.
//!
//! Each check names the rule it tests: a section of the WHATWG HTML standard's
//! server-sent events chapter (<https://html.spec.whatwg.org/multipage/server-sent-events.html>),
//! or, marked "practice", what the spec's authoring notes (§9.2.7) and deployed proxies
//! demand of a stream that must arrive as it is written. docs/CONTRACT.md, point 0, says the
//! same in prose.

pub mod clients;
pub mod headers;
pub mod ids;
pub mod wire;

use std::time::{Duration, SystemTime};

use http::Method;

use crate::client::{self, Events};
use crate::event_stream::Event;
use crate::{Check, Profile, Target};

/// The check every other one needs: a stream that a browser would open at all.
pub const STREAM: &str = "stream_answers_200_with_text_event_stream";
/// The framing check: events that parse as a browser parses them.
const FRAMING: &str = "framing_reads_as_a_browser_reads_it";
/// The id check: what resuming stands on.
const IDS: &str = "ids_are_unique_and_never_reused";

/// Declares a core [`Check`] from an `async fn(Target) -> Res`, with its rule and the
/// checks it comes after.
macro_rules! core_check {
    ($module:ident :: $name:ident, $rule:literal, [$($after:expr),*]) => {
        Check {
            name: stringify!($name),
            profile: Profile::Core,
            point: 0,
            rule: $rule,
            after: &[$($after),*],
            run: |target| Box::pin($module::$name(target)),
            flags: &[],
        }
    };
}

/// The core checks, the stream's own first and in the order a fix pays off.
pub fn all() -> Vec<Check> {
    vec![
        core_check!(
            headers::stream_answers_200_with_text_event_stream,
            "WHATWG 9.2.3 processing",
            []
        ),
        core_check!(
            headers::stream_is_marked_no_cache,
            "practice: Cache-Control",
            [STREAM]
        ),
        core_check!(
            headers::stream_is_sent_uncompressed_to_gzip_clients,
            "practice: 9.2.7 notes",
            [STREAM]
        ),
        core_check!(
            headers::stream_tells_proxies_not_to_buffer,
            "practice: X-Accel-Buffering",
            [STREAM]
        ),
        core_check!(
            wire::framing_reads_as_a_browser_reads_it,
            "WHATWG 9.2.5-9.2.6 parsing",
            [STREAM]
        ),
        core_check!(
            wire::events_are_flushed_as_they_are_produced,
            "practice: 9.2.7 notes",
            [FRAMING]
        ),
        core_check!(
            ids::ids_are_unique_and_never_reused,
            "WHATWG 9.2.6 id, 9.2.4",
            [FRAMING]
        ),
        core_check!(
            ids::resume_after_last_event_id_continues_without_repeat,
            "WHATWG 9.2.4 Last-Event-ID",
            [IDS]
        ),
        core_check!(
            ids::a_bad_last_event_id_gets_200_or_a_clean_4xx,
            "WHATWG 9.2.4 Last-Event-ID",
            [STREAM]
        ),
        core_check!(
            wire::silence_never_outlasts_the_keep_alive_interval,
            "WHATWG 9.2.7 comments",
            [STREAM]
        ),
        core_check!(
            clients::a_client_that_disconnects_is_released,
            "practice: resources freed",
            [STREAM]
        ),
        core_check!(
            clients::cors_with_credentials_echoes_the_origin,
            "Fetch CORS, 9.2.2 credentials",
            [STREAM]
        ),
    ]
}

/// An event and when its bytes arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The event as a browser dispatches it.
    pub event: Event,
    /// When its bytes arrived, by this machine's clock.
    pub at: SystemTime,
}

/// Reads events until `enough` holds for what was read, the stream ends, or `within`
/// passes; a check judges what came (too little is its own failure, said its own way).
pub async fn read_until(
    events: &mut Events,
    within: Duration,
    mut enough: impl FnMut(&[Arrival]) -> bool,
) -> Vec<Arrival> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while !enough(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.next(left).await {
            Ok(Some(event)) => seen.push(Arrival {
                event,
                at: events.arrived(),
            }),
            Ok(None) | Err(_) => break,
        }
    }
    seen
}

/// The events of `seen` that carry an id of their own.
pub fn with_ids(seen: &[Arrival]) -> Vec<&Event> {
    seen.iter()
        .map(|arrival| &arrival.event)
        .filter(|event| event.carries_id && !event.id.is_empty())
        .collect()
}

/// What a check says when no event came at all: the likely causes, and the flags for them.
pub fn no_events(within: Duration) -> String {
    format!(
        "no event within {within:?} (a server with no events of its own needs --publish-url; \
         a slow one, --timeout)"
    )
}

/// Makes the server emit an event now and then while it lives, when the target says how
/// (`--publish-url`); without that, the checks wait for the server's own events.
pub struct Feed(Option<tokio::task::JoinHandle<()>>);

/// How often a [`Feed`] publishes.
const FEED_EVERY: Duration = Duration::from_millis(300);

impl Feed {
    /// Starts publishing, if the target can be made to emit events.
    pub fn start(target: &Target) -> Feed {
        let Some(publish) = target.publish.clone() else {
            return Feed(None);
        };
        let (at, path) = client::split_url(target, &publish.url);
        let json = serde_json::from_str::<serde_json::Value>(&publish.body).is_ok();
        let content_type = if json {
            "application/json"
        } else {
            "text/plain"
        };
        let bearer = target.token.as_ref().map(|token| format!("Bearer {token}"));
        Feed(Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FEED_EVERY);
            loop {
                ticks.tick().await;
                let mut headers = vec![("content-type", content_type)];
                if let Some(bearer) = &bearer {
                    headers.push(("authorization", bearer));
                }
                let body = publish.body.clone();
                // A publish that fails shows as missing events, which the check reports.
                let _ = client::fetch(&at, Method::POST, &path, &headers, body).await;
            }
        })))
    }
}

impl Drop for Feed {
    /// The feed stops with the check that started it.
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
