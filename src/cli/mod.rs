//! Command-line interface: one file per command, each with a clap `Args`
//! struct (its doc comment is the `--help` text) and one `cmd_*` function.
//! Errors become exit codes in one place, [`report_error`].
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;
mod diff;
mod fsck;
mod init;
mod log;
mod output;
mod plane;
mod rollback;
mod show;
mod snapshot;
mod status;
mod verify;

use clap::{Parser, Subcommand};
use cplane::error::exit;
use cplane::plane::Plane;
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use std::io::{self, Write};
use std::path::PathBuf;

/// Keep directory trees pristine: content-addressed snapshots, verify, diff, rollback.
///
/// cplane stores every file of a plane as a BLAKE3-addressed blob under `.cp/`
/// and every state as a Merkle root. Start with `cplane init`, seal states with
/// `cplane snapshot`, check them with `cplane status` (fast) or `cplane verify`
/// (full re-hash), compare with `cplane diff`, and go back with `cplane rollback`.
///
/// Exit codes: 0 clean, 1 findings or differences, 2 usage or configuration
/// error, 3 store damage.
#[derive(Parser, Debug)]
#[command(name = "cplane", version, max_term_width = 100)]
pub struct Cli {
    /// Run as if started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Plane to act on (default: the plane containing the current directory)
    #[arg(long, global = true, value_name = "NAME")]
    pub plane: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Init(init::InitArgs),
    Snapshot(snapshot::SnapshotArgs),
    Log(log::LogArgs),
    Checkpoints(log::CheckpointsArgs),
    Show(show::ShowArgs),
    Status(status::StatusArgs),
    Verify(verify::VerifyArgs),
    Diff(diff::DiffArgs),
    Rollback(rollback::RollbackArgs),
    Fsck(fsck::FsckArgs),
    Plane(plane::PlaneArgs),
    Demo(demo::DemoArgs),
}

/// An error a command can end with.
pub enum CliError {
    /// From the library.
    Lib(cplane::Error),
    /// Writing the output failed (a closed pipe ends quietly).
    Output(io::Error),
}

impl From<cplane::Error> for CliError {
    fn from(e: cplane::Error) -> Self {
        CliError::Lib(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

/// What every command returns: an exit code, or an error.
pub type CmdResult = Result<u8, CliError>;

/// Shared state: where we run, which plane, where output goes.
pub struct Ctx {
    /// The directory the command runs in (after `-C`).
    pub cwd: PathBuf,
    /// `--plane`.
    pub plane: Option<String>,
    /// Standard output.
    pub out: io::StdoutLock<'static>,
}

impl Ctx {
    /// The store containing the working directory.
    pub fn store(&self) -> cplane::Result<Store> {
        Store::discover(&self.cwd)
    }

    /// The plane named by `--plane`, or the one containing the working directory.
    pub fn plane(&self, store: &Store) -> cplane::Result<Plane> {
        match &self.plane {
            Some(name) => store.plane(name),
            None => store.plane_containing(&self.cwd),
        }
    }

    /// Opens the store and plane for a command that reads or writes the working
    /// tree: an interrupted rollback is finished first, and one in progress is
    /// waited for.
    pub fn open(&self) -> cplane::Result<(Store, Plane)> {
        let mut store = self.store()?;
        let plane = self.plane(&store)?;
        self.recover(&mut store, &plane)?;
        Ok((store, plane))
    }

    /// Opens the store and plane for a command that only reads the store (log,
    /// show, diff of two refs): it never waits for a rollback in progress.
    pub fn open_store_only(&self) -> cplane::Result<(Store, Plane)> {
        let mut store = self.store()?;
        let plane = self.plane(&store)?;
        if cplane::rollback::has_journal(&store, &plane.name) {
            match store.try_lock() {
                Ok(lock) => {
                    let plane = store.plane(&plane.name)?;
                    finish_journal(&mut store, &lock, &plane)?;
                }
                Err(cplane::Error::Locked { .. }) => {} // a live rollback: its refs move atomically
                Err(e) => return Err(e),
            }
        }
        Ok((store, plane))
    }

    /// Completes an interrupted rollback of `plane`, if there is one.
    pub fn recover(&self, store: &mut Store, plane: &Plane) -> cplane::Result<()> {
        if cplane::rollback::has_journal(store, &plane.name) {
            self.lock_plane(store, plane)?;
        }
        Ok(())
    }

    /// Takes the writer lock, re-resolves `plane` against the configuration as
    /// it is now, and finishes an interrupted rollback of it first if there is one.
    pub fn lock_plane(&self, store: &mut Store, plane: &Plane) -> cplane::Result<(StoreLock, Plane)> {
        let lock = match store.lock() {
            Ok(l) => l,
            Err(cplane::Error::Locked { holder, .. }) if cplane::rollback::has_journal(store, &plane.name) => {
                return Err(cplane::Error::invalid(format!(
                    "a rollback of plane `{}` is in progress ({holder}); try again when it has finished",
                    plane.name
                )));
            }
            Err(e) => return Err(e),
        };
        let plane = store.plane(&plane.name)?;
        finish_journal(store, &lock, &plane)?;
        Ok((lock, plane))
    }
}

/// Replays the rollback journal of `plane`, if any, under `lock`, and says so on stderr.
pub fn finish_journal(store: &mut Store, lock: &StoreLock, plane: &Plane) -> cplane::Result<()> {
    let done = match cplane::rollback::recover(store, lock, plane, &cplane::progress::NoProgress) {
        Ok(done) => done,
        // Store damage and interruption keep their own message and exit code.
        Err(e) if e.exit_code() != exit::USAGE => return Err(e),
        Err(e) => {
            return Err(cplane::Error::invalid(format!(
                "plane `{}` has an interrupted rollback (journal {}) that cannot be finished: {e}. Fix the cause and run any cplane command in the plane again; the state before the rollback is safe in its RESCUE checkpoint",
                plane.name,
                store.plane_dir(&plane.name).join("journal").display()
            )));
        }
    };
    if let Some(r) = done {
        eprintln!(
            "cplane: finished an interrupted rollback of plane {} to {} ({} written, {} removed); HEAD is {}; the state before the rollback is checkpoint {}{}",
            plane.name,
            r.journal.target.short(12),
            r.written,
            r.removed,
            r.journal.new_name,
            r.journal.rescue_name,
            r.found_rescue
                .map(|n| format!(", and what was found just before finishing it is checkpoint {n}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors keep clap's text; with --json, stdout also gets a JSON error.
            let code = if e.use_stderr() { exit::USAGE } else { exit::CLEAN };
            if code != exit::CLEAN && std::env::args().any(|a| a == "--json") {
                let msg = e.kind().to_string();
                println!("{}", serde_json::json!({"error": msg, "exit_code": code}));
            }
            let _ = e.print();
            return code;
        }
    };
    let cwd = match &cli.dir {
        Some(d) => match std::env::current_dir() {
            Ok(c) => c.join(d),
            Err(e) => {
                eprintln!("error: cannot read the current directory: {e}");
                return exit::USAGE;
            }
        },
        None => match std::env::current_dir() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot read the current directory: {e}");
                return exit::USAGE;
            }
        },
    };
    if !cwd.is_dir() {
        eprintln!("error: {}: not a directory (from -C)", cwd.display());
        return exit::USAGE;
    }
    let mut ctx = Ctx {
        cwd,
        plane: cli.plane,
        out: io::stdout().lock(),
    };
    if ctx.plane.is_some() && matches!(cli.command, Command::Init(_) | Command::Demo(_)) {
        eprintln!(
            "error: --plane does not apply here: init always creates plane `main` (add more with `cplane plane add`)"
        );
        return exit::USAGE;
    }
    // Writers stop at safe points on Ctrl-C; readers keep the default (die at once).
    if matches!(
        cli.command,
        Command::Init(_) | Command::Snapshot(_) | Command::Rollback(_) | Command::Plane(_)
    ) {
        cplane::interrupt::install_handler();
    }
    let json = command_wants_json(&cli.command);
    let r = match cli.command {
        Command::Init(a) => init::cmd_init(&mut ctx, a),
        Command::Snapshot(a) => snapshot::cmd_snapshot(&mut ctx, a),
        Command::Log(a) => log::cmd_log(&mut ctx, a),
        Command::Checkpoints(a) => log::cmd_checkpoints(&mut ctx, a),
        Command::Show(a) => show::cmd_show(&mut ctx, a),
        Command::Status(a) => status::cmd_status(&mut ctx, a),
        Command::Verify(a) => verify::cmd_verify(&mut ctx, a),
        Command::Diff(a) => diff::cmd_diff(&mut ctx, a),
        Command::Rollback(a) => rollback::cmd_rollback(&mut ctx, a),
        Command::Fsck(a) => fsck::cmd_fsck(&mut ctx, a),
        Command::Plane(a) => plane::cmd_plane(&mut ctx, a),
        Command::Demo(a) => demo::cmd_demo(&mut ctx, a),
    };
    let code = match r {
        Ok(code) => code,
        Err(e) => report_error(&mut ctx, e, json),
    };
    let _ = ctx.out.flush();
    code
}

fn command_wants_json(c: &Command) -> bool {
    match c {
        Command::Init(a) => a.json,
        Command::Snapshot(a) => a.json,
        Command::Log(a) => a.json,
        Command::Checkpoints(a) => a.json,
        Command::Show(a) => a.json,
        Command::Status(a) => a.json,
        Command::Verify(a) => a.json,
        Command::Diff(a) => a.json,
        Command::Rollback(a) => a.json,
        Command::Fsck(a) => a.json,
        Command::Plane(_) | Command::Demo(_) => false,
    }
}

/// Prints an error (and any findings behind it) and returns its exit code.
/// The only place where errors become exit codes.
fn report_error(ctx: &mut Ctx, e: CliError, json: bool) -> u8 {
    let e = match e {
        CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => return exit::CLEAN,
        CliError::Output(e) => {
            eprintln!("error: writing output: {e}");
            return exit::USAGE;
        }
        CliError::Lib(e) => e,
    };
    let code = e.exit_code();
    if let cplane::Error::Refused { findings, .. } = &e {
        if json {
            let list: Vec<_> = findings.iter().map(finding_json).collect();
            let _ = writeln!(
                ctx.out,
                "{}",
                serde_json::json!({"error": e.to_string(), "exit_code": code, "findings": list})
            );
        }
        for f in findings {
            eprintln!("{} {}: {}", f.code, output::path(&f.path), f.message);
        }
    } else if json {
        let _ = writeln!(
            ctx.out,
            "{}",
            serde_json::json!({"error": e.to_string(), "exit_code": code})
        );
    }
    eprintln!("error: {e}");
    if let cplane::Error::NotInPlane { .. } = &e {
        eprintln!("hint: `cplane plane list` shows the planes; use -C DIR or --plane NAME")
    }
    code
}

/// A finding as JSON: code, path (+path_bytes), message.
pub fn finding_json(f: &cplane::finding::Finding) -> serde_json::Value {
    let mut m = output::path_obj(&f.path);
    m.insert("code".into(), f.code.into());
    m.insert("message".into(), f.message.clone().into());
    serde_json::Value::Object(m)
}

/// The exit code for a report: 0 when clean, 1 otherwise.
pub fn findings_code(clean: bool) -> u8 {
    if clean { exit::CLEAN } else { exit::FINDINGS }
}
