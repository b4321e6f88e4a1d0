//! Hashing a generated 10,000-file tree: `hash_file` over every file, one
//! thread and rayon-parallel, and the verify-style scan (walk + hash, no store
//! writes, no stat cache). Throughput is the tree's bytes.

use cplane::Control;
use cplane::fsys::Dir;
use cplane::hash::hash_file;
use cplane::scan::{Record, ScanOptions, scan};
use cplane::scope::Scope;
use cplane::store::Store;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

fn bench_hash(c: &mut Criterion) {
    let tree = common::generate(common::FILES);
    let mut g = c.benchmark_group("hash");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(tree.bytes));

    let hash = |p: &std::path::PathBuf| {
        let dir = Dir::open(p.parent().expect("a file has a parent")).expect("open dir");
        let name = p.file_name().expect("a file has a name").as_encoded_bytes();
        black_box(hash_file(&dir, name, p, None).expect("hash"));
    };
    g.bench_function("hash_file/sequential", |b| {
        b.iter(|| {
            for p in &tree.files {
                hash(p);
            }
        })
    });
    g.bench_function("hash_file/parallel", |b| {
        b.iter(|| tree.files.par_iter().for_each(hash))
    });

    let store = Store::init(&tree.root).expect("init store");
    let plane = store.plane("main").expect("plane main");
    g.bench_function("scan/verify", |b| {
        b.iter(|| {
            let r = scan(
                &Scope::open(&plane).expect("scope"),
                ScanOptions {
                    cache: None,
                    writer: None,
                    record: Record::Nothing,
                    ctl: Control::quiet(),
                    content: None,
                },
            )
            .expect("scan");
            assert!(r.findings.is_empty());
            black_box(r.root)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_hash);
criterion_main!(benches);
