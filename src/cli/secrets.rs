//! `cplane secrets`.

use super::{CmdResult, Ctx};
use std::io::Write;

/// Print the built-in secrets set that `"default_secrets": true` adds
///
/// One line per pattern: its name (what a CP301 finding names) and the
/// regular expression (Rust `regex` syntax, matched per line). With
/// `--rg`, a ripgrep command line that searches for the same patterns, for
/// comparing speed or results. With --json: a list of `{"name", "regex"}`.
#[derive(clap::Args, Debug)]
pub struct SecretsArgs {
    /// Print the patterns as `rg` arguments (`-e REGEX ...`, shell-quoted)
    #[arg(long, conflicts_with = "json")]
    pub rg: bool,
}

pub fn cmd_secrets(ctx: &mut Ctx, args: SecretsArgs) -> CmdResult {
    let set = cplane::gate::default_secrets();
    if ctx.json {
        let list: Vec<_> = set
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "regex": p.regex}))
            .collect();
        writeln!(ctx.out, "{}", serde_json::Value::Array(list))?;
    } else if args.rg {
        let quoted: Vec<String> = set
            .iter()
            .map(|p| format!("-e '{}'", p.regex.replace('\'', "'\\''")))
            .collect();
        writeln!(ctx.out, "{}", quoted.join(" "))?;
    } else {
        for p in &set {
            writeln!(ctx.out, "{:<24} {}", p.name, p.regex)?;
        }
    }
    Ok(0)
}
