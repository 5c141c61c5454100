//! The `warp-generator` binary: flags, logs and signals come from sse-core; the server is the
//! library.

fn main() -> std::process::ExitCode {
    warp_generator::main()
}
