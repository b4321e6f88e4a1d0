#!/usr/bin/env bash
# Times governance with the release cplane binary: a governed plane against
# the same tree ungoverned, and the content gates against ripgrep.
#
# usage: scripts/bench-governance.sh [N]     (N files, default 100000: about 1 GB)
#        BENCH_TREE=/path scripts/bench-governance.sh   (an existing tree instead)
#
# Environment:
#   BENCH_DIR    work directory (default ./bench-work at the repository root; gitignored)
#   RUNS         timed runs of each command (default 5)
#   KERNEL_TREE  an unpacked tree to run the gates on against `rg` (e.g. Debian's
#                linux-source-6.1); skipped when unset
#   CPLANE_BIN   the cplane binary to time (default: build target/release/cplane)
#
# What it measures (hyperfine, warm page cache; JSON in $BENCH_DIR/results/):
#   1. the tree laid out as a governed plane by scripts/governed-tree.py (a
#      .file_registry.csv per directory, a framework with the built-in secrets
#      gate over every file), HEAD a governed checkpoint: `verify` (four passes),
#      `verify --full` (every gate on every file) and `compile` against the
#      store-layer `verify` of an ungoverned copy; an unchanged `status`,
#      governed against ungoverned; peak RSS of the governed verify;
#   2. with KERNEL_TREE: the gate engine alone over that tree (criterion,
#      `GATES_TREE=… cargo bench --bench gates`) and `rg -uu` (hidden files
#      too, as the engine reads them) with the same
#      patterns (`cplane secrets --rg`), both on 2 threads.
set -euo pipefail

N=${1:-100000}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$REPO/bench-work}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
RUNS=${RUNS:-5}
BIN="${CPLANE_BIN:-$REPO/target/release/cplane}"
RES="$BENCH_DIR/results"
BASE="${BENCH_TREE:-$BENCH_DIR/tree-$N}"
U="$BENCH_DIR/gov-plain"
G="$BENCH_DIR/gov-governed"
rm -rf "$RES"
mkdir -p "$RES"

say() { printf '\n== %s\n' "$*" >&2; }

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
if [ -n "${KERNEL_TREE:-}" ]; then command -v rg >/dev/null || need+=(ripgrep); fi
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

if [ -z "${BENCH_TREE:-}" ] && [ ! -f "$BASE.done" ]; then
    say "generating $N files in $BASE"
    rm -rf "$BASE"
    python3 "$REPO/scripts/gen-tree.py" "$N" "$BASE"
    touch "$BASE.done"
fi

say "preparing an ungoverned and a governed copy"
rm -rf "$U" "$G"
cp -a "$BASE" "$U"
python3 "$REPO/scripts/governed-tree.py" "$BASE" "$G" >&2
"$BIN" init "$U" >/dev/null
# A real tree can hold real test keys (the kernel does): then the governed copy
# has findings, which verify reports each time (exit 1, timed all the same), and
# HEAD stays init's checkpoint, whose gate verdicts are not reused.
"$BIN" init "$G" >/dev/null || "$BIN" -C "$G" verify --all-passes | grep -E '^ +CP' | sed 's/^/finding: /' >&2 || true
# HEAD a governed checkpoint, as in daily use (init's first checkpoint is not one).
"$BIN" -C "$G" snapshot >/dev/null 2>&1 || echo "note: snapshot refused (findings above); HEAD stays init's" >&2

say "verify: store layer vs governed (four passes), and compile"
hyperfine -N -i -w 1 -r "$RUNS" --export-json "$RES/gov-verify.json" \
    "$BIN -C $U verify" "$BIN -C $G verify" "$BIN -C $G compile" "$BIN -C $G verify --full" >&2
say "status, unchanged: ungoverned vs governed"
hyperfine -N -i -w 2 -r $((RUNS * 4)) --export-json "$RES/gov-status.json" \
    "$BIN -C $U status" "$BIN -C $G status" >&2
say "peak RSS of the governed verify"
/usr/bin/time -f "%M" -o "$RES/gov-verify.rss" "$BIN" -C "$G" verify >/dev/null || true

if [ -n "${KERNEL_TREE:-}" ]; then
    K="$BENCH_DIR/gates-tree"
    if [ ! -d "$K" ]; then
        say "copying $KERNEL_TREE for the gates"
        cp -a "$KERNEL_TREE" "$K"
    fi
    say "gate engine alone over $K (criterion)"
    (cd "$REPO" && GATES_TREE="$K" cargo bench --quiet --bench gates -- --noplot 2>&1 | tee "$RES/gates-engine.txt" >&2)
    say "rg with the same patterns, 2 threads"
    eval "set -- $("$BIN" secrets --rg)"
    printf '%q ' rg -j2 -uu -c --no-messages "$@" "$K" > "$RES/rg-command.sh"
    hyperfine -w 1 -r "$RUNS" -i --export-json "$RES/gates-rg.json" "sh $RES/rg-command.sh" >&2
fi

python3 - "$RES" "$BASE" <<'EOF'
import json, os, sys
res, base = sys.argv[1], sys.argv[2]
def med(name, i):
    with open(os.path.join(res, name)) as f:
        return json.load(f)["results"][i]["median"]
v_store, v_gov, comp = med("gov-verify.json", 0), med("gov-verify.json", 1), med("gov-verify.json", 2)
v_full = med("gov-verify.json", 3)
s_plain, s_gov = med("gov-status.json", 0), med("gov-status.json", 1)
rss = int(open(os.path.join(res, "gov-verify.rss")).read().split()[-1]) / 1024
print(f"Governance on {base} (medians, warm cache)\n")
print("| operation | governed | ungoverned | ratio | target |")
print("|---|---|---|---|---|")
print(f"| verify (four passes vs store layer) | {v_gov:.3f} s | {v_store:.3f} s | {v_gov / v_store:.2f}x | 1.5x |")
print(f"| verify --full (every gate on every file) | {v_full:.3f} s | {v_store:.3f} s | {v_full / v_store:.2f}x | |")
print(f"| compile + verify | {comp + v_gov:.3f} s | {v_store:.3f} s | {(comp + v_gov) / v_store:.2f}x | 1.5x |")
print(f"| status, unchanged | {s_gov * 1000:.0f} ms | {s_plain * 1000:.0f} ms | {s_gov / s_plain:.2f}x | 1.2x |")
print(f"| peak RSS, governed verify | {rss:.0f} MB | | | < 200 MB |")
rgj = os.path.join(res, "gates-rg.json")
if os.path.exists(rgj):
    print(f"\nrg, default secrets, 2 threads: {med('gates-rg.json', 0):.3f} s; engine alone: see {os.path.join(res, 'gates-engine.txt')}")
EOF
