//! Rendering helpers: path escaping, sizes, JSON path fields, progress bars.
//!
//! JSON conventions (README, "JSON output"): every path is a string field
//! `path`, decoded as UTF-8 with invalid bytes replaced by U+FFFD; when the
//! raw bytes are not valid UTF-8, a second field `path_bytes` holds them in
//! standard base64, so scripts never lose a name.

use base64::Engine;
use cplane::progress::Progress;
use indicatif::{HumanCount, ProgressBar, ProgressState, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// A path for humans: UTF-8 as is, with control characters and invalid bytes as
/// `\xNN` and a backslash doubled, so every name prints distinctly.
pub fn path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

/// Adds `path` (and `path_bytes` when not UTF-8) to a JSON object.
pub fn put_path(obj: &mut Map<String, Value>, bytes: &[u8]) {
    put_path_as(obj, "path", bytes);
}

/// Adds the path field `key` (and `<key>_bytes` when not UTF-8) to a JSON object.
pub fn put_path_as(obj: &mut Map<String, Value>, key: &str, bytes: &[u8]) {
    obj.insert(key.into(), Value::String(String::from_utf8_lossy(bytes).into_owned()));
    if std::str::from_utf8(bytes).is_err() {
        obj.insert(
            format!("{key}_bytes"),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
}

/// A JSON object with the path fields set.
pub fn path_obj(bytes: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    put_path(&mut m, bytes);
    m
}

/// `1 file`, `2 files`: a count with its noun, plural when needed.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {noun}s")
    }
}

/// Human size: `512 B`, `1.5 kB`, `3.2 MB`, `1.1 GB` (SI units).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A plane's HEAD as JSON: `{"snapshot", "checkpoint", "root"}`, or `null`.
pub fn head(head: Option<&(cplane::SnapshotId, cplane::object::Snapshot)>) -> Value {
    head.map_or(
        Value::Null,
        |(id, s)| json!({"snapshot": id.to_hex(), "checkpoint": s.name, "root": s.root.to_hex()}),
    )
}

/// An entry side as JSON: kind (`file`, `symlink`, `directory`), id, size,
/// mode (four octal digits, or `null` when unknown — format 1), uid and gid
/// (`null` when unknown), executable.
pub fn side(s: &cplane::diff::Side) -> Value {
    json!({
        "kind": s.kind.name(),
        "id": s.id.to_hex(),
        "size": s.size,
        "mode": mode_json(&s.meta, s.kind),
        "uid": s.meta.owner_known().then_some(s.meta.uid),
        "gid": s.meta.owner_known().then_some(s.meta.gid),
        "executable": s.kind == cplane::object::EntryKind::File && s.meta.is_executable(),
    })
}

/// A mode as JSON: `"0644"`, or `null` for a symlink or an unknown (format-1) mode.
pub fn mode_json(m: &cplane::object::Meta, kind: cplane::object::EntryKind) -> Value {
    if kind == cplane::object::EntryKind::Symlink || m.is_legacy_mode() {
        Value::Null
    } else {
        Value::String(format!("{:04o}", m.perm()))
    }
}

/// Standard output, muted by `--quiet` for a command whose output only says
/// what it did: writes then go nowhere, except through [`Out::findings`].
pub struct Out {
    stdout: std::io::StdoutLock<'static>,
    muted: bool,
    quiet: bool,
    sink: std::io::Sink,
}

impl Out {
    /// Standard output, `muted` or not; `quiet` (`--quiet`) silences
    /// [`Out::info`].
    pub fn new(muted: bool, quiet: bool) -> Self {
        Out {
            stdout: std::io::stdout().lock(),
            muted,
            quiet,
            sink: std::io::sink(),
        }
    }

    /// Where a report's informational lines go (headers, `ok` and summary
    /// lines, notes): nowhere with `--quiet`, which keeps only findings.
    pub fn info(&mut self) -> &mut dyn Write {
        if self.quiet || self.muted {
            &mut self.sink
        } else {
            &mut self.stdout
        }
    }

    /// Standard output even when muted: for findings and problems, which
    /// `--quiet` never hides.
    pub fn findings(&mut self) -> &mut dyn Write {
        &mut self.stdout
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.muted {
            Ok(buf.len())
        } else {
            self.stdout.write(buf)
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.muted { Ok(()) } else { self.stdout.write_all(buf) }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.stdout.flush()
    }
}

/// Progress on stderr when it is a terminal; silent otherwise.
///
/// A spinner counting files until the operation says how much the current
/// phase will process ([`Progress::total`]); from then on a bar with the
/// files and bytes done of the total, the percentage, the rate and the ETA.
pub struct Bar {
    bar: Option<ProgressBar>,
    /// Files done in the current phase (the bar's position counts bytes
    /// once a total in bytes is known).
    files: Arc<AtomicU64>,
    /// Files the current phase will process; 0 while unknown.
    total_files: Arc<AtomicU64>,
    /// True once the bar's position counts bytes rather than files.
    by_bytes: AtomicBool,
}

impl Bar {
    /// A spinner counting files, labelled `what`.
    pub fn new(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(spinner_style());
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar {
            bar: Some(bar),
            files: Arc::default(),
            total_files: Arc::default(),
            by_bytes: AtomicBool::new(false),
        }
    }

    /// No bar at all (`--quiet`, or stderr is not a terminal).
    pub fn hidden() -> Self {
        Bar {
            bar: None,
            files: Arc::default(),
            total_files: Arc::default(),
            by_bytes: AtomicBool::new(false),
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}: {human_pos} files, {elapsed}")
        .expect("static progress template is valid")
}

/// `{msg} [bar] 1,234/5,678 files  120.5 MiB/2.1 GiB  5%  88.2 MiB/s  ETA 23s`,
/// with the file counts read from `files` and `total`.
fn bar_style(files: &Arc<AtomicU64>, total: &Arc<AtomicU64>, by_bytes: bool) -> ProgressStyle {
    let (f, t) = (files.clone(), total.clone());
    let counts = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(
            w,
            "{}/{} files",
            HumanCount(f.load(Ordering::Relaxed)),
            HumanCount(t.load(Ordering::Relaxed))
        );
    };
    let template = if by_bytes {
        "{msg} [{wide_bar}] {counts}  {binary_bytes}/{binary_total_bytes}  {percent}%  {binary_bytes_per_sec}  ETA {eta}"
    } else {
        "{msg} [{wide_bar}] {counts}  {percent}%  {per_sec}  ETA {eta}"
    };
    ProgressStyle::with_template(template)
        .expect("static progress template is valid")
        .with_key("counts", counts)
        .progress_chars("=> ")
}

impl Progress for Bar {
    fn inc(&self, files: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            self.files.fetch_add(files, Ordering::Relaxed);
            b.inc(if self.by_bytes.load(Ordering::Relaxed) {
                bytes
            } else {
                files
            });
        }
    }
    fn phase(&self, name: &str) {
        if let Some(b) = &self.bar {
            // A new phase counts afresh; its total, if any, follows.
            self.files.store(0, Ordering::Relaxed);
            self.total_files.store(0, Ordering::Relaxed);
            self.by_bytes.store(false, Ordering::Relaxed);
            b.set_style(spinner_style());
            b.set_length(0);
            b.unset_length();
            b.set_position(0);
            b.reset_eta();
            b.set_message(name.to_string());
        }
    }
    fn total(&self, files: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            let by_bytes = bytes > 0;
            self.total_files.store(files, Ordering::Relaxed);
            self.by_bytes.store(by_bytes, Ordering::Relaxed);
            b.set_style(bar_style(&self.files, &self.total_files, by_bytes));
            b.set_length(if by_bytes { bytes } else { files });
            b.set_position(0);
            self.files.store(0, Ordering::Relaxed);
            b.reset_eta();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// One note per directory skipped because it holds another store.
pub fn nested_store_notes(out: &mut dyn std::io::Write, nested: &[cplane::RelPath]) -> std::io::Result<()> {
    for n in nested {
        writeln!(
            out,
            "note: {}/ holds another cplane store and is not part of this plane",
            path(n.as_bytes())
        )?;
    }
    Ok(())
}

/// One finding as printed: `CODE path: message` (with the owner when
/// governance knows it) and, for governance codes, a `fix:` line saying
/// what to do. Ends with a newline.
pub fn finding(f: &cplane::finding::Finding) -> String {
    let owner = f.owner.as_ref().map_or(String::new(), |o| format!(" [owner {o}]"));
    let mut s = format!("{} {}: {}{owner}\n", f.code, path(f.path.as_bytes()), f.message);
    if f.code.pass() != 1 {
        s.push_str(&format!("      fix: {}\n", f.code.remedy()));
    }
    s
}
