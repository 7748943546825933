#!/usr/bin/env bash
# Transactions against single writes (issue «What applications need from a consistent store»;
# docs/benchmarks.md): one node (tools/cluster); TXN_CLIENTS connections each run, for
# TXN_SECONDS, first single KEY PUTs, then TXNs of TXN_SIZE KEY PUTs, one request at a time.
# Reports latency (p50, p99) and rows written per second of each.
#
# Usage: tools/bench/txn.sh   Environment: TXN_CLIENTS (default 1 and 16: "1 16"),
# TXN_SIZE (10), TXN_SECONDS (5), ATLAS_BUILD_DIR (default build/), BENCH_KEEP=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ATLAS_BIN=${ATLAS_BUILD_DIR:-$root/build}/bin
. "$root/tools/bench/lib.sh"
bench_node txn 29850

python3 - "$sock" "${TXN_CLIENTS:-1 16}" "${TXN_SIZE:-10}" \
  "${TXN_SECONDS:-5}" <<'EOF'
import socket, sys, threading, time
path, clients_list, size, seconds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), \
    float(sys.argv[4])

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b"HELLO 1.0 txn-bench\r\n")
    buf = b""
    while b"READY\r\n" not in buf:
        buf += s.recv(4096)
    return s, buf[buf.index(b"READY\r\n") + 7:]

def worker(n, txn, out):
    s, buf = connect()
    lat, i, end = [], 0, time.time() + seconds
    value = "v" * 100
    while time.time() < end:
        if txn:
            req = f"TXN {size}\r\n" + "".join(
                f"KEY PUT t{n}.r{(i + k) % 10000} {value}\r\n" for k in range(size))
        else:
            req = f"KEY PUT t{n}.r{i % 10000} {value}\r\n"
        t0 = time.perf_counter()
        s.sendall(req.encode())
        while b"\r\n" not in buf:
            buf += s.recv(65536)
        line, buf = buf.split(b"\r\n", 1)
        if line != b"OK":
            sys.exit("unexpected reply: %r" % line)
        lat.append(time.perf_counter() - t0)
        i += size if txn else 1
    out.append((lat, i))

def run(clients, txn):
    out = []
    threads = [threading.Thread(target=worker, args=(n, txn, out)) for n in range(clients)]
    t0 = time.time()
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.time() - t0
    lat = sorted(x for l, _ in out for x in l)
    rows = sum(i for _, i in out)
    return lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, rows / elapsed

print("%-8s %-22s %10s %10s %12s" % ("clients", "request", "p50 ms", "p99 ms", "rows/s"))
for c in map(int, clients_list):
    single = run(c, False)
    many = run(c, True)
    for name, r in (("KEY PUT", single), ("TXN of %d KEY PUT" % size, many)):
        print("%-8d %-22s %10.2f %10.2f %12.0f" % (c, name, *r))
    print("%-8d ratio TXN / single: latency %.2fx, rows/s %.2fx" %
          (c, many[0] / single[0], many[2] / single[2]))
EOF
