#!/usr/bin/env bash
# Backups (issue «What applications need from a consistent store»; docs/benchmarks.md §Dump):
# one node (tools/cluster), DUMP_ROWS rows of 100 bytes in one table, then `atlas dump` of the
# table to a file, timed, while nothing else runs; and the same rows read the way the dump read
# them before TABLE DUMP (SCAN pages and a KEY BLOB GET per row, pipelined 256 deep), as the
# baseline in the same run. Reports rows/s of each and checks the dump's row count. Then
# `atlas restore` of the dump into the same node (every row written again), timed.
#
# Usage: tools/bench/dump.sh   Environment: DUMP_ROWS (default 1000000), ATLAS_BUILD_DIR
# (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
rows=${DUMP_ROWS:-1000000}
. "$root/tools/bench/lib.sh"
bench_node dump 29900

python3 "$root/tools/bench/load_rows.py" "$sock" big "$rows"
t0=$(date +%s.%N)
"$ATLAS_BIN/atlas" --socket "$sock" dump big >"$tmp/big.jsonl" 2>"$tmp/dump.err"
t1=$(date +%s.%N)
lines=$(wc -l <"$tmp/big.jsonl")
[ "$lines" -eq $((rows + 1)) ] || { log "dump has $lines lines, expected $((rows + 1))"; exit 1; }
dump_rate=$(python3 -c "print(round($rows / ($t1 - $t0)))")
log "$(cat "$tmp/dump.err")"

# The baseline: what atlas dump did before (SCAN + KEY BLOB GET per row), pipelined.
base_rate=$(python3 - "$sock" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"HELLO 1.0 dump-baseline\r\n")
f = s.makefile("rb")
while f.readline() != b"READY\r\n":
    pass
def frames():  # one reply: its lines, blob payloads skipped
    out = []
    while True:
        line = f.readline().rstrip(b"\r\n")
        if line.startswith(b"BLOB ") or b"] BLOB " in line:
            f.read(int(line.rsplit(b" ", 1)[1]))
        out.append(line)
        if line == b"OK" or line.endswith(b"] OK") or b"ERROR" in line:
            return out
t0, n, after = time.time(), 0, None
while True:
    s.sendall(b"SCAN big LIMIT 1000" + (b" AFTER " + after if after else b"") + b"\r\n")
    keys = frames()[1:-1]
    for i in range(0, len(keys), 256):
        s.sendall(b"".join(b"KEY BLOB GET " + k + b"\r\n" for k in keys[i:i + 256]))
        for _ in keys[i:i + 256]:
            frames()
    n += len(keys)
    if len(keys) < 1000:
        break
    after = keys[-1]
print(round(n / (time.time() - t0)))
EOF
)
echo "atlas dump: $rows rows in $(python3 -c "print(round($t1 - $t0, 2))") s = $dump_rate rows/s;" \
  "SCAN + KEY BLOB GET (pipelined): $base_rate rows/s;" \
  "ratio $(python3 -c "print(round($dump_rate / $base_rate, 1))")x"
t0=$(date +%s.%N)
"$ATLAS_BIN/atlas" --socket "$sock" restore "$tmp/big.jsonl" 2>"$tmp/restore.err"
t1=$(date +%s.%N)
echo "atlas restore: $rows rows in $(python3 -c "print(round($t1 - $t0, 2))") s =" \
  "$(python3 -c "print(round($rows / ($t1 - $t0)))") rows/s"
