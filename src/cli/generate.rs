//! `cplane completions SHELL` and `cplane man`: generated from the same clap
//! definitions the parser uses, so they never drift from `--help`.

use super::{Cli, CmdResult, Ctx, exit};
use clap::CommandFactory;
use std::io::Write;

/// Print a shell completion script (bash, zsh, fish, elvish, powershell)
///
/// Install it where your shell looks for completions, e.g.
/// `cplane completions bash > ~/.local/share/bash-completion/completions/cplane`,
/// `cplane completions zsh > ~/.zfunc/_cplane` (with `fpath+=~/.zfunc`),
/// `cplane completions fish > ~/.config/fish/completions/cplane.fish`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for
    pub shell: clap_complete::Shell,
}

/// Print the man page (roff) on standard output
///
/// One page, cplane(1), with every subcommand: `cplane man > cplane.1`,
/// then `man ./cplane.1`, or install it under `man1/` of your MANPATH.
#[derive(clap::Args, Debug)]
pub struct ManArgs {}

pub fn cmd_completions(ctx: &mut Ctx, args: CompletionsArgs) -> CmdResult {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cplane", &mut buf);
    ctx.out.findings().write_all(&buf)?;
    Ok(exit::CLEAN)
}

pub fn cmd_man(ctx: &mut Ctx, _args: ManArgs) -> CmdResult {
    let mut cmd = Cli::command();
    // Built, so that every subcommand carries the global options.
    cmd.build();
    let mut buf = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(&mut buf)?;
    // Every subcommand's synopsis and its options, under its own section,
    // as `cplane SUBCOMMAND --help` shows them.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        render_subcommand(&mut buf, sub, "cplane")?;
    }
    ctx.out.findings().write_all(&buf)?;
    Ok(exit::CLEAN)
}

/// One subcommand (and, below it, its own subcommands) as a section of the page.
fn render_subcommand(buf: &mut Vec<u8>, sub: &clap::Command, parent: &str) -> std::io::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    // clap_mangen renders a command's sections; its title would start a new
    // page, so take the sections only and put them under a heading.
    let sub = sub.clone().name(name.clone()).bin_name(name.clone());
    let man = clap_mangen::Man::new(sub.clone());
    writeln!(buf, ".SH \"{}\"", name.to_uppercase())?;
    let mut part = Vec::new();
    man.render_synopsis_section(&mut part)?;
    man.render_description_section(&mut part)?;
    man.render_options_section(&mut part)?;
    // Level-2 headings inside the subcommand's section.
    let text = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
    buf.extend_from_slice(text.as_bytes());
    for inner in sub
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        render_subcommand(buf, inner, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks over every command and argument (a
    /// `conflicts_with` naming an argument that does not exist, a short
    /// flag used twice, ...), which otherwise fire only when that
    /// subcommand runs.
    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
