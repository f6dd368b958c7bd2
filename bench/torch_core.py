"""PyTorch side of core_vs_torch.sh: the same work as bench_core.c.

Run with /usr/bin/python3 (Debian's python3-torch 1.13.1):
    /usr/bin/python3 bench/torch_core.py [ce_reps [pairs_reps [ntx_reps]]]
(0 repetitions skip a case)
    /usr/bin/python3 bench/torch_core.py --info
Float64, one thread. Inputs come from the formula of bench_core.c,
x[i] = 2 sin(0.7548776662466927 i + off), made before timing, as are the
labels and leaf tensors; one repetition times forward + backward (gradients
of every differentiable input), written as a PyTorch user writes these
losses (info-nce-pytorch / SimCLR style). Each case runs once untimed first.
Output, one line per case: <case> <seconds per repetition> <loss value>
"""
import os
import re
import sys
import time

# torch.set_num_threads(1) does not reach the OpenBLAS that Debian's torch
# calls through libblas.so.3 (BLAS_INFO=generic): without this, its matrix
# products run on every core. Must be set before the library loads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

GOLDEN = 0.7548776662466927
torch.set_num_threads(1)


def inputs(shape, off):
    n = 1
    for s in shape:
        n *= s
    i = torch.arange(n, dtype=torch.float64)
    return (2.0 * torch.sin(GOLDEN * i + off)).reshape(shape)


def ce_once(x, t):
    x = x.detach().requires_grad_()
    loss = F.cross_entropy(x, t)
    loss.backward()
    return loss.item()


def pairs_once(q, k, labels):
    q = q.detach().requires_grad_()
    k = k.detach().requires_grad_()
    qh, kh = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    loss = F.cross_entropy(qh @ kh.T / 0.1, labels)
    loss.backward()
    return loss.item()


def ntx_once(q, k, labels):
    q = q.detach().requires_grad_()
    k = k.detach().requires_grad_()
    z = torch.cat([F.normalize(q, dim=-1), F.normalize(k, dim=-1)])
    s = z @ z.T / 0.1
    s = s.fill_diagonal_(float("-inf"))  # mask_self; cheaper than masked_fill
    loss = F.cross_entropy(s, labels)
    loss.backward()
    return loss.item()


def timed(name, reps, fn, *args):
    if reps == 0:
        return
    fn(*args)  # warm-up, untimed
    t0 = time.perf_counter()
    for _ in range(reps):
        v = fn(*args)
    print("%s %.6f %.17g" % (name, (time.perf_counter() - t0) / reps, v), flush=True)


def blas_info():
    cfg = torch.__config__.show()
    print("torch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))
    for key, val in re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]+)", cfg):
        print("torch.__config__.show(): %s=%s" % (key, val))
    for line in cfg.splitlines():
        if "CPU capability" in line or ("MKL" in line and "Build settings" not in line):
            print("torch.__config__.show(): " + line.strip(" -"))
    # BLAS_INFO=generic means libblas.so.3, whatever the system provides:
    # name the library actually mapped into this process.
    with open("/proc/self/maps") as f:
        libs = sorted({l.split()[-1] for l in f if "blas" in l or "mkl" in l or "lapack" in l})
    for lib in libs:
        print("torch loaded: " + lib)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--info":
        torch.zeros(2, 2, dtype=torch.float64) @ torch.zeros(2, 2, dtype=torch.float64)
        blas_info()
        return
    reps = [int(a) for a in sys.argv[1:4]] + [10, 2, 1][len(sys.argv[1:4]):]
    x = inputs((10000, 100), 0.3)
    t = torch.arange(10000) * 37 % 100
    timed("ce", reps[0], ce_once, x, t)
    n, d = 4096, 128
    q, k = inputs((n, d), 0.1), inputs((n, d), 0.2)
    timed("pairs", reps[1], pairs_once, q, k, torch.arange(n))
    timed("ntx", reps[2], ntx_once, q, k, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


if __name__ == "__main__":
    main()
