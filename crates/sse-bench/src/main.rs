//! `sse-bench`: measures the SSE variants, one after another under the same load, against
//! `limit`, a raw tokio server that is the physical limit of fan-out on the machine.
//!
//! `sse-bench` (no subcommand) is the runner: for each server and each scenario it starts a
//! fresh server process (the variants' release binaries, or this binary re-executed as
//! `sse-bench limit`), loads it from this process, reads its memory and CPU time from
//! `/proc`, and at the end prints a markdown table, writes a JSON record and an SVG chart.
//! `--url` measures a server that is already running instead. See docs/BENCH.md.

mod client;
mod limit;
mod report;
mod scenarios;
mod server;
mod stats;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::client::Target;
use crate::report::{Machine, Run, ServerResult};
use crate::scenarios::{FanoutSizes, ResumeSizes, SlowSizes};
use crate::server::{Launch, Server};

/// Microseconds since the Unix epoch: the clock that publishers write into payloads and
/// subscribers compare against.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The command line.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// `limit` runs the reference server on its own.
    #[command(subcommand)]
    command: Option<Command>,
    /// Runner flags.
    #[command(flatten)]
    run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the raw reference server (the runner starts it this way).
    Limit(limit::LimitArgs),
}

/// The five scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Idle streams held open: RSS per stream, idle CPU.
    Hold,
    /// Publishing as fast as everyone is served: events/s and delay.
    Fanout,
    /// A few events to many subscribers: delay and spread.
    Latency,
    /// One stalled subscriber among healthy ones.
    Slow,
    /// Everyone reconnects at once with Last-Event-ID.
    Resume,
}

/// Runner flags.
#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Servers to measure: limit, axum, actix, warp (or the crate names).
    #[arg(long, value_delimiter = ',', default_value = "limit,axum,actix,warp")]
    variants: Vec<String>,
    /// Scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hold,fanout,latency,slow,resume"
    )]
    scenarios: Vec<Scenario>,
    /// Where the variants' release binaries are (`cargo build --release -p ...`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Measure this already running server instead of starting any (e.g. http://127.0.0.1:3000).
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's pid, to read its RSS and CPU from /proc.
    #[arg(long, requires = "url")]
    pid: Option<u32>,
    /// Bearer token for /publish (passed to started servers as --publish-token too).
    #[arg(long)]
    token: Option<String>,
    /// Do not measure: print the table of an earlier run's JSON and write its chart to
    /// --svg-out (or next to the JSON).
    #[arg(long, value_name = "JSON")]
    render: Option<PathBuf>,
    /// With --render: where the SVG goes.
    #[arg(long, requires = "render")]
    svg_out: Option<PathBuf>,
    /// Run everything this many times, servers interleaved; the table shows medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Where JSON, SVG and markdown results go.
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,

    /// Scenario 1: idle streams to hold (one server process; at most ~19,000 under a
    /// 20,000 open-file cap).
    #[arg(long, default_value_t = 10_000)]
    hold: usize,
    /// Scenario 1: seconds of idling over which server CPU is measured (longer than
    /// --keepalive-secs, so that it includes a round of keep-alive comments).
    #[arg(long, default_value_t = 16.0)]
    hold_idle_secs: f64,

    /// Scenario 2: subscribers.
    #[arg(long, default_value_t = 1000)]
    fanout_subs: usize,
    /// Scenario 2: publisher keep-alive connections (each has one request in flight, so
    /// fewer than ~16 measure the publish round trip instead of the fan-out).
    #[arg(long, default_value_t = 16)]
    publishers: usize,
    /// Scenario 2: payload bytes per event.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Scenario 2: events publishers may run ahead of the slowest subscriber (keep it well
    /// under the servers' --queue).
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Scenario 2: unmeasured warm-up seconds.
    #[arg(long, default_value_t = 1.0)]
    fanout_warmup_secs: f64,
    /// Scenario 2: measured seconds.
    #[arg(long, default_value_t = 5.0)]
    fanout_secs: f64,

    /// Scenario 3: subscribers.
    #[arg(long, default_value_t = 10_000)]
    latency_subs: usize,
    /// Scenario 3: events published.
    #[arg(long, default_value_t = 5)]
    latency_events: u64,
    /// Scenario 3: milliseconds between events.
    #[arg(long, default_value_t = 2000)]
    latency_interval_ms: u64,

    /// Scenario 4: healthy subscribers (plus one stalled).
    #[arg(long, default_value_t = 999)]
    slow_subs: usize,
    /// Scenario 4: events per second.
    #[arg(long, default_value_t = 100)]
    slow_rate: u64,
    /// Scenario 4: payload bytes per event (large enough that the stalled subscriber's
    /// kernel buffers, which autotune to a few MB, fill within --slow-secs).
    #[arg(long, default_value_t = 4096)]
    slow_payload: usize,
    /// Scenario 4: seconds measured before the stalled subscriber joins.
    #[arg(long, default_value_t = 4.0)]
    slow_baseline_secs: f64,
    /// Scenario 4: seconds measured while it is stalled.
    #[arg(long, default_value_t = 15.0)]
    slow_secs: f64,
    /// Scenario 4: the stalled subscriber's SO_RCVBUF in bytes.
    #[arg(long, default_value_t = 4096)]
    slow_rcvbuf: u32,

    /// Scenario 5: clients reconnecting at once.
    #[arg(long, default_value_t = 1000)]
    resume_clients: usize,
    /// Scenario 5: events published before the storm.
    #[arg(long, default_value_t = 500)]
    resume_prefill: usize,
    /// Scenario 5: how many events back the clients resume.
    #[arg(long, default_value_t = 300)]
    resume_back: usize,

    /// Servers' --history.
    #[arg(long, default_value_t = 1000)]
    history: usize,
    /// Servers' --queue.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Servers' --keepalive-secs.
    #[arg(long, default_value_t = 15.0)]
    keepalive_secs: f64,
}

/// Runs the reference server (`sse-bench limit`), re-renders a run (`--render`), or measures.
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Limit(args)) = cli.command {
        return match limit::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("limit: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(json) = &cli.run.render {
        return match render(json, cli.run.svg_out.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let nofile = raise_nofile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.run, nofile)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Re-renders an earlier run: its table on stdout, its chart as SVG.
fn render(json: &std::path::Path, svg_out: Option<&std::path::Path>) -> Result<(), String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    let run: Run = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    println!("{}", report::table(&run));
    let svg_path = svg_out.map_or_else(|| json.with_extension("svg"), std::path::Path::to_path_buf);
    std::fs::write(&svg_path, report::svg(&run))
        .map_err(|e| format!("{}: {e}", svg_path.display()))?;
    eprintln!("wrote {}", svg_path.display());
    Ok(())
}

/// Raises the soft open-file limit to the hard one: every held stream costs one descriptor
/// here, and the started servers inherit the raised limit. Returns (soft, hard) after.
fn raise_nofile() -> (u64, u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard
                && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
            {
                eprintln!("warning: cannot raise the open-file limit from {soft} to {hard}: {e}");
                return (soft, hard);
            }
            (hard, hard)
        }
        Err(e) => {
            eprintln!("warning: cannot read the open-file limit: {e}");
            (0, 0)
        }
    }
}

/// Maps a short name to the variant's crate (and binary) name.
fn crate_name(variant: &str) -> &str {
    match variant {
        "axum" => "axum-stream-map",
        "actix" => "actix-push-loop",
        "warp" => "warp-generator",
        other => other,
    }
}

/// Runs every scenario against every server and writes the results.
async fn run(args: RunArgs, nofile: (u64, u64)) -> Result<(), String> {
    let started = SystemTime::now();
    let date = humantime::format_rfc3339_seconds(started).to_string();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut machine = Machine::probe(nofile);
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("{}: {e}", args.out_dir.display()))?;
    let stamp = date.replace(':', "");
    let log_dir = args.out_dir.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    eprintln!(
        "sse-bench: {} CPUs, load {}, open files {}/{}",
        machine.cpus, machine.load_before, nofile.0, nofile.1
    );
    let largest = args
        .hold
        .max(args.latency_subs)
        .max(args.fanout_subs)
        .max(args.resume_clients);
    if (largest as u64) + 200 > nofile.0 {
        eprintln!(
            "warning: {largest} connections need more than the {} open files this process may have",
            nofile.0
        );
    }

    let mut servers = Vec::new();
    if let Some(url) = &args.url {
        let target = parse_url(url, args.token.clone())?;
        let server = Server::external(target, args.pid);
        let mut result = ServerResult {
            name: "external".into(),
            ..ServerResult::default()
        };
        for scenario in &args.scenarios {
            run_scenario(*scenario, &server, &args, &mut result).await;
        }
        servers.push(result);
    } else {
        let this = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut flags: Vec<String> = ["--port", "0", "--tick-ms", "0", "--retry-ms", "3000"]
            .map(String::from)
            .to_vec();
        flags.extend([
            "--history".into(),
            args.history.to_string(),
            "--queue".into(),
            args.queue.to_string(),
            "--keepalive-secs".into(),
            args.keepalive_secs.to_string(),
            "--max-clients".into(),
            (largest + 1000).to_string(),
        ]);
        if let Some(token) = &args.token {
            flags.extend(["--publish-token".into(), token.clone()]);
        }
        let rounds = args.rounds.max(1);
        // Rounds go over every server in turn, so that a slow drift in the machine's load
        // touches every server alike instead of whichever ran last.
        for round in 1..=rounds {
            if rounds > 1 {
                eprintln!("round {round}/{rounds}");
            }
            for variant in &args.variants {
                let name = crate_name(variant).to_owned();
                let (program, prefix) = if name == "limit" {
                    (this.clone(), vec!["limit".to_owned()])
                } else {
                    (args.bin_dir.join(&name), Vec::new())
                };
                let launch = Launch {
                    log: log_dir.join(format!("{stamp}-{name}.log")),
                    name: name.clone(),
                    program,
                    prefix,
                    flags: flags.clone(),
                };
                let mut result = ServerResult {
                    name: name.clone(),
                    ..ServerResult::default()
                };
                for scenario in &args.scenarios {
                    eprintln!("[{name}] {scenario:?}: starting a fresh server");
                    let server = match Server::start(&launch, args.token.clone()).await {
                        Ok(server) => server,
                        Err(e) => {
                            eprintln!("[{name}] {scenario:?}: {e}");
                            result.errors.push(format!("{scenario:?}: {e}"));
                            continue;
                        }
                    };
                    run_scenario(*scenario, &server, &args, &mut result).await;
                    let took = server.stop().await;
                    result.shutdown_secs.push(took.map(|d| d.as_secs_f64()));
                    // Let the kernel retire the closed sockets before the next server starts.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                servers.push(result);
            }
        }
    }
    machine.load_after = report::loadavg();
    let run = Run {
        date,
        command,
        machine,
        settings: settings_json(&args),
        servers,
    };
    let table = report::table(&run);
    println!("{table}");
    let json = serde_json::to_string_pretty(&run).map_err(|e| e.to_string())?;
    let base = args.out_dir.join(&stamp);
    for (ext, text) in [("json", json), ("svg", report::svg(&run)), ("md", table)] {
        let path = base.with_extension(ext);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs one scenario and stores its result, printing a one-line summary.
async fn run_scenario(
    scenario: Scenario,
    server: &Server,
    args: &RunArgs,
    result: &mut ServerResult,
) {
    let name = result.name.clone();
    let started = std::time::Instant::now();
    match scenario {
        Scenario::Hold => {
            let r = scenarios::hold(server, args.hold, args.hold_idle_secs).await;
            eprintln!(
                "[{name}] hold: {}/{} open ({} failed{}), {:.2} KiB/stream, idle CPU {:.1}%",
                r.connected.ready,
                r.requested,
                r.connected.failed,
                r.connected
                    .first_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                r.rss_per_stream_kib.unwrap_or(f64::NAN),
                r.idle_cpu_pct.unwrap_or(f64::NAN)
            );
            result.hold = Some(r);
        }
        Scenario::Fanout => {
            let sizes = FanoutSizes {
                subscribers: args.fanout_subs,
                publishers: args.publishers,
                payload: args.payload,
                window: args.window,
                warmup_secs: args.fanout_warmup_secs,
                secs: args.fanout_secs,
            };
            let r = scenarios::fanout(server, &sizes).await;
            eprintln!(
                "[{name}] fan-out: {:.3} M events/s ({:.0} publishes/s), p50 {:.1} p99 {:.1} p99.9 {:.1} ms, CPU {:.0}%, dropped {}",
                r.events_per_sec / 1e6,
                r.publishes_per_sec,
                r.p50_ms.unwrap_or(f64::NAN),
                r.p99_ms.unwrap_or(f64::NAN),
                r.p999_ms.unwrap_or(f64::NAN),
                r.server_cpu_pct.unwrap_or(f64::NAN),
                r.dropped
            );
            result.fanout = Some(r);
        }
        Scenario::Latency => {
            let r = scenarios::latency(
                server,
                args.latency_subs,
                args.latency_events,
                Duration::from_millis(args.latency_interval_ms),
                args.payload,
            )
            .await;
            eprintln!(
                "[{name}] latency: {} open, {}/{} delivered, p50 {:.1} p99 {:.1} ms, spread max {:.1} ms",
                r.connected.ready,
                r.delivered,
                r.expected,
                r.p50_ms.unwrap_or(f64::NAN),
                r.p99_ms.unwrap_or(f64::NAN),
                r.spread_max_ms.unwrap_or(f64::NAN)
            );
            result.latency = Some(r);
        }
        Scenario::Slow => {
            let sizes = SlowSizes {
                subscribers: args.slow_subs,
                rate: args.slow_rate,
                payload: args.slow_payload,
                baseline_secs: args.slow_baseline_secs,
                secs: args.slow_secs,
                rcvbuf: args.slow_rcvbuf,
            };
            let r = scenarios::slow(server, &sizes).await;
            eprintln!(
                "[{name}] slow: p99 {:.1} ms without, {:.1} ms with the stalled one; stalled EOF {:?} after {} events; lagged {:?}; RSS +{:.1} MiB",
                r.p99_without_ms.unwrap_or(f64::NAN),
                r.p99_with_ms.unwrap_or(f64::NAN),
                r.stalled_eof,
                r.stalled_events,
                r.lagged,
                r.rss_growth_mib.unwrap_or(f64::NAN)
            );
            result.slow = Some(r);
        }
        Scenario::Resume => {
            let sizes = ResumeSizes {
                clients: args.resume_clients,
                prefill: args.resume_prefill,
                back: args.resume_back,
                payload: args.payload,
            };
            let r = scenarios::resume(server, &sizes).await;
            eprintln!(
                "[{name}] resume: {}/{} correct, all replayed in {:.0} ms (p50 {:.0} ms), live to all in {:.1} ms{}",
                r.ok,
                sizes.clients,
                r.all_replayed_ms.unwrap_or(f64::NAN),
                r.p50_replayed_ms.unwrap_or(f64::NAN),
                r.live_ms.unwrap_or(f64::NAN),
                r.first_error
                    .as_deref()
                    .map(|e| format!("; e.g. {e}"))
                    .unwrap_or_default()
            );
            result.resume = Some(r);
        }
    }
    eprintln!(
        "[{name}] {scenario:?} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Parses `http://host:port[/...]` into a target (loopback or any resolvable address).
fn parse_url(url: &str, token: Option<String>) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url must start with http:// (got {url})"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| format!("--url {url}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url}: no address"))?;
    Ok(Target {
        addr,
        host: authority.to_owned(),
        token,
    })
}

/// The settings, for the JSON record.
fn settings_json(args: &RunArgs) -> serde_json::Value {
    serde_json::json!({
        "variants": args.variants,
        "rounds": args.rounds,
        "scenarios": args.scenarios.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
        "url": args.url,
        "hold": args.hold,
        "hold_idle_secs": args.hold_idle_secs,
        "fanout_subs": args.fanout_subs,
        "publishers": args.publishers,
        "payload": args.payload,
        "window": args.window,
        "fanout_warmup_secs": args.fanout_warmup_secs,
        "fanout_secs": args.fanout_secs,
        "latency_subs": args.latency_subs,
        "latency_events": args.latency_events,
        "latency_interval_ms": args.latency_interval_ms,
        "slow_subs": args.slow_subs,
        "slow_rate": args.slow_rate,
        "slow_payload": args.slow_payload,
        "slow_baseline_secs": args.slow_baseline_secs,
        "slow_secs": args.slow_secs,
        "slow_rcvbuf": args.slow_rcvbuf,
        "resume_clients": args.resume_clients,
        "resume_prefill": args.resume_prefill,
        "resume_back": args.resume_back,
        "history": args.history,
        "queue": args.queue,
        "keepalive_secs": args.keepalive_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(cli.run.scenarios.len(), 5);
        assert_eq!(cli.run.variants, ["limit", "axum", "actix", "warp"]);
        let cli = Cli::try_parse_from(["sse-bench", "limit", "--port", "0"]).expect("limit");
        assert!(matches!(cli.command, Some(Command::Limit(_))));
    }
}
