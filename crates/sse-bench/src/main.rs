//! `sse-bench`: measures the SSE variants, one after another under the same load, against
//! `limit`, a raw tokio server that is the physical limit of fan-out on the machine.
//!
//! `sse-bench` (no subcommand) is the runner: for each server and each scenario it starts a
//! fresh server process (the variants' release binaries, or this binary re-executed as
//! `sse-bench limit`), loads it from this process, reads its memory and CPU time from
//! `/proc`, and at the end prints a markdown table, writes a JSON record and an SVG chart.
//! `--url` measures a server that is already running instead. See docs/BENCH.md.

mod cli;
mod client;
mod limit;
mod redis;
mod report;
mod runner;
mod scenarios;
mod server;
mod stats;
mod wire;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::report::Run;

/// Microseconds since the Unix epoch: the clock that publishers write into payloads and
/// subscribers compare against.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
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
    if let Some(json) = &cli.run.runner.render {
        return match render(json, cli.run.runner.svg_out.as_deref()) {
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
    match runtime.block_on(runner::run(cli.run, nofile)) {
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
