//! Diffing two snapshots of a generated 10,000-file tree that differ in 10
//! files: `diff_trees` alone, and as the CLI runs it (open the store first).
//! The walk descends only where tree ids differ, so this should cost
//! microseconds, not a pass over the tree.

use cplane::Control;
use cplane::diff::{TreeSource, diff_trees};
use cplane::id::TreeId;
use cplane::snapshot::{SealOptions, seal};
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

fn seal_root(store: &mut Store) -> TreeId {
    let lock = StoreLock::acquire(store.dir()).expect("lock");
    let plane = store.plane("main").expect("plane main");
    seal(store, &lock, &plane, SealOptions::default(), Control::quiet())
        .expect("seal")
        .snapshot
        .root
}

fn bench_diff(c: &mut Criterion) {
    let tree = common::generate(common::FILES);
    let mut store = Store::init(&tree.root).expect("init store");
    let a = seal_root(&mut store);
    let changed = common::mutate(&tree, 10, 1);
    let b = seal_root(&mut store);
    let changes = diff_trees(&TreeSource::store(&store), &a, &b).expect("diff");
    assert_eq!(changes.len(), changed.len(), "two snapshots should differ in 10 files");

    let mut g = c.benchmark_group("diff");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("diff_trees/10_of_10000", |bch| {
        bch.iter(|| black_box(diff_trees(&TreeSource::store(&store), &a, &b).expect("diff")))
    });
    g.bench_function("open_and_diff/10_of_10000", |bch| {
        bch.iter(|| {
            let s = Store::open(&tree.root).expect("open store");
            black_box(diff_trees(&TreeSource::store(&s), &a, &b).expect("diff"))
        })
    });
    g.bench_function("diff_trees/identical", |bch| {
        bch.iter(|| black_box(diff_trees(&TreeSource::store(&store), &b, &b).expect("diff")))
    });
    g.finish();
}

criterion_group!(benches, bench_diff);
criterion_main!(benches);
