#!/usr/bin/env bash
# Times `cplane pack` and `cplane install` with the release binary against
# `tar --zstd -cf` and `tar --zstd -xf` of the same files (issue 10's
# targets: neither slower than tar).
#
# usage: scripts/bench-packages.sh [N]            (a generated tree of N files, default 10000: about 107 MB)
#        scripts/bench-packages.sh --tree DIR [N]  (the first N files of DIR in path order,
#                                                  e.g. linux-source-6.1/drivers: 529 MB)
#
# Environment:
#   BENCH_DIR    work directory (default ./bench-work at the repository root; gitignored)
#   RUNS         timed runs of each command (default 6)
#   CPLANE_BIN   the cplane binary to time (default: build target/release/cplane)
#
# What it measures (hyperfine; JSON in $BENCH_DIR/results/):
#   1. pack: `cplane pack --spec SPEC-000 --from SRC --key K -o P` (gates on
#      every byte, a BLAKE3 per file, signed manifest and attestation) against
#      `tar --zstd -cf T -C SRC .`, warm page cache;
#   2. install: `cplane install P` into a copy of a governed plane whose ledger
#      trusts K (checked, stored, staged, journaled, flushed, registered,
#      owned, sealed, recorded) against `tar --zstd -xf P` into an empty
#      directory (nothing checked, nothing flushed), and `tar` followed by
#      `sync -f` for reference. Before every run the previous copies are
#      moved aside (deleted after the runs: on ext4 without a journal, files
#      freed in the last minutes slow every later create), the plane template
#      is copied, and, when run as root, the page cache is dropped and the
#      archive read back, so each run starts from the same cold-written state;
#   3. peak RSS of one install (`/usr/bin/time -f %M`).
# The ledger targets (verify 100,000 entries, proofs over 1,000,000) are
# criterion benches: `cargo bench --bench ledger`.
set -euo pipefail

TREE=""
if [ "${1:-}" = "--tree" ]; then
    TREE=$(cd "${2:?--tree needs a directory}" && pwd)
    shift 2
fi
N=${1:-10000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/bench-work}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RUNS=${RUNS:-6}
BIN="${CPLANE_BIN:-$REPO/target/release/cplane}"
RES="$BENCH_DIR/results"
W="$BENCH_DIR/pkg"
# The last run's work directory is moved aside, not deleted: on ext4
# without a journal, deleting tens of thousands of files slows every
# create for minutes, and the timings below would measure that. Everything
# set aside is deleted once the timings are done.
TRASH="$BENCH_DIR/trash"
mkdir -p "$TRASH"
for d in "$RES" "$W"; do
    [ -e "$d" ] && mv "$d" "$TRASH/$(basename "$d").$(date +%s%N)"
done
mkdir -p "$RES" "$W"

say() { printf '\n== %s\n' "$*" >&2; }

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v python3 >/dev/null || need+=(python3)
command -v zstd >/dev/null || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

if [ -z "${CPLANE_BIN:-}" ]; then
    say "building the release binary"
    (cd "$REPO" && cargo build --release --quiet)
fi

# The package's files live under specs/SPEC-000/data/, which the genesis
# framework FMWK-000 of `init --governed` authorizes for SPEC-000.
SRC="$W/src"
DATA="$SRC/specs/SPEC-000/data"
mkdir -p "$DATA"
if [ -n "$TREE" ]; then
    say "copying the first $N files of $TREE"
    # The list goes through a file: `head` closing a pipe early would fail
    # the pipeline (pipefail).
    (cd "$TREE" && find . -type f -print0 | sort -z > "$W/files.list")
    (cd "$TREE" && head -z -n "$N" "$W/files.list" | cpio -0pdm --quiet "$DATA")
else
    BASE="$BENCH_DIR/tree-$N"
    if [ ! -f "$BASE.done" ]; then
        say "generating $N files in $BASE"
        rm -rf "$BASE"
        python3 "$REPO/scripts/gen-tree.py" "$N" "$BASE"
        touch "$BASE.done"
    fi
    cp -a "$BASE/." "$DATA/"
fi
FILES=$(find "$SRC" -type f | wc -l)
BYTES=$(du -sb "$SRC" | cut -f1)

say "a governed plane trusting an admin key"
T="$W/template"
mkdir -p "$T"
"$BIN" -C "$T" init --governed >/dev/null
"$BIN" -C "$T" key generate --out "$W/admin" --comment admin >/dev/null
"$BIN" -C "$T" key use "$W/admin" >/dev/null
"$BIN" -C "$T" key trust "$W/admin.pub" --role admin >/dev/null
"$BIN" -C "$T" snapshot -m "trusted keys" >/dev/null

say "pack ($FILES files, $BYTES bytes) against tar --zstd -cf, warm cache"
P="$W/bench.cppkg"
hyperfine -N -w 1 -r "$RUNS" --export-json "$RES/pack.json" \
    -n "cplane pack" "$BIN -C $T pack --spec SPEC-000 --from $SRC --key $W/admin -o $P" \
    -n "tar --zstd -cf" "tar --zstd -cf $W/bench.tar.zst -C $SRC ." >&2
"$BIN" -C "$T" pack --spec SPEC-000 --from "$SRC" --key "$W/admin" -o "$P" >/dev/null
tar --zstd -cf "$W/bench.tar.zst" -C "$SRC" .

# Before each run: the last run's copies moved aside, a fresh copy of the
# plane, an empty directory for tar, caches dropped (as root), archives read.
cat > "$W/prepare.sh" <<EOF
#!/bin/sh
set -e
mkdir -p "$W/old"
for d in "$W/plane" "$W/untar"; do
    [ -e "\$d" ] && mv "\$d" "$W/old/\$(basename "\$d").\$(date +%s%N)"
done
cp -a "$T" "$W/plane"
mkdir "$W/untar"
sync
if [ "\$(id -u)" -eq 0 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
cat "$P" "$W/bench.tar.zst" > /dev/null
EOF
chmod +x "$W/prepare.sh"

say "install against tar --zstd -xf (prepared before every run)"
hyperfine -N -w 1 -r "$RUNS" --prepare "$W/prepare.sh" --export-json "$RES/install.json" \
    -n "cplane install" "$BIN -C $W/plane install $P" \
    -n "tar --zstd -xf" "tar --zstd -xf $P -C $W/untar" \
    -n "tar --zstd -xf, sync -f" "sh -c 'tar --zstd -xf $P -C $W/untar && sync -f $W/untar'" >&2

say "peak RSS of one install"
"$W/prepare.sh"
/usr/bin/time -f "%M" -o "$RES/install.rss" "$BIN" -C "$W/plane" install "$P" >/dev/null
"$BIN" -C "$W/plane" verify >/dev/null
# (A run right after another still starts while this deletion slows ext4
# down; leave a few minutes between runs.)
rm -rf "$W/old" "$TRASH"

python3 - "$RES" "$FILES" "$BYTES" "${TREE:-generated tree of $N files}" <<'EOF'
import json, os, sys
res, files, size, what = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def med(name, i):
    with open(os.path.join(res, name)) as f:
        return json.load(f)["results"][i]["median"]
pack, tarc = med("pack.json", 0), med("pack.json", 1)
inst, tarx, tarxs = med("install.json", 0), med("install.json", 1), med("install.json", 2)
rss = int(open(os.path.join(res, "install.rss")).read().split()[-1]) / 1024
print(f"Packages: {files} files, {size / 1e6:.0f} MB ({what}); medians\n")
print("| operation | cplane | tar | ratio | target |")
print("|---|---|---|---|---|")
print(f"| pack / tar --zstd -cf | {pack:.2f} s | {tarc:.2f} s | {pack / tarc:.2f}x | <= 1x |")
print(f"| install / tar --zstd -xf | {inst:.2f} s | {tarx:.2f} s | {inst / tarx:.2f}x | <= 1x |")
print(f"| install / tar --zstd -xf && sync -f | {inst:.2f} s | {tarxs:.2f} s | {inst / tarxs:.2f}x | |")
print(f"\ninstall peak RSS: {rss:.0f} MB")
EOF
