//! The conformance suite against every variant: `cargo test -p sse-conformance`.
//!
//! Registering a variant is one entry in `variants::VARIANTS` (`tests/variants/mod.rs`,
//! shared with the browser tests); every check in `sse_conformance::checks::all()` then runs
//! against it, plus the process-level checks.

mod variants;

use std::process::ExitCode;

use sse_conformance::harness;

fn main() -> ExitCode {
    harness::main(variants::VARIANTS)
}
