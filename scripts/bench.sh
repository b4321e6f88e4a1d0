#!/usr/bin/env bash
# Times the release cplane binary against git and b3sum on one generated tree.
#
# usage: scripts/bench.sh [N]          (N files, default 100000: about 1 GB)
#        scripts/bench.sh --tree DIR   (an existing tree instead, e.g. an
#                                       unpacked Debian linux-source-6.1;
#                                       BENCH_TREE=DIR does the same)
#
# Environment:
#   BENCH_DIR   work directory (default ./bench-work at the repository root; gitignored)
#   RUNS        timed runs of the slow operations (default 5)
#   FAST_RUNS   timed runs of the fast ones: status, re-snapshot, diff (default 20)
#   CPLANE_BIN  the cplane binary to time (default: build target/release/cplane);
#               e.g. an older release, to compare two versions on one machine
#
# Every measurement is hyperfine with a warm page cache (--warmup 1 or more);
# JSON exports, peak RSS figures and the final Markdown table go to
# $BENCH_DIR/results/. Tools used: hyperfine, git, b3sum, python3 (for
# scripts/gen-tree.py and to read hyperfine's JSON), /usr/bin/time, plus
# coreutils/findutils.
set -euo pipefail

if [ "${1:-}" = "--tree" ]; then
    [ -d "${2:-}" ] || { echo "usage: $0 --tree DIR (DIR must be a directory)" >&2; exit 2; }
    BENCH_TREE=$(cd "$2" && pwd)
    export BENCH_TREE
    shift 2
fi
N=${1:-100000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/bench-work}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RUNS=${RUNS:-5}
FAST_RUNS=${FAST_RUNS:-20}
GEN="$REPO/scripts/gen-tree.py"
BIN="${CPLANE_BIN:-$REPO/target/release/cplane}"
RES="$BENCH_DIR/results"
BASE="${BENCH_TREE:-$BENCH_DIR/tree-$N}"  # pristine tree (generated, reused across runs)
CPT="$BENCH_DIR/cp"        # cplane's copy
GT="$BENCH_DIR/git"        # git's copy

say() { printf '\n== %s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v b3sum >/dev/null || need+=(b3sum)
command -v git >/dev/null || need+=(git)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi

# A reproducible git: no user or system config, fixed identity, no auto gc.
# `add -f`: a tree's own .gitignore (Debian's linux-source ignores `/*`) must
# not leave git comparing fewer files than cplane.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
G="git -c gc.auto=0 -c advice.detachedHead=false -C $GT"

# --- build and tree -----------------------------------------------------------
if [ -z "${CPLANE_BIN:-}" ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet)
fi

# mutcmd DIR K SEED: the command that appends a line to K files of DIR.
mutcmd() {
    if [ -n "${BENCH_TREE:-}" ]; then
        echo "python3 $GEN --mutate-any $1 $2 $3"
    else
        echo "python3 $GEN $N $1 --mutate $2 $3"
    fi
}
mut() { $(mutcmd "$@"); }

if [ -z "${BENCH_TREE:-}" ] && [ ! -f "$BASE.done" ]; then
    say "generating $N files in $BASE"
    rm -rf "$BASE"
    python3 "$GEN" "$N" "$BASE"
    touch "$BASE.done"
fi
say "copying the tree for cplane and for git"
rm -rf "$CPT" "$GT" "$RES"
mkdir -p "$RES"
cp -a "$BASE" "$CPT"
cp -a "$BASE" "$GT"
# Same work for both tools. `git status` does not read a directory its
# ignore rules exclude, while `cplane status` reads every directory (it must
# see a file added anywhere). Debian's linux-source adds `/*` (and
# `!/debian/`) to the top-level .gitignore, which ignores every top-level
# directory: git would then read 1 directory where cplane reads 5,000. Those
# two lines are dropped from both copies (the kernel's own ignore rules
# stay); set BENCH_KEEP_GITIGNORE=1 to time the tree as shipped.
if [ -z "${BENCH_KEEP_GITIGNORE:-}" ] && [ -f "$BASE/.gitignore" ] && grep -qx '/\*' "$BASE/.gitignore"; then
    say "dropping the top-level '/*' ignore rule (Debian's) from both copies, so git reads every directory as cplane does"
    for t in "$CPT" "$GT"; do
        sed -i -e '/^\/\*$/d' -e '/^!\/debian\/$/d' "$t/.gitignore"
    done
fi
FILES=$(find "$BASE" -type f | wc -l)
BYTES=$(du -sb "$BASE" | cut -f1)

# hf NAME RUNS WARMUP [hyperfine options and commands...]: one JSON per operation.
hf() {
    local name=$1 runs=$2 warmup=$3
    shift 3
    say "$name"
    hyperfine --style basic --runs "$runs" --warmup "$warmup" --export-json "$RES/$name.json" "$@" >&2
}

# rss NAME CMD...: one run under /usr/bin/time -v; peak RSS (KiB) and exit code to
# results/rss.tsv, the command's output to results/out-NAME.txt.
rss() {
    local name=$1
    shift
    local log="$RES/rss-$name.txt" rc=0
    /usr/bin/time -v -o "$log" "$@" >"$RES/out-$name.txt" 2>&1 || rc=$?
    local kb
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    printf '%s\t%s\t%s\n' "$name" "$kb" "$rc" >>"$RES/rss.tsv"
}

CP="$BIN -C $CPT"

# --- 1. first snapshot: cplane init (seals the first checkpoint) vs git add + commit
hf first-snapshot "$RUNS" 1 \
    -n "cplane init" --prepare "rm -rf $CPT/.cp" "$BIN init $CPT" \
    -n "git add -A -f && git commit" --prepare "rm -rf $GT/.git && $G init -q -b main" \
    "$G add -A -f && $G commit -q -m first"
rm -rf "$CPT/.cp"
rss init "$BIN" init "$CPT"

# --- 2. unchanged re-snapshot vs git status (HEAD = the init checkpoint, stat cache warm)
hf resnapshot "$FAST_RUNS" 2 -N \
    -n "cplane snapshot (unchanged)" "$CP snapshot" \
    -n "git status" "$G status"
rss snapshot $CP snapshot

# --- 3. status vs git status
hf status "$FAST_RUNS" 2 -N \
    -n "cplane status" "$CP status" \
    -n "git status" "$G status"
rss status $CP status

# --- 4. verify (full re-hash) vs b3sum over the same files, 2-way parallel
hf verify "$RUNS" 1 \
    -n "cplane verify" "$CP verify" \
    -n "b3sum -P2" "cd $CPT && find . -path ./.cp -prune -o -type f -print0 | xargs -0 -P2 -n 256 b3sum"
rss verify $CP verify

# --- 5. diff of two snapshots differing in 10 files vs git diff --stat
$CP snapshot --allow-unchanged --name bench-a >/dev/null  # (HEAD may hold this state already)
$G tag bench-a
mut "$CPT" 10 1
mut "$GT" 10 1
$CP snapshot --name bench-b >/dev/null
$G commit -q -a -m b
$G tag bench-b
DIFF_LINES=$($CP diff --name-status bench-a bench-b | wc -l || true)
[ "$DIFF_LINES" -eq 10 ] || echo "warning: cplane diff bench-a bench-b printed $DIFF_LINES lines, expected 10" >&2
hf diff "$FAST_RUNS" 3 -N -i \
    -n "cplane diff A B" "$CP diff bench-a bench-b" \
    -n "git diff --stat A B" "$G diff --stat bench-a bench-b"
rss diff $CP diff bench-a bench-b

# --- 6. rollback of 10 changed files vs git reset --hard. Before every run, 10
# files are changed and sealed/committed, so each run rewrites 10 files.
hf rollback "$RUNS" 1 \
    -n "cplane rollback" \
    --prepare "$(mutcmd "$CPT" 10 2) && $CP snapshot -m prep >/dev/null" \
    "$CP rollback bench-b" \
    -n "git reset --hard" \
    --prepare "$(mutcmd "$GT" 10 2) && $G commit -q -a -m prep" \
    "$G reset -q --hard bench-b"
mut "$CPT" 10 2
$CP snapshot -m prep >/dev/null
rss rollback $CP rollback --json bench-b
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(r["written"] != 10 or r["removed"] != 0)' \
    "$RES/out-rollback.txt" || echo "warning: rollback did not rewrite exactly 10 files: $(cat "$RES/out-rollback.txt")" >&2
[ -z "$($G status --porcelain)" ] || echo "warning: git tree not clean after reset" >&2
if ! $CP verify >/dev/null; then echo "warning: cplane verify is not clean after rollback" >&2; fi

# --- 7. fsck of the whole store vs git fsck --full
hf fsck "$RUNS" 1 \
    -n "cplane fsck" "$CP fsck" \
    -n "git fsck --full" "$G fsck --full --no-progress"
rss fsck $CP fsck

STORE_KB=$(du -sk "$CPT/.cp" | cut -f1)
GIT_KB=$(du -sk "$GT/.git" | cut -f1)
PACKS=$(find "$CPT/.cp/packs" -name '*.idx' | wc -l)

# --- table --------------------------------------------------------------------
python3 - "$RES" "$N" "$FILES" "$BYTES" "$STORE_KB" "$GIT_KB" "$PACKS" >"$RES/table.md" <<'PY'
import json, os, sys

res, n, files, nbytes, store_kb, git_kb, packs = sys.argv[1], *map(int, sys.argv[2:])
rss = {}
with open(os.path.join(res, "rss.tsv")) as f:
    for line in f:
        name, kb, rc = line.rstrip("\n").split("\t")
        rss[name] = (int(kb) if kb else None, int(rc))

def med(name, i):
    with open(os.path.join(res, name + ".json")) as f:
        return json.load(f)["results"][i]["median"]

def t(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"

# operation, json, competitor label, target text, check(cplane, competitor), rss key
rows = [
    ("first snapshot (`init`)", "first-snapshot", "git add -A -f && git commit", "≤ 0.20× (5× faster)",
     lambda c, g: c * 5 <= g, "init"),
    ("unchanged re-snapshot", "resnapshot", "git status", "≤ 1.2×", lambda c, g: c <= 1.2 * g, "snapshot"),
    ("status", "status", "git status", "≤ 1×", lambda c, g: c <= g, "status"),
    ("verify (full re-hash)", "verify", "b3sum, xargs -P2", "≤ 1×", lambda c, g: c <= g, "verify"),
    ("diff A B (10 files differ)", "diff", "git diff --stat", "< 10 ms", lambda c, g: c < 0.010, "diff"),
    ("rollback of 10 files", "rollback", "git reset --hard", "≤ 0.7×", lambda c, g: c <= 0.7 * g, "rollback"),
    ("fsck", "fsck", "git fsck --full", "< 1×", lambda c, g: c < g, "fsck"),
]
label = os.environ.get("BENCH_TREE") or f"{n} generated files"
print(f"{label} ({files} files, {nbytes / 1e6:.0f} MB); medians of hyperfine runs, warm cache.\n")
print("| operation | cplane median | competitor median | ratio | target | met | cplane peak RSS |")
print("|---|---|---|---|---|---|---|")
worst = 0
for op, js, comp, target, ok, key in rows:
    c, g = med(js, 0), med(js, 1)
    kb, rc = rss.get(key, (None, 0))
    mem = f"{kb / 1024:.0f} MB" if kb else "?"
    if rc not in (0, 1):
        mem += f" (exit {rc})"
    worst = max(worst, kb or 0)
    print(f"| {op} | {t(c)} | {t(g)} ({comp}) | {c / g:.2f}× | {target} | {'yes' if ok(c, g) else '**no**'} | {mem} |")
print(f"| peak memory, any command | | | | < 150 MB | {'yes' if worst < 150 * 1024 else '**no**'} | {worst / 1024:.0f} MB |")
print(f"\nStore size: `.cp` {store_kb / 1024:.0f} MB in {packs} packs; `.git` {git_kb / 1024:.0f} MB.")
PY

{
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || uname -m)"
    echo
    echo '```'
    free -h
    echo '```'
    echo
    echo "$(hyperfine --version), $(git --version), $(b3sum --version), $(uname -sr)"
} >>"$RES/table.md"

echo
cat "$RES/table.md"
echo
echo "(JSON, RSS logs and this table: $RES)"
