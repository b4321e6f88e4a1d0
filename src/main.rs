//! The `cplane` binary: parse, run, exit. Everything else is in the library and `cli`.

mod cli;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::main())
}
