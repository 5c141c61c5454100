//! Scenario 8, redis fan-out: the fan-out scenario's measurement through one Redis log
//! shared by two instances, next to the same measurement on the in-memory hub in the same
//! run, for the share of the in-memory hub's fan-out that Redis keeps (the target:
//! at least 0.8 of it).
//!
//! It takes the fan-out scenario's sizes (`--fanout-subs`, `--publishers`, `--window`,
//! `--payload`, `--fanout-warmup-secs`, `--fanout-secs`) and measures twice with them
//! ([`FanoutSizes::measure`]): first on the server that the runner started (in-memory hub,
//! every subscriber on it, exactly as the fan-out scenario does), then on two instances of
//! the same variant started on a `redis-server` of the scenario's own with one prefix, the
//! subscribers split evenly between them and every publisher posting to the first, paced by
//! the slowest subscriber of either. Every event reaches the second instance only through
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

/// The sizes of scenario 8: none of its own, it takes the fan-out scenario's.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RedisFanoutSizes {}

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
        let memory = bench.fanout.measure(&[bench.server], &|| None).await;
        let mut outcome = RedisFanout {
            memory: Some(memory.fanout),
            ..RedisFanout::default()
        };
        // Let the kernel retire the closed sockets before the instances start.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let token = bench.server.target.token.clone();
        match through_redis(bench.fanout, launch, &redis, token).await {
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
        let nothing_delivered = RedisFanout {
            memory: Some(fanout(0.0)),
            ..both
        };
        assert_eq!(nothing_delivered.ratio(), None, "no ratio to nothing");
    }

    #[test]
    fn a_scenario_that_did_not_run_says_why_in_its_progress_line() {
        let line =
            RedisFanoutSizes {}.progress(&RedisFanout::not_run(redis::NOT_INSTALLED.to_owned()));
        assert_eq!(
            line,
            "redis fan-out: not run: redis-server is not installed"
        );
    }
}
