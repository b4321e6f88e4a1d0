//! Command-line interface: one file per command, each with a clap `Args`
//! struct (its doc comment is the `--help` text) and one `cmd_*` function.
//! Errors become exit codes and hints in one place, [`report_error`].
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cat;
mod check_ignore;
mod compile;
mod demo;
mod diff;
mod disown;
mod explain;
mod fsck;
mod gc;
mod generate;
mod hooks;
mod init;
mod install;
mod key;
mod ledger;
mod log;
mod output;
mod own;
mod pack;
mod plane;
mod quarantine;
mod remote;
mod restore;
mod retention;
mod rollback;
mod secrets;
mod show;
mod snapshot;
mod status;
mod upgrade;
mod verify;

use clap::{Parser, Subcommand};
use cplane::Control;
use cplane::error::ErrorClass;
use cplane::plane::Plane;
use cplane::progress::Progress;
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Keep directory trees pristine: content-addressed snapshots, verify, diff, rollback.
///
/// cplane stores every file of a plane as a BLAKE3-addressed blob under `.cp/`
/// and every state as a Merkle root (bytes, modes, owners, empty directories,
/// symlinks, hard links). Start with `cplane init`, seal states with
/// `cplane snapshot`, check them with `cplane status` (fast) or `cplane verify`
/// (full re-hash), compare with `cplane diff`, go back with `cplane rollback`
/// (everything) or `cplane restore` (some paths), and read old versions with
/// `cplane cat`.
///
/// A governed plane (one with registries/frameworks_registry.csv; start one
/// with `cplane init --governed`) gives every file exactly one owner, chained
/// to a framework that authorizes its path and requires gates: `verify` then
/// checks ownership, content, the chain and the gates, `snapshot` refuses
/// what fails, and `own`, `disown`, `explain`, `compile` and `quarantine`
/// keep it that way (governance.md).
///
/// Exit codes: 0 clean, 1 findings or differences, 2 usage or configuration
/// error, 3 store damage, 130 interrupted.
#[derive(Parser, Debug)]
#[command(name = "cplane", version, max_term_width = 100)]
pub struct Cli {
    /// Run as if started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Plane to act on (default: the plane containing the current directory)
    #[arg(long, global = true, value_name = "NAME")]
    pub plane: Option<String>,
    /// Print the result as JSON, and errors as a JSON object on stdout
    /// (before or after the subcommand)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors and findings: no progress, no informational lines
    /// (for cron)
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Init(init::InitArgs),
    Snapshot(snapshot::SnapshotArgs),
    Ledger(ledger::LedgerArgs),
    Key(key::KeyArgs),
    Pack(pack::PackArgs),
    Install(install::InstallArgs),
    Uninstall(install::UninstallArgs),
    Log(log::LogArgs),
    Checkpoints(log::CheckpointsArgs),
    Prune(retention::PruneArgs),
    Show(show::ShowArgs),
    Cat(cat::CatArgs),
    Status(status::StatusArgs),
    CheckIgnore(check_ignore::CheckIgnoreArgs),
    Verify(verify::VerifyArgs),
    Diff(diff::DiffArgs),
    Rollback(rollback::RollbackArgs),
    Restore(restore::RestoreArgs),
    Compile(compile::CompileArgs),
    Own(own::OwnArgs),
    Disown(disown::DisownArgs),
    Explain(explain::ExplainArgs),
    Quarantine(quarantine::QuarantineArgs),
    Secrets(secrets::SecretsArgs),
    Fsck(fsck::FsckArgs),
    Gc(gc::GcArgs),
    Plane(plane::PlaneArgs),
    Remote(remote::RemoteArgs),
    Push(remote::PushArgs),
    Pull(remote::PullArgs),
    Clone(remote::CloneArgs),
    Upgrade(upgrade::UpgradeArgs),
    Demo(demo::DemoArgs),
    Completions(generate::CompletionsArgs),
    Man(generate::ManArgs),
}

/// Process exit codes, documented in the README ("Exit codes").
pub mod exit {
    /// Clean: no findings, no differences.
    pub const CLEAN: u8 = 0;
    /// Findings or differences were reported.
    pub const FINDINGS: u8 = 1;
    /// Usage or configuration error (bad ref, no store, lock held, ...).
    pub const USAGE: u8 = 2;
    /// Store damage: a corrupt or missing object, a damaged ref, pack index or journal.
    pub const DAMAGE: u8 = 3;
    /// Interrupted by a signal (128 + SIGINT) before anything was committed.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit code for a library error, from its class.
pub fn exit_code(e: &cplane::Error) -> u8 {
    match e.class() {
        ErrorClass::Findings => exit::FINDINGS,
        ErrorClass::Usage => exit::USAGE,
        ErrorClass::Damage => exit::DAMAGE,
        ErrorClass::Interrupted => exit::INTERRUPTED,
    }
}

/// An error a command can end with.
pub enum CliError {
    /// From the library.
    Lib(cplane::Error),
    /// A problem with the arguments themselves (exit 2), with an optional hint.
    Usage(String, Option<String>),
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

/// Set by SIGINT, SIGTERM and SIGHUP (for writers); polled by the library.
static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// The process's interrupt flag, for library calls that take one directly.
pub fn interrupt_flag() -> &'static AtomicBool {
    &INTERRUPT
}

/// Routes SIGINT, SIGTERM and SIGHUP to [`INTERRUPT`]; a second signal ends
/// the process at once (safe: every write is atomic or journalled).
fn install_signal_handlers() {
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, &INTERRUPT);
        let _ = signal_hook::flag::register(sig, &INTERRUPT);
    }
}

/// Shared state: where we run, which plane, where output goes.
pub struct Ctx {
    /// The directory the command runs in (after `-C`).
    pub cwd: PathBuf,
    /// `--plane`.
    pub plane: Option<String>,
    /// Standard output; muted by `--quiet` for commands whose output only
    /// says what they did (see [`output::Out`]).
    pub out: output::Out,
    /// `--json`: print the result (and errors) as JSON.
    pub json: bool,
    /// `--quiet`: no progress, no informational lines.
    pub quiet: bool,
    /// How long writers wait for the store lock (`CPLANE_LOCK_TIMEOUT_MS`).
    pub lock_wait: std::time::Duration,
    /// The command may run while an interrupted install cannot be finished
    /// (its seal refused): it is one that can fix what the seal refuses
    /// (`own`, `disown`, `quarantine`) or put the whole plane back
    /// (`rollback`), and it seals nothing the install's checks would miss.
    /// Every other command that changes the plane is refused meanwhile
    /// (`restore` too: restoring some of the package's files would leave
    /// it half installed).
    pub past_pending_install: bool,
}

impl Ctx {
    /// A progress bar on stderr labelled `what`: drawn only on a terminal,
    /// never with `--quiet`.
    pub fn bar(&self, what: &str) -> output::Bar {
        if self.quiet {
            output::Bar::hidden()
        } else {
            output::Bar::new(what)
        }
    }

    /// Progress to `progress`, interrupted by the signal flag.
    pub fn control<'a>(&self, progress: &'a dyn Progress) -> Control<'a> {
        Control::new(progress, &INTERRUPT)
    }

    /// The checkout hooks: none in release builds; test pauses in debug builds.
    pub fn hooks(&self, store: &Store, plane: &Plane) -> Box<dyn cplane::checkout::CheckoutHooks> {
        hooks::for_plane(store, plane)
    }

    /// The store containing the working directory.
    pub fn store(&self) -> cplane::Result<Store> {
        let mut s = Store::discover(&self.cwd)?;
        s.set_lock_wait(self.lock_wait);
        Ok(s)
    }

    /// The plane named by `--plane`, or the one containing the working directory.
    pub fn plane(&self, store: &Store) -> cplane::Result<Plane> {
        match &self.plane {
            Some(name) => store.plane(name),
            None => store.plane_containing(&self.cwd),
        }
    }

    /// Opens the store and plane for a command that reads or writes the working
    /// tree: an interrupted checkout is finished first.
    pub fn open(&self) -> cplane::Result<(Store, Plane)> {
        let mut store = self.store()?;
        let plane = self.plane(&store)?;
        self.recover(&mut store, &plane)?;
        Ok((store, plane))
    }

    /// Opens the store and plane for a command that only reads the store (log,
    /// show, cat, diff of two refs): it never waits for a checkout in progress.
    pub fn open_store_only(&self) -> cplane::Result<(Store, Plane)> {
        let mut store = self.store()?;
        let plane = self.plane(&store)?;
        if cplane::checkout::has_journal(&store, &plane.name) {
            match store.try_lock() {
                Ok(lock) => {
                    let plane = store.plane(&plane.name)?;
                    // Reading history must work even when the checkout cannot be finished.
                    if let Err(e) = self.finish_journal(&mut store, &lock, &plane) {
                        eprintln!("warning: {e}");
                    }
                }
                Err(cplane::Error::Locked { .. }) => {} // a live checkout: its refs move atomically
                Err(e) => return Err(e),
            }
        }
        Ok((store, plane))
    }

    /// Completes an interrupted checkout of `plane`, if there is one.
    pub fn recover(&self, store: &mut Store, plane: &Plane) -> cplane::Result<()> {
        if cplane::checkout::has_journal(store, &plane.name) {
            self.lock_plane(store, plane)?;
        }
        Ok(())
    }

    /// Takes the writer lock, re-resolves `plane` against the configuration as
    /// it is now, and finishes an interrupted checkout of it first if there is one.
    pub fn lock_plane(&self, store: &mut Store, plane: &Plane) -> cplane::Result<(StoreLock, Plane)> {
        let lock = match store.lock(&INTERRUPT) {
            Ok(l) => l,
            Err(cplane::Error::Locked { holder, .. }) if cplane::checkout::has_journal(store, &plane.name) => {
                return Err(cplane::Error::CheckoutInProgress {
                    plane: plane.name.clone(),
                    holder,
                });
            }
            Err(e) => return Err(e),
        };
        let plane = store.plane(&plane.name)?;
        // A configured signing key that does not load stops the command
        // before it changes anything (its entry could not be signed).
        let signing = key::signing_key(store)?;
        self.finish_journal(store, &lock, &plane)?;
        self.check_ledger(store, &lock, &plane, signing.as_ref())?;
        let late = cplane::ledger::reconcile(store, &lock, &plane.name, signing.as_ref())?;
        if !late.is_empty() {
            let why = if late[0].message.contains("from history") {
                "the ledger began after them"
            } else if late[0].message.contains("outside cplane") {
                "HEAD was moved outside cplane"
            } else {
                "a command ended (interrupted, or failed after changing the plane) before writing its entry"
            };
            eprintln!(
                "cplane: recorded {} late in the ledger of plane {}: {why}",
                output::count(late.len() as u64, "entry"),
                plane.name,
            );
        }
        // An install interrupted after its files were written is completed
        // (registry, ownership, seal) and recorded as an install, after
        // what the ledger caught up with above: HEAD moves it never
        // recorded, and the intent of the command that was interrupted
        // (the install's own, "recorded late": whatever becomes of the
        // install, the ledger says it was tried). One
        // whose seal is refused stays pending: only the commands that can
        // fix what the seal refuses (`own` of a file that appeared while
        // the install ran) or put the plane back go on, with a warning;
        // the others are refused, as the install was (a `snapshot` would
        // seal what the install's seal refused; another install would
        // take its place).
        match cplane::package::install::resume(store, &lock, &plane, self.control(&cplane::progress::NoProgress)) {
            Ok(Some((m, checkpoint))) => {
                eprintln!(
                    "cplane: finished an interrupted install of {} {} into plane {} (checkpoint {})",
                    m.id, m.version, plane.name, checkpoint.1
                );
                // Its own entry (and the interrupted command's intent done):
                // the ledger says what was installed, not a late snapshot.
                let ev = install::package_event(
                    cplane::ledger::Op::Install,
                    &m,
                    &checkpoint,
                    &[],
                    format!(
                        "installed {} {} (spec {}, {} files), finished after the install was interrupted",
                        m.id,
                        m.version,
                        m.spec_id,
                        m.files.len()
                    ),
                );
                self.record(store, &lock, &plane, ev)?;
            }
            Ok(None) => {}
            Err(cplane::Error::Refused { findings, .. }) if self.past_pending_install => {
                for f in &findings {
                    eprint!("{}", output::finding(f));
                }
                eprintln!(
                    "warning: an interrupted install into plane {} is not finished: its seal is refused for the findings above; once they are fixed, the next command that changes the plane finishes it",
                    plane.name
                );
            }
            Err(cplane::Error::Refused { findings, .. }) => {
                eprintln!(
                    "cplane: an interrupted install into plane {} cannot be finished: its seal is refused for the findings below; fix them (`own`, `disown`, `quarantine` and `rollback` still run), then run the command again",
                    plane.name
                );
                return Err(cplane::Error::InstallPending {
                    plane: plane.name.clone(),
                    findings,
                });
            }
            Err(e) => return Err(e),
        }
        Ok((lock, plane))
    }

    /// What a command that is about to change `plane` checks first: the
    /// ledger can take its entry (sound last entry, the head HEAD's
    /// snapshot recorded still there), and once the ledger trusts an admin
    /// key, the signing key is a trusted admin or maintainer key allowed to
    /// sign ledger entries. Refused here, before anything changes.
    pub fn check_ledger(
        &self,
        store: &Store,
        lock: &StoreLock,
        plane: &Plane,
        signing: Option<&cplane::keys::PrivateKey>,
    ) -> cplane::Result<()> {
        let recorded = match store.head(&plane.name)? {
            Some(id) => store.read_snapshot(&id)?.ledger,
            None => None,
        };
        let ledger = cplane::ledger::Ledger::of(store, &plane.name);
        ledger.check_appendable(lock, recorded)?;
        // An empty ledger, HEAD sealed before ledgers (or moved back to such
        // a snapshot): no checkpoint may have been sealed with a longer one,
        // or the ledger was deleted (and trust on first use would reopen).
        if ledger.last()?.is_none() && recorded.is_none_or(|r| r.size == 0) {
            for (name, id) in store.checkpoints(&plane.name)? {
                if let Some(r) = store
                    .read_snapshot(&id)
                    .ok()
                    .and_then(|s| s.ledger)
                    .filter(|r| r.size > 0)
                {
                    return Err(cplane::Error::DamagedFile {
                        path: ledger.path().to_path_buf(),
                        reason: format!(
                            "is empty or missing, but checkpoint {name} was sealed when it had {} entries: it was deleted; put it back from a backup",
                            r.size
                        ),
                    });
                }
            }
        }
        // Once the ledger trusts an admin key, every entry must be signed by
        // a trusted key that may sign changes: refused here, before anything
        // changes, rather than flagged by every verify afterwards.
        let trust = ledger.trust()?;
        if let Some(since) = trust.admin_since {
            let now = cplane::keys::UtcTime::now();
            let may_sign = |s: &cplane::keys::Signer| {
                matches!(s.role, cplane::keys::Role::Admin | cplane::keys::Role::Maintainer)
                    && s.allows_namespace(cplane::ledger::SIG_NAMESPACE)
            };
            let mine =
                |s: &&cplane::keys::Signer| signing.is_some_and(|k| s.key.key_data() == k.public_key().key_data());
            // Outside its registry line's validity window, a key's entries
            // would be flagged by every verify: refused now instead.
            if let Some(s) = trust.signers.iter().filter(mine).find(|s| may_sign(s))
                && let Some(why) = s
                    .valid_after
                    .filter(|a| now < *a)
                    .map(|a| format!("is valid only from {a}"))
                    .or_else(|| s.valid_before.filter(|b| now > *b).map(|b| format!("expired at {b}")))
            {
                return Err(cplane::Error::BadConfig {
                    path: ledger.path().to_path_buf(),
                    reason: format!(
                        "the signing key {} {why} (its allowed_signers line {}), and it is now {now}: trust a renewed entry (`cplane key trust`) or sign with another key",
                        s.fingerprint(),
                        s.line
                    ),
                });
            }
            let ok = trust.signers.iter().filter(mine).any(may_sign);
            if !ok {
                return Err(cplane::Error::BadConfig {
                    path: ledger.path().to_path_buf(),
                    reason: format!(
                        "plane {} has trusted signing keys since entry {since}: its changes must be signed by a trusted admin or maintainer key, and {}; sign with `cplane key use FILE` (or CPLANE_SIGNING_KEY=FILE)",
                        plane.name,
                        match signing {
                            Some(k) => format!("{} is not one", cplane::keys::fingerprint(k.public_key())),
                            None => "no signing key is configured".to_string(),
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Records, before a command that does not move HEAD changes the plane,
    /// what it is about to do (see `cplane::ledger::PENDING_FILE`).
    pub fn intend(
        &self,
        store: &Store,
        lock: &StoreLock,
        plane: &Plane,
        op: cplane::ledger::Op,
        what: String,
    ) -> cplane::Result<()> {
        cplane::ledger::Ledger::of(store, &plane.name).intend(lock, &cplane::ledger::Event::new(op, what))
    }

    /// The paths that differ between the snapshots `old` and `new` (what a
    /// snapshot or rollback touched), for its ledger entry: the diff
    /// descends only where tree ids differ. Empty when it cannot be read.
    pub fn changed_paths(
        &self,
        store: &Store,
        old: Option<cplane::id::SnapshotId>,
        new: &cplane::id::SnapshotId,
    ) -> Vec<String> {
        let src = cplane::diff::TreeSource::store(store);
        let root = |id: &cplane::id::SnapshotId| store.read_snapshot(id).map(|s| s.root);
        let (Some(old), Ok(new)) = (old.and_then(|o| root(&o).ok()), root(new)) else {
            return Vec::new();
        };
        cplane::diff::diff_trees(&src, &old, &new)
            .map(|changes| {
                changes
                    .iter()
                    .filter(|c| c.is_reported())
                    .map(|c| c.path.display())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `r`, with the intent dropped when the command refused before it
    /// changed anything (a refusal, a bad argument or configuration, a
    /// plane that is not governed); any other error keeps the intent, for
    /// the next command to record.
    pub fn settle<T>(&self, store: &Store, plane: &Plane, r: cplane::Result<T>) -> cplane::Result<T> {
        if let Err(
            cplane::Error::Refused { .. }
            | cplane::Error::BadConfig { .. }
            | cplane::Error::NotGoverned { .. }
            | cplane::Error::NoSuchPath { .. }
            | cplane::Error::BadPath { .. }
            | cplane::Error::Excluded { .. }
            | cplane::Error::BadIgnoreFile { .. },
        ) = &r
        {
            self.unchanged(store, plane);
        }
        r
    }

    /// The command ends having changed nothing: its intent is dropped.
    pub fn unchanged(&self, store: &Store, plane: &Plane) {
        cplane::ledger::Ledger::of(store, &plane.name).done();
    }

    /// Appends `ev` to `plane`'s ledger under `lock`, with the plane's HEAD
    /// as it is now, before the command reports success.
    pub fn record(
        &self,
        store: &Store,
        lock: &StoreLock,
        plane: &Plane,
        ev: cplane::ledger::Event,
    ) -> cplane::Result<()> {
        let head = store.head(&plane.name)?;
        let key = key::signing_key(store)?;
        cplane::ledger::Ledger::of(store, &plane.name).append(lock, head.as_ref(), &ev, key.as_ref())?;
        Ok(())
    }

    /// Replays the checkout journal of `plane`, if any, under `lock`, and says so on stderr.
    pub fn finish_journal(&self, store: &mut Store, lock: &StoreLock, plane: &Plane) -> cplane::Result<()> {
        let hooks = self.hooks(store, plane);
        let ctl = self.control(&cplane::progress::NoProgress);
        let done = match cplane::rollback::recover(store, lock, plane, hooks.as_ref(), ctl) {
            Ok(done) => done,
            // Store damage and interruption keep their own message and exit code.
            Err(e) if matches!(e.class(), ErrorClass::Damage | ErrorClass::Interrupted) => {
                return Err(e);
            }
            Err(e) => {
                return Err(cplane::Error::UnfinishedCheckout {
                    plane: plane.name.clone(),
                    journal: cplane::checkout::journal_path(store, &plane.name),
                    source: Box::new(e),
                });
            }
        };
        if let Some(f) = done {
            let j = &f.recovered.journal;
            eprintln!(
                "cplane: finished an interrupted {} of plane {} to {} ({}){}; the state before it is checkpoint {}, and what was found just before finishing it is checkpoint {}",
                j.kind.name(),
                plane.name,
                j.target.short(12),
                rollback::counts(&f.recovered.applied),
                j.new_head
                    .as_ref()
                    .map(|(_, n)| format!("; HEAD is {n}"))
                    .unwrap_or_default(),
                j.rescue_name,
                f.found_rescue
            );
            // Best effort, as the line above: stderr going away loses no state.
            let _ = rollback::print_problems(&mut std::io::stderr(), &f.recovered.applied);
        }
        Ok(())
    }
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors keep clap's text; with --json, stdout also gets a JSON error.
            let code = if e.use_stderr() { exit::USAGE } else { exit::CLEAN };
            if code != exit::CLEAN && std::env::args_os().take_while(|a| a != "--").any(|a| a == "--json") {
                println!("{}", usage_error_json(&e, code));
            }
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    let early = |msg: String, hint: Option<String>| usage_error(&mut io::stdout().lock(), json, &msg, hint.as_deref());
    let cwd = match std::env::current_dir() {
        Ok(c) => match &cli.dir {
            Some(d) => c.join(d),
            None => c,
        },
        Err(e) => return early(format!("cannot read the current directory: {e}"), None),
    };
    if !cwd.is_dir() {
        return early(format!("{}: not a directory (from -C)", cwd.display()), None);
    }
    let lock_wait = match std::env::var("CPLANE_LOCK_TIMEOUT_MS") {
        Err(_) => std::time::Duration::from_millis(cplane::store::lock::DEFAULT_LOCK_TIMEOUT_MS),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) => std::time::Duration::from_millis(ms),
            Err(_) => {
                return early(
                    format!("CPLANE_LOCK_TIMEOUT_MS={v:?} is not a whole number of milliseconds"),
                    Some("unset it, or give the wait for the store lock in milliseconds".into()),
                );
            }
        },
    };
    // With --quiet, a command whose output only says what it did prints
    // nothing on success (its JSON, when asked for, is data and stays).
    let muted = cli.quiet && !json && !prints_data(&cli.command);
    let mut ctx = Ctx {
        cwd,
        plane: cli.plane,
        out: output::Out::new(muted, cli.quiet),
        json,
        quiet: cli.quiet,
        lock_wait,
        past_pending_install: matches!(
            cli.command,
            Command::Own(_) | Command::Disown(_) | Command::Quarantine(_) | Command::Rollback(_)
        ),
    };
    if ctx.plane.is_some()
        && matches!(
            cli.command,
            Command::Init(_) | Command::Demo(_) | Command::Upgrade(_) | Command::Remote(_)
        )
    {
        return usage_error(
            &mut ctx.out,
            json,
            "--plane does not apply here: init creates plane `main` (add more with `cplane plane add`), upgrade converts the whole store",
            None,
        );
    }
    // Writers stop at safe points on Ctrl-C; readers keep the default (die at once).
    if matches!(
        cli.command,
        Command::Init(_)
            | Command::Snapshot(_)
            | Command::Compile(_)
            | Command::Own(_)
            | Command::Disown(_)
            | Command::Quarantine(_)
            | Command::Rollback(_)
            | Command::Restore(_)
            | Command::Plane(_)
            | Command::Key(_)
            | Command::Install(_)
            | Command::Uninstall(_)
            | Command::Upgrade(_)
            | Command::Prune(_)
            | Command::Checkpoints(_)
            | Command::Gc(_)
            | Command::Remote(_)
            | Command::Push(_)
            | Command::Pull(_)
            | Command::Clone(_)
    ) {
        install_signal_handlers();
    }
    let r = match cli.command {
        Command::Init(a) => init::cmd_init(&mut ctx, a),
        Command::Snapshot(a) => snapshot::cmd_snapshot(&mut ctx, a),
        Command::Ledger(a) => ledger::cmd_ledger(&mut ctx, a),
        Command::Key(a) => key::cmd_key(&mut ctx, a),
        Command::Pack(a) => pack::cmd_pack(&mut ctx, a),
        Command::Install(a) => install::cmd_install(&mut ctx, a),
        Command::Uninstall(a) => install::cmd_uninstall(&mut ctx, a),
        Command::Log(a) => log::cmd_log(&mut ctx, a),
        Command::Checkpoints(a) => log::cmd_checkpoints(&mut ctx, a),
        Command::Prune(a) => retention::cmd_prune(&mut ctx, a),
        Command::Show(a) => show::cmd_show(&mut ctx, a),
        Command::Cat(a) => cat::cmd_cat(&mut ctx, a),
        Command::Status(a) => status::cmd_status(&mut ctx, a),
        Command::CheckIgnore(a) => check_ignore::cmd_check_ignore(&mut ctx, a),
        Command::Verify(a) => verify::cmd_verify(&mut ctx, a),
        Command::Compile(a) => compile::cmd_compile(&mut ctx, a),
        Command::Own(a) => own::cmd_own(&mut ctx, a),
        Command::Disown(a) => disown::cmd_disown(&mut ctx, a),
        Command::Explain(a) => explain::cmd_explain(&mut ctx, a),
        Command::Quarantine(a) => quarantine::cmd_quarantine(&mut ctx, a),
        Command::Secrets(a) => secrets::cmd_secrets(&mut ctx, a),
        Command::Diff(a) => diff::cmd_diff(&mut ctx, a),
        Command::Rollback(a) => rollback::cmd_rollback(&mut ctx, a),
        Command::Restore(a) => restore::cmd_restore(&mut ctx, a),
        Command::Fsck(a) => fsck::cmd_fsck(&mut ctx, a),
        Command::Gc(a) => gc::cmd_gc(&mut ctx, a),
        Command::Plane(a) => plane::cmd_plane(&mut ctx, a),
        Command::Remote(a) => remote::cmd_remote(&mut ctx, a),
        Command::Push(a) => remote::cmd_push(&mut ctx, a),
        Command::Pull(a) => remote::cmd_pull(&mut ctx, a),
        Command::Clone(a) => remote::cmd_clone(&mut ctx, a),
        Command::Upgrade(a) => upgrade::cmd_upgrade(&mut ctx, a),
        Command::Demo(a) => demo::cmd_demo(&mut ctx, a),
        Command::Completions(a) => generate::cmd_completions(&mut ctx, a),
        Command::Man(a) => generate::cmd_man(&mut ctx, a),
    };
    let code = match r {
        Ok(code) => code,
        Err(e) => report_error(&mut ctx, e, json),
    };
    let _ = ctx.out.flush();
    code
}

/// True for a command whose standard output is the data asked for (a
/// listing, a report, findings), which `--quiet` keeps; the others only
/// say what they did, which `--quiet` mutes (their findings and problems
/// still print, through [`output::Out::findings`]).
fn prints_data(c: &Command) -> bool {
    match c {
        Command::Init(_)
        | Command::Snapshot(_)
        | Command::Pack(_)
        | Command::Install(_)
        | Command::Uninstall(_)
        | Command::Prune(_)
        | Command::Rollback(_)
        | Command::Restore(_)
        | Command::Compile(_)
        | Command::Own(_)
        | Command::Disown(_)
        | Command::Quarantine(_)
        | Command::Upgrade(_)
        | Command::Gc(_)
        | Command::Push(_)
        | Command::Pull(_)
        | Command::Clone(_) => false,
        Command::Remote(a) => remote::prints_data(a),
        Command::Key(a) => key::prints_data(a),
        Command::Plane(a) => plane::prints_data(a),
        Command::Checkpoints(a) => log::checkpoints_prints_data(a),
        Command::Ledger(_)
        | Command::Log(_)
        | Command::Show(_)
        | Command::Cat(_)
        | Command::Status(_)
        | Command::CheckIgnore(_)
        | Command::Verify(_)
        | Command::Explain(_)
        | Command::Secrets(_)
        | Command::Diff(_)
        | Command::Fsck(_)
        | Command::Demo(_)
        | Command::Completions(_)
        | Command::Man(_) => true,
    }
}

/// A clap usage error as the JSON object `--json` prints on stdout:
/// `error` (clap's message on one line, without `error: `), `kind` (clap's
/// `ErrorKind` in snake_case, e.g. `unknown_argument`), `argument` (the
/// offending argument as clap names it, e.g. `--frobnicate` or `<REF>`,
/// or `null`), `value` (the rejected value, or `null`), `exit_code`, `hint`.
fn usage_error_json(e: &clap::Error, code: u8) -> serde_json::Value {
    use clap::error::{ContextKind, ContextValue};
    // clap's message, up to its usage lines, on one line.
    let rendered = e.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = lines.join(" ");
    let msg = joined.strip_prefix("error: ").unwrap_or(&joined);
    let text = |k: ContextKind| {
        e.get(k).and_then(|v| match v {
            ContextValue::String(s) => Some(s.clone()),
            ContextValue::Strings(v) => Some(v.join(", ")),
            _ => None,
        })
    };
    let argument = text(ContextKind::InvalidArg).or_else(|| text(ContextKind::InvalidSubcommand));
    let mut kind = String::new();
    for (i, c) in format!("{:?}", e.kind()).chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                kind.push('_');
            }
            kind.push(c.to_ascii_lowercase());
        } else {
            kind.push(c);
        }
    }
    serde_json::json!({
        "error": msg,
        "kind": kind,
        "argument": argument,
        "value": text(ContextKind::InvalidValue),
        "exit_code": code,
        "hint": "run with --help",
    })
}

/// What to do about an error, for the `hint:` line.
fn hint(e: &cplane::Error) -> Option<String> {
    use cplane::Error as E;
    Some(match e {
        E::NoStore { .. } => "run `cplane init` first".into(),
        E::UnfinishedInit { path } => format!(
            "run `cplane snapshot` there to seal it, or remove {} and init again",
            path.display()
        ),
        E::InsideOtherStore { root, store, .. } => format!(
            "make it a plane of that store: `cplane -C {} plane add NAME {}`",
            store.display(),
            root.display()
        ),
        E::NewerFormat { .. } => "upgrade cplane".into(),
        E::OlderFormat { .. } => {
            "run `cplane upgrade`: it converts the store in place (the old refs stay valid until the new ones are durable)"
                .into()
        }
        E::BadName { kind, .. } | E::NameTaken { kind, .. } if *kind == cplane::error::NameKind::Checkpoint => {
            "choose another --name".into()
        }
        E::WrongPlane { belongs_to, .. } => format!("pass `--plane {belongs_to}` to act on that plane"),
        E::NotInPlane { .. } => "`cplane plane list` shows the planes; use -C DIR or --plane NAME".into(),
        E::Locked { .. } | E::CheckoutInProgress { .. } => "try again when it has finished".into(),
        E::UnfinishedCheckout { .. } => {
            "fix the cause and run any cplane command in the plane again; the state before it is safe in its RESCUE- checkpoint (`cplane checkpoints`)".into()
        }
        E::LegacyJournal { journal, .. } => format!(
            "finish it with the cplane that started it (store format 1), or delete {} to abandon it (the state before it is the newest RESCUE- checkpoint), then run `cplane upgrade`",
            journal.display()
        ),
        E::DamagedFile { path, .. } if path.file_name().is_some_and(|n| n == "journal") => format!(
            "the state before the interrupted checkout is the newest RESCUE- checkpoint (`cplane checkpoints`); delete {} to stop trying, then `cplane rollback` to the state you want",
            path.display()
        ),
        E::CorruptObject { location, .. } if location.starts_with("remote ") => {
            "nothing of it entered this store; `cplane fsck --remote NAME --read-data` lists everything wrong on the remote".into()
        }
        E::DamagedFile { path, .. } if path.to_string_lossy().starts_with("remote ") => {
            "nothing of it entered this store; `cplane fsck --remote NAME` lists everything wrong on the remote".into()
        }
        E::CorruptObject { .. } | E::MissingObject { .. } | E::LegacyObject { .. } | E::DamagedFile { .. } => {
            "run `cplane fsck` to see all damage and the refs that reach it".into()
        }
        E::Refused { action, findings } if findings.iter().any(|f| f.code.pass() != 1) => {
            if matches!(*action, "rollback" | "restore") {
                format!("the {action} would leave the plane failing these checks; fix them after with --force, or pick another checkpoint")
            } else {
                "each finding says what to fix; `cplane verify --all-passes` lists every pass".into()
            }
        }
        E::InstallPending { .. } => {
            "fix what the findings name (`own`, `disown`, `quarantine` run meanwhile) and the next command that changes the plane finishes the install; `cplane rollback` puts the plane back instead".into()
        }
        E::NotGoverned { .. } => {
            "`cplane init --governed` lays down the registries and a genesis framework that owns them".into()
        }
        E::Refused { .. } => {
            "move special files (FIFOs, sockets, devices) out of the plane or exclude them (add them to .cpignore, or pass --exclude to init or plane add), make unreadable ones readable, or stop the process that keeps writing, then try again".into()
        }
        E::BadIgnoreFile { .. } => {
            "fix the named line (gitignore syntax, UTF-8); `cplane check-ignore PATH` shows which rule decides a path".into()
        }
        E::Excluded { .. } => {
            "remove or change the rule (or add a `!PATTERN` line after it) to make the path the plane's again".into()
        }
        E::UnsafePath { through, .. } => format!(
            "{through} was replaced by a symlink or a file; put the real directory back (or remove it) and run the command again"
        ),
        E::NoSuchPath { .. } => "`cplane show REF DIR` lists what a directory holds".into(),
        E::BadPlaneRoot {
            problem: cplane::error::RootProblem::Missing,
            ..
        } => "create the directory first, or pass --create to `cplane plane add`".into(),
        E::BadPlaneRoot { .. } => "a plane root must be a real directory under the store root".into(),
        E::CheckpointProtected { why, .. } if why.starts_with("HEAD") => {
            "HEAD's checkpoint can go once HEAD has moved on (`cplane snapshot`, `cplane rollback`); `cplane checkpoints` marks it `*`".into()
        }
        E::CheckpointProtected { .. } => {
            "finish the checkout first: run any cplane command in the plane (it replays the journal), then try again".into()
        }
        E::ChangedWhileReading { .. } => "run the command again once nothing is writing to the plane".into(),
        E::RemoteMoved { remote, .. } => format!(
            "run `cplane pull {remote}`, look at what it brought (`cplane diff {remote}/PLANE/HEAD HEAD`), then push again"
        ),
        E::LedgerDiverged { remote, plane, .. } => format!(
            "a governed plane has one writer at a time (merging two ledgers is future work): to keep the remote's history, clone it (`cplane clone URL DIR --plane {plane}`, URL from `cplane remote list`) and redo this plane's changes there; `cplane diff {remote}/{plane}/HEAD HEAD` shows them"
        ),
        E::NoSuchRemote { .. } => {
            "`cplane remote add NAME URL` adds one (s3://BUCKET/PREFIX or file:///PATH); `cplane remote list` lists them".into()
        }
        E::BadRemote { .. } => {
            "a remote is s3://BUCKET/PREFIX (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or file:///ABSOLUTE/PATH".into()
        }
        E::Remote { remote, op, .. } if op != "read FORMAT" => format!(
            "check the endpoint and region (`cplane remote list`; {remote} takes AWS_ENDPOINT_URL and AWS_REGION when none is stored) and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment"
        ),
        E::NoKeepPolicy => "for example `cplane prune --keep-last 10 --keep-daily 7`; add --dry-run to see what would go".into(),
        _ => return None,
    })
}

/// Prints an error (and any findings behind it) and returns its exit code.
/// The only place where errors become exit codes.
/// Reports a usage error: `error:` and `hint:` lines on stderr and, with
/// `--json`, the same as a JSON object on `out`. Returns the usage exit code.
fn usage_error(out: &mut dyn Write, json: bool, msg: &str, hint: Option<&str>) -> u8 {
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"error": msg, "exit_code": exit::USAGE, "hint": hint})
        );
    }
    eprintln!("error: {msg}");
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    exit::USAGE
}

fn report_error(ctx: &mut Ctx, e: CliError, json: bool) -> u8 {
    let e = match e {
        CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => return exit::CLEAN,
        CliError::Output(e) => {
            eprintln!("error: writing output: {e}");
            return exit::USAGE;
        }
        CliError::Usage(msg, hint) => return usage_error(&mut ctx.out, json, &msg, hint.as_deref()),
        CliError::Lib(e) => e,
    };
    let code = exit_code(&e);
    let hint = hint(&e);
    if let Some(findings) = e.findings() {
        if json {
            let list: Vec<_> = findings.iter().map(finding_json).collect();
            let _ = writeln!(
                ctx.out,
                "{}",
                serde_json::json!({"error": e.to_string(), "exit_code": code, "findings": list, "hint": hint})
            );
        }
        for f in findings {
            eprint!("{}", output::finding(f));
        }
    } else if json {
        let _ = writeln!(
            ctx.out,
            "{}",
            serde_json::json!({"error": e.to_string(), "exit_code": code, "hint": hint})
        );
    }
    eprintln!("error: {e}");
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    code
}

/// A finding as JSON: code, path (+path_bytes), message.
pub fn finding_json(f: &cplane::finding::Finding) -> serde_json::Value {
    let mut m = output::path_obj(f.path.as_bytes());
    m.insert("code".into(), f.code.as_str().into());
    m.insert("pass".into(), f.code.pass().into());
    m.insert("owner".into(), f.owner.clone().into());
    m.insert("message".into(), f.message.clone().into());
    m.insert("remedy".into(), f.code.remedy().into());
    serde_json::Value::Object(m)
}

/// The exit code for a report: 0 when clean, 1 otherwise.
pub fn findings_code(clean: bool) -> u8 {
    if clean { exit::CLEAN } else { exit::FINDINGS }
}

/// Parses a path argument into a plane-relative path of `plane`, as git
/// does: `./x`, `../x`, `.` and `..` are relative to the current directory;
/// an absolute path must lie inside the plane; any other path is relative
/// to the plane root. `.` and `..` components are resolved lexically (never
/// above the plane root). Non-UTF-8 bytes are kept as they are. With
/// `working_tree` (a command that writes there), a path that now belongs to a
/// nested plane is refused, naming that plane; reading an old snapshot may
/// name such a path.
pub fn plane_path(
    ctx: &Ctx,
    store: &Store,
    plane: &Plane,
    arg: &std::ffi::OsStr,
    working_tree: bool,
) -> Result<cplane::RelPath, CliError> {
    use std::os::unix::ffi::OsStrExt;
    let shown = arg.to_string_lossy().into_owned();
    let outside = || {
        CliError::Lib(cplane::Error::BadPath {
            path: shown.clone(),
            plane: plane.name.clone(),
        })
    };
    let raw = arg.as_bytes();
    let from_cwd = raw.starts_with(b"./") || raw.starts_with(b"../") || raw == b"." || raw == b"..";
    let bytes: Vec<u8> = if raw.starts_with(b"/") || from_cwd {
        let abs = cplane::plane::normalize(&ctx.cwd.join(arg));
        let Ok(rel) = abs.strip_prefix(&plane.root) else {
            return Err(outside());
        };
        rel.as_os_str().as_bytes().to_vec()
    } else {
        raw.to_vec()
    };
    // Lexical `.` and `..`, never above the plane root.
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in bytes.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(outside());
                }
            }
            name => parts.push(name),
        }
    }
    let rel = cplane::RelPath::parse(&parts.join(&b'/')).ok_or_else(outside)?;
    // A path that belongs to a nested plane: say which.
    if working_tree
        && plane.carve_outs.iter().any(|c| rel.starts_with(c))
        && let Ok(other) = store.plane_containing(&plane.root.join(rel.as_os_str()))
        && other.name != plane.name
    {
        let inner = plane
            .root
            .join(rel.as_os_str())
            .strip_prefix(&other.root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(CliError::Usage(
            format!("`{shown}` belongs to plane `{}`, not `{}`", other.name, plane.name),
            Some(format!(
                "add `--plane {}` and name the path relative to that plane's root (`{inner}`), or run the command from inside {}",
                other.name,
                other.root.display()
            )),
        ));
    }
    Ok(rel)
}
