#!/usr/bin/env bash
# Times `cplane gc` against `git gc` on the same 20-checkpoint history.
#
# usage: scripts/bench-gc.sh [N]          (a generated tree of N files, default 20000)
#        BENCH_TREE=/path scripts/bench-gc.sh   (an existing tree instead, e.g. an
#                                              unpacked Debian linux-source-6.1)
#
# The history: checkpoint 1 is the tree; each of checkpoints 2..20 rewrites
# K files (scripts/gen-tree.py --mutate, K = N/200, at least 10) and adds a
# 256 KiB incompressible file that the next checkpoint deletes. git gets the
# same 20 states as 20 commits. Then:
#   cplane: delete the odd checkpoints (10 of 20), `cplane gc`;
#   git:    `git gc --prune=now` (git keeps every commit: it cannot drop a
#           parent, which is the point of restic-style retention);
# each timed once on a fresh copy of the history (a gc is not repeatable on
# one store), with peak RSS from /usr/bin/time. Also a fresh `init` of the
# 10 live checkpoints (each state sealed in turn into a new store), whose
# packs the gc'd store's packs are compared with.
#
# Environment: BENCH_DIR (default ./bench-work), CPLANE_BIN (default:
# target/release/cplane, built when missing). Tools: git, python3, rsync, /usr/bin/time.
set -euo pipefail

N=${1:-20000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/bench-work}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
GEN="$REPO/scripts/gen-tree.py"
BIN="${CPLANE_BIN:-$REPO/target/release/cplane}"
W="$BENCH_DIR/gc"
BASE="${BENCH_TREE:-$BENCH_DIR/tree-$N}"
# An existing tree: K from its file count, and any of its files may change.
[ -z "${BENCH_TREE:-}" ] || N=$(find "$BASE" -type f -not -path '*/.git/*' | wc -l)
K=$(( N / 200 )); [ "$K" -ge 10 ] || K=10
mutate() {
    if [ -n "${BENCH_TREE:-}" ]; then
        python3 "$GEN" --mutate-any "$T" "$K" "$1"
    else
        python3 "$GEN" "$N" "$T" --mutate "$K" "$1"
    fi
}
say() { printf '\n== %s\n' "$*" >&2; }

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

if [ -z "${CPLANE_BIN:-}" ] && [ ! -x "$BIN" ]; then
    (cd "$REPO" && cargo build --release --quiet)
fi
if [ -z "${BENCH_TREE:-}" ] && [ ! -d "$BASE" ]; then
    say "generating $N files in $BASE"
    python3 "$GEN" "$N" "$BASE"
fi

rm -rf "$W"; mkdir -p "$W"
T="$W/tree"; G="$W/git"; C="$W/cp"
say "building the 20-state history (cplane and git)"
cp -a "$BASE" "$T"
mkdir -p "$W/states"
"$BIN" -C "$T" init >/dev/null
git -c gc.auto=0 init -q "$T" && mv "$T/.git" "$G"
git() { command git -c gc.auto=0 --git-dir="$G" --work-tree="$T" "$@"; }
git add -A -f && git commit -q -m 1
for i in $(seq 2 20); do
    mutate "$i" >/dev/null
    rm -f "$T"/blob-*.bin
    head -c 262144 /dev/urandom > "$T/blob-$i.bin"
    "$BIN" -C "$T" snapshot --name "S$i" >/dev/null
    git add -A -f && git commit -q -m "$i"
done
"$BIN" -C "$T" checkpoints
names() { "$BIN" -C "$T" checkpoints --json | python3 -c 'import json,sys; print(" ".join(c["checkpoint"] for c in json.load(sys.stdin)))'; }
first=$(names | cut -d" " -f1)
del=("$first"); for i in 3 5 7 9 11 13 15 17 19; do del+=("S$i"); done
"$BIN" -C "$T" checkpoints delete "${del[@]}" >/dev/null
cp -a "$T/.cp" "$W/cp-before"

rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
secs() { sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$1"; }

say "cplane gc"
sync
/usr/bin/time -v "$BIN" -C "$T" gc --json > "$W/gc.json" 2> "$W/gc.time"
say "git gc --prune=now"
/usr/bin/time -v "$(type -P git)" -c gc.auto=0 --git-dir="$G" gc --prune=now -q 2> "$W/git.time"

say "fresh init of the 10 live checkpoints"
F="$W/fresh"; mkdir -p "$F"
live=$(names)
n=0
for c in $live; do
    "$BIN" -C "$T" rollback "$c" --force >/dev/null
    rsync -a --delete --exclude=/.cp "$T/" "$F/"
    if [ $n -eq 0 ]; then "$BIN" -C "$F" init >/dev/null; else "$BIN" -C "$F" snapshot >/dev/null; fi
    n=$((n+1))
done

du_b() { du -sb "$1" | cut -f1; }
cat <<EOF

gc on a 20-checkpoint history of $(find "$BASE" -type f | wc -l) files ($(du -sh "$BASE" | cut -f1)), 10 checkpoints deleted
| | wall | peak RSS |
|---|---|---|
| cplane gc | $(secs "$W/gc.time") | $(( $(rss "$W/gc.time") / 1024 )) MB |
| git gc --prune=now | $(secs "$W/git.time") | $(( $(rss "$W/git.time") / 1024 )) MB |

cplane .cp/packs: before $(du_b "$W/cp-before/packs") B, after gc $(du_b "$T/.cp/packs") B; fresh init of the $n live checkpoints: $(du_b "$F/.cp/packs") B
git .git after gc: $(du_b "$G") B
report: $(cat "$W/gc.json")
EOF
