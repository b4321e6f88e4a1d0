//! Shared by the criterion benches: a deterministic benchmark tree.
//!
//! `generate` writes `n` files of mixed sizes (mostly small source-like text,
//! some tens of KB, a few hundred KB, and one file in 2,000 of about 5 MB so
//! the large-file hashing path, above 4 MiB, is measured too)
//! in nested directories (`dNN/sNN/tNN/fNNNNNN.rs`, as `scripts/gen-tree.py`
//! lays them out), with exec bits, empty files and a few symlinks. The same
//! `n` always yields the same bytes.

#![allow(dead_code)] // each bench uses a different part of this module

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files in the criterion benches' tree.
pub const FILES: usize = 10_000;

/// A small, fast, deterministic PRNG (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// A generated tree.
pub struct GenTree {
    /// Its root directory (kept alive by `_dir`).
    pub root: PathBuf,
    /// Every regular file, in generation order.
    pub files: Vec<PathBuf>,
    /// Their total size.
    pub bytes: u64,
    _dir: tempfile::TempDir,
}

fn text_pool(rng: &mut Rng, size: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn", "let", "mut", "return", "struct", "impl", "match", "if", "else", "for", "while", "self", "pub", "use",
        "mod", "const", "static", "type", "where", "async", "await", "loop", "break", "true", "false", "None", "Some",
        "Ok", "Err", "value", "index", "buffer", "length", "count", "result", "error", "config", "plane", "tree",
        "blob", "snapshot", "hash", "store", "path", "file", "entry", "kind", "size", "{", "}", "(", ")", ";", "=",
        "==", "+", "-", "->", "=>", "&", "*", "::", ",",
    ];
    let mut out = Vec::with_capacity(size + 256);
    while out.len() < size {
        out.extend(std::iter::repeat_n(b' ', 4 * rng.range(0, 3)));
        for w in 0..rng.range(3, 14) {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[rng.range(0, WORDS.len() - 1)].as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn file_size(rng: &mut Rng, i: usize) -> usize {
    if i % 2000 == 1999 {
        return rng.range(4_500_000, 5_500_000); // large-file path
    }
    if i % 500 == 7 {
        return 0;
    }
    match rng.range(0, 999) {
        0..750 => rng.range(200, 6_000),
        750..970 => rng.range(6_000, 30_000),
        _ => rng.range(30_000, 150_000),
    }
}

/// `dNN/sNN/tNN/fNNNNNN.rs`, relative.
pub fn rel_path(i: usize) -> PathBuf {
    PathBuf::from(format!(
        "d{:02}/s{:02}/t{:02}/f{i:06}.rs",
        i / 10_000,
        (i / 500) % 20,
        (i / 25) % 20
    ))
}

/// Writes the `n`-file tree into a fresh temporary directory.
pub fn generate(n: usize) -> GenTree {
    let dir = tempfile::Builder::new()
        .prefix("cplane-bench-")
        .tempdir()
        .expect("temporary directory");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    let mut rng = Rng::new(42);
    let pool = text_pool(&mut rng, 8 << 20);
    let mut files = Vec::with_capacity(n);
    let mut bytes = 0u64;
    for i in 0..n {
        let p = root.join(rel_path(i));
        fs::create_dir_all(p.parent().expect("has a parent")).expect("create dirs");
        let size = file_size(&mut rng, i);
        let mut f = fs::File::create(&p).expect("create file");
        if size > 0 {
            let header = format!("// file {i}\n");
            f.write_all(header.as_bytes()).expect("write");
            let mut left = size.saturating_sub(header.len());
            while left > 0 {
                let take = left.min(pool.len() / 2);
                let start = rng.range(0, pool.len() - take);
                f.write_all(&pool[start..start + take]).expect("write");
                left -= take;
            }
        }
        drop(f);
        if i % 97 == 0 {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        if i % 1000 == 3 {
            let link = p.with_extension("link");
            std::os::unix::fs::symlink(p.file_name().expect("file name"), link).expect("symlink");
        }
        bytes += fs::metadata(&p).expect("stat").len();
        files.push(p);
    }
    GenTree {
        root,
        files,
        bytes,
        _dir: dir,
    }
}

/// Appends a line to `k` distinct files chosen by `seed` (like `gen-tree.py --mutate`).
pub fn mutate(tree: &GenTree, k: usize, seed: u64) -> Vec<PathBuf> {
    let mut rng = Rng::new(seed);
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    while chosen.len() < k.min(tree.files.len()) {
        let i = rng.range(0, tree.files.len() - 1);
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
        .into_iter()
        .map(|i| {
            let p = tree.files[i].clone();
            let mut f = fs::OpenOptions::new().append(true).open(&p).expect("open for append");
            writeln!(f, "// changed by mutation seed {seed}").expect("append");
            p
        })
        .collect()
}

/// Removes the store, if any, so the next `Store::init` starts fresh.
pub fn remove_store(root: &Path) {
    let cp = root.join(".cp");
    if cp.exists() {
        fs::remove_dir_all(&cp).expect("remove .cp");
    }
}
