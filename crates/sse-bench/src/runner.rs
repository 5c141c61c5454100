//! The runner: every selected scenario against every server, each scenario on a freshly
//! started process, then the table on stdout and the JSON record, SVG chart and markdown
//! table in `--out-dir`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::cli::{RunArgs, parse_url};
use crate::report::{self, Machine, Run, ServerResult};
use crate::scenarios::{Kind, Sizes};
use crate::server::{Launch, Server};

/// Runs every scenario against every server and writes the results.
pub async fn run(args: RunArgs, nofile: (u64, u64)) -> Result<(), String> {
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut machine = Machine::probe(nofile);
    let output = Output::create(&args.runner.out_dir, &date)?;
    eprintln!(
        "sse-bench: {} CPUs, load {}, open files {}/{}",
        machine.cpus, machine.load_before, nofile.0, nofile.1
    );
    let largest = args.sizes.connections();
    if (largest as u64) + 200 > nofile.0 {
        eprintln!(
            "warning: {largest} connections need more than the {} open files this process may have",
            nofile.0
        );
    }
    let servers = match &args.runner.url {
        Some(url) => vec![measure_external(url, &args).await?],
        None => measure_started(&args, &output, largest).await?,
    };
    machine.load_after = report::loadavg();
    let run = Run {
        date,
        command,
        machine,
        settings: args.settings()?,
        servers,
    };
    output.write(&run)
}

/// Where a run's results and its servers' logs go.
struct Output {
    /// `--out-dir`.
    dir: PathBuf,
    /// Its `logs` directory, for the started servers' stderr.
    logs: PathBuf,
    /// The run's start time without colons, which names every file of the run.
    stamp: String,
}

impl Output {
    /// Creates `dir` and its `logs` directory for a run that started at `date`.
    fn create(dir: &Path, date: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            logs,
            stamp: date.replace(':', ""),
        })
    }

    /// Where server `name`'s stderr goes.
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{}-{name}.log", self.stamp))
    }

    /// Prints the table, then writes the JSON record, the chart and the table.
    fn write(&self, run: &Run) -> Result<(), String> {
        let table = report::table(run);
        println!("{table}");
        let json = serde_json::to_string_pretty(run).map_err(|e| e.to_string())?;
        let base = self.dir.join(&self.stamp);
        for (ext, text) in [("json", json), ("svg", report::svg(run)), ("md", table)] {
            let path = base.with_extension(ext);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Runs every scenario against the server at `url`, which someone else started.
async fn measure_external(url: &str, args: &RunArgs) -> Result<ServerResult, String> {
    let target = parse_url(url, args.runner.token.clone())?;
    let server = Server::external(target, args.runner.pid);
    let mut result = ServerResult::named("external");
    for kind in &args.runner.scenarios {
        run_scenario(*kind, &server, None, &args.sizes, &mut result).await;
    }
    Ok(result)
}

/// Runs every scenario against every variant, `--rounds` times; returns one result per
/// variant per round.
async fn measure_started(
    args: &RunArgs,
    output: &Output,
    largest: usize,
) -> Result<Vec<ServerResult>, String> {
    let this = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let flags = args
        .servers
        .command_line(largest + 1000, args.runner.token.as_deref());
    let rounds = args.runner.rounds.max(1);
    let mut servers = Vec::new();
    // Rounds go over every server in turn, so that a slow drift in the machine's load
    // touches every server alike instead of whichever ran last.
    for round in 1..=rounds {
        if rounds > 1 {
            eprintln!("round {round}/{rounds}");
        }
        for variant in &args.runner.variants {
            let name = crate_name(variant).to_owned();
            let (program, prefix) = if name == "limit" {
                (this.clone(), vec!["limit".to_owned()])
            } else {
                (args.runner.bin_dir.join(&name), Vec::new())
            };
            let launch = Launch {
                log: output.log(&name),
                name,
                program,
                prefix,
                flags: flags.clone(),
            };
            servers.push(measure_variant(&launch, args).await);
        }
    }
    Ok(servers)
}

/// Runs every scenario against a fresh process of `launch` each.
async fn measure_variant(launch: &Launch, args: &RunArgs) -> ServerResult {
    let name = &launch.name;
    let mut result = ServerResult::named(name);
    for kind in &args.runner.scenarios {
        eprintln!("[{name}] {kind:?}: starting a fresh server");
        let server = match Server::start(launch, args.runner.token.clone()).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("[{name}] {kind:?}: {e}");
                result.errors.push(format!("{kind:?}: {e}"));
                continue;
            }
        };
        run_scenario(*kind, &server, Some(launch), &args.sizes, &mut result).await;
        let took = server.stop().await;
        result.shutdown_secs.push(took.map(|d| d.as_secs_f64()));
        // Let the kernel retire the closed sockets before the next server starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    result
}

/// Runs one scenario against `server` (started by `launch`, unless external) and stores its
/// outcome, printing its summary and how long it took.
async fn run_scenario(
    kind: Kind,
    server: &Server,
    launch: Option<&Launch>,
    sizes: &Sizes,
    result: &mut ServerResult,
) {
    let started = Instant::now();
    let summary = sizes.run(kind, server, launch, &mut result.outcomes).await;
    let name = &result.name;
    eprintln!("[{name}] {summary}");
    eprintln!(
        "[{name}] {kind:?} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_map_to_crates_and_others_pass_through() {
        assert_eq!(crate_name("axum"), "axum-stream-map");
        assert_eq!(crate_name("warp-generator"), "warp-generator");
        assert_eq!(crate_name("limit"), "limit");
    }
}
