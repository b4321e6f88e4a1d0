//! `cplane ledger [head|prove|check-proof|verify]`.

use super::{CliError, CmdResult, Ctx, exit};
use cplane::ledger::{Entry, Head, Ledger, Op, merkle};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;

/// The plane's ledger: every change, hash-chained and provable
///
/// Every command that changes a plane (init, snapshot, rollback, restore,
/// compile, own, disown, quarantine, plane add, key trust, key revoke)
/// appends one entry to the
/// plane's ledger before it reports success: sequence number, UTC time,
/// actor, operation, refs and paths touched, the snapshot produced, the
/// plane's HEAD after it, the previous entry's hash and its own hash. The
/// entries are also the leaves of an RFC 6962 Merkle tree (as Certificate
/// Transparency logs are): `ledger head` prints its size and root, which you
/// can publish or keep; `ledger prove` shows that an entry is in the ledger,
/// or that today's ledger only grew since a head you kept; `ledger
/// check-proof` checks such a proof anywhere, without the store.
///
/// Without a subcommand, lists the entries (oldest first), filtered by
/// `--op`, `--path` and `--since`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LedgerArgs {
    #[command(subcommand)]
    cmd: Option<LedgerCmd>,
    /// Only entries of this operation (init, snapshot, rollback, restore,
    /// compile, own, disown, quarantine, plane-add, key-trust, key-revoke,
    /// install)
    #[arg(long, value_name = "OP")]
    op: Option<String>,
    /// Only entries that touched PATH (plane-relative), a directory above it or a path below it
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Only entries at or after TIME (UTC: `2026-11-30` or `2026-11-30T13:00:00Z`)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum LedgerCmd {
    /// Print the ledger's size and Merkle root (`SIZE:ROOT`)
    ///
    /// Keep or publish the head: later, `cplane ledger prove --since
    /// SIZE:ROOT` proves the ledger then was a prefix of the ledger now
    /// (nothing rewritten, only appended).
    ///
    /// With a signing key configured, `--json` carries an sshsig over the
    /// head (namespace cplane-ledger), which `ledger check-proof
    /// --signers FILE` or stock `ssh-keygen -Y verify` checks.
    Head {
        /// The head the ledger had at its first SIZE entries (as computed
        /// from the ledger now: compare with a head kept then)
        #[arg(long, value_name = "SIZE")]
        size: Option<u64>,
    },
    /// Print a proof, as JSON: entry N is in the ledger, or (--since) the
    /// ledger extends an earlier head
    ///
    /// `prove N` gives an inclusion proof for entry N (0-based) against the
    /// ledger's current head (or its first --size entries); `prove --since
    /// SIZE:ROOT` gives a consistency proof that the ledger's first SIZE
    /// entries had that root and that today's ledger extends them. Check
    /// either with `cplane ledger check-proof`, anywhere.
    Prove {
        /// The entry to prove (its seq)
        #[arg(required_unless_present = "since", conflicts_with = "since")]
        n: Option<u64>,
        /// Prove against the ledger's first SIZE entries instead of all
        #[arg(long, value_name = "SIZE")]
        size: Option<u64>,
        /// An earlier head, `SIZE:ROOT` as `cplane ledger head` printed it
        #[arg(long, value_name = "SIZE:ROOT")]
        since: Option<String>,
        /// Include the entry itself in an inclusion proof (check-proof then
        /// also checks that its contents hash to the proven hash)
        #[arg(long, conflicts_with = "since")]
        entry: bool,
    },
    /// Check a proof printed by `cplane ledger prove` (FILE, or - for stdin)
    ///
    /// Needs no store: the proof carries the entry hash or heads it
    /// speaks about, and the check is RFC 9162's verification algorithm.
    /// Compare the root it names with a head you trust.
    CheckProof {
        /// The proof file (JSON), or `-` for standard input
        file: PathBuf,
        /// An allowed_signers file (a plane's registries/allowed_signers)
        /// to check a signed head against
        #[arg(long, value_name = "FILE")]
        signers: Option<PathBuf>,
    },
    /// Check every entry: canonical form, order, hash chain, Merkle tree
    ///
    /// Names the first broken entry — edited, removed, inserted, reordered
    /// or truncated — and exits 1. Also exits 1 when the plane's HEAD is
    /// not the one the last entry records (an interrupted command: the next
    /// command that writes records it).
    Verify,
}

pub fn cmd_ledger(ctx: &mut Ctx, args: LedgerArgs) -> CmdResult {
    match args.cmd {
        None => list(ctx, args.op, args.path, args.since),
        Some(LedgerCmd::Head { size }) => head(ctx, size),
        Some(LedgerCmd::Prove { n, size, since, entry }) => prove(ctx, n, size, since, entry),
        Some(LedgerCmd::CheckProof { file, signers }) => check_proof(ctx, &file, signers.as_deref()),
        Some(LedgerCmd::Verify) => verify(ctx),
    }
}

fn open(ctx: &Ctx) -> Result<(cplane::store::Store, cplane::plane::Plane, Ledger), CliError> {
    let (store, plane) = ctx.open()?;
    let ledger = Ledger::of(&store, &plane.name);
    Ok((store, plane, ledger))
}

/// `--since` as a prefix comparable with entry times (`YYYY-MM-DDTHH:MM:SS`).
fn since_key(s: &str) -> Result<String, CliError> {
    let t = s.trim_end_matches('Z');
    let ok = |t: &str| {
        let b = t.as_bytes();
        b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
    };
    match t.len() {
        10 if ok(t) => Ok(format!("{t}T00:00:00")),
        16 | 19 if ok(t) => Ok(t.to_string()),
        _ => Err(CliError::Usage(
            format!("--since {s:?} is not a UTC time"),
            Some("use 2026-11-30, 2026-11-30T13:00 or 2026-11-30T13:00:00Z".into()),
        )),
    }
}

fn list(ctx: &mut Ctx, op: Option<String>, path: Option<String>, since: Option<String>) -> CmdResult {
    let json = ctx.json;
    if let Some(o) = &op
        && Op::parse(o).is_none()
    {
        let all: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
        return Err(CliError::Usage(
            format!("unknown --op {o:?}"),
            Some(format!("the operations are {}", all.join(", "))),
        ));
    }
    let since = since.as_deref().map(since_key).transpose()?;
    let path = path.map(|p| p.trim_matches('/').to_string());
    let (_, plane, ledger) = open(ctx)?;
    let entries: Vec<Entry> = ledger
        .entries()?
        .into_iter()
        .filter(|e| op.as_ref().is_none_or(|o| &e.op == o))
        .filter(|e| path.as_ref().is_none_or(|p| e.touches(p)))
        .filter(|e| since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str()))
        .collect();
    if json {
        writeln!(
            ctx.out,
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        )?;
        return Ok(exit::CLEAN);
    }
    if entries.is_empty() {
        writeln!(
            ctx.out,
            "no ledger entries for plane {}{}",
            plane.name,
            if op.is_some() || path.is_some() || since.is_some() {
                " match"
            } else {
                ""
            }
        )?;
        return Ok(exit::CLEAN);
    }
    for e in &entries {
        print_entry(ctx, e)?;
    }
    Ok(exit::CLEAN)
}

/// One entry as a line: seq, time (to the second), op, actor, message, then
/// the paths it touched, indented.
pub fn print_entry(ctx: &mut Ctx, e: &Entry) -> std::io::Result<()> {
    let time = e.time.get(..19).unwrap_or(&e.time);
    writeln!(
        ctx.out,
        "{:>6}  {time}Z  {:<10}  {}  {}",
        e.seq, e.op, e.actor, e.message
    )?;
    for p in &e.paths {
        writeln!(ctx.out, "          {p}")?;
    }
    if e.paths_omitted > 0 {
        writeln!(ctx.out, "          … and {} more paths", e.paths_omitted)?;
    }
    Ok(())
}

fn head(ctx: &mut Ctx, size: Option<u64>) -> CmdResult {
    let json = ctx.json;
    let (store, plane, ledger) = open(ctx)?;
    let mut h = ledger.head()?;
    if let Some(size) = size {
        if size > h.size {
            return Err(CliError::Usage(
                format!(
                    "--size {size}: the ledger of plane {} has {} entries",
                    plane.name, h.size
                ),
                None,
            ));
        }
        h = Head {
            size,
            root: ledger.root(size)?,
        };
    }
    // Only the JSON head is signed: the plain one needs no key.
    let key = if json { super::key::signing_key(&store)? } else { None };
    let signed = match &key {
        Some(k) => Some((
            cplane::keys::fingerprint(k.public_key()),
            cplane::keys::sign(k, cplane::ledger::SIG_NAMESPACE, h.signed_text(&plane.name).as_bytes())
                .map_err(|e| CliError::Usage(e.to_string(), None))?,
        )),
        None => None,
    };
    if json {
        let mut doc = json!({"type": "head", "plane": plane.name, "size": h.size, "root": cplane::id::to_hex(&h.root), "head": h.to_arg()});
        if let Some((fp, sig)) = &signed {
            doc["signer"] = json!(fp);
            doc["signature"] = json!(sig);
        }
        writeln!(ctx.out, "{doc}")?;
    } else {
        writeln!(ctx.out, "{}", h.to_arg())?;
        if let Some((fp, _)) = &signed {
            eprintln!("signed by {fp} (the signature is in `cplane ledger head --json`)");
        }
        eprintln!(
            "ledger of plane {}: {} entr{}; keep this head: `cplane ledger prove --since {}` later proves the ledger only grew",
            plane.name,
            h.size,
            if h.size == 1 { "y" } else { "ies" },
            h.to_arg()
        );
    }
    Ok(exit::CLEAN)
}

fn hexes(v: &[merkle::Hash]) -> Vec<String> {
    v.iter().map(|h| cplane::id::to_hex(h)).collect()
}

fn prove(ctx: &mut Ctx, n: Option<u64>, size: Option<u64>, since: Option<String>, with_entry: bool) -> CmdResult {
    let (_, plane, ledger) = open(ctx)?;
    let now = ledger.head()?;
    if let Some(since) = since {
        let old = Head::parse(&since).map_err(|m| CliError::Usage(format!("--since: {m}"), None))?;
        if old.size == 0 || old.size > now.size {
            return Err(CliError::Usage(
                format!(
                    "--since {}: the ledger has {} entries; a head to prove against has 1 to {}",
                    old.to_arg(),
                    now.size,
                    now.size
                ),
                None,
            ));
        }
        let was = ledger.root(old.size)?;
        if was != old.root {
            eprintln!(
                "cplane: the ledger's first {} entries have root {}, not {}: the ledger was rewritten since that head was taken (or the head is from another plane)",
                old.size,
                cplane::id::to_hex(&was),
                cplane::id::to_hex(&old.root)
            );
            return Ok(exit::FINDINGS);
        }
        let proof = ledger.prove_consistency(old.size, now.size)?;
        let doc = json!({
            "type": "consistency",
            "plane": plane.name,
            "old_size": old.size,
            "old_root": cplane::id::to_hex(&old.root),
            "size": now.size,
            "root": cplane::id::to_hex(&now.root),
            "proof": hexes(&proof),
        });
        writeln!(ctx.out, "{doc}")?;
        return Ok(exit::CLEAN);
    }
    let n = n.unwrap_or_default();
    let size = size.unwrap_or(now.size);
    if size > now.size || n >= size {
        return Err(CliError::Usage(
            format!(
                "entry {n} of a {size}-entry ledger: the ledger of plane {} has {} entries (0 to {})",
                plane.name,
                now.size,
                now.size.saturating_sub(1)
            ),
            None,
        ));
    }
    let entry = ledger
        .entry(n)?
        .ok_or_else(|| CliError::Usage(format!("entry {n} does not parse; run `cplane ledger verify`"), None))?;
    let proof = ledger.prove_inclusion(n, size)?;
    let mut doc = json!({
        "type": "inclusion",
        "plane": plane.name,
        "index": n,
        "size": size,
        "entry_hash": entry.hash,
        "root": cplane::id::to_hex(&ledger.root(size)?),
        "proof": hexes(&proof),
    });
    if with_entry {
        doc["entry"] = json!(entry);
    }
    writeln!(ctx.out, "{doc}")?;
    Ok(exit::CLEAN)
}

fn field<'a>(doc: &'a serde_json::Value, key: &str) -> Result<&'a serde_json::Value, CliError> {
    doc.get(key)
        .ok_or_else(|| CliError::Usage(format!("the proof has no {key:?} field"), None))
}

fn hash_field(doc: &serde_json::Value, key: &str) -> Result<merkle::Hash, CliError> {
    field(doc, key)?
        .as_str()
        .and_then(|s| cplane::id::ObjectId::from_hex(s).map(|i| i.0))
        .ok_or_else(|| CliError::Usage(format!("the proof's {key:?} is not 64 hex digits"), None))
}

fn u64_field(doc: &serde_json::Value, key: &str) -> Result<u64, CliError> {
    field(doc, key)?
        .as_u64()
        .ok_or_else(|| CliError::Usage(format!("the proof's {key:?} is not a number"), None))
}

fn check_proof(ctx: &mut Ctx, file: &std::path::Path, signers: Option<&std::path::Path>) -> CmdResult {
    let json = ctx.json;
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(16 << 20).read_to_string(&mut text))
    };
    read.map_err(|e| CliError::Usage(format!("{}: {e}", file.display()), None))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(
            format!("{}: not a proof from `cplane ledger prove` ({e})", file.display()),
            None,
        )
    })?;
    if doc.get("type").and_then(|t| t.as_str()) == Some("head") {
        return check_head(ctx, &doc, signers);
    }
    let proof: Vec<merkle::Hash> = field(&doc, "proof")?
        .as_array()
        .ok_or_else(|| CliError::Usage("the proof's \"proof\" is not a list".into(), None))?
        .iter()
        .map(|v| v.as_str().and_then(|s| cplane::id::ObjectId::from_hex(s).map(|i| i.0)))
        .collect::<Option<_>>()
        .ok_or_else(|| CliError::Usage("the proof's \"proof\" holds something other than hashes".into(), None))?;
    let kind = field(&doc, "type")?.as_str().unwrap_or_default();
    let (ok, what) = match kind {
        "inclusion" => {
            let index = u64_field(&doc, "index")?;
            let size = u64_field(&doc, "size")?;
            let entry_hash = hash_field(&doc, "entry_hash")?;
            let root = hash_field(&doc, "root")?;
            // The entry, when included, must be the one hashed.
            let entry_ok = match doc.get("entry") {
                None | Some(serde_json::Value::Null) => true,
                Some(v) => serde_json::from_value::<Entry>(v.clone()).ok().is_some_and(|e| {
                    e.seq == index && e.compute_hash() == Some(entry_hash) && e.hash_bytes() == Some(entry_hash)
                }),
            };
            let ok = entry_ok && merkle::verify_inclusion(&merkle::leaf_hash(&entry_hash), index, size, &proof, &root);
            (
                ok,
                format!(
                    "entry {index} (hash {}) is in the {size}-entry ledger with root {}",
                    cplane::id::to_hex(&entry_hash),
                    cplane::id::to_hex(&root)
                ),
            )
        }
        "consistency" => {
            let old_size = u64_field(&doc, "old_size")?;
            let size = u64_field(&doc, "size")?;
            let old_root = hash_field(&doc, "old_root")?;
            let root = hash_field(&doc, "root")?;
            let ok = merkle::verify_consistency(old_size, size, &old_root, &root, &proof);
            (
                ok,
                format!(
                    "the {size}-entry ledger with root {} extends the {old_size}-entry ledger with root {}",
                    cplane::id::to_hex(&root),
                    cplane::id::to_hex(&old_root)
                ),
            )
        }
        other => {
            return Err(CliError::Usage(
                format!("the proof's type is {other:?}; cplane ledger prove writes inclusion or consistency"),
                None,
            ));
        }
    };
    if json {
        writeln!(ctx.out, "{}", json!({"ok": ok, "type": kind, "claim": what}))?;
    } else if ok {
        writeln!(ctx.out, "ok: {what}")?;
    } else {
        writeln!(ctx.out, "proof does NOT verify: it does not show that {what}")?;
    }
    Ok(if ok { exit::CLEAN } else { exit::FINDINGS })
}

/// Checks a head document from `ledger head --json`: its signature, by a
/// key of the allowed_signers file `signers`.
fn check_head(ctx: &mut Ctx, doc: &serde_json::Value, signers: Option<&std::path::Path>) -> CmdResult {
    let json = ctx.json;
    let plane = field(doc, "plane")?.as_str().unwrap_or_default().to_string();
    let head = Head {
        size: u64_field(doc, "size")?,
        root: hash_field(doc, "root")?,
    };
    let Some(sig) = doc.get("signature").and_then(|s| s.as_str()) else {
        return Err(CliError::Usage(
            "the head is not signed: nothing to check (configure a key with `cplane key use` where it was taken)"
                .into(),
            None,
        ));
    };
    let Some(path) = signers else {
        return Err(CliError::Usage(
            "checking a signed head needs the keys to trust".into(),
            Some("give --signers FILE (the plane's registries/allowed_signers)".into()),
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display()), None))?;
    let list = cplane::keys::parse_allowed_signers(&text, &path.display().to_string())
        .map_err(|e| CliError::Usage(e.to_string(), None))?;
    let r = cplane::keys::verify(
        sig,
        cplane::ledger::SIG_NAMESPACE,
        head.signed_text(&plane).as_bytes(),
        &list,
    );
    let (ok, what) = match &r {
        Ok(s) => (
            true,
            format!(
                "head {} of plane {plane} is signed by {} ({}, {})",
                head.to_arg(),
                s.fingerprint(),
                s.principals.join(","),
                s.role.as_str()
            ),
        ),
        Err(e) => (false, format!("head {} of plane {plane}: {e}", head.to_arg())),
    };
    if json {
        writeln!(ctx.out, "{}", json!({"ok": ok, "type": "head", "claim": what}))?;
    } else if ok {
        writeln!(ctx.out, "ok: {what}")?;
    } else {
        writeln!(ctx.out, "signature does NOT verify: {what}")?;
    }
    Ok(if ok { exit::CLEAN } else { exit::FINDINGS })
}

/// A writer moves HEAD, then appends its entry: a reader in between sees
/// HEAD ahead of the ledger. When that is what `r` says, wait for the
/// store's writer lock (as long as writers wait for it) and look again;
/// only a gap that is still there is reported.
pub fn settle_head(
    store: &mut cplane::store::Store,
    plane: &str,
    ledger: &Ledger,
    r: &mut cplane::ledger::VerifyReport,
) {
    if r.head_unrecorded.is_none() {
        return;
    }
    if let Ok(_lock) = store.lock(super::interrupt_flag()) {
        let head = store.head(plane).ok().flatten().map(|h| h.to_hex());
        let recorded = ledger.last().ok().flatten().and_then(|e| e.head);
        if head.is_some() && head == recorded {
            r.head_unrecorded = None;
        }
    }
}

fn verify(ctx: &mut Ctx) -> CmdResult {
    let json = ctx.json;
    let (mut store, plane, ledger) = open(ctx)?;
    let head = store.head(&plane.name)?;
    let recorded = match &head {
        Some(id) => store.read_snapshot(id)?.ledger,
        None => None,
    };
    // A registry that does not read is reported, never a reason to skip
    // checking the chain.
    let (signers, registry_problem) = match super::key::trusted(&plane) {
        Ok(s) => (s, None),
        Err(super::CliError::Usage(m, _)) => (Vec::new(), Some(m)),
        Err(e) => return Err(e),
    };
    let mut r = ledger.verify(head.as_ref(), recorded, &signers)?;
    if let Some(m) = registry_problem {
        r.registry_mismatch = Some(m);
    }
    settle_head(&mut store, &plane.name, &ledger, &mut r);
    let clean = r.is_clean();
    let h = r.head.unwrap_or(Head {
        size: 0,
        root: merkle::empty_root(),
    });
    if json {
        writeln!(
            ctx.out,
            "{}",
            json!({
                "plane": plane.name,
                "ok": clean,
                "entries_ok": r.good,
                "head": h.to_arg(),
                "broken": r.broken.as_ref().map(|b| json!({"seq": b.seq, "line": b.line, "problem": b.problem})),
                "head_unrecorded": r.head_unrecorded,
                "torn_tail_bytes": r.torn_tail,
                "tree_rebuilt": r.tree_rebuilt,
                "tree_unchecked": r.tree_unchecked,
                "signed": r.signed,
                "bad_signatures": r.bad_signatures.iter().map(|(seq, p)| json!({"seq": seq, "problem": p})).collect::<Vec<_>>(),
                "registry_mismatch": r.registry_mismatch,
            })
        )?;
        return Ok(if clean { exit::CLEAN } else { exit::FINDINGS });
    }
    if let Some(n) = r.torn_tail {
        eprintln!(
            "note: the ledger ends in an incomplete line of {n} bytes (an interrupted write, never reported as done); the next command that writes removes it"
        );
    }
    if r.tree_unchecked {
        eprintln!(
            "note: this user may not write {}: the entries were checked and the head computed from them, the tree files were not compared",
            cplane::ledger::TREE_DIR
        );
    }
    if r.tree_rebuilt {
        eprintln!(
            "note: rebuilt {} from the entries (it is derived from them)",
            cplane::ledger::TREE_DIR
        );
    }
    for (seq, problem) in &r.bad_signatures {
        writeln!(
            ctx.out,
            "{}: entry {seq}: signature: {problem}",
            ledger.path().display()
        )?;
    }
    if let Some(m) = &r.registry_mismatch {
        writeln!(ctx.out, "{m}")?;
    }
    match &r.broken {
        Some(b) => {
            let at = if b.line > 0 {
                format!("{}:{}: ", ledger.path().display(), b.line)
            } else {
                format!("{}: ", ledger.path().display())
            };
            writeln!(ctx.out, "{at}{}", b.problem)?;
            if b.line > 0 && b.seq > 0 {
                // The chain checks stop at the broken entry, so the head of
                // the good entries is the head of the ones before it.
                let head = if b.seq == h.size {
                    format!(" (head {})", h.to_arg())
                } else {
                    String::new()
                };
                writeln!(
                    ctx.out,
                    "ledger of plane {} is broken at entry {}; entries 0 to {} check out{head}",
                    plane.name,
                    b.seq,
                    b.seq - 1
                )?;
            } else {
                writeln!(ctx.out, "ledger of plane {} is broken", plane.name)?;
            }
        }
        None => {
            if let Some(now) = &r.head_unrecorded {
                writeln!(
                    ctx.out,
                    "HEAD of plane {} is {} but the last entry records another HEAD: a command was interrupted before writing its entry (the next command that writes records it), or entries at the end were removed",
                    plane.name,
                    &now[..12]
                )?;
            }
            writeln!(
                ctx.out.info(),
                "ledger of plane {}: {} entr{}, chain and Merkle tree intact; {}; head {}",
                plane.name,
                r.good,
                if r.good == 1 { "y" } else { "ies" },
                match (r.signed, r.bad_signatures.len()) {
                    (0, _) => "none signed".to_string(),
                    (n, 0) => format!("{n} signed, every signature by a trusted key allowed to sign it"),
                    (n, bad) => format!("{n} signed; {bad} flagged above"),
                },
                h.to_arg()
            )?;
        }
    }
    Ok(if clean { exit::CLEAN } else { exit::FINDINGS })
}
