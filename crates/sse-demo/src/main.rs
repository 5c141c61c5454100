//! The `sse-demo` binary: the three variants side by side (see the library docs).

fn main() -> std::process::ExitCode {
    sse_demo::main()
}
