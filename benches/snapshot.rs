//! Snapshotting a generated 10,000-file tree, the way the CLI does it (open or
//! init the store, take the lock, seal): the first snapshot into a fresh store,
//! an unchanged re-snapshot (stat cache hits only), a re-snapshot after 10
//! files changed, and `status` of the unchanged tree.

use cplane::Control;
use cplane::snapshot::{SealOptions, SealReport, seal};
use cplane::store::Store;
use cplane::store::lock::StoreLock;
use cplane::worktree::status;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

fn open_and_seal(root: &Path) -> SealReport {
    let mut store = Store::open(root).expect("open store");
    seal_in(&mut store)
}

fn seal_in(store: &mut Store) -> SealReport {
    let lock = StoreLock::acquire(store.dir()).expect("lock");
    let plane = store.plane("main").expect("plane main");
    seal(store, &lock, &plane, SealOptions::default(), Control::quiet()).expect("seal")
}

fn bench_snapshot(c: &mut Criterion) {
    let tree = common::generate(common::FILES);
    let mut g = c.benchmark_group("snapshot");
    // Flat sampling: a first snapshot takes long enough that criterion's default
    // linear sampling (1+2+...+10 iterations) would blow the time budget.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    g.throughput(Throughput::Bytes(tree.bytes));
    g.bench_function("first", |b| {
        b.iter_batched(
            || common::remove_store(&tree.root),
            |()| {
                let mut store = Store::init(&tree.root).expect("init store");
                let r = seal_in(&mut store);
                assert_eq!(r.hashed_files, tree.files.len() as u64);
                black_box(r.id)
            },
            BatchSize::PerIteration,
        )
    });

    // From here on the store holds the tree; every iteration adds one checkpoint.
    common::remove_store(&tree.root);
    Store::init(&tree.root).expect("init store");
    open_and_seal(&tree.root);

    g.throughput(Throughput::Elements(tree.files.len() as u64));
    g.bench_function("unchanged", |b| {
        b.iter(|| {
            let r = open_and_seal(&tree.root);
            assert_eq!(r.hashed_files, 0, "unchanged re-snapshot read files");
            black_box(r.id)
        })
    });

    let mut seed = 0;
    g.bench_function("10_changed", |b| {
        b.iter_batched(
            || {
                seed += 1;
                common::mutate(&tree, 10, seed)
            },
            |_| black_box(open_and_seal(&tree.root).id),
            BatchSize::PerIteration,
        )
    });

    open_and_seal(&tree.root); // settle the stat cache
    g.bench_function("status_unchanged", |b| {
        b.iter(|| {
            let store = Store::open(&tree.root).expect("open store");
            let plane = store.plane("main").expect("plane main");
            let r = status(&store, &plane, Control::quiet()).expect("status");
            assert!(r.is_clean());
            black_box(r)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_snapshot);
criterion_main!(benches);
