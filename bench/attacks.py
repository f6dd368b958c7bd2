#!/usr/bin/env python3
"""Attacks at the connection and framing level, with health probes throughout.

    bench/attacks.py LOSSD [MAX_CONNECTIONS]

Starts `LOSSD serve --host 127.0.0.1 --port 0 --max-connections MAX` (4096,
lossd's default, unless given) with its other defaults, and a prober thread
that sends GET /healthz on a new connection every 50 ms (2 s timeout each),
then runs, in turn:

  flood     MAX + 1000 connections, each sending a request line and one
            header, held open together, then all closed at once (on
            libmicrohttpd's own limit this wedged lossd for good);
  slowloris MAX + 100 connections each sending its header block a byte
            every 2 s, for 25 s (past --header-timeout, 10 s);
  framing   one request each: Content-Length with Transfer-Encoding,
            two different Content-Lengths, Transfer-Encoding: xchunked,
            140 query parameters, an absolute-form target, %00 in the
            path, a malformed chunk-size line; for each, the status line
            received (or "closed") and the time to it (140 query
            parameters overflow libmicrohttpd's 8 KiB of connection
            memory: it neither answers nor closes, and lossd's header
            deadline answers 408 after --header-timeout);

and finally sends SIGTERM and times the exit. Prints, per phase, the
probes sent and failed (a probe fails on a timeout, a reset or a status
other than 200), and fails (exit 1) if any probe failed, any framing
request got no answer within 12 s, or lossd did not exit 0 within drain
plus exit timeout (25 s).

The file descriptor limit of this process is raised to fit the flood.
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True


def start(lossd, max_conns):
    p = subprocess.Popen(
        [lossd, "serve", "--host", "127.0.0.1", "--port", "0",
         "--max-connections", str(max_conns)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = json.loads(p.stdout.readline())["port"]
    return p, port


class Prober(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.sent, self.failed = port, False, 0, 0
        self.lock = threading.Lock()

    def snapshot(self):
        with self.lock:
            return self.sent, self.failed

    def run(self):
        while not self.stop:
            ok, why = False, ""
            try:
                s = socket.create_connection(("127.0.0.1", self.port),
                                             timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                got = s.recv(64)
                ok = got.startswith(b"HTTP/1.1 200")
                why = got.split(b"\r\n")[0].decode() or "closed"
                s.close()
            except OSError as e:
                why = str(e)
            if not ok:
                print(f"  probe failed: {why}", flush=True)
            with self.lock:
                self.sent += 1
                self.failed += 0 if ok else 1
            time.sleep(0.05)


def phase(name, prober, fn):
    s0, f0 = prober.snapshot()
    t0 = time.monotonic()
    detail = fn()
    s1, f1 = prober.snapshot()
    print(f"{name}: {time.monotonic() - t0:.1f} s; probes {s1 - s0}, "
          f"failed {f1 - f0}" + (f"; {detail}" if detail else ""))
    return f1 - f0


def connect(port):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


def flood(port, n):
    socks = []
    for _ in range(n):
        socks.append(connect(port))
    time.sleep(0.5)  # the connects complete (non-blocking)
    for s in socks:
        try:
            s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n")
        except OSError:
            pass  # shed or refused already
    time.sleep(2)
    for s in socks:
        s.close()
    time.sleep(1)
    return f"{n} connections"


def slowloris(port, n, seconds):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100
    socks = [connect(port) for _ in range(n)]
    time.sleep(0.5)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(head[i % len(head):i % len(head) + 1])
            except OSError:
                pass
        i += 1
        time.sleep(2)
    closed = answered = 0
    for s in socks:
        got = b""
        try:
            while True:  # the 408 lossd sends first, then the end
                b = s.recv(4096)
                if not b:
                    closed += 1
                    break
                got += b
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        answered += got.startswith(b"HTTP/1.1 408 ")
        s.close()
    return f"{n} connections, {closed} closed by lossd, {answered} with a 408"


# --header-timeout (10 s by default) and a margin: the longest a request
# that libmicrohttpd neither answers nor finishes may wait for its 408
ANSWER_WITHIN = 12

BODY = b'{"input": [1, 2], "target": [1, 4]}'
FRAMING = [
    ("CL + TE", b"POST /v1/mse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
     % (len(BODY), len(BODY), BODY)),
    ("two Content-Lengths", b"POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: %d\r\nContent-Length: 5\r\n\r\n%s" % (len(BODY), BODY)),
    ("TE xchunked", b"POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
     % (len(BODY), BODY)),
    ("140 query parameters", ("GET /healthz?%s HTTP/1.1\r\nHost: x\r\n\r\n"
     % "&".join("a%d=b" % i for i in range(140))).encode()),
    ("absolute-form", b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("%00 in the path", b"POST /v1/mse%%00junk HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)),
    ("bad chunk-size line", b"POST /v1/mse HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n%s\r\n0\r\n\r\n" % BODY),
]


def framing(port):
    unanswered = 0
    for name, data in FRAMING:
        s = socket.create_connection(("127.0.0.1", port),
                                     timeout=ANSWER_WITHIN)
        t0 = time.monotonic()
        s.sendall(data)
        try:
            first = s.recv(4096).split(b"\r\n")[0].decode() or "closed"
        except socket.timeout:
            first = f"no answer in {ANSWER_WITHIN} s"
            unanswered += 1
        except OSError as e:
            first = f"reset ({e.strerror})"
        print(f"  {name}: {first} ({time.monotonic() - t0:.3f} s)")
        s.close()
    return unanswered


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lossd = sys.argv[1]
    max_conns = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    p, port = start(lossd, max_conns)
    prober = Prober(port)
    prober.start()
    failed = 0
    try:
        failed += phase("flood", prober, lambda: flood(port, max_conns + 1000))
        failed += phase("slowloris", prober,
                        lambda: slowloris(port, max_conns + 100, 25))
        print("framing:")
        unanswered = framing(port)
        failed += phase("after", prober, lambda: time.sleep(2))
    finally:
        prober.stop = True
        prober.join()
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            code = "killed after 30 s"
    took = time.monotonic() - t0
    print(f"SIGTERM: exit {code} after {took:.2f} s")
    ok = failed == 0 and unanswered == 0 and code == 0 and took < 25
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
