//! The `actix-push-loop` binary: flags, logs and signals come from sse-core; the server is the
//! library.

fn main() -> std::process::ExitCode {
    actix_push_loop::main()
}
