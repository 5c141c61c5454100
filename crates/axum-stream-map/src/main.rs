//! The `axum-stream-map` binary: flags, logs, the listening socket and signals come from
//! sse-core; the server is the library's `serve`.

fn main() -> std::process::ExitCode {
    sse_core::cli::main(axum_stream_map::SERVER, axum_stream_map::serve)
}
