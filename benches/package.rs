//! The package reader's serial prologue: everything `install` does with
//! the metadata members of a 10,000-file package before the first file
//! reaches its pool (the manifest parsed and checked in canonical form,
//! the attestation parsed and compared with the one the manifest implies).
//! The files themselves are timed by `scripts/bench-packages.sh`.

use cplane::id::ObjectId;
use cplane::keys::UtcTime;
use cplane::package::{Attestation, FileEntry, FileMode, Manifest};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// A manifest of `n` files laid out as `scripts/gen-tree.py` lays them out.
fn manifest(n: usize) -> Manifest {
    let files = (0..n)
        .map(|i| FileEntry {
            path: format!(
                "specs/SPEC-000/data/d{:02}/s{:02}/t{:02}/f{i:06}.rs",
                i / 10000,
                (i / 500) % 20,
                (i / 25) % 20
            ),
            mode: FileMode::Regular,
            size: 200 + (i as u64 * 7919) % 30_000,
            blake3: ObjectId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
        })
        .collect();
    Manifest {
        format: 1,
        id: "PKG-000".into(),
        version: "0.1.0".parse().expect("version"),
        spec_id: "SPEC-000".into(),
        framework_id: "FMWK-000".into(),
        tier: "ho1".into(),
        dependencies: Vec::new(),
        attestation: ObjectId([0; 32]),
        files,
    }
}

fn prologue(c: &mut Criterion) {
    let mut m = manifest(10_000);
    let signer = "SHA256:sxDd2VL5vwrJzcN8JDLgMALh76rnD6jrNWrxir/jLlk";
    let time = UtcTime::from_unix(1_764_547_200);
    let att = m.expected_attestation(signer, time).to_canonical_bytes();
    m.attestation = ObjectId(*blake3::hash(&att).as_bytes());
    let bytes = m.to_canonical_bytes();
    Manifest::parse(&bytes).expect("a valid manifest");
    let mut g = c.benchmark_group("package prologue, 10,000 files");
    g.bench_function("Manifest::parse", |b| b.iter(|| Manifest::parse(black_box(&bytes))));
    g.bench_function("Attestation::parse", |b| b.iter(|| Attestation::parse(black_box(&att))));
    g.bench_function("expected_attestation", |b| {
        b.iter(|| black_box(&m).expected_attestation(signer, time))
    });
    g.finish();
}

criterion_group!(benches, prologue);
criterion_main!(benches);
