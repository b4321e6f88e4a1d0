//! Staging: every file a checkout will write is extracted from the store and
//! verified before the journal is written, so a corrupt object stops the
//! checkout before anything in the plane changes.
//!
//! A file is staged as an unnamed `O_TMPFILE` in the directory it will land
//! in (or the nearest existing ancestor: same filesystem, so it can be linked
//! there even when that directory is another mount). It has no name until
//! the apply step links it in, so a crash leaves nothing to clean up and no
//! scan ever sees a half-written file. When more files are to be written
//! than descriptors may be held open ([`fd_budget`]), the rest are only
//! verified here and staged in rounds as the apply step reaches them. When
//! the filesystem has no `O_TMPFILE`, the blob is only verified here and
//! extracted at apply time under the reserved name
//! [`crate::scope::STAGING_NAME`].
//!
//! Runs of zeros are written as holes ([`SparseWriter`]), so a sparse disk
//! image comes back sparse.

use crate::error::Result;
use crate::fsys::{self, Dir, EntryType};
use crate::id::ObjectId;
use crate::object::{EntryKind, Meta};
use crate::path::RelPath;
use crate::scope::{Scope, WalkStop};
use crate::store::Store;
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// Blocks of this many bytes that are all zero become holes.
pub const HOLE_BLOCK: usize = 4096;

/// A writer that turns whole zero blocks into holes (seeks instead of
/// writes) and writes runs of other blocks in one `pwrite`. Call
/// [`SparseWriter::finish`] to write what is pending and set the final length.
pub struct SparseWriter<'f> {
    file: &'f File,
    /// Offset of the next byte handed to `write`.
    pos: u64,
    /// The file's length so far (the end of the last `pwrite`).
    written: u64,
    /// Bytes not yet written, starting at `pos - pending.len()`.
    pending: Vec<u8>,
}

/// Pending bytes are written once this many have gathered.
const WRITE_CHUNK: usize = 1 << 20;

impl<'f> SparseWriter<'f> {
    /// Writes `file` from offset 0; it must be empty.
    pub fn new(file: &'f File) -> Self {
        SparseWriter {
            file,
            pos: 0,
            written: 0,
            pending: Vec::new(),
        }
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let at = self.pos - self.pending.len() as u64;
            self.file.write_all_at(&self.pending, at)?;
            self.written = self.pos;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes what is pending and sets the file's length to what was written
    /// (trailing holes included). Returns the length.
    ///
    /// # Errors
    /// The `pwrite` or `ftruncate` error.
    pub fn finish(mut self) -> io::Result<u64> {
        self.flush_pending()?;
        // Only a trailing hole (or an empty file) needs the length set.
        if self.written != self.pos || self.pos == 0 {
            self.file.set_len(self.pos)?;
        }
        Ok(self.pos)
    }
}

fn all_zero(b: &[u8]) -> bool {
    let mut words = b.chunks_exact(8);
    words.all(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) == 0) && words.remainder().iter().all(|&x| x == 0)
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut off = 0usize;
        while off < buf.len() {
            // Up to the next block boundary of the file offset.
            let in_block = (self.pos % HOLE_BLOCK as u64) as usize;
            let n = (HOLE_BLOCK - in_block).min(buf.len() - off);
            let piece = &buf[off..off + n];
            if n == HOLE_BLOCK && all_zero(piece) {
                // A hole: write what came before it, then skip.
                self.flush_pending()?;
            } else {
                self.pending.extend_from_slice(piece);
            }
            self.pos += n as u64;
            off += n;
            if self.pending.len() >= WRITE_CHUNK {
                self.flush_pending()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

/// How many staged files may hold a descriptor at once: the soft limit
/// (raised to the hard limit first) minus a reserve for everything else.
/// Debug builds take `CPLANE_TEST_FD_BUDGET` instead, so tests can check out
/// more files than the budget (staged in rounds) without thousands of files.
pub fn fd_budget() -> usize {
    let test = cfg!(debug_assertions)
        .then(|| std::env::var("CPLANE_TEST_FD_BUDGET").ok()?.parse().ok())
        .flatten();
    test.unwrap_or_else(|| (fsys::raise_fd_limit().saturating_sub(256) as usize).min(1 << 16))
}

/// A problem putting back a path's owner or mode that does not stop the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProblem {
    /// The path.
    pub path: RelPath,
    /// "owner 0:42" or "mode 4755".
    pub what: String,
    /// The error, e.g. "Operation not permitted".
    pub error: String,
}

/// Extracts blob `id` (verified) into `file` from offset 0, sparse; flushes
/// its data when `sync` (staged files are flushed together, by `syncfs`).
///
/// # Errors
/// Store damage when the blob is corrupt; [`crate::Error::Io`] naming `path` (plane root + rel).
pub fn extract_into(store: &Store, scope: &Scope, rel: &RelPath, id: &ObjectId, file: &File, sync: bool) -> Result<()> {
    let shown = scope.shown(rel);
    let mut w = SparseWriter::new(file);
    store.read_blob_to(id, &mut w, &shown)?;
    w.finish().map_err(|e| scope.io_error(rel, e))?;
    if sync {
        file.sync_data().map_err(|e| scope.io_error(rel, e))?;
    }
    Ok(())
}

impl MetaProblem {
    fn new(path: &RelPath, what: String, error: impl ToString) -> Self {
        MetaProblem {
            path: path.clone(),
            what,
            error: error.to_string(),
        }
    }
}

/// What [`put_meta`] sets the owner and mode of: an open file, or a name in
/// a directory of the given type (never followed).
pub(super) enum MetaTarget<'a> {
    /// An open regular file.
    File(&'a File),
    /// `name` in `dir`, which must still be of type `kind`.
    Name {
        dir: &'a Dir,
        name: &'a [u8],
        kind: EntryType,
    },
}

impl MetaTarget<'_> {
    fn stat(&self) -> io::Result<fsys::Stat> {
        match self {
            MetaTarget::File(f) => fsys::fstat(f),
            MetaTarget::Name { dir, name, .. } => dir.stat(name),
        }
    }

    fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        match self {
            MetaTarget::File(f) => fsys::fchown(f, uid, gid),
            MetaTarget::Name { dir, name, .. } => dir.chown(name, uid, gid),
        }
    }

    fn chmod(&self, mode: u32) -> io::Result<()> {
        match self {
            MetaTarget::File(f) => fsys::fchmod(f, mode),
            MetaTarget::Name { dir, name, kind } => dir.chmod(name, mode, *kind),
        }
    }
}

/// Gives `target` (whose stat is `st` now) the owner, then the mode, of
/// `meta` — chown first, since it clears setuid/setgid; a symlink gets only
/// its owner. What could not be set is added to `problems`. When a file's
/// owner is not the recorded one (chown not permitted), setuid and setgid
/// are left off, as `tar` and `rsync` do: a set-id file of the wrong owner
/// would hand its privileges to whoever ran the checkout. Returns whether
/// anything was changed.
///
/// # Errors
/// The `stat` error when the target cannot be inspected again after a chown.
pub(super) fn put_meta(
    target: &MetaTarget<'_>,
    st: &fsys::Stat,
    rel: &RelPath,
    kind: EntryKind,
    meta: &Meta,
    problems: &mut Vec<MetaProblem>,
) -> io::Result<bool> {
    let mut changed = false;
    let mut st = *st;
    if meta.owner_known() && (st.st_uid, st.st_gid) != (meta.uid, meta.gid) {
        match target.chown(meta.uid, meta.gid) {
            Ok(()) => {
                changed = true;
                st = target.stat()?; // chown may have cleared setuid/setgid
            }
            Err(e) => problems.push(MetaProblem::new(rel, format!("owner {}", meta.owner_string()), e)),
        }
    }
    if kind == EntryKind::Symlink {
        return Ok(changed);
    }
    let cur = st.st_mode as u32;
    let mut want = want_mode(cur, meta);
    if kind == EntryKind::File && want & 0o6000 != 0 && !owner_is(meta, st.st_uid, st.st_gid) {
        want &= !0o6000;
        let what = format!(
            "mode {} (setuid/setgid left off: the owner is not {})",
            meta.mode_string(),
            meta.owner_string()
        );
        problems.push(MetaProblem::new(rel, what, "owner not restored"));
    }
    if want != cur & Meta::PERM_MASK {
        match target.chmod(want) {
            Ok(()) => changed = true,
            Err(e) => problems.push(MetaProblem::new(rel, format!("mode {}", meta.mode_string()), e)),
        }
    }
    Ok(changed)
}

/// [`put_meta`] for an open regular file (staged or being extracted).
///
/// # Errors
/// The `fstat` error.
pub fn set_file_meta(file: &File, rel: &RelPath, meta: &Meta, problems: &mut Vec<MetaProblem>) -> io::Result<()> {
    let st = fsys::fstat(file)?;
    put_meta(&MetaTarget::File(file), &st, rel, EntryKind::File, meta, problems).map(|_| ())
}

/// True when the recorded owner is known and is `uid:gid`.
fn owner_is(meta: &Meta, uid: u32, gid: u32) -> bool {
    meta.owner_known() && (meta.uid, meta.gid) == (uid, gid)
}

/// The permission bits to set on something whose current `st_mode` is `cur`:
/// the recorded bits, or for a format-1 entry (only the execute bit known)
/// the current bits with execute added where read is set, or removed.
pub(super) fn want_mode(cur: u32, meta: &Meta) -> u32 {
    let cur = cur & Meta::PERM_MASK;
    if meta.is_legacy_mode() {
        if meta.is_executable() {
            cur | ((cur & 0o444) >> 2) | 0o100
        } else {
            cur & !0o111
        }
    } else {
        meta.perm()
    }
}

/// The mode to create something with: `private` until its recorded mode is
/// set; for a format-1 entry (mode unknown) `legacy` minus the umask, as
/// format 1 created files (0666) and directories (0777).
pub fn create_mode(meta: &Meta, private: u32, legacy: u32) -> u32 {
    if meta.is_legacy_mode() { legacy } else { private }
}

/// A file staged for one write: unnamed, complete, owner and mode set (its data is flushed with the others, by the checkout).
#[derive(Debug)]
pub struct Staged {
    /// The unnamed file.
    pub file: File,
    /// Its `fstat` once written and its mode set, when the checkout records
    /// stat rows (an install, whose later scans in the process trust them).
    pub stat: Option<crate::store::index::Stat>,
    /// The filesystem it is on (`st_dev`), for the flush.
    pub dev: u64,
}

/// Stages blob `id` for `rel` as an unnamed file in `dir`, the nearest
/// existing ancestor directory (opened here, [`nearest_dir`], when `None`), from `known` (its bytes, already checked against
/// `id`) when given, else from the store; with `record`, its `fstat` is kept
/// for a stat row ([`Staged::stat`]). `Ok(None)` when that filesystem has no
/// `O_TMPFILE`.
///
/// # Errors
/// Store damage; [`crate::Error::Io`] naming `rel` (disk full, ...).
#[allow(clippy::too_many_arguments)]
pub fn stage_file(
    store: &Store,
    scope: &Scope,
    dir: Option<&Dir>,
    rel: &RelPath,
    id: &ObjectId,
    known: Option<&[u8]>,
    record: bool,
    meta: &Meta,
    problems: &mut Vec<MetaProblem>,
) -> Result<Option<Staged>> {
    let opened;
    let dir = match dir {
        Some(d) => d,
        None => {
            opened = nearest_dir(scope, rel, false)?;
            &opened
        }
    };
    // An unnamed file is reachable by no name while it is written: it is
    // created with its recorded permission bits (less the umask), which
    // usually saves the chmod. Set-id bits wait for the owner (put_meta).
    let file = match dir.tmpfile(create_mode(meta, meta.perm() & 0o777, 0o666)) {
        Ok(f) => f,
        // No O_TMPFILE on this filesystem (each kernel says so its own way).
        Err(e)
            if [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL]
                .iter()
                .any(|&n| fsys::is_errno(&e, n)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(scope.io_error(rel, e)),
    };
    // The bytes written are the blob's either way (known bytes were checked
    // against the manifest, store bytes are verified as they are read).
    let st = fill(scope, rel, &file, meta, problems, |f| match known {
        Some(bytes) => write_known(scope, rel, f, bytes),
        None => extract_into(store, scope, rel, id, f, false),
    })?;
    Ok(Some(Staged {
        file,
        stat: record.then(|| crate::store::index::Stat::from_raw(&st)),
        dev: st.st_dev as u64,
    }))
}

/// Fills `file` (new and empty), for `rel`, with `write`, then gives it
/// `meta`; returns its `fstat` as it is then (taken again only when the
/// metadata changed something).
///
/// # Errors
/// What `write` returns; [`crate::Error::Io`] naming `rel`.
pub(super) fn fill(
    scope: &Scope,
    rel: &RelPath,
    file: &File,
    meta: &Meta,
    problems: &mut Vec<MetaProblem>,
    write: impl FnOnce(&File) -> Result<()>,
) -> Result<fsys::Stat> {
    write(file)?;
    let st = fsys::fstat(file).map_err(|e| scope.io_error(rel, e))?;
    let changed = put_meta(&MetaTarget::File(file), &st, rel, EntryKind::File, meta, problems)
        .map_err(|e| scope.io_error(rel, e))?;
    if changed {
        fsys::fstat(file).map_err(|e| scope.io_error(rel, e))
    } else {
        Ok(st)
    }
}

/// Writes `bytes` (checked by the caller against their blob id) into
/// `file`, sparse.
///
/// # Errors
/// [`crate::Error::Io`] naming `rel`.
pub(super) fn write_known(scope: &Scope, rel: &RelPath, file: &File, bytes: &[u8]) -> Result<()> {
    let mut w = SparseWriter::new(file);
    w.write_all(bytes)
        .and_then(|()| w.finish())
        .map(|_| ())
        .map_err(|e| scope.io_error(rel, e))
}

/// The deepest existing directory on the way to `rel`'s parent (never
/// through a symlink). With `strict`, a symlink or a file on the way is an
/// error; without, the walk stops there (staging: the checkout may be about
/// to replace it with a directory).
///
/// # Errors
/// [`crate::Error::UnsafePath`] (strict) when a component is a symlink or a file.
pub fn nearest_dir(scope: &Scope, rel: &RelPath, strict: bool) -> Result<Dir> {
    let parent = rel.parent().unwrap_or_default();
    // Usually the parent exists: one openat2.
    if let Ok(d) = scope.open_dir(&parent) {
        return Ok(d);
    }
    match scope.walk(&parent)? {
        (_, _, Some(WalkStop::NotADirectory(through))) if strict => Err(crate::Error::UnsafePath {
            path: rel.display(),
            through: through.display(),
        }),
        (dir, _, _) => Ok(dir),
    }
}

/// Verifies blob `id` without keeping its bytes.
///
/// # Errors
/// Store damage.
pub fn verify_blob(store: &Store, id: &ObjectId) -> Result<()> {
    store.read_blob_to(id, &mut io::sink(), store.dir()).map(|_| ())
}
