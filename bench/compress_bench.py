#!/usr/bin/env python3
"""Large responses with and without gzip, side by side.

    bench/compress_bench.py [--rows N] [--cols C] [--reps R] LOSSD [NAME=LOSSD ...]

Starts each lossd (on 127.0.0.1, port 0, --log-level error) and sends it
one POST /v1/cross_entropy with (rows, cols) logits and "grad": true, so
the response holds a (rows, cols) float64 gradient: once per output format
(nested JSON numbers, base64) and Accept-Encoding (identity, gzip), the
four alternating for R rounds on one keep-alive connection. For each it
prints the response's bytes on the wire and as identity, their ratio, and
the median wall time of a request from its first byte sent to its last
byte received ("wire"), and with the client's gunzip added ("total", what
Python's requests, which sends Accept-Encoding: gzip by default, pays).
gzip/identity compares the totals: above 1, compression cost more than it
saved on this (loopback) network.

The logits are float32 in base64, so the request is small next to the
response and cheap to build without numpy; the values come from a fixed
seed. Standard library only.
"""

import argparse
import base64
import http.client
import json
import random
import statistics
import struct
import subprocess
import time
import zlib


def request_body(rows, cols, seed=1):
    rng = random.Random(seed)
    floats = [rng.gauss(0.0, 2.0) for _ in range(rows * cols)]
    logits = struct.pack(f"<{rows * cols}f", *floats)
    target = [rng.randrange(cols) for _ in range(rows)]
    return {
        "input": {
            "shape": [rows, cols],
            "dtype": "float32",
            "base64": base64.b64encode(logits).decode("ascii"),
        },
        "target": target,
        "grad": True,
    }


def start(binary):
    """A lossd on a free port: (process, port)."""
    proc = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0",
         "--log-level", "error", "--max-body-bytes", "1G",
         "--drain-seconds", "0"],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"{binary} did not start")
    return proc, json.loads(line)["port"]


def one(conn, body, accept):
    """One request: (wire seconds, total seconds, wire bytes,
    identity bytes, coding)."""
    t0 = time.perf_counter()
    conn.request("POST", "/v1/cross_entropy", body=body,
                 headers={"Content-Type": "application/json",
                          "Accept-Encoding": accept})
    resp = conn.getresponse()
    data = resp.read()
    t1 = time.perf_counter()
    coding = resp.getheader("Content-Encoding") or "identity"
    if resp.status != 200:
        raise SystemExit(f"status {resp.status}: {data[:300]!r}")
    # as urllib3 (under requests) does it: one zlib stream object
    plain = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data) \
        if coding == "gzip" else data
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0, len(data), len(plain), coding, zlib.crc32(plain)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("servers", nargs="+", metavar="[NAME=]LOSSD")
    args = ap.parse_args()

    base = request_body(args.rows, args.cols)
    bodies = {}
    for fmt in ("nested", "base64"):
        base["output_format"] = fmt
        bodies[fmt] = json.dumps(base).encode()
    print(f"cross_entropy ({args.rows}, {args.cols}) with grad, "
          f"{args.reps} rounds, medians; request "
          f"{len(bodies['base64']) / 1e6:.1f} MB")
    print(f"{'server':<10} {'format':<7} {'coding':<9} {'identity MB':>11} "
          f"{'wire MB':>8} {'ratio':>6} {'wire s':>7} {'total s':>7} "
          f"{'gzip/id':>7}")

    for spec in args.servers:
        name, _, binary = spec.rpartition("=")
        name = name or binary
        proc, port = start(binary)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            for fmt in ("nested", "base64"):
                runs = {"identity": [], "gzip": []}
                for _ in range(args.reps):
                    for accept in ("identity", "gzip"):
                        runs[accept].append(one(conn, bodies[fmt], accept))
                crcs = {r[5] for rs in runs.values() for r in rs}
                if len(crcs) != 1:
                    raise SystemExit(f"{name} {fmt}: bodies differ")
                total_id = statistics.median(r[1] for r in runs["identity"])
                for accept in ("identity", "gzip"):
                    rs = runs[accept]
                    wire = statistics.median(r[0] for r in rs)
                    total = statistics.median(r[1] for r in rs)
                    wire_b, plain_b, coding = rs[0][2], rs[0][3], rs[0][4]
                    rel = f"{total / total_id:7.2f}" if accept == "gzip" else ""
                    print(f"{name:<10} {fmt:<7} {coding:<9} "
                          f"{plain_b / 1e6:11.1f} {wire_b / 1e6:8.1f} "
                          f"{plain_b / wire_b:6.2f} {wire:7.2f} {total:7.2f} "
                          f"{rel}", flush=True)
            conn.close()
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
