//! The library's error type and the one place that maps errors to exit codes.
//!
//! Rules (after rustic_core's `error.rs`): public functions return this one
//! [`Error`]; each variant is a class of failure with the values a caller
//! needs (paths, ids, names, what was expected and found), never a
//! preformatted sentence; variants that touch disk carry the path;
//! store-damage variants name the object id. Messages state the problem only:
//! what to do about it ("run `cplane fsck`") is added by the CLI. Findings
//! (problems in the user's tree) are data ([`crate::finding::Finding`]), not
//! errors, except when a command refuses to proceed because of them
//! ([`Error::Refused`]).

use crate::finding::Finding;
use std::io;
use std::path::{Path, PathBuf};

/// The class of an error, from which the CLI picks its exit code (README,
/// "Exit codes": 1 findings, 2 usage, 3 damage, 130 interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The command refused because of findings in the tree.
    Findings,
    /// A usage, configuration or environment problem (bad ref, lock held, I/O error, ...).
    Usage,
    /// Store damage: a corrupt, missing or unreadable object, ref, index or journal.
    Damage,
    /// Stopped at a safe point by the caller's cancellation token.
    Interrupted,
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of name was rejected ([`Error::BadName`], [`Error::NameTaken`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A checkpoint name (`--name`).
    Checkpoint,
    /// A plane name.
    Plane,
    /// A tier label.
    Tier,
}

impl NameKind {
    /// Lower-case noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            NameKind::Checkpoint => "checkpoint",
            NameKind::Plane => "plane",
            NameKind::Tier => "tier",
        }
    }
}

/// Why a name was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Not `[A-Za-z0-9._-]{1,200}`, or starts with `.` or `-`.
    Syntax,
    /// `HEAD` always means the plane's head.
    Head,
    /// Starts with `RESCUE-`, reserved for rescue checkpoints.
    ReservedRescue,
    /// Only hex digits (8+): it would hide a snapshot id prefix.
    LooksLikeId,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameProblem::Syntax => {
                "use letters, digits, `.`, `_` and `-`, not starting with `.` or `-`, at most 200 bytes"
            }
            NameProblem::Head => "`HEAD` always means the plane's head",
            NameProblem::ReservedRescue => "names starting with `RESCUE-` are reserved for rescue checkpoints",
            NameProblem::LooksLikeId => "a name of only hex digits would hide a snapshot id prefix",
        })
    }
}

/// Why a directory cannot be (or no longer is) a plane root ([`Error::BadPlaneRoot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProblem {
    /// It, or a directory between it and the store root, is a symlink.
    Symlink,
    /// It exists and is not a directory.
    NotADirectory,
    /// It is outside the store root.
    OutsideStore,
    /// It is inside `.cp`.
    InsideStoreDir,
    /// Another plane already has this root.
    Taken {
        /// The plane whose root it is.
        plane: String,
    },
    /// Its name is not UTF-8 (plane roots are stored in `config.json`).
    NotUtf8,
    /// It does not exist (and `plane add` does not create it).
    Missing,
}

impl std::fmt::Display for RootProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootProblem::Symlink => {
                f.write_str("is, or is reached through, a symlink; a plane root must be a real directory")
            }
            RootProblem::NotADirectory => f.write_str("is not a directory"),
            RootProblem::OutsideStore => f.write_str("is outside the store root; planes live under it"),
            RootProblem::InsideStoreDir => f.write_str("is inside the store directory .cp"),
            RootProblem::Taken { plane } => write!(f, "is already the root of plane `{plane}`; planes never overlap"),
            RootProblem::NotUtf8 => f.write_str("has a name that is not UTF-8 (plane roots are stored in config.json)"),
            RootProblem::Missing => f.write_str("does not exist"),
        }
    }
}

/// Everything that can stop a cplane operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named path (absolute, or plane-relative for working-tree paths).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No `.cp` directory in the start directory or any parent.
    #[error("no cplane store in {start} or any parent directory")]
    NoStore {
        /// Where the search started.
        start: PathBuf,
    },
    /// `cplane init` in a directory that already has a store.
    #[error("{path} already holds a cplane store")]
    AlreadyInitialized {
        /// The existing `.cp` directory.
        path: PathBuf,
    },
    /// `cplane init` found a store whose first checkpoint was never sealed.
    #[error("{path} holds a cplane store whose first checkpoint was never sealed (an interrupted init)")]
    UnfinishedInit {
        /// The `.cp` directory.
        path: PathBuf,
    },
    /// `cplane init` inside a plane of another store.
    #[error("{root} is inside plane `{plane}` of the store at {store}; planes never overlap")]
    InsideOtherStore {
        /// The directory init was asked to govern.
        root: PathBuf,
        /// The plane that already covers it.
        plane: String,
        /// That store's root.
        store: PathBuf,
    },
    /// The store was written by a newer cplane.
    #[error("{path} is store format {found}, but this cplane reads format {supported} and older")]
    NewerFormat {
        /// The `FORMAT` file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The store is of an older format that must be upgraded first.
    #[error("{path} is store format {found}; this cplane works on format {current} stores")]
    OlderFormat {
        /// The `FORMAT` file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// The version this build writes.
        current: u32,
    },
    /// `FORMAT` or `config.json` is malformed.
    #[error("{path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column when known.
        reason: String,
    },
    /// A `.cpignore` file (or an `--exclude` pattern) cannot be read or used.
    #[error("{path}: {reason}")]
    BadIgnoreFile {
        /// The `.cpignore` file (or `.cp/config.json` for `--exclude` patterns).
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// A path a command was asked to act on is excluded (`.cpignore`, `--exclude`).
    #[error("{path} is excluded by {rule}: cplane neither stores nor restores it")]
    Excluded {
        /// The path, as given (plane-relative).
        path: String,
        /// The rule: `SOURCE:LINE:PATTERN`.
        rule: String,
    },
    /// A name (checkpoint, plane, tier) is not acceptable.
    #[error("invalid {} name `{name}`: {problem}", kind.noun())]
    BadName {
        /// What the name is for.
        kind: NameKind,
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A checkpoint or plane name is already in use.
    #[error("{} `{name}` already exists{}", kind.noun(), plane.as_ref().map(|p| format!(" in plane `{p}`")).unwrap_or_default())]
    NameTaken {
        /// What the name is for.
        kind: NameKind,
        /// The name given.
        name: String,
        /// The plane it is taken in (checkpoints).
        plane: Option<String>,
    },
    /// A directory cannot be a plane root.
    #[error("{path}: {problem}")]
    BadPlaneRoot {
        /// The directory.
        path: PathBuf,
        /// Why not.
        problem: RootProblem,
    },
    /// A checkpoint that retention must keep: HEAD's, or a rescue checkpoint
    /// of a checkout that is not finished.
    #[error("checkpoint {name} of plane `{plane}` cannot be deleted: it is {why}")]
    CheckpointProtected {
        /// The plane.
        plane: String,
        /// The checkpoint.
        name: String,
        /// Why it must stay ("HEAD's checkpoint", ...).
        why: String,
    },
    /// `prune` without a keep rule (it would keep nothing but HEAD).
    #[error(
        "prune needs at least one keep rule (--keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly); without one it would remove every checkpoint but HEAD's"
    )]
    NoKeepPolicy,
    /// A ref that names nothing.
    #[error("unknown ref `{spec}`: {why}")]
    RefNotFound {
        /// The ref as the user typed it.
        spec: String,
        /// What was tried.
        why: String,
    },
    /// An id prefix that matches several snapshots or objects.
    #[error("ref `{spec}` is ambiguous; it matches: {}", candidates.join(", "))]
    AmbiguousRef {
        /// The ref as the user typed it.
        spec: String,
        /// The full ids it matches.
        candidates: Vec<String>,
    },
    /// A snapshot of another plane where one of this plane was needed.
    #[error("snapshot {snapshot} belongs to plane `{belongs_to}`, not `{asked}`")]
    WrongPlane {
        /// The snapshot id (short hex).
        snapshot: String,
        /// Its plane.
        belongs_to: String,
        /// The plane the command acts on.
        asked: String,
    },
    /// A path that no plane covers.
    #[error("{path} is not inside any plane of the store at {store}")]
    NotInPlane {
        /// The path asked about.
        path: PathBuf,
        /// The store root.
        store: PathBuf,
    },
    /// A path that is not in a snapshot (and, for `restore`, not in the working tree either).
    #[error("no path `{path}` in {what}")]
    NoSuchPath {
        /// The plane-relative path.
        path: String,
        /// Where it was looked for ("snapshot VER-… (id)").
        what: String,
    },
    /// A path argument that is not a plane-relative path (`..`, NUL, outside the plane).
    #[error("`{path}` is not a path inside plane `{plane}`")]
    BadPath {
        /// The path as given.
        path: String,
        /// The plane.
        plane: String,
    },
    /// `plane remove` of a plane that must stay: the only plane, or one
    /// with a checkout or install not yet finished.
    #[error("plane `{plane}` cannot be removed: {why}")]
    PlaneRemoveRefused {
        /// The plane.
        plane: String,
        /// Why it must stay ("it is the only plane", ...).
        why: String,
    },
    /// `--plane NAME` for a plane that does not exist.
    #[error("no plane named `{name}` (planes: {})", known.join(", "))]
    NoSuchPlane {
        /// The name asked for.
        name: String,
        /// The planes the store has.
        known: Vec<String>,
    },
    /// Another process holds the store lock.
    #[error("another process holds the store lock {path} ({holder}); waited {waited_ms} ms")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
        /// How long this process waited, in milliseconds.
        waited_ms: u64,
    },
    /// A checkout (rollback, restore) of the plane is running in another process.
    #[error("a rollback or restore of plane `{plane}` is in progress ({holder})")]
    CheckoutInProgress {
        /// The plane.
        plane: String,
        /// What the lock file says about the other process.
        holder: String,
    },
    /// An interrupted checkout whose journal cannot be replayed.
    #[error("plane `{plane}` has an interrupted rollback or restore (journal {}) that cannot be finished: {source}", journal.display())]
    UnfinishedCheckout {
        /// The plane.
        plane: String,
        /// The journal file.
        journal: PathBuf,
        /// Why the replay failed.
        #[source]
        source: Box<Error>,
    },
    /// A checkout applied everything and deleted its journal, but a final
    /// flush failed: the tree is right, its durability is not certain.
    #[error("plane `{plane}`: the checkout was applied, but making it durable failed: {source}")]
    CheckoutFlush {
        /// The plane.
        plane: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// The upgrade cannot run while a format-1 rollback journal is pending.
    #[error("plane `{plane}` has an unfinished format-1 rollback (journal {})", journal.display())]
    LegacyJournal {
        /// The plane.
        plane: String,
        /// The journal file.
        journal: PathBuf,
    },
    /// A write would go through something that is not a real directory of the plane.
    #[error("refusing to write {path}: {through} is not a real directory (a symlink or a file)")]
    UnsafePath {
        /// The plane-relative path that was to be written.
        path: String,
        /// The component that is not a directory.
        through: String,
    },
    /// A stored object does not hash to its id or does not decode.
    #[error("store damage: object {id} ({location}) is corrupt: {reason}")]
    CorruptObject {
        /// The object's id (hex).
        id: String,
        /// Pack file and offset, or ref file.
        location: String,
        /// What was expected and what was found.
        reason: String,
    },
    /// An object a ref or tree names is not in the store.
    #[error("store damage: {kind} object {id} is missing from the store")]
    MissingObject {
        /// The object's id (hex).
        id: String,
        /// Expected kind (blob, tree, snapshot).
        kind: &'static str,
    },
    /// A format-1 object where a format-2 one was expected (left over from `cplane upgrade`).
    #[error("store damage: {kind} object {id} is in store format 1, which this cplane reads only to upgrade")]
    LegacyObject {
        /// The object's id (hex).
        id: String,
        /// Its kind.
        kind: &'static str,
    },
    /// A ref file, pack index or journal is damaged.
    #[error("store damage: {path}: {reason}")]
    DamagedFile {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A working-tree file changed between the scan that listed it and the
    /// read that was to show its bytes (`diff -p`): what was read no longer
    /// hashes to the id the scan recorded.
    #[error("{path} changed while it was being compared (expected blake3 {expected}, read {actual})")]
    ChangedWhileReading {
        /// The file, as plane root joined with its plane-relative path.
        path: PathBuf,
        /// The id the scan recorded (12 hex digits).
        expected: String,
        /// The id of the bytes read (12 hex digits).
        actual: String,
    },
    /// A governance command on a plane without registries.
    #[error("plane `{plane}` is not governed (it has no registries/frameworks_registry.csv)")]
    NotGoverned {
        /// The plane.
        plane: String,
    },
    /// A remote name that `.cp/config.json` does not list.
    #[error("no remote named `{name}`{}", if known.is_empty() { " (this store has no remotes)".to_string() } else { format!(" (remotes: {})", known.join(", ")) })]
    NoSuchRemote {
        /// The name asked for.
        name: String,
        /// The remotes the store has.
        known: Vec<String>,
    },
    /// A remote URL or name that cannot be used.
    #[error("remote `{url}`: {reason}")]
    BadRemote {
        /// The URL (or name) as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A push whose remote ref is no longer the one last pulled: another
    /// store pushed meanwhile. Nothing of the push is visible there.
    #[error("the remote moved; pull first: {what} on remote `{remote}` {why}")]
    RemoteMoved {
        /// The remote.
        remote: String,
        /// The ref (`main/HEAD`, `main/checkpoints/NAME`).
        what: String,
        /// What was expected and what was found.
        why: String,
    },
    /// A push of a governed plane whose ledger does not hold the remote
    /// ledger last pulled: the remote's history has entries this plane
    /// lacks, and pushing would drop them. Nothing was pushed.
    #[error(
        "push refused: the history of plane `{plane}` on remote `{remote}` has {missing} ledger entr{} this plane lacks (from entry {from} on); pushing would drop them, so nothing was pushed",
        if *missing == 1 { "y" } else { "ies" }
    )]
    LedgerDiverged {
        /// The remote.
        remote: String,
        /// The plane.
        plane: String,
        /// The first entry (0-based) of the remote ledger this plane's lacks.
        from: u64,
        /// How many entries of the remote ledger, from `from` on.
        missing: u64,
    },
    /// A remote operation that failed (network, permissions, the server's answer).
    #[error("remote `{remote}`: {op}: {reason}")]
    Remote {
        /// The remote.
        remote: String,
        /// What was being done (`upload packs/pack-….pack`, `list planes/`).
        op: String,
        /// What the object store client said.
        reason: String,
    },
    /// A signal stopped the operation at a safe point; nothing was committed.
    #[error("interrupted; nothing was committed")]
    Interrupted,
    /// The command refused to proceed because the tree has findings.
    #[error("{action} refused: {} finding{}; nothing was written", findings.len(), if findings.len() == 1 { "" } else { "s" })]
    Refused {
        /// What was refused ("snapshot", "rollback").
        action: &'static str,
        /// The findings that caused the refusal.
        findings: Vec<Finding>,
    },
    /// An install wrote its files, but its seal refused the plane (something
    /// changed in it while the install ran): the install stays pending
    /// (`install.pending`), and the next command finishes it once the
    /// findings are fixed; `cplane rollback` puts the plane back instead.
    #[error("the package's files are in place in plane {plane}, but the install's seal is refused ({} finding{}): the install stays pending", findings.len(), if findings.len() == 1 { "" } else { "s" })]
    InstallPending {
        /// The plane.
        plane: String,
        /// What the seal refused.
        findings: Vec<Finding>,
    },
}

impl Error {
    /// The findings behind a refusal ([`Error::Refused`],
    /// [`Error::InstallPending`]), if this is one.
    pub fn findings(&self) -> Option<&[Finding]> {
        match self {
            Error::Refused { findings, .. } | Error::InstallPending { findings, .. } => Some(findings),
            _ => None,
        }
    }

    /// What kind of failure this is: refused because of findings, store
    /// damage, interrupted, or everything else (usage, configuration, I/O).
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Refused { .. } | Error::InstallPending { .. } => ErrorClass::Findings,
            Error::Interrupted => ErrorClass::Interrupted,
            Error::CorruptObject { .. }
            | Error::MissingObject { .. }
            | Error::LegacyObject { .. }
            | Error::DamagedFile { .. } => ErrorClass::Damage,
            Error::UnfinishedCheckout { source, .. } if source.class() == ErrorClass::Damage => ErrorClass::Damage,
            _ => ErrorClass::Usage,
        }
    }

    /// The same error, but a [`Error::Refused`] now names `action` as what was refused
    /// (a snapshot refused inside `init` or `rollback` is that command's refusal).
    pub fn refused_as(self, action: &'static str) -> Self {
        match self {
            Error::Refused { findings, .. } => Error::Refused { action, findings },
            other => other,
        }
    }
}

/// Adds the path to an `io::Result`, as `jj`'s `IoResultExt::context` does.
pub trait IoResultExt<T> {
    /// Wraps an I/O error in [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}

/// Names a working-tree path in an I/O error: `<plane root>/<rel>` as the user sees it.
pub(crate) fn tree_io(root: &Path, rel: &crate::path::RelPath, source: io::Error) -> Error {
    let path = if rel.is_root() {
        root.to_path_buf()
    } else {
        root.join(rel.as_os_str())
    };
    Error::Io { path, source }
}
