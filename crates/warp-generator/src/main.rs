//! The `warp-generator` binary: flags, logs, the listening socket and signals come from
//! sse-core; the server is the library's `serve`.

fn main() -> std::process::ExitCode {
    sse_core::cli::main(warp_generator::SERVER, warp_generator::serve)
}
