#!/usr/bin/env python3
"""Measures what the memory rule of docs/deploy.md calls the base.

    python3 deploy/tests/measure_memory.py URL [PID] [--connections N] [--big]

URL is a running `lossd serve` (e.g. http://127.0.0.1:8080), PID its process
id as the host sees it (`podman inspect --format '{{.State.Pid}}' NAME`),
for the peak (VmHWM). Prints resident memory from lossd's own
process_resident_memory_bytes:
  - idle, just started;
  - warm: after small requests of every family and twenty info_nce (the
    OpenBLAS threads and buffers are up);
  - with N idle keep-alive connections open (each one's libmicrohttpd
    memory pool);
  - with --big, the peak while two 8M-element cross_entropy requests with
    gradients (62 MB bodies) run at once.
Not part of the test suites: the numbers feed the rule, which
deploy/tests/validate.mjs enforces on the manifests.
"""
import json
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

MIB = 2**20


def main():
    args = sys.argv[1:]
    conns = 500
    big = False
    if "--connections" in args:
        i = args.index("--connections")
        conns = int(args[i + 1])
        del args[i : i + 2]
    if "--big" in args:
        args.remove("--big")
        big = True
    url = args[0].rstrip("/")
    pid = int(args[1]) if len(args) > 1 else None

    def rss():
        text = urllib.request.urlopen(url + "/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith("process_resident_memory_bytes "):
                return float(line.split()[1]) / MIB
        raise SystemExit("no process_resident_memory_bytes in /metrics")

    def hwm():
        if pid is None:
            return ""
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return f", peak {int(line.split()[1]) / 1024:.1f} MiB"
        return ""

    def post(path, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(
            url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req) as r:
                while r.read(1 << 20):
                    pass
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    print(f"idle: {rss():.1f} MiB{hwm()}")
    rnd = random.Random(1)
    q = [[rnd.uniform(-1, 1) for _ in range(64)] for _ in range(512)]
    codes = [
        post("/v1/cross_entropy", {"input": [[0.1, 0.2, 0.3]], "target": [0], "grad": True}),
        post("/v1/mse", {"input": [1.0, 2.0], "target": [1.5, 2.5], "grad": True}),
        post("/v1/softmax", {"input": [[1.0, 2.0]]}),
    ]
    for _ in range(20):
        codes.append(post("/v1/info_nce", {"query": q, "positive_key": q,
                                            "variant": "nt_xent", "grad": True}))
    print(f"warm: {rss():.1f} MiB{hwm()} (statuses {sorted(set(codes))})")

    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: lossd\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.recv(4096)
    with_conns = rss()
    print(f"{conns} idle keep-alive connections: {with_conns:.1f} MiB{hwm()}")
    for s in socks:
        s.close()
    time.sleep(0.5)
    print(f"connections closed: {rss():.1f} MiB")

    if big:
        n, c = 800_000, 10
        r = random.Random(2)
        body = (
            '{"input": {"shape": [%d, %d], "data": [' % (n, c)
            + ",".join("%.4f" % r.uniform(-3, 3) for _ in range(n * c))
            + ']}, "target": ['
            + ",".join(str(r.randrange(c)) for _ in range(n))
            + '], "grad": true}'
        ).encode()
        out = []
        threads = [threading.Thread(target=lambda: out.append(post("/v1/cross_entropy", body)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"two {len(body) / 1e6:.0f} MB cross_entropy at once (statuses {out}): "
              f"{rss():.1f} MiB after{hwm()}")


if __name__ == "__main__":
    main()
