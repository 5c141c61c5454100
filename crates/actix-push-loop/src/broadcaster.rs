//! The push-loop idiom (Express style, Spring's `SseEmitter`): the server keeps a list of
//! connected clients, and one broadcaster task pushes every event to each of them.
//!
//! `GET /stream` does not build a stream of its own: it gives the client a queue (a bounded
//! channel whose receiver becomes the response body, after `welcome`, `reset` and the
//! replay), and puts the sender on the list. From then on the broadcaster is the only
//! writer: it takes each event from the hub once and `try_send`s it to every client. It
//! never awaits a client, so one slow socket cannot hold up the rest.
//!
//! Where the idiom needs care:
//! - Joining is a splice this file must get right: the hub's replay and the broadcaster's
//!   position move independently, so `join` cuts the replay at the last event the
//!   broadcaster pushed, and does it under the list's lock.
//! - A full queue means the client fell `--queue` events behind: the broadcaster drops it
//!   from the list (the slow-consumer policy) and the browser resumes from history.
//! - The broadcaster itself can fall behind the hub; it then resubscribes after the last
//!   event it pushed and pushes what it missed (see `resync`). When the hub replaces its log
//!   (a shared backend that lost its data), the live feed closes: the broadcaster drops every
//!   client and follows the new log (see `restart`).
//! - A client that leaves must leave the list too (Express's `req.on('close')`). actix reads
//!   a client's close but goes on streaming, and drops the body only when a write fails. So
//!   the broadcaster sweeps the list every quarter second for clients whose connection the
//!   peer closed (sse-core notes it as actix reads it) or whose body actix already dropped.
//!   Without the sweep a gone client of a quiet topic would stay listed, queue and all, until
//!   that topic's next event, and hold its place in `--max-clients` until two writes had
//!   failed. Dropping its sender ends its body, which gives the place back: the
//!   connected-clients gauge follows the body, not the list.
//! - At shutdown the broadcaster empties the list; dropping every sender ends every stream.

use std::convert::Infallible;
use std::future::ready;
use std::iter::once;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use sse_core::connection::Connection;
use sse_core::frame;
use sse_core::hub::Subscription;
use sse_core::metrics::{GaugeSpec, IdiomGauge, Metrics};
use sse_core::topic::Selectors;
use sse_core::{Admission, Event, EventId, Service};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_stream::wrappers::ReceiverStream;

/// This idiom's own figure on `/metrics`: the list's length. It can differ from the
/// connected clients, since the list and the response bodies live apart: a cut client's body
/// drains after it left the list, a gone client stays listed until the next push or sweep
/// finds it.
pub static LISTED: GaugeSpec = GaugeSpec {
    name: "sse_client_list_len",
    help: "Clients on the push loop's list now (an sse-idioms extension).",
};

/// How often the broadcaster sweeps the list for clients that left. A quarter second keeps
/// a page that reloads again and again from filling `--max-clients` with streams nobody
/// reads; a sweep reads two flags per client.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// The client list and the one task that writes to it.
pub struct Broadcaster {
    /// Hub, metrics, config and shutdown token.
    service: Arc<Service>,
    /// The list's length, as `/metrics` shows it; set after every change.
    listed: Arc<IdiomGauge>,
    /// Everything the broadcaster and joining clients share; one lock, so a join sees the
    /// list and the broadcaster's position as one consistent state.
    ///
    /// A `std` mutex, not tokio's: it is held for one push or one join and never across an
    /// `.await` (the broadcaster `try_send`s, it never waits on a client), so it cannot stall
    /// the runtime. Lock order: this list, then the hub's own lock (`join` and `resync` call
    /// `hub.subscribe` while holding it); the hub never calls back here, so no cycle exists.
    clients: Mutex<Clients>,
}

/// The connected clients and how far the broadcaster has got.
struct Clients {
    /// Every client the broadcaster pushes to, in join order.
    list: Vec<Client>,
    /// The sequence number of the newest event pushed to the list (the hub's position when
    /// the broadcaster started, before the first). Events up to here reach a joining client
    /// from its replay; events after it reach it from the broadcaster.
    last_sent: u64,
    /// The id of that event, to resubscribe after if the broadcaster lags; `None` while
    /// `last_sent` is a hub position rather than a pushed event.
    last_id: Option<EventId>,
    /// Set once the broadcaster has stopped: a join after that would never be written to
    /// nor ended, so it is refused.
    closed: bool,
}

/// What [`Broadcaster::join`] gives a new client's body.
struct Joined {
    /// Its first frames, in order: `welcome`, `reset` if any, the replay.
    opening: Vec<Bytes>,
    /// Every frame the broadcaster pushes to it after those.
    queue: mpsc::Receiver<Bytes>,
}

/// One connected client: the sending half of its response body.
struct Client {
    /// Its queue of frames. Bounded: a full queue is a client too slow to keep up.
    tx: mpsc::Sender<Bytes>,
    /// The connection it streams on, to see whether the peer closed it; `None` where the
    /// transport does not watch it.
    connection: Option<Arc<Connection>>,
    /// The topics it receives: the broadcaster checks each event against them.
    topics: Selectors,
    /// The broadcaster skips events up to this sequence number: the client already has them
    /// (or asked not to get them). Only ever ahead of `last_sent` for a client that resumed
    /// from an id the broadcaster had not pushed yet, say one from a publish receipt.
    skip_through: u64,
}

impl Broadcaster {
    /// Subscribes to the hub and spawns the broadcaster on the current runtime.
    ///
    /// The subscription is taken here, before the server accepts anyone, so `last_sent` is
    /// a real position by the time the first client joins.
    pub fn start(service: Arc<Service>) -> Arc<Self> {
        let (broadcaster, live) = Broadcaster::new(service);
        tokio::spawn(Arc::clone(&broadcaster).run(live));
        broadcaster
    }

    /// An empty list positioned where the hub stands, and the hub's live feed for it.
    fn new(service: Arc<Service>) -> (Arc<Self>, broadcast::Receiver<Arc<Event>>) {
        // Every topic: the broadcaster decides per client what it pushes.
        let everything = Selectors::everything();
        let Subscription { live, position, .. } = service.hub.subscribe(None, &everything);
        let broadcaster = Arc::new(Broadcaster {
            listed: service.metrics.idiom_gauge(&LISTED),
            service,
            clients: Mutex::new(Clients {
                list: Vec::new(),
                last_sent: position,
                last_id: None,
                closed: false,
            }),
        });
        (broadcaster, live)
    }

    /// The broadcaster task: every event from the hub, to every client, until shutdown; and
    /// between events, a sweep every [`SWEEP_EVERY`].
    async fn run(self: Arc<Self>, mut live: broadcast::Receiver<Arc<Event>>) {
        let service = &self.service;
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                received = live.recv() => Some(received),
                _ = sweeps.tick() => None,
                () = service.shutdown.cancelled() => break,
            };
            let mut clients = self.lock();
            match received {
                Some(Ok(event)) => clients.push(&event, &service.metrics),
                Some(Err(RecvError::Lagged(missed))) => live = clients.resync(missed, service),
                // The hub started a new log (a shared backend lost its data): what every
                // client has is from the old one, so each must resume on its own.
                Some(Err(RecvError::Closed)) => live = clients.restart(service),
                None => clients.sweep(),
            }
            self.listed.set(clients.list.len());
        }
        let mut clients = self.lock();
        clients.closed = true;
        // Dropping every sender ends every stream once its queue has drained; a client too
        // stalled to drain it is cut off by actix's shutdown timeout instead.
        clients.list.clear();
        self.listed.set(0);
    }

    /// Puts a new client on the list, and gives it the opening its body starts with
    /// (`welcome`, `reset` if any, and its replay) and the queue the broadcaster fills from
    /// then on; `None` once the broadcaster has stopped.
    ///
    /// The splice happens under the list's lock, which the broadcaster also takes for each
    /// event, so no event can be pushed between reading `last_sent` and joining the list:
    /// the client gets events up to `last_sent` from its replay and every later one from the
    /// broadcaster, with no gap and no duplicate even while publishers are busy.
    fn join(
        &self,
        last_event_id: Option<&str>,
        topics: Selectors,
        connection: Option<Arc<Connection>>,
    ) -> Option<Joined> {
        let service = &self.service;
        // The `--queue` events the client may fall behind; the opening is not queued.
        let (tx, queue) = mpsc::channel(service.config.queue as usize);
        let replay = {
            let mut clients = self.lock();
            if clients.closed {
                return None;
            }
            // `subscribe` rather than `replay`: it also says where the hub stands
            // (`position`), which is the client's starting point when its replay is empty.
            // The live receiver is not needed; the broadcaster is this client's live feed.
            let Subscription {
                mut replay,
                position,
                ..
            } = service
                .hub
                .subscribe(last_event_id, &Selectors::everything());
            let skip_through = replay
                .events
                .first()
                .map_or(position, |first| first.seq().saturating_sub(1));
            // The splice. The hub's replay runs up to its newest event, but events after
            // `last_sent` are still on their way through the broadcaster, which will push
            // them to this client once it is on the list; replaying them too would send them
            // twice.
            let last_sent = clients.last_sent;
            replay.events.retain(|event| event.seq() <= last_sent);
            clients.list.push(Client {
                tx,
                connection,
                topics: topics.clone(),
                skip_through,
            });
            self.listed.set(clients.list.len());
            replay
        };
        // Outside the lock, which 1,000 clients resuming at once all want: the opening goes
        // into the body ahead of the queue, so nothing pushed from now on can overtake it.
        let (reset, replay) = service.catch_up(replay, &topics);
        let opening = once(service.welcome(&topics))
            .chain(reset)
            .chain(replay)
            .map(|event| event.frame())
            .collect();
        Some(Joined { opening, queue })
    }

    fn lock(&self) -> MutexGuard<'_, Clients> {
        // Every update under this lock is a single push, assignment or `retain`, so a panic
        // elsewhere cannot leave the list half-changed; a poisoned lock is still usable.
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clients {
    /// Pushes one hub event to every client, dropping those that cannot take it.
    fn push(&mut self, event: &Event, metrics: &Metrics) {
        // Hub events always have ids; the unsequenced frames are built per client in `join`.
        let Some(id) = event.id.clone() else { return };
        let seq = id.seq;
        self.last_sent = seq;
        self.last_id = Some(id);
        // Encoded once, by sse-core, for everyone: each send is a reference count.
        let frame = event.frame();
        self.list.retain(|client| {
            // Not one of its topics (or already had): nothing to send, and it stays on.
            if seq <= client.skip_through || !client.topics.matches(&event.topic) {
                return true;
            }
            match client.tx.try_send(frame.clone()) {
                Ok(()) => true,
                // The slow-consumer policy. A full queue means the client is `--queue`
                // events behind and its socket is not draining; waiting for it would stall
                // every other client, and buffering more would let one reader grow memory
                // without bound. Dropping the sender ends its stream after what is queued,
                // and that is safe: the browser reconnects with the `Last-Event-ID` of the
                // last event it got, and `join` replays the rest from history.
                Err(TrySendError::Full(_)) => {
                    metrics.add_lagged(1);
                    false
                }
                // The response body is gone: actix dropped it when the client left.
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Drops the clients that left: their peer closed the connection, or actix already
    /// dropped their body. Nothing else would take a quiet topic's clients off the list.
    fn sweep(&mut self) {
        self.list.retain(|client| {
            let closed = client.connection.as_ref().is_some_and(|c| c.peer_closed());
            !closed && !client.tx.is_closed()
        });
    }

    /// Starts over on the hub's new log: drops every client (each reconnects and gets the
    /// reset it needs), and takes the new log's live feed from where it stands.
    fn restart(&mut self, service: &Service) -> broadcast::Receiver<Arc<Event>> {
        tracing::warn!(
            dropped = self.list.len(),
            "the hub started a new log; dropping every client to resume on its own"
        );
        self.list.clear();
        let Subscription { live, position, .. } =
            service.hub.subscribe(None, &Selectors::everything());
        self.last_sent = position;
        self.last_id = None;
        live
    }

    /// Recovers after the broadcaster itself fell more than `--queue` events behind the
    /// hub (`Lagged`): the events it skipped never reached any client.
    ///
    /// Resubscribing after the last event pushed gives exactly what was skipped, plus a
    /// fresh live receiver that starts where that replay ends, so pushing the replay closes
    /// the gap and clients that did nothing wrong stay connected. Only when that is not
    /// possible (nothing pushed yet, so no id to resume after, or the gap already evicted
    /// from history) are all clients dropped: each then resumes from its own last id.
    fn resync(&mut self, missed: u64, service: &Service) -> broadcast::Receiver<Arc<Event>> {
        let after = self.last_id.clone();
        let Subscription {
            replay,
            live,
            position,
        } = service.hub.subscribe(
            after.as_ref().map(EventId::as_str),
            &Selectors::everything(),
        );
        if after.is_some() && replay.reset.is_none() {
            tracing::warn!(
                missed,
                "broadcaster fell behind the hub; pushing from history"
            );
            for event in &replay.events {
                self.push(event, &service.metrics);
            }
        } else {
            // Not the clients' fault, so not counted as slow consumers: one line says what
            // happened to all of them.
            tracing::warn!(
                missed,
                dropped = self.list.len(),
                "broadcaster fell behind history; dropping every client to resume on its own"
            );
            self.list.clear();
            self.last_id = None;
        }
        self.last_sent = position;
        live
    }
}

/// `GET /stream` for an admitted client: joins it to the list and streams the queue the
/// broadcaster fills; `None` once the broadcaster has stopped.
pub fn stream(broadcaster: &Broadcaster, admission: Admission) -> Option<HttpResponse> {
    let Admission {
        guard,
        last_event_id,
        retry,
        topics,
        end,
    } = admission;
    let connection = guard.connection().cloned();
    let Joined { opening, queue } =
        broadcaster.join(last_event_id.as_deref(), topics, connection)?;
    // The queue ends when the broadcaster drops the client; `end` (the client's token
    // expiring) ends it too.
    let frames = stream::once(ready(frame::retry(retry)))
        .chain(stream::iter(opening))
        .chain(ReceiverStream::new(queue))
        .take_until(end);
    // The keep-alive is also what reaps an idle stream whose client vanished without a
    // close: actix then sees it only when a write fails, and the keep-alive is the write
    // that comes when no event does.
    let body = frame::keep_alive(frames, broadcaster.service.config.keepalive).map(move |frame| {
        // Owning the guard here ties the gauge to the body, which actix drops as soon as it
        // finds the client gone, without waiting for the broadcaster to notice.
        let _connected = &guard;
        Ok::<_, Infallible>(frame)
    });
    Some(
        HttpResponse::Ok()
            .content_type(frame::CONTENT_TYPE)
            .streaming(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_core::memory::MemoryHub;
    use sse_core::topic::Selector;
    use sse_core::{CancellationToken, Config, Draft};

    /// A broadcaster whose task the test plays by hand, one `push` at a time.
    fn broadcaster(queue: u32) -> (Arc<Broadcaster>, broadcast::Receiver<Arc<Event>>) {
        broadcaster_on(queue as usize, queue)
    }

    /// The same, with clients' queues of `queue` on a hub whose live feed holds `feed`.
    fn broadcaster_on(
        feed: usize,
        queue: u32,
    ) -> (Arc<Broadcaster>, broadcast::Receiver<Arc<Event>>) {
        let mut config = Config::defaults();
        config.queue = queue;
        let hub = MemoryHub::new(config.history as usize, feed);
        Broadcaster::new(Service::new(
            crate::SERVER,
            config,
            Arc::new(hub),
            CancellationToken::new(),
        ))
    }

    async fn publish(service: &Service, count: usize) -> Vec<Arc<Event>> {
        let mut events = Vec::new();
        for n in 0..count {
            let draft = Draft::new(None, &n.to_string());
            events.push(service.hub.publish(draft).await.expect("memory hub"));
        }
        events
    }

    /// What the broadcaster task does with each event it receives.
    async fn push_next(broadcaster: &Broadcaster, live: &mut broadcast::Receiver<Arc<Event>>) {
        let event = live.recv().await.expect("an event is waiting");
        broadcaster
            .lock()
            .push(&event, &broadcaster.service.metrics);
    }

    /// The ids in a client's opening and queue, as they would go on the wire.
    async fn ids(joined: &mut Joined) -> Vec<String> {
        let mut bytes = Vec::new();
        for frame in joined.opening.drain(..) {
            bytes.extend_from_slice(&frame);
        }
        while let Ok(frame) = joined.queue.try_recv() {
            bytes.extend_from_slice(&frame);
        }
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| line.strip_prefix("id: ").map(str::to_owned))
            .collect()
    }

    fn id_strs(events: &[Arc<Event>]) -> Vec<String> {
        let id = |e: &Arc<Event>| e.id_str().expect("hub events have ids").to_owned();
        events.iter().map(id).collect()
    }

    #[tokio::test]
    async fn join_splices_replay_and_live_where_the_broadcaster_stands() {
        let (broadcaster, mut live) = broadcaster(64);
        let service = Arc::clone(&broadcaster.service);
        let events = publish(&service, 5).await;
        // The broadcaster has pushed 1 to 3 while 4 and 5 are still on their way.
        for _ in 0..3 {
            push_next(&broadcaster, &mut live).await;
        }
        let mut behind = broadcaster
            .join(events[0].id_str(), Selectors::everything(), None)
            .expect("open");
        // Resuming after 5, which came back in a publish receipt before the push.
        let mut ahead = broadcaster
            .join(events[4].id_str(), Selectors::everything(), None)
            .expect("open");
        let events = [events, publish(&service, 1).await].concat();
        for _ in 0..3 {
            push_next(&broadcaster, &mut live).await;
        }
        assert_eq!(ids(&mut behind).await, id_strs(&events[1..]));
        assert_eq!(ids(&mut ahead).await, id_strs(&events[5..]));
    }

    #[tokio::test]
    async fn a_full_queue_disconnects_the_client() {
        let (broadcaster, mut live) = broadcaster(1);
        let service = Arc::clone(&broadcaster.service);
        // A queue of 1: one event fills it, and nobody reads.
        let mut slow = broadcaster
            .join(None, Selectors::everything(), None)
            .expect("open");
        let mut events = Vec::new();
        for _ in 0..2 {
            events.extend(publish(&service, 1).await);
            push_next(&broadcaster, &mut live).await;
        }
        assert!(broadcaster.lock().list.is_empty(), "dropped from the list");
        assert_eq!(ids(&mut slow).await, id_strs(&events[..1]));
        assert!(
            slow.queue.recv().await.is_none(),
            "its stream ends after its queue"
        );
    }

    #[tokio::test]
    async fn a_client_that_left_a_quiet_topic_is_swept_off_the_list() {
        let (broadcaster, mut live) = broadcaster(64);
        let service = Arc::clone(&broadcaster.service);
        let quiet = || Selectors::new(vec![Selector::parse("quiet").expect("a topic")]);
        let gone = broadcaster.join(None, quiet(), None).expect("open");
        let _stays = broadcaster.join(None, quiet(), None).expect("open");
        drop(gone);
        // Events on other topics never write to it, so they cannot find it gone.
        publish(&service, 2).await;
        for _ in 0..2 {
            push_next(&broadcaster, &mut live).await;
        }
        assert_eq!(
            broadcaster.lock().list.len(),
            2,
            "still listed after the events"
        );
        broadcaster.lock().sweep();
        assert_eq!(
            broadcaster.lock().list.len(),
            1,
            "the sweep took the gone one only"
        );
    }

    #[tokio::test]
    async fn a_client_whose_peer_closed_is_swept_though_its_body_lives() {
        let (broadcaster, _live) = broadcaster(64);
        // An in-memory pipe is enough: sse-core's own tests read a real socket's close.
        let (peer, server_end) = tokio::io::duplex(64);
        let mut watched = sse_core::connection::Watched::new(server_end);
        let connection = Some(Arc::clone(watched.connection()));
        let _body = broadcaster
            .join(None, Selectors::everything(), connection)
            .expect("open");
        broadcaster.lock().sweep();
        assert_eq!(
            broadcaster.lock().list.len(),
            1,
            "listed while its peer is there"
        );
        drop(peer);
        // What actix does while it streams: it reads, and finds the close.
        let mut buf = [0; 8];
        let read = tokio::io::AsyncReadExt::read(&mut watched, &mut buf).await;
        assert_eq!(read.expect("a close is no error"), 0);
        broadcaster.lock().sweep();
        assert!(
            broadcaster.lock().list.is_empty(),
            "swept once the close was read"
        );
    }

    #[tokio::test]
    async fn a_lagging_broadcaster_pushes_what_it_missed_from_history() {
        // The broadcaster's feed holds two events; the client's queue, all it will miss.
        let (broadcaster, mut live) = broadcaster_on(2, 4);
        let service = Arc::clone(&broadcaster.service);
        // One event pushed, so the broadcaster has an id to resume after.
        publish(&service, 1).await;
        push_next(&broadcaster, &mut live).await;
        let mut client = broadcaster
            .join(None, Selectors::everything(), None)
            .expect("open");
        // Three events into a feed of two: the broadcaster lags by one.
        let missed = publish(&service, 3).await;
        let Err(RecvError::Lagged(skipped)) = live.recv().await else {
            panic!("the broadcaster's feed should have lagged");
        };
        let mut live = broadcaster.lock().resync(skipped, &service);
        assert_eq!(ids(&mut client).await, id_strs(&missed));
        assert_eq!(broadcaster.lock().list.len(), 1, "the client stays on");
        // The fresh feed starts after the replay: nothing is pushed twice.
        let next = publish(&service, 1).await;
        push_next(&broadcaster, &mut live).await;
        assert_eq!(ids(&mut client).await, id_strs(&next));
    }

    /// A hub whose log the test can replace, as a shared backend does when it loses its
    /// data.
    struct ReplaceableHub(sse_core::log::Log);

    impl sse_core::Hub for ReplaceableHub {
        fn publish(&self, draft: Draft) -> sse_core::hub::PublishFuture<'_> {
            let event = self
                .0
                .append_next(|seq, epoch| draft.into_event(sse_core::log::id_of(epoch, seq)));
            Box::pin(async move { Ok(event) })
        }

        fn subscribe(&self, last_event_id: Option<&str>, topics: &Selectors) -> Subscription {
            self.0.subscribe(last_event_id, topics)
        }

        fn status(&self) -> sse_core::hub::HubStatus {
            self.0.status()
        }

        fn kind(&self) -> &'static str {
            "test"
        }
    }

    #[tokio::test]
    async fn a_new_log_drops_every_client_and_is_followed() {
        let log = sse_core::log::Log::new(Some("0123456789ab".into()), 64, 64);
        let hub = Arc::new(ReplaceableHub(log));
        let service = Service::new(
            crate::SERVER,
            Config::defaults(),
            Arc::clone(&hub) as Arc<dyn sse_core::Hub>,
            CancellationToken::new(),
        );
        let broadcaster = Broadcaster::start(Arc::clone(&service));
        let mut old_client = broadcaster
            .join(None, Selectors::everything(), None)
            .expect("open");
        hub.0.restart(Some("ffffffffffff".into()), 0);
        // The broadcaster sees its feed close, drops the client, and follows the new log.
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while old_client.queue.recv().await.is_some() {}
            })
            .await
            .is_ok(),
            "the old client's stream ends"
        );
        let mut new_client = broadcaster
            .join(None, Selectors::everything(), None)
            .expect("still open for new clients");
        let event = publish(&service, 1).await;
        let pushed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                if let Some(frame) = new_client.queue.recv().await {
                    let text = String::from_utf8_lossy(&frame).into_owned();
                    if text.contains("id: ffffffffffff-1") {
                        break text;
                    }
                }
            }
        })
        .await
        .expect("the new log's event reaches the new client");
        assert!(pushed.contains(event[0].id_str().expect("an id")));
    }
}
