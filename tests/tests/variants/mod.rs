//! The registry of server variants, shared by both suites: `conformance.rs` runs every
//! contract check against each entry, `browser.rs` runs the browser scenarios against each.
//!
//! Registering a variant is one entry in [`VARIANTS`]; both suites pick it up. It lives in
//! its own module (a directory, so that Cargo does not take it for a test target of its own)
//! because the variants are dev-dependencies, which the library cannot name.

use sse_conformance::harness::Variant;

/// Every server implementation the suites run against.
pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "axum-stream-map",
        serve: axum_stream_map::serve,
    },
    Variant {
        name: "actix-push-loop",
        serve: actix_push_loop::serve,
    },
    Variant {
        name: "warp-generator",
        serve: warp_generator::serve,
    },
];
