//! The `axum-stream-map` binary: flags, logs and signals come from sse-core; the server
//! is the library.

fn main() -> std::process::ExitCode {
    axum_stream_map::main()
}
