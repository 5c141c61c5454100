//! `sse-check URL`: runs the conformance checks against any running SSE server and prints
//! a pass/fail table, naming for each failure what was expected and what came back.

use std::process::ExitCode;

use clap::Parser;
use sse_conformance::{Problem, Target, checks, run_check};

/// Checks a running server against the sse-idioms contract (docs/CONTRACT.md).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The server's base URL, e.g. http://127.0.0.1:3000
    url: url::Url,
    /// The server's --publish-token, to check that publishing requires it.
    #[arg(long)]
    token: Option<String>,
    /// One of the server's --allowed-origins, to check CORS.
    #[arg(long)]
    origin: Option<String>,
    /// The server's --max-clients, to check the limit (opens that many streams).
    #[arg(long)]
    max_clients: Option<u32>,
    /// An id issued by an earlier run of the server, to check that it is called foreign.
    #[arg(long)]
    foreign_id: Option<String>,
    /// Run only the checks whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut base = args.url;
    base.set_path("");
    let mut target = Target::new(base);
    target.token = args.token;
    target.allowed_origin = args.origin;
    target.max_clients = args.max_clients;
    target.foreign_id = args.foreign_id;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let checks: Vec<_> = checks::all()
        .into_iter()
        .filter(|check| {
            args.only
                .as_deref()
                .is_none_or(|only| check.name.contains(only))
        })
        .collect();
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(10);
    println!("checking {} against the sse-idioms contract\n", target.base);
    println!("{:<5} {:<width$}  result", "point", "check");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for check in &checks {
        let outcome = runtime.block_on(run_check(check, target.clone()));
        let verdict = match &outcome {
            Ok(()) => {
                passed += 1;
                "pass".to_owned()
            }
            Err(Problem::Skip(reason)) => {
                skipped += 1;
                format!("skip  ({reason})")
            }
            Err(problem) => {
                failed += 1;
                format!("FAIL  {problem}")
            }
        };
        println!("{:<5} {:<width$}  {verdict}", check.point, check.name);
    }
    println!("\n{passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
