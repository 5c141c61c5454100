# sse-idioms: one SSE contract, three Rust idioms. `just` lists the recipes.

# List the recipes.
default:
    @just --list

# Run one variant (axum, actix or warp) in release mode; extra flags go to the server.
run variant *flags:
    cargo run --release -p {{ if variant == "axum" { "axum-stream-map" } else if variant == "actix" { "actix-push-loop" } else if variant == "warp" { "warp-generator" } else { error("variant must be axum, actix or warp") } }} -- {{ flags }}

# The three variants side by side, with the compare page at http://127.0.0.1:3000; flags after -- go to every variant.
demo *flags:
    cargo run --release -p sse-demo -- {{ flags }}

# A self-signed certificate for localhost and 127.0.0.1 in target/dev-cert/ (then: just demo --tls).
dev-cert:
    cargo run -q -p sse-demo --bin dev-cert

# Unit tests, and every conformance check against every variant.
test:
    cargo test --workspace

# Browser end-to-end tests in headless Chromium (needs: apt-get install chromium chromium-driver nginx); extra args filter, e.g. just e2e axum-stream-map.
e2e *args:
    cargo test -p sse-conformance --test browser -- --include-ignored {{ args }}

# Run the conformance checks against any running server (e.g. just check http://127.0.0.1:3000 --token T).
check url *flags:
    cargo run --release -q -p sse-conformance --bin sse-check -- {{ url }} {{ flags }}

# Format the workspace.
fmt:
    cargo fmt --all

# Lint the workspace as CI does.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmark every variant against the raw `limit` server (see docs/BENCH.md); flags go to sse-bench.
bench *flags:
    cargo build --release -p axum-stream-map -p actix-push-loop -p warp-generator
    cargo run --release -p sse-bench -- {{ flags }}
