//! The ledger's targets: `Ledger::verify` of 100,000 entries (under 0.5 s),
//! and an inclusion or consistency proof for a 1,000,000-entry ledger
//! (under 10 ms, opening the files included, and under 2 KB).
//!
//! The ledgers are synthetic but valid: entries shaped like a snapshot's
//! (refs, a message, hex ids), chained and hashed as `cplane` writes them,
//! in a real store (`.cp/planes/main/ledger`), with the Merkle tree built
//! by the first read. `LEDGER_BENCH_DIR=/path` keeps the stores there
//! (`ledger-100k`, `ledger-1m`) so the release binary can be timed on
//! them too (`cplane -C /path/ledger-100k ledger verify`).

use cplane::ledger::{Entry, Ledger, merkle};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A store at `dir` whose plane `main` has a ledger of `n` synthetic entries.
fn store_with_ledger(dir: &Path, n: u64) -> cplane::store::Store {
    std::fs::create_dir_all(dir).expect("mkdir");
    let store = match cplane::store::Store::open(dir) {
        Ok(s) => s,
        Err(_) => cplane::store::Store::init(dir).expect("init store"),
    };
    let ledger = Ledger::of(&store, "main");
    if ledger.last().ok().flatten().is_some_and(|e| e.seq + 1 == n) {
        return store;
    }
    std::fs::create_dir_all(ledger.path().parent().expect("plane dir")).expect("mkdir plane");
    let mut out = std::io::BufWriter::new(std::fs::File::create(ledger.path()).expect("create ledger"));
    let mut prev = cplane::id::to_hex(&[0; 32]);
    for seq in 0..n {
        let id = cplane::id::to_hex(blake3::hash(&seq.to_le_bytes()).as_bytes());
        let mut e = Entry {
            seq,
            time: format!(
                "2026-11-30T13:{:02}:{:02}.{:09}Z",
                seq / 60 % 60,
                seq % 60,
                seq % 1_000_000_000
            ),
            actor: "user:bench".into(),
            op: "snapshot".into(),
            plane: "main".into(),
            refs: vec!["HEAD".into(), format!("checkpoints/VER-20261130{seq:06}")],
            paths: Vec::new(),
            paths_omitted: 0,
            snapshot: Some(id.clone()),
            head: Some(id),
            message: format!("checkpoint VER-20261130{seq:06}"),
            key: None,
            prev: prev.clone(),
            hash: String::new(),
            sig: None,
        };
        e.hash = cplane::id::to_hex(&e.compute_hash().expect("hash"));
        prev = e.hash.clone();
        writeln!(out, "{}", e.to_line()).expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let _ = std::fs::remove_dir_all(dir.join(".cp/planes/main/ledger.tree"));
    store
}

fn place(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("LEDGER_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d).join(name)),
        None => {
            let t = tempfile::tempdir().expect("tempdir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn bench_ledger(c: &mut Criterion) {
    let (_keep, dir) = place("ledger-100k");
    let store = store_with_ledger(&dir, 100_000);
    let ledger = Ledger::of(&store, "main");
    let r = ledger.verify(None, None, &[]).expect("verify");
    assert!(r.broken.is_none() && r.good == 100_000, "{:?}", r.broken);
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("verify 100k entries", |b| {
        b.iter(|| black_box(ledger.verify(None, None, &[]).expect("verify").good))
    });

    let (_keep1m, dir1m) = place("ledger-1m");
    let store = store_with_ledger(&dir1m, 1_000_000);
    let big = Ledger::of(&store, "main");
    let head = big.head().expect("head");
    assert_eq!(head.size, 1_000_000);
    let inc = big.prove_inclusion(654_321, head.size).expect("inclusion");
    let con = big.prove_consistency(333_333, head.size).expect("consistency");
    println!(
        "proof sizes for 1,000,000 entries: inclusion {} hashes ({} bytes), consistency {} hashes ({} bytes)",
        inc.len(),
        inc.len() * 32,
        con.len(),
        con.len() * 32
    );
    let leaf = merkle::leaf_hash(
        &big.entry(654_321)
            .expect("read")
            .expect("entry")
            .hash_bytes()
            .expect("hash"),
    );
    assert!(merkle::verify_inclusion(&leaf, 654_321, head.size, &inc, &head.root));
    // Each iteration starts from the paths, as a `cplane ledger prove` does.
    g.bench_function("inclusion proof, 1M entries (open + read entry + prove)", |b| {
        b.iter(|| {
            let l = Ledger::of(&store, "main");
            let e = l.entry(654_321).expect("read").expect("entry");
            black_box((e, l.prove_inclusion(654_321, 1_000_000).expect("prove")))
        })
    });
    g.bench_function("consistency proof, 1M entries (open + prove)", |b| {
        b.iter(|| {
            let l = Ledger::of(&store, "main");
            black_box(l.prove_consistency(333_333, 1_000_000).expect("prove"))
        })
    });
    g.bench_function("head, 1M entries (open + root)", |b| {
        b.iter(|| black_box(Ledger::of(&store, "main").head().expect("head")))
    });
    g.finish();
}

criterion_group!(benches, bench_ledger);
criterion_main!(benches);
