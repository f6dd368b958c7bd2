#!/usr/bin/env python3
"""Soak: a million mixed requests against one lossd, its memory sampled.

    bench/soak.py LOSSD [-- extra lossd serve flags]

Starts LOSSD serve on 127.0.0.1 port 0 (access log to LOG, /dev/null by
default), then sends REQUESTS (1000000) requests from PROCS (8) client
processes, each with one keep-alive connection, cycling through a fixed
mix that covers every route (every loss, the unversioned alias, a batch,
the catalog, the OpenAPI document, the probes, the metrics, OPTIONS, HEAD),
gzip and deflate request bodies, gzip responses, and the 4xx a client
earns: 400, 404, 405, 413 (Content-Length over the limit with
Expect: 100-continue, then a new connection), 415 and 422.

Every answer is checked: its status, and for every route but /metrics its
body byte for byte against the first answer to the same request (each
request carries a fixed X-Request-Id, so even problem documents repeat;
gzip answers are compared compressed and must say Content-Encoding: gzip).
Results do not depend on load, so a single differing byte is a failure.

Every SAMPLE_EVERY (100000) requests the clients stop at a barrier and
lossd's VmRSS is read from /proc. The first WARMUP (1) samples are the
warm-up; the next one is the base. The table shows each sample against
the base and the request rate of the stretch before it, then the largest
deviation from the base of the samples from the base on, against the 5%
target. It ends with lossd_requests_total against the requests sent, and
lossd's open descriptors and threads before and after. It exits 1 on any
wrong answer, a deviation over the target, a count that differs, or
MAX_SECONDS (1800) exceeded.
lossd is stopped on every exit path (its whole session is SIGKILLed if
SIGTERM does not end it).
"""

import base64
import gzip
import json
import multiprocessing as mp
import os
import sys
import threading
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soaklib  # noqa: E402

REQUESTS = int(os.environ.get("REQUESTS", 1000000))
SAMPLE_EVERY = int(os.environ.get("SAMPLE_EVERY", 100000))
PROCS = int(os.environ.get("PROCS", 8))
WARMUP = int(os.environ.get("WARMUP", 1))
MAX_SECONDS = float(os.environ.get("MAX_SECONDS", 1800))
LOG = os.environ.get("LOG", "/dev/null")
TARGET = 0.05

JSON = ("Content-Type", "application/json")


def body(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def post(name, path, obj_or_bytes, status, headers=(), **kw):
    b = obj_or_bytes if isinstance(obj_or_bytes, bytes) else body(obj_or_bytes)
    hs = [("X-Request-Id", "soak-" + name)] + list(headers)
    if not any(k.lower() == "content-type" for k, _ in hs):
        hs.append(JSON)
    return dict(name=name, data=soaklib.request_bytes("POST", path, b, hs),
                status=status, **kw)


def req(name, method, path, status, headers=(), **kw):
    hs = [("X-Request-Id", "soak-" + name)] + list(headers)
    return dict(name=name, data=soaklib.request_bytes(method, path, b"", hs),
                status=status, head=method == "HEAD", **kw)


X22 = [[0.5, 1.5], [2.0, 3.0]]
T22 = [[1.0, 1.0], [2.0, 2.5]]
LOSSES = {  # one small valid body per loss in the registry
    "mse": {"input": X22, "target": T22, "grad": True},
    "l1": {"input": X22, "target": T22, "reduction": "sum"},
    "smooth_l1": {"input": X22, "target": T22, "beta": 0.5, "grad": True},
    "huber": {"input": X22, "target": T22, "delta": 2.0,
              "reduction": "none"},
    "cross_entropy": {"input": [[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]],
                      "target": [0, 2], "label_smoothing": 0.1, "grad": True},
    "nll": {"input": [[-1.2, -0.4, -2.0], [-0.3, -1.5, -2.2]],
            "target": [1, 0], "grad": True},
    "binary_cross_entropy": {"input": [0.2, 0.7, 0.9],
                             "target": [0.0, 1.0, 1.0], "grad": True},
    "binary_cross_entropy_with_logits": {
        "input": [0.3, -1.2, 2.0], "target": [0.0, 1.0, 1.0],
        "pos_weight": [2.0, 1.0, 0.5], "grad": True},
    "kl_div": {"input": [[-1.2, -0.4]], "target": [[0.3, 0.7]],
               "reduction": "batchmean", "grad": True},
    "log_softmax": {"input": [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], "dim": 1,
                    "grad": True},
    "softmax": {"input": {"shape": [8, 8],
                          "data": [i / 7.0 for i in range(64)]},
                "dim": 1, "grad": True, "output_format": "flat"},
    "info_nce": {"query": [[1.0, 0.0, 0.5], [0.2, 1.0, 0.0],
                           [0.0, 0.3, 1.0], [0.5, 0.5, 0.5]],
                 "positive_key": [[0.9, 0.1, 0.4], [0.1, 1.0, 0.2],
                                  [0.1, 0.2, 0.8], [0.4, 0.6, 0.5]],
                 "variant": "symmetric", "grad": True},
}


def mix():
    """The cycle of requests, each with its expected status."""
    m = []
    for loss, obj in LOSSES.items():
        m.append(post(loss, "/v1/" + loss, obj, 200))
    m.append(post("alias-mse", "/mse", LOSSES["mse"], 200))
    m.append(post("batch", "/v1/batch", {
        "shared": {"input": [1.0, 2.0, 3.0], "target": [1.0, 3.0, 2.0]},
        "requests": [{"loss": "mse", "id": "a"},
                     {"loss": "l1", "id": "b", "grad": True},
                     {"loss": "huber", "id": "c", "delta": -1.0}]}, 200))
    m.append(post("gzip-body", "/v1/cross_entropy",
                  gzip.compress(body(LOSSES["cross_entropy"]), 6, mtime=0),
                  200, [("Content-Encoding", "gzip")]))
    m.append(post("deflate-body", "/v1/mse", zlib.compress(
        body(LOSSES["mse"])), 200, [("Content-Encoding", "deflate")]))
    m.append(post("gzip-answer", "/v1/softmax", LOSSES["softmax"], 200,
                  [("Accept-Encoding", "gzip")], gzip_answer=True))
    b64 = base64.b64encode(b"".join(
        int(v).to_bytes(8, "little") for v in [1, 0])).decode()
    m.append(post("base64-target", "/v1/cross_entropy", {
        "input": [[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]],
        "target": {"shape": [2], "dtype": "int64", "base64": b64}}, 200))
    m.append(req("losses", "GET", "/v1/losses", 200))
    m.append(req("losses-gzip", "GET", "/v1/losses", 200,
                 [("Accept-Encoding", "gzip")], gzip_answer=True))
    m.append(req("openapi", "GET", "/openapi.json", 200))
    m.append(req("openapi-gzip", "GET", "/openapi.json", 200,
                 [("Accept-Encoding", "gzip, deflate")], gzip_answer=True))
    m.append(req("healthz", "GET", "/healthz", 200))
    m.append(req("head-healthz", "HEAD", "/healthz", 200))
    m.append(req("readyz", "GET", "/readyz", 200))
    m.append(req("metrics", "GET", "/metrics", 200, varies=True))
    m.append(req("options", "OPTIONS", "/v1/mse", 204))
    # the 4xx
    m.append(req("404-get", "GET", "/nowhere", 404))
    m.append(post("404-loss", "/v1/no_such_loss", LOSSES["mse"], 404))
    m.append(req("405-get-loss", "GET", "/v1/mse", 405))
    m.append(req("405-delete", "DELETE", "/healthz", 405))
    m.append(post("415-type", "/v1/mse", LOSSES["mse"], 415,
                  [("Content-Type", "application/x-www-form-urlencoded")]))
    m.append(post("415-coding", "/v1/mse", LOSSES["mse"], 415,
                  [("Content-Encoding", "br")]))
    m.append(post("400-json", "/v1/mse", b'{"input": [1, 2', 400))
    m.append(post("422-shape", "/v1/mse",
                  {"input": [[1.0, 2.0, 3.0]], "target": [[1.0, 2.0]]}, 422))
    m.append(post("422-field", "/v1/l1", {"input": [1.0], "target": [1.0],
                                          "size_average": True}, 422))
    m.append(post("422-value", "/v1/binary_cross_entropy",
                  {"input": [1.5], "target": [1.0]}, 422))
    m.append(dict(name="413-expect", data=soaklib.request_bytes(
        "POST", "/v1/mse", b"", [("X-Request-Id", "soak-413-expect"), JSON,
                                 ("Expect", "100-continue")],
        length=1 << 30), status=413, reconnect=True))
    return m


def check(spec, r, ref):
    """None if r is what spec expects (ref: the first answer's body), else
    why not."""
    if r.status != spec["status"]:
        return f"status {r.status}, expected {spec['status']}: {r.body[:200]!r}"
    if spec.get("gzip_answer") and r.headers.get("content-encoding") != "gzip":
        return "no Content-Encoding: gzip"
    if spec.get("varies"):
        if b"lossd_requests_total" not in r.body:
            return "metrics without lossd_requests_total"
    elif ref is not None and r.body != ref:
        return f"body differs from the first answer: {r.body[:200]!r}"
    return None


def exchange(conn, port, spec):
    """Sends spec on conn and reads the answer; a new connection when the
    spec leaves the old one unusable. Returns (conn, response)."""
    conn.send(spec["data"])
    r = conn.read(head=spec.get("head", False))
    if spec.get("reconnect") or r.closes():
        conn.close()
        conn = soaklib.Conn(port)
    return conn, r


def client(w, port, mixes, refs, counts, barrier, errors, deadline):
    """Client process w: its share of each stretch of SAMPLE_EVERY, then the
    barrier. Records its first few wrong answers in errors."""
    conn = soaklib.Conn(port)
    j = w * 7  # each client starts at another point of the cycle
    done = 0
    bad = 0
    try:
        for n in counts:
            for _ in range(n):
                spec = mixes[j % len(mixes)]
                conn, r = exchange(conn, port, spec)
                why = check(spec, r, refs[spec["name"]])
                if why:
                    bad += 1
                    if bad <= 5:
                        errors.put((w, spec["name"], why))
                j += 1
                done += 1
                if done % 1000 == 0 and time.monotonic() > deadline:
                    errors.put((w, "-", f"MAX_SECONDS after {done} requests"))
                    barrier.abort()
                    return
            barrier.wait(timeout=MAX_SECONDS)
    except Exception as e:  # noqa: BLE001  a broken client breaks the run
        errors.put((w, "-", f"{type(e).__name__}: {e}"))
        barrier.abort()
    finally:
        conn.close()
        errors.put((w, "bad", bad))


def scrape(port):
    c = soaklib.Conn(port)
    try:
        c.send(soaklib.request_bytes("GET", "/metrics"))
        text = c.read().body.decode()
    finally:
        c.close()
    total = 0
    for line in text.splitlines():
        if line.startswith("lossd_requests_total{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    fds = [int(float(line.split()[1])) for line in text.splitlines()
           if line.startswith("process_open_fds ")][0]
    return total, fds


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    extra = sys.argv[3:] if len(sys.argv) > 2 and sys.argv[2] == "--" \
        else sys.argv[2:]
    soaklib.raise_on_sigterm()
    mixes = mix()
    server = soaklib.Lossd(binary, extra, LOG)
    procs = []
    errors = mp.Queue()
    ok = True
    try:
        port = server.start()
        print(f"lossd pid {server.pid} port {port}; {REQUESTS} requests, "
              f"{PROCS} clients, a cycle of {len(mixes)}; log {LOG}")
        c = soaklib.Conn(port)
        refs = {}
        for spec in mixes:
            c, r = exchange(c, port, spec)
            why = check(spec, r, None)
            if why:
                raise SystemExit(f"first answer to {spec['name']}: {why}")
            refs[spec["name"]] = r.body
        c.close()
        # the catalog must list exactly the losses of the mix
        names = [x["name"] for x in json.loads(refs["losses"])["losses"]]
        if sorted(names) != sorted(LOSSES):
            raise SystemExit(f"the catalog lists {names}, the mix has "
                             f"{sorted(LOSSES)}")
        # this scrape is counted once answered: the REQUESTS + 1 below
        total0, fds0 = scrape(port)
        threads0 = server.status("Threads")

        stretches = []
        left = REQUESTS
        while left > 0:
            stretches.append(min(SAMPLE_EVERY, left))
            left -= stretches[-1]
        # counts[w][k]: client w's share of stretch k
        counts = [[n // PROCS + (1 if w < n % PROCS else 0) for n in stretches]
                  for w in range(PROCS)]
        barrier = mp.Barrier(PROCS + 1)
        deadline = time.monotonic() + MAX_SECONDS
        for w in range(PROCS):
            p = mp.Process(target=client, args=(w, port, mixes, refs,
                                                counts[w], barrier, errors,
                                                deadline))
            p.start()
            procs.append(p)

        print(f"\n{'requests':>10} {'VmRSS kB':>10} {'req/s':>8}")
        samples = []
        t0 = t = time.monotonic()
        rss0 = server.status("VmRSS")
        print(f"{0:>10} {rss0:>10}")
        count = 0
        for n in stretches:
            barrier.wait(timeout=MAX_SECONDS)  # the clients finished n more
            now = time.monotonic()
            count += n
            rss = server.status("VmRSS")
            samples.append((count, rss, n / (now - t)))
            print(f"{count:>10} {rss:>10} {n / (now - t):>8.0f}", flush=True)
            t = time.monotonic()
        elapsed = t - t0
        for p in procs:
            p.join(timeout=60)

        bad = 0
        while not errors.empty():
            w, name, why = errors.get()
            if name == "bad":
                bad += why
            else:
                print(f"client {w}: {name}: {why}")
                ok = False
        total, fds = scrape(port)
        threads = server.status("Threads")
        hwm = server.status("VmHWM")

        after = samples[min(WARMUP, len(samples) - 1):]
        base = after[0][1]
        dev = max(abs(s[1] / base - 1) for s in after)
        print(f"\n{'requests':>10} {'VmRSS kB':>10} {'vs base':>9}")
        for count, rss, _ in samples:
            print(f"{count:>10} {rss:>10} " + (f"{rss / base - 1:>+9.2%}" if
                  count >= after[0][0] else f"{'warm-up':>9}"))
        print(f"\n{REQUESTS} requests in {elapsed:.1f} s: "
              f"{REQUESTS / elapsed:.0f} req/s; wrong answers: {bad}")
        print(f"VmRSS from {after[0][0]} requests on (base {base} kB): "
              f"max deviation {dev:.2%} "
              f"(target {TARGET:.0%}): {'ok' if dev <= TARGET else 'OVER'}")
        print(f"VmHWM {hwm} kB; VmRSS at start {rss0} kB")
        print(f"lossd_requests_total {total0} -> {total} (+{total - total0}); "
              f"requests sent from the first scrape on: {REQUESTS + 1}")
        print(f"open fds {fds0} -> {fds}; threads {threads0} -> {threads}")
        if bad or dev > TARGET or total - total0 != REQUESTS + 1:
            ok = False
    except (KeyboardInterrupt, threading.BrokenBarrierError) as e:
        print(f"stopped: {type(e).__name__} {e}")
        while not errors.empty():
            print("client %s: %s: %s" % errors.get())
        ok = False
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        rc = server.stop()
        print(f"lossd exit {rc}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
