#!/usr/bin/env python3
"""/metrics passes `promtool check metrics` and counts what this test sent.

Starts its own `lossd serve --host 127.0.0.1 --port 0`, sends traffic of
every kind (200s on every GET route and on losses, 4xx of every class,
batches, gzip, jobs large enough for the worker pool), then scrapes /metrics
and checks:
  - `promtool check metrics` (Debian's prometheus package) exits 0 with no
    complaint (it parses the text format and lints names, types and units);
  - every histogram is cumulative, with le="+Inf" equal to _count;
  - lossd_requests_total counts exactly the requests sent, by route and code;
    the pool jobs show in lossd_queue_wait_seconds and the compute histogram.

  metrics_promtool.py LOSSD_EXE       (or LOSSD_EXE in the environment)

Without promtool it skips (exit 77) with the reason; with CI=true a missing
tool is a failure.
"""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections import Counter, defaultdict

failures = []


def fail(msg):
    print(f"not ok - {msg}")
    failures.append(msg)


def missing(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL: {reason} (CI=true: a missing tool is a failure)")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(77)


def start(exe, args):
    err = tempfile.NamedTemporaryFile(prefix="lossd-metrics-",
                                      suffix=".stderr", delete=False)
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", "0",
         "--drain-seconds", "0", *args],
        stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()
    try:
        port = json.loads(line)["port"]
    except (ValueError, KeyError):
        proc.kill()
        sys.exit(f"lossd did not start: first line {line!r}")
    return proc, err.name, f"http://127.0.0.1:{port}"


def request(url, method="GET", body=None, headers=None):
    """(status, headers, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def parse(text):
    """{(name, frozenset(labels)): value} of the sample lines."""
    samples = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            fail(f"unparsable sample line {line!r}")
            continue
        labels = frozenset(label_re.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def check_histograms(text, samples):
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = defaultdict(list)
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                le = dict(labels)["le"]
                rest = frozenset(kv for kv in labels if kv[0] != "le")
                series[rest].append((float(le), v))
        if not series:
            fail(f"histogram {name} has no buckets")
        for rest, buckets in series.items():
            buckets.sort()
            values = [v for _, v in buckets]
            if values != sorted(values):
                fail(f"{name}{dict(rest)}: buckets not cumulative {buckets}")
            if buckets[-1][0] != float("inf"):
                fail(f"{name}{dict(rest)}: no le=\"+Inf\" bucket")
            count = samples.get((name + "_count", rest))
            if count != buckets[-1][1]:
                fail(f"{name}{dict(rest)}: +Inf bucket {buckets[-1][1]} "
                     f"!= _count {count}")
            if (name + "_sum", rest) not in samples:
                fail(f"{name}{dict(rest)}: no _sum")


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LOSSD_EXE")
    if not exe:
        sys.exit("usage: metrics_promtool.py LOSSD_EXE")
    promtool = shutil.which("promtool")
    if not promtool:
        missing("promtool not found (Debian: apt-get install prometheus, or "
                "scripts/deps.sh test)")

    proc, err_path, url = start(exe, ["--max-body-bytes", "1M"])
    sent = Counter()  # (route label, code) -> requests

    def send(route, path, code, method="POST", body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        status, _, text = request(url + path, method, body, headers)
        if status != code:
            fail(f"{method} {path}: {status}, expected {code}: {text[:200]!r}")
        sent[(route, str(status))] += 1

    try:
        mse = {"input": [[1, 2], [3, 4]], "target": [[1, 0], [3, 3]]}
        for _ in range(4):
            send("/v1/{loss}", "/v1/mse", 200, body={**mse, "grad": True})
        send("/v1/{loss}", "/v1/cross_entropy", 200,
             body={"input": [[1, 2, 3]], "target": [2]})
        send("/v1/{loss}", "/v1/mse", 200,
             body=gzip.compress(json.dumps(mse).encode()),
             headers={"Content-Type": "application/json",
                      "Content-Encoding": "gzip"})
        for path in ["/healthz", "/readyz", "/v1/losses", "/openapi.json"]:
            send(path, path, 200, method="GET")
        send("/healthz", "/healthz", 200, method="HEAD")
        # batches: one with a failing item (still 200), one refused whole
        send("/v1/batch", "/v1/batch", 200, body={
            "requests": [{"loss": "mse", "id": 1}, {"loss": "l1", "id": 2},
                         {"loss": "mse", "target": [1, 2, 3]}],
            "shared": mse})
        send("/v1/batch", "/v1/batch", 200, body={
            "requests": [{"loss": "kl_div", "input": [-1, -2],
                          "target": [0.5, 0.5]}]})
        send("/v1/batch", "/v1/batch", 422, body={"requests": []})
        # jobs over the default --inline-max-cost: run on the worker pool
        n, d = 160, 32
        big = {"query": [[((i * 7 + j) % 13) / 13 for j in range(d)]
                         for i in range(n)],
               "positive_key": [[((i * 5 + j) % 11) / 11 for j in range(d)]
                                for i in range(n)],
               "grad": True}
        pool_jobs = 3
        for _ in range(pool_jobs):
            send("/v1/{loss}", "/v1/info_nce", 200, body=big)
        # 4xx of every class
        send("other", "/nope", 404, method="GET")
        send("other", "/v1/nope", 404, body={})  # unknown losses too
        send("/v1/{loss}", "/v1/mse", 405, method="GET")
        send("/v1/{loss}", "/v1/mse", 415, body=b"input=1",
             headers={"Content-Type": "application/x-www-form-urlencoded"})
        send("/v1/{loss}", "/v1/mse", 400, body=b'{"input": [1',
             headers={"Content-Type": "application/json"})
        send("/v1/{loss}", "/v1/mse", 422, body={"input": [1]})
        send("/v1/{loss}", "/v1/mse", 413,
             body={"input": [0.25] * 300000, "target": [0.25] * 300000})

        # A first scrape (counted by the second), then the one checked.
        send("/metrics", "/metrics", 200, method="GET")
        status, headers, body = request(url + "/metrics")
        text = body.decode()
        if status != 200:
            fail(f"/metrics answered {status}")
        ctype = headers.get("Content-Type", "")
        if "text/plain" not in ctype or "version=0.0.4" not in ctype:
            fail(f"/metrics Content-Type {ctype!r}")

        check = subprocess.run([promtool, "check", "metrics"], input=body,
                               capture_output=True, timeout=60)
        out = (check.stdout + check.stderr).decode().strip()
        if check.returncode != 0 or out:
            fail(f"promtool check metrics: exit {check.returncode}\n{out}")
        else:
            print(f"ok - promtool check metrics: clean "
                  f"({len(text.splitlines())} lines)")

        samples = parse(text)
        check_histograms(text, samples)
        counted = Counter()
        for (name, labels), v in samples.items():
            if name == "lossd_requests_total":
                lab = dict(labels)
                counted[(lab.get("route"), lab.get("code"))] += int(v)
        # The alias /{loss} may carry its own route label: compare totals
        # per code, and per route for the routes this test knows.
        if sum(counted.values()) != sum(sent.values()):
            fail(f"lossd_requests_total sums to {sum(counted.values())}, "
                 f"sent {sum(sent.values())}")
        for key, v in sorted(sent.items()):
            if counted.get(key, 0) != v:
                fail(f"lossd_requests_total{{route={key[0]!r},"
                     f"code={key[1]!r}}} = {counted.get(key, 0)}, sent {v}")
        for key, v in sorted(counted.items()):
            if key not in sent:
                fail(f"lossd_requests_total{{route={key[0]!r},"
                     f"code={key[1]!r}}} = {v}, sent none")

        def value(name, **labels):
            return samples.get((name, frozenset(labels.items())))

        jobs = value("lossd_queue_wait_seconds_count")
        if jobs is None or jobs < pool_jobs:
            fail(f"lossd_queue_wait_seconds_count {jobs}, expected at least "
                 f"the {pool_jobs} pool jobs")
        nce = value("lossd_compute_duration_seconds_count", loss="info_nce")
        if nce != pool_jobs:
            fail(f"compute count for info_nce {nce}, sent {pool_jobs}")
        # At least this scrape; the previous request may still be finishing
        # (the gauge drops when libmicrohttpd reports it completed, after
        # the client already has the answer).
        inflight = value("lossd_requests_in_flight")
        if inflight is None or not 1 <= inflight <= 2:
            fail(f"lossd_requests_in_flight is {inflight}, expected 1 (this "
                 f"scrape) or 2 (the previous request still completing)")
        for name in ["process_cpu_seconds_total",
                     "process_resident_memory_bytes", "process_open_fds",
                     "process_max_fds", "process_start_time_seconds"]:
            if not value(name) or value(name) <= 0:
                fail(f"{name} missing or not positive")
        if not any(n == "lossd_build_info" for n, _ in samples):
            fail("lossd_build_info missing")
        if not failures:
            print(f"ok - /metrics counts the {sum(sent.values())} requests "
                  f"sent, {pool_jobs} of them pool jobs")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
            if code != 0:
                fail(f"lossd exited {code} after SIGTERM")
        except subprocess.TimeoutExpired:
            proc.kill()
            fail("lossd did not exit after SIGTERM")
        with open(err_path, errors="replace") as f:
            err = f.read()
        os.unlink(err_path)
        for report in ["ERROR: AddressSanitizer", "runtime error:",
                       "LeakSanitizer"]:
            if report in err:
                fail(f"sanitizer report in lossd's stderr:\n{err}")
                break
    print("PASS" if not failures else f"FAIL: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
