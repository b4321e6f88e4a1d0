//! The ledger's Merkle tree at 1,000,000 entries: `Tree::open` plus an
//! inclusion proof for a middle entry, and `Tree::open` plus a consistency
//! proof from a third of the ledger to all of it, as a `cplane ledger` proof
//! command would run them (a fresh open each time). Targets: under 10 ms and
//! under 2 KB per proof. The tree is built once, by `Tree::rebuild`.

use cplane::ledger::merkle::{HASH_LEN_BYTES, Tree, leaf_hash, verify_consistency, verify_inclusion};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ENTRIES: u64 = 1_000_000;

fn bench_merkle(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ledger.tree");
    let start = Instant::now();
    let tree = Tree::rebuild(&path, (0..ENTRIES).map(|i| leaf_hash(&i.to_le_bytes()))).expect("rebuild");
    eprintln!("merkle: rebuilt {ENTRIES} leaves in {:.2?}", start.elapsed());
    let root = tree.root(ENTRIES).expect("root");
    drop(tree);

    let (index, old) = (ENTRIES / 2 + 1, ENTRIES / 3);
    let open = || Tree::open(&path, ENTRIES).expect("open").expect("a complete tree");
    let inclusion = open().inclusion_proof(index, ENTRIES).expect("proof");
    let consistency = open().consistency_proof(old, ENTRIES).expect("proof");
    let old_root = open().root(old).expect("root");
    assert!(verify_inclusion(
        &leaf_hash(&index.to_le_bytes()),
        index,
        ENTRIES,
        &inclusion,
        &root
    ));
    assert!(verify_consistency(old, ENTRIES, &old_root, &root, &consistency));
    eprintln!(
        "merkle: inclusion proof of entry {index} in {ENTRIES}: {} hashes, {} bytes; \
         consistency proof {old} -> {ENTRIES}: {} hashes, {} bytes",
        inclusion.len(),
        inclusion.len() * HASH_LEN_BYTES,
        consistency.len(),
        consistency.len() * HASH_LEN_BYTES,
    );

    let mut g = c.benchmark_group("merkle");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("open+inclusion_proof/1M", |b| {
        b.iter(|| black_box(open().inclusion_proof(black_box(index), ENTRIES).expect("proof")))
    });
    g.bench_function("open+consistency_proof/1M", |b| {
        b.iter(|| black_box(open().consistency_proof(black_box(old), ENTRIES).expect("proof")))
    });
    g.finish();
}

criterion_group!(benches, bench_merkle);
criterion_main!(benches);
