//! Rendering helpers: path escaping, sizes, JSON path fields, progress bars.
//!
//! JSON conventions (README, "JSON output"): every path is a string field
//! `path`, decoded as UTF-8 with invalid bytes replaced by U+FFFD; when the
//! raw bytes are not valid UTF-8, a second field `path_bytes` holds them in
//! standard base64, so scripts never lose a name.

use base64::Engine;
use cplane::progress::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::IsTerminal;
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
    obj.insert(
        "path".into(),
        Value::String(String::from_utf8_lossy(bytes).into_owned()),
    );
    if std::str::from_utf8(bytes).is_err() {
        obj.insert(
            "path_bytes".into(),
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

/// Progress on stderr when it is a terminal; silent otherwise.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A spinner counting files, labelled `what`.
    pub fn new(what: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {human_pos} files, {elapsed}")
                .expect("static progress template is valid"),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar: Some(bar) }
    }
}

impl Progress for Bar {
    fn inc(&self, files: u64, _bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(files);
        }
    }
    fn phase(&self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_string());
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
