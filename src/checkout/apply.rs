//! Applying a journal's operations to the working tree through the
//! filesystem seam. Every step is idempotent, so replaying a journal after a
//! crash at any point converges to the same tree.
//!
//! Nothing is written or removed through a path component that is not a real
//! directory: parents are opened one component at a time without following
//! symlinks ([`crate::scope::Scope::open_dir`]). A file reaches its name in
//! one `renameat` from the reserved staging name, so no reader ever sees it
//! half written, and an error always names the user's path.

use super::CheckoutHooks;
use super::journal::Op;
use super::prebuilt::Built;
use super::stage::{self, MetaProblem, MetaTarget, Staged};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::fsys::{self, Dir, EntryType};
use crate::id::ObjectId;
use crate::object::{EntryKind, Meta, blob_id};
use crate::path::RelPath;
use crate::scope::{STAGING_NAME, Scope, WalkStop};
use crate::store::Store;
use crate::store::index::Stat;
use rustix::io::Errno;
use std::collections::{BTreeSet, HashMap};

/// What the rescue checkpoint saw at the paths a checkout clobbers, so that
/// nothing changed since (by a process other than cplane) is overwritten or
/// removed unseen: for the path of each `Write`/`Link`, the stat of the file
/// or symlink it replaces (`None`: nothing was there); for each `Remove`,
/// the stat of what it removes. Paths without an entry are not checked. A
/// path that changed is left as it is and reported — the same end state as
/// if the other process had written it just after the checkout.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    /// Before a `Write` or `Link` of the path.
    pub write: HashMap<RelPath, Option<Seen>>,
    /// Before a `Remove` of the path.
    pub remove: HashMap<RelPath, Seen>,
    /// The `to` of a restore's `Link` to a path outside the restored ones
    /// (hashed when planned): it must still be that file.
    pub link_to: HashMap<RelPath, Seen>,
}

/// What the rescue (or the planning) saw of a file or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its stat then.
    pub stat: Stat,
    /// Its blob id then.
    pub id: ObjectId,
    /// Stamped too close to when it was read for the stat to vouch for the
    /// bytes (a same-size rewrite in the same clock tick keeps size and
    /// mtime): re-hash before clobbering.
    pub racy: bool,
}

/// True when clobbering `name` in `dir` loses nothing the rescue does not
/// hold: it is gone (nothing to lose), or it is the file the rescue saw —
/// same inode, type, size and mtime, and for a racy row the same bytes.
/// (Not ctime: this checkout's own renames change a hard-linked inode's link
/// count, hence its ctime; and a mode or owner change loses no bytes.) False
/// when something stands there that the rescue did not see, or whose bytes
/// may have changed since.
fn unchanged(scope: &Scope, dir: &Dir, rel: &RelPath, name: &[u8], want: &Option<Seen>) -> bool {
    match (dir.stat(name), want) {
        (Err(e), _) => fsys::is_vanished(&e),
        (Ok(st), Some(w)) => {
            let now = Stat::from_raw(&st);
            let same = now.ino == w.stat.ino
                && now.size == w.stat.size
                && now.mtime_ns == w.stat.mtime_ns
                && now.mode & 0o170000 == w.stat.mode & 0o170000;
            if !same || !w.racy {
                return same;
            }
            holds_blob(scope, dir, rel, name, EntryType::from_mode(st.st_mode as u32), &w.id)
        }
        (Ok(_), None) => false,
    }
}

/// What applying a journal did: a checkout's, or the replay of an interrupted one.
#[derive(Debug, Default)]
pub struct Applied {
    /// Files, symlinks and links put in place.
    pub written: u64,
    /// Files, symlinks and directories removed.
    pub removed: u64,
    /// Directories created.
    pub created_dirs: u64,
    /// Paths whose mode or owner was set (without rewriting them).
    pub meta_set: u64,
    /// Owner or mode changes the process was not allowed to make.
    pub problems: Vec<MetaProblem>,
    /// Directories the target lacks that were left because something not in
    /// the plane's state (a carve-out, a file created meanwhile) is inside.
    pub left_in_place: Vec<RelPath>,
    /// Directories whose entries changed (for the final flush).
    pub(super) touched_dirs: BTreeSet<RelPath>,
    /// Files were put in place whose data is not flushed yet (staged after
    /// the journal): the final flush must be a `syncfs`.
    pub(super) unsynced_data: bool,
    /// Paths left alone because they changed after the rescue checkpoint was
    /// sealed (another process wrote them meanwhile): never overwritten unseen.
    /// Operations under such a path are skipped too.
    pub changed_meanwhile: Vec<RelPath>,
    /// Stat-cache rows of the staged files put in place: each one's `fstat`
    /// right after, when its size, mtime, inode and mode are still those it
    /// was staged with and it was staged more than the racy margin before it
    /// got a name (so no write by another process can hide behind an equal
    /// mtime). For [`crate::store::Store::note_written`]; filled only for a
    /// checkout given [`super::Request::known`] bytes (an install).
    pub written_rows: Vec<crate::store::index::IndexEntry>,
}

pub(super) struct Applier<'a> {
    pub store: &'a Store,
    pub scope: &'a Scope,
    pub staged: HashMap<RelPath, Staged>,
    pub hooks: &'a dyn CheckoutHooks,
    pub ctl: Control<'a>,
    pub out: Applied,
    /// What the rescue saw; `None` when replaying a journal after a crash.
    expected: Option<Expected>,
    /// Paths left alone (changed meanwhile): later operations at or under them are skipped.
    skipped: Vec<RelPath>,
    cache: Option<(RelPath, Dir)>,
    /// Fill [`Applied::written_rows`] (one `fstat` per staged file put in
    /// place); only a caller that will scan again in this process wants them.
    pub record_rows: bool,
    /// A replay after a failed flush ([`super::UNFLUSHED`]): every file is
    /// written again (and flushed) even when it reads back whole.
    pub rewrite_all: bool,
    /// Journal operations from this index on whose files are not staged yet
    /// (more files than descriptors may be held open): when the first of
    /// them is reached, the next round of files up to the budget is staged
    /// in parallel; their data is flushed by one `syncfs` at the end, so a
    /// large checkout pays one flush instead of one `fdatasync` per file.
    /// (Set with [`Applier::stage_in_rounds`]; the blobs were verified
    /// before the journal.) `usize::MAX`: no rounds (a replay).
    unstaged_from: usize,
    budget: usize,
    known: Option<&'a HashMap<ObjectId, &'a [u8]>>,
    /// Directories built ahead ([`super::Prebuilt`]) that fit the plan,
    /// by path, each with its files: renamed into place at their `MakeDir`.
    pub prebuilt: HashMap<RelPath, (super::Prebuilt, HashMap<RelPath, Built>)>,
    /// Files of prebuilt directories put in place, each with the time just
    /// before its directory was renamed: their `Write` only counts them.
    placed: HashMap<RelPath, (Built, i64)>,
}

impl<'a> Applier<'a> {
    pub fn new(
        store: &'a Store,
        scope: &'a Scope,
        staged: HashMap<RelPath, Staged>,
        expected: Option<Expected>,
        hooks: &'a dyn CheckoutHooks,
        ctl: Control<'a>,
    ) -> Self {
        Applier {
            store,
            scope,
            staged,
            hooks,
            ctl,
            out: Applied::default(),
            expected,
            skipped: Vec::new(),
            cache: None,
            record_rows: false,
            rewrite_all: false,
            unstaged_from: usize::MAX,
            budget: 0,
            known: None,
            prebuilt: HashMap::new(),
            placed: HashMap::new(),
        }
    }

    /// Stages the files of the journal's writes from operation `from` on in
    /// rounds that fit `budget` descriptors, as they are reached, from
    /// `known` bytes when given (see [`Applier::unstaged_from`]).
    pub fn stage_in_rounds(&mut self, from: usize, budget: usize, known: Option<&'a HashMap<ObjectId, &'a [u8]>>) {
        self.unstaged_from = from;
        self.budget = budget;
        self.known = known;
    }

    /// Stages the next round: the writes of `ops` from `i` on, up to the
    /// budget's worth of descriptors still free, and marks their data as not
    /// yet flushed ([`Applied::unsynced_data`]).
    fn stage_next_round(&mut self, ops: &[Op], i: usize) -> Result<()> {
        let room = (self.budget - self.budget / 8).saturating_sub(self.staged.len()).max(1);
        let round: Vec<(usize, &Op)> = ops[i..]
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(op, Op::Write { .. }) && !self.is_prebuilt(op.path()))
            .take(room)
            .collect();
        self.unstaged_from = round.last().map_or(ops.len(), |(k, _)| i + k + 1);
        let writes: Vec<&Op> = round.into_iter().map(|(_, op)| op).collect();
        let (staged, problems) = super::stage_round(
            self.store,
            self.scope,
            &writes,
            self.known,
            self.budget,
            false,
            self.ctl,
        )?;
        // Their data is flushed by the `syncfs` before the journal is deleted
        // ([`sync_dirs`]); a crash before that leaves the journal, whose
        // replay re-hashes every written file and rewrites what is not whole.
        self.out.unsynced_data |= !staged.is_empty();
        self.out.problems.extend(problems);
        self.staged.extend(staged);
        Ok(())
    }

    /// Whether the file at `p` comes with a prebuilt directory (placed or not yet).
    fn is_prebuilt(&self, p: &RelPath) -> bool {
        self.placed.contains_key(p) || self.prebuilt.values().any(|(_, files)| files.contains_key(p))
    }

    /// Puts the prebuilt directory for `path` in place, if there is one:
    /// one rename that never replaces. `false` when there is none or the
    /// rename fails (something is at `path` now, ...): the directory is
    /// dropped and its files are written one by one.
    fn place_prebuilt(&mut self, path: &RelPath, name: &[u8]) -> Result<bool> {
        let Some((mut built, files)) = self.prebuilt.remove(path) else {
            return Ok(false);
        };
        let dir = self.dir(&path.parent().unwrap_or_default(), true)?.expect("created");
        let before = crate::store::index::now_ns();
        if built.tmp.rename_noreplace(&built.name, dir, name).is_err() {
            return Ok(false);
        }
        built.placed = true;
        self.out.created_dirs += built.dirs_made();
        self.placed.extend(files.into_iter().map(|(p, b)| (p, (b, before))));
        Ok(true)
    }

    /// Counts the file at `path` put in place with its prebuilt directory,
    /// if it was, and records its stat-cache row (the rule of
    /// [`Applier::placed_staged`]: written more than the racy margin before
    /// its directory was renamed into place).
    fn placed_prebuilt(&mut self, path: &RelPath) -> bool {
        let Some((b, before)) = self.placed.remove(path) else {
            return false;
        };
        if self.record_rows && b.stat.mtime_ns.saturating_add(crate::hash::fresh_margin_ns()) < before {
            self.out.written_rows.push(crate::store::index::IndexEntry {
                path: path.clone(),
                kind: EntryKind::File,
                id: b.id,
                stat: b.stat,
            });
        }
        self.out.problems.extend(b.problems);
        self.out.written += 1;
        self.ctl.progress.inc(1, 0);
        true
    }

    /// Opens the directory `rel` (cached: operations come in tree order).
    /// `Ok(None)` when it is missing or not a directory and `create` is false.
    fn dir(&mut self, rel: &RelPath, create: bool) -> Result<Option<&Dir>> {
        if self.cache.as_ref().is_some_and(|(p, _)| p == rel) {
            return Ok(self.cache.as_ref().map(|(_, d)| d));
        }
        self.cache = None;
        let opened = match self.scope.open_dir(rel) {
            Ok(d) => d,
            Err(e) if fsys::is_not_a_directory(&e) => {
                if !create {
                    return Ok(None);
                }
                let through = match self.scope.walk(rel)?.2 {
                    Some(WalkStop::NotADirectory(a) | WalkStop::Missing(a)) => a,
                    None => rel.clone(),
                };
                return Err(Error::UnsafePath {
                    path: rel.display(),
                    through: through.display(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                self.make_dirs(rel)?
            }
            Err(e) => return Err(self.scope.io_error(rel, e)),
        };
        self.cache = Some((rel.clone(), opened));
        Ok(self.cache.as_ref().map(|(_, d)| d))
    }

    /// Creates `rel` and any missing ancestors (mode 0755 minus umask): only
    /// when replaying a journal after someone removed a directory meanwhile.
    fn make_dirs(&mut self, rel: &RelPath) -> Result<Dir> {
        let (mut cur, mut at, stop) = self.scope.walk(rel)?;
        match stop {
            None => return Ok(cur),
            Some(WalkStop::NotADirectory(through)) => {
                return Err(Error::UnsafePath {
                    path: rel.display(),
                    through: through.display(),
                });
            }
            Some(WalkStop::Missing(_)) => {}
        }
        for part in rel.components().skip(at.depth()) {
            cur.mkdir(part, 0o755)
                .map_err(|e| self.scope.io_error(&at.join(part), e))?;
            self.out.created_dirs += 1;
            self.out.touched_dirs.insert(at.clone());
            at = at.join(part);
            cur = cur.open_dir(part).map_err(|e| self.scope.io_error(&at, e))?;
        }
        Ok(cur)
    }

    /// True when replaying a journal after a crash (nothing known of what the rescue saw).
    fn recovering(&self) -> bool {
        self.expected.is_none()
    }

    /// Leaves `path` as it is (another process changed it) and reports it.
    fn leave(&mut self, path: &RelPath) {
        self.out.changed_meanwhile.push(path.clone());
        self.skipped.push(path.clone());
    }

    /// Carries out `ops` in order.
    pub fn run(&mut self, ops: &[Op]) -> Result<()> {
        for (i, op) in ops.iter().enumerate() {
            if self.scope.is_excluded(op.path()) {
                continue; // carved out since the journal was written: not this plane's
            }
            // Under a path left alone, or linking to one: not ours to change now.
            let under_skipped = |p: &RelPath| self.skipped.iter().any(|s| p.starts_with(s));
            if under_skipped(op.path()) || matches!(op, Op::Link { to, .. } if under_skipped(to)) {
                continue;
            }
            if i >= self.unstaged_from && matches!(op, Op::Write { .. }) {
                self.stage_next_round(ops, i)?;
            }
            match op {
                Op::Remove { path } => self.remove(path)?,
                Op::RemoveDir { path } => self.remove_dir(path)?,
                Op::MakeDir { path, meta } => self.make_dir(path, meta)?,
                Op::Write {
                    path, kind, id, meta, ..
                } => self.write(path, *kind, id, meta)?,
                Op::Link { path, to } => self.link(path, to)?,
                Op::SetMeta { path, kind, meta } => self.set_meta(path, *kind, meta)?,
            }
            if let Some(parent) = op.path().parent() {
                self.out.touched_dirs.insert(parent);
            }
            self.hooks.applied(i + 1);
        }
        Ok(())
    }

    fn remove(&mut self, path: &RelPath) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let scope = self.scope;
        let want = self.expected.as_ref().and_then(|e| e.remove.get(path).copied());
        let Some(dir) = self.dir(&path.parent().unwrap_or_default(), false)? else {
            return Ok(()); // nothing of ours can be there
        };
        if let Some(w) = want
            && !unchanged(scope, dir, path, name, &Some(w))
        {
            self.leave(path);
            return Ok(());
        }
        match dir.unlink(name) {
            Ok(()) => self.out.removed += 1,
            Err(e) if fsys::is_vanished(&e) => {}
            // A directory stands there now (a replay after a later op): leave it to later ops.
            Err(e) if fsys::is_errno(&e, Errno::ISDIR) => {}
            Err(e) => return Err(scope.io_error(path, e)),
        }
        Ok(())
    }

    fn remove_dir(&mut self, path: &RelPath) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let scope = self.scope;
        let Some(dir) = self.dir(&path.parent().unwrap_or_default(), false)? else {
            return Ok(());
        };
        if let Ok(sub) = dir.open_dir(name) {
            let _ = sub.unlink(STAGING_NAME);
        }
        match dir.rmdir(name) {
            Ok(()) => self.out.removed += 1,
            Err(e) if fsys::is_vanished(&e) => {}
            Err(e) if fsys::is_errno(&e, Errno::NOTEMPTY) || fsys::is_errno(&e, Errno::EXIST) => {
                self.out.left_in_place.push(path.clone());
            }
            Err(e) => return Err(scope.io_error(path, e)),
        }
        Ok(())
    }

    fn make_dir(&mut self, path: &RelPath, meta: &Meta) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let scope = self.scope;
        let recovering = self.recovering();
        if self.place_prebuilt(path, name)? {
            return Ok(());
        }
        let mode = stage::create_mode(meta, 0o700, 0o777);
        let dir = self.dir(&path.parent().unwrap_or_default(), true)?.expect("created");
        match dir.mkdir(name, mode) {
            Ok(()) => {
                self.out.created_dirs += 1;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match dir.stat(name) {
                    Ok(st) if EntryType::from_mode(st.st_mode as u32) == EntryType::Dir => Ok(()),
                    // A file or symlink the plan did not remove (it changed, or appeared,
                    // after the rescue): left as it is, with everything under it.
                    Ok(_) if !recovering => {
                        self.leave(path);
                        Ok(())
                    }
                    // A file or symlink stands there (a replay): it goes, the directory comes.
                    Ok(_) => {
                        dir.unlink(name).map_err(|e| scope.io_error(path, e))?;
                        dir.mkdir(name, mode).map_err(|e| scope.io_error(path, e))?;
                        self.out.created_dirs += 1;
                        Ok(())
                    }
                    Err(e) => Err(scope.io_error(path, e)),
                }
            }
            Err(e) => Err(scope.io_error(path, e)),
        }
    }

    fn write(&mut self, path: &RelPath, kind: EntryKind, id: &ObjectId, meta: &Meta) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let parent = path.parent().unwrap_or_default();
        if self.placed_prebuilt(path) {
            return Ok(());
        }
        let (store, scope) = (self.store, self.scope);
        let staged = self.staged.remove(path);
        let trust_what_is_there = self.recovering() && !self.rewrite_all;
        let want = self.expected.as_ref().and_then(|e| e.write.get(path).copied());
        let mut problems = Vec::new();
        let dir = self.dir(&parent, true)?.expect("created");
        if trust_what_is_there && already_there(scope, dir, path, name, kind, id, meta) {
            self.out.written += 1;
            return Ok(());
        }
        // Where nothing was, the name itself is the check that nothing is
        // there now: a staged file's `linkat`, or the rename that never
        // replaces (`place_new`), fails with EEXIST for anything created
        // meanwhile. No `lstat` first.
        let nothing_was = matches!(want, Some(None));
        if !nothing_was
            && let Some(w) = want
            && !unchanged(scope, dir, path, name, &w)
        {
            self.leave(path);
            return Ok(());
        }
        let before_link = crate::store::index::now_ns();
        let mut linked = false;
        // A staged file gets its name in one `linkat`: no staging name, no rename.
        if let Some(s) = staged.as_ref().filter(|_| nothing_was && kind == EntryKind::File) {
            match dir.link_tmpfile(&s.file, name) {
                Ok(()) => {
                    self.placed_staged(path, id, s, before_link, problems);
                    return Ok(());
                }
                // Created meanwhile by another process: left alone.
                Err(e) if fsys::is_errno(&e, Errno::EXIST) => {
                    self.leave(path);
                    return Ok(());
                }
                // Another filesystem now, or no linkat here: the general way below.
                Err(_) => {}
            }
        }
        let _ = dir.unlink(STAGING_NAME);
        let staged_here: Result<()> = (|| {
            if kind == EntryKind::Symlink {
                let target = store.read(id, crate::object::ObjectKind::Blob)?;
                dir.symlink(&target, STAGING_NAME)
                    .map_err(|e| scope.io_error(path, e))?;
                let link = MetaTarget::Name {
                    dir,
                    name: STAGING_NAME,
                    kind: EntryType::Symlink,
                };
                let st = dir.stat(STAGING_NAME).map_err(|e| scope.io_error(path, e))?;
                stage::put_meta(&link, &st, path, kind, meta, &mut problems).map_err(|e| scope.io_error(path, e))?;
                return Ok(());
            }
            if let Some(s) = &staged {
                match dir.link_tmpfile(&s.file, STAGING_NAME) {
                    Ok(()) => {
                        linked = true;
                        return Ok(());
                    }
                    // Another filesystem now (a mount appeared): extract here instead.
                    Err(e) if fsys::is_errno(&e, Errno::XDEV) => {}
                    Err(e) => return Err(scope.io_error(path, e)),
                }
            }
            let f = dir
                .create_new(STAGING_NAME, stage::create_mode(meta, 0o600, 0o666))
                .map_err(|e| scope.io_error(path, e))?;
            stage::extract_into(store, scope, path, id, &f, true)?;
            stage::set_file_meta(&f, path, meta, &mut problems).map_err(|e| scope.io_error(path, e))
        })();
        let placed = staged_here.and_then(|()| match nothing_was {
            true => place_new(scope, dir, path, name),
            false => place(scope, dir, path, name),
        });
        match placed {
            Ok(true) => {}
            Ok(false) => {
                self.leave(path);
                return Ok(());
            }
            Err(e) => {
                let _ = dir.unlink(STAGING_NAME);
                return Err(e);
            }
        }
        match staged.as_ref().filter(|_| linked) {
            Some(s) => self.placed_staged(path, id, s, before_link, problems),
            None => {
                self.out.problems.extend(problems);
                self.out.written += 1;
                self.ctl.progress.inc(1, 0);
            }
        }
        Ok(())
    }

    /// Counts a staged file put in place at `path` (linked at or after
    /// `before_link`), and records its stat-cache row (see
    /// [`Applied::written_rows`]).
    fn placed_staged(
        &mut self,
        path: &RelPath,
        id: &ObjectId,
        s: &Staged,
        before_link: i64,
        problems: Vec<MetaProblem>,
    ) {
        if self.record_rows
            && let Some(staged) = s.stat
            && staged.mtime_ns.saturating_add(crate::hash::fresh_margin_ns()) < before_link
            && let Ok(st) = fsys::fstat(&s.file)
        {
            let now = crate::store::index::Stat::from_raw(&st);
            if (now.size, now.mtime_ns, now.ino, now.mode) == (staged.size, staged.mtime_ns, staged.ino, staged.mode) {
                self.out.written_rows.push(crate::store::index::IndexEntry {
                    path: path.clone(),
                    kind: EntryKind::File,
                    id: *id,
                    stat: now,
                });
            }
        }
        self.out.problems.extend(problems);
        self.out.written += 1;
        self.ctl.progress.inc(1, 0);
    }

    fn link(&mut self, path: &RelPath, to: &RelPath) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let to_name = to.file_name().expect("ops never name the root");
        let scope = self.scope;
        let want = self.expected.as_ref().and_then(|e| e.write.get(path).copied());
        let to_want = self.expected.as_ref().and_then(|e| e.link_to.get(to).copied());
        // The file to link to must still be a regular file (and, when it was found
        // right at planning, still that file): another process may have removed or
        // replaced it since, and a journal replay must never stop at it for good.
        let to_dir = match scope.open_dir(&to.parent().unwrap_or_default()) {
            Ok(d) => d,
            Err(e) if fsys::is_vanished(&e) || fsys::is_not_a_directory(&e) => {
                self.leave(path);
                return Ok(());
            }
            Err(e) => return Err(scope.io_error(to, e)),
        };
        let to_st = match to_dir.stat(to_name) {
            Ok(st) if EntryType::from_mode(st.st_mode as u32) == EntryType::File => st,
            Ok(_) => {
                self.leave(path);
                return Ok(());
            }
            Err(e) if fsys::is_vanished(&e) => {
                self.leave(path);
                return Ok(());
            }
            Err(e) => return Err(scope.io_error(to, e)),
        };
        if let Some(w) = to_want
            && !unchanged(scope, &to_dir, to, to_name, &Some(w))
        {
            self.leave(path);
            return Ok(());
        }
        let dir = self.dir(&path.parent().unwrap_or_default(), true)?.expect("created");
        if let Ok(a) = dir.stat(name)
            && (a.st_dev, a.st_ino) == (to_st.st_dev, to_st.st_ino)
        {
            self.out.written += 1;
            return Ok(());
        }
        if let Some(w) = want
            && !unchanged(scope, dir, path, name, &w)
        {
            self.leave(path);
            return Ok(());
        }
        let _ = dir.unlink(STAGING_NAME);
        let placed = match dir.hard_link(&to_dir, to_name, STAGING_NAME) {
            Ok(()) => place(scope, dir, path, name),
            // Gone since the stat: as if it had been gone before.
            Err(e) if fsys::is_vanished(&e) => Ok(false),
            Err(e) => Err(scope.io_error(path, e)),
        };
        match placed {
            Ok(true) => {
                self.out.written += 1;
                Ok(())
            }
            Ok(false) => {
                self.leave(path);
                Ok(())
            }
            Err(e) => {
                let _ = dir.unlink(STAGING_NAME);
                Err(e)
            }
        }
    }

    fn set_meta(&mut self, path: &RelPath, kind: EntryKind, meta: &Meta) -> Result<()> {
        let name = path.file_name().expect("ops never name the root");
        let scope = self.scope;
        let mut problems = Vec::new();
        let Some(dir) = self.dir(&path.parent().unwrap_or_default(), false)? else {
            return Ok(());
        };
        let st = match dir.stat(name) {
            Ok(st) => st,
            Err(e) if fsys::is_vanished(&e) => return Ok(()),
            Err(e) => return Err(scope.io_error(path, e)),
        };
        let expect = match kind {
            EntryKind::File => EntryType::File,
            EntryKind::Symlink => EntryType::Symlink,
            EntryKind::Dir => EntryType::Dir,
        };
        if EntryType::from_mode(st.st_mode as u32) != expect {
            // Something else stands there now: not ours to change.
            self.leave(path);
            return Ok(());
        }
        let target = MetaTarget::Name {
            dir,
            name,
            kind: expect,
        };
        let changed =
            stage::put_meta(&target, &st, path, kind, meta, &mut problems).map_err(|e| scope.io_error(path, e))?;
        self.out.problems.extend(problems);
        self.out.meta_set += u64::from(changed);
        Ok(())
    }
}

/// Renames the staged [`STAGING_NAME`] to `name` in `dir`, where nothing
/// was when the rescue was sealed: anything there now was created
/// meanwhile and stays (`Ok(false)`, the staged name removed).
///
/// # Errors
/// [`Error::Io`] naming `path`.
fn place_new(scope: &Scope, dir: &Dir, path: &RelPath, name: &[u8]) -> Result<bool> {
    match dir.rename_noreplace(STAGING_NAME, dir, name) {
        Ok(()) => Ok(true),
        Err(e) if fsys::is_errno(&e, Errno::EXIST) => {
            let _ = dir.unlink(STAGING_NAME);
            Ok(false)
        }
        Err(e) => Err(scope.io_error(path, e)),
    }
}

/// Renames the staged [`STAGING_NAME`] onto `name` in `dir`. An empty
/// directory standing there is removed first; a non-empty one holds
/// something not in the plane's state (created meanwhile), so the path is
/// left as it is: `Ok(false)`, with the staged name removed.
///
/// # Errors
/// [`Error::Io`] naming `path`.
fn place(scope: &Scope, dir: &Dir, path: &RelPath, name: &[u8]) -> Result<bool> {
    match dir.rename(STAGING_NAME, dir, name) {
        Ok(()) => Ok(true),
        Err(e)
            if [Errno::ISDIR, Errno::NOTEMPTY, Errno::EXIST]
                .iter()
                .any(|&n| fsys::is_errno(&e, n)) =>
        {
            match dir.rmdir(name) {
                Ok(()) => dir
                    .rename(STAGING_NAME, dir, name)
                    .map(|()| true)
                    .map_err(|e| scope.io_error(path, e)),
                Err(r) if fsys::is_errno(&r, Errno::NOTEMPTY) || fsys::is_errno(&r, Errno::EXIST) => {
                    let _ = dir.unlink(STAGING_NAME);
                    Ok(false)
                }
                Err(_) => Err(scope.io_error(path, e)),
            }
        }
        Err(e) => Err(scope.io_error(path, e)),
    }
}

/// True when `name` in `dir`, of type `t` on disk, holds blob `id`: a
/// symlink's target bytes, or a regular file's bytes (re-hashed).
fn holds_blob(scope: &Scope, dir: &Dir, rel: &RelPath, name: &[u8], t: EntryType, id: &ObjectId) -> bool {
    match t {
        EntryType::Symlink => dir.read_link(name).is_ok_and(|target| blob_id(&target) == *id),
        EntryType::File => {
            let shown = scope.shown(rel);
            crate::hash::hash_file(dir, name, &shown, None).is_ok_and(|(h, _)| h == *id)
        }
        _ => false,
    }
}

/// True when `name` in `dir` already is blob `id` as `kind` with `meta` (replay).
fn already_there(
    scope: &Scope,
    dir: &Dir,
    path: &RelPath,
    name: &[u8],
    kind: EntryKind,
    id: &ObjectId,
    meta: &Meta,
) -> bool {
    let Ok(st) = dir.stat(name) else {
        return false;
    };
    // Still a hard link of something else: the write is what splits it.
    if kind == EntryKind::File && st.st_nlink > 1 {
        return false;
    }
    let have = Meta::from_stat(st.st_mode as u32, st.st_uid, st.st_gid, kind);
    let md = meta.diff(&have);
    if md.mode || md.owner {
        return false;
    }
    match (kind, EntryType::from_mode(st.st_mode as u32)) {
        (EntryKind::Symlink, t @ EntryType::Symlink) | (EntryKind::File, t @ EntryType::File) => {
            holds_blob(scope, dir, path, name, t, id)
        }
        _ => false,
    }
}

/// Makes the applied changes durable: when the file data was flushed as it
/// was written, only the directories whose entries changed need an fsync —
/// one `syncfs` per filesystem when there are many, or always when
/// `unsynced_data` (files staged after the journal).
///
/// # Errors
/// [`Error::Io`] naming the directory.
pub(super) fn sync_dirs(scope: &Scope, dirs: &BTreeSet<RelPath>, unsynced_data: bool) -> Result<()> {
    use rayon::prelude::*;
    const SYNCFS_MIN_DIRS: usize = 64;
    if dirs.len() >= SYNCFS_MIN_DIRS || unsynced_data {
        let mut by_dev: HashMap<u64, Dir> = HashMap::new();
        for d in dirs {
            if let Ok(dir) = scope.open_dir(d)
                && let Ok(st) = dir.stat_self()
            {
                by_dev.entry(st.st_dev as u64).or_insert(dir);
            }
        }
        for dir in by_dev.values() {
            dir.syncfs().map_err(|e| scope.io_error(&RelPath::root(), e))?;
        }
        return Ok(());
    }
    dirs.par_iter().try_for_each(|d| match scope.open_dir(d) {
        Ok(dir) => dir.sync().map_err(|e| scope.io_error(d, e)),
        Err(_) => Ok(()), // removed since: nothing of it to flush
    })
}
