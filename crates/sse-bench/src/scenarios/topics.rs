//! Scenario 11, topics: filtered fan-out. `--topics-subs` subscribers each ask for one of
//! `--topics` topics (`GET /stream?topic=bench.<j>`, subscriber `i` on topic `i % topics`,
//! so 10 a topic by default), and the publishers post every event on the next topic in turn
//! (`"topic": "bench.<k % topics>"`), so that each event matches 1 % of the subscribers;
//! beside it, on the same server, the single-topic fan-out: the same subscribers on every
//! topic and events published without one, so that every subscriber gets every event.
//!
//! Both are measured at the same publish rate, `--topics-rate` publishes a second (and,
//! like the fan-out scenario, never further than `--window` events ahead of the slowest
//! subscriber), so that the server does the same publishing work in both and the CPU per
//! published event says what one event costs with 1 % of the subscribers to deliver it to
//! against all of them: a server that wakes every subscriber to filter pays for all of them
//! either way, one that finds the subscribers by topic pays for the 1 %. The rate is set
//! low enough that every variant delivers the unfiltered case in full (the fan-out
//! scenario's slowest variant delivers about 1 M events/s to 1,000 subscribers here), so
//! that neither measurement is a saturated one. The other sizes are the fan-out scenario's
//! (`--publishers`, `--window`, `--payload`, `--fanout-warmup-secs`, `--fanout-secs`).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fanout::{Fanout, FanoutSizes, Shape};
use super::{Bench, Scenario};
use crate::report::{Row, f0, f1, f2, mega};

/// The sizes of scenario 11.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct TopicsSizes {
    /// Scenario 11 (topics): subscribers, each on one topic.
    #[arg(long, default_value_t = 1000)]
    pub topics_subs: usize,
    /// Scenario 11: topics the subscribers are spread over and the events go round-robin
    /// over (each event matches 1/topics of the subscribers).
    #[arg(long, default_value_t = 100)]
    pub topics: usize,
    /// Scenario 11: publishes per second, the same for the filtered and the unfiltered
    /// measurement.
    #[arg(long, default_value_t = 500.0)]
    pub topics_rate: f64,
}

/// What scenario 11 measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Topics {
    /// Every subscriber on every topic, events published without one.
    pub unfiltered: Option<Fanout>,
    /// Each subscriber on one of `--topics` topics, events round-robin over them.
    pub filtered: Option<Fanout>,
}

impl Topics {
    /// Server CPU per published event, filtered over unfiltered: what filtering leaves of
    /// an event's cost (1 would be no saving at all, 0.01 a cost in proportion to the
    /// subscribers served).
    pub fn cpu_ratio(&self) -> Option<f64> {
        let filtered = self.filtered.as_ref()?.cpu_us_per_publish()?;
        let unfiltered = self.unfiltered.as_ref()?.cpu_us_per_publish()?;
        Some(filtered / unfiltered).filter(|r| r.is_finite())
    }
}

impl TopicsSizes {
    /// The fan-out sizes this scenario measures with: the fan-out scenario's, with its own
    /// subscribers.
    fn fanout(&self, fanout: &FanoutSizes) -> FanoutSizes {
        FanoutSizes {
            fanout_subs: self.topics_subs,
            ..fanout.clone()
        }
    }

    /// The shape of one measurement: `topics` topics (0: none) at the scenario's rate.
    fn shape(&self, topics: usize) -> Shape {
        Shape {
            topics,
            rate: Some(self.topics_rate),
            ..Shape::default()
        }
    }
}

/// One measurement's part of the progress line.
fn summary(f: &Fanout) -> String {
    format!(
        "{:.0} publishes/s, {:.3} M events/s, CPU {:.0}% = {:.0} µs/publish, p99 {:.1} ms, \
         dropped {}",
        f.publishes_per_sec,
        f.events_per_sec / 1e6,
        f.server_cpu_pct.unwrap_or(f64::NAN),
        f.cpu_us_per_publish().unwrap_or(f64::NAN),
        f.p99_ms.unwrap_or(f64::NAN),
        f.dropped
    )
}

/// Two rows of one figure, unfiltered then filtered: `both!("label", fmt, f => figure)`
/// reads the figure off the [`Fanout`] `f` of each.
macro_rules! both {
    ($label:literal, $fmt:expr, $f:ident => $get:expr) => {
        [
            Row::relative(
                concat!("topics: ", $label, " (unfiltered: every event to all)"),
                $fmt,
                |t: &Topics| {
                    let $f = t.unfiltered.as_ref()?;
                    $get
                },
            ),
            Row::relative(
                concat!("topics: ", $label, " (filtered: one topic each, same rate)"),
                $fmt,
                |t: &Topics| {
                    let $f = t.filtered.as_ref()?;
                    $get
                },
            ),
        ]
    };
}

impl Scenario for TopicsSizes {
    type Outcome = Topics;

    fn connections(&self) -> usize {
        self.topics_subs
    }

    async fn run(&self, bench: &Bench<'_>) -> Topics {
        let fanout = self.fanout(bench.fanout);
        let servers = [bench.server];
        let unfiltered = fanout
            .measure_shaped(&servers, &|| None, &self.shape(0))
            .await;
        // Let the server see the subscribers go before the next fleet connects.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let filtered = fanout
            .measure_shaped(&servers, &|| None, &self.shape(self.topics))
            .await;
        Topics {
            unfiltered: Some(unfiltered.fanout),
            filtered: Some(filtered.fanout),
        }
    }

    fn progress(&self, t: &Topics) -> String {
        let mut line = String::from("topics:");
        for (name, fanout) in [("unfiltered", &t.unfiltered), ("filtered", &t.filtered)] {
            if let Some(f) = fanout {
                let _ = write!(line, " {name}: {};", summary(f));
            }
        }
        if let Some(ratio) = t.cpu_ratio() {
            let _ = write!(line, " filtered/unfiltered CPU per publish {ratio:.2}");
        }
        line.trim_end_matches(';').to_owned()
    }

    fn rows() -> Vec<Row<Topics>> {
        let mut rows: Vec<Row<Topics>> = [
            both!("publishes/s", f0, f => Some(f.publishes_per_sec)),
            both!("events/s delivered", mega, f => Some(f.events_per_sec)),
            both!("server CPU (% of a core)", f0, f => f.server_cpu_pct),
            both!("server CPU per published event (µs)", f1, f => f.cpu_us_per_publish()),
            both!("server CPU per delivered event (µs)", f2, f => f.cpu_us_per_delivery()),
            both!("delivery p99 (ms)", f1, f => f.p99_ms),
            both!("subscribers dropped", f0, f => Some(f.dropped as f64)),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.push(Row::relative(
            "topics: filtered / unfiltered server CPU per published event",
            f2,
            Topics::cpu_ratio,
        ));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::fleet::Connected;

    /// A measurement of `per_sec` publishes a second at `cpu` % of a core.
    fn fanout(per_sec: f64, cpu: Option<f64>) -> Fanout {
        Fanout {
            connected: Connected::sum(&[]),
            events_per_sec: per_sec * 10.0,
            publishes_per_sec: per_sec,
            p50_ms: None,
            p99_ms: Some(2.0),
            p999_ms: None,
            server_cpu_pct: cpu,
            dropped: 0,
            publish_errors: 0,
            lagged: None,
        }
    }

    #[test]
    fn the_ratio_is_filtered_over_unfiltered_cpu_per_publish_and_needs_both() {
        let both = Topics {
            unfiltered: Some(fanout(500.0, Some(80.0))),
            filtered: Some(fanout(500.0, Some(20.0))),
        };
        assert_eq!(both.cpu_ratio(), Some(0.25));
        let unread = Topics {
            filtered: Some(fanout(500.0, None)),
            ..both.clone()
        };
        assert_eq!(unread.cpu_ratio(), None);
        let nothing = Topics {
            unfiltered: Some(fanout(500.0, Some(0.0))),
            ..both
        };
        assert_eq!(nothing.cpu_ratio(), None, "no ratio to no CPU at all");
    }

    #[test]
    fn both_measurements_publish_at_the_rate_and_only_one_has_topics() {
        let sizes = TopicsSizes {
            topics_subs: 1000,
            topics: 100,
            topics_rate: 500.0,
        };
        let (unfiltered, filtered) = (sizes.shape(0), sizes.shape(100));
        assert_eq!((unfiltered.topics, unfiltered.rate), (0, Some(500.0)));
        assert_eq!((filtered.topics, filtered.rate), (100, Some(500.0)));
        assert!(unfiltered.h2.is_none() && filtered.h2.is_none());
        let line = sizes.progress(&Topics {
            unfiltered: Some(fanout(500.0, Some(80.0))),
            filtered: Some(fanout(500.0, Some(20.0))),
        });
        assert!(
            line.starts_with("topics: unfiltered: 500 publishes/s"),
            "{line}"
        );
        assert!(
            line.ends_with("filtered/unfiltered CPU per publish 0.25"),
            "{line}"
        );
    }
}
