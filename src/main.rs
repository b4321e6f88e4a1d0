//! The `cplane` binary: parse, run, exit. Everything else is in the library and `cli`.

mod cli;

fn main() -> std::process::ExitCode {
    cplane::trace::phase("start");
    let code = cli::main();
    cplane::trace::phase("done");
    std::process::ExitCode::from(code)
}
