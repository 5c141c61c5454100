//! What every variant does around its idiom: admit a client, greet it, work out its catch-up,
//! publish, report metrics. The idiom crates call these and differ only in how they turn an
//! [`Opening`] into a stream.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::auth;
use crate::config::{Config, HubKind};
use crate::cors::Cors;
use crate::event::{Draft, Event, EventName};
use crate::hub::{Hub, Replay};
use crate::memory::MemoryHub;
use crate::metrics::{ClientGuard, Metrics};
use crate::publish;
use crate::redis_hub::RedisHub;
use crate::reply::Reply;
use crate::request::RequestHead;
use crate::topic::{Selector, Selectors};

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

/// A client let in to `GET /stream`, before it is subscribed.
pub struct Admission {
    /// Holds the client's place in the connected-clients gauge; drop it with the stream.
    pub guard: ClientGuard,
    /// Where the client asked to resume, if anywhere.
    pub last_event_id: Option<String>,
    /// The `retry:` delay to send this client first, jittered per connection.
    pub retry: Duration,
    /// The topics it receives: what it asked for, or what its token grants.
    pub topics: Selectors,
    /// Resolves when the stream must end: at shutdown, or when the client's token expires.
    pub end: StreamEnd,
}

pub use crate::end::StreamEnd;

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
    /// Everything published after `replay` was taken, of every topic: the idiom filters
    /// it by `topics` (the replay is already filtered).
    pub live: broadcast::Receiver<Arc<Event>>,
    /// The topics the client receives.
    pub topics: Selectors,
    /// Resolves when the stream must end (shutdown, or the token's expiry).
    pub end: StreamEnd,
}

impl Service {
    /// A service on the hub `--hub` names, with the demo ticker and the heap trim running on
    /// the current tokio runtime: what every variant's `serve` starts with.
    ///
    /// Fails when `--hub redis` cannot reach Redis, with a message naming `--redis-url` (and
    /// never its password).
    pub async fn start(
        server: &'static str,
        config: Config,
        shutdown: CancellationToken,
    ) -> io::Result<Arc<Self>> {
        let hub: Arc<dyn Hub> = match config.hub {
            HubKind::Memory => Arc::new(MemoryHub::new(
                config.history as usize,
                config.queue as usize,
            )),
            HubKind::Redis => {
                let hub = RedisHub::connect(&config, shutdown.clone())
                    .await
                    .map_err(|error| {
                        io::Error::other(format!(
                            "cannot reach Redis at --redis-url {}: {}",
                            config.redis_url, error.0
                        ))
                    })?;
                Arc::new(hub)
            }
        };
        let service = Self::new(server, config, hub, shutdown);
        crate::ticker::spawn(Arc::clone(&service));
        crate::trim::spawn(Arc::clone(&service.metrics), service.shutdown.clone());
        Ok(service)
    }

    /// A service on `hub`, without the ticker.
    pub fn new(
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

    /// Lets a client in to `GET /stream`, or gives the contract's refusal: 503 once shutdown
    /// has begun (the stream would end at once) or past `--max-clients`. Resolves once the
    /// hub can answer the client's resume point exactly (see [`Hub::ready_for`]).
    pub async fn admit(&self, request: &RequestHead<'_>) -> Result<Admission, Reply> {
        if self.shutdown.is_cancelled() {
            return Err(self.shutting_down());
        }
        let (topics, expires) = self.subscription_rights(request)?;
        let connection = request.connection().cloned();
        let guard = self
            .metrics
            .admit(self.config.max_clients as usize, connection)
            .ok_or_else(|| self.unavailable("too many clients; retry later"))?;
        let last_event_id = request.last_event_id();
        self.hub.ready_for(last_event_id.as_deref()).await;
        Ok(Admission {
            guard,
            last_event_id,
            retry: self.config.jittered_retry(),
            topics,
            end: self.stream_end(expires),
        })
    }

    /// The topics a stream request gets, and when its token expires: 400 for a bad
    /// `?topic=`, and with tokens required, 401 without a valid one and 403 for a topic it
    /// does not grant.
    fn subscription_rights(
        &self,
        request: &RequestHead<'_>,
    ) -> Result<(Selectors, Option<SystemTime>), Reply> {
        let asked = request
            .query_params("topic")
            .iter()
            .map(|text| Selector::parse(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| Reply::error(400, error))?;
        let Some(key) = self.config.jwt() else {
            let topics = if asked.is_empty() {
                Selectors::everything()
            } else {
                Selectors::new(asked)
            };
            return Ok((topics, None));
        };
        let token = auth::token_of(request)
            .ok_or_else(|| auth::unauthorized("a token is required (Authorization: Bearer, the sse_token cookie, or ?access_token=)"))?;
        let grant = key.verify(&token)?;
        if asked.is_empty() {
            if grant.subscribe.is_empty() {
                return Err(Reply::error(
                    403,
                    "the token grants no topics to subscribe to",
                ));
            }
            return Ok((Selectors::new(grant.subscribe), Some(grant.expires)));
        }
        if let Some(denied) = asked.iter().find(|selector| !grant.may_subscribe(selector)) {
            return Err(auth::forbidden("subscribing to", denied));
        }
        Ok((Selectors::new(asked), Some(grant.expires)))
    }

    /// What ends a stream: shutdown, and the token's expiry if it has one.
    ///
    /// Each stream waits on a child of the shutdown token: a stream polls its end at every
    /// frame, and polling one token shared by every stream takes one lock on every core
    /// (7 % of axum's CPU at 1,000 subscribers, `perf record` under the fan-out benchmark).
    fn stream_end(&self, expires: Option<SystemTime>) -> StreamEnd {
        let shutdown = self.shutdown.child_token().cancelled_owned();
        let Some(expires) = expires else {
            return StreamEnd::new(shutdown);
        };
        let left = expires
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        StreamEnd::new(async move {
            tokio::select! {
                () = shutdown => {}
                () = tokio::time::sleep(left) => {
                    tracing::info!("token expired; ending the stream");
                }
            }
        })
    }

    /// Admits a client and subscribes it to the hub after its last event id.
    pub async fn open_stream(&self, request: &RequestHead<'_>) -> Result<Opening, Reply> {
        let Admission {
            guard,
            last_event_id,
            retry,
            topics,
            end,
        } = self.admit(request).await?;
        let subscription = self.hub.subscribe(last_event_id.as_deref(), &topics);
        let (reset, replay) = self.catch_up(subscription.replay, &topics);
        Ok(Opening {
            guard,
            retry,
            welcome: self.welcome(&topics),
            reset,
            replay,
            live: subscription.live,
            topics,
            end,
        })
    }

    /// The refusal of a stream that arrives once shutdown has begun.
    pub fn shutting_down(&self) -> Reply {
        self.unavailable("shutting down; retry later")
    }

    /// A 503 with `Retry-After` from `--retry-ms`, spread by `--retry-jitter` like `retry:`
    /// (in whole seconds, at least one).
    fn unavailable(&self, why: &str) -> Reply {
        let retry_after = (self.config.jittered_retry().as_secs_f64().ceil() as u64).max(1);
        Reply::error(503, why).with_header("retry-after", retry_after.to_string())
    }

    /// Splits a hub replay into the `reset` frame (if any) and the events of `topics`,
    /// counting both.
    pub fn catch_up(
        &self,
        mut replay: Replay,
        topics: &Selectors,
    ) -> (Option<Arc<Event>>, Vec<Arc<Event>>) {
        if !topics.is_everything() {
            replay.events.retain(|event| topics.matches(&event.topic));
        }
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

    /// The `welcome` frame: who is speaking, where the stream stands, the topics it
    /// carries, and the settings a client (or the conformance suite) needs to size its
    /// expectations.
    pub fn welcome(&self, topics: &Selectors) -> Arc<Event> {
        let config = &self.config;
        let body = json!({
            "server": self.server,
            "hub": self.hub.kind(),
            "topics": topics,
            "auth": config.jwt().is_some(),
            "last_id": self.hub.status().last_id,
            "history": config.history,
            "queue": config.queue,
            "tick_ms": config.tick_ms,
            "keepalive_ms": config.keepalive.as_millis() as u64,
            "retry_ms": config.retry_ms,
            "retry_jitter": config.retry_jitter,
            "write_timeout_ms": config.write_timeout.as_millis() as u64,
        });
        Arc::new(Event::unsequenced(
            EventName::server("welcome"),
            body.to_string(),
        ))
    }

    /// Handles `POST /publish`; `body` is `Err` when the variant could not read it whole (past
    /// the size limit, or a broken connection).
    pub async fn publish(&self, request: &RequestHead<'_>, body: Result<&[u8], Reply>) -> Reply {
        let accepted = async {
            let draft = match self.config.jwt() {
                None => {
                    let token = self.config.publish_token.as_deref();
                    publish::authorize(token, request.header("authorization"))?;
                    publish::parse(request.header("content-type"), body)?
                }
                Some(key) => self.authorized_draft(key, request, body)?,
            };
            self.hub
                .publish(draft)
                .await
                .map_err(|error| self.unavailable(&format!("{error}; retry later")))
        };
        match accepted.await {
            Ok(event) => Reply::json(202, &json!({ "id": event.id_str() })),
            Err(reply) => reply,
        }
    }

    /// With tokens required: the static `--publish-token` may publish anywhere; otherwise a
    /// valid token (401 without one) whose `publish` list covers the event's topic (403).
    fn authorized_draft(
        &self,
        key: &auth::JwtKey,
        request: &RequestHead<'_>,
        body: Result<&[u8], Reply>,
    ) -> Result<Draft, Reply> {
        let authorization = request.header("authorization");
        let static_token = self
            .config
            .publish_token
            .as_deref()
            .is_some_and(|token| publish::is_publish_token(token, authorization));
        let grant = if static_token {
            None
        } else {
            let token = auth::token_of(request)
                .ok_or_else(|| auth::unauthorized("a token is required to publish"))?;
            Some(key.verify(&token)?)
        };
        let draft = publish::parse(request.header("content-type"), body)?;
        let topic = Selector::Exactly(draft.topic.clone());
        match grant {
            Some(grant) if !grant.may_publish(&topic) => {
                Err(auth::forbidden("publishing on", &topic))
            }
            _ => Ok(draft),
        }
    }

    /// `GET /metrics`.
    pub fn metrics_reply(&self) -> Reply {
        let text = self.metrics.render(self.server, &self.hub.status());
        Reply::text(200, "text/plain; version=0.0.4", text)
    }

    /// `GET /healthz`: 200 while the server is up and not shutting down, whether or not its
    /// hub's backend answers (the body says which; see CONTRACT.md on why a shared Redis that
    /// is down must not pull every instance out of a load balancer at once).
    pub fn health_reply(&self) -> Reply {
        if self.shutdown.is_cancelled() {
            return Reply::error(503, "shutting down");
        }
        let hub_up = self.hub.status().up;
        Reply::json(
            200,
            &json!({
                "status": if hub_up { "ok" } else { "degraded" },
                "server": self.server,
                "hub": self.hub.kind(),
                "hub_up": hub_up,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Headers;

    /// A request with no headers but `last-event-id`.
    struct Resuming(Option<&'static str>);

    impl Headers for Resuming {
        fn raw(&self, name: &str) -> Option<&[u8]> {
            self.0
                .filter(|_| name == "last-event-id")
                .map(str::as_bytes)
        }
    }

    fn service(config: Config) -> Arc<Service> {
        let hub = MemoryHub::new(config.history as usize, config.queue as usize);
        Service::new("test", config, Arc::new(hub), CancellationToken::new())
    }

    #[tokio::test]
    async fn stream_opens_with_welcome_and_resets_foreign_ids() {
        let service = service(Config::defaults());
        let json = http::HeaderMap::from_iter([(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )]);
        let receipt = service
            .publish(&RequestHead::new(&json, None), Ok(br#"{"data":"x"}"#))
            .await;
        assert_eq!(receipt.status, 202, "{}", receipt.body);
        let headers = Resuming(Some("ffffffffffff-1"));
        let opening = service
            .open_stream(&RequestHead::new(&headers, None))
            .await
            .map_err(|reply| reply.status)
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

    #[tokio::test]
    async fn no_stream_is_admitted_once_shutdown_has_begun() {
        let service = service(Config::defaults());
        let fresh = Resuming(None);
        let head = RequestHead::new(&fresh, None);
        assert!(service.admit(&head).await.is_ok());
        service.shutdown.cancel();
        let refused = service.admit(&head).await.err().expect("refused");
        assert_eq!(refused.status, 503);
        assert!(
            refused
                .headers
                .iter()
                .any(|(name, _)| *name == "retry-after")
        );
        assert_eq!(service.metrics.connected(), 0, "the refusal holds no place");
    }

    #[tokio::test]
    async fn past_max_clients_the_answer_is_503_with_retry_after() {
        let mut config = Config::defaults();
        config.max_clients = 1;
        config.retry_jitter = 0.0;
        let service = service(config);
        let fresh = Resuming(None);
        let head = RequestHead::new(&fresh, None);
        let _first = service
            .admit(&head)
            .await
            .map_err(|r| r.status)
            .expect("room");
        let refused = service.admit(&head).await.err().expect("full");
        assert_eq!(refused.status, 503);
        assert!(refused.headers.contains(&("retry-after", "3".into())));
    }

    #[tokio::test]
    async fn retry_after_is_spread_like_retry() {
        let mut config = Config::defaults();
        config.max_clients = 1;
        config.retry_ms = 10_000;
        config.retry_jitter = 0.2;
        let service = service(config);
        let fresh = Resuming(None);
        let head = RequestHead::new(&fresh, None);
        let _first = service
            .admit(&head)
            .await
            .map_err(|r| r.status)
            .expect("room");
        let mut waits = std::collections::BTreeSet::<u64>::new();
        for _ in 0..100 {
            let refused = service.admit(&head).await.err().expect("full");
            let (_, wait) = refused
                .headers
                .iter()
                .find(|(n, _)| *n == "retry-after")
                .expect("a Retry-After");
            waits.insert(wait.parse().expect("seconds"));
        }
        assert!(waits.iter().all(|s| (8..=12).contains(s)), "{waits:?}");
        assert!(waits.len() >= 3, "spread: {waits:?}");
    }
}
