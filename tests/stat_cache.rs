//! The stat cache's "hits" recording: a snapshot scan that records only the
//! files it read plus the indices of the cache rows that matched
//! (`Record::Hits`) makes, with `ScanResult::full_cache`, exactly the rows a
//! scan recording every file (`Record::All`) returns.

use cplane::scan::{Record, ScanOptions, scan};
use cplane::store::Store;
use cplane::store::index::{MappedCache, StatCache};
use proptest::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicBool;

fn rows(root: &std::path::Path, cache: Option<&MappedCache>, record: Record) -> cplane::scan::ScanResult {
    let store = Store::open(root).unwrap();
    let plane = store.plane("main").unwrap();
    let scope = cplane::scope::Scope::open(&plane).unwrap();
    let stop = AtomicBool::new(false);
    scan(
        &scope,
        ScanOptions {
            cache,
            writer: None,
            record,
            ctl: cplane::Control::new(&cplane::progress::NoProgress, &stop),
            content: None,
        },
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn hits_and_hashed_rows_make_the_rows_of_a_full_record(
        files in proptest::collection::btree_map("(d[0-3]/){0,2}f[0-9]{1,2}(\\.c)?", 0u8..4, 1..30),
        edits in proptest::collection::vec((0usize..40, 0u8..4), 0..12),
    ) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let paths: Vec<String> = files.keys().cloned().collect();
        for p in &paths {
            let f = root.join(p);
            if f.is_dir() {
                continue;
            }
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            if fs::write(&f, p.as_bytes()).is_err() {
                continue; // `a` a file and `a/b` wanted: skip
            }
        }
        drop(Store::init(root).unwrap());
        // A cache of every file, timed so that no row is racy: every unchanged file hits.
        let mut first = rows(root, None, Record::All).cache;
        first.sort();
        first.scan_started_ns = i64::MAX / 2;
        let mapped = MappedCache::from_cache(&first);
        for (i, what) in edits {
            let Some(p) = paths.get(i % paths.len().max(1)) else { continue };
            let f = root.join(p);
            if !f.is_file() {
                continue;
            }
            match what {
                0 => fs::write(&f, b"changed, longer than before").unwrap(),
                1 => fs::remove_file(&f).unwrap(),
                2 => fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap(),
                _ => fs::write(root.join(format!("{p}.new")), b"new").unwrap(),
            }
        }
        let mut all: StatCache = rows(root, Some(&mapped), Record::All).cache;
        all.sort();
        let hits = rows(root, Some(&mapped), Record::Hits);
        let full = hits.full_cache(&mapped);
        prop_assert_eq!(&full.entries, &all.entries);
        // The directory listings too: those read, and those taken from the cache.
        prop_assert_eq!(&full.dirs, &all.dirs);
        prop_assert_eq!(hits.cache.dirs.len() as u64, hits.listed_dirs);
        // Only what was read is a row of its own; the rest are hits.
        prop_assert_eq!(hits.cache.entries.len() as u64, hits.hashed_files);
        prop_assert_eq!(hits.cache_hits.len() as u64 + hits.hashed_files, hits.files);
    }
}

/// A directory's cached names are used exactly when its stamp (device,
/// inode, mtime, ctime) is the recorded one and the listing is older than
/// the racy margin: pinned with a forged listing that leaves a file out.
#[test]
fn a_listing_is_trusted_only_under_its_stamp_and_past_the_racy_margin() {
    use cplane::fsys::EntryType;
    use cplane::store::index::{DirListing, DirStamp, RACY_MARGIN_NS};
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("a/x"), b"x").unwrap();
    fs::write(root.join("a/y"), b"y").unwrap();
    drop(Store::init(root).unwrap());
    let mut cache = rows(root, None, Record::All).cache;
    cache.sort();
    let at = cache
        .dirs
        .iter()
        .position(|d| d.path.as_bytes() == b"a")
        .expect("a is listed");
    let real = cache.dirs[at].stamp;
    let files_seen = |stamp: DirStamp, started: i64| {
        let mut c = cache.clone();
        c.dirs[at] = DirListing::new(c.dirs[at].path.clone(), stamp, &[(b"x".to_vec(), EntryType::File)]);
        c.scan_started_ns = started;
        rows(root, Some(&MappedCache::from_cache(&c)), Record::Hashed).files
    };
    let edge = real.ctime_ns + RACY_MARGIN_NS;
    assert_eq!(files_seen(real, edge), 2, "racy: the directory is read");
    // Only where listings are kept (a filesystem that stamps directories,
    // `CPLANE_DIR_LISTINGS` not 0) is one used at all.
    let on = std::env::var_os("CPLANE_DIR_LISTINGS").is_none_or(|v| v != "0")
        && cplane::fsys::Dir::open(root).unwrap().keeps_dir_stamps();
    let used = if on { 1 } else { 2 };
    assert_eq!(
        files_seen(real, edge + 1),
        used,
        "old enough: the (forged) names are used"
    );
    for other in [
        DirStamp {
            dev: real.dev + 1,
            ..real
        },
        DirStamp {
            ino: real.ino + 1,
            ..real
        },
        DirStamp {
            mtime_ns: real.mtime_ns + 1,
            ..real
        },
        DirStamp {
            ctime_ns: real.ctime_ns - 1,
            ..real
        },
    ] {
        assert_eq!(
            files_seen(other, edge + 1),
            2,
            "{other:?}: another stamp, the directory is read"
        );
    }
}
