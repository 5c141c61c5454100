//! Scenario 8, redis fan-out: the fan-out scenario's measurement through one Redis log
//! shared by two instances, next to the same measurement on the in-memory hub in the same
//! run, for the share of the in-memory hub's fan-out that Redis keeps (the target:
//! at least 0.8 of it).
//!
//! It takes the fan-out scenario's sizes (`--fanout-subs`, `--window`, `--payload`,
//! `--fanout-warmup-secs`, `--fanout-secs`), all but its publishers, and measures twice with
//! them ([`FanoutSizes::measure`]): first on the server that the runner started (in-memory hub,
//! every subscriber on it, exactly as the fan-out scenario does), then on two instances of
//! the same variant started on a `redis-server` of the scenario's own with one prefix, each
//! with its share of the cores ([`crate::redis::workers_each`]), the subscribers split evenly
//! between them and every publisher posting to the first, paced by the slowest subscriber of
//! either. Every event reaches the second instance only through
//! Redis, and the first instance's own subscribers get it from its reader too: the Redis
//! hub delivers nothing before it is in the shared log.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fanout::{Fanout, FanoutSizes};
use super::{Bench, Scenario};
use crate::redis::{self, RedisServer};
use crate::report::{Row, f0, f1, f2, mega};
use crate::server::Launch;

/// The Redis prefix both instances share.
const PREFIX: &str = "bench-fanout";

/// The target: the Redis hub keeps at least this share of the in-memory fan-out.
pub const TARGET: f64 = 0.8;

/// The sizes of scenario 8: its publishers; the rest are the fan-out scenario's.
///
/// Why publishers of its own: each has one publish in flight, so the publishers can keep
/// at most as many events ahead of the subscribers as there are of them, and through Redis a
/// publish takes about twice as long under this load (it is answered once the event has gone
/// through Redis and back into the instance's mirror: 16 ms at 1 M events/s, against 9 ms on
/// the in-memory hub). With the fan-out scenario's 16 the two instances then wait for
/// publishes, not for their subscribers, and the figure is the publish round trip's; with as
/// many publishers as `--window` is long, the window binds on both hubs.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RedisFanoutSizes {
    /// Scenario 8: publisher keep-alive connections, for both hubs (as many as `--window`
    /// is long, so that the window binds and not the publish round trip).
    #[arg(long, default_value_t = 64)]
    pub redis_fanout_publishers: usize,
}

impl RedisFanoutSizes {
    /// The fan-out scenario's sizes with this scenario's publishers.
    fn sizes(&self, fanout: &FanoutSizes) -> FanoutSizes {
        FanoutSizes {
            publishers: self.redis_fanout_publishers,
            ..fanout.clone()
        }
    }
}

/// What scenario 8 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisFanout {
    /// One instance on the in-memory hub, every subscriber on it.
    pub memory: Option<Fanout>,
    /// Two instances on one Redis log, the subscribers split between them (the server CPU
    /// is both instances' together).
    pub redis: Option<Fanout>,
    /// The `redis-server`'s CPU in the Redis measurement's window, percent of one core.
    pub redis_cpu_pct: Option<f64>,
    /// Publisher connections on both hubs (0 in runs from before it was its own size, which
    /// had the fan-out scenario's 16).
    #[serde(default)]
    pub publishers: usize,
    /// Why a measurement was not made.
    pub errors: Vec<String>,
}

impl RedisFanout {
    /// An outcome with nothing measured, for `error`.
    fn not_run(error: String) -> Self {
        Self {
            errors: vec![error],
            ..Self::default()
        }
    }

    /// Events/s delivered through Redis as a share of the in-memory hub's.
    pub fn ratio(&self) -> Option<f64> {
        let memory = self.memory.as_ref()?.events_per_sec;
        Some(self.redis.as_ref()?.events_per_sec / memory).filter(|r| r.is_finite())
    }

    /// How long one publish took on average in `fanout` (ms): every publisher has one in
    /// flight at a time, so it is the publishers over the publishes per second.
    fn round_trip_ms(&self, fanout: &Fanout) -> Option<f64> {
        let ms = 1000.0 * self.publishers as f64 / fanout.publishes_per_sec;
        Some(ms).filter(|ms| ms.is_finite() && *ms > 0.0)
    }
}

/// Measures `fanout`'s sizes on two instances of `launch` on `redis`; returns the outcome
/// and the Redis server's CPU share.
async fn through_redis(
    fanout: &FanoutSizes,
    launch: &Launch,
    redis: &RedisServer,
    token: Option<String>,
) -> Result<(Fanout, Option<f64>), String> {
    let instances = redis.instances(launch, PREFIX, 2, token).await?;
    let servers: Vec<_> = instances.iter().collect();
    let measured = fanout.measure(&servers, &|| redis.cpu_secs()).await;
    redis::stop_all(instances).await;
    Ok((measured.fanout, measured.sidecar_cpu_pct))
}

/// One hub's part of the progress line.
fn summary(f: &Fanout) -> String {
    format!(
        "{:.3} M events/s, p99 {:.1} ms, CPU {:.0}%, dropped {}",
        f.events_per_sec / 1e6,
        f.p99_ms.unwrap_or(f64::NAN),
        f.server_cpu_pct.unwrap_or(f64::NAN),
        f.dropped
    )
}

/// Two rows of one figure of a fan-out measurement, the in-memory hub's then Redis's:
/// `hubs!("label", fmt, f => figure)` reads the figure off the [`Fanout`] `f` of each.
macro_rules! hubs {
    ($label:literal, $fmt:expr, $f:ident => $get:expr) => {
        [
            Row::absolute(
                concat!("redis fan-out: ", $label, " (memory hub, 1 instance)"),
                $fmt,
                |r: &RedisFanout| {
                    let $f = r.memory.as_ref()?;
                    $get
                },
            ),
            Row::absolute(
                concat!("redis fan-out: ", $label, " (redis hub, 2 instances)"),
                $fmt,
                |r: &RedisFanout| {
                    let $f = r.redis.as_ref()?;
                    $get
                },
            ),
        ]
    };
}

impl Scenario for RedisFanoutSizes {
    type Outcome = RedisFanout;

    fn connections(&self) -> usize {
        // The fan-out scenario's subscribers, which it counts already.
        0
    }

    async fn run(&self, bench: &Bench<'_>) -> RedisFanout {
        let launch = match redis::unfit(bench.launch) {
            Ok(launch) => launch,
            Err(e) => return RedisFanout::not_run(e),
        };
        // Redis first: without it there is nothing to compare the in-memory figure with.
        let redis = match RedisServer::start().await {
            Ok(redis) => redis,
            Err(e) => return RedisFanout::not_run(e),
        };
        let sizes = self.sizes(bench.fanout);
        let memory = sizes.measure(&[bench.server], &|| None).await;
        let mut outcome = RedisFanout {
            memory: Some(memory.fanout),
            publishers: sizes.publishers,
            ..RedisFanout::default()
        };
        // Let the kernel retire the closed sockets before the instances start.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let token = bench.server.target.token.clone();
        match through_redis(&sizes, launch, &redis, token).await {
            Ok((fanout, cpu)) => {
                outcome.redis = Some(fanout);
                outcome.redis_cpu_pct = cpu;
            }
            Err(e) => outcome.errors.push(e),
        }
        redis.stop().await;
        outcome
    }

    fn progress(&self, r: &RedisFanout) -> String {
        let mut line = String::from("redis fan-out:");
        for (name, fanout) in [("memory", &r.memory), ("redis x2", &r.redis)] {
            if let Some(f) = fanout {
                let _ = write!(line, " {name}: {};", summary(f));
            }
        }
        if let Some(ratio) = r.ratio() {
            let _ = write!(line, " redis/memory {ratio:.2};");
        }
        for error in &r.errors {
            let _ = write!(line, " {error};");
        }
        line.trim_end_matches(';').to_owned()
    }

    fn rows() -> Vec<Row<RedisFanout>> {
        let mut rows: Vec<Row<RedisFanout>> = [
            hubs!("events/s delivered", mega, f => Some(f.events_per_sec)),
            hubs!("publishes/s accepted", f0, f => Some(f.publishes_per_sec)),
            hubs!("delay p50 (ms)", f1, f => f.p50_ms),
            hubs!("delay p99 (ms)", f1, f => f.p99_ms),
            hubs!("server CPU (% of a core)", f0, f => f.server_cpu_pct),
            hubs!("subscribers dropped", f0, f => Some(f.dropped as f64)),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.extend([
            Row::absolute(
                "redis fan-out: publish round trip (ms) (memory hub, 1 instance)",
                f1,
                |r: &RedisFanout| r.round_trip_ms(r.memory.as_ref()?),
            ),
            Row::absolute(
                "redis fan-out: publish round trip (ms) (redis hub, 2 instances)",
                f1,
                |r: &RedisFanout| r.round_trip_ms(r.redis.as_ref()?),
            ),
            Row::absolute(
                "redis fan-out: publisher connections",
                f0,
                |r: &RedisFanout| Some(r.publishers as f64).filter(|&n| n > 0.0),
            ),
            Row::absolute(
                "redis fan-out: redis-server CPU (% of a core)",
                f0,
                |r: &RedisFanout| r.redis_cpu_pct,
            ),
            Row::absolute(
                "redis fan-out: redis / memory events/s (target ≥ 0.80)",
                f2,
                RedisFanout::ratio,
            ),
        ]);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::fleet::Connected;

    /// A fan-out measurement that delivered `per_sec` events a second.
    fn fanout(per_sec: f64) -> Fanout {
        Fanout {
            connected: Connected::sum(&[]),
            events_per_sec: per_sec,
            publishes_per_sec: per_sec / 1000.0,
            p50_ms: None,
            p99_ms: Some(30.0),
            p999_ms: None,
            server_cpu_pct: Some(120.0),
            dropped: 0,
            publish_errors: 0,
            lagged: None,
        }
    }

    #[test]
    fn the_ratio_is_redis_over_memory_and_needs_both() {
        let both = RedisFanout {
            memory: Some(fanout(2_000_000.0)),
            redis: Some(fanout(1_500_000.0)),
            ..RedisFanout::default()
        };
        assert_eq!(both.ratio(), Some(0.75));
        let memory_only = RedisFanout {
            redis: None,
            ..both.clone()
        };
        assert_eq!(memory_only.ratio(), None);
        let sixteen = RedisFanout {
            publishers: 16,
            ..both.clone()
        };
        // 1,500 publishes a second by 16 publishers: one each every 10.7 ms.
        let ms = sixteen
            .round_trip_ms(&fanout(1_500_000.0))
            .expect("a round trip");
        assert!((ms - 10.67).abs() < 0.01, "{ms}");
        assert_eq!(
            both.round_trip_ms(&fanout(1.0)),
            None,
            "no publishers known"
        );
        let nothing_delivered = RedisFanout {
            memory: Some(fanout(0.0)),
            ..both
        };
        assert_eq!(nothing_delivered.ratio(), None, "no ratio to nothing");
    }

    #[test]
    fn a_scenario_that_did_not_run_says_why_in_its_progress_line() {
        let sizes = RedisFanoutSizes {
            redis_fanout_publishers: 64,
        };
        let line = sizes.progress(&RedisFanout::not_run(redis::NOT_INSTALLED.to_owned()));
        assert_eq!(
            line,
            "redis fan-out: not run: redis-server is not installed"
        );
    }
}
