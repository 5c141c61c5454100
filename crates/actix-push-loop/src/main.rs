//! The `actix-push-loop` binary: flags, logs, the listening socket and signals come from
//! sse-core; the server is the library's `serve`.

fn main() -> std::process::ExitCode {
    sse_core::cli::main(actix_push_loop::SERVER, actix_push_loop::serve)
}
