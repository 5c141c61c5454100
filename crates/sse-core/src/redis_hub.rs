//! The Redis Streams hub: one log shared by every instance with the same `--redis-url` and
//! `--redis-prefix`, kept across restarts of any of them.
//!
//! Layout, one hash slot per prefix (the braces are a hash tag): `{prefix}:log` is a stream
//! whose entries have the id `<epoch>-<seq>` and the fields `n` (event name, empty for a
//! default `message`), `d` (data) and `t` (topic); `{prefix}:meta` is a hash with `epoch` and `seq`, the
//! newest sequence number. The epoch is the millisecond time the log was created, so a later
//! log's entries sort after every earlier one; on the wire it is the same 12 hex digits as
//! the in-memory hub's epoch, and ids keep the form `<epoch>-<seq>`.
//!
//! Publishing is one Lua script ([`PUBLISH`]): it bumps `seq` and `XADD`s with an explicit
//! id in one atomic step, so numbering is gap-free across instances. One writer task per
//! instance runs it, for every publish that queued while its previous call was in flight
//! (group commit), so that a publish costs a share of a round trip under load. It is also the fence
//! (the failures of centrifugal/centrifugo#664 and centrifuge#412): when `meta` is gone
//! (Redis came back empty, or was flushed), or its `seq` is below what the publishing
//! instance has already seen in the same epoch (Redis came back from an older snapshot), it
//! starts a new log with a new epoch, so that an id is never reused for a different event.
//!
//! Each instance runs one reader feeding a local mirror ([`Log`]), which subscribers are
//! served from exactly as the in-memory hub serves them; the reader is the mirror's only
//! writer, so an event is delivered to this instance's subscribers only once it is in the
//! shared log. When the reader sees a new epoch, or the log going backwards, it restarts the
//! mirror, which ends every open stream so that its client resumes against the new log. The
//! reader has a connection of its own, with a response timeout longer than its block: a
//! blocked `XREAD` on a shared multiplexed connection blocks everything behind it
//! (redis-rs#851), and the client's default timeout would cut every block short
//! (redis-rs#1924). A blocked `XREAD` never notices that its stream was deleted
//! (redis/redis#5625), so the reader blocks a second at a time and looks at `meta` whenever a
//! read comes back empty. The reader is supervised: it reconnects with backoff after any
//! error, and its state (up or not, how far behind the log) is on `/metrics`, so that a reader
//! that wedges shows (centrifugal/centrifugo#1189).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands as _, AsyncConnectionConfig, Client, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Draft, Event, EventName};
use crate::hub::{Hub, HubError, HubStatus, PublishFuture, ReadyFuture, Subscription};
use crate::log::{EPOCH_DIGITS, Log, Position, id_of};
use crate::topic::{Selectors, Topic};

/// Publishes a batch of events: see the module docs.
///
/// KEYS: the meta hash, the stream. ARGV: `MAXLEN ~` bound, then the epoch and newest
/// sequence number the publisher has seen (its fence; `0 0` when it has seen none), then
/// event name, data and topic for each event in turn.
/// Returns `{epoch, seq}`: the epoch as milliseconds and the first event's sequence number;
/// the others follow it without a gap.
const PUBLISH: &str = r"
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if epoch == 0 or (epoch == tonumber(ARGV[2]) and seq < tonumber(ARGV[3])) then
  local now = redis.call('TIME')
  epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if last[1] then
    local last_ms = tonumber(string.match(last[1][1], '^(%d+)-'))
    if last_ms >= epoch then epoch = last_ms + 1 end
  end
  seq = 0
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local first = seq + 1
for i = 4, #ARGV, 3 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], epoch .. '-' .. seq,
    'n', ARGV[i], 'd', ARGV[i + 1], 't', ARGV[i + 2])
end
redis.call('HSET', KEYS[1], 'seq', seq)
return {epoch, first}
";

/// The most publishes one script call commits.
const MAX_BATCH: usize = 64;
/// Publishes that may wait for the writer before publishers wait to hand theirs over.
const WRITER_QUEUE: usize = 1024;

/// How long the reader's `XREAD` blocks: also how soon it notices a deleted stream.
const BLOCK: Duration = Duration::from_secs(1);
/// The reader's response timeout: longer than its block, so that blocking is never cut.
const READER_TIMEOUT: Duration = Duration::from_secs(4);
/// Entries the reader takes per `XREAD`.
const BATCH: usize = 512;
/// How often the reader looks at `meta` even while entries keep coming.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a publish may take before it is answered 503: the contract's bound is 2 s.
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the first connection at start may take, retries included (the contract: exit
/// within 10 s when Redis is unreachable).
const START_TIMEOUT: Duration = Duration::from_secs(6);
/// The longest the reader waits between reconnection attempts.
const RECONNECT_CAP: Duration = Duration::from_secs(1);
/// How long a subscriber resuming after an id the mirror has not read yet may wait for it.
const CATCH_UP: Duration = Duration::from_secs(1);

/// A hub on a Redis Stream.
pub struct RedisHub {
    /// What the reader, the writer and the publishers share.
    shared: Arc<Shared>,
    /// The writer's queue of publishes (see [`Shared::write`]).
    writer: mpsc::Sender<Pending>,
}

/// A publish handed to the writer, and where its event goes once it is in the log.
struct Pending {
    /// The event to number and append.
    draft: Draft,
    /// The event with its id, or why it is not in the log.
    done: oneshot::Sender<Result<Arc<Event>, HubError>>,
}

/// What the hub and its reader task share.
struct Shared {
    /// The mirror of the shared log; the reader is its only writer.
    log: Log,
    /// `{prefix}:meta` and `{prefix}:log`.
    keys: Keys,
    /// The `--history` bound, also the stream's `MAXLEN ~`.
    history: usize,
    /// Whether the reader's last command succeeded.
    up: AtomicBool,
    /// How many events the shared log was ahead of the mirror at the reader's last look.
    behind: AtomicU64,
}

/// The two keys of one prefix.
#[derive(Debug, Clone)]
struct Keys {
    /// The hash holding `epoch` and `seq`.
    meta: String,
    /// The stream of events.
    log: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            meta: format!("{{{prefix}}}:meta"),
            log: format!("{{{prefix}}}:log"),
        }
    }
}

impl RedisHub {
    /// Connects to `--redis-url`, loads the newest `--history` events of the log into the
    /// mirror, and starts the reader on the current runtime; it stops at `shutdown`.
    ///
    /// Fails when Redis cannot be reached within a few seconds; the error never contains the
    /// URL's password.
    pub async fn connect(config: &Config, shutdown: CancellationToken) -> Result<Self, HubError> {
        let client = Client::open(config.redis_url.secret())
            .map_err(|error| HubError(format!("bad Redis URL: {error}")))?;
        let shared = Arc::new(Shared {
            log: Log::new(None, config.history as usize, config.queue as usize),
            keys: Keys::new(&config.redis_prefix),
            history: config.history as usize,
            up: AtomicBool::new(false),
            behind: AtomicU64::new(0),
        });
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_CAP);
        let started = async {
            let publisher = ConnectionManager::new_with_config(client.clone(), manager).await?;
            let mut reader = reader_connection(&client).await?;
            let cursor = shared.load(&mut reader).await?;
            Ok::<_, redis::RedisError>((publisher, reader, cursor))
        };
        let (publisher, reader, cursor) = timeout(START_TIMEOUT, started)
            .await
            .map_err(|_| HubError(format!("no answer within {START_TIMEOUT:?}")))?
            .map_err(|error| HubError(error.to_string()))?;
        shared.up.store(true, Ordering::Release);
        let reader_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            reader_shared
                .supervise(client, reader, cursor, shutdown)
                .await;
        });
        // The writer stops when the hub, and with it the queue's sender, is dropped.
        let (writer, queue) = mpsc::channel(WRITER_QUEUE);
        tokio::spawn(Arc::clone(&shared).write(publisher, queue));
        Ok(RedisHub { shared, writer })
    }
}

/// Why a publish failed when Redis took longer than [`PUBLISH_TIMEOUT`] (the 503's reason).
fn no_answer() -> HubError {
    HubError(format!("Redis did not answer within {PUBLISH_TIMEOUT:?}"))
}

/// A connection for the reader alone, with a response timeout longer than its block.
async fn reader_connection(client: &Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(READER_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// An epoch in milliseconds as ids carry it (12 hex digits).
fn epoch_text(ms: u64) -> String {
    format!("{ms:0width$x}", width = EPOCH_DIGITS)
}

/// An epoch as ids carry it, back in milliseconds.
fn epoch_ms(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

/// `(epoch ms, seq)` of a stream entry id `ms-seq`.
fn entry_position(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

impl Shared {
    /// Fills the mirror with the log's newest events and returns the stream id to read on
    /// from.
    async fn load(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
        let (epoch, seq): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&self.keys.meta)
            .arg("epoch")
            .arg("seq")
            .query_async(conn)
            .await?;
        let Some(epoch) = epoch else {
            // No log yet (or none left): the first entry read will start the mirror.
            self.log.restart(None, 0);
            return Ok("0-0".to_owned());
        };
        let seq = seq.unwrap_or(0);
        let newest: Vec<StreamId> = conn
            .xrevrange_count::<_, _, _, _, redis::streams::StreamRangeReply>(
                &self.keys.log,
                "+",
                "-",
                self.history,
            )
            .await?
            .ids;
        let entries: Vec<&StreamId> = newest
            .iter()
            .rev()
            .filter(|entry| entry_position(&entry.id).is_some_and(|(ms, _)| ms == epoch))
            .collect();
        let first = entries
            .first()
            .and_then(|entry| entry_position(&entry.id))
            .map_or(seq, |(_, first)| first - 1);
        self.log.restart(Some(epoch_text(epoch)), first);
        let mut cursor = format!("{epoch}-{first}");
        for entry in entries {
            self.apply(entry);
            cursor.clone_from(&entry.id);
        }
        Ok(cursor)
    }

    /// The reader, for as long as the server runs: follows the log, and reconnects with
    /// backoff whenever the connection fails.
    async fn supervise(
        self: Arc<Self>,
        client: Client,
        first: MultiplexedConnection,
        mut cursor: String,
        shutdown: CancellationToken,
    ) {
        let mut connection = Some(first);
        let mut failures: u32 = 0;
        while !shutdown.is_cancelled() {
            let conn = match connection.take() {
                Some(conn) => Ok(conn),
                None => reader_connection(&client).await,
            };
            let error = match conn {
                Ok(mut conn) => {
                    failures = 0;
                    self.follow(&mut conn, &mut cursor, &shutdown).await
                }
                Err(error) => error,
            };
            if shutdown.is_cancelled() {
                break;
            }
            if self.up.swap(false, Ordering::AcqRel) {
                tracing::warn!(%error, "lost Redis; the hub's reader reconnects");
            }
            failures = failures.saturating_add(1);
            let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(4)));
            tokio::time::sleep(backoff.min(RECONNECT_CAP)).await;
        }
    }

    /// Reads the log into the mirror until the connection fails (returning why) or the
    /// server stops.
    async fn follow(
        &self,
        conn: &mut MultiplexedConnection,
        cursor: &mut String,
        shutdown: &CancellationToken,
    ) -> redis::RedisError {
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(BATCH);
        let mut probed = Instant::now();
        if let Err(error) = self.probe(conn, cursor).await {
            return error;
        }
        self.mark_up();
        while !shutdown.is_cancelled() {
            let read: redis::RedisResult<Option<StreamReadReply>> = conn
                .xread_options(&[&self.keys.log], &[cursor.as_str()], &options)
                .await;
            let entries = match read {
                Ok(reply) => reply.map(|r| r.keys).unwrap_or_default(),
                Err(error) => return error,
            };
            self.mark_up();
            let entries: Vec<StreamId> = entries.into_iter().flat_map(|key| key.ids).collect();
            for entry in &entries {
                self.apply(entry);
                cursor.clone_from(&entry.id);
            }
            if entries.is_empty() || probed.elapsed() >= PROBE_EVERY {
                probed = Instant::now();
                if let Err(error) = self.probe(conn, cursor).await {
                    return error;
                }
            }
        }
        redis::RedisError::from((redis::ErrorKind::Io, "the server is stopping"))
    }

    /// Notes that the reader reaches Redis, saying so once after an outage.
    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("the hub's reader reaches Redis");
        }
    }

    /// Looks at `meta`: notices a log that is gone, replaced or rolled back, and how far the
    /// mirror is behind.
    async fn probe(
        &self,
        conn: &mut MultiplexedConnection,
        cursor: &mut String,
    ) -> redis::RedisResult<()> {
        let (epoch, seq): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(&self.keys.meta)
            .arg("epoch")
            .arg("seq")
            .query_async(conn)
            .await?;
        let Position {
            epoch: mirrored,
            top,
        } = self.log.position();
        let mirrored_ms = mirrored.as_deref().and_then(epoch_ms);
        match (epoch, mirrored_ms) {
            (None, Some(_)) => {
                // Redis came back empty, or was flushed: the log this mirror holds is gone.
                tracing::warn!("the shared log is gone from Redis; ending every stream");
                self.log.restart(None, 0);
                *cursor = "0-0".to_owned();
            }
            (Some(epoch), Some(mirrored)) if epoch == mirrored && seq.unwrap_or(0) < top => {
                // Redis came back from an older snapshot: numbering would repeat ids this
                // instance has already handed out. Fence it off with a new log.
                tracing::warn!(
                    redis_seq = seq.unwrap_or(0),
                    seen = top,
                    "the shared log went back; starting a new one and ending every stream"
                );
                let fresh = self.fence(conn, epoch, top).await?;
                self.log.restart(Some(epoch_text(fresh)), 0);
                *cursor = format!("{fresh}-0");
            }
            (Some(epoch), mirrored) if Some(epoch) == mirrored || mirrored.is_none() => {
                let behind = seq.unwrap_or(0).saturating_sub(top);
                self.behind.store(behind, Ordering::Relaxed);
            }
            // Another log is in Redis; its entries sort after the cursor, and `apply`
            // switches the mirror when the first of them arrives.
            _ => {}
        }
        Ok(())
    }

    /// Starts a new log in Redis unless another instance already has (the publish script's
    /// fence, without an event); returns the epoch in force afterwards.
    async fn fence(
        &self,
        conn: &mut MultiplexedConnection,
        epoch: u64,
        seen: u64,
    ) -> redis::RedisResult<u64> {
        const FENCE: &str = r"
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if epoch == tonumber(ARGV[1]) and seq < tonumber(ARGV[2]) then
  local now = redis.call('TIME')
  local fresh = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if fresh <= epoch then fresh = epoch + 1 end
  redis.call('HSET', KEYS[1], 'epoch', fresh, 'seq', 0)
  return fresh
end
return epoch
";
        Script::new(FENCE)
            .key(&self.keys.meta)
            .arg(epoch)
            .arg(seen)
            .invoke_async(conn)
            .await
    }

    /// Commits publishes in batches, one script call each: whatever queued while the
    /// previous call was in flight goes in the next. Under load one round trip and one
    /// script run serve many publishes; a publish that arrives alone waits for nothing.
    /// Numbering stays gap-free and atomic: the script numbers a batch in one step.
    async fn write(
        self: Arc<Self>,
        mut publisher: ConnectionManager,
        mut queue: mpsc::Receiver<Pending>,
    ) {
        let script = Script::new(PUBLISH);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // A publisher that gave up (its 503 is sent) must not see its event appear
            // later: while Redis does not answer, publishes queue here behind the call in
            // flight, and committing them once it answers would publish what their clients
            // were told had failed.
            batch.retain(|pending| !pending.done.is_closed());
            if batch.is_empty() {
                continue;
            }
            let committed = self.commit(&script, &mut publisher, &batch).await;
            for (n, Pending { draft, done }) in batch.drain(..).enumerate() {
                let event = committed.clone().map(|(epoch, first)| {
                    Arc::new(draft.into_event(id_of(&epoch_text(epoch), first + n as u64)))
                });
                // A publisher that gave up waiting has been answered 503 already.
                let _ = done.send(event);
            }
        }
    }

    /// Appends `batch` to the shared log in one script call; the epoch (milliseconds) and
    /// the first event's sequence number.
    async fn commit(
        &self,
        script: &Script,
        publisher: &mut ConnectionManager,
        batch: &[Pending],
    ) -> Result<(u64, u64), HubError> {
        let Position { epoch, top } = self.log.position();
        let fence_epoch = epoch.as_deref().and_then(epoch_ms).unwrap_or(0);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.keys.meta)
            .key(&self.keys.log)
            .arg(self.history)
            .arg(fence_epoch)
            .arg(top);
        for Pending { draft, .. } in batch {
            let name = draft.name.as_ref().map_or("", EventName::as_str);
            invocation
                .arg(name)
                .arg(&draft.data)
                .arg(draft.topic.as_str());
        }
        timeout(PUBLISH_TIMEOUT, invocation.invoke_async(publisher))
            .await
            .map_err(|_| no_answer())?
            .map_err(|error| HubError(error.to_string()))
    }

    /// Puts one stream entry into the mirror, restarting it on a new epoch or a gap.
    fn apply(&self, entry: &StreamId) {
        let Some((ms, seq)) = entry_position(&entry.id) else {
            tracing::warn!(id = entry.id, "skipping a log entry with a foreign id");
            return;
        };
        let epoch = epoch_text(ms);
        let Position {
            epoch: mirrored,
            top,
        } = self.log.position();
        if mirrored.is_none() {
            // The first log this mirror sees (at start, or after the old one was lost).
            self.log.adopt(epoch.clone(), seq - 1);
        } else if mirrored.as_deref() != Some(epoch.as_str()) {
            tracing::warn!(epoch, "the shared log was replaced; ending every stream");
            self.log.restart(Some(epoch.clone()), seq - 1);
        } else if seq <= top {
            return;
        } else if seq > top + 1 {
            // Entries were trimmed before this reader got to them: the mirror cannot serve
            // the gap, so its clients must resume (and learn what is lost) from history.
            tracing::warn!(
                missed = seq - top - 1,
                "the hub's reader fell behind the log's history"
            );
            self.log.restart(Some(epoch.clone()), seq - 1);
        }
        let text = |field: &str| -> String {
            entry
                .map
                .get(field)
                .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
                .unwrap_or_default()
        };
        let name = Some(text("n"))
            .filter(|name| !name.is_empty())
            .and_then(|name| EventName::parse(&name).ok());
        let topic = Topic::parse(&text("t")).unwrap_or_else(|_| Topic::default_topic());
        let event: Event = Draft::new(name, &text("d"))
            .on(topic)
            .into_event(id_of(&epoch, seq));
        self.log.append(Arc::new(event));
    }
}

impl Hub for RedisHub {
    fn publish(&self, draft: Draft) -> PublishFuture<'_> {
        Box::pin(async move {
            let (done, receipt) = oneshot::channel();
            let stopped = || HubError("the hub's writer has stopped".to_owned());
            let committed = async {
                let pending = Pending { draft, done };
                self.writer.send(pending).await.map_err(|_| stopped())?;
                receipt.await.map_err(|_| stopped())?
            };
            let event = timeout(PUBLISH_TIMEOUT, committed)
                .await
                .map_err(|_| no_answer())??;
            // This instance's subscribers get the event from the reader, once it is in the
            // shared log, like every other instance's. The receipt waits for that (briefly),
            // so that a publisher reads its own writes: a stream opened here after the 202
            // starts after the event, as it would on the in-memory hub.
            self.ready_for(event.id_str()).await;
            Ok(event)
        })
    }

    fn subscribe(&self, last_event_id: Option<&str>, topics: &Selectors) -> Subscription {
        self.shared.log.subscribe(last_event_id, topics)
    }

    fn status(&self) -> HubStatus {
        HubStatus {
            up: self.shared.up.load(Ordering::Acquire),
            behind: self.shared.behind.load(Ordering::Relaxed),
            ..self.shared.log.status()
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn ready_for(&self, last_event_id: Option<&str>) -> ReadyFuture<'_> {
        let wanted = last_event_id
            .and_then(|id| crate::log::parse(id).ok())
            .and_then(|(epoch, seq)| Some((epoch_ms(epoch)?, seq)));
        let mut watch = self.shared.log.watch();
        Box::pin(async move {
            let Some((epoch, seq)) = wanted else { return };
            // Ready once the mirror has the id, or has moved on to a later log (the id is
            // then from an older one, and foreign is the right answer).
            let caught_up = |position: &Position| match position.epoch.as_deref().and_then(epoch_ms)
            {
                Some(mirrored) => mirrored > epoch || (mirrored == epoch && position.top >= seq),
                None => false,
            };
            let _ = timeout(CATCH_UP, watch.wait_for(caught_up)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_milliseconds_in_twelve_hex_digits() {
        let text = epoch_text(1_764_580_000_000);
        assert_eq!(text.len(), EPOCH_DIGITS);
        assert_eq!(epoch_ms(&text), Some(1_764_580_000_000));
        assert!(crate::log::parse(&format!("{text}-7")).is_ok());
        assert!(
            epoch_text(1_764_580_000_001) > text,
            "a later log's epoch sorts after"
        );
    }

    #[test]
    fn entry_ids_split_into_epoch_and_seq() {
        assert_eq!(
            entry_position("1764580000000-42"),
            Some((1_764_580_000_000, 42))
        );
        assert_eq!(entry_position("garbage"), None);
        assert_eq!(entry_position("1-x"), None);
    }

    #[test]
    fn keys_share_one_hash_slot() {
        let keys = Keys::new("demo");
        assert_eq!(keys.meta, "{demo}:meta");
        assert_eq!(keys.log, "{demo}:log");
    }
}
