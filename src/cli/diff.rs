//! `cplane diff`, and change rendering shared with `status`.

use super::{CmdResult, Ctx, finding_json, findings_code, output};
use cplane::diff::{Change, ChangeKind, Side, TreeSource, diff_states};
use cplane::object::EntryKind;
use cplane::patch::{Compared, Content, compare};
use cplane::path::RelPath;
use cplane::renames::{Entry, Status};
use cplane::revision::resolve;
use serde_json::{Value, json};
use std::io::Write;

/// Show what differs between two snapshots, or a snapshot and the working tree
///
/// A and B are refs: a checkpoint name, HEAD, HEAD~N, PLANE:REF (another
/// plane's snapshot; paths are relative to each plane's root) or a snapshot id
/// prefix of 8+ hex digits. With only A, B is the plane's working tree. Only
/// subtrees whose ids differ are read, so the cost follows the change, not the
/// tree. Letters: A added, D deleted, M modified (bytes), T kind changed
/// (file/symlink, same bytes), P permission bits changed, O owner or group
/// changed, L hard links changed, R renamed, C copied; a directory is listed
/// (with a trailing `/`) when it is empty or its mode or owner changed. Exit 1
/// when anything differs.
///
/// Renames and copies are exact: a deleted and an added path with the same
/// bytes (blob id) and kind are one rename, `R  old -> new` (`R100<TAB>old<TAB>new`
/// with --name-status, `"from"` in JSON); an added path with the old bytes of
/// another changed path is a copy of it (like git's -C, only changed paths are
/// sources). A renamed directory shows one R per file. Pairing looks at the
/// changes only, so it costs nothing more when nothing moved. --no-renames
/// reports every path on its own (D and A).
///
/// -p/--patch prints git's unified format instead: a `diff --git a/OLD b/NEW`
/// line per entry, mode, rename and copy lines, then `--- a/PATH`, `+++
/// b/PATH` and hunks with 3 lines of context; a symlink's target is diffed as
/// text. A file with a NUL byte in its first 8,000 bytes or that is not UTF-8
/// is binary (`Binary files a/X and b/Y differ`); a side over 8 MiB is not
/// read (`Large files ... differ`). Owner and hard-link changes are noted as
/// `old owner`/`new owner` and `hard links changed` lines.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Old side
    pub a: String,
    /// New side (default: the working tree)
    pub b: Option<String>,
    /// Print only `LETTER<TAB>PATH` lines
    #[arg(long)]
    pub name_status: bool,
    /// Report every path on its own: no renames (R) or copies (C)
    #[arg(long)]
    pub no_renames: bool,
    /// Print a unified diff of each changed text file (git's format)
    #[arg(short = 'p', long, conflicts_with = "name_status")]
    pub patch: bool,
}

/// What one reported line is about: a path's change, or a rename or copy.
struct Shown<'a> {
    status: Status,
    path: &'a RelPath,
    from: Option<&'a RelPath>,
    old: Option<&'a Side>,
    new: Option<&'a Side>,
}

impl<'a> From<&'a Change> for Shown<'a> {
    fn from(c: &'a Change) -> Self {
        Shown {
            status: Status::Changed(c.kind),
            path: &c.path,
            from: None,
            old: c.old.as_ref(),
            new: c.new.as_ref(),
        }
    }
}

impl<'a> From<&'a Entry> for Shown<'a> {
    fn from(e: &'a Entry) -> Self {
        Shown {
            status: e.status,
            path: &e.path,
            from: e.from.as_ref(),
            old: e.old.as_ref(),
            new: e.new.as_ref(),
        }
    }
}

impl Shown<'_> {
    fn is_dir(&self) -> bool {
        self.old.or(self.new).is_some_and(|s| s.kind == EntryKind::Dir)
    }

    fn json(&self) -> Value {
        let mut m = output::path_obj(self.path.as_bytes());
        m.insert("status".into(), self.status.letter().to_string().into());
        m.insert("change".into(), self.status.name().into());
        if let Some(from) = self.from {
            output::put_path_as(&mut m, "from", from.as_bytes());
        }
        m.insert("old".into(), self.old.map_or(Value::Null, output::side));
        m.insert("new".into(), self.new.map_or(Value::Null, output::side));
        Value::Object(m)
    }

    fn line(&self) -> String {
        let slash = if self.is_dir() { "/" } else { "" };
        let mut l = match self.from {
            Some(from) => format!(
                "{}  {} -> {}",
                self.status.letter(),
                output::path(from.as_bytes()),
                output::path(self.path.as_bytes())
            ),
            None => format!(
                "{}  {}{slash}",
                self.status.letter(),
                output::path(self.path.as_bytes())
            ),
        };
        // A copy's old side is its source's, which stays: only a rename's sides are one file's.
        let sides = match self.status {
            Status::Copied => None,
            _ => self.old.zip(self.new),
        };
        if let Some((o, n)) = sides {
            let mut notes = Vec::new();
            if o.kind != n.kind {
                notes.push(format!("{} -> {}", o.kind.name(), n.kind.name()));
            }
            let md = o.meta.diff(&n.meta);
            // A symlink has no mode of its own: a file <-> symlink change is its kind.
            let no_symlink = o.kind != EntryKind::Symlink && n.kind != EntryKind::Symlink;
            if md.mode && no_symlink {
                notes.push(format!("mode {} -> {}", o.meta.mode_string(), n.meta.mode_string()));
            }
            if md.owner {
                notes.push(format!("owner {} -> {}", o.meta.owner_string(), n.meta.owner_string()));
            }
            if self.status == Status::Changed(ChangeKind::LinksChanged) {
                notes.push("hard links".into());
            }
            if !notes.is_empty() {
                l.push_str(&format!("  ({})", notes.join(", ")));
            }
        }
        l
    }

    /// `LETTER<TAB>PATH`, or git's `R100<TAB>OLD<TAB>NEW` for a rename or copy
    /// (always 100: pairs are exact).
    fn name_status(&self) -> String {
        match self.from {
            Some(from) => format!(
                "{}100\t{}\t{}",
                self.status.letter(),
                output::path(from.as_bytes()),
                output::path(self.path.as_bytes())
            ),
            None => format!(
                "{}\t{}{}",
                self.status.letter(),
                output::path(self.path.as_bytes()),
                if self.is_dir() { "/" } else { "" }
            ),
        }
    }
}

/// One change as JSON: status letter, change kind, path, old and new sides.
pub fn change_json(c: &Change) -> Value {
    Shown::from(c).json()
}

/// One entry as JSON: as [`change_json`], and for a rename or copy
/// (`status` `R` or `C`, `change` `renamed` or `copied`) `from`, the source
/// path (`from_bytes` when not UTF-8); `old` is the source's side.
pub fn entry_json(e: &Entry) -> Value {
    Shown::from(e).json()
}

/// One change for humans: `M  path` (a directory ends in `/`), with a note
/// for kind, mode and owner changes.
pub fn change_line(c: &Change) -> String {
    Shown::from(c).line()
}

/// One entry for humans: as [`change_line`], a rename or copy as
/// `R  old -> new`, noting a mode or owner change that came with a rename.
pub fn entry_line(e: &Entry) -> String {
    Shown::from(e).line()
}

/// One entry as `--name-status` prints it.
pub fn entry_name_status(e: &Entry) -> String {
    Shown::from(e).name_status()
}

/// "3 changes: 1 modified, 1 added, 1 renamed".
pub fn entry_summary<'a>(entries: impl Iterator<Item = &'a Entry>) -> String {
    let statuses: Vec<Status> = entries.map(|e| e.status).collect();
    summary_of(&statuses)
}

fn summary_of(statuses: &[Status]) -> String {
    use ChangeKind::*;
    let count = |k| statuses.iter().filter(|s| **s == k).count();
    let parts: Vec<String> = [
        (Status::Changed(Modified), "modified"),
        (Status::Changed(Added), "added"),
        (Status::Changed(Deleted), "deleted"),
        (Status::Renamed, "renamed"),
        (Status::Copied, "copied"),
        (Status::Changed(KindChanged), "kind changed"),
        (Status::Changed(ModeChanged), "mode changed"),
        (Status::Changed(OwnerChanged), "owner changed"),
        (Status::Changed(LinksChanged), "links changed"),
    ]
    .into_iter()
    .filter(|(k, _)| count(*k) > 0)
    .map(|(k, n)| format!("{} {n}", count(k)))
    .collect();
    format!(
        "{} change{}: {}",
        statuses.len(),
        if statuses.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The reported changes as entries: renames and copies paired unless `no_renames`.
pub fn entries(changes: Vec<Change>, no_renames: bool) -> Vec<Entry> {
    if no_renames {
        cplane::renames::plain(changes)
    } else {
        cplane::renames::detect(changes)
    }
}

/// An entry's mode as git writes it: `100644`, `120000` for a symlink, `040755` for a directory.
fn git_mode(s: &Side) -> String {
    match s.kind {
        EntryKind::Symlink => "120000".into(),
        EntryKind::Dir => format!("{:06o}", 0o040000 | s.meta.perm()),
        EntryKind::File => format!("{:06o}", 0o100000 | s.meta.perm()),
    }
}

/// One entry in git's patch format (see `cplane diff --help`).
fn write_patch(out: &mut dyn Write, content: &Content<'_>, e: &Entry) -> Result<(), super::CliError> {
    let b_path = &e.path;
    let a_path = e.from.as_ref().unwrap_or(b_path);
    let (a, b) = (output::path(a_path.as_bytes()), output::path(b_path.as_bytes()));
    writeln!(out, "diff --git a/{a} b/{b}")?;
    let (old, new) = (e.old.as_ref(), e.new.as_ref());
    let what = |s: &Side| if s.kind == EntryKind::Dir { "directory" } else { "file" };
    match (old, new) {
        (None, Some(n)) => writeln!(out, "new {} mode {}", what(n), git_mode(n))?,
        (Some(o), None) => writeln!(out, "deleted {} mode {}", what(o), git_mode(o))?,
        (Some(o), Some(n)) if e.status != Status::Copied => {
            let md = o.meta.diff(&n.meta);
            if o.kind != n.kind || md.mode && o.kind != EntryKind::Symlink {
                writeln!(out, "old mode {}\nnew mode {}", git_mode(o), git_mode(n))?;
            }
            if md.owner {
                writeln!(
                    out,
                    "old owner {}\nnew owner {}",
                    o.meta.owner_string(),
                    n.meta.owner_string()
                )?;
            }
        }
        _ => {}
    }
    match e.status {
        Status::Renamed => writeln!(out, "similarity index 100%\nrename from {a}\nrename to {b}")?,
        Status::Copied => writeln!(out, "similarity index 100%\ncopy from {a}\ncopy to {b}")?,
        Status::Changed(ChangeKind::LinksChanged) => writeln!(out, "hard links changed")?,
        Status::Changed(_) => {}
    }
    fn file(s: Option<&Side>) -> Option<&Side> {
        s.filter(|s| s.kind != EntryKind::Dir)
    }
    let (old, new) = (file(old), file(new));
    if old.is_none() && new.is_none() || old.zip(new).is_some_and(|(o, n)| o.id == n.id) {
        return Ok(());
    }
    const ZERO: &str = "000000000000";
    let short = |s: Option<&Side>| s.map_or(ZERO.to_string(), |s| s.id.short(12));
    let same_mode = old.zip(new).filter(|(o, n)| git_mode(o) == git_mode(n));
    match same_mode {
        Some((o, _)) => writeln!(out, "index {}..{} {}", short(old), short(new), git_mode(o))?,
        None => writeln!(out, "index {}..{}", short(old), short(new))?,
    }
    let a_name = if old.is_some() {
        format!("a/{a}")
    } else {
        "/dev/null".into()
    };
    let b_name = if new.is_some() {
        format!("b/{b}")
    } else {
        "/dev/null".into()
    };
    match compare(content, old.map(|s| (a_path, s)), new.map(|s| (b_path, s)), true)? {
        Compared::Text { hunks, .. } => {
            if !hunks.is_empty() {
                writeln!(out, "--- {a_name}\n+++ {b_name}")?;
                out.write_all(hunks.as_bytes())?;
            }
        }
        Compared::Binary => writeln!(out, "Binary files {a_name} and {b_name} differ")?,
        Compared::TooLarge => writeln!(
            out,
            "Large files {a_name} and {b_name} differ (over {} MiB: no patch shown)",
            cplane::patch::MAX_PATCH_BYTES >> 20
        )?,
    }
    Ok(())
}

pub fn cmd_diff(ctx: &mut Ctx, args: DiffArgs) -> CmdResult {
    if args.patch && ctx.json {
        return Err(super::CliError::Usage(
            "--patch prints a patch, not JSON".into(),
            Some("drop --json, or drop -p for the changes as JSON".into()),
        ));
    }
    let (mut store, plane) = if args.b.is_some() {
        ctx.open_store_only()?
    } else {
        ctx.open()?
    };
    let a = resolve(&store, &plane, &args.a)?;
    let (mut changes, findings, b_label) = match &args.b {
        Some(b) => {
            let b = resolve(&store, &plane, b)?;
            let changes = diff_states(
                &TreeSource::store(&store),
                (&a.snapshot.root, &a.snapshot.links),
                (&b.snapshot.root, &b.snapshot.links),
            )?;
            let side = json!({"snapshot": b.id.to_hex(), "checkpoint": b.snapshot.name, "plane": b.plane.name, "root": b.snapshot.root.to_hex()});
            (changes, Vec::new(), side)
        }
        None => {
            // A remote plane's ref with no namesake here compares with the current plane.
            let wt_plane = if store.plane(&a.plane.name).is_ok() {
                a.plane.clone()
            } else {
                plane.clone()
            };
            ctx.recover(&mut store, &wt_plane)?;
            let bar = ctx.bar("scanning");
            let wt = cplane::worktree::against(&store, &wt_plane, &a.snapshot, ctx.control(&bar))?;
            drop(bar);
            let side = json!({"working_tree": true, "plane": wt_plane.name, "root": wt.scan.root.to_hex()});
            (wt.changes, wt.scan.findings, side)
        }
    };
    changes.retain(|c| c.is_reported());
    let entries = entries(changes, args.no_renames);
    let clean = entries.is_empty() && findings.is_empty();
    if ctx.json {
        let list: Vec<Value> = entries.iter().map(entry_json).collect();
        let f: Vec<Value> = findings.iter().map(finding_json).collect();
        writeln!(
            ctx.out,
            "{}",
            json!({
                "a": {"snapshot": a.id.to_hex(), "checkpoint": a.snapshot.name, "plane": a.plane.name, "root": a.snapshot.root.to_hex()},
                "clean": clean,
                "b": b_label,
                "changes": list,
                "findings": f,
            })
        )?;
    } else if args.patch {
        let scope = match &args.b {
            Some(_) => None,
            None if store.plane(&a.plane.name).is_err() => Some(cplane::scope::Scope::open(&plane)?),
            None => Some(cplane::scope::Scope::open(&a.plane)?),
        };
        let content = match &scope {
            Some(scope) => Content::with_worktree(&store, scope),
            None => Content::store(&store),
        };
        for e in &entries {
            write_patch(&mut ctx.out, &content, e)?;
        }
    } else if args.name_status {
        for e in &entries {
            writeln!(ctx.out, "{}", entry_name_status(e))?;
        }
    } else {
        for e in &entries {
            writeln!(ctx.out, "{}", entry_line(e))?;
        }
        if !entries.is_empty() {
            writeln!(ctx.out, "{}", entry_summary(entries.iter()))?;
        }
    }
    if !ctx.json {
        for f in &findings {
            eprintln!("{} {}: {}", f.code, output::path(f.path.as_bytes()), f.message);
        }
    }
    Ok(findings_code(clean))
}
