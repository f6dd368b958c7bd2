#!/usr/bin/env python3
"""Faults: SIGTERM under load with a pooled job, and kill -9 with a restart.

    bench/faults.py LOSSD [term|term-nojob|kill|all]

term (TERM_RUNS, 5 runs): lossd serve --drain-seconds 1 on port 0; CLIENTS
(64) threads, each on its own keep-alive connection, send a small
POST /v1/mse continuously; one more connection sends an info_nce whose
cost is far over --inline-max-cost (nt_xent, N = JOB_N 2000, D = JOB_D
64, with gradients: about a second of a worker), and once /metrics shows
lossd_pool_jobs >= 1 lossd gets SIGTERM. Each client then goes on until
its connection is closed and a new one is refused. Counted per answer:

  - ok: 200 (before SIGTERM, and during the drain);
  - 503 with Connection: close (once the drain is over) and refused
    connections: expected, not failures;
  - failed mid-flight: the request was sent (or its sending failed on a
    connection lossd never said it would close) and the connection was
    closed or reset with no response or part of one; counted apart on a
    keep-alive connection (an earlier answer did not say close) and on a
    new one (connected, but never served). Target: 0.

The run passes if nothing failed mid-flight, /readyz answered 503 during
the drain, the pooled job answered 200 after SIGTERM, and lossd exited 0.

term-nojob: the same without the pooled job, so whether any request is
in flight when the drain ends is left to chance (not part of all).

kill (KILL_RUNS, 20 runs): lossd on a fixed port (free when chosen) with
CONNS (8) keep-alive clients that have each had an answer; kill -9 (the
whole session) and at once the same command on the same port. Reports
the sockets the dead process left on the port, what a bind without
SO_REUSEADDR would get then (EADDRINUSE while they are in TIME_WAIT),
the time from the kill (the process reaped) to the "listening" line and
to the first /healthz 200, and fails on any start that did not listen
(an "address in use" would be one: lossd sets SO_REUSEADDR).

Logs go to LOGDIR (a new temporary directory, kept and named at the
end). Every lossd started is stopped on every exit path.
"""

import errno
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soaklib  # noqa: E402

CLIENTS = int(os.environ.get("CLIENTS", 64))
TERM_RUNS = int(os.environ.get("TERM_RUNS", 5))
KILL_RUNS = int(os.environ.get("KILL_RUNS", 20))
CONNS = int(os.environ.get("CONNS", 8))
JOB_N = int(os.environ.get("JOB_N", 2000))
JOB_D = int(os.environ.get("JOB_D", 64))
RUN_SECONDS = 60.0  # bound on one term run's clients

SMALL = soaklib.request_bytes(
    "POST", "/v1/mse",
    b'{"input":[[0.5,1.5],[2,3]],"target":[[1,1],[2,2.5]],"grad":true}',
    [("Content-Type", "application/json")])
SMALL_VALUE = b'"value":0.1875'
HEALTHZ = soaklib.request_bytes("GET", "/healthz")
READYZ = soaklib.request_bytes("GET", "/readyz")
METRICS = soaklib.request_bytes("GET", "/metrics")


def pooled_job():
    """A fixed info_nce (values from a linear congruential sequence, so the
    body is the same every run) far over the inline cost."""
    x = 12345

    def tensor():
        nonlocal x
        data = []
        for _ in range(JOB_N * JOB_D):
            x = (1103515245 * x + 12345) & 0x7FFFFFFF
            data.append(round(x / 0x3FFFFFFF - 1.0, 4))
        return {"shape": [JOB_N, JOB_D], "data": data}

    body = json.dumps({"query": tensor(), "positive_key": tensor(),
                       "variant": "nt_xent", "grad": True}).encode()
    return soaklib.request_bytes("POST", "/v1/info_nce", body,
                                 [("Content-Type", "application/json")])


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.failures = []

    def add(self, key, detail=None):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + 1
            if detail and len(self.failures) < 3:
                self.failures.append(detail)


def load_client(port, tally, stop, signalled, deadline):
    """One keep-alive client: SMALL until a new connection is refused."""
    conn = None
    while not stop.is_set() and time.monotonic() < deadline:
        if conn is None:
            used = 0
            try:
                conn = soaklib.Conn(port, timeout=30)
            except ConnectionRefusedError:
                tally.add("refused")
                return
            except OSError as e:
                tally.add("connect error", f"connect: {e}")
                return
        after = signalled.is_set()
        on = "keep-alive connection" if used else "new connection"
        used += 1
        try:
            conn.send(SMALL)
        except OSError as e:
            tally.add(f"failed: send, {on}",
                      f"send: {e!r} on a {on} (after SIGTERM: {after})")
            conn.close()
            conn = None
            continue
        try:
            r = conn.read()
        except soaklib.Closed as e:
            kind = "failed: no response" if e.got == 0 else \
                "failed: partial response"
            tally.add(f"{kind}, {on}",
                      f"{kind}: {e} on a {on} (after SIGTERM: {after})")
            conn.close()
            conn = None
            continue
        if r.status == 200 and SMALL_VALUE in r.body:
            tally.add("200, sent after SIGTERM" if after else
                      "200, sent before SIGTERM")
        elif r.status == 503:
            tally.add("503, close" if r.closes() else "503, keep-alive")
        else:
            tally.add(f"unexpected {r.status}",
                      f"status {r.status}: {r.body[:200]!r}")
        if r.closes():
            conn.close()
            conn = None
    if conn:
        conn.close()


def get(port, data):
    c = soaklib.Conn(port, timeout=10)
    try:
        c.send(data)
        return c.read()
    finally:
        c.close()


def pool_jobs(port):
    for line in get(port, METRICS).body.decode().splitlines():
        if line.startswith("lossd_pool_jobs "):
            return int(float(line.split()[1]))
    raise RuntimeError("no lossd_pool_jobs in /metrics")


def term_run(binary, job, logdir, k):
    log = os.path.join(logdir, f"term-{k}.log")
    server = soaklib.Lossd(binary, ["--drain-seconds", "1"], log)
    tally = Tally()
    stop, signalled = threading.Event(), threading.Event()
    threads = []
    job_result = {}
    try:
        port = server.start()
        deadline = time.monotonic() + RUN_SECONDS
        for _ in range(CLIENTS):
            t = threading.Thread(target=load_client,
                                 args=(port, tally, stop, signalled, deadline))
            t.start()
            threads.append(t)
        time.sleep(0.5)

        def run_job():
            c = soaklib.Conn(port, timeout=120)
            try:
                c.send(job)
                r = c.read()
                job_result.update(status=r.status, t=time.monotonic(),
                                  ok=r.body.startswith(b'{"loss":"info_nce"'))
            except (soaklib.Closed, OSError) as e:
                job_result.update(status=None, t=time.monotonic(), err=str(e))
            finally:
                c.close()

        t_job = time.monotonic()
        if job is not None:
            jt = threading.Thread(target=run_job)
            jt.start()
            threads.append(jt)
            while pool_jobs(port) < 1:
                if time.monotonic() - t_job > 30 or job_result:
                    raise RuntimeError("the job never showed in "
                                       "lossd_pool_jobs")
                time.sleep(0.005)
        seen = time.monotonic()
        before = dict(tally.c)
        signalled.set()
        server.signal(signal.SIGTERM)
        t_term = time.monotonic()
        time.sleep(0.2)
        ready = get(port, READYZ).status  # the drain lasts 1 s
        try:
            rc = server.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            rc = "still running after 40 s"
        t_exit = time.monotonic()
        stop.set()
        for t in threads:
            t.join(timeout=60)
    finally:
        stop.set()
        server.stop(timeout=5)
    ok200 = before.get("200, sent before SIGTERM", 0)
    c = dict(tally.c)
    failed = sum(v for key, v in c.items() if key.startswith("failed"))
    unexpected = sum(v for key, v in c.items() if key.startswith("unexpected"))
    js = job_result.get("status")
    what = "no job" if job is None else (
        f"job pooled {seen - t_job:.2f} s after it was sent; job {js} "
        f"{job_result.get('t', t_term) - t_term:+.2f} s after SIGTERM")
    print(f"run {k}: {what}; /readyz {ready} in the drain; "
          f"lossd exit {rc} {t_exit - t_term:.2f} s after SIGTERM")
    print(f"  200 before SIGTERM {ok200}; from SIGTERM on: " + ", ".join(
        f"{key} {v - before.get(key, 0)}" for key, v in sorted(c.items())
        if v - before.get(key, 0)))
    for f in tally.failures:
        print(f"  {f}")
    good = (failed == 0 and unexpected == 0 and rc == 0 and ready == 503
            and (job is None or (js == 200 and job_result.get("ok")
                                 and job_result["t"] > t_term)))
    print(f"  failed mid-flight: {failed} (target 0): "
          f"{'ok' if good else 'FAIL'}")
    return good, failed


def port_sockets(port):
    """States of the TCP sockets whose local port is port (/proc/net/tcp)."""
    names = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
             "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
             "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}
    states = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                s = names.get(fields[3], fields[3])
                states[s] = states.get(s, 0) + 1
    return states


def would_bind(port):
    """What a bind to port without SO_REUSEADDR gets right now."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()


def kill_runs(binary, logdir):
    port = soaklib.free_port()
    print(f"\nkill -9 and restart on port {port}, {KILL_RUNS} times, "
          f"{CONNS} keep-alive clients each")
    server = soaklib.Lossd(binary, [], os.path.join(logdir, "kill-0.log"))
    conns = []
    to_listen, to_health, fails = [], [], 0
    try:
        server.start(port)
        for k in range(1, KILL_RUNS + 1):
            conns = [soaklib.Conn(port, timeout=10) for _ in range(CONNS)]
            for c in conns:
                c.send(SMALL)
                if c.read().status != 200:
                    raise RuntimeError("a client was not answered")
            server.kill()
            t0 = time.monotonic()
            for c in conns:  # the clients see the end and close
                c.close()
            conns = []
            left = port_sockets(port)
            plain = would_bind(port)
            log = os.path.join(logdir, f"kill-{k}.log")
            server = soaklib.Lossd(binary, [], log)
            try:
                server.start(port)
            except RuntimeError as e:
                fails += 1
                with open(log) as f:
                    print(f"run {k}: {e}: {f.read()[-500:]}")
                server = soaklib.Lossd(binary, [], log)
                server.start(port)  # the next run needs one
                continue
            t1 = time.monotonic()
            while True:
                try:
                    if get(port, HEALTHZ).status == 200:
                        break
                except (ConnectionRefusedError, soaklib.Closed):
                    pass
                if time.monotonic() - t0 > 10:
                    raise RuntimeError("no /healthz 200 within 10 s")
            t2 = time.monotonic()
            to_listen.append(t1 - t0)
            to_health.append(t2 - t0)
            print(f"run {k}: left on the port {left}, a bind without "
                  f"SO_REUSEADDR: {plain}; listening "
                  f"{(t1 - t0) * 1e3:.1f} ms, /healthz 200 "
                  f"{(t2 - t0) * 1e3:.1f} ms after the kill")
    finally:
        for c in conns:
            c.close()
        rc = server.stop()
    print(f"restarts that did not listen: {fails}; last lossd exit {rc}")
    if to_health:
        for name, v in (("listening", to_listen), ("/healthz 200", to_health)):
            v = sorted(x * 1e3 for x in v)
            print(f"{name} after kill -9 (ms): median "
                  f"{statistics.median(v):.1f}, min {v[0]:.1f}, "
                  f"max {v[-1]:.1f}")
    return fails == 0 and len(to_health) == KILL_RUNS


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    what = sys.argv[2] if len(sys.argv) > 2 else "all"
    soaklib.raise_on_sigterm()
    logdir = os.environ.get("LOGDIR") or tempfile.mkdtemp(prefix="lossd-faults-")
    os.makedirs(logdir, exist_ok=True)
    ok = True
    try:
        if what in ("term", "term-nojob", "all"):
            job = pooled_job() if what != "term-nojob" else None
            print(f"SIGTERM under {CLIENTS} keep-alive clients" + (
                " and no pooled job" if job is None else
                f" and a pooled info_nce (nt_xent N={JOB_N} D={JOB_D}, "
                f"{len(job) / 1e6:.1f} MB)") +
                f", --drain-seconds 1, {TERM_RUNS} runs")
            total = 0
            for k in range(1, TERM_RUNS + 1):
                good, failed = term_run(binary, job, logdir, k)
                ok &= good
                total += failed
            print(f"failed mid-flight over {TERM_RUNS} runs: {total}")
        if what in ("kill", "all"):
            ok &= kill_runs(binary, logdir)
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}")
        ok = False
    print(f"logs in {logdir}; {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
