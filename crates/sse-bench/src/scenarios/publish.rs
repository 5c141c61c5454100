//! Scenario 7, publish: `--publish-conns` keep-alive publishers each post the next event as
//! soon as the last one is answered, for `--publish-secs`, while `--publish-subs`
//! subscribers listen; for the publishes per second the server accepts, the CPU each costs,
//! and whether the subscribers kept up.
//!
//! It is measured on the in-memory hub (the server that the runner started), then on
//! `--hub redis`, one instance on a `redis-server` of the scenario's own; on each, first
//! with the subscribers listening, then again with nobody listening, for the publish path
//! alone (with a thousand subscribers, every publish also costs a thousand deliveries,
//! which bound the rate long before the publish path does). On that same Redis, just
//! before the instance starts, `redis-benchmark` measures the rate of plain XADDs
//! ([`crate::redis::RedisServer::xadd_rate`]): what Redis itself takes on this machine,
//! the reference that the Redis hub's publish path is held against.
//!
//! The publishers are not paced by the subscribers (the fan-out scenario is): the figure is
//! what `/publish` accepts. Subscribers that fall `--queue` behind are cut by the server,
//! which the table shows as subscribers dropped and as the share of the accepted events
//! that reached them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::fleet::{Connected, Fleet, SubSpec};
use super::record::{IDLE, Recorder, cpu_pct};
use super::{Bench, Scenario};
use crate::client::Publisher;
use crate::now_us;
use crate::redis::{self, RedisServer, Xadd};
use crate::report::{Row, f0, f1, f2, mega};
use crate::server::{Launch, Server, cpu_secs_of};
use crate::wire::make_payload;

/// The Redis prefix of the scenario's instance (its Redis is its own anyway).
const PREFIX: &str = "bench-publish";

/// The sizes of scenario 7.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct PublishSizes {
    /// Scenario 7: keep-alive publisher connections, each posting as fast as it is answered
    /// (also redis-benchmark's -c for the XADD reference).
    #[arg(long, default_value_t = 32)]
    pub publish_conns: usize,
    /// Scenario 7: subscribers listening meanwhile.
    #[arg(long, default_value_t = 1000)]
    pub publish_subs: usize,
    /// Scenario 7: unmeasured warm-up seconds, before each of its four measurements.
    #[arg(long, default_value_t = 1.0)]
    pub publish_warmup_secs: f64,
    /// Scenario 7: measured seconds, each of its four measurements (two hubs, with and
    /// without subscribers).
    #[arg(long, default_value_t = 5.0)]
    pub publish_secs: f64,
    /// Scenario 7: XADDs redis-benchmark sends for the reference rate (-n).
    #[arg(long, default_value_t = 200_000)]
    pub xadd_requests: usize,
}

/// What scenario 7 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Publish {
    /// On the in-memory hub, `--publish-subs` subscribers listening.
    pub memory: Option<Rate>,
    /// On `--hub redis`, one instance, `--publish-subs` subscribers listening.
    pub redis: Option<Rate>,
    /// On the in-memory hub with nobody listening: the publish path alone.
    pub memory_alone: Option<Rate>,
    /// On `--hub redis` with nobody listening: the publish path alone.
    pub redis_alone: Option<Rate>,
    /// `redis-benchmark`'s XADD rate on the same Redis.
    pub xadd: Option<Xadd>,
    /// Why a part was not measured.
    pub errors: Vec<String>,
}

impl Publish {
    /// The Redis hub's publish path (nobody listening) as a share of plain XADDs' rate:
    /// the target is at least 0.5.
    pub fn xadd_ratio(&self) -> Option<f64> {
        self.share_of_xadd(self.redis_alone.as_ref()?)
    }

    /// The Redis hub's publish rate with the subscribers listening, as a share of plain
    /// XADDs' rate.
    pub fn xadd_ratio_listened(&self) -> Option<f64> {
        self.share_of_xadd(self.redis.as_ref()?)
    }

    /// `rate`'s publishes per second over the XADD reference's requests per second.
    fn share_of_xadd(&self, rate: &Rate) -> Option<f64> {
        let xadd = self.xadd.as_ref()?.requests_per_sec;
        Some(rate.publishes_per_sec / xadd).filter(|r| r.is_finite())
    }
}

/// One hub's publish rate, and how its subscribers fared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rate {
    /// How connecting the subscribers went.
    pub connected: Connected,
    /// Publishes answered 202 per second in the measured window.
    pub publishes_per_sec: f64,
    /// Publishes that failed, in all.
    pub publish_errors: u64,
    /// An example failure.
    pub first_error: Option<String>,
    /// Server CPU in the measured window, percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Server CPU per accepted publish (µs), with the fan-out to the subscribers in it.
    pub cpu_us_per_publish: Option<f64>,
    /// The `redis-server`'s CPU in the measured window, percent of one core.
    pub redis_cpu_pct: Option<f64>,
    /// The load generator's own CPU (this process: publishers and subscribers) in the
    /// measured window, percent of one core: with the server's and Redis's, whether the
    /// machine's cores were all busy.
    pub bench_cpu_pct: Option<f64>,
    /// Events delivered per second, summed over subscribers, in the measured window.
    pub events_per_sec: f64,
    /// Events delivered in the window over events accepted times subscribers listening:
    /// 1 when everyone kept up (a little over or under, for events in flight at its edges).
    pub delivered_share: Option<f64>,
    /// Publish-to-receive delay, median (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile (ms).
    pub p99_ms: Option<f64>,
    /// Subscribers that the server dropped.
    pub dropped: usize,
    /// `sse_lagged_disconnects_total` at the end.
    pub lagged: Option<f64>,
}

/// What the publishers share: the next event index, and their tallies.
#[derive(Default)]
struct Posting {
    /// Stops the publishers.
    stop: CancellationToken,
    /// The last event index handed out (the payload carries it, as every bench event's).
    next: AtomicU64,
    /// Publishes answered 202.
    accepted: AtomicU64,
    /// Publishes that failed.
    errors: AtomicU64,
    /// The first failure, as an example.
    first_error: Mutex<Option<String>>,
}

impl Posting {
    /// Publishes accepted so far.
    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// One more publish failed, for `error`.
    fn fail(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    /// The first failure, if any.
    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

/// One publisher: posts events one after another on its connection until stopped.
async fn post(mut publisher: Publisher, posting: Arc<Posting>, payload: usize) {
    while !posting.stop.is_cancelled() {
        let k = posting.next.fetch_add(1, Ordering::Relaxed) + 1;
        let data = make_payload(now_us(), k, payload);
        match publisher.publish("bench", &data).await {
            Ok(_) => {
                posting.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                posting.fail(e.to_string());
                // A server that refuses at once would otherwise be spun against.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// What the measured window counted.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// Its length in seconds.
    secs: f64,
    /// Publishes accepted in it.
    published: u64,
    /// Events the subscribers received in it.
    delivered: u64,
    /// Subscribers whose stream was open when publishing began.
    listening: usize,
    /// Server CPU in it, percent of one core.
    server_cpu_pct: Option<f64>,
    /// `redis-server`'s CPU in it, percent of one core.
    redis_cpu_pct: Option<f64>,
    /// This process's CPU in it, percent of one core.
    bench_cpu_pct: Option<f64>,
}

impl Window {
    /// Publishes accepted per second.
    fn publishes_per_sec(&self) -> f64 {
        self.published as f64 / self.secs
    }

    /// Server CPU per accepted publish (µs); none without a publish or a CPU reading.
    fn cpu_us_per_publish(&self) -> Option<f64> {
        let cpu_secs = self.server_cpu_pct? / 100.0 * self.secs;
        (self.published > 0).then(|| cpu_secs * 1e6 / self.published as f64)
    }

    /// Events delivered over events owed (each accepted one to every subscriber listening).
    fn delivered_share(&self) -> Option<f64> {
        let owed = self.published as f64 * self.listening as f64;
        (owed > 0.0).then(|| self.delivered as f64 / owed)
    }
}

impl PublishSizes {
    /// Measures `server`'s publish rate with the subscribers listening, then with nobody
    /// listening; `redis` is the Redis it publishes through, whose CPU is measured too.
    async fn both(
        &self,
        server: &Server,
        redis: Option<&RedisServer>,
        payload: usize,
    ) -> (Rate, Rate) {
        let listened = self
            .measure(server, redis, payload, self.publish_subs)
            .await;
        // Let the server see the subscribers go before it is measured without them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (listened, self.measure(server, redis, payload, 0).await)
    }

    /// Measures `server`'s publish rate with `subs` subscribers listening; `redis` is the
    /// Redis it publishes through, whose CPU is measured too.
    async fn measure(
        &self,
        server: &Server,
        redis: Option<&RedisServer>,
        payload: usize,
        subs: usize,
    ) -> Rate {
        let rec = Arc::new(Recorder::new(1));
        let spec = SubSpec::new(server.target.clone(), 16 * 1024).recording(rec.clone());
        let fleet = Fleet::spawn(subs, &spec);
        let connected = fleet.connected("publish", Duration::from_secs(60)).await;
        let posting = Arc::new(Posting::default());
        let publishers: Vec<_> = (0..self.publish_conns)
            .map(|_| {
                let publisher = Publisher::new(server.target.clone());
                tokio::spawn(post(publisher, posting.clone(), payload))
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(self.publish_warmup_secs)).await;
        let window = self
            .window(server, redis, &posting, &rec, connected.ready)
            .await;
        posting.stop.cancel();
        for publisher in publishers {
            let _ = publisher.await;
        }
        let lagged = server.metric("sse_lagged_disconnects_total").await;
        let dropped = fleet.stop().await;
        let q = rec.ms(0, &[0.5, 0.99]);
        Rate {
            connected,
            publishes_per_sec: window.publishes_per_sec(),
            publish_errors: posting.errors.load(Ordering::Relaxed),
            first_error: posting.first_error(),
            server_cpu_pct: window.server_cpu_pct,
            cpu_us_per_publish: window.cpu_us_per_publish(),
            redis_cpu_pct: window.redis_cpu_pct,
            bench_cpu_pct: window.bench_cpu_pct,
            events_per_sec: window.delivered as f64 / window.secs,
            delivered_share: window.delivered_share(),
            p50_ms: q[0],
            p99_ms: q[1],
            dropped,
            lagged,
        }
    }

    /// The measured window: `--publish-secs` of publishing, counted.
    async fn window(
        &self,
        server: &Server,
        redis: Option<&RedisServer>,
        posting: &Posting,
        rec: &Recorder,
        listening: usize,
    ) -> Window {
        let redis_cpu = || redis.and_then(RedisServer::cpu_secs);
        let bench_cpu = || cpu_secs_of(std::process::id());
        let (cpu_before, redis_before, bench_before) =
            (server.cpu_secs(), redis_cpu(), bench_cpu());
        let accepted_before = posting.accepted();
        let started = Instant::now();
        rec.set_phase(0);
        tokio::time::sleep(Duration::from_secs_f64(self.publish_secs)).await;
        rec.set_phase(IDLE);
        let secs = started.elapsed().as_secs_f64();
        Window {
            secs,
            published: posting.accepted() - accepted_before,
            delivered: rec.received(0),
            listening,
            server_cpu_pct: cpu_pct(cpu_before, server.cpu_secs(), secs),
            redis_cpu_pct: cpu_pct(redis_before, redis_cpu(), secs),
            bench_cpu_pct: cpu_pct(bench_before, bench_cpu(), secs),
        }
    }

    /// The Redis half: a Redis of its own, the XADD reference on it, then one instance of
    /// `launch` on it, measured like the in-memory hub.
    async fn on_redis(
        &self,
        launch: &Launch,
        token: Option<String>,
        payload: usize,
        publish: &mut Publish,
    ) {
        let redis = match RedisServer::start().await {
            Ok(redis) => redis,
            Err(e) => return publish.errors.push(format!("redis hub: {e}")),
        };
        match redis
            .xadd_rate(self.xadd_requests, self.publish_conns, payload)
            .await
        {
            Ok(xadd) => publish.xadd = Some(xadd),
            Err(e) => publish.errors.push(format!("XADD reference: {e}")),
        }
        match redis.instances(launch, PREFIX, 1, token).await {
            Ok(instances) => {
                if let [instance] = instances.as_slice() {
                    let (listened, alone) = self.both(instance, Some(&redis), payload).await;
                    publish.redis = Some(listened);
                    publish.redis_alone = Some(alone);
                }
                redis::stop_all(instances).await;
            }
            Err(e) => publish.errors.push(format!("redis hub: {e}")),
        }
        redis.stop().await;
    }
}

/// One hub's part of the progress line: its rate with subscribers, then alone.
fn summary(r: &Rate, alone: Option<&Rate>) -> String {
    let alone = alone.map_or_else(String::new, |a| {
        format!(
            "; alone {:.0} publishes/s, CPU {:.0}% = {:.1} µs each (Redis {:.0}%, bench {:.0}%)",
            a.publishes_per_sec,
            a.server_cpu_pct.unwrap_or(f64::NAN),
            a.cpu_us_per_publish.unwrap_or(f64::NAN),
            a.redis_cpu_pct.unwrap_or(f64::NAN),
            a.bench_cpu_pct.unwrap_or(f64::NAN),
        )
    });
    format!("{}{alone}", listened(r))
}

/// The part of the progress line for a rate with subscribers listening.
fn listened(r: &Rate) -> String {
    format!(
        "{:.0} publishes/s ({} errors), CPU {:.0}% = {:.1} µs each, subscribers got {:.0}% \
         at p99 {:.1} ms, {} dropped",
        r.publishes_per_sec,
        r.publish_errors,
        r.server_cpu_pct.unwrap_or(f64::NAN),
        r.cpu_us_per_publish.unwrap_or(f64::NAN),
        r.delivered_share.unwrap_or(f64::NAN) * 100.0,
        r.p99_ms.unwrap_or(f64::NAN),
        r.dropped,
    )
}

/// Rows of one figure of the hubs' rates, one per measurement named:
/// `each!(relative, "label", fmt, r => figure, [memory: "memory hub", ...])` reads the
/// figure off the [`Rate`] `r` of each field named, shown as `Row::relative` or
/// `Row::absolute`, the row labelled with the label and the field's own words.
macro_rules! each {
    ($kind:ident, $label:literal, $fmt:expr, $r:ident => $get:expr,
     [$($field:ident: $words:literal),+ $(,)?]) => {
        vec![$(
            Row::$kind(
                concat!("publish: ", $label, " (", $words, ")"),
                $fmt,
                |p: &Publish| {
                    let $r = p.$field.as_ref()?;
                    $get
                },
            ),
        )+]
    };
}

/// The two measurements with subscribers listening, as `each!` names them.
macro_rules! listened {
    ($kind:ident, $label:literal, $fmt:expr, $r:ident => $get:expr) => {
        each!($kind, $label, $fmt, $r => $get,
            [memory: "memory hub", redis: "redis hub"])
    };
}

/// The two measurements with nobody listening, as `each!` names them.
macro_rules! alone {
    ($kind:ident, $label:literal, $fmt:expr, $r:ident => $get:expr) => {
        each!($kind, $label, $fmt, $r => $get,
            [memory_alone: "memory hub, nobody listening",
             redis_alone: "redis hub, nobody listening"])
    };
}

impl Scenario for PublishSizes {
    type Outcome = Publish;

    fn connections(&self) -> usize {
        self.publish_subs
    }

    async fn run(&self, bench: &Bench<'_>) -> Publish {
        let (memory, memory_alone) = self.both(bench.server, None, bench.payload).await;
        let mut publish = Publish {
            memory: Some(memory),
            memory_alone: Some(memory_alone),
            ..Publish::default()
        };
        match redis::unfit(bench.launch) {
            Ok(launch) => {
                // Let the kernel retire the closed sockets before the next process starts.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let token = bench.server.target.token.clone();
                self.on_redis(launch, token, bench.payload, &mut publish)
                    .await;
            }
            Err(e) => publish.errors.push(format!("redis hub: {e}")),
        }
        publish
    }

    fn progress(&self, p: &Publish) -> String {
        let mut line = String::from("publish:");
        let hubs = [
            ("memory", &p.memory, &p.memory_alone),
            ("redis", &p.redis, &p.redis_alone),
        ];
        for (name, rate, alone) in hubs {
            if let Some(r) = rate {
                let _ = write!(line, " {name}: {};", summary(r, alone.as_ref()));
            }
        }
        if let Some(xadd) = &p.xadd {
            let _ = write!(line, " XADD {:.0}/s;", xadd.requests_per_sec);
        }
        if let Some(ratio) = p.xadd_ratio() {
            let _ = write!(line, " redis hub alone / XADD {ratio:.2};");
        }
        for error in &p.errors {
            let _ = write!(line, " {error};");
        }
        line.trim_end_matches(';').to_owned()
    }

    fn rows() -> Vec<Row<Publish>> {
        let mut rows: Vec<Row<Publish>> = [
            listened!(relative, "publishes/s accepted", f0, r => Some(r.publishes_per_sec)),
            listened!(absolute, "publish errors", f0, r => Some(r.publish_errors as f64)),
            listened!(absolute, "server CPU (% of a core)", f0, r => r.server_cpu_pct),
            listened!(relative, "server CPU per publish (µs)", f1, r => r.cpu_us_per_publish),
            listened!(relative, "events/s delivered", mega, r => Some(r.events_per_sec)),
            listened!(absolute, "share of events delivered", f2, r => r.delivered_share),
            listened!(relative, "delay p99 (ms)", f1, r => r.p99_ms),
            listened!(absolute, "subscribers dropped", f0, r => Some(r.dropped as f64)),
            alone!(relative, "publishes/s accepted", f0, r => Some(r.publishes_per_sec)),
            alone!(absolute, "publish errors", f0, r => Some(r.publish_errors as f64)),
            alone!(absolute, "server CPU (% of a core)", f0, r => r.server_cpu_pct),
            alone!(relative, "server CPU per publish (µs)", f1, r => r.cpu_us_per_publish),
            each!(absolute, "redis-server CPU (% of a core)", f0, r => r.redis_cpu_pct,
                [redis: "redis hub", redis_alone: "redis hub, nobody listening"]),
            each!(absolute, "load generator CPU (% of a core)", f0, r => r.bench_cpu_pct,
                [memory: "memory hub", redis: "redis hub",
                 memory_alone: "memory hub, nobody listening",
                 redis_alone: "redis hub, nobody listening"]),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.extend([
            Row::absolute(
                "publish: redis-benchmark XADD/s (reference)",
                f0,
                |p: &Publish| Some(p.xadd.as_ref()?.requests_per_sec),
            ),
            Row::absolute(
                "publish: redis hub, nobody listening / XADD rate (target ≥ 0.50)",
                f2,
                Publish::xadd_ratio,
            ),
            Row::absolute(
                "publish: redis hub / XADD rate",
                f2,
                Publish::xadd_ratio_listened,
            ),
        ]);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 5 s window: 50,000 publishes to 1,000 listeners at 150 % CPU.
    fn window() -> Window {
        Window {
            secs: 5.0,
            published: 50_000,
            delivered: 25_000_000,
            listening: 1000,
            server_cpu_pct: Some(150.0),
            redis_cpu_pct: None,
            bench_cpu_pct: None,
        }
    }

    #[test]
    fn cpu_per_publish_is_the_windows_cpu_seconds_over_its_publishes() {
        // 1.5 cores for 5 s = 7.5 s of CPU over 50,000 publishes.
        assert_eq!(window().cpu_us_per_publish(), Some(150.0));
        assert_eq!(window().publishes_per_sec(), 10_000.0);
        let unread = Window {
            server_cpu_pct: None,
            ..window()
        };
        assert_eq!(unread.cpu_us_per_publish(), None);
        let idle = Window {
            published: 0,
            ..window()
        };
        assert_eq!(idle.cpu_us_per_publish(), None);
    }

    #[test]
    fn the_delivered_share_owes_every_accepted_event_to_every_listener() {
        assert_eq!(window().delivered_share(), Some(0.5));
        let nobody = Window {
            listening: 0,
            ..window()
        };
        assert_eq!(nobody.delivered_share(), None);
    }

    /// A rate of `per_sec` publishes per second, everything else empty.
    fn rate(per_sec: f64) -> Rate {
        Rate {
            connected: Connected::sum(&[]),
            publishes_per_sec: per_sec,
            publish_errors: 0,
            first_error: None,
            server_cpu_pct: None,
            cpu_us_per_publish: None,
            redis_cpu_pct: None,
            bench_cpu_pct: None,
            events_per_sec: 0.0,
            delivered_share: None,
            p50_ms: None,
            p99_ms: None,
            dropped: 0,
            lagged: None,
        }
    }

    /// `redis-benchmark`'s reference at `per_sec`.
    fn xadd(per_sec: f64) -> Xadd {
        Xadd {
            requests_per_sec: per_sec,
            p50_ms: None,
            p99_ms: None,
            clients: 32,
            requests: 200_000,
        }
    }

    #[test]
    fn the_xadd_ratio_needs_the_redis_rate_and_the_reference() {
        let both = Publish {
            memory: Some(rate(700.0)),
            redis: Some(rate(800.0)),
            memory_alone: Some(rate(30_000.0)),
            redis_alone: Some(rate(20_000.0)),
            xadd: Some(xadd(80_000.0)),
            errors: Vec::new(),
        };
        assert_eq!(
            both.xadd_ratio(),
            Some(0.25),
            "the memory hub plays no part"
        );
        assert_eq!(both.xadd_ratio_listened(), Some(0.01));
        let no_reference = Publish {
            xadd: None,
            ..both.clone()
        };
        assert_eq!(no_reference.xadd_ratio(), None);
        let no_redis = Publish {
            redis_alone: None,
            ..both.clone()
        };
        assert_eq!(
            no_redis.xadd_ratio(),
            None,
            "the target is the publish path alone"
        );
    }

    #[test]
    fn the_progress_line_names_each_hub_and_why_a_part_did_not_run() {
        let sizes = PublishSizes {
            publish_conns: 32,
            publish_subs: 1000,
            publish_warmup_secs: 1.0,
            publish_secs: 5.0,
            xadd_requests: 200_000,
        };
        let publish = Publish {
            memory: Some(rate(700.0)),
            memory_alone: Some(rate(30_000.0)),
            errors: vec![format!("redis hub: {}", redis::NOT_INSTALLED)],
            ..Publish::default()
        };
        let line = sizes.progress(&publish);
        assert!(
            line.starts_with("publish: memory: 700 publishes/s"),
            "{line}"
        );
        assert!(line.contains("; alone 30000 publishes/s"), "{line}");
        assert!(!line.contains("redis:"), "{line}");
        assert!(
            line.ends_with("; redis hub: not run: redis-server is not installed"),
            "{line}"
        );
    }
}
