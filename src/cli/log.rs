//! `cplane log` and `cplane checkpoints`.

use super::{CmdResult, Ctx, output};
use cplane::diff::{TreeSource, diff_states};
use cplane::id::{SnapshotId, TreeId};
use cplane::object::{EntryKind, Snapshot, Tree};
use cplane::patch::{Compared, Content, compare};
use cplane::renames::Entry;
use cplane::store::Store;
use cplane::timefmt::rfc3339;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;

/// List the plane's history: HEAD, then each parent, newest first
///
/// Each line: checkpoint name, snapshot id (12 hex digits), UTC time, kind
/// (init, checkpoint, rescue, rollback), files, size and message. History
/// ends at a parent whose checkpoint was deleted or pruned: the last line
/// then says "… history before this was pruned" (`history_pruned` in JSON).
///
/// --stat adds, under each checkpoint, what it changed from its parent (from
/// nothing for the first), like `git log --stat`: ` PATH | N +++--` per path
/// (renames as `{old => new}`, binary files as `Bin OLD -> NEW bytes`, files
/// over 8 MiB as `Large`), then ` F files changed, I insertions(+), D
/// deletions(-)`. A checkpoint whose parent was pruned says so instead. In
/// JSON each entry gains `stat`: `{"files": [{"path", "from"?, "status",
/// "insertions", "deletions", "binary", "too_large"}], "insertions",
/// "deletions"}`, or `null` when the parent was pruned.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Show at most N snapshots
    #[arg(short = 'n', long, value_name = "N")]
    pub max_count: Option<usize>,
    /// Show the paths each checkpoint changed, with line counts
    #[arg(long)]
    pub stat: bool,
}

/// List every named checkpoint of the plane, oldest first
///
/// Every snapshot is a checkpoint: the ones `snapshot` sealed (VER-… or your
/// --name), the RESCUE-… ones `rollback` and `restore` sealed before changing
/// anything, and the one each `rollback` made its HEAD. HEAD is marked `*`.
/// Any of these names is a ref for `diff`, `show`, `cat`, `restore` and
/// `rollback`. `cplane checkpoints delete NAME...` and `cplane prune`
/// remove them (restic's retention: see `cplane prune --help`).
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CheckpointsArgs {
    #[command(subcommand)]
    pub cmd: Option<CheckpointsCmd>,
}

/// `cplane checkpoints SUBCOMMAND`.
#[derive(clap::Subcommand, Debug)]
pub enum CheckpointsCmd {
    Delete(super::retention::DeleteArgs),
}

/// True for the listing, false for `checkpoints delete` (see `--quiet`).
pub fn checkpoints_prints_data(a: &CheckpointsArgs) -> bool {
    a.cmd.is_none()
}

/// A snapshot as JSON.
pub fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let mut v = json!({
        "snapshot": id.to_hex(),
        "checkpoint": s.name,
        "plane": s.plane,
        "kind": s.kind.label(),
        "time": rfc3339(s.time_unix_ns),
        "time_unix_ns": s.time_unix_ns,
        "root": s.root.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "files": s.files,
        "bytes": s.bytes,
        "message": s.message,
    });
    if let cplane::object::SnapshotKind::Rollback { target } = &s.kind {
        v["target"] = json!(target.to_hex());
    }
    v
}

fn line(id: &SnapshotId, s: &Snapshot) -> String {
    let mut l = format!(
        "{:<24} {}  {}  {:<10} {:>7} {:<5} {:>9}",
        s.name,
        id.short(12),
        rfc3339(s.time_unix_ns),
        s.kind.label(),
        s.files,
        if s.files == 1 { "file" } else { "files" },
        output::size(s.bytes)
    );
    if !s.message.is_empty() {
        l.push_str("  ");
        l.push_str(&s.message);
    }
    l
}

pub fn cmd_log(ctx: &mut Ctx, args: LogArgs) -> CmdResult {
    let (store, plane) = ctx.open_store_only()?;
    let retained = cplane::retention::retained(&store, &plane.name)?;
    let mut cur = store.head(&plane.name)?;
    let mut rows = Vec::new();
    // Set when the walk stopped at a parent that is no longer retained.
    let mut pruned = false;
    while let Some(id) = cur {
        if args.max_count.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let s = store.read_snapshot(&id)?;
        cur = cplane::retention::retained_parent(&store, &retained, &s);
        pruned = cplane::retention::pruned_before(&store, &retained, &s);
        rows.push((id, s));
    }
    let pruned = pruned && cur.is_none();
    let stats: Vec<Option<Stat>> = if args.stat {
        rows.iter()
            .map(|(_, s)| stat_of(&store, &retained, s))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    if ctx.json {
        let last = rows.len().saturating_sub(1);
        let list: Vec<Value> = rows
            .iter()
            .enumerate()
            .map(|(i, (id, s))| {
                let mut v = snapshot_json(id, s);
                v["history_pruned"] = json!(i == last && pruned);
                if let Some(st) = stats.get(i) {
                    v["stat"] = st.as_ref().map_or(Value::Null, Stat::json);
                }
                v
            })
            .collect();
        writeln!(ctx.out, "{}", Value::Array(list))?;
    } else {
        for (i, (id, s)) in rows.iter().enumerate() {
            writeln!(ctx.out, "{}", line(id, s))?;
            match stats.get(i) {
                Some(Some(st)) => write!(ctx.out, "{}", st.render())?,
                Some(None) => writeln!(ctx.out, " (parent pruned: no stat)")?,
                None => {}
            }
        }
        if pruned {
            writeln!(ctx.out, "… history before this was pruned")?;
        }
    }
    Ok(0)
}

/// What one checkpoint changed from its parent, path by path.
struct Stat {
    rows: Vec<(Entry, Compared)>,
}

/// The stat of `s` against its parent (the empty tree for a first
/// checkpoint); `None` when the parent is no longer retained.
fn stat_of(
    store: &Store,
    retained: &std::collections::HashSet<SnapshotId>,
    s: &Snapshot,
) -> Result<Option<Stat>, super::CliError> {
    let parent = match cplane::retention::retained_parent(store, retained, s) {
        Some(p) => Some(store.read_snapshot(&p)?),
        None if s.parent.is_some() => return Ok(None),
        None => None,
    };
    let empty: HashMap<TreeId, Tree> = [(Tree::empty_id(), Tree::default())].into();
    let src = TreeSource::with_overlay(store, &empty);
    let (old_root, old_links) = parent
        .as_ref()
        .map_or((Tree::empty_id(), &[][..]), |p| (p.root, &p.links[..]));
    let mut changes = diff_states(&src, (&old_root, old_links), (&s.root, &s.links))?;
    changes.retain(|c| c.is_reported());
    let content = Content::store(store);
    let mut rows = Vec::new();
    for e in cplane::renames::detect(changes) {
        let old_path = e.from.as_ref().unwrap_or(&e.path);
        let counts = compare(
            &content,
            e.old.as_ref().map(|s| (old_path, s)),
            e.new.as_ref().map(|s| (&e.path, s)),
            false,
        )?;
        rows.push((e, counts));
    }
    Ok(Some(Stat { rows }))
}

/// `{old => new}` as git's `--stat` names a rename: the common leading
/// directories and trailing part outside the braces.
fn rename_name(a: &str, b: &str) -> String {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let mut pfx = 0;
    for i in 0..x.len().min(y.len()) {
        if x[i] != y[i] {
            break;
        }
        if x[i] == b'/' {
            pfx = i + 1;
        }
    }
    let mut sfx = 0;
    let mut j = 1;
    while j <= x.len() - pfx && j <= y.len() - pfx && x[x.len() - j] == y[y.len() - j] {
        if x[x.len() - j] == b'/' {
            sfx = j;
        }
        j += 1;
    }
    if pfx == 0 && sfx == 0 {
        return format!("{a} => {b}");
    }
    format!(
        "{}{{{} => {}}}{}",
        &a[..pfx],
        &a[pfx..a.len() - sfx],
        &b[pfx..b.len() - sfx],
        &a[a.len() - sfx..]
    )
}

/// git's `scale_linear`: `n` of `max` as at most `width` marks, at least one when `n > 0`.
fn scale(n: u64, width: u64, max: u64) -> u64 {
    if n == 0 || max <= width {
        n
    } else {
        1 + n * (width - 1) / max
    }
}

/// Widest `+`/`-` graph of a `--stat` line.
const GRAPH_WIDTH: u64 = 40;

impl Stat {
    fn name(e: &Entry) -> String {
        let dir = e.old.or(e.new).is_some_and(|s| s.kind == EntryKind::Dir);
        let p = output::path(e.path.as_bytes());
        match &e.from {
            Some(f) => rename_name(&output::path(f.as_bytes()), &p),
            None if dir => format!("{p}/"),
            None => p,
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.rows.iter().fold((0, 0), |(i, d), (_, c)| match c {
            Compared::Text {
                insertions, deletions, ..
            } => (i + insertions, d + deletions),
            _ => (i, d),
        })
    }

    /// git's `--stat` block: one line per path and the summary, each ending
    /// in a newline; nothing when nothing changed (as git shows an empty commit).
    fn render(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self.rows.iter().map(|(e, _)| Self::name(e)).collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let counts: Vec<String> = self
            .rows
            .iter()
            .map(|(e, c)| match c {
                Compared::Text {
                    insertions, deletions, ..
                } => (insertions + deletions).to_string(),
                Compared::Binary => format!(
                    "Bin {} -> {} bytes",
                    e.old.map_or(0, |s| s.size),
                    e.new.map_or(0, |s| s.size)
                ),
                Compared::TooLarge => format!(
                    "Large {} -> {} bytes",
                    e.old.map_or(0, |s| s.size),
                    e.new.map_or(0, |s| s.size)
                ),
            })
            .collect();
        let count_width = self
            .rows
            .iter()
            .zip(&counts)
            .filter(|((_, c), _)| matches!(c, Compared::Text { .. }))
            .map(|(_, n)| n.len())
            .max()
            .unwrap_or(0);
        let max = self
            .rows
            .iter()
            .map(|(_, c)| match c {
                Compared::Text {
                    insertions, deletions, ..
                } => insertions + deletions,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for ((name, count), (_, c)) in names.iter().zip(&counts).zip(&self.rows) {
            let pad = width - name.chars().count();
            out.push_str(&format!(" {name}{} |", " ".repeat(pad)));
            match c {
                Compared::Text {
                    insertions, deletions, ..
                } => {
                    out.push_str(&format!(" {count:>count_width$}"));
                    let (i, d) = (
                        scale(*insertions, GRAPH_WIDTH, max),
                        scale(*deletions, GRAPH_WIDTH, max),
                    );
                    if i + d > 0 {
                        out.push(' ');
                        out.push_str(&"+".repeat(i as usize));
                        out.push_str(&"-".repeat(d as usize));
                    }
                }
                _ => out.push_str(&format!(" {count}")),
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out
    }

    /// ` 2 files changed, 3 insertions(+), 1 deletion(-)`, as git words it:
    /// a zero count is left out unless both are zero.
    fn summary(&self) -> String {
        let (ins, del) = self.totals();
        let n = self.rows.len() as u64;
        let mut s = format!(" {} changed", output::count(n, "file"));
        if ins > 0 || del == 0 {
            s.push_str(&format!(", {ins} insertion{}(+)", if ins == 1 { "" } else { "s" }));
        }
        if del > 0 || ins == 0 {
            s.push_str(&format!(", {del} deletion{}(-)", if del == 1 { "" } else { "s" }));
        }
        s.push('\n');
        s
    }

    fn json(&self) -> Value {
        let files: Vec<Value> = self
            .rows
            .iter()
            .map(|(e, c)| {
                let mut m = output::path_obj(e.path.as_bytes());
                if let Some(f) = &e.from {
                    output::put_path_as(&mut m, "from", f.as_bytes());
                }
                m.insert("status".into(), e.status.letter().to_string().into());
                let (i, d) = match c {
                    Compared::Text {
                        insertions, deletions, ..
                    } => (*insertions, *deletions),
                    _ => (0, 0),
                };
                m.insert("insertions".into(), i.into());
                m.insert("deletions".into(), d.into());
                m.insert("binary".into(), matches!(c, Compared::Binary).into());
                m.insert("too_large".into(), matches!(c, Compared::TooLarge).into());
                Value::Object(m)
            })
            .collect();
        let (ins, del) = self.totals();
        json!({"files": files, "insertions": ins, "deletions": del})
    }
}

pub fn cmd_checkpoints(ctx: &mut Ctx, args: CheckpointsArgs) -> CmdResult {
    if let Some(CheckpointsCmd::Delete(d)) = args.cmd {
        return super::retention::cmd_checkpoints_delete(ctx, d);
    }
    let (store, plane) = ctx.open_store_only()?;
    let mut rows = Vec::new();
    for (_, id) in store.checkpoints(&plane.name)? {
        let s = store.read_snapshot(&id)?;
        rows.push((id, s));
    }
    rows.sort_by(|a, b| (a.1.time_unix_ns, &a.1.name).cmp(&(b.1.time_unix_ns, &b.1.name)));
    let head = store.head(&plane.name)?;
    if ctx.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(id, s)| {
                let mut v = snapshot_json(id, s);
                v["head"] = json!(Some(*id) == head);
                v
            })
            .collect();
        writeln!(ctx.out, "{}", Value::Array(list))?;
    } else {
        for (id, s) in &rows {
            let mark = if Some(*id) == head { "* " } else { "  " };
            writeln!(ctx.out, "{mark}{}", line(id, s))?;
        }
    }
    Ok(0)
}
