//! The command line: the runner's own flags, every scenario's sizes (declared by the
//! scenarios themselves and flattened in here), and the flags every started server gets.
//!
//! The same structs serialise into the `settings` of the JSON record, so a setting is
//! recorded under its flag's name (`--fanout-subs` as `fanout_subs`); only flags that say
//! where things are, not what was measured, are left out.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::client::Target;
use crate::limit;
use crate::scenarios::{Kind, Sizes};

/// The command line.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// `limit` runs the reference server on its own.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Runner flags.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the raw reference server (the runner starts it this way).
    Limit(limit::LimitArgs),
}

/// Everything the runner is told: which servers and scenarios, the scenarios' sizes and
/// the servers' flags. Serialised, it is the run's `settings`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RunArgs {
    /// What to measure and where results go.
    #[command(flatten)]
    #[serde(flatten)]
    pub runner: Runner,
    /// Every scenario's sizes.
    #[command(flatten)]
    #[serde(flatten)]
    pub sizes: Sizes,
    /// Flags passed on to every started server.
    #[command(flatten)]
    #[serde(flatten)]
    pub servers: ServerFlags,
}

impl RunArgs {
    /// The settings for the JSON record.
    pub fn settings(&self) -> Result<serde_json::Value, String> {
        serde_json::to_value(self).map_err(|e| format!("cannot record the settings: {e}"))
    }
}

/// What to measure and where results go. Paths, the pid and the token are not settings
/// of the measurement (and the token is a secret), so they stay out of the record.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Runner {
    /// Servers to measure: limit, axum, actix, warp (or the crate names).
    #[arg(long, value_delimiter = ',', default_value = "limit,axum,actix,warp")]
    pub variants: Vec<String>,
    /// Scenarios to run. The default set leaves out the storm (two restarts under 5,000
    /// clients) and the ones that need redis-server on the PATH (each starts its own, on a
    /// unix socket in a temp dir, and stops it): publish (about 30 s per server),
    /// redis-fanout (about 15 s) and redis-resume (about 5 s). Name them to run them, e.g.
    /// `--scenarios publish,redis-fanout,redis-resume --variants axum,actix,warp`; limit has
    /// no Redis hub, and gets publish's memory-hub half only. Left out too: http2 (about
    /// 30 s per server; limit gets its plain HTTP/1.1 layout only), topics (about
    /// 13 s) and churn (about 6 s).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hold,fanout,latency,slow,resume"
    )]
    pub scenarios: Vec<Kind>,
    /// Where the variants' release binaries are (`cargo build --release -p ...`).
    #[arg(long, default_value = "target/release")]
    #[serde(skip)]
    pub bin_dir: PathBuf,
    /// Measure this already running server instead of starting any (e.g. http://127.0.0.1:3000).
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the server's pid, to read its RSS and CPU from /proc.
    #[arg(long, requires = "url")]
    #[serde(skip)]
    pub pid: Option<u32>,
    /// Bearer token for /publish (passed to started servers as --publish-token too).
    #[arg(long)]
    #[serde(skip)]
    pub token: Option<String>,
    /// Do not measure: print the table of an earlier run's JSON and write its chart to
    /// --svg-out (or next to the JSON).
    #[arg(long, value_name = "JSON")]
    #[serde(skip)]
    pub render: Option<PathBuf>,
    /// With --render: where the SVG goes.
    #[arg(long, requires = "render")]
    #[serde(skip)]
    pub svg_out: Option<PathBuf>,
    /// Run everything this many times, servers interleaved; the table shows medians.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Where JSON, SVG and markdown results go.
    #[arg(long, default_value = "target/bench")]
    #[serde(skip)]
    pub out_dir: PathBuf,
}

/// Flags that every started server gets, so that all of them serve under the same limits.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct ServerFlags {
    /// Servers' --history.
    #[arg(long, default_value_t = 1000)]
    pub history: usize,
    /// Servers' --queue.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// Servers' --keepalive-secs.
    #[arg(long, default_value_t = 15.0)]
    pub keepalive_secs: f64,
}

impl ServerFlags {
    /// A started server's command line: a free port, no ticker, these flags, room for
    /// `max_clients` streams, and `token` for `/publish` if there is one.
    pub fn command_line(&self, max_clients: usize, token: Option<&str>) -> Vec<String> {
        let mut flags: Vec<String> = ["--port", "0", "--tick-ms", "0", "--retry-ms", "3000"]
            .map(String::from)
            .to_vec();
        flags.extend([
            "--history".into(),
            self.history.to_string(),
            "--queue".into(),
            self.queue.to_string(),
            "--keepalive-secs".into(),
            self.keepalive_secs.to_string(),
            "--max-clients".into(),
            max_clients.to_string(),
        ]);
        if let Some(token) = token {
            flags.extend(["--publish-token".into(), token.to_owned()]);
        }
        flags
    }
}

/// Parses `http://host:port[/...]` into a target (loopback or any resolvable address).
pub fn parse_url(url: &str, token: Option<String>) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url must start with http:// (got {url})"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("--url {url}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url}: no address"))?;
    Ok(Target {
        host: authority.to_owned(),
        ..Target::plain(addr, token)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    /// The runner's flags parsed from `flags`.
    fn run_args(flags: &[&str]) -> RunArgs {
        let argv = std::iter::once("sse-bench").chain(flags.iter().copied());
        Cli::try_parse_from(argv).expect("valid flags").run
    }

    #[test]
    fn parses_urls() {
        let t = parse_url("http://127.0.0.1:3000/stream", None).expect("valid");
        assert_eq!(t.addr.port(), 3000);
        assert_eq!(t.host, "127.0.0.1:3000");
        assert!(parse_url("https://x", None).is_err());
    }

    #[test]
    fn cli_defaults_parse() {
        let cli = Cli::try_parse_from(["sse-bench"]).expect("defaults");
        assert_eq!(cli.run.runner.scenarios.len(), 5);
        assert_eq!(cli.run.runner.variants, ["limit", "axum", "actix", "warp"]);
        let cli = Cli::try_parse_from(["sse-bench", "limit", "--port", "0"]).expect("limit");
        assert!(matches!(cli.command, Some(Command::Limit(_))));
    }

    /// The settings of a default run, as runs before the scenarios had files of their own
    /// recorded them: `--render` and anyone comparing runs rely on these names.
    #[test]
    fn default_settings_are_recorded_as_before() {
        let expected = serde_json::json!({
            "variants": ["limit", "axum", "actix", "warp"],
            "rounds": 1,
            "scenarios": ["hold", "fanout", "latency", "slow", "resume"],
            "url": null,
            "hold": 10_000,
            "hold_idle_secs": 16.0,
            "fanout_subs": 1000,
            "publishers": 16,
            "redis_fanout_publishers": 64,
            "payload": 64,
            "window": 64,
            "fanout_warmup_secs": 1.0,
            "fanout_secs": 5.0,
            "latency_subs": 10_000,
            "latency_events": 5,
            "latency_interval_ms": 2000,
            "slow_subs": 999,
            "slow_rate": 100,
            "slow_payload": 4096,
            "slow_baseline_secs": 4.0,
            "slow_secs": 15.0,
            "slow_rcvbuf": 4096,
            "resume_clients": 1000,
            "resume_prefill": 500,
            "resume_back": 300,
            "storm_clients": 5000,
            "storm_jitter": 0.2,
            "storm_attempts": 10,
            "storm_secs": 60.0,
            "publish_conns": 32,
            "publish_subs": 1000,
            "publish_warmup_secs": 1.0,
            "publish_secs": 5.0,
            "xadd_requests": 200_000,
            "redis_resume_clients": 1000,
            "redis_resume_prefill": 500,
            "redis_resume_back": 300,
            "redis_resume_spread": 100,
            "history": 1000,
            "queue": 256,
            "keepalive_secs": 15.0,
        });
        // The http2, topics and churn scenarios' flags, which runs before them did not have
        // (in a second object: one literal this long is past `json!`'s recursion limit).
        let newer = serde_json::json!({
            "h2_subs": 1000,
            "h2_hold": 1000,
            "h2_streams_per_conn": 100,
            "topics_subs": 1000,
            "topics": 100,
            "topics_rate": 500.0,
            "churn_total": 40_000,
            "churn_batch": 1000,
            "churn_drain_secs": 30.0,
            "churn_settle_secs": 2.0,
        });
        let mut expected = expected;
        if let (Some(all), Some(newer)) = (expected.as_object_mut(), newer.as_object()) {
            all.extend(newer.clone());
        }
        assert_eq!(run_args(&[]).settings(), Ok(expected));
    }

    #[test]
    fn every_flag_lands_in_the_settings_under_its_own_name() {
        let settings = run_args(&[
            "--hold=7",
            "--fanout-secs=0.5",
            "--slow-rcvbuf=1",
            "--resume-back=2",
            "--scenarios=resume,hold",
            "--url=http://127.0.0.1:1",
            "--token=secret",
            "--queue=9",
        ])
        .settings()
        .expect("serialisable");
        assert_eq!(settings["hold"], 7);
        assert_eq!(settings["fanout_secs"], 0.5);
        assert_eq!(settings["slow_rcvbuf"], 1);
        assert_eq!(settings["resume_back"], 2);
        assert_eq!(settings["scenarios"], serde_json::json!(["resume", "hold"]));
        assert_eq!(settings["url"], "http://127.0.0.1:1");
        assert_eq!(settings["queue"], 9);
        assert!(
            !settings.to_string().contains("secret"),
            "the token stays out"
        );
    }

    #[test]
    fn every_setting_is_a_flag_of_the_same_name() {
        let command = Cli::command();
        let settings = run_args(&[]).settings().expect("serialisable");
        let keys = settings.as_object().expect("an object").keys();
        for key in keys {
            let flag = key.replace('_', "-");
            assert!(
                command
                    .get_arguments()
                    .any(|a| a.get_long() == Some(flag.as_str())),
                "setting {key} has no --{flag}"
            );
        }
    }

    #[test]
    fn the_largest_fleet_sizes_the_open_file_check_and_the_servers_client_limit() {
        let fleets = [
            "hold",
            "fanout-subs",
            "latency-subs",
            "resume-clients",
            "storm-clients",
            "publish-subs",
            "redis-resume-clients",
            "h2-subs",
            "h2-hold",
            "topics-subs",
            "churn-batch",
        ];
        for largest in fleets {
            let flags: Vec<String> = fleets
                .iter()
                .map(|f| format!("--{f}={}", if *f == largest { 50 } else { 1 }))
                .collect();
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            assert_eq!(run_args(&flags).sizes.connections(), 50, "--{largest}");
            // The slow scenario's fleet was never counted; see `SlowSizes::connections`.
            let with_slow = [&flags[..], &["--slow-subs=99"]].concat();
            assert_eq!(run_args(&with_slow).sizes.connections(), 50);
        }
    }

    #[test]
    fn started_servers_get_the_shared_flags() {
        let args = run_args(&["--history=5", "--keepalive-secs=2.5"]);
        assert_eq!(
            args.servers.command_line(1500, Some("t")).join(" "),
            "--port 0 --tick-ms 0 --retry-ms 3000 --history 5 --queue 256 \
             --keepalive-secs 2.5 --max-clients 1500 --publish-token t"
        );
        assert!(
            !args
                .servers
                .command_line(1, None)
                .contains(&"--publish-token".into())
        );
    }
}
