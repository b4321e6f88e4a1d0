//! Scanning a plane's working tree into trees: a parallel walk, parallel
//! hashing, trees built bottom-up.
//!
//! Each directory is read, its entries sorted by name bytes, then processed in
//! parallel with rayon (files hashed, subdirectories recursed). The resulting
//! [`Tree`]s are hashed bottom-up, so the root id commits to every byte. With a
//! stat cache, files whose stat matches (and is not racy) are not read; with an
//! [`ObjectWriter`], every new blob and tree is stored as it is found.
//! Empty directories are not recorded (as in git).

use crate::error::{IoResultExt, Result};
use crate::finding::{Finding, code};
use crate::hash::{HashProblem, hash_file};
use crate::id::{ObjectId, TreeId};
use crate::object::{EntryKind, ObjectKind, Tree, TreeEntry};
use crate::plane::Plane;
use crate::progress::Progress;
use crate::store::index::{IndexEntry, Stat, StatCache, now_ns};
use crate::store::pack::ObjectWriter;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a scan may use and produce.
#[derive(Clone, Copy)]
pub struct ScanOptions<'a> {
    /// Trust matching, non-racy stat-cache entries instead of reading files.
    pub cache: Option<&'a StatCache>,
    /// Store every new blob and tree here.
    pub writer: Option<&'a ObjectWriter<'a>>,
    /// Which stat-cache entries to return in [`ScanResult::cache`].
    pub record: Record,
    /// Receives a tick per file.
    pub progress: &'a dyn Progress,
}

/// Which files a scan describes in its returned stat cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every file: a complete new cache (snapshot).
    All,
    /// Only files that were read and hashed: a patch for the old cache (status).
    Hashed,
    /// None (verify).
    Nothing,
}

/// The scanned state of a plane.
#[derive(Debug)]
pub struct ScanResult {
    /// Merkle root of the scanned tree.
    pub root: TreeId,
    /// Every tree of the scanned state, by id (the root included) — only when
    /// nothing was stored; with a writer, the trees are read back from the store.
    pub trees: HashMap<TreeId, Tree>,
    /// Stat-cache entries (sorted by path) for the files [`ScanOptions::record`] asked for.
    pub cache: StatCache,
    /// Unreadable, special and unstable files; they are left out of `root`.
    pub findings: Vec<Finding>,
    /// Files and symlinks recorded.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files actually read and hashed (the rest came from the stat cache).
    pub hashed_files: u64,
    /// Bytes actually read and hashed.
    pub hashed_bytes: u64,
    /// Plane-relative directories skipped because they hold another store (`.cp/FORMAT`).
    pub nested_stores: Vec<Vec<u8>>,
}

struct Ctx<'a> {
    opts: ScanOptions<'a>,
    carve_outs: &'a [Vec<u8>],
    trees: Mutex<HashMap<TreeId, Tree>>,
    index: Mutex<Vec<Vec<IndexEntry>>>,
    findings: Mutex<Vec<Finding>>,
    nested_stores: Mutex<Vec<Vec<u8>>>,
    files: AtomicU64,
    bytes: AtomicU64,
    hashed_files: AtomicU64,
    hashed_bytes: AtomicU64,
}

use crate::object::join_path as join_rel;

/// Scans `plane`'s working tree.
///
/// # Errors
/// [`crate::Error::Io`] when the plane root cannot be read, or any store
/// error from the writer. Problems with individual files are findings.
pub fn scan(plane: &Plane, opts: ScanOptions<'_>) -> Result<ScanResult> {
    let started = now_ns();
    plane.check_root()?;
    let ctx = Ctx {
        opts,
        carve_outs: &plane.carve_outs,
        trees: Mutex::new(HashMap::new()),
        index: Mutex::new(Vec::new()),
        findings: Mutex::new(Vec::new()),
        nested_stores: Mutex::new(Vec::new()),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        hashed_files: AtomicU64::new(0),
        hashed_bytes: AtomicU64::new(0),
    };
    let root = match scan_dir(&ctx, &plane.root, &[])? {
        Some((id, _)) => id,
        None => {
            let (id, body) = Tree::default().encode_with_id();
            match opts.writer {
                Some(w) => {
                    w.add(ObjectKind::Tree, id.0, &body)?;
                }
                None => {
                    ctx.trees.lock().expect("tree map lock").insert(id, Tree::default());
                }
            }
            id
        }
    };
    let mut entries: Vec<IndexEntry> = ctx
        .index
        .into_inner()
        .expect("index lock")
        .into_iter()
        .flatten()
        .collect();
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let mut findings = ctx.findings.into_inner().expect("findings lock");
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(ScanResult {
        root,
        trees: ctx.trees.into_inner().expect("tree map lock"),
        cache: StatCache {
            scan_started_ns: started,
            entries,
        },
        findings,
        files: ctx.files.into_inner(),
        bytes: ctx.bytes.into_inner(),
        hashed_files: ctx.hashed_files.into_inner(),
        hashed_bytes: ctx.hashed_bytes.into_inner(),
        nested_stores: {
            let mut v = ctx.nested_stores.into_inner().expect("nested store list lock");
            v.sort();
            v
        },
    })
}

// Boxing the large variant would cost one allocation per file; the Vec holding
// these lives for one directory only.
#[allow(clippy::large_enum_variant)]
enum Child {
    /// The entry, its stat-cache row, and whether the file was read and hashed.
    Entry(TreeEntry, Option<IndexEntry>, bool),
    Skip,
}

/// Scans one directory; `None` when it holds no files (not recorded).
fn scan_dir(ctx: &Ctx, abs: &Path, rel: &[u8]) -> Result<Option<(TreeId, u64)>> {
    crate::interrupt::check()?;
    let rd = match fs::read_dir(abs) {
        Ok(rd) => rd,
        // The plane root itself must be readable: that is an error, not a finding.
        Err(e) if rel.is_empty() => return Err(e).at(abs),
        Err(e) => {
            finding(
                ctx,
                code::UNREADABLE,
                rel.to_vec(),
                format!("directory cannot be read: {e}"),
            );
            return Ok(None);
        }
    };
    let mut names: Vec<(Vec<u8>, fs::FileType, fs::DirEntry)> = Vec::new();
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                finding(
                    ctx,
                    code::UNREADABLE,
                    rel.to_vec(),
                    format!("directory listing failed: {e}"),
                );
                return Ok(None);
            }
        };
        let name = std::os::unix::ffi::OsStringExt::into_vec(entry.file_name());
        match entry.file_type() {
            Ok(t) => names.push((name, t, entry)),
            Err(e) => finding(
                ctx,
                code::UNREADABLE,
                join_rel(rel, &name),
                format!("cannot be inspected: {e}"),
            ),
        }
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // A directory holding another store (`.cp/FORMAT`) belongs to that store.
    if !rel.is_empty()
        && names.iter().any(|(n, t, _)| n == b".cp" && t.is_dir())
        && abs.join(".cp").join("FORMAT").is_file()
    {
        ctx.nested_stores
            .lock()
            .expect("nested store list lock")
            .push(rel.to_vec());
        return Ok(None);
    }
    // The cache entries under this directory form one contiguous run of the sorted cache.
    let cached: &[IndexEntry] = ctx.opts.cache.map_or(&[], |c| c.under(rel));
    let children: Vec<Child> = names
        .into_par_iter()
        .map(|(name, ft, entry)| scan_child(ctx, abs, rel, cached, name, ft, entry))
        .collect::<Result<_>>()?;
    let mut tree = Tree::default();
    let mut dir_bytes = 0u64;
    let mut index = Vec::new();
    for c in children {
        if let Child::Entry(e, ie, hashed) = c {
            dir_bytes += e.size;
            tree.entries.push(e);
            match ctx.opts.record {
                Record::All => index.extend(ie),
                Record::Hashed if hashed => index.extend(ie),
                _ => {}
            }
        }
    }
    if !index.is_empty() {
        ctx.index.lock().expect("index lock").push(index);
    }
    if tree.entries.is_empty() {
        return Ok(None);
    }
    let (id, body) = tree.encode_with_id();
    // With a writer the trees are in the store; only a scan that stores nothing keeps them.
    match ctx.opts.writer {
        Some(w) => {
            w.add(ObjectKind::Tree, id.0, &body)?;
        }
        None => {
            ctx.trees.lock().expect("tree map lock").insert(id, tree);
        }
    }
    Ok(Some((id, dir_bytes)))
}

fn finding(ctx: &Ctx, code: &'static str, path: Vec<u8>, message: String) {
    ctx.findings
        .lock()
        .expect("findings lock")
        .push(Finding::new(code, path, message));
}

fn scan_child(
    ctx: &Ctx,
    dir_abs: &Path,
    dir_rel: &[u8],
    cached: &[IndexEntry],
    name: Vec<u8>,
    ft: fs::FileType,
    entry: fs::DirEntry,
) -> Result<Child> {
    let rel = join_rel(dir_rel, &name);
    let abs: PathBuf = dir_abs.join(std::ffi::OsStr::from_bytes(&name));
    // Another plane's root (whatever it is now, even a symlink) is not this plane's.
    if ctx.carve_outs.binary_search(&rel).is_ok() {
        return Ok(Child::Skip);
    }
    if ft.is_dir() {
        return Ok(match scan_dir(ctx, &abs, &rel)? {
            Some((id, size)) => Child::Entry(
                TreeEntry {
                    name,
                    kind: EntryKind::Dir,
                    id: id.0,
                    size,
                    owner: String::new(),
                },
                None,
                false,
            ),
            None => Child::Skip,
        });
    }
    if ft.is_symlink() {
        let (target, meta) = match fs::read_link(&abs).and_then(|t| Ok((t, entry.metadata()?))) {
            Ok(x) => x,
            Err(e) => {
                finding(ctx, code::UNREADABLE, rel, format!("symlink cannot be read: {e}"));
                return Ok(Child::Skip);
            }
        };
        let bytes = target.as_os_str().as_bytes();
        let id = ObjectId(*blake3::hash(bytes).as_bytes());
        if let Some(w) = ctx.opts.writer {
            w.add(ObjectKind::Blob, id, bytes)?;
        }
        ctx.files.fetch_add(1, Ordering::Relaxed);
        ctx.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        ctx.opts.progress.inc(1, 0);
        let entry = TreeEntry {
            name,
            kind: EntryKind::Symlink,
            id,
            size: bytes.len() as u64,
            owner: String::new(),
        };
        let ie = IndexEntry {
            path: rel,
            kind: EntryKind::Symlink,
            id,
            stat: Stat::from_metadata(&meta),
        };
        return Ok(Child::Entry(entry, Some(ie), false));
    }
    if !ft.is_file() {
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_char_device() {
            "a character device"
        } else {
            "not a regular file, directory or symlink"
        };
        finding(
            ctx,
            code::SPECIAL_FILE,
            rel,
            format!("is {what}; cplane stores only files, directories and symlinks: move it out of the plane"),
        );
        return Ok(Child::Skip);
    }
    // Regular file: the stat cache first, then a read.
    // `DirEntry::metadata` is an fstatat on the open directory: no path walk.
    let hit = match ctx.opts.cache {
        Some(cache) => match entry.metadata() {
            Ok(m) => {
                let stat = Stat::from_metadata(&m);
                cache.lookup_in(cached, &rel, &stat).map(|(id, _)| (id, stat))
            }
            Err(_) => None,
        },
        None => None,
    };
    drop(entry);
    let hashed = hit.is_none();
    let (id, stat) = match hit {
        Some(hit) => hit,
        None => match hash_file(&abs, ctx.opts.writer) {
            Ok((id, stat)) => {
                ctx.hashed_files.fetch_add(1, Ordering::Relaxed);
                ctx.hashed_bytes.fetch_add(stat.size, Ordering::Relaxed);
                (id, stat)
            }
            Err(HashProblem::Store(e)) => return Err(e),
            Err(HashProblem::Unreadable(e)) => {
                finding(ctx, code::UNREADABLE, rel, format!("cannot be read: {e}"));
                return Ok(Child::Skip);
            }
            Err(HashProblem::Changed) => {
                finding(
                    ctx,
                    code::CHANGED_WHILE_HASHING,
                    rel,
                    "kept changing while it was hashed; stop the writer and try again".into(),
                );
                return Ok(Child::Skip);
            }
            Err(HashProblem::NotRegular) => {
                finding(
                    ctx,
                    code::UNREADABLE,
                    rel,
                    "was replaced by a non-file while it was scanned; try again".into(),
                );
                return Ok(Child::Skip);
            }
        },
    };
    let kind = EntryKind::for_file_mode(stat.mode);
    ctx.files.fetch_add(1, Ordering::Relaxed);
    ctx.bytes.fetch_add(stat.size, Ordering::Relaxed);
    ctx.opts.progress.inc(1, stat.size);
    Ok(Child::Entry(
        TreeEntry {
            name,
            kind,
            id,
            size: stat.size,
            owner: String::new(),
        },
        Some(IndexEntry {
            path: rel,
            kind,
            id,
            stat,
        }),
        hashed,
    ))
}
