#!/usr/bin/env python3
"""One big request over HTTP, lossd with --workers 1 against --workers 2
(or any counts), side by side in one run.

Usage (from the repository root, release build as bench/README.md says):
    bench/big_request.py LOSSD [rounds [workers ...]]
Defaults: 5 rounds, workers 1 2.

The requests, float64 tensors in base64 both ways (request and
"output_format": "base64"), gradients of every input:
    pairs  info_nce pairs (normalize, temperature 0.1), N = 4096, D = 128
    ce     cross_entropy, (10000, 1000) logits, class-index targets

One lossd per worker count is started on 127.0.0.1 (port 0) with its
defaults but --workers and --max-body-bytes 1G, all at once; each round
sends each request to each server in turn (the first server rotating
from round to round), one at a time, on a new connection. Reported per
request and server: the median wall seconds from the first byte sent to
the last byte received (it includes the Python client's own work and the
transfer of 11 and 107 MB), the compute seconds (the server's
lossd_compute_duration_seconds_sum: the pooled run, kernels and response
writing, without receiving and decoding the body, which happen on the
HTTP thread as it streams in), the server's CPU seconds per request
(utime + stime of the process from /proc), the speed-ups over the
first worker count, and the busiest worker thread's share of the workers'
CPU time (1.0: one worker did everything; 0.5: two split it evenly), which
shows the split even when other tenants of the machine take the cores
(the workers run at nice 10, so they yield to any other load). Every answer must be 200 and
byte for byte the first server's: the worker count never changes a
result. The load average is printed: on the shared 2-core machines other
work shows up as spread between rounds.
"""

import array
import base64
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


def tensor(rows, cols, rng):
    a = array.array("d", (rng.random() * 4.0 - 2.0
                          for _ in range(rows * cols)))
    if sys.byteorder != "little":
        a.byteswap()
    return {"shape": [rows, cols], "dtype": "float64",
            "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def bodies():
    rng = random.Random(1)
    pairs = {"query": tensor(4096, 128, rng),
             "positive_key": tensor(4096, 128, rng),
             "grad": True, "output_format": "base64"}
    ce = {"input": tensor(10000, 1000, rng),
          "target": [rng.randrange(1000) for _ in range(10000)],
          "grad": True, "output_format": "base64"}
    return [("pairs", "/v1/info_nce", json.dumps(pairs).encode()),
            ("ce", "/v1/cross_entropy", json.dumps(ce).encode())]


LOSS = {"pairs": "info_nce", "ce": "cross_entropy"}


def start(binary, workers):
    proc = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0",
         "--workers", str(workers), "--max-body-bytes", "1G",
         "--log-level", "error"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        sys.exit(f"lossd --workers {workers} did not start")
    return proc, json.loads(line)["port"]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def worker_ticks(pid):
    """CPU ticks of each worker thread (nice 10, pool.c's WORKER_NICE)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        if int(fields[16]) == 10:
            out[tid] = int(fields[11]) + int(fields[12])
    return out


def busiest_share(before, after):
    """The busiest worker's share of the workers' CPU between two
    worker_ticks(): 1.0 when one worker did everything, 1/w at best."""
    d = [after[t] - before.get(t, 0) for t in after]
    return max(d) / sum(d) if sum(d) else 1.0


def compute_seconds(port, loss):
    """lossd_compute_duration_seconds_sum of loss: the time spent in
    handler_request_run() (kernels and writing the response)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    key = f'lossd_compute_duration_seconds_sum{{loss="{loss}"}} '
    for line in text.splitlines():
        if line.startswith(key):
            return float(line[len(key):])
    sys.exit(f"no {key.strip()} in /metrics")


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t = time.monotonic()
    c.request("POST", path, body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    t = time.monotonic() - t
    c.close()
    if r.status != 200:
        sys.exit(f"{path}: status {r.status}: {data[:300]!r}")
    return t, data


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    counts = [int(w) for w in sys.argv[3:]] or [1, 2]
    reqs = bodies()
    servers = [(w,) + start(binary, w) for w in counts]
    try:
        print(f"cpu: {os.cpu_count()} online, load: "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
        for name, path, body in reqs:
            print(f"{name}: {len(body) / 1e6:.1f} MB request")
        wall = {(n, w): [] for n, _, _ in reqs for w in counts}
        cpu = {(n, w): [] for n, _, _ in reqs for w in counts}
        comp = {(n, w): [] for n, _, _ in reqs for w in counts}
        share = {(n, w): [] for n, _, _ in reqs for w in counts}
        ref = {}
        for w, proc, port in servers:  # warm-up, untimed; reference bytes
            for name, path, body in reqs:
                _, data = post(port, path, body)
                if ref.setdefault(name, data) != data:
                    sys.exit(f"{name}: --workers {w} answered other bytes")
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for name, path, body in reqs:
                for w, proc, port in order:
                    s0 = compute_seconds(port, LOSS[name])
                    c0 = cpu_seconds(proc.pid)
                    k0 = worker_ticks(proc.pid)
                    t, data = post(port, path, body)
                    k1 = worker_ticks(proc.pid)
                    c1 = cpu_seconds(proc.pid)
                    s1 = compute_seconds(port, LOSS[name])
                    if data != ref[name]:
                        sys.exit(f"{name}: --workers {w} answered other "
                                 "bytes")
                    wall[name, w].append(t)
                    cpu[name, w].append(c1 - c0)
                    comp[name, w].append(s1 - s0)
                    share[name, w].append(busiest_share(k0, k1))
                    print(f"round {r + 1} {name} --workers {w}: {t:.3f} s, "
                          f"compute {s1 - s0:.3f} s, {c1 - c0:.2f} CPU-s, "
                          f"busiest worker {share[name, w][-1]:.2f}")
        print("== medians")
        print("| request | workers | wall s | speed-up | compute s | "
              "speed-up | server CPU-s | busiest worker's share |")
        print("|---|---|---|---|---|---|---|---|")
        for name, _, _ in reqs:
            base = statistics.median(wall[name, counts[0]])
            cbase = statistics.median(comp[name, counts[0]])
            for w in counts:
                m = statistics.median(wall[name, w])
                cm = statistics.median(comp[name, w])
                print(f"| {name} | {w} | {m:.3f} | {base / m:.2f}x | "
                      f"{cm:.3f} | {cbase / cm:.2f}x | "
                      f"{statistics.median(cpu[name, w]):.2f} | "
                      f"{statistics.median(share[name, w]):.2f} |")
        print("every answer byte for byte the same: yes")
        print(f"load: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    finally:
        for _, proc, _ in servers:
            proc.terminate()
        for _, proc, _ in servers:
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
