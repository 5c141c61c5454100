//! What every variant does around its idiom: admit a client, greet it, work out its catch-up,
//! publish, report metrics. The idiom crates call these and differ only in how they turn an
//! [`Opening`] into a stream.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::cors::Cors;
use crate::event::{Event, EventName};
use crate::hub::{Hub, Replay};
use crate::memory::MemoryHub;
use crate::metrics::{ClientGuard, Metrics};
use crate::publish;
use crate::reply::Reply;

/// Headers every `GET /stream` response carries besides `Content-Type`.
///
/// `X-Accel-Buffering: no` stops nginx-style proxies from buffering the stream; `no-cache`
/// stops caches from replaying a stale one.
pub const STREAM_HEADERS: [(&str, &str); 2] =
    [("cache-control", "no-cache"), ("x-accel-buffering", "no")];

/// The shared state of one server: its configuration, hub, counters and shutdown signal.
pub struct Service {
    /// The variant's name, sent in `welcome` and on metrics.
    pub server: &'static str,
    /// The flags it was started with.
    pub config: Config,
    /// Where events live.
    pub hub: Arc<dyn Hub>,
    /// Counters for `/metrics`; shared with every [`ClientGuard`].
    pub metrics: Arc<Metrics>,
    /// The `--allowed-origins` policy.
    pub cors: Cors,
    /// Cancelled once at shutdown; every open stream ends when it is.
    pub shutdown: CancellationToken,
}

/// Everything a new stream sends before and while it goes live, in contract order.
pub struct Opening {
    /// Holds the client's place in the connected-clients gauge; drop it with the stream.
    pub guard: ClientGuard,
    /// The `retry:` delay, sent first.
    pub retry: Duration,
    /// The `welcome` frame (no id).
    pub welcome: Arc<Event>,
    /// The `reset` frame, when the client's last id could not be resumed exactly.
    pub reset: Option<Arc<Event>>,
    /// Retained events after the client's last id, oldest first.
    pub replay: Vec<Arc<Event>>,
    /// Everything published after `replay` was taken.
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Service {
    /// A service on an in-memory hub sized by `config`.
    pub fn new(server: &'static str, config: Config, shutdown: CancellationToken) -> Arc<Self> {
        let hub = MemoryHub::new(config.history as usize, config.queue as usize);
        Self::with_hub(server, config, Arc::new(hub), shutdown)
    }

    /// A service on any hub.
    pub fn with_hub(
        server: &'static str,
        config: Config,
        hub: Arc<dyn Hub>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Service {
            server,
            cors: Cors::new(config.allowed_origins.clone()),
            config,
            hub,
            metrics: Arc::default(),
            shutdown,
        })
    }

    /// Admits a client and subscribes it after `last_event_id`; 503 past `--max-clients`.
    pub fn open_stream(&self, last_event_id: Option<&str>) -> Result<Opening, Reply> {
        let guard = self.admit()?;
        let subscription = self.hub.subscribe(last_event_id);
        let (reset, replay) = self.catch_up(subscription.replay);
        Ok(Opening {
            guard,
            retry: self.config.retry(),
            welcome: self.welcome(),
            reset,
            replay,
            live: subscription.live,
        })
    }

    /// Takes a place in the connected-clients gauge, or the contract's 503.
    pub fn admit(&self) -> Result<ClientGuard, Reply> {
        self.metrics
            .admit(self.config.max_clients as usize)
            .ok_or_else(|| {
                let retry_after = self.config.retry_ms.div_ceil(1000).max(1);
                Reply::error(503, "too many clients; retry later")
                    .with_header("retry-after", retry_after.to_string())
            })
    }

    /// Splits a hub replay into the `reset` frame (if any) and the events, counting both.
    pub fn catch_up(&self, replay: Replay) -> (Option<Arc<Event>>, Vec<Arc<Event>>) {
        self.metrics.add_replayed(replay.events.len());
        let reset = replay.reset.map(|reset| {
            self.metrics.add_reset();
            let body = json!({
                "reason": reset.reason,
                "message": reset.reason.explain(),
                "oldest_id": reset.oldest_id,
                "last_id": reset.last_id,
            });
            Arc::new(Event::unsequenced(
                EventName::server("reset"),
                body.to_string(),
            ))
        });
        (reset, replay.events)
    }

    /// The `welcome` frame: who is speaking, where the stream stands, and the settings a
    /// client (or the conformance suite) needs to size its expectations.
    pub fn welcome(&self) -> Arc<Event> {
        let config = &self.config;
        let body = json!({
            "server": self.server,
            "last_id": self.hub.status().last_id,
            "history": config.history,
            "queue": config.queue,
            "tick_ms": config.tick_ms,
            "keepalive_ms": config.keepalive_secs.as_millis() as u64,
            "retry_ms": config.retry_ms,
        });
        Arc::new(Event::unsequenced(
            EventName::server("welcome"),
            body.to_string(),
        ))
    }

    /// Handles `POST /publish` from its raw parts; `body` is `Err` past the size limit.
    pub async fn publish(
        &self,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: Result<&[u8], Reply>,
    ) -> Reply {
        let accepted = async {
            publish::authorize(self.config.publish_token.as_deref(), authorization)?;
            let draft = publish::parse(content_type, body)?;
            self.hub
                .publish(draft)
                .await
                .map_err(|error| Reply::error(503, error.to_string()))
        };
        match accepted.await {
            Ok(event) => Reply::json(202, &json!({ "id": event.id_str() })),
            Err(reply) => reply,
        }
    }

    /// `GET /metrics`.
    pub fn metrics_reply(&self) -> Reply {
        let text = self.metrics.render(self.server, &self.hub.status());
        Reply::text(200, "text/plain; version=0.0.4", text)
    }

    /// `GET /healthz`: 200 while the server is up and not shutting down.
    pub fn health_reply(&self) -> Reply {
        if self.shutdown.is_cancelled() {
            Reply::error(503, "shutting down")
        } else {
            Reply::json(200, &json!({ "status": "ok", "server": self.server }))
        }
    }

    /// The keep-alive interval.
    pub fn keepalive(&self) -> Duration {
        self.config.keepalive_secs
    }
}

/// Where a client wants to resume: the `Last-Event-ID` header, else `?lastEventId=`.
///
/// The header wins because a browser updates it on every automatic reconnect, while a query
/// parameter stays whatever the page put in the URL when it created the `EventSource`.
/// Header bytes that are not UTF-8 are kept (lossily) so that the hub can call them
/// malformed rather than have them silently ignored.
pub fn resume_point(header: Option<&[u8]>, query: Option<&str>) -> Option<String> {
    let from_header = header
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .filter(|id| !id.is_empty());
    from_header.or_else(|| {
        form_urlencoded::parse(query?.as_bytes())
            .find(|(key, _)| key == "lastEventId")
            .map(|(_, value)| value.into_owned())
            .filter(|id| !id.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_query() {
        assert_eq!(
            resume_point(Some(b"h-1"), Some("lastEventId=q-1")).as_deref(),
            Some("h-1")
        );
        assert_eq!(
            resume_point(None, Some("x=1&lastEventId=q%2D1")).as_deref(),
            Some("q-1")
        );
        assert_eq!(
            resume_point(Some(b""), Some("lastEventId=q-1")).as_deref(),
            Some("q-1")
        );
        assert_eq!(resume_point(None, Some("other=1")), None);
        assert_eq!(
            resume_point(Some(b"\xff"), None).as_deref(),
            Some("\u{fffd}")
        );
    }

    #[tokio::test]
    async fn stream_opens_with_welcome_and_resets_foreign_ids() {
        let service = Service::new("test", Config::defaults(), CancellationToken::new());
        service
            .publish(Some("application/json"), None, Ok(br#"{"data":"x"}"#))
            .await;
        let opening = service
            .open_stream(Some("ffffffffffff-1"))
            .expect("admitted");
        assert!(opening.welcome.data.contains(r#""server":"test""#));
        let reset = opening.reset.expect("foreign id resets");
        assert!(
            reset.data.contains(r#""reason":"foreign""#),
            "{}",
            reset.data
        );
        assert_eq!(opening.replay.len(), 1);
        assert_eq!(service.metrics.connected(), 1);
    }
}
