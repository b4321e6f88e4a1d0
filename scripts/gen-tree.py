#!/usr/bin/env python3
"""Generate a deterministic benchmark tree: N files of mixed sizes (~10 KB mean,
about 1 GB at N=100,000) in nested directories, with source-like text that
compresses the way real trees do.

usage: gen-tree.py N DIR [--mutate K SEED]
       gen-tree.py --mutate-any DIR K SEED

With --mutate K SEED, modify K existing files in place instead (for diff and
rollback benchmarks): each gets a changed line appended.
"""
import os
import random
import sys


def pool(rng, size):
    words = [
        "fn", "let", "mut", "return", "struct", "impl", "match", "if", "else", "for",
        "while", "self", "pub", "use", "mod", "const", "static", "type", "where", "async",
        "await", "loop", "break", "continue", "true", "false", "None", "Some", "Ok", "Err",
        "value", "index", "buffer", "length", "count", "result", "error", "config", "plane",
        "tree", "blob", "snapshot", "hash", "store", "path", "file", "entry", "kind", "size",
        "{", "}", "(", ")", ";", "=", "==", "+", "-", "->", "=>", "&", "*", "::", ",",
    ]
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        line = " " * (4 * rng.randint(0, 3)) + line + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def file_size(rng):
    r = rng.random()
    if r < 0.75:
        return rng.randint(200, 6_000)
    if r < 0.97:
        return rng.randint(6_000, 30_000)
    if r < 0.999:
        return rng.randint(30_000, 150_000)
    return rng.randint(500_000, 3_000_000)


def path_for(i):
    return os.path.join(f"d{i // 10000:02d}", f"s{(i // 500) % 20:02d}", f"t{(i // 25) % 20:02d}", f"f{i:06d}.rs")


def generate(n, root):
    rng = random.Random(42)
    text = pool(rng, 16 << 20)
    total = 0
    for i in range(n):
        p = os.path.join(root, path_for(i))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        size = file_size(rng)
        start = rng.randint(0, len(text) - size - 1) if size < len(text) else 0
        body = f"// file {i}\n".encode() + text[start:start + size]
        with open(p, "wb") as f:
            f.write(body)
        if i % 97 == 0:
            os.chmod(p, 0o755)
        total += len(body)
    print(f"generated {n} files, {total / 1e6:.1f} MB in {root}")


def mutate_any(root, k, seed):
    """Appends a line to K regular files of an existing tree (any layout; `.cp`
    and `.git` skipped), chosen by SEED from the sorted file list."""
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in (".cp", ".git"))
        for name in names:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    files.sort()
    rng = random.Random(seed)
    for p in rng.sample(files, k):
        with open(p, "ab") as f:
            f.write(f"// changed by mutation seed {seed}\n".encode())


def mutate(n, root, k, seed):
    rng = random.Random(seed)
    for i in rng.sample(range(n), k):
        p = os.path.join(root, path_for(i))
        with open(p, "ab") as f:
            f.write(f"// changed by mutation seed {seed}\n".encode())


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--mutate-any":
        mutate_any(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    elif len(sys.argv) >= 5 and sys.argv[3] == "--mutate":
        mutate(int(sys.argv[1]), sys.argv[2], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    elif len(sys.argv) == 3:
        generate(int(sys.argv[1]), sys.argv[2])
    else:
        sys.exit(__doc__)
