#!/usr/bin/env python3
"""request_instructions.py - user-space instructions a small request costs
lossd, counted by callgrind: a figure that, unlike requests per second, does
not move with whatever else runs on the machine.

Usage (from the repository root; builds nothing):
    bench/request_instructions.py NAME=LOSSD[:PRELOAD] [NAME=LOSSD[:PRELOAD] ...]

For each variant in turn: starts `LOSSD serve --host 127.0.0.1 --port 0`
(with LD_PRELOAD=PRELOAD when given, e.g. mimalloc) under
`valgrind --tool=callgrind`, sends WARMUP requests, zeroes the counters
(`callgrind_control --zero`), sends REQUESTS more, dumps the counters and
prints the instructions (Ir) per request, whole and split by object file
(lossd itself, libc, libmicrohttpd, the allocator, ...). The request is
bench/http_bench.lua's: a 2x4 MSE POST on keep-alive connections, CONNS of
them, each from its own client thread; every answer must be 200.

Environment (defaults in brackets): REQUESTS [20000], WARMUP [2000],
CONNS [8]; KEEP_DUMPS=DIR moves the callgrind dumps there (for
callgrind_annotate).

Callgrind counts every instruction of every thread of the server in user
space (the kernel's part of a request is not in it), the same for the same
binary and inputs on any load. It counts memset and memcpy byte by byte in
their generic form, so large clearing shows up larger than it costs on real
hardware.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

BODY = (b'{"input":[[0.5,-1.25,2.0,3.5],[1.0,0.0,-2.5,4.25]],'
        b'"target":[[1.0,-1.0,2.5,3.0],[0.75,0.5,-2.0,4.0]]}')
HEADERS = {"Content-Type": "application/json"}


def send(port, total, conns):
    """Sends total requests over conns keep-alive connections."""
    errors = []
    per = [total // conns + (1 if i < total % conns else 0)
           for i in range(conns)]

    def client(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(n):
            c.request("POST", "/v1/mse", BODY, HEADERS)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"request_instructions.py: {len(errors)} answers not 200")


def listening_port(proc):
    """The port from lossd's {"event":"listening"} line on stdout."""
    for line in proc.stdout:
        if '"listening"' in line:
            return json.loads(line)["port"]
    sys.exit("request_instructions.py: lossd did not start")


def measure(name, exe, preload, requests, warmup, conns, tmp):
    out = os.path.join(tmp, f"callgrind.{name}")
    env = dict(os.environ)
    if preload:
        env["LD_PRELOAD"] = preload
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           exe, "serve", "--host", "127.0.0.1", "--port", "0"]
    log = open(os.path.join(tmp, f"{name}.stderr"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                            text=True, env=env)
    try:
        port = listening_port(proc)
        send(port, warmup, conns)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)],
                       check=True, stdout=subprocess.DEVNULL)
        send(port, requests, conns)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    dumps = [os.path.join(tmp, f) for f in os.listdir(tmp)
             if f.startswith(f"callgrind.{name}.")]
    if not dumps:
        sys.exit(f"request_instructions.py: no dump for {name}")
    # --dump writes one file per thread part; sum the "summary" lines and
    # split by object with callgrind_annotate's inclusive-free totals
    total = 0
    by_obj = {}
    for d in dumps:
        text = subprocess.run(
            ["callgrind_annotate", "--threshold=100", "--inclusive=no", d],
            check=True, capture_output=True, text=True).stdout
        m = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text, re.M)
        if m:
            total += int(m.group(1).replace(",", ""))
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+) \([^)]*\)\s+\S*:.*\[(.+)\]$", line)
            if m:
                obj = os.path.basename(m.group(2))
                by_obj[obj] = by_obj.get(obj, 0) + int(
                    m.group(1).replace(",", ""))
    keep = os.environ.get("KEEP_DUMPS")
    for d in dumps:
        if keep:
            os.replace(d, os.path.join(keep, os.path.basename(d)))
        else:
            os.remove(d)
    return total / requests, {k: v / requests for k, v in by_obj.items()}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    requests = int(os.environ.get("REQUESTS", "20000"))
    warmup = int(os.environ.get("WARMUP", "2000"))
    conns = int(os.environ.get("CONNS", "8"))
    variants = []
    for a in sys.argv[1:]:
        m = re.match(r"^([A-Za-z0-9._-]+)=([^:]+)(?::(.*))?$", a)
        if not m:
            sys.exit(f"request_instructions.py: '{a}' is not "
                     "NAME=LOSSD[:PRELOAD]")
        variants.append(m.groups())
    print(f"{requests} requests after {warmup} warm-up, {conns} connections;"
          f" {time.strftime('%Y-%m-%d %H:%M:%S')}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, exe, preload in variants:
            per, objs = measure(name, exe, preload, requests, warmup, conns,
                                tmp)
            results.append((name, per, objs))
    base = results[0][1]
    print(f"{'variant':<20} {'Ir/request':>12} {'vs first':>9}  "
          "largest objects (Ir/request)")
    for name, per, objs in results:
        top = sorted(objs.items(), key=lambda kv: -kv[1])[:5]
        tops = ", ".join(f"{k} {v:,.0f}" for k, v in top)
        print(f"{name:<20} {per:>12,.0f} {per / base:>8.3f}x  {tops}")


if __name__ == "__main__":
    main()
