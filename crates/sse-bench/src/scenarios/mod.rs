//! The scenarios, one file each, and the registry that puts them on the command line, into
//! the JSON record and into the table.
//!
//! A scenario is the struct of its sizes, which implements [`Scenario`]: it is a
//! `clap::Args` whose flags are the scenario's, it serialises itself into the run's
//! settings, and it knows how to run itself, summarise its outcome in one line and lay that
//! outcome out as rows of the table. The `registry!` list at the end of this file turns the
//! scenarios into the `--scenarios` values, the flattened flags, the per-server outcomes of
//! the JSON record and the table's rows, so that a new scenario is a new file and one line
//! there.
//!
//! All load runs in this process on one tokio runtime: subscribers are tasks, publishers are
//! a few keep-alive connections. Delays are measured from the publisher's clock reading,
//! written into the payload just before the request is sent, to the subscriber's clock
//! reading when the read that completed the frame returned; both are the same machine's
//! wall clock. The load generator shares the two cores with the server, as it would on any
//! single machine; that cost is the same for every server, and `limit` shows its ceiling.

mod fanout;
mod fleet;
mod hold;
mod latency;
mod publish;
mod record;
mod redis_fanout;
mod redis_resume;
mod resume;
mod slow;
mod storm;
mod targets;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::report::{Figure, Row, Run, ServerResult};
use crate::server::{Launch, Server};

/// One scenario, implemented by the struct of its sizes.
pub trait Scenario: clap::Args + Serialize {
    /// What one run measures, stored under the scenario's key in each server's record.
    type Outcome: std::fmt::Debug + Clone + Serialize + DeserializeOwned;

    /// Streams the scenario holds open at once, counted into the open-file warning and the
    /// `--max-clients` the runner gives the servers.
    fn connections(&self) -> usize;

    /// Runs the scenario once against `bench.server`.
    async fn run(&self, bench: &Bench<'_>) -> Self::Outcome;

    /// The one-line summary printed after a run, after the server's name.
    fn progress(&self, outcome: &Self::Outcome) -> String;

    /// The scenario's rows of the results table, in the order shown.
    fn rows() -> Vec<Row<Self::Outcome>>;
}

/// What a scenario runs against, besides its own sizes.
pub struct Bench<'a> {
    /// The freshly started (or external) server.
    pub server: &'a Server,
    /// How that server was started (`None` for `--url`), for scenarios that start
    /// processes of their own with other flags, or restart one.
    pub launch: Option<&'a Launch>,
    /// `--payload`: bytes per event. It is declared and documented among the fan-out
    /// flags, but latency and resume publish events of that size too.
    pub payload: usize,
    /// The fan-out scenario's sizes, which the Redis fan-out scenario measures with too, so
    /// that its in-memory figure is the fan-out scenario's.
    pub fanout: &'a fanout::FanoutSizes,
}

impl Sizes {
    /// What every scenario gets besides its own sizes.
    fn bench<'a>(&'a self, server: &'a Server, launch: Option<&'a Launch>) -> Bench<'a> {
        Bench {
            server,
            launch,
            payload: self.fanout.payload,
            fanout: &self.fanout,
        }
    }
}

/// The chart's groups, in the order drawn: four scenarios' headline figures.
pub fn chart() -> Vec<Figure> {
    vec![
        fanout::FanoutSizes::headline().lift(|r| r.outcomes.fanout.as_ref()),
        hold::HoldSizes::headline().lift(|r| r.outcomes.hold.as_ref()),
        latency::LatencySizes::headline().lift(|r| r.outcomes.latency.as_ref()),
        resume::ResumeSizes::headline().lift(|r| r.outcomes.resume.as_ref()),
    ]
}

/// What the scenarios add to the markdown after the table: the storm's histograms, then the
/// Redis scenarios' targets.
pub fn appendix(run: &Run) -> String {
    storm::histograms(run) + &targets::redis(run)
}

/// Declares the scenarios from one list of `Variant => key: Sizes` entries, each with the
/// doc line that `--help` shows for it and, optionally, `#[serde(...)]` attributes for its
/// outcome's field. `key` names the scenario's outcome in the JSON record; `Variant` is its
/// name in progress lines and, kebab-cased as clap does, its `--scenarios` value.
macro_rules! registry {
    ($($(#[doc = $doc:literal])+ $(#[serde $serde:tt])* $kind:ident => $key:ident: $sizes:ty,)+) => {
        /// A scenario as `--scenarios` names it (and the run's settings record it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Kind {
            $($(#[doc = $doc])+ $kind,)+
        }

        /// Every scenario's sizes, flattened into the command line and the run's settings.
        #[derive(Debug, Clone, clap::Args, Serialize)]
        pub struct Sizes {
            $(
                #[doc = concat!("The `", stringify!($key), "` scenario's flags.")]
                #[command(flatten)]
                #[serde(flatten)]
                pub $key: $sizes,
            )+
        }

        /// One server's outcomes: one per scenario that ran, under the scenario's key.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        pub struct Outcomes {
            $(
                #[doc = concat!("The `", stringify!($key), "` scenario's outcome, if it ran.")]
                $(#[serde $serde])*
                pub $key: Option<<$sizes as Scenario>::Outcome>,
            )+
        }

        impl Sizes {
            /// The most streams any scenario holds open at once, whether it is selected or
            /// not (the servers get one `--max-clients` for the whole run).
            pub fn connections(&self) -> usize {
                0 $(.max(self.$key.connections()))+
            }

            /// Runs scenario `kind` against `server` (started by `launch`, unless external),
            /// stores its outcome in `outcomes`, and returns its progress line.
            pub async fn run(
                &self,
                kind: Kind,
                server: &Server,
                launch: Option<&Launch>,
                outcomes: &mut Outcomes,
            ) -> String {
                let bench = self.bench(server, launch);
                match kind {
                    $(Kind::$kind => {
                        let outcome = self.$key.run(&bench).await;
                        let line = self.$key.progress(&outcome);
                        outcomes.$key = Some(outcome);
                        line
                    })+
                }
            }
        }

        /// The table's rows: every scenario's, in the order of the registry.
        pub fn figures() -> Vec<Figure> {
            let mut figures = Vec::new();
            $(
                figures.extend(
                    <$sizes as Scenario>::rows()
                        .into_iter()
                        .map(|row| row.lift(|r: &ServerResult| r.outcomes.$key.as_ref())),
                );
            )+
            figures
        }
    };
}

registry! {
    /// Idle streams held open: RSS per stream, idle CPU.
    Hold => hold: hold::HoldSizes,
    /// Publishing as fast as everyone is served: events/s and delay.
    Fanout => fanout: fanout::FanoutSizes,
    /// A few events to many subscribers: delay and spread.
    Latency => latency: latency::LatencySizes,
    /// One stalled subscriber among healthy ones.
    Slow => slow: slow::SlowSizes,
    /// Everyone reconnects at once with Last-Event-ID.
    Resume => resume: resume::ResumeSizes,
    /// An instance restarts under its clients: how their reconnects spread, with and
    /// without jitter.
    // Records from before this scenario have no `storm` key, and must be written back
    // without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    Storm => storm: storm::StormSizes,
    /// Publishes/s accepted from keep-alive publishers while subscribers listen, on the
    /// memory hub and on --hub redis, beside redis-benchmark's XADD rate (needs
    /// redis-server).
    // Records from before this and the next scenarios have no key for them either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    Publish => publish: publish::PublishSizes,
    /// Fan-out through one Redis log to two instances, beside the memory hub's (needs
    /// redis-server; takes the fan-out flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    RedisFanout => redis_fanout: redis_fanout::RedisFanoutSizes,
    /// Clients of one instance all resume at once on another sharing its Redis log (needs
    /// redis-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    RedisResume => redis_resume: redis_resume::RedisResumeSizes,
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum as _;

    use super::*;

    #[test]
    fn the_settings_name_each_scenario_as_scenarios_selects_it() {
        for kind in Kind::value_variants() {
            let flag_value = kind.to_possible_value().expect("no variant is skipped");
            let recorded = serde_json::to_value(kind).expect("serialisable");
            assert_eq!(recorded, flag_value.get_name(), "{kind:?}");
        }
    }

    #[test]
    fn every_scenario_has_rows_and_an_outcome_key() {
        let all_ran = Outcomes {
            storm: Some(storm::Storm::default()),
            publish: Some(publish::Publish::default()),
            redis_fanout: Some(redis_fanout::RedisFanout::default()),
            redis_resume: Some(redis_resume::RedisResume::default()),
            ..Outcomes::default()
        };
        let keys = serde_json::to_value(all_ran).expect("serialisable");
        let keys = keys.as_object().expect("an object");
        assert_eq!(keys.len(), Kind::value_variants().len());
        assert!(figures().len() >= keys.len());
    }

    #[test]
    fn newer_scenarios_that_did_not_run_leave_no_key_while_older_ones_keep_theirs() {
        let keys = serde_json::to_value(Outcomes::default()).expect("serialisable");
        let keys = keys.as_object().expect("an object");
        for newer in ["storm", "publish", "redis_fanout", "redis_resume"] {
            assert!(!keys.contains_key(newer), "{newer}");
        }
        assert_eq!(keys.get("resume"), Some(&serde_json::Value::Null));
        let read: Outcomes = serde_json::from_str("{}").expect("every key may be missing");
        assert!(read.storm.is_none() && read.hold.is_none());
        assert!(read.publish.is_none() && read.redis_fanout.is_none());
    }
}
