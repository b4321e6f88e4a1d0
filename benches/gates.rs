//! The per-file gate engine: `Engine::run` with the built-in secrets set over
//! a generated ~200 MB tree of source-like text (the benches' usual mix of
//! file sizes, ~18,000 files). Throughput is the tree's bytes.

use cplane::Control;
use cplane::gate::{Check, Engine, FileJob, Gate, default_secrets};
use cplane::path::RelPath;
use cplane::scope::Scope;
use cplane::store::Store;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

/// Files in the generated tree (about 200 MB with the common size mix).
const FILES: usize = 18_000;

fn bench_gates(c: &mut Criterion) {
    let tree = common::generate(FILES);
    let store = Store::init(&tree.root).expect("init store");
    let plane = store.plane("main").expect("plane main");
    let scope = Scope::open(&plane).expect("scope");
    let secrets = Gate {
        id: "no-secrets".into(),
        paths: vec![],
        check: Check::ForbiddenContent {
            default_secrets: true,
            patterns: vec![],
        },
    };
    assert!(!default_secrets().is_empty());
    let engine = Engine::new(vec![("fw".into(), secrets)]).expect("engine");
    let jobs: Vec<FileJob> = tree
        .files
        .iter()
        .map(|p| FileJob {
            path: RelPath::parse(p.strip_prefix(&tree.root).expect("under root").as_os_str().as_bytes())
                .expect("relative path"),
            owner: "spec".into(),
            gates: vec![0],
        })
        .collect();

    let mut g = c.benchmark_group("gates");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(tree.bytes));
    g.bench_function("default_secrets", |b| {
        b.iter(|| {
            let r = engine.run(&scope, &jobs, Control::quiet()).expect("run");
            assert!(r.findings.is_empty(), "{:?}", r.findings.first());
            assert_eq!(r.bytes_read, tree.bytes);
            black_box(r.files_read)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_gates);
criterion_main!(benches);
