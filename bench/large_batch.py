#!/usr/bin/python3
"""One large evaluation batch end to end, every way a client can send it.

    /usr/bin/python3 bench/large_batch.py [--rows N] [--cols C] [--reps R]
        [--peer PEER.py] [--only V,V,...] [--memory] LOSSD

cross_entropy of (rows, cols) logits (default 10000 x 1000, 10^7 numbers)
with class-index targets, the mean and its gradient with respect to the
logits, sent to lossd as:

  oip-fp32      Open Inference Protocol, binary tensors: FP32 logits, INT64
                targets; grad_input asked for as FP32 (binary)
  oip-fp32/64   the same, grad_input as FP64 (the default)
  oip-fp64      FP64 logits, grad_input FP64
  b64-f32       POST /v1/cross_entropy, logits float32 in base64, answer in
                base64
  b64-f64       the same in float64 (107 MB: over the default body limit,
                sent to the second server)
  json          POST /v1/cross_entropy, nested JSON numbers both ways (194
                MB: second server)
  peer          the FastAPI + PyTorch service a user would write instead
                (--peer: its module file; nested JSON, as it takes nothing
                else), under uvicorn with 2 workers
  torch         PyTorch in-process from the same float32 numpy arrays:
                float64 conversion, forward, backward and the gradient back
                as a numpy array, with torch.set_num_threads(lossd's
                workers)

lossd runs twice: once at its default settings (every oip-* and b64-f32
request goes there: the defaults must take them), once with
--max-body-bytes 1G for the larger JSON and base64 bodies. Each round sends
every variant once, in turn, on keep-alive connections; the table has the
median and the spread of R rounds, and each variant's time over torch's.
Every answer is checked against torch's value (1e-12 relative) and
gradient (1e-12 relative to its largest element; the FP32 gradient to
float32 precision).

--memory instead starts a fresh lossd at default settings for each oip-*
variant, sends the request once and reads the process's peak resident set
(VmHWM) against its idle one: lossd's own target is peak <= idle + 1.25 x
the float64 tensors and gradient of the request.

Needs numpy and torch (Debian's python3-torch, under /usr/bin/python3).
"""

import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def start_lossd(binary, *extra):
    proc = subprocess.Popen(
        [binary, "serve", "--host", "127.0.0.1", "--port", "0",
         "--log-level", "error", "--drain-seconds", "0", *extra],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"{binary} did not start")
    return proc, json.loads(line)["port"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_peer(path):
    port = free_port()
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-m", "uvicorn",
         os.path.splitext(os.path.basename(path))[0] + ":app",
         "--app-dir", os.path.dirname(os.path.abspath(path)),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--log-level", "warning"])
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the peer did not start")


def oip_body(x, t, in_type, grad_type):
    xb = x.astype("<f4" if in_type == "FP32" else "<f8").tobytes()
    tb = t.astype("<i8").tobytes()
    header = {
        "inputs": [
            {"name": "input", "shape": list(x.shape), "datatype": in_type,
             "parameters": {"binary_data_size": len(xb)}},
            {"name": "target", "shape": list(t.shape), "datatype": "INT64",
             "parameters": {"binary_data_size": len(tb)}}],
        "outputs": [
            {"name": "value", "parameters": {"binary_data": True}},
            {"name": "grad_input",
             "parameters": {"binary_data": True, "datatype": grad_type}}],
        "parameters": {"grad": "input"}}
    js = json.dumps(header, separators=(",", ":")).encode()
    return js + xb + tb, len(js)


def oip_answer(body, hlen):
    n = int(hlen)
    header = json.loads(body[:n])
    off, out = n, {}
    for o in header["outputs"]:
        dt = np.dtype("<f4" if o["datatype"] == "FP32" else "<f8")
        size = o["parameters"]["binary_data_size"]
        out[o["name"]] = np.frombuffer(body, dt, size // dt.itemsize,
                                       off).reshape(o["shape"])
        off += size
    return float(out["value"].reshape(-1)[0]), out["grad_input"]


def b64_body(x, t, dtype):
    raw = x.astype("<f4" if dtype == "float32" else "<f8").tobytes()
    return json.dumps({
        "input": {"shape": list(x.shape), "dtype": dtype,
                  "base64": base64.b64encode(raw).decode()},
        "target": t.tolist(), "grad": ["input"],
        "output_format": "base64"}).encode()


def b64_answer(body):
    doc = json.loads(body)
    g = doc["grad"]["input"]
    grad = np.frombuffer(base64.b64decode(g["base64"]), "<f8")
    return float(doc["value"]), grad.reshape(g["shape"])


def json_body(x, t):
    return json.dumps({"input": x.astype(np.float64).tolist(),
                       "target": t.tolist(), "grad": ["input"]}).encode()


def json_answer(body):
    doc = json.loads(body)
    return float(doc["value"]), np.array(doc["grad"]["input"])


def post(conn, path, body, headers):
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
    except (BrokenPipeError, ConnectionResetError,
            http.client.RemoteDisconnected):
        # the server closed the idle keep-alive connection (uvicorn does
        # after 5 s): once more on a new one
        conn.close()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"{path}: {resp.status} {data[:300]!r}")
    return resp, data


def torch_run(x, t):
    xt = torch.from_numpy(x).to(torch.float64).requires_grad_()
    loss = F.cross_entropy(xt, torch.from_numpy(t))
    loss.backward()
    return float(loss), xt.grad.numpy()


def check(name, got, want):
    v, g = got
    wv, wg = want
    scale = float(np.abs(wg).max())
    tol = 1e-6 if g.dtype == np.float32 else 1e-12
    if abs(v - wv) > 1e-12 * abs(wv) or \
            float(np.abs(g.astype(np.float64) - wg).max()) > tol * scale:
        raise SystemExit(f"{name}: the answer differs from torch's")


def vmhwm_kib(pid, key="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory(args, x, t):
    tensors = x.size * 8 + t.size * 8 + x.size * 8  # logits, targets, grad
    print(f"budget: idle + 1.25 x {tensors / 2**20:.1f} MiB "
          f"= idle + {1.25 * tensors / 2**20:.1f} MiB")
    print(f"{'variant':<12} {'idle MiB':>9} {'peak MiB':>9} "
          f"{'peak-idle':>9} {'/tensors':>8}")
    for name, in_type, grad_type in (("oip-fp32", "FP32", "FP32"),
                                     ("oip-fp32/64", "FP32", "FP64"),
                                     ("oip-fp64", "FP64", "FP64")):
        proc, port = start_lossd(args.lossd)
        try:
            body, n = oip_body(x, t, in_type, grad_type)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            idle = vmhwm_kib(proc.pid, "VmRSS")
            resp, data = post(conn, "/v2/models/cross_entropy/infer", body,
                              {"Inference-Header-Content-Length": str(n)})
            peak = vmhwm_kib(proc.pid)
            conn.close()
        finally:
            proc.terminate()
            proc.wait()
        print(f"{name:<12} {idle / 1024:9.1f} {peak / 1024:9.1f} "
              f"{(peak - idle) / 1024:9.1f} "
              f"{(peak - idle) * 1024 / tensors:8.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=os.cpu_count(),
                    help="lossd's default worker count, for torch's threads")
    ap.add_argument("--peer", help="the peer service's module file")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--only", help="comma-separated variants to run "
                    "(default: all); torch always runs")
    ap.add_argument("lossd")
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 2.0, (args.rows, args.cols)).astype(np.float32)
    t = rng.integers(0, args.cols, args.rows).astype(np.int64)
    if args.memory:
        memory(args, x, t)
        return
    torch.set_num_threads(args.workers)
    want = torch_run(x, t)

    default, dport = start_lossd(args.lossd)
    raised, rport = start_lossd(args.lossd, "--max-body-bytes", "1G")
    peer = start_peer(args.peer) if args.peer else None
    procs = [default, raised] + ([peer[0]] if peer else [])
    try:
        dconn = http.client.HTTPConnection("127.0.0.1", dport, timeout=600)
        rconn = http.client.HTTPConnection("127.0.0.1", rport, timeout=600)
        variants = []
        for name, in_type, grad_type in (("oip-fp32", "FP32", "FP32"),
                                         ("oip-fp32/64", "FP32", "FP64"),
                                         ("oip-fp64", "FP64", "FP64")):
            body, n = oip_body(x, t, in_type, grad_type)
            variants.append((name, dconn, "/v2/models/cross_entropy/infer",
                             body, {"Inference-Header-Content-Length": str(n)},
                             "oip"))
        json_headers = {"Content-Type": "application/json",
                        "Accept-Encoding": "identity"}
        variants.append(("b64-f32", dconn, "/v1/cross_entropy",
                         b64_body(x, t, "float32"), json_headers, "b64"))
        variants.append(("b64-f64", rconn, "/v1/cross_entropy",
                         b64_body(x, t, "float64"), json_headers, "b64"))
        variants.append(("json", rconn, "/v1/cross_entropy", json_body(x, t),
                         json_headers, "json"))
        if peer:
            pconn = http.client.HTTPConnection("127.0.0.1", peer[1],
                                               timeout=600)
            variants.append(("peer", pconn, "/v1/cross_entropy",
                             variants[-1][3], json_headers, "json"))
        if args.only:
            keep = set(args.only.split(","))
            variants = [v for v in variants if v[0] in keep]
        times = {v[0]: [] for v in variants}
        times["torch"] = []
        sizes = {v[0]: len(v[3]) for v in variants}
        for _ in range(args.reps):
            for name, conn, path, body, headers, kind in variants:
                t0 = time.perf_counter()
                resp, data = post(conn, path, body, headers)
                if kind == "oip":
                    got = oip_answer(
                        data, resp.getheader("Inference-Header-Content-Length"))
                elif kind == "b64":
                    got = b64_answer(data)
                else:
                    got = json_answer(data)
                times[name].append(time.perf_counter() - t0)
                check(name, got, want)
            t0 = time.perf_counter()
            torch_run(x, t)
            times["torch"].append(time.perf_counter() - t0)
            sizes["torch"] = 0
    finally:
        for p in procs:
            p.terminate()
            p.wait()

    base = statistics.median(times["torch"])
    print(f"cross_entropy ({args.rows}, {args.cols}) with grad, "
          f"{args.reps} rounds; torch with {args.workers} threads")
    print(f"{'variant':<12} {'body MB':>8} {'median s':>9} {'min s':>7} "
          f"{'max s':>7} {'/torch':>7}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<12} {sizes[name] / 1e6:8.1f} {med:9.3f} "
              f"{min(ts):7.3f} {max(ts):7.3f} {med / base:7.2f}")


if __name__ == "__main__":
    sys.exit(main())
