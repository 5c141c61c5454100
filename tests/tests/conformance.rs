//! The conformance suite against every variant: `cargo test -p sse-conformance`.
//!
//! Registering a variant is one line in [`VARIANTS`]; every check in
//! `sse_conformance::checks::all()` then runs against it, plus the process-level checks.

use std::process::ExitCode;

use sse_conformance::harness::{self, Variant};

/// Every server implementation the suite runs against.
const VARIANTS: &[Variant] = &[Variant {
    name: "axum-stream-map",
    serve: axum_stream_map::serve,
    main: axum_stream_map::main,
}];

fn main() -> ExitCode {
    harness::main(VARIANTS)
}
