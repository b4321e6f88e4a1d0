//! Scanning a plane's working tree into trees: a parallel walk over open
//! directory descriptors, parallel hashing, trees built bottom-up — with no
//! recursion on the call stack, so a tree of any depth scans.
//!
//! Every directory is one job on rayon's pool ([`rayon::scope`]): the job
//! opens its directory relative to its parent's descriptor (`openat`,
//! `O_NOFOLLOW`), lists it (`getdents`), `fstatat`s each entry, spawns one
//! job per subdirectory and hashes its files (large directories split their
//! files into chunks of [`FILES_PER_JOB`], each a job of its own). Spawned
//! jobs wait in rayon's queues, not on a stack. A directory's tree can only
//! be built when all of its children are done, so each directory node counts
//! its outstanding work; whoever finishes the last piece builds the tree,
//! hashes it, stores it, and hands the entry to the parent — in a loop that
//! climbs towards the root, never recursing. Entries are sorted by name when
//! the directory is listed, so tree bytes do not depend on timing.
//!
//! With a stat cache, files whose stat matches (and is not racy) are not
//! read, and directories whose stamp matches (and is not racy) are not
//! listed: their names come from the cache ([`crate::store::index::DirListing`];
//! every entry is still `fstatat`ed). With an [`ObjectWriter`], every new blob and tree is stored as it is
//! found. Empty directories are recorded (as empty trees). Paths that vanish
//! between the listing and the open (a build removing its temporaries) are
//! simply absent from the result and counted in [`ScanResult::vanished`].
//!
//! Exclusions ([`crate::exclude`]): a directory's `.cpignore` is read when
//! its job lists it, and its rules join those of the directories above (a
//! shared chain, so nothing is copied per directory); excluded entries are
//! dropped from the listing — an excluded directory is never opened — and
//! counted. With no `.cpignore` on the way and no `--exclude` pattern, the
//! only cost is one name comparison per entry.

use crate::control::Control;
use crate::error::{Error, Result};
use crate::exclude::{Chain, Exclusions, IGNORE_FILE, Rules};
use crate::finding::{Code, Finding};
use crate::fsys::{self, Dir, EntryType};
use crate::hash::HashProblem;
use crate::id::{ObjectId, TreeId};
use crate::object::{EntryKind, LinkGroup, Meta, ObjectKind, Tree, TreeEntry};
use crate::path::RelPath;
use crate::scope::Scope;
use crate::store::index::{Cursor, DirListing, DirStamp, IndexEntry, MappedCache, Stat, StatCache, now_ns};
use crate::store::pack::ObjectWriter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Files handled per job: a directory with more regular files than this
/// splits them into several jobs so both cores hash one large directory.
pub const FILES_PER_JOB: usize = 64;

/// What a scan may use and produce.
#[derive(Clone, Copy)]
pub struct ScanOptions<'a> {
    /// Trust matching, non-racy stat-cache entries instead of reading
    /// files, and matching, non-racy listings instead of reading directories.
    pub cache: Option<&'a MappedCache>,
    /// Store every new blob and tree here.
    pub writer: Option<&'a ObjectWriter<'a>>,
    /// Which stat-cache entries and directory listings to return in
    /// [`ScanResult::cache`].
    pub record: Record,
    /// Progress (a tick per file) and cancellation.
    pub ctl: Control<'a>,
    /// Shown the bytes of each file read whole while hashing (smaller than
    /// [`crate::hash::PARALLEL_MIN_BYTES`]) that it wants: how a governed
    /// `verify` runs its content gates on the bytes it hashes.
    pub content: Option<&'a dyn ContentHook>,
}

/// Sees file contents as a scan hashes them ([`ScanOptions::content`]).
pub trait ContentHook: Sync {
    /// True when the hook wants the bytes of the file at `rel`.
    fn wants(&self, rel: &RelPath) -> bool;
    /// The bytes of the file at `rel`, exactly as hashed, and their blob id
    /// (called at most once per file).
    fn content(&self, rel: &RelPath, bytes: &[u8], id: &ObjectId);
}

/// Which files and directory listings a scan describes in its returned
/// stat cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every file and every listing: a complete new cache.
    All,
    /// Only files that were read and hashed, and directories that were
    /// read: a patch for the old cache (status).
    Hashed,
    /// The files and directories that were read, and the indices of the
    /// cache rows and listings that matched ([`ScanResult::cache_hits`],
    /// [`ScanResult::dir_hits`]): together everything, made whole by
    /// [`ScanResult::full_cache`] only when a caller needs the rows (an
    /// unchanged snapshot does not).
    Hits,
    /// None (verify).
    Nothing,
}

/// The scanned state of a plane (or of one directory in it).
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Merkle root of the scanned tree.
    pub root: TreeId,
    /// Permission bits and owner of the scanned directory itself.
    pub root_meta: Option<Meta>,
    /// Every tree of the scanned state, by id (the root included) — only when
    /// nothing was stored; with a writer, the trees are read back from the store.
    pub trees: HashMap<TreeId, Tree>,
    /// Rows of [`ScanOptions::cache`] that matched a file, by index
    /// ([`Record::Hits`]; in no particular order).
    pub cache_hits: Vec<u32>,
    /// Directory listings of [`ScanOptions::cache`] that were used, by
    /// index ([`Record::Hits`]; in no particular order).
    pub dir_hits: Vec<u32>,
    /// Stat-cache entries for the files [`ScanOptions::record`] asked for,
    /// and the listings of the directories it read (with [`Record::All`],
    /// every directory's), **in no particular order**: [`StatCache::sort`]
    /// them before using them as a cache.
    pub cache: StatCache,
    /// Unreadable, special and unstable files; they are left out of `root`.
    pub findings: Vec<Finding>,
    /// Files and symlinks recorded.
    pub files: u64,
    /// Directories recorded (the scanned directory itself not counted).
    pub dirs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files actually read and hashed (the rest came from the stat cache).
    pub hashed_files: u64,
    /// Bytes actually read and hashed.
    pub hashed_bytes: u64,
    /// Directories actually listed (the rest came from the stat cache).
    pub listed_dirs: u64,
    /// Of those, the listings recorded in [`ScanResult::cache`] that a
    /// later scan can trust (not racy under this scan's start): a cache
    /// saved with none of them and no hashed file gains nothing.
    pub new_listings: u64,
    /// Paths that disappeared while the scan ran (left out, not findings).
    pub vanished: u64,
    /// Entries left out because a governed plane's `exempt` glob matches
    /// them (a directory left out whole counts once).
    pub exempt: u64,
    /// Entries left out because a `.cpignore` or `--exclude` rule excludes
    /// them (a directory left out whole counts once).
    pub excluded: u64,
    /// Those entries' paths, sorted: what a checkout must leave alone.
    pub excluded_paths: Vec<RelPath>,
    /// The rules the scan used: the plane's `exclude` patterns and every
    /// `.cpignore` it read.
    pub exclusions: Exclusions,
    /// Directories skipped because they hold another store (`.cp/FORMAT`).
    pub nested_stores: Vec<RelPath>,
    /// Hard-link groups among the scanned regular files (two or more paths
    /// inside the scan to one inode), sorted.
    pub links: Vec<LinkGroup>,
}

struct Shared<'a> {
    scope: &'a Scope,
    opts: ScanOptions<'a>,
    trees: Mutex<HashMap<TreeId, Tree>>,
    index: Mutex<Vec<Vec<IndexEntry>>>,
    hits: Mutex<Vec<Vec<u32>>>,
    listings: Mutex<Vec<DirListing>>,
    dir_hits: Mutex<Vec<u32>>,
    listed_dirs: AtomicU64,
    new_listings: AtomicU64,
    /// When the scan started (ns since epoch): a listing racy under it is
    /// recorded but not worth a save.
    started: i64,
    /// The device of the scanned directory, when cached listings may be
    /// used and recorded on it ([`Shared::use_listings_on`]): only for
    /// directories on that device.
    listings_on: Option<u64>,
    findings: Mutex<Vec<Finding>>,
    nested: Mutex<Vec<RelPath>>,
    inodes: Mutex<Vec<(u64, u64, RelPath)>>,
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
    vanished: AtomicU64,
    exempt: AtomicU64,
    excluded: AtomicU64,
    excluded_paths: Mutex<Vec<RelPath>>,
    rules: Mutex<Vec<Arc<Rules>>>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    result: Mutex<Option<(TreeId, u64, Meta)>>,
}

impl<'a> Shared<'a> {
    fn new(scope: &'a Scope, opts: ScanOptions<'a>) -> Self {
        Shared {
            scope,
            opts,
            trees: Mutex::new(HashMap::new()),
            index: Mutex::new(Vec::new()),
            hits: Mutex::new(Vec::new()),
            listings: Mutex::new(Vec::new()),
            dir_hits: Mutex::new(Vec::new()),
            listed_dirs: AtomicU64::new(0),
            new_listings: AtomicU64::new(0),
            started: now_ns(),
            listings_on: None,
            findings: Mutex::new(Vec::new()),
            nested: Mutex::new(Vec::new()),
            inodes: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            hashed_files: AtomicU64::new(0),
            hashed_bytes: AtomicU64::new(0),
            vanished: AtomicU64::new(0),
            exempt: AtomicU64::new(0),
            excluded: AtomicU64::new(0),
            excluded_paths: Mutex::new(Vec::new()),
            rules: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            result: Mutex::new(None),
        }
    }

    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().expect("error slot lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn finding(&self, code: Code, path: RelPath, message: String) {
        self.findings
            .lock()
            .expect("findings lock")
            .push(Finding::new(code, path, message));
    }

    fn vanished(&self) {
        self.vanished.fetch_add(1, Ordering::Relaxed);
    }

    /// Lets cached listings be used and recorded for the directories of
    /// this scan that are on the scanned directory's filesystem (`dir`,
    /// `fstat` `st`), when that filesystem keeps directory stamps
    /// ([`Dir::keeps_dir_stamps`]) and `CPLANE_DIR_LISTINGS` is not `0`.
    /// A directory on another device (a mount below) is always read.
    fn use_listings_on(&mut self, dir: &Dir, st: &fsys::Stat) {
        let off = std::env::var_os("CPLANE_DIR_LISTINGS").is_some_and(|v| v == "0");
        if !off && dir.keeps_dir_stamps() {
            self.listings_on = Some(st.st_dev as u64);
        }
    }

    /// The names in directory `rel`, in name order, open as `dir`, whose
    /// `fstat` (`st`) was taken before this call: from the stat cache when it holds them
    /// under this stamp, not racy; else read (`getdents`, from the start
    /// when `rewind`: the descriptor may have been read before) and
    /// recorded unless [`Record::Nothing`]. Reading the stamp first is
    /// what makes a recorded listing safe: a name added after the stamp
    /// gives the directory a later stamp, and one added in the same
    /// timestamp tick leaves a listing the racy rule never trusts.
    fn list(&self, rel: &RelPath, dir: &Dir, st: &fsys::Stat, rewind: bool) -> std::io::Result<fsys::Listing> {
        let stamp = DirStamp::from_raw(st);
        let usable = self.listings_on == Some(stamp.dev);
        if usable
            && let Some(c) = self.opts.cache
            && let Some((i, names)) = c.listing(rel, &stamp)
        {
            match self.opts.record {
                Record::All => self
                    .listings
                    .lock()
                    .expect("listings lock")
                    .extend(c.dir_entry(i as usize)),
                Record::Hits => self.dir_hits.lock().expect("dir hits lock").push(i),
                Record::Hashed | Record::Nothing => {}
            }
            return Ok(names);
        }
        let mut names = if rewind { dir.list() } else { dir.list_fresh() }?;
        // Sorted once, here: the listing recorded and the tree built from
        // it both want name order (a cached listing comes sorted).
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.listed_dirs.fetch_add(1, Ordering::Relaxed);
        if usable && self.opts.record != Record::Nothing {
            let listing = DirListing::new(rel.clone(), stamp, &names);
            // The row holds a u32 length: a larger listing is not kept.
            if u32::try_from(listing.names.len()).is_ok() {
                if !stamp.is_racy(self.started) {
                    self.new_listings.fetch_add(1, Ordering::Relaxed);
                }
                self.listings.lock().expect("listings lock").push(listing);
            }
        }
        Ok(names)
    }
}

/// A directory being scanned: its sorted slots fill in as children finish.
struct Node {
    rel: RelPath,
    name: Vec<u8>,
    meta: Meta,
    parent: Option<(Arc<Node>, usize)>,
    /// The `.cpignore` rules in force in this directory (its own included).
    chain: Chain,
    state: Mutex<NodeState>,
}

struct NodeState {
    slots: Vec<Option<TreeEntry>>,
    index: Vec<IndexEntry>,
    /// Outstanding pieces of work: subdirectories, file chunks, and the
    /// listing job itself; the one that brings it to 0 builds the tree.
    pending: usize,
    /// Entries left out because they are carve-outs, or directories that only
    /// lead to carve-outs: a directory with nothing else is not recorded.
    carved: usize,
}

/// A regular file or symlink to examine: its slot and name.
struct FileJob {
    slot: usize,
    name: Vec<u8>,
}

/// Scans the plane `scope` covers.
///
/// # Errors
/// [`Error::Io`] when the plane root cannot be read, [`Error::Interrupted`],
/// or any store error from the writer. Problems with individual files are findings.
pub fn scan(scope: &Scope, opts: ScanOptions<'_>) -> Result<ScanResult> {
    let root = scope
        .root()
        .try_clone()
        .map_err(|e| scope.io_error(&RelPath::root(), e))?;
    scan_dir_at(scope, RelPath::root(), root, Chain::default(), opts)
}

/// Scans the directory at `rel`, already opened as `dir`, into a tree;
/// `chain` holds the `.cpignore` rules of the directories above it.
///
/// # Errors
/// As [`scan`]; the directory itself must be readable.
fn scan_dir_at(scope: &Scope, rel: RelPath, dir: Dir, chain: Chain, opts: ScanOptions<'_>) -> Result<ScanResult> {
    // A deep tree holds one descriptor per level while siblings wait: allow many.
    fsys::raise_fd_limit();
    let mut sh = Shared::new(scope, opts);
    let started = sh.started;
    let name = rel.file_name().map(<[u8]>::to_vec).unwrap_or_default();
    // The scanned directory itself must be readable: that is an error, not a finding.
    let st = dir.stat_self().map_err(|e| scope.io_error(&rel, e))?;
    sh.use_listings_on(&dir, &st);
    let listing = sh.list(&rel, &dir, &st, true).map_err(|e| scope.io_error(&rel, e))?;
    let meta = Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, EntryKind::Dir);
    rayon::scope(|s| {
        run_dir(s, &sh, rel, name, meta, None, chain, Arc::new(dir), listing);
    });
    if let Some(e) = sh.error.into_inner().expect("error slot lock") {
        return Err(e);
    }
    let (root, _, root_meta) = sh
        .result
        .into_inner()
        .expect("result lock")
        .expect("a scan that did not fail produced a root");
    // In completion order: sorting 100,000 paths costs as much as the rest of
    // an unchanged snapshot's user time, so only the consumers that use the
    // rows as a cache sort them ([`StatCache::sort`]).
    let entries: Vec<IndexEntry> = sh
        .index
        .into_inner()
        .expect("index lock")
        .into_iter()
        .flatten()
        .collect();
    let cache_hits: Vec<u32> = sh.hits.into_inner().expect("hits lock").into_iter().flatten().collect();
    let dirs = sh.listings.into_inner().expect("listings lock");
    let mut findings = sh.findings.into_inner().expect("findings lock");
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    let mut nested_stores = sh.nested.into_inner().expect("nested store list lock");
    nested_stores.sort();
    let mut excluded_paths = sh.excluded_paths.into_inner().expect("excluded list lock");
    excluded_paths.sort();
    let exclusions = Exclusions::new(scope.exclude().cloned(), sh.rules.into_inner().expect("rules lock"));
    Ok(ScanResult {
        root,
        root_meta: Some(root_meta),
        trees: sh.trees.into_inner().expect("tree map lock"),
        cache: StatCache {
            scan_started_ns: started,
            entries,
            dirs,
        },
        cache_hits,
        dir_hits: sh.dir_hits.into_inner().expect("dir hits lock"),
        listed_dirs: sh.listed_dirs.into_inner(),
        new_listings: sh.new_listings.into_inner(),
        findings,
        files: sh.files.into_inner(),
        dirs: sh.dirs.into_inner(),
        bytes: sh.bytes.into_inner(),
        hashed_files: sh.hashed_files.into_inner(),
        hashed_bytes: sh.hashed_bytes.into_inner(),
        vanished: sh.vanished.into_inner(),
        exempt: sh.exempt.into_inner(),
        excluded: sh.excluded.into_inner(),
        excluded_paths,
        exclusions,
        nested_stores,
        links: link_groups(sh.inodes.into_inner().expect("inode list lock")),
    })
}

impl ScanResult {
    /// The complete stat cache of a [`Record::Hits`] scan with `cache`: the
    /// rows it hashed and the rows of `cache` that matched, the listings it
    /// read and those of `cache` it used, sorted, timed at this scan's
    /// start — what a [`Record::All`] scan returns.
    pub fn full_cache(&self, cache: &MappedCache) -> StatCache {
        let mut entries = self.cache.entries.clone();
        entries.extend(self.cache_hits.iter().filter_map(|&i| cache.row_entry(i as usize)));
        let mut dirs = self.cache.dirs.clone();
        dirs.extend(self.dir_hits.iter().filter_map(|&i| cache.dir_entry(i as usize)));
        let mut full = StatCache {
            scan_started_ns: self.cache.scan_started_ns,
            entries,
            dirs,
        };
        full.sort();
        full
    }
}

/// Groups (device, inode, path) rows into hard-link groups of two or more paths.
fn link_groups(mut rows: Vec<(u64, u64, RelPath)>) -> Vec<LinkGroup> {
    rows.sort();
    let mut groups: Vec<LinkGroup> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && rows[j].0 == rows[i].0 && rows[j].1 == rows[i].1 {
            j += 1;
        }
        if j - i >= 2 {
            let mut g: LinkGroup = rows[i..j].iter().map(|r| r.2.clone()).collect();
            g.sort();
            groups.push(g);
        }
        i = j;
    }
    groups.sort();
    groups
}

/// A subdirectory job: opens `name` in `parent_dir`, lists it, and runs it.
fn open_subdir<'s>(
    s: &rayon::Scope<'s>,
    sh: &'s Shared<'s>,
    parent: Arc<Node>,
    slot: usize,
    parent_dir: Arc<Dir>,
    name: Vec<u8>,
) {
    let rel = parent.rel.join(&name);
    if sh.failed.load(Ordering::Relaxed) {
        return;
    }
    // A directory that cannot be scanned is left out: quietly when it
    // vanished (the next scan sees what is there), else as a finding.
    let left_out = |e: std::io::Error, what: &str| {
        if fsys::is_vanished(&e) {
            sh.vanished();
        } else {
            sh.finding(
                Code::Unreadable,
                rel.clone(),
                format!("directory cannot be {what}: {e}"),
            );
        }
    };
    let opened = parent_dir.open_dir(&name);
    drop(parent_dir);
    let dir = match opened {
        Ok(d) => d,
        Err(e) if fsys::is_symlink_refusal(&e) => {
            // Replaced by a symlink since the listing: it is one now; let the next scan see it.
            sh.vanished();
            return complete(sh, parent, slot, None);
        }
        // Out of descriptors is this process's problem, not the user's directory.
        Err(e) if fsys::is_fd_exhaustion(&e) => return sh.fail(sh.scope.io_error(&rel, e)),
        Err(e) => {
            left_out(e, "opened");
            return complete(sh, parent, slot, None);
        }
    };
    // The stamp before the names (see [`Shared::list`]).
    let st = match dir.stat_self() {
        Ok(st) => st,
        Err(e) => {
            left_out(e, "inspected");
            return complete(sh, parent, slot, None);
        }
    };
    // (getdents on a directory removed after it was opened says ENOENT: vanished.)
    let listing = match sh.list(&rel, &dir, &st, false) {
        Ok(l) => l,
        Err(e) => {
            left_out(e, "read");
            return complete(sh, parent, slot, None);
        }
    };
    // A directory holding another store (`.cp/FORMAT`) belongs to that store.
    if listing
        .iter()
        .any(|(n, t)| n == crate::store::STORE_DIR.as_bytes() && matches!(t, EntryType::Dir | EntryType::Unknown))
        && crate::store::holds_store(&dir)
    {
        sh.nested.lock().expect("nested store list lock").push(rel);
        return complete(sh, parent, slot, None);
    }
    let meta = Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, EntryKind::Dir);
    let chain = parent.chain.clone();
    run_dir(
        s,
        sh,
        rel,
        name,
        meta,
        Some((parent, slot)),
        chain,
        Arc::new(dir),
        listing,
    );
}

/// Runs one listed directory: spawns its subdirectories, examines its files.
#[allow(clippy::too_many_arguments)]
fn run_dir<'s>(
    s: &rayon::Scope<'s>,
    sh: &'s Shared<'s>,
    rel: RelPath,
    name: Vec<u8>,
    meta: Meta,
    parent: Option<(Arc<Node>, usize)>,
    mut chain: Chain,
    dir: Arc<Dir>,
    mut listing: fsys::Listing,
) {
    if let Err(e) = sh.opts.ctl.check() {
        return sh.fail(e);
    }
    // Sorted by name ([`Shared::list`]): the slots, and so the tree bytes,
    // do not depend on the filesystem's order.
    debug_assert!(listing.is_sorted_by(|a, b| a.0 <= b.0));
    // The staging name is cplane's own, for an instant; never recorded.
    listing.retain(|(n, _)| n != crate::scope::STAGING_NAME);
    let before = listing.len();
    listing.retain(|(n, _)| !sh.scope.is_carved_entry(&rel, n));
    if let Some(ex) = sh.scope.exempt() {
        let kept = listing.len();
        listing.retain(|(n, t)| !ex.matches(&rel.join(n), *t == EntryType::Dir));
        sh.exempt.fetch_add((kept - listing.len()) as u64, Ordering::Relaxed);
    }
    // Exempt entries count as carved: a directory holding nothing else is left out too.
    let carved = before - listing.len();
    // This directory's own rules, read as it is entered; then what they (and
    // the rules above) exclude is not examined at all.
    if listing
        .iter()
        .any(|(n, t)| n.as_slice() == IGNORE_FILE && *t != EntryType::Dir)
    {
        match crate::exclude::read_rules(&dir, &rel) {
            Ok(Some(rules)) => {
                let rules = Arc::new(rules);
                sh.rules.lock().expect("rules lock").push(rules.clone());
                chain = chain.with(rules);
            }
            Ok(None) => {}
            Err(e) => sh.finding(
                Code::BadIgnoreFile,
                rel.join(IGNORE_FILE),
                if e.line == 0 { e.reason } else { e.to_string() },
            ),
        }
    }
    let global = sh.scope.exclude().map(|r| &**r);
    if !chain.is_empty() || global.is_some() {
        let mut out = Vec::new();
        listing.retain(|(n, t)| {
            let is_dir = match t {
                EntryType::Dir => true,
                EntryType::Unknown => dir
                    .stat(n)
                    .is_ok_and(|st| EntryType::from_mode(st.st_mode as u32) == EntryType::Dir),
                _ => false,
            };
            let p = rel.join(n);
            if chain.excludes(global, &p, is_dir) {
                out.push(p);
                false
            } else {
                true
            }
        });
        if !out.is_empty() {
            sh.excluded.fetch_add(out.len() as u64, Ordering::Relaxed);
            sh.excluded_paths.lock().expect("excluded list lock").extend(out);
        }
    }
    let mut subdirs = Vec::new();
    let mut files = Vec::new();
    for (slot, (n, t)) in listing.into_iter().enumerate() {
        let t = if t == EntryType::Unknown {
            match dir.stat(&n) {
                Ok(st) => EntryType::from_mode(st.st_mode as u32),
                Err(_) => EntryType::Unknown, // examined (and reported) with the files
            }
        } else {
            t
        };
        if t == EntryType::Dir {
            subdirs.push((slot, n));
        } else {
            files.push(FileJob { slot, name: n });
        }
    }
    let chunks: Vec<Vec<FileJob>> = if files.len() > FILES_PER_JOB {
        let mut out = Vec::new();
        let mut it = files.into_iter().peekable();
        while it.peek().is_some() {
            out.push(it.by_ref().take(FILES_PER_JOB).collect());
        }
        out
    } else {
        vec![files]
    };
    let slots = subdirs.len() + chunks.iter().map(Vec::len).sum::<usize>();
    let node = Arc::new(Node {
        rel,
        name,
        meta,
        parent,
        chain,
        state: Mutex::new(NodeState {
            slots: vec![None; slots],
            index: Vec::new(),
            // Every subdirectory, every chunk after the first, and this job.
            pending: subdirs.len() + chunks.len().max(1),
            carved,
        }),
    });
    for (slot, n) in subdirs {
        let (node, dir) = (node.clone(), dir.clone());
        s.spawn(move |s| open_subdir(s, sh, node, slot, dir, n));
    }
    let mut chunks = chunks.into_iter();
    let first = chunks.next().unwrap_or_default();
    for chunk in chunks {
        let (node, dir) = (node.clone(), dir.clone());
        s.spawn(move |_| {
            let done = examine_files(sh, &node, &dir, chunk);
            finish_chunk(sh, node, done);
        });
    }
    let done = examine_files(sh, &node, &dir, first);
    drop(dir);
    finish_chunk(sh, node, done);
}

/// What one chunk of files produced: (slot, entry) pairs and cache rows.
type ChunkResult = (Vec<(usize, TreeEntry)>, Vec<IndexEntry>, Vec<u32>);

fn finish_chunk(sh: &Shared<'_>, node: Arc<Node>, (entries, index, hits): ChunkResult) {
    if !hits.is_empty() {
        sh.hits.lock().expect("hits lock").push(hits);
    }
    {
        let mut st = node.state.lock().expect("node lock");
        for (slot, e) in entries {
            st.slots[slot] = Some(e);
        }
        st.index.extend(index);
    }
    complete_one(sh, node);
}

/// Records a finished child directory (or its absence) in `parent` and completes it.
fn complete(sh: &Shared<'_>, parent: Arc<Node>, slot: usize, entry: Option<TreeEntry>) {
    if let Some(e) = entry {
        parent.state.lock().expect("node lock").slots[slot] = Some(e);
    }
    complete_one(sh, parent);
}

/// One piece of `node`'s work is done; when it was the last, build its tree
/// and climb: each finished directory completes its parent, in a loop.
fn complete_one(sh: &Shared<'_>, mut node: Arc<Node>) {
    loop {
        let (entries, index, carved) = {
            let mut st = node.state.lock().expect("node lock");
            st.pending -= 1;
            if st.pending > 0 {
                return;
            }
            (std::mem::take(&mut st.slots), std::mem::take(&mut st.index), st.carved)
        };
        if sh.failed.load(Ordering::Relaxed) {
            return;
        }
        let tree = Tree {
            entries: entries.into_iter().flatten().collect(),
        };
        // A directory that only leads to carve-outs (another plane's root) is not
        // this plane's: it is left out, as pruning a carve-out from a tree does.
        if tree.entries.is_empty()
            && carved > 0
            && let Some((parent, _)) = &node.parent
        {
            let parent = parent.clone();
            parent.state.lock().expect("node lock").carved += 1;
            node = parent;
            continue;
        }
        let size: u64 = tree.entries.iter().map(|e| e.size).sum();
        if !index.is_empty() && sh.opts.record != Record::Nothing {
            sh.index.lock().expect("index lock").push(index);
        }
        let (id, body) = tree.encode_with_id();
        // With a writer the trees are in the store; only a scan that stores nothing keeps them.
        match sh.opts.writer {
            Some(w) => {
                if let Err(e) = w.add(ObjectKind::Tree, id.0, &body) {
                    return sh.fail(e);
                }
            }
            None => {
                sh.trees.lock().expect("tree map lock").insert(id, tree);
            }
        }
        match &node.parent {
            None => {
                *sh.result.lock().expect("result lock") = Some((id, size, node.meta));
                return;
            }
            Some((parent, slot)) => {
                sh.dirs.fetch_add(1, Ordering::Relaxed);
                let entry = TreeEntry {
                    name: node.name.clone(),
                    kind: EntryKind::Dir,
                    meta: node.meta,
                    id: id.0,
                    size,
                };
                let (parent, slot) = (parent.clone(), *slot);
                parent.state.lock().expect("node lock").slots[slot] = Some(entry);
                node = parent;
            }
        }
    }
}

/// Examines files and symlinks of one directory: stat, cache, hash.
fn examine_files(sh: &Shared<'_>, node: &Node, dir: &Dir, files: Vec<FileJob>) -> ChunkResult {
    let run = sh.opts.cache.map(|c| c.run(&node.rel));
    let mut cursor = run.as_ref().map(|r| r.cursor());
    let mut entries = Vec::with_capacity(files.len());
    let mut index = Vec::new();
    let mut hits = Vec::new();
    for f in files {
        if sh.failed.load(Ordering::Relaxed) {
            break;
        }
        match examine(sh, dir, &node.rel, f.name, cursor.as_mut()) {
            Ok(Some((entry, row))) => {
                match row {
                    Row::Hashed(ie) => index.push(ie),
                    Row::Hit(i) => hits.push(i),
                    Row::None => {}
                }
                entries.push((f.slot, entry));
            }
            Ok(None) => {}
            Err(e) => {
                sh.fail(e);
                break;
            }
        }
    }
    (entries, index, hits)
}

/// What a scan keeps of one file for the stat cache ([`ScanOptions::record`]).
enum Row {
    /// Its row.
    Hashed(IndexEntry),
    /// The index of the cache row that matched it ([`Record::Hits`]).
    Hit(u32),
    /// Nothing.
    None,
}

/// Counts a recorded file or symlink and builds its tree entry, and its
/// stat-cache row when [`ScanOptions::record`] asks for it (`hashed`: the
/// file was read).
#[allow(clippy::too_many_arguments)]
fn recorded(
    sh: &Shared<'_>,
    parent: &RelPath,
    name: Vec<u8>,
    kind: EntryKind,
    id: ObjectId,
    size: u64,
    st: &fsys::Stat,
    hit: Option<u32>,
) -> (TreeEntry, Row) {
    sh.files.fetch_add(1, Ordering::Relaxed);
    sh.bytes.fetch_add(size, Ordering::Relaxed);
    // A symlink is neither hashed nor a hit: its target is always read.
    let hashed = hit.is_none() && kind == EntryKind::File;
    let keep = match sh.opts.record {
        Record::All => true,
        Record::Hashed => hashed,
        Record::Hits => hit.is_none(),
        Record::Nothing => false,
    };
    let row = match hit {
        Some(i) if sh.opts.record == Record::Hits => Row::Hit(i),
        _ if keep => Row::Hashed(IndexEntry {
            path: parent.join(&name),
            kind,
            id,
            stat: Stat::from_raw(st),
        }),
        _ => Row::None,
    };
    let entry = TreeEntry {
        name,
        kind,
        meta: Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, kind),
        id,
        size,
    };
    (entry, row)
}

/// One file or symlink `name` in the directory `parent`: `Some((entry, cache
/// row if recorded))`, or `None` when it is left out (vanished, unreadable,
/// special — the latter two as findings). Its path is built only when it is
/// needed (a file to hash, a finding, a row), not for a cache hit.
fn examine(
    sh: &Shared<'_>,
    dir: &Dir,
    parent: &RelPath,
    name: Vec<u8>,
    cache: Option<&mut Cursor<'_>>,
) -> Result<Option<(TreeEntry, Row)>> {
    let rel = || parent.join(&name);
    let st = match dir.stat(&name) {
        Ok(st) => st,
        Err(e) if fsys::is_vanished(&e) => {
            sh.vanished();
            return Ok(None);
        }
        Err(e) => {
            sh.finding(Code::Unreadable, rel(), format!("cannot be inspected: {e}"));
            return Ok(None);
        }
    };
    // The stat is authoritative: an entry replaced since the listing is examined as what it is now.
    match EntryType::from_mode(st.st_mode as u32) {
        EntryType::Symlink => {
            let target = match dir.read_link(&name) {
                Ok(t) => t,
                Err(e) if fsys::is_vanished(&e) || fsys::is_errno(&e, rustix::io::Errno::INVAL) => {
                    sh.vanished();
                    return Ok(None);
                }
                Err(e) => {
                    sh.finding(Code::Unreadable, rel(), format!("symlink cannot be read: {e}"));
                    return Ok(None);
                }
            };
            let id = crate::object::blob_id(&target);
            if let Some(w) = sh.opts.writer {
                w.add(ObjectKind::Blob, id, &target)?;
            }
            sh.opts.ctl.progress.inc(1, 0);
            Ok(Some(recorded(
                sh,
                parent,
                name,
                EntryKind::Symlink,
                id,
                target.len() as u64,
                &st,
                None,
            )))
        }
        EntryType::File => {
            let stat = Stat::from_raw(&st);
            let hit = cache.and_then(|c| c.lookup(&name, &stat));
            let (id, st) = match hit {
                Some((id, _, _)) => (id, st),
                None => {
                    let rel = rel();
                    let path = sh.scope.shown(&rel);
                    let hook = sh.opts.content.filter(|h| h.wants(&rel));
                    let show = |bytes: &[u8], id: &ObjectId| {
                        if let Some(h) = hook {
                            h.content(&rel, bytes, id);
                        }
                    };
                    let on_bytes: Option<crate::hash::OnBytes<'_>> = if hook.is_some() { Some(&show) } else { None };
                    match crate::hash::hash_file_with(dir, &name, &path, sh.opts.writer, on_bytes) {
                        Ok((id, st)) => {
                            sh.hashed_files.fetch_add(1, Ordering::Relaxed);
                            sh.hashed_bytes.fetch_add(st.st_size as u64, Ordering::Relaxed);
                            (id, st)
                        }
                        Err(HashProblem::Store(e)) => return Err(e),
                        Err(HashProblem::Unreadable(e)) if fsys::is_vanished(&e) => {
                            sh.vanished();
                            return Ok(None);
                        }
                        Err(HashProblem::Unreadable(e)) if fsys::is_symlink_refusal(&e) => {
                            // Became a symlink since the stat: the next scan records it.
                            sh.vanished();
                            return Ok(None);
                        }
                        Err(HashProblem::Unreadable(e)) if fsys::is_fd_exhaustion(&e) => {
                            return Err(sh.scope.io_error(&rel, e));
                        }
                        Err(HashProblem::Unreadable(e)) => {
                            sh.finding(Code::Unreadable, rel, format!("cannot be read: {e}"));
                            return Ok(None);
                        }
                        Err(HashProblem::Changed) => {
                            sh.finding(
                                Code::ChangedWhileHashing,
                                rel,
                                "kept changing while it was hashed; stop the writer and try again".into(),
                            );
                            return Ok(None);
                        }
                        Err(HashProblem::NotRegular) => {
                            sh.vanished();
                            return Ok(None);
                        }
                    }
                }
            };
            if st.st_nlink > 1 {
                sh.inodes
                    .lock()
                    .expect("inode list lock")
                    .push((st.st_dev as u64, st.st_ino as u64, rel()));
            }
            sh.opts.ctl.progress.inc(1, st.st_size as u64);
            Ok(Some(recorded(
                sh,
                parent,
                name,
                EntryKind::File,
                id,
                st.st_size as u64,
                &st,
                hit.map(|(_, _, row)| row),
            )))
        }
        EntryType::Dir => {
            // A file replaced by a directory since the listing: the next scan records it.
            sh.vanished();
            Ok(None)
        }
        other => {
            let what = match other {
                EntryType::Fifo => "a FIFO",
                EntryType::Socket => "a socket",
                EntryType::BlockDevice => "a block device",
                EntryType::CharDevice => "a character device",
                _ => "not a regular file, directory or symlink",
            };
            sh.finding(
                Code::SpecialFile,
                rel(),
                format!("is {what}; cplane stores only files, directories and symlinks"),
            );
            Ok(None)
        }
    }
}

/// Scans one path of the plane (a file, symlink or directory) for `restore`:
/// its entry as it is on disk now — `None` when nothing is there, or when
/// the path is left out (then [`ScanResult::findings`] says why: unreadable,
/// special, changing; or [`ScanResult::excluded_paths`] holds it, or the
/// excluded directory above it) — and the scan's counts, cache rows and
/// findings. The `.cpignore` files of the directories above the path are
/// read first, so the path is scanned under the rules a whole scan uses.
///
/// # Errors
/// As [`scan`]; [`Error::BadIgnoreFile`] for a `.cpignore` above the path
/// that cannot be used.
pub fn scan_path(scope: &Scope, rel: &RelPath, opts: ScanOptions<'_>) -> Result<(Option<TreeEntry>, ScanResult)> {
    let dir_entry = |name: &[u8], r: &ScanResult| TreeEntry {
        name: name.to_vec(),
        kind: EntryKind::Dir,
        meta: r.root_meta.expect("a directory scan records its meta"),
        id: r.root.0,
        size: r.bytes,
    };
    let Some(name) = rel.file_name() else {
        let r = scan(scope, opts)?;
        return Ok((Some(dir_entry(b"", &r)), r));
    };
    if scope.is_excluded(rel) {
        return Ok((None, ScanResult::default()));
    }
    let parent_rel = rel.parent().unwrap_or_default();
    let exclusions = Exclusions::load_along(scope, &parent_rel)?;
    let nothing = |exclusions: Exclusions| ScanResult {
        exclusions,
        ..ScanResult::default()
    };
    let parent = match scope.open_dir(&parent_rel) {
        Ok(d) => d,
        Err(e) if fsys::is_vanished(&e) || fsys::is_symlink_refusal(&e) => return Ok((None, nothing(exclusions))),
        Err(e) => return Err(scope.io_error(&parent_rel, e)),
    };
    let st = match parent.stat(name) {
        Ok(st) => st,
        Err(e) if fsys::is_vanished(&e) => return Ok((None, nothing(exclusions))),
        Err(e) => return Err(scope.io_error(rel, e)),
    };
    let is_dir = EntryType::from_mode(st.st_mode as u32) == EntryType::Dir;
    if let Some(hit) = exclusions.explain(rel, is_dir).filter(|h| h.excluded) {
        let mut r = nothing(exclusions);
        r.excluded = 1;
        r.excluded_paths = vec![hit.matched];
        return Ok((None, r));
    }
    if is_dir {
        let dir = match parent.open_dir(name) {
            Ok(d) => d,
            Err(e) if fsys::is_vanished(&e) || fsys::is_symlink_refusal(&e) => {
                return Ok((None, ScanResult::default()));
            }
            Err(e) => return Err(scope.io_error(rel, e)),
        };
        let chain = exclusions.chain_for(&parent_rel);
        let mut r = scan_dir_at(scope, rel.clone(), dir, chain, opts)?;
        r.exclusions.extend(exclusions.files().cloned());
        return Ok((Some(dir_entry(name, &r)), r));
    }
    let sh = Shared::new(scope, opts);
    let run = opts.cache.map(|c| c.run(&parent_rel));
    let mut cursor = run.as_ref().map(|r| r.cursor());
    let found = examine(&sh, &parent, &parent_rel, name.to_vec(), cursor.as_mut())?;
    let mut r = ScanResult {
        findings: sh.findings.into_inner().expect("findings lock"),
        vanished: sh.vanished.into_inner(),
        ..nothing(exclusions)
    };
    let Some((entry, row)) = found else {
        return Ok((None, r));
    };
    r.files = 1;
    r.bytes = entry.size;
    let (entries, hits) = match row {
        Row::Hashed(ie) => (vec![ie], Vec::new()),
        Row::Hit(i) => (Vec::new(), vec![i]),
        Row::None => (Vec::new(), Vec::new()),
    };
    r.cache = StatCache {
        scan_started_ns: now_ns(),
        entries,
        dirs: Vec::new(),
    };
    r.cache_hits = hits;
    Ok((Some(entry), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_groups_need_two_paths() {
        let p = |s: &[u8]| RelPath::parse(s).unwrap();
        let groups = link_groups(vec![(1, 5, p(b"b")), (1, 5, p(b"a")), (1, 6, p(b"c")), (2, 5, p(b"d"))]);
        assert_eq!(groups, vec![vec![p(b"a"), p(b"b")]]);
    }
}
