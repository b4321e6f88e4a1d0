#!/usr/bin/env bash
# Times `cplane push` and `cplane clone` against `restic backup` and
# `restic restore` to the same Garage server on loopback (issue 12's targets).
#
# usage: scripts/bench-remote.sh [N]          (a generated tree of N files, default 20000)
#        scripts/bench-remote.sh --tree DIR   (an existing tree, e.g. linux-source-6.1)
#
# Environment:
#   BENCH_DIR   work directory (default ./bench-work/remote; gitignored)
#   RUNS        runs of each first push / backup / clone / restore (default 3)
#   CPLANE_BIN  the cplane binary (default: build target/release/cplane)
#   GARAGE      the garage binary (default: garage on PATH or ~/.cargo/bin/garage)
#
# One Garage node (sqlite metadata, replication 1) in $BENCH_DIR/garage, one
# bucket; each run writes to its own prefix, so every first push and every
# `restic init` + backup starts from an empty repository. Measured:
#   1. first push of the whole tree   vs  restic backup (a fresh repository)
#   2. push after a 10-file change    vs  restic backup of the same change
#   3. clone of the tree              vs  restic restore of the same snapshot
# Each is wall-clock time of one command, median of RUNS (hyperfine is not
# used here: every run needs its own fresh prefix); peak RSS from
# /usr/bin/time. Results: $BENCH_DIR/results.md.
set -euo pipefail

if [ "${1:-}" = "--tree" ]; then
    [ -d "${2:-}" ] || { echo "usage: $0 --tree DIR (DIR must be a directory)" >&2; exit 2; }
    BENCH_TREE=$(cd "$2" && pwd)
    shift 2
fi
N=${1:-20000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/bench-work/remote}
RUNS=${RUNS:-3}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
say() { printf '\n== %s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------
need=()
command -v restic >/dev/null || need+=(restic)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}"
fi
GARAGE=${GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
[ -x "$GARAGE" ] || {
    echo "garage is not installed: cargo install garage --locked --no-default-features --features bundled-libs,sqlite" >&2
    exit 1
}
if [ -z "${CPLANE_BIN:-}" ]; then
    say "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet)
    CPLANE_BIN="$REPO/target/release/cplane"
fi
CP=$CPLANE_BIN

# --- the tree -----------------------------------------------------------------
BASE=${BENCH_TREE:-$BENCH_DIR/tree-$N}
if [ -z "${BENCH_TREE:-}" ] && [ ! -f "$BASE.done" ]; then
    say "generating $N files in $BASE"
    rm -rf "$BASE"
    python3 "$REPO/scripts/gen-tree.py" "$N" "$BASE"
    touch "$BASE.done"
fi
PLANE=$BENCH_DIR/plane
say "copying the tree and sealing it (cplane init)"
rm -rf "$PLANE" "$BENCH_DIR/out" "$BENCH_DIR/results.md"
cp -a "$BASE" "$PLANE"
[ -e "$PLANE/.git" ] && printf '.git/\n' >>"$PLANE/.cpignore"
$CP init -q "$PLANE"
FILES=$(find "$PLANE" -path "$PLANE/.cp" -prune -o -type f -print | wc -l)
BYTES=$(du -sb --exclude=.cp "$PLANE" | cut -f1)

# --- garage -------------------------------------------------------------------
G=$BENCH_DIR/garage
rm -rf "$G"
mkdir -p "$G"
cat >"$G/garage.toml" <<EOF
metadata_dir = "$G/meta"
data_dir = "$G/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:39931"
rpc_public_addr = "127.0.0.1:39931"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:39930"
[admin]
api_bind_addr = "127.0.0.1:39933"
EOF
GC="$GARAGE -c $G/garage.toml"
say "starting garage $($GARAGE --version 2>/dev/null | head -1)"
$GC server >"$G/server.log" 2>&1 &
GPID=$!
trap 'kill $GPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do $GC status >/dev/null 2>&1 && break; sleep 0.1; done
NODE=$($GC node id -q 2>/dev/null | cut -d@ -f1)
$GC layout assign -z dc1 -c 10G "$NODE" >/dev/null
$GC layout apply --version 1 >/dev/null
KEY_OUT=$($GC key create bench-key)
AWS_ACCESS_KEY_ID=$(printf '%s\n' "$KEY_OUT" | awk '/Key ID/ {print $NF}')
AWS_SECRET_ACCESS_KEY=$(printf '%s\n' "$KEY_OUT" | awk '/Secret key/ {print $NF}')
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
$GC bucket create bench >/dev/null
$GC bucket allow --read --write --owner bench --key bench-key >/dev/null
ENDPOINT=http://127.0.0.1:39930
export AWS_DEFAULT_REGION=garage AWS_REGION=garage
export RESTIC_PASSWORD=bench
RESTIC_OPTS=(-o s3.region=garage -o s3.bucket-lookup=path)
restic_repo() { echo "s3:$ENDPOINT/bench/$1"; }

# timed NAME CMD...: one run; appends "NAME seconds rss_kb" to $BENCH_DIR/times.
timed() {
    local name=$1
    shift
    local log=$BENCH_DIR/time.log
    /usr/bin/time -f '%e %M' -o "$log" "$@" >/dev/null 2>"$BENCH_DIR/err.log" || {
        echo "failed: $*" >&2
        cat "$BENCH_DIR/err.log" >&2
        exit 1
    }
    printf '%s %s\n' "$name" "$(cat "$log")" >>"$BENCH_DIR/times"
}
rm -f "$BENCH_DIR/times"
sync

# --- 1. first push vs restic backup --------------------------------------------
for r in $(seq "$RUNS"); do
    say "first push, run $r"
    $CP -C "$PLANE" remote remove origin >/dev/null 2>&1 || true
    $CP -C "$PLANE" remote add origin "s3://bench/cp-$r" --endpoint "$ENDPOINT" --region garage >/dev/null
    timed push-first $CP -C "$PLANE" push -q origin
    say "restic backup, run $r"
    restic -r "$(restic_repo "restic-$r")" "${RESTIC_OPTS[@]}" init >/dev/null
    timed restic-first restic -r "$(restic_repo "restic-$r")" "${RESTIC_OPTS[@]}" backup -q "$PLANE" --exclude "$PLANE/.cp"
done

# --- 2. push after a 10-file change vs restic backup of it ---------------------
for r in $(seq "$RUNS"); do
    say "10-file change, run $r"
    find "$PLANE" -path "$PLANE/.cp" -prune -o -type f -print |
        sort | awk -v r="$r" 'NR % 997 == r && n++ < 10' | while read -r f; do echo "change $r" >>"$f"; done
    $CP -C "$PLANE" snapshot -q
    timed push-10 $CP -C "$PLANE" push -q origin
    timed restic-10 restic -r "$(restic_repo "restic-$RUNS")" "${RESTIC_OPTS[@]}" backup -q "$PLANE" --exclude "$PLANE/.cp"
done

# --- 3. clone vs restic restore ---------------------------------------------------
for r in $(seq "$RUNS"); do
    say "clone and restore, run $r"
    # Moved aside, deleted after the runs: on ext4, files deleted just before
    # a run slow every inode allocation of the run (recently_deleted).
    [ -e "$BENCH_DIR/out" ] && mv "$BENCH_DIR/out" "$BENCH_DIR/old-out-$r-$$"
    sync
    timed clone $CP clone -q "s3://bench/cp-$RUNS" "$BENCH_DIR/out/clone" --endpoint "$ENDPOINT" --region garage
    timed restic-restore restic -r "$(restic_repo "restic-$RUNS")" "${RESTIC_OPTS[@]}" restore latest -q --target "$BENCH_DIR/out/restore"
done
rm -rf "$BENCH_DIR"/old-out-*
# Both copies must be the tree as it is now.
diff -r -q --exclude=.cp "$PLANE" "$BENCH_DIR/out/clone" >/dev/null || { echo "clone differs from the plane" >&2; exit 1; }
diff -r -q --exclude=.cp "$PLANE" "$BENCH_DIR/out/restore/$PLANE" >/dev/null || { echo "restic's restore differs from the plane" >&2; exit 1; }

# --- table ----------------------------------------------------------------------
python3 - "$BENCH_DIR/times" "$FILES" "$BYTES" >"$BENCH_DIR/results.md" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, rss = line.split()
    rows.setdefault(name, []).append((float(secs), int(rss)))
med = {k: statistics.median(s for s, _ in v) for k, v in rows.items()}
rss = {k: max(r for _, r in v) // 1024 for k, v in rows.items()}
print(f"Tree: {sys.argv[2]} files, {int(sys.argv[3]) / 1e6:.0f} MB; Garage on loopback; medians of {len(rows['push-first'])} runs.\n")
print("| operation | cplane | restic | ratio | target | met | cplane peak RSS |")
print("|---|---|---|---|---|---|---|")
for label, c, r, target, ok in [
    ("first push / backup", "push-first", "restic-first", "≤ 1.5×", lambda c, r: c <= 1.5 * r),
    ("push / backup after a 10-file change", "push-10", "restic-10", "< 0.3 s", lambda c, r: c < 0.3),
    ("clone / restore", "clone", "restic-restore", "≤ 1×", lambda c, r: c <= r),
]:
    print(f"| {label} | {med[c]:.2f} s | {med[r]:.2f} s | {med[c] / med[r]:.2f}× | {target} | {'yes' if ok(med[c], med[r]) else 'no'} | {rss[c]} MB |")
EOF
cat "$BENCH_DIR/results.md"
