//! The per-file gate engine: `Engine::run` with the built-in secrets set over
//! a generated ~200 MB tree of source-like text (the benches' usual mix of
//! file sizes, ~18,000 files). Throughput is the tree's bytes.
//!
//! `GATES_TREE=/path cargo bench --bench gates` runs it over an existing
//! tree instead (a copy it may write a `.cp` store into, e.g. the Linux
//! kernel source that `scripts/bench-governance.sh` prepares); then findings
//! are allowed (real trees hold test keys) and only counted.

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

/// The tree a run reads.
struct Tree {
    root: std::path::PathBuf,
    files: Vec<std::path::PathBuf>,
    bytes: u64,
}

/// The files (regular, not under `.cp`) and total bytes of an existing tree.
fn existing(root: &std::path::Path) -> (Vec<std::path::PathBuf>, u64) {
    let mut files = Vec::new();
    let mut bytes = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() && e.file_name() != ".cp" {
                stack.push(p);
            } else if ft.is_file() {
                bytes += e.metadata().expect("stat").len();
                files.push(p);
            }
        }
    }
    files.sort();
    (files, bytes)
}

fn bench_gates(c: &mut Criterion) {
    let given = std::env::var_os("GATES_TREE").map(std::path::PathBuf::from);
    // The generated tree lives as long as `_generated`.
    let (_generated, tree) = match &given {
        None => {
            let g = common::generate(FILES);
            let t = (g.root.clone(), g.files.clone(), g.bytes);
            (Some(g), t)
        }
        Some(root) => {
            let (files, bytes) = existing(root);
            (None, (root.clone(), files, bytes))
        }
    };
    let tree = Tree {
        root: tree.0,
        files: tree.1,
        bytes: tree.2,
    };
    if !tree.root.join(".cp").exists() {
        Store::init(&tree.root).expect("init store");
    }
    let store = Store::open(&tree.root).expect("open store");
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
            if given.is_none() {
                assert!(r.findings.is_empty(), "{:?}", r.findings.first());
                assert_eq!(r.bytes_read, tree.bytes);
            }
            black_box(r.files_read)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_gates);
criterion_main!(benches);
