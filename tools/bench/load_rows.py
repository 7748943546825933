#!/usr/bin/env python3
"""Loads rows into one table of a node over its socket, fast: transactions of --batch puts,
--window of them in flight (tagged). Rows are <table>.r<8 digits>, values --value-size bytes.

Usage: load_rows.py SOCKET TABLE ROWS [--value-size N] [--batch N] [--window N]
                    [--options 'EXPIRE AT 2030-01-01T00:00:00Z']
"""
import argparse
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("table")
    ap.add_argument("rows", type=int)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--options", default="", help="write options before each value")
    a = ap.parse_args()
    s = socket.socket(socket.AF_UNIX)
    s.connect(a.socket)
    s.sendall(b"HELLO 1.0 load-rows\r\n")
    buf = b""
    while b"READY\r\n" not in buf:
        buf += s.recv(4096)
    buf = buf[buf.index(b"READY\r\n") + 7:]
    value = "v" * a.value_size
    opts = a.options + " " if a.options else ""
    batches = (a.rows + a.batch - 1) // a.batch
    sent = done = 0
    t0 = time.time()
    while done < batches:
        out = []
        while sent < batches and sent - done < a.window:
            lo, hi = sent * a.batch, min(a.rows, (sent + 1) * a.batch)
            out.append(f"[ID:{sent}] TXN {hi - lo}\r\n")
            out.extend(f"KEY PUT {a.table}.r{i:08d} {opts}{value}\r\n" for i in range(lo, hi))
            sent += 1
        if out:
            s.sendall("".join(out).encode())
        data = s.recv(1 << 20)
        if not data:
            sys.exit("the node closed the connection")
        buf += data
        *lines, buf = buf.split(b"\r\n")
        for line in lines:
            if line.endswith(b"] OK"):
                done += 1
            elif line:
                sys.exit("unexpected reply: %r" % line)
    took = time.time() - t0
    print("loaded %d rows into %s in %.1f s (%.0f rows/s)" % (a.rows, a.table, took,
          a.rows / max(took, 1e-9)), file=sys.stderr)


if __name__ == "__main__":
    main()
