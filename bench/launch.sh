#!/usr/bin/env bash
# Launch benchmark: times `true` bare, under bubblewrap and under `moat run`, then one
# real workload (compiling a generated C file) bare and under moat. Prints medians and
# the ratios. Measurements, not assertions.
#
#   bench/launch.sh            # builds moat in release mode first
#   MOAT=/path/to/moat bench/launch.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hyperfine >/dev/null || ! command -v bwrap >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq hyperfine bubblewrap
fi
if [ -z "${MOAT:-}" ]; then
    cargo build --release -p moat >/dev/null 2>&1
    MOAT="$PWD/target/release/moat"
fi
RUNS="${RUNS:-300}"
WS="$(mktemp -d "${TMPDIR:-/tmp}/moat-bench.XXXXXX")"
OUT="$(mktemp -d)"
trap 'rm -rf "$WS" "$OUT"' EXIT
cd "$WS"

BWRAP="bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --bind $WS $WS --new-session --die-with-parent"

median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.3f" % (x["median"]*1000) for x in r))' "$1"; }

echo "== launch: true (median of $RUNS runs, ms)"
hyperfine -N -w 30 -r "$RUNS" --export-json "$OUT/launch.json" \
    -n bare true -n bwrap "$BWRAP true" -n moat "$MOAT run -- true" >/dev/null
read -r bare bwrap moat <<<"$(median "$OUT/launch.json")"
python3 - "$bare" "$bwrap" "$moat" <<'PY'
import sys
bare, bwrap, moat = map(float, sys.argv[1:])
print(f"bare  {bare:8.3f} ms")
print(f"bwrap {bwrap:8.3f} ms")
print(f"moat  {moat:8.3f} ms")
print(f"moat/bwrap ratio: {moat / bwrap:.2f}   (moat - bare: {moat - bare:.3f} ms)")
PY

echo "== workload: cc -O1 on a generated C file (median, ms)"
python3 - > gen.c <<'PY'
print("#include <stdio.h>")
for i in range(3000):
    print(f"static int f{i}(int x) {{ int y = x * {i} + 7; for (int k = 0; k < (x & 7); k++) y ^= (y << 3) + k; return y; }}")
print("int main(void) { long s = 0;")
for i in range(0, 3000, 10):
    print(f"  s += f{i}({i});")
print('  printf("%ld\\n", s); return 0; }')
PY
wc -l < gen.c | sed 's/^/lines: /'
hyperfine -N -w 2 -r "${WORK_RUNS:-10}" --export-json "$OUT/work.json" \
    -n bare "cc -O1 -c gen.c -o gen.o" -n moat "$MOAT run -- cc -O1 -c gen.c -o gen.o" >/dev/null
read -r wbare wmoat <<<"$(median "$OUT/work.json")"
python3 -c "import sys; b,m=map(float,sys.argv[1:]); print(f'bare {b:9.1f} ms\nmoat {m:9.1f} ms\nmoat/bare ratio: {m/b:.3f}')" "$wbare" "$wmoat"

echo "== workload: git status in a tree of 20000 files (median, ms)"
mkdir -p tree && (cd tree && git init -q && python3 -c '
import os
for d in range(200):
    os.makedirs(f"d{d}", exist_ok=True)
    for f in range(100):
        open(f"d{d}/f{f}.txt", "w").write(f"{d} {f}\n")
' && git add -A && git -c user.name=b -c user.email=b@b commit -qm init)
cd tree
hyperfine -N -w 3 -r "${WORK_RUNS:-20}" --export-json "$OUT/git.json" \
    -n bare "git status --porcelain" -n moat "$MOAT run -- git status --porcelain" >/dev/null
read -r gbare gmoat <<<"$(median "$OUT/git.json")"
python3 -c "import sys; b,m=map(float,sys.argv[1:]); print(f'bare {b:9.1f} ms\nmoat {m:9.1f} ms\nmoat/bare ratio: {m/b:.3f}')" "$gbare" "$gmoat"
