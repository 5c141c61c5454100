//! The Redis scenarios' targets, met or missed per server, for the markdown after the table:
//! the issue "Several instances, one durable log" asks that the Redis hub keep at least
//! 0.8 of the in-memory hub's fan-out and publish at least 0.5 of `redis-benchmark`'s XADD
//! rate; the resume onto the other instance has no figure to reach, only correctness. Why
//! a Redis scenario did not measure (no `redis-server`, `limit`) is listed after.

use std::fmt::Write as _;

use super::redis_fanout::TARGET as FANOUT_TARGET;
use crate::report::{Reader, Run, ServerResult, median, names};

/// The target for the Redis hub's publish rate, as a share of plain XADDs'.
pub const PUBLISH_TARGET: f64 = 0.5;

/// One target: its label, how it is read off a server's results, and what meets it.
struct Target {
    /// The row's label.
    label: String,
    /// Reads the figure the target is about.
    get: Box<Reader>,
    /// Whether a figure meets the target.
    met: fn(f64) -> bool,
    /// How the figure is shown after met or missed.
    show: fn(f64) -> String,
}

/// The three targets, in the order shown.
fn targets() -> Vec<Target> {
    vec![
        Target {
            label: format!("Redis fan-out ≥ {FANOUT_TARGET:.2}x the memory hub's"),
            get: Box::new(|r: &ServerResult| r.outcomes.redis_fanout.as_ref()?.ratio()),
            met: |ratio| ratio >= FANOUT_TARGET,
            show: |ratio| format!("{ratio:.2}x"),
        },
        Target {
            label: format!(
                "Redis hub publishes, nobody listening, ≥ {PUBLISH_TARGET:.2}x \
                 redis-benchmark's XADDs"
            ),
            get: Box::new(|r: &ServerResult| r.outcomes.publish.as_ref()?.xadd_ratio()),
            met: |ratio| ratio >= PUBLISH_TARGET,
            show: |ratio| format!("{ratio:.2}x"),
        },
        Target {
            label: "resume on the other instance exact for every client".to_owned(),
            get: Box::new(|r: &ServerResult| {
                let resume = r.outcomes.redis_resume.as_ref()?;
                resume.errors.is_empty().then_some(resume.failed as f64)
            }),
            met: |failed| failed == 0.0,
            show: |failed| format!("{failed:.0} failed"),
        },
    ]
}

/// Why each server's Redis scenarios did not measure, as `- server: scenario: why` lines,
/// each once however many rounds gave it.
fn not_measured(run: &Run) -> Vec<String> {
    let mut lines = Vec::new();
    for server in &run.servers {
        let o = &server.outcomes;
        let errors = [
            ("publish", o.publish.as_ref().map(|p| &p.errors)),
            ("redis-fanout", o.redis_fanout.as_ref().map(|r| &r.errors)),
            ("redis-resume", o.redis_resume.as_ref().map(|r| &r.errors)),
        ];
        for (scenario, errors) in errors {
            for error in errors.into_iter().flatten() {
                let line = format!("- {}: {scenario}: {error}", server.name);
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// The markdown after the table for the Redis scenarios: each target, met or missed by
/// each server that has its figure (the median over rounds), then why a scenario did not
/// measure; empty when no Redis scenario ran.
pub fn redis(run: &Run) -> String {
    let targets = targets();
    let servers: Vec<&str> = names(run)
        .into_iter()
        .filter(|name| targets.iter().any(|t| median(run, name, &t.get).is_some()))
        .collect();
    let mut out = String::new();
    if !servers.is_empty() {
        out.push_str(
            "\nRedis targets (issue \"Several instances, one durable log\"):\n\n| target |",
        );
        for name in &servers {
            let _ = write!(out, " {name} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(servers.len()));
        out.push('\n');
        for target in targets.iter().filter(|t| {
            servers
                .iter()
                .any(|name| median(run, name, &t.get).is_some())
        }) {
            let _ = write!(out, "| {} |", target.label);
            for name in &servers {
                let cell = median(run, name, &target.get).map_or_else(
                    || "–".to_owned(),
                    |v| {
                        let verdict = if (target.met)(v) { "met" } else { "**missed**" };
                        format!("{verdict} ({})", (target.show)(v))
                    },
                );
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }
    let lines = not_measured(run);
    if !lines.is_empty() {
        let _ = write!(
            out,
            "\nRedis scenarios, parts not measured:\n\n{}\n",
            lines.join("\n")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{NOT_INSTALLED, Xadd};
    use crate::report::Machine;
    use crate::scenarios::fanout::Fanout;
    use crate::scenarios::fleet::Connected;
    use crate::scenarios::publish::{Publish, Rate};
    use crate::scenarios::redis_fanout::RedisFanout;
    use crate::scenarios::redis_resume::RedisResume;

    /// A fan-out that delivered `per_sec` events a second.
    fn fanout(per_sec: f64) -> Fanout {
        Fanout {
            connected: Connected::sum(&[]),
            events_per_sec: per_sec,
            publishes_per_sec: 0.0,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            server_cpu_pct: None,
            dropped: 0,
            publish_errors: 0,
            lagged: None,
        }
    }

    /// A publish measurement whose Redis hub accepted `redis` publishes/s with nobody
    /// listening (and a tenth of that with subscribers) against an XADD reference of
    /// `xadd`/s.
    fn publish(redis: f64, xadd: f64) -> Publish {
        let rate = Rate {
            connected: Connected::sum(&[]),
            publishes_per_sec: redis,
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
        };
        Publish {
            redis: Some(Rate {
                publishes_per_sec: redis / 10.0,
                ..rate.clone()
            }),
            redis_alone: Some(rate),
            xadd: Some(Xadd {
                requests_per_sec: xadd,
                p50_ms: None,
                p99_ms: None,
                clients: 32,
                requests: 200_000,
            }),
            ..Publish::default()
        }
    }

    /// A run of these servers.
    fn run(servers: Vec<ServerResult>) -> Run {
        Run {
            date: String::new(),
            command: String::new(),
            machine: Machine::probe((1, 1)),
            settings: serde_json::Value::Null,
            servers,
        }
    }

    #[test]
    fn each_target_is_met_or_missed_by_its_ratio() {
        let mut axum = ServerResult::named("axum-stream-map");
        axum.outcomes.redis_fanout = Some(RedisFanout {
            memory: Some(fanout(1_000_000.0)),
            redis: Some(fanout(800_000.0)),
            ..RedisFanout::default()
        });
        axum.outcomes.publish = Some(publish(20_000.0, 100_000.0));
        let mut warp = ServerResult::named("warp-generator");
        warp.outcomes.redis_fanout = Some(RedisFanout {
            memory: Some(fanout(1_000_000.0)),
            redis: Some(fanout(790_000.0)),
            ..RedisFanout::default()
        });
        warp.outcomes.redis_resume = Some(RedisResume {
            clients: 1000,
            ok: 999,
            failed: 1,
            ..RedisResume::default()
        });
        let text = redis(&run(vec![ServerResult::named("limit"), axum, warp]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[3], "| target | axum-stream-map | warp-generator |",
            "{text}"
        );
        assert_eq!(
            lines[5],
            "| Redis fan-out ≥ 0.80x the memory hub's | met (0.80x) | **missed** (0.79x) |"
        );
        assert_eq!(
            lines[6],
            "| Redis hub publishes, nobody listening, ≥ 0.50x redis-benchmark's XADDs \
             | **missed** (0.20x) | – |"
        );
        assert_eq!(
            lines[7],
            "| resume on the other instance exact for every client | – | **missed** (1 failed) |"
        );
        assert!(!text.contains("limit"), "limit measured nothing: {text}");
    }

    #[test]
    fn scenarios_that_did_not_measure_are_listed_once_and_no_run_adds_nothing() {
        let mut axum = ServerResult::named("axum-stream-map");
        axum.outcomes.redis_resume = Some(RedisResume {
            clients: 1000,
            errors: vec![NOT_INSTALLED.to_owned()],
            ..RedisResume::default()
        });
        let text = redis(&run(vec![axum.clone(), axum]));
        assert_eq!(
            text,
            "\nRedis scenarios, parts not measured:\n\n- axum-stream-map: redis-resume: \
             not run: redis-server is not installed\n"
        );
        assert_eq!(redis(&run(vec![ServerResult::named("limit")])), "");
    }
}
