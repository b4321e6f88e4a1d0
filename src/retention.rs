//! Retention: deleting checkpoints by name and pruning them by a keep
//! policy, with restic's semantics (`restic forget`), not git's.
//!
//! A checkpoint ref is what keeps a snapshot's data; a snapshot's `parent`
//! is history, not a reason to keep anything (`store-format.md`,
//! "Retention and reachability"). Deleting or pruning a checkpoint removes
//! only its ref: its objects stay in the packs, unreachable, until a gc;
//! `log` stops where the retained history ends.
//!
//! The keep policy is restic's `ApplyPolicy`
//! (`internal/data/snapshot_policy.go`): checkpoints sorted newest first;
//! each rule (`last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`)
//! with a count N keeps the newest checkpoint of each of the first N
//! distinct buckets it meets, and also the oldest checkpoint when it still
//! has count left on reaching it ("oldest daily snapshot"). Buckets are
//! computed in **UTC** (restic uses local time): hour `YYYYMMDDHH`, day
//! `YYYYMMDD`, ISO 8601 week `YYYYWW`, month `YYYYMM`, year `YYYY`; `last`
//! puts every checkpoint in a bucket of its own. HEAD's checkpoint, and the
//! rescue checkpoints of a checkout that is not finished, are always kept.

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::store::Store;
use crate::store::lock::StoreLock;
use std::collections::BTreeMap;

/// How many buckets a rule keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The newest checkpoint of each of the first N buckets (0: the rule is off).
    Count(u32),
    /// The newest checkpoint of every bucket (restic's `unlimited`).
    Unlimited,
}

impl Keep {
    /// Parses `N` or `unlimited`, as restic's `--keep-*` options take them.
    pub fn parse(s: &str) -> Option<Keep> {
        if s == "unlimited" {
            return Some(Keep::Unlimited);
        }
        s.parse::<u32>().ok().map(Keep::Count)
    }

    fn is_on(self) -> bool {
        self != Keep::Count(0)
    }
}

/// One keep rule of a policy, in restic's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// `--keep-last`: every checkpoint is its own bucket.
    Last,
    /// `--keep-hourly`: UTC hour.
    Hourly,
    /// `--keep-daily`: UTC day.
    Daily,
    /// `--keep-weekly`: ISO 8601 week (weeks start on Monday, UTC).
    Weekly,
    /// `--keep-monthly`: UTC month.
    Monthly,
    /// `--keep-yearly`: UTC year.
    Yearly,
}

impl Rule {
    /// Every rule, in the order restic evaluates them.
    pub const ALL: [Rule; 6] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
        Rule::Yearly,
    ];

    /// The rule's name: `last`, `hourly`, ... (the `--keep-` option's suffix).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The bucket of a checkpoint sealed at `unix_ns` that is the `nr`-th
    /// newest (0-based): equal values are one bucket.
    pub fn bucket(self, unix_ns: i64, nr: usize) -> i64 {
        let (y, m, d, h, _, _) = crate::timefmt::utc_parts(unix_ns);
        let (m, d, h) = (i64::from(m), i64::from(d), i64::from(h));
        match self {
            Rule::Last => nr as i64,
            Rule::Hourly => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Rule::Daily => y * 10_000 + m * 100 + d,
            Rule::Weekly => {
                let (iy, w) = iso_week(unix_ns);
                iy * 100 + w
            }
            Rule::Monthly => y * 100 + m,
            Rule::Yearly => y,
        }
    }

    /// Why restic keeps a checkpoint by this rule: `daily snapshot`, or
    /// `oldest daily snapshot` for the oldest one kept while count was left.
    fn reason(self, oldest: bool) -> String {
        format!(
            "{}{} snapshot",
            if oldest { "oldest " } else { "" },
            if self == Rule::Last { "last" } else { self.name() }
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, <https://howardhinnant.github.io/date_algorithms.html>).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The ISO 8601 (year, week) of the UTC day of `unix_ns`: weeks start on
/// Monday, and week 1 is the one holding the year's first Thursday (Go's
/// `time.ISOWeek`, which restic uses).
pub fn iso_week(unix_ns: i64) -> (i64, i64) {
    let days = unix_ns.div_euclid(1_000_000_000).div_euclid(86_400);
    // 1970-01-01 was a Thursday: Monday = 1 ... Sunday = 7.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - weekday + 4;
    let (year, _, _, _, _, _) = crate::timefmt::utc_parts(thursday * 86_400 * 1_000_000_000);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week)
}

/// A keep policy: a count per rule (restic's `ExpirePolicy` without the
/// `--keep-within*` and `--keep-tag` options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Per rule, in [`Rule::ALL`] order.
    pub keep: [Keep; 6],
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep: [Keep::Count(0); 6],
        }
    }
}

impl Policy {
    /// The count of `rule`.
    pub fn get(&self, rule: Rule) -> Keep {
        self.keep[rule as usize]
    }

    /// Sets the count of `rule`.
    pub fn set(&mut self, rule: Rule, keep: Keep) {
        self.keep[rule as usize] = keep;
    }

    /// True when no rule keeps anything (restic refuses such a `forget`).
    pub fn is_empty(&self) -> bool {
        self.keep.iter().all(|k| !k.is_on())
    }

    /// `keep 3 last, 7 daily snapshots`, as restic describes a policy.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = Rule::ALL
            .iter()
            .filter_map(|&r| match self.get(r) {
                Keep::Count(0) => None,
                Keep::Count(n) => Some(format!("{n} {}", r.name())),
                Keep::Unlimited => Some(format!("all {}", r.name())),
            })
            .collect();
        if parts.is_empty() {
            "keep nothing".into()
        } else {
            format!("keep {} snapshots", parts.join(", "))
        }
    }
}

/// A checkpoint as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Checkpoint name.
    pub name: String,
    /// The snapshot it names.
    pub id: SnapshotId,
    /// Its seal time, ns since the epoch (UTC).
    pub time_unix_ns: i64,
    /// Its kind (`init`, `checkpoint`, `rescue`, `rollback`), for output.
    pub kind: &'static str,
}

/// The verdict on one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The checkpoint.
    pub item: Item,
    /// Kept (true) or removed.
    pub keep: bool,
    /// Why it is kept: the rules that matched (`daily snapshot`, `oldest
    /// monthly snapshot`), or a protection (`HEAD`, `rescue of an
    /// unfinished checkout`); empty when removed.
    pub reasons: Vec<String>,
}

/// Orders `items` newest first: by seal time, then by name, descending
/// (restic sorts by time alone, keeping the input order of equal times).
pub fn sort_newest_first(items: &mut [Item]) {
    items.sort_by(|a, b| (b.time_unix_ns, &b.name).cmp(&(a.time_unix_ns, &a.name)));
}

/// Applies `policy` to `items` as restic's `ApplyPolicy` does (see the
/// module documentation), then keeps every item named in `protected` with
/// its reason. Returns one decision per item, newest first.
pub fn apply(policy: &Policy, mut items: Vec<Item>, protected: &BTreeMap<String, String>) -> Vec<Decision> {
    sort_newest_first(&mut items);
    // Per rule: count left (None: unlimited) and the last bucket seen.
    let mut state: Vec<(Rule, Option<u32>, Option<i64>)> = Rule::ALL
        .iter()
        .filter(|&&r| policy.get(r).is_on())
        .map(|&r| {
            let left = match policy.get(r) {
                Keep::Count(n) => Some(n),
                Keep::Unlimited => None,
            };
            (r, left, None)
        })
        .collect();
    let n = items.len();
    let mut out = Vec::with_capacity(n);
    for (nr, item) in items.into_iter().enumerate() {
        let oldest = nr + 1 == n;
        let mut reasons = Vec::new();
        for (rule, left, last) in &mut state {
            if *left == Some(0) {
                continue;
            }
            let val = rule.bucket(item.time_unix_ns, nr);
            if Some(val) != *last || oldest {
                reasons.push(rule.reason(Some(val) == *last && oldest));
                *last = Some(val);
                if let Some(l) = left {
                    *l -= 1;
                }
            }
        }
        if let Some(why) = protected.get(&item.name) {
            reasons.push(why.clone());
        }
        out.push(Decision {
            keep: !reasons.is_empty(),
            item,
            reasons,
        });
    }
    out
}

/// The checkpoints of `plane` that retention never removes, with why:
/// every one naming HEAD's snapshot, and the rescue checkpoints (and new
/// HEAD) of a checkout whose journal is still pending.
///
/// # Errors
/// A damaged HEAD ref.
pub fn protected(store: &Store, plane: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(head) = store.head(plane)? {
        for (name, id) in store.checkpoints(plane)? {
            if id == head {
                out.insert(name, "HEAD's checkpoint".to_string());
            }
        }
    }
    let unfinished = "a rescue checkpoint of an unfinished checkout".to_string();
    let jp = crate::checkout::journal_path(store, plane);
    if jp.exists() {
        // A journal that does not load still protects the newest rescues it may name.
        if let Ok(j) = crate::checkout::journal::load(&jp) {
            out.entry(j.rescue_name.clone()).or_insert_with(|| unfinished.clone());
            if let Some((_, name)) = &j.new_head {
                out.entry(name.clone())
                    .or_insert_with(|| "the new HEAD of an unfinished rollback".to_string());
            }
        }
    }
    if let Ok(found) = std::fs::read_to_string(store.plane_dir(plane).join("journal.found")) {
        out.entry(found.trim().to_string()).or_insert(unfinished);
    }
    Ok(out)
}

/// Every checkpoint of `plane` as a policy [`Item`] (reading each snapshot
/// for its time and kind).
///
/// # Errors
/// Store damage reading a snapshot; a damaged ref.
pub fn items(store: &Store, plane: &str) -> Result<Vec<Item>> {
    store
        .checkpoints(plane)?
        .into_iter()
        .map(|(name, id)| {
            let s = store.read_snapshot(&id)?;
            Ok(Item {
                name,
                id,
                time_unix_ns: s.time_unix_ns,
                kind: s.kind.label(),
            })
        })
        .collect()
}

/// What `cplane checkpoints delete` would remove: the named checkpoints,
/// in the order given, duplicates once. Nothing is removed.
///
/// # Errors
/// [`Error::RefNotFound`] for a name that is not a checkpoint of `plane`;
/// [`Error::CheckpointProtected`] for HEAD's checkpoint or a rescue of an
/// unfinished checkout. The first problem stops the plan: either every
/// name can go, or none does.
pub fn plan_delete(store: &Store, plane: &str, names: &[String]) -> Result<Vec<Item>> {
    let keep = protected(store, plane)?;
    let mut out: Vec<Item> = Vec::new();
    for name in names {
        if out.iter().any(|i| &i.name == name) {
            continue;
        }
        let Some(id) = store.checkpoint(plane, name)? else {
            return Err(Error::RefNotFound {
                spec: name.clone(),
                why: format!("plane `{plane}` has no checkpoint of that name"),
            });
        };
        if let Some(why) = keep.get(name) {
            return Err(Error::CheckpointProtected {
                plane: plane.to_string(),
                name: name.clone(),
                why: why.clone(),
            });
        }
        let s = store.read_snapshot(&id)?;
        out.push(Item {
            name: name.clone(),
            id,
            time_unix_ns: s.time_unix_ns,
            kind: s.kind.label(),
        });
    }
    Ok(out)
}

/// The verdict of `policy` on every checkpoint of `plane`, newest first.
/// Nothing is removed.
///
/// # Errors
/// [`Error::NoKeepPolicy`] for a policy without a rule; as [`items`].
pub fn plan_prune(store: &Store, plane: &str, policy: &Policy) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::NoKeepPolicy);
    }
    Ok(apply(policy, items(store, plane)?, &protected(store, plane)?))
}

/// Removes the checkpoint refs of `items` from `plane`, under the store
/// lock; HEAD's checkpoint and pending rescues are checked again first, so
/// a plan made before the lock cannot remove them. The snapshots' objects
/// stay in the store until a gc.
///
/// # Errors
/// [`Error::CheckpointProtected`]; I/O errors naming the ref (the refs
/// removed before it stay removed).
pub fn remove(store: &Store, _lock: &StoreLock, plane: &str, items: &[Item]) -> Result<()> {
    let keep = protected(store, plane)?;
    if let Some(i) = items.iter().find(|i| keep.contains_key(&i.name)) {
        return Err(Error::CheckpointProtected {
            plane: plane.to_string(),
            name: i.name.clone(),
            why: keep[&i.name].clone(),
        });
    }
    for i in items {
        store.remove_checkpoint(plane, &i.name)?;
    }
    Ok(())
}

/// The snapshots that keep their data: every snapshot a checkpoint ref or
/// HEAD of `plane` names. A parent outside this set is pruned history.
///
/// # Errors
/// A damaged ref.
pub fn retained(store: &Store, plane: &str) -> Result<std::collections::HashSet<SnapshotId>> {
    let mut out: std::collections::HashSet<SnapshotId> =
        store.checkpoints(plane)?.into_iter().map(|(_, id)| id).collect();
    out.extend(store.head(plane)?);
    Ok(out)
}

/// The parent of `s` when its history is still retained: the parent is
/// named by a ref of the plane (`retained`, from [`retained`]) and still
/// stored. `None` for a first snapshot and where history was pruned
/// ([`pruned_before`] tells the two apart).
pub fn retained_parent(
    store: &Store,
    retained: &std::collections::HashSet<SnapshotId>,
    s: &crate::object::Snapshot,
) -> Option<SnapshotId> {
    s.parent.filter(|p| retained.contains(p) && store.contains(&p.object()))
}

/// True when `s` has a parent that is no longer retained: the history
/// before `s` was pruned (its checkpoint deleted; its objects gone or free
/// for a gc).
pub fn pruned_before(
    store: &Store,
    retained: &std::collections::HashSet<SnapshotId>,
    s: &crate::object::Snapshot,
) -> bool {
    s.parent.is_some() && retained_parent(store, retained, s).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600 * 1_000_000_000;
    const D: i64 = 24 * H;

    fn ns(y: i64, m: u32, d: u32, h: i64) -> i64 {
        days_from_civil(y, m, d) * D + h * H
    }

    fn item(name: &str, t: i64) -> Item {
        Item {
            name: name.into(),
            id: SnapshotId(crate::id::ObjectId([0; 32])),
            time_unix_ns: t,
            kind: "checkpoint",
        }
    }

    #[test]
    fn iso_weeks_match_the_calendar() {
        // 2021-01-03 is a Sunday of week 53 of 2020; 2021-01-04 a Monday of week 1.
        assert_eq!(iso_week(ns(2021, 1, 3, 12)), (2020, 53));
        assert_eq!(iso_week(ns(2021, 1, 4, 0)), (2021, 1));
        // 2024-12-30 (Monday) is in week 1 of 2025.
        assert_eq!(iso_week(ns(2024, 12, 30, 0)), (2025, 1));
        assert_eq!(iso_week(0), (1970, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_and_the_oldest_while_count_is_left() {
        let items = vec![
            item("a", ns(2026, 1, 1, 1)),
            item("b", ns(2026, 1, 1, 5)),
            item("c", ns(2026, 1, 2, 3)),
            item("d", ns(2026, 1, 2, 9)),
        ];
        let mut p = Policy::default();
        p.set(Rule::Daily, Keep::Count(2));
        let d = apply(&p, items.clone(), &BTreeMap::new());
        let kept: Vec<&str> = d.iter().filter(|d| d.keep).map(|d| d.item.name.as_str()).collect();
        assert_eq!(kept, ["d", "b"]);
        // Three days asked, two exist: the oldest is kept too, as restic does.
        p.set(Rule::Daily, Keep::Count(3));
        let d = apply(&p, items, &BTreeMap::new());
        let kept: Vec<&str> = d.iter().filter(|d| d.keep).map(|d| d.item.name.as_str()).collect();
        assert_eq!(kept, ["d", "b", "a"]);
        assert_eq!(d[3].reasons, ["oldest daily snapshot"]);
    }

    #[test]
    fn protection_keeps_what_the_policy_drops() {
        let items = vec![item("old", ns(2026, 1, 1, 0)), item("new", ns(2026, 1, 2, 0))];
        let mut p = Policy::default();
        p.set(Rule::Last, Keep::Count(1));
        let prot = BTreeMap::from([("old".to_string(), "HEAD's checkpoint".to_string())]);
        let d = apply(&p, items, &prot);
        assert!(d.iter().all(|d| d.keep));
        assert_eq!(d[0].reasons, ["last snapshot"]);
        assert_eq!(d[1].reasons, ["HEAD's checkpoint"]);
        assert_eq!(p.describe(), "keep 1 last snapshots");
        assert!(Policy::default().is_empty());
        assert_eq!(Keep::parse("unlimited"), Some(Keep::Unlimited));
        assert_eq!(Keep::parse("-1"), None);
    }
}
