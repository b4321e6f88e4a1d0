//! Retention through the binary (issue 11): `checkpoints delete`, `prune`
//! with restic's keep policy, history that ends where it was pruned, and
//! commands that change nothing recording nothing; plus a property test of
//! the policy against a naive model of it.

mod common;

use common::{cplane, stdout, stdout_code, write};
use cplane::retention::{Item, Keep, Policy, Rule};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn json(d: &Path, args: &[&str], code: i32) -> Value {
    serde_json::from_str(&stdout_code(d, args, code)).unwrap()
}

fn checkpoints(d: &Path) -> Vec<String> {
    json(d, &["checkpoints", "--json"], 0)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["checkpoint"].as_str().unwrap().to_string())
        .collect()
}

fn head_name(d: &Path) -> String {
    json(d, &["show", "HEAD", "--json"], 0)["checkpoint"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ledger_ops(d: &Path) -> Vec<String> {
    json(d, &["ledger", "--json"], 0)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["op"].as_str().unwrap().to_string())
        .collect()
}

/// A plane with checkpoints c1 (init is first), c2, c3, c4; HEAD is c4.
fn plane_with_four() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    write(d, "a.txt", "0\n");
    stdout(d, &["init"]);
    for i in 1..=4 {
        write(d, "a.txt", &format!("{i}\n"));
        stdout(d, &["snapshot", "--name", &format!("c{i}")]);
    }
    t
}

// ------------------------------------------------- nothing changed, nothing recorded

#[test]
fn unchanged_snapshot_prints_head_and_records_nothing() {
    let t = plane_with_four();
    let d = t.path();
    let before = (checkpoints(d), ledger_ops(d));
    let out = stdout(d, &["snapshot", "-m", "again"]);
    assert_eq!(out.trim(), "unchanged since HEAD (c4): nothing recorded");
    assert_eq!((checkpoints(d), ledger_ops(d)), before);
    let j = json(d, &["snapshot", "--json"], 0);
    assert_eq!(j["unchanged"], true);
    assert_eq!(j["checkpoint"], "c4");
    stdout(d, &["snapshot", "--allow-unchanged", "--name", "c5"]);
    assert_eq!(head_name(d), "c5");
    assert_eq!(ledger_ops(d).last().unwrap(), "snapshot");
}

#[test]
fn governed_unchanged_snapshot_records_nothing() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    stdout(d, &["init", "--governed"]);
    // The first governed snapshot compiles and seals the registry state.
    stdout(d, &["snapshot", "--allow-unchanged"]);
    let before = (checkpoints(d), ledger_ops(d));
    let out = stdout(d, &["snapshot"]);
    assert!(out.contains("unchanged since HEAD"), "{out}");
    assert_eq!((checkpoints(d), ledger_ops(d)), before);
}

#[test]
fn rollback_to_where_it_is_does_nothing() {
    let t = plane_with_four();
    let d = t.path();
    let before = (checkpoints(d), ledger_ops(d));
    let out = stdout(d, &["rollback", "HEAD"]);
    assert!(out.contains("already as c4") && out.contains("nothing to do"), "{out}");
    assert_eq!(
        (checkpoints(d), ledger_ops(d)),
        before,
        "a no-op rollback recorded something"
    );
    let j = json(d, &["rollback", "c4", "--json"], 0);
    assert_eq!(j["nothing_to_do"], true);
    assert_eq!(j["rescue"], Value::Null);
    assert_eq!(j["head"]["checkpoint"], "c4");
    // The files already as c3, HEAD still c4: one checkpoint (the new HEAD), no rescue.
    write(d, "a.txt", "3\n");
    let out = stdout(d, &["rollback", "c3"]);
    assert!(out.contains("no rescue checkpoint"), "{out}");
    let after = checkpoints(d);
    assert_eq!(after.len(), before.0.len() + 1);
    assert!(!after.iter().any(|c| c.starts_with("RESCUE-")), "{after:?}");
    assert_eq!(ledger_ops(d).last().unwrap(), "rollback");
    // A restore that writes nothing says so and keeps nothing.
    let out = stdout(d, &["restore", "c3", "a.txt"]);
    assert!(out.contains("already as c3") && out.contains("nothing to do"), "{out}");
    assert_eq!(checkpoints(d), after);
}

// ------------------------------------------------- checkpoints delete

#[test]
fn checkpoints_delete_removes_refs_and_records_it() {
    let t = plane_with_four();
    let d = t.path();
    let all = checkpoints(d);
    let out = stdout(d, &["checkpoints", "delete", "c2", "--dry-run"]);
    assert!(out.contains("would delete c2"), "{out}");
    assert_eq!(checkpoints(d), all, "--dry-run deleted");
    let j = json(d, &["checkpoints", "delete", "c2", "c3", "--json"], 0);
    assert_eq!(j["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(j["dry_run"], false);
    let left = checkpoints(d);
    assert!(!left.contains(&"c2".to_string()) && !left.contains(&"c3".to_string()));
    let entries = json(d, &["ledger", "--json"], 0);
    let last = entries.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["op"], "checkpoint-delete");
    assert_eq!(last["refs"], serde_json::json!(["checkpoints/c2", "checkpoints/c3"]));
    stdout(d, &["ledger", "verify"]);
    // The deleted checkpoints are no refs any more; c1 still is.
    stdout_code(d, &["show", "c2"], 2);
    stdout(d, &["show", "c1"]);
}

#[test]
fn checkpoints_delete_refuses_head_and_unknown_names_and_deletes_nothing() {
    let t = plane_with_four();
    let d = t.path();
    let all = checkpoints(d);
    let o = cplane(d).args(["checkpoints", "delete", "c1", "c4"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("c4") && err.contains("HEAD's checkpoint"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let o = cplane(d)
        .args(["checkpoints", "delete", "c1", "nope", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("nope"), "{v}");
    assert_eq!(checkpoints(d), all, "a refused delete removed something");
    assert!(!d.join(".cp/planes/main/ledger.pending").exists());
}

// ------------------------------------------------- history ends where it was pruned

#[test]
fn log_fsck_and_refs_after_a_parent_is_deleted() {
    let t = plane_with_four();
    let d = t.path();
    stdout(d, &["checkpoints", "delete", "c3"]);
    let log = stdout(d, &["log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("c4"), "{log}");
    assert_eq!(lines[1], "… history before this was pruned");
    let j = json(d, &["log", "--json"], 0);
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["history_pruned"], true);
    // HEAD~1 is gone with it, and says why.
    let o = cplane(d).args(["show", "HEAD~1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pruned"));
    // fsck: a parent no ref names is pruned history, not damage.
    let f = json(d, &["fsck", "--json"], 0);
    assert_eq!(f["clean"], true, "{f}");
    let notes = f["notes"].to_string();
    assert!(notes.contains("history pruned"), "{f}");
    // Older checkpoints still show their own history.
    stdout(d, &["show", "c2"]);
    stdout_code(d, &["diff", "c2", "c4"], 1);
}

#[test]
fn log_survives_a_parent_snapshot_object_that_is_gone() {
    let t = plane_with_four();
    let d = t.path();
    let c3 = json(d, &["show", "c3", "--json"], 0)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    stdout(d, &["checkpoints", "delete", "c3", "c2", "c1"]);
    // What a gc does: c3's pack (its snapshot, root tree and blob, sealed in
    // one transaction and reached by no ref now) leaves the store.
    let store = cplane::store::Store::open(d).unwrap();
    let (pack, _) = store.locate(&cplane::id::ObjectId::from_hex(&c3).unwrap()).unwrap();
    let (pack_path, idx_path) = (pack.pack_path.clone(), pack.idx_path.clone());
    drop(store);
    std::fs::remove_file(idx_path).unwrap();
    std::fs::remove_file(pack_path).unwrap();
    let log = stdout(d, &["log"]);
    assert!(log.ends_with("… history before this was pruned\n"), "{log}");
    let f = json(d, &["fsck", "--json"], 0);
    assert!(f["notes"].to_string().contains("its objects are gone"), "{f}");
    stdout(d, &["verify"]);
    stdout(d, &["explain", "a.txt"]);
    write(d, "a.txt", "5\n");
    stdout(d, &["snapshot"]);
}

// ------------------------------------------------- prune

#[test]
fn prune_keep_last_keeps_newest_and_head_and_records_it() {
    let t = plane_with_four();
    let d = t.path();
    let all = checkpoints(d);
    assert_eq!(all.len(), 5);
    let out = stdout(d, &["prune", "--keep-last", "2", "--dry-run"]);
    assert!(out.contains("(buckets in UTC)"), "{out}");
    assert!(out.contains("last snapshot"), "{out}");
    assert!(out.contains("would remove 3 checkpoints, kept 2"), "{out}");
    assert_eq!(checkpoints(d), all, "--dry-run removed");
    let j = json(d, &["prune", "--keep-last", "2", "--json"], 0);
    assert_eq!(j["time_zone"], "UTC");
    let kept: Vec<&str> = j["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["checkpoint"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["c4", "c3"]);
    assert_eq!(j["remove"].as_array().unwrap().len(), 3);
    assert_eq!(checkpoints(d).len(), 2);
    assert_eq!(ledger_ops(d).last().unwrap(), "prune");
    stdout(d, &["ledger", "verify"]);
    // HEAD's checkpoint is kept even when the policy would drop it.
    stdout(d, &["rollback", "c3"]);
    write(d, "a.txt", "x\n");
    let out = stdout(d, &["prune", "--keep-last", "1", "--dry-run"]);
    let head = head_name(d);
    assert!(
        out.lines()
            .any(|l| l.starts_with("keep") && l.contains(&head) && l.contains("HEAD's checkpoint")),
        "{out}"
    );
}

#[test]
fn prune_without_keep_rule_is_refused() {
    let t = plane_with_four();
    let d = t.path();
    let o = cplane(d).arg("prune").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--keep-last") && err.contains("hint:"), "{err}");
    let o = cplane(d)
        .args(["prune", "--keep-daily", "0", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    cplane(d).args(["prune", "--keep-last", "x"]).assert().code(2);
    assert_eq!(checkpoints(d).len(), 5);
}

#[test]
fn prune_keep_daily_keeps_one_per_day_oldest_included() {
    let t = plane_with_four();
    let d = t.path();
    // Every checkpoint was sealed today (UTC): --keep-daily 3 keeps the
    // newest, and the oldest because the rule still has count left.
    let j = json(d, &["prune", "--keep-daily", "3", "--dry-run", "--json"], 0);
    let reasons: BTreeMap<String, Vec<String>> = j["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["checkpoint"].as_str().unwrap().to_string(),
                serde_json::from_value(k["reasons"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons["c4"], ["daily snapshot", "HEAD's checkpoint"]);
    assert_eq!(reasons.len(), 2, "{j}");
    assert!(reasons.values().any(|r| r == &["oldest daily snapshot"]), "{j}");
}

// ------------------------------------------------- the policy against a naive model

/// The naive reading of the policy: per rule with count N, the newest
/// checkpoint of each of the first N distinct buckets (newest first), and
/// the oldest checkpoint when fewer than N buckets came before it.
fn naive(policy: &Policy, items: &[Item], protected: &BTreeSet<String>) -> BTreeSet<String> {
    let mut sorted = items.to_vec();
    sorted.sort_by(|a, b| b.time_unix_ns.cmp(&a.time_unix_ns).then(b.name.cmp(&a.name)));
    let mut kept: BTreeSet<String> = protected.iter().cloned().collect();
    for rule in Rule::ALL {
        let n = match policy.get(rule) {
            Keep::Count(0) => continue,
            Keep::Count(n) => n as usize,
            Keep::Unlimited => usize::MAX,
        };
        let buckets: Vec<i64> = sorted
            .iter()
            .enumerate()
            .map(|(nr, i)| rule.bucket(i.time_unix_ns, nr))
            .collect();
        let mut seen = Vec::new();
        for (i, b) in buckets.iter().enumerate() {
            if !seen.contains(b) {
                if seen.len() < n {
                    kept.insert(sorted[i].name.clone());
                }
                seen.push(*b);
            }
        }
        if let Some(last) = sorted.len().checked_sub(1) {
            let before: BTreeSet<i64> = buckets[..last].iter().copied().collect();
            if before.len() < n {
                kept.insert(sorted[last].name.clone());
            }
        }
    }
    kept
}

fn keep_strategy() -> impl Strategy<Value = Keep> {
    prop_oneof![
        3 => (0u32..5).prop_map(Keep::Count),
        1 => Just(Keep::Unlimited),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn prune_keeps_what_the_naive_policy_keeps(
        spread in prop_oneof![Just(3_600i64), Just(86_400), Just(7 * 86_400), Just(400 * 86_400)],
        offsets in prop::collection::vec(0i64..200, 0..40),
        base in 0i64..4_000_000_000,
        keeps in prop::collection::vec(keep_strategy(), 6),
        protect in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    ) {
        let items: Vec<Item> = offsets
            .iter()
            .enumerate()
            .map(|(k, o)| Item {
                name: format!("c{k:02}"),
                id: cplane::id::SnapshotId(cplane::id::ObjectId([k as u8; 32])),
                // Some share a time exactly; the rest spread by the chosen unit.
                time_unix_ns: (base + o * spread / 7) * 1_000_000_000,
                kind: "checkpoint",
            })
            .collect();
        let mut policy = Policy::default();
        for (rule, k) in Rule::ALL.into_iter().zip(keeps) {
            policy.set(rule, k);
        }
        let protected: BTreeMap<String, String> = if items.is_empty() {
            BTreeMap::new()
        } else {
            protect.iter().map(|i| (items[i.index(items.len())].name.clone(), "HEAD's checkpoint".to_string())).collect()
        };
        let decisions = cplane::retention::apply(&policy, items.clone(), &protected);
        prop_assert_eq!(decisions.len(), items.len());
        let kept: BTreeSet<String> = decisions.iter().filter(|d| d.keep).map(|d| d.item.name.clone()).collect();
        let want = naive(&policy, &items, &protected.keys().cloned().collect());
        prop_assert_eq!(&kept, &want);
        // Newest first, and every kept one says why.
        prop_assert!(decisions.windows(2).all(|w| w[0].item.time_unix_ns >= w[1].item.time_unix_ns));
        prop_assert!(decisions.iter().all(|d| d.keep != d.reasons.is_empty()));
    }
}

// ------------------------------------------------- plane add

#[test]
fn plane_add_refuses_a_missing_path_unless_create() {
    let t = plane_with_four();
    let d = t.path();
    let o = cplane(d).args(["plane", "add", "docs", "docs"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not exist") && err.contains("--create"), "{err}");
    assert!(!d.join("docs").exists(), "a refused plane add created the directory");
    assert!(!stdout(d, &["plane", "list"]).contains("docs"));
    stdout(d, &["plane", "add", "docs", "docs/sub", "--create"]);
    assert!(d.join("docs/sub").is_dir());
    assert!(stdout(d, &["plane", "list"]).contains("docs"));
}
