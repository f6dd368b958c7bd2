#!/usr/bin/python3
"""
gen_golden.py - golden request/response cases for lossd, computed by PyTorch.

Regenerate (Debian's python3-torch 1.13; the python3 on PATH may lack torch):

    /usr/bin/python3 tests/golden/gen_golden.py

It writes tests/golden/cases.json (committed), which tests/handlers/
test_golden.c runs through handler_eval(). The output is deterministic: fixed
seeds, float64, one thread, and every random input rounded to 6 significant
digits before anything is computed (the JSON inputs are what both sides read,
so rounding loses nothing).

Format of cases.json: {"generator", "torch_version", "cases": [case, ...]},
one case per line. A case:

    {"name":    unique, descriptive,
     "loss":    the loss name (the route /v1/{loss}); "batch" for /v1/batch,
     "request": the exact request body of docs/api.md (an object),
        or "body": the raw body as a string, for bodies that cannot be JSON
        objects (malformed JSON, duplicate keys, bare NaN),
     "expect":  what the response must say:
        {"status": 200,
         "value": number or nested tensor,   (compare elementwise, agree())
         "shape": [...],
         "sum": number, "count": number,     (absent for softmax/log_softmax)
         "grad": {"input": nested tensor, ...}   (absent: no grad requested)
         "warnings": ["broadcast-target", ...]}  (the set of warning codes;
                      absent when docs/api.md leaves it open, then not checked)
        or for refused requests
        {"status": 422, "type": "/problems/shape-mismatch",
         "pointer": "/target"}  (pointer only where docs/api.md makes it certain)
        or for batches {"status": 200, "results": [per-item expect objects,
         each with "status" and "id" if the item had one]}}

Numbers: non-finite values are the strings "NaN", "Infinity", "-Infinity",
never bare tokens. Request tensors are nested arrays unless a case tests
another encoding; empty tensors of rank > 1 are sent as {"shape","data"}
(nested [] would read as shape [0]). Expected tensors are always nested arrays (a bare number
for a 0-d tensor), whatever the request's output_format: the runner decodes
flat and base64 responses. Nested arrays cannot spell the shape of an empty
tensor beyond its first 0, so the runner compares only the element count of
empty tensors.

Semantics: PyTorch 1.13 functional losses in float64 (docs/semantics.md) with the
departures of docs/api.md: value = sum / count for mean and batchmean (checked
here against torch's own mean, which validates every count rule); when every
class target is ignored (or their weights sum to 0) value "NaN" for mean, sum
0, count 0, gradients 0; implicit softmax dim 1 when ndim >= 2 else 0;
default grad_output ones; info_nce per docs/api.md's definitions; BCE targets
outside [0,1] and negative label_smoothing refused.
"""

import base64
import json
import math
import os
import struct
import sys
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

GEN = torch.Generator().manual_seed(20240611)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json")

CASES = []
NAMES = set()

REDS = ["none", "mean", "sum"]
INF = float("inf")
NAN = float("nan")

# ----------------------------------------------------------------------------
# inputs


def r6(t):
    """t rounded to 6 significant digits (finite values only)."""
    flat = [float("%.6g" % v) if math.isfinite(v) else v
            for v in t.reshape(-1).tolist()]
    return torch.tensor(flat, dtype=torch.float64).reshape(t.shape)


def randn(*shape, scale=1.0):
    return r6(torch.randn(tuple(shape), generator=GEN) * scale)


def rand(*shape, lo=0.0, hi=1.0):
    return r6(lo + (hi - lo) * torch.rand(tuple(shape), generator=GEN))


def randint(hi, *shape):
    return torch.randint(0, hi, shape, generator=GEN).double()


def probs(*shape, dim=-1):
    return r6(torch.softmax(torch.randn(*shape, generator=GEN), dim=dim))


def T(x):
    return torch.tensor(x, dtype=torch.float64)


# ----------------------------------------------------------------------------
# JSON


def jnum(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
    return v


def jsonify(x):
    if isinstance(x, list):
        return [jsonify(v) for v in x]
    return jnum(x)


def nested(t, ints=False):
    """A tensor as nested arrays (a bare number when 0-d)."""
    v = t.tolist()
    if ints:
        def toint(x):
            return [toint(y) for y in x] if isinstance(x, list) else int(x)
        return toint(v)
    return jsonify(v)


def encode(t, how, ints=False):
    """(JSON of t in encoding how, the float64 tensor the server reads)."""
    if how == "nested" and t.numel() == 0 and t.dim() > 1:
        how = "flat"  # [] would read as shape [0]
    if how == "nested":
        return nested(t, ints), t
    if how == "flat":
        flat = t.reshape(-1).tolist()
        data = [int(v) for v in flat] if ints else jsonify(flat)
        # "data" before "shape": keys in any order
        return {"data": data, "shape": list(t.shape)}, t
    fmt = {"float32": "<%df", "float64": "<%dd", "int64": "<%dq",
           "int32": "<%di"}[how]
    flat = t.reshape(-1).tolist()
    if how in ("int64", "int32"):
        flat = [int(v) for v in flat]
    raw = struct.pack(fmt % len(flat), *flat)
    back = struct.unpack(fmt % len(flat), raw)
    read = torch.tensor([float(v) for v in back],
                        dtype=torch.float64).reshape(t.shape)
    return ({"shape": list(t.shape), "dtype": how,
             "base64": base64.b64encode(raw).decode("ascii")}, read)


# ----------------------------------------------------------------------------
# the losses, as docs/api.md defines them over PyTorch

DIFF = {
    "mse": ["input", "target"],
    "l1": ["input", "target"],
    "smooth_l1": ["input", "target"],
    "huber": ["input", "target"],
    "nll": ["input"],
    "binary_cross_entropy": ["input", "target"],
    "binary_cross_entropy_with_logits": ["input", "target"],
    "kl_div": ["input", "target"],
    "log_softmax": ["input"],
    "softmax": ["input"],
    "info_nce": ["query", "positive_key", "negative_keys"],
}

INT_TARGET = ("cross_entropy", "nll")


def ce_prob(loss, t):
    return loss == "cross_entropy" and list(t["target"].shape) == list(
        t["input"].shape)


def differentiable(loss, t):
    if loss == "cross_entropy":
        return ["input", "target"] if ce_prob(loss, t) else ["input"]
    return [n for n in DIFF[loss] if n in t]


def info_nce(t, o, red):
    tau = o.get("temperature", 0.1)
    norm = o.get("normalize", True)
    variant = o.get("variant", "pairs")
    mode = o.get("negative_mode", "unpaired")
    mask_self = o.get("mask_self", True)

    def nz(x):
        return F.normalize(x, dim=-1, eps=1e-12) if norm else x

    q, k = nz(t["query"]), nz(t["positive_key"])
    n = q.shape[0]
    if "negative_keys" in t:
        nk = nz(t["negative_keys"])
        pos = (q * k).sum(1, keepdim=True)
        if mode == "unpaired":
            neg = q @ nk.T
        else:
            neg = torch.einsum("nd,nmd->nm", q, nk)
        logits = torch.cat([pos, neg], 1) / tau
        per = F.cross_entropy(logits, torch.zeros(n, dtype=torch.long),
                              reduction="none")
    elif variant == "pairs":
        per = F.cross_entropy(q @ k.T / tau, torch.arange(n),
                              reduction="none")
    elif variant == "symmetric":
        s = q @ k.T / tau
        per = (F.cross_entropy(s, torch.arange(n), reduction="none") +
               F.cross_entropy(s.T, torch.arange(n), reduction="none")) / 2
    else:
        z = torch.cat([q, k], 0)
        s = z @ z.T / tau
        if mask_self:
            s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool), -INF)
        labels = (torch.arange(2 * n) + n) % (2 * n)
        per = F.cross_entropy(s, labels, reduction="none")
    count = float(per.numel())
    total = per.sum()
    if red == "none":
        return per, total, count
    if red == "sum":
        return total, total, count
    return total / count, total, count


def forward(loss, t, o, red):
    """(output for reduction red, sum of per-sample losses, count)."""
    x = t.get("input")
    y = t.get("target")
    if loss in ("mse", "l1", "smooth_l1", "huber"):
        f = {"mse": F.mse_loss, "l1": F.l1_loss}.get(loss)
        if loss == "smooth_l1":
            def f(a, b, reduction):
                return F.smooth_l1_loss(a, b, reduction=reduction,
                                        beta=o.get("beta", 1.0))
        if loss == "huber":
            def f(a, b, reduction):
                return F.huber_loss(a, b, reduction=reduction,
                                    delta=o.get("delta", 1.0))
        out = f(x, y, reduction=red)
        tot = f(x.detach(), y.detach(), reduction="sum")
        cnt = float(torch.broadcast_shapes(x.shape, y.shape).numel())
        return out, tot, cnt
    if loss in INT_TARGET:
        w = t.get("weight")
        ii = o.get("ignore_index", -100)
        if loss == "cross_entropy":
            ls = o.get("label_smoothing", 0.0)

            def f(a, b, reduction):
                return F.cross_entropy(a, b, weight=w, ignore_index=ii,
                                       reduction=reduction,
                                       label_smoothing=ls)
        else:
            def f(a, b, reduction):
                return F.nll_loss(a, b, weight=w, ignore_index=ii,
                                  reduction=reduction)
        if ce_prob(loss, t):
            out = f(x, y, red)
            tot = f(x.detach(), y.detach(), "sum")
            c = x.shape[1] if x.dim() >= 2 else x.shape[0]
            cnt = float(x.numel() // c) if c else 0.0
            return out, tot, cnt
        yl = y.long()
        out = f(x, yl, red)
        tot = f(x.detach(), yl, "sum")
        keep = yl != ii
        if w is None:
            cnt = float(keep.sum())
        else:
            cnt = float(w[yl[keep]].sum()) if keep.any() else 0.0
        return out, tot, cnt
    if loss == "binary_cross_entropy":
        w = t.get("weight")
        out = F.binary_cross_entropy(x, y, weight=w, reduction=red)
        tot = F.binary_cross_entropy(x.detach(), y.detach(), weight=w,
                                     reduction="sum")
        return out, tot, float(x.numel())
    if loss == "binary_cross_entropy_with_logits":
        w, pw = t.get("weight"), t.get("pos_weight")
        out = F.binary_cross_entropy_with_logits(x, y, weight=w,
                                                 reduction=red, pos_weight=pw)
        tot = F.binary_cross_entropy_with_logits(x.detach(), y.detach(),
                                                 weight=w, reduction="sum",
                                                 pos_weight=pw)
        return out, tot, float(x.numel())
    if loss == "kl_div":
        lt = o.get("log_target", False)
        out = F.kl_div(x, y, reduction=red, log_target=lt)
        tot = F.kl_div(x.detach(), y.detach(), reduction="sum", log_target=lt)
        if red == "batchmean":
            cnt = float(x.shape[0]) if x.dim() else 1.0
        else:
            cnt = float(torch.broadcast_shapes(x.shape, y.shape).numel())
        return out, tot, cnt
    if loss in ("softmax", "log_softmax"):
        dim = o.get("dim")
        if dim is None:
            dim = 1 if x.dim() >= 2 else 0
        f = F.softmax if loss == "softmax" else F.log_softmax
        return f(x, dim=dim), None, None
    if loss == "info_nce":
        return info_nce(t, o, red)
    raise ValueError(loss)


def warn_codes(loss, t, o, red, cnt):
    """The warning codes docs/api.md implies, or None where it leaves them open."""
    x, y = t.get("input"), t.get("target")
    if loss in ("mse", "l1", "smooth_l1", "huber"):
        return ["broadcast-target"] if list(x.shape) != list(y.shape) else []
    if loss == "kl_div":
        if red == "mean":
            return ["kl-div-mean"]
        if red == "batchmean":
            if x.dim() == 0:
                return None
            return ["batchmean-1d"] if x.dim() == 1 else []
        return []
    if loss in ("softmax", "log_softmax"):
        return [] if "dim" in o else ["implicit-dim"]
    if loss in INT_TARGET and not ce_prob(loss, t):
        ii = o.get("ignore_index", -100)
        if cnt == 0:
            n = y.numel()
            if n > 0 and bool((y == ii).all()) and red == "mean":
                return ["all-ignored"]
            return None
        return []
    if loss == "binary_cross_entropy":
        w = t.get("weight")
        w = torch.ones_like(x) if w is None else w.expand(x.shape)
        lo = torch.log(x) < -100
        hi = torch.log(1 - x) < -100
        sure = ((lo & (y != 0)) | (hi & (y != 1))) & (w != 0)
        if bool(sure.any()):
            return ["bce-log-clamp"]
        return None if bool((lo | hi).any()) else []
    if loss == "info_nce":
        if o.get("normalize", True):
            for n in ("query", "positive_key", "negative_keys"):
                if n in t and bool(
                        (t[n].norm(dim=-1) < 1e-12).any()):
                    return ["normalize-eps"]
        return []
    return []


def close(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-12 * abs(b) + 1e-14


def expected(loss, t, o, grad, grad_output):
    red = o.get("reduction", "mean")
    names = []
    if grad is True:
        names = differentiable(loss, t)
    elif grad:
        names = list(grad)
    leaf = {}
    for k, v in t.items():
        v = v.clone()
        if k in names:
            v.requires_grad_(True)
        leaf[k] = v
    out, tot, cnt = forward(loss, leaf, o, red)
    exp = {"status": 200}
    value = out.detach().clone()
    grads = {}
    if names:
        if grad_output is None:
            go = torch.ones_like(out)
        else:
            go = torch.as_tensor(grad_output, dtype=torch.float64).reshape(
                out.shape)
        gs = torch.autograd.grad(out, [leaf[n] for n in names], go,
                                 allow_unused=True)
        for n, g in zip(names, gs):
            grads[n] = torch.zeros_like(t[n]) if g is None else g.detach()
    if tot is not None:
        tot = float(tot)
        if loss in INT_TARGET and not ce_prob(loss, t) and cnt == 0:
            # docs/api.md: value NaN (mean), sum 0, count 0, gradients 0
            if red == "mean":
                value = torch.tensor(NAN)
            tot = 0.0
            # torch agrees when every target is ignored; when the weights
            # of the non-ignored targets sum to 0 its mean gradient is
            # 0/0 = NaN, and docs/api.md's zeros win
            for n in grads:
                grads[n] = torch.zeros_like(grads[n])
        if red in ("mean", "batchmean"):
            mine = tot / cnt if cnt else NAN
            if not close(float(value), mine):
                raise AssertionError("%s: torch mean %r != sum/count %r/%r" %
                                     (loss, float(value), tot, cnt))
    exp["value"] = nested(value)
    exp["shape"] = list(value.shape)
    if tot is not None:
        exp["sum"] = jnum(tot)
        exp["count"] = cnt
    if grads:
        exp["grad"] = {n: nested(g) for n, g in grads.items()}
    w = warn_codes(loss, t, o, red, cnt)
    if w is not None:
        exp["warnings"] = w
    return exp


# ----------------------------------------------------------------------------
# case builders


def put(name, loss, request=None, expect=None, body=None):
    if name in NAMES:
        raise ValueError("duplicate case name " + name)
    NAMES.add(name)
    c = {"name": name, "loss": loss}
    if body is not None:
        c["body"] = body
    else:
        c["request"] = request
    c["expect"] = expect
    CASES.append(c)


def build(loss, t, o=None, grad=None, grad_output=None, enc=None,
          output_format=None):
    """(request, expect) for tensors t (name -> tensor) and options o."""
    o = dict(o or {})
    enc = enc or {}
    req = {}
    read = {}
    for k, v in t.items():
        ints = (k == "target" and loss in INT_TARGET and
                not ce_prob(loss, t) and enc.get(k) != "floats")
        how = enc.get(k, "nested")
        if how == "floats":
            how = "nested"
        req[k], read[k] = encode(v, how, ints)
    req.update(o)
    if grad is not None:
        req["grad"] = grad
    if grad_output is not None:
        if isinstance(grad_output, torch.Tensor):
            req["grad_output"] = nested(grad_output)
            grad_output = grad_output.tolist()
        else:
            req["grad_output"] = jnum(grad_output)
    if output_format is not None:
        req["output_format"] = output_format
    return req, expected(loss, read, o, grad, grad_output)


def add(name, loss, t, o=None, **kw):
    req, exp = build(loss, t, o, **kw)
    put(name, loss, req, exp)


def err(name, loss, request, status, ptype, pointer=None, body=None):
    e = {"status": status, "type": ptype}
    if pointer is not None:
        e["pointer"] = pointer
    put(name, loss, request, e, body)


def go_for(loss, t, o):
    """A grad_output of the output's shape for reduction o['reduction']."""
    out, _, _ = forward(loss, {k: v.clone() for k, v in t.items()}, o,
                        o.get("reduction", "mean"))
    if out.dim() == 0:
        return 0.75
    return rand(*out.shape, lo=-1.0, hi=1.0)


# ----------------------------------------------------------------------------
# pointwise: mse, l1, smooth_l1, huber


def gen_pointwise():
    for loss in ("mse", "l1", "smooth_l1", "huber"):
        x = randn(3, 4)
        y = randn(3, 4)
        # a tie (d = 0) and exact band edges for the piecewise losses
        y[0, 0] = x[0, 0]
        y[0, 1] = x[0, 1] - 1.0
        y[0, 2] = x[0, 2] + 1.0
        base = {"input": x, "target": y}
        for red in REDS:
            o = {"reduction": red}
            add("%s/%s" % (loss, red), loss, base, o)
            add("%s/%s/grad" % (loss, red), loss, base, o, grad=True)
            add("%s/%s/grad_output" % (loss, red), loss, base, o, grad=True,
                grad_output=go_for(loss, base, o))
            add("%s/%s/grad_target_only" % (loss, red), loss, base, o,
                grad=["target"])
        add("%s/default_reduction/grad_input" % loss, loss, base, {},
            grad=["input"])
        # broadcast targets
        for shp in ((4,), (3, 1), (1, 4), ()):
            yb = randn(*shp)
            tb = {"input": x, "target": yb}
            for red in REDS:
                o = {"reduction": red}
                add("%s/broadcast_target_%s/%s/grad" %
                    (loss, "x".join(map(str, shp)) or "scalar", red), loss,
                    tb, o, grad=True)
        # input smaller than target
        add("%s/broadcast_input_4_target_3x4/sum/grad" % loss, loss,
            {"input": randn(4), "target": randn(3, 4)},
            {"reduction": "sum"}, grad=True)
        add("%s/broadcast_3x1_vs_1x4/none/grad_output" % loss, loss,
            {"input": randn(3, 1), "target": randn(1, 4)},
            {"reduction": "none"}, grad=True,
            grad_output=rand(3, 4, lo=-1, hi=1))
        # non-finite values
        xn = T([[NAN, INF, -INF, 1.0], [INF, 0.5, -0.0, 2.0]])
        yn = T([[0.0, INF, 1.0, NAN], [2.0, -INF, 0.0, 2.0]])
        for red in REDS:
            add("%s/nonfinite/%s/grad" % (loss, red), loss,
                {"input": xn, "target": yn}, {"reduction": red}, grad=True)
        # empty batch
        for red in REDS:
            add("%s/empty_0x3/%s/grad" % (loss, red), loss,
                {"input": torch.zeros(0, 3), "target": torch.zeros(0, 3)},
                {"reduction": red}, grad=True)
        # 0-d
        add("%s/scalar_0d/mean/grad" % loss, loss,
            {"input": T(1.5), "target": T(-0.25)}, {}, grad=True)

    # beta / delta options
    x = randn(4, 5, scale=2.0)
    y = randn(4, 5)
    y[0, 0] = x[0, 0]
    y[1, 1] = x[1, 1] - 0.5
    y[2, 2] = x[2, 2] + 2.0
    t = {"input": x, "target": y}
    for beta in (0.0, 0.5, 2.0, 1e-3):
        for red in REDS:
            add("smooth_l1/beta_%g/%s/grad" % (beta, red), "smooth_l1", t,
                {"beta": beta, "reduction": red}, grad=True)
    # the beta = 0 tie quirk: both gradients -norm*g at d = 0
    add("smooth_l1/beta_0/ties/sum/grad", "smooth_l1",
        {"input": T([0.0, 1.0, -2.0]), "target": T([0.0, 1.0, 3.0])},
        {"beta": 0, "reduction": "sum"}, grad=True)
    for delta in (0.5, 2.0, 1e-3):
        for red in REDS:
            add("huber/delta_%g/%s/grad" % (delta, red), "huber", t,
                {"delta": delta, "reduction": red}, grad=True)
    add("huber/delta_0.5/broadcast/none/grad_output", "huber",
        {"input": x, "target": randn(5)},
        {"delta": 0.5, "reduction": "none"}, grad=True,
        grad_output=rand(4, 5, lo=-1, hi=1))
    add("smooth_l1/beta_0/broadcast/mean/grad", "smooth_l1",
        {"input": x, "target": randn(4, 1)}, {"beta": 0.0}, grad=True)
    # a 20-digit integer reads as a float64
    # (a raw body: JSON parsers without big integers may refuse the literal)
    big = float(12345678901234567890)
    put("mse/twenty_digit_integer", "mse", None,
        {"status": 200, "value": big * big, "shape": [], "sum": big * big,
         "count": 2.0, "warnings": []},
        body='{"input": [12345678901234567890, 1], "target": [0, 1], '
             '"reduction": "sum"}')


# ----------------------------------------------------------------------------
# cross_entropy and nll


def gen_ce_nll():
    n, c = 5, 4
    x = randn(n, c, scale=2.0)
    tgt = randint(c, n)
    tgt_ign = tgt.clone()
    tgt_ign[1] = -100
    w = rand(c, lo=0.2, hi=2.0)
    lp = r6(torch.log_softmax(randn(n, c, scale=2.0), 1))

    for loss in ("cross_entropy", "nll"):
        xx = x if loss == "cross_entropy" else lp
        lss = (0.0, 0.1, 1.0) if loss == "cross_entropy" else (None,)
        for red in REDS:
            for wname, ww in (("noweight", None), ("weight", w)):
                for ls in lss:
                    t = {"input": xx, "target": tgt_ign}
                    if ww is not None:
                        t["weight"] = ww
                    o = {"reduction": red}
                    nm = "%s/index/%s/%s" % (loss, red, wname)
                    if ls is not None:
                        o["label_smoothing"] = ls
                        nm += "/ls_%g" % ls
                    add(nm + "/ignored_default/grad", loss, t, o, grad=True)
            # ignore_index 255
            t255 = tgt.clone()
            t255[0] = 255
            t255[3] = 255
            o = {"reduction": red, "ignore_index": 255}
            if loss == "cross_entropy":
                o["label_smoothing"] = 0.1
            add("%s/index/%s/ignore_255/weight/grad" % (loss, red), loss,
                {"input": xx, "target": t255, "weight": w}, o, grad=True)
            # grad_output
            t = {"input": xx, "target": tgt_ign, "weight": w}
            o = {"reduction": red}
            add("%s/index/%s/weight/grad_output" % (loss, red), loss, t, o,
                grad=["input"], grad_output=go_for(loss, t, o))
            # K-dim
            xk = randn(2, 3, 2, 2, scale=2.0)
            if loss == "nll":
                xk = r6(torch.log_softmax(xk, 1))
            tk = randint(3, 2, 2, 2)
            tk[0, 1, 0] = -100
            wk = rand(3, lo=0.5, hi=1.5)
            for wname, ww in (("noweight", None), ("weight", wk)):
                t = {"input": xk, "target": tk}
                if ww is not None:
                    t["weight"] = ww
                o = {"reduction": red}
                if loss == "cross_entropy":
                    o["label_smoothing"] = 0.1
                add("%s/kdim_2x3x2x2/%s/%s/grad" % (loss, red, wname), loss,
                    t, o, grad=True)
            add("%s/kdim_2x3x4/%s/grad_output" % (loss, red), loss,
                {"input": randn(2, 3, 4), "target": randint(3, 2, 4)},
                {"reduction": red}, grad=True,
                grad_output=(rand(2, 4, lo=-1, hi=1) if red == "none"
                             else -1.25))
            # unbatched (C)
            xu = randn(c, scale=2.0)
            add("%s/unbatched_C/%s/grad" % (loss, red), loss,
                {"input": xu, "target": T(2.0)}, {"reduction": red},
                grad=True)
            add("%s/unbatched_C/%s/weight/grad" % (loss, red), loss,
                {"input": xu, "target": T(1.0), "weight": w},
                {"reduction": red}, grad=True)
            add("%s/unbatched_C/%s/ignored/grad" % (loss, red), loss,
                {"input": xu, "target": T(-100.0)}, {"reduction": red},
                grad=True)
            # all targets ignored
            for ii in (-100, 255):
                o = {"reduction": red}
                if ii != -100:
                    o["ignore_index"] = ii
                if loss == "cross_entropy":
                    o["label_smoothing"] = 0.1
                add("%s/all_ignored_%d/%s/grad" % (loss, ii, red), loss,
                    {"input": xx, "target": torch.full((n,), float(ii)),
                     "weight": w}, o, grad=True)
            add("%s/all_ignored/%s/noweight/grad" % (loss, red), loss,
                {"input": xx, "target": torch.full((n,), -100.0)},
                {"reduction": red}, grad=True)
            # weights of the non-ignored targets sum to 0
            add("%s/zero_weight_sum/%s/grad" % (loss, red), loss,
                {"input": xx, "target": T([0, 0, -100, 0, 0]),
                 "weight": T([0.0, 1.0, 2.0, 0.5])},
                {"reduction": red}, grad=True)
            # empty batch
            add("%s/empty_0x4/%s/grad" % (loss, red), loss,
                {"input": torch.zeros(0, c), "target": torch.zeros(0)},
                {"reduction": red}, grad=True)
        # class indices written as floats (1.0 is fine)
        add("%s/index/float_written_targets" % loss, loss,
            {"input": xx, "target": tgt}, {}, enc={"target": "floats"})
        # non-finite inputs
        xn = xx.clone()
        xn[0, 1] = NAN
        xn[1, 0] = -INF
        xn[2, (int(tgt[2]) + 1) % c] = INF
        for red in REDS:
            add("%s/nonfinite/%s/grad" % (loss, red), loss,
                {"input": xn, "target": tgt}, {"reduction": red}, grad=True)

    # extreme logits
    xe = T([[1000.0, 0.0, -1000.0, 3.0], [-1000.0, 1000.0, 0.0, 0.0],
            [1000.0, 1000.0, -1000.0, -1000.0]])
    for red in REDS:
        for ls in (0.0, 0.1):
            add("cross_entropy/extreme_logits/%s/ls_%g/grad" % (red, ls),
                "cross_entropy", {"input": xe, "target": T([2, 1, 0])},
                {"reduction": red, "label_smoothing": ls}, grad=True)
    add("cross_entropy/extreme_logits/prob/grad", "cross_entropy",
        {"input": xe, "target": probs(3, 4)}, {"reduction": "mean"},
        grad=True)
    # a -inf logit at a non-target class; a +inf row; -inf at the target
    add("cross_entropy/neg_inf_logit/mean/grad", "cross_entropy",
        {"input": T([[-INF, 1.0, 2.0], [0.5, -INF, -INF]]),
         "target": T([1, 0])}, {}, grad=True)

    # probability targets
    yp = probs(n, c)
    for red in REDS:
        for wname, ww in (("noweight", None), ("weight", w)):
            for ls in (0.0, 0.3, 1.0):
                t = {"input": x, "target": yp}
                if ww is not None:
                    t["weight"] = ww
                add("cross_entropy/prob/%s/%s/ls_%g/grad" % (red, wname, ls),
                    "cross_entropy", t,
                    {"reduction": red, "label_smoothing": ls}, grad=True)
        xk = randn(2, 3, 2, 2)
        ypk = probs(2, 3, 2, 2, dim=1)
        add("cross_entropy/prob/kdim_2x3x2x2/%s/weight/grad" % red,
            "cross_entropy", {"input": xk, "target": ypk, "weight": wk},
            {"reduction": red, "label_smoothing": 0.1}, grad=True)
        add("cross_entropy/prob/unbatched_C/%s/grad" % red, "cross_entropy",
            {"input": randn(c), "target": probs(c)}, {"reduction": red},
            grad=True)
        t = {"input": x, "target": yp, "weight": w}
        o = {"reduction": red}
        add("cross_entropy/prob/%s/grad_output" % red, "cross_entropy", t, o,
            grad=True, grad_output=go_for("cross_entropy", t, o))
        add("cross_entropy/prob/%s/grad_target_only" % red, "cross_entropy",
            t, o, grad=["target"])
        add("cross_entropy/prob/empty_0x4/%s/grad" % red, "cross_entropy",
            {"input": torch.zeros(0, c), "target": torch.zeros(0, c)},
            {"reduction": red}, grad=True)
    # unnormalised and negative probability targets are not validated
    add("cross_entropy/prob/unnormalised/sum/grad", "cross_entropy",
        {"input": x, "target": rand(n, c, lo=-0.5, hi=2.0)},
        {"reduction": "sum"}, grad=True)
    # nll with inputs that are not log-probabilities
    add("nll/unnormalised_input/mean/grad", "nll",
        {"input": x, "target": tgt}, {}, grad=True)

    # the worked example of the task
    xw = T([[-1.9675, -0.0030, 1.4072, 0.6208],
            [-1.1345, -0.5482, 0.9298, 1.0552],
            [1.1224, 1.8556, 0.0283, 1.6605],
            [0.5614, -0.2457, -0.4221, -1.6666],
            [0.8162, -0.9078, -1.0052, -0.2580]])
    tw = T([1, 2, 3, 0, 2])
    for red in REDS:
        add("cross_entropy/worked_example/%s/grad" % red, "cross_entropy",
            {"input": xw, "target": tw}, {"reduction": red}, grad=True)
    add("nll/worked_example_log_softmax/none", "nll",
        {"input": torch.log_softmax(xw, 1), "target": tw},
        {"reduction": "none"})


# ----------------------------------------------------------------------------
# binary cross entropy (with logits)


def gen_bce():
    loss = "binary_cross_entropy"
    x = rand(3, 4, lo=0.02, hi=0.98)
    y = rand(3, 4)
    y[0, 0] = 0.0
    y[0, 1] = 1.0
    ws = (("noweight", None), ("weight_4", rand(4, lo=0.1, hi=2.0)),
          ("weight_3x1", rand(3, 1, lo=0.1, hi=2.0)),
          ("weight_scalar", T(0.7)), ("weight_3x4", rand(3, 4, lo=0, hi=2)))
    for red in REDS:
        for wname, w in ws:
            t = {"input": x, "target": y}
            if w is not None:
                t["weight"] = w
            add("%s/%s/%s/grad" % (loss, red, wname), loss, t,
                {"reduction": red}, grad=True)
        t = {"input": x, "target": y, "weight": ws[1][1]}
        o = {"reduction": red}
        add("%s/%s/grad_output" % (loss, red), loss, t, o, grad=True,
            grad_output=go_for(loss, t, o))
        add("%s/%s/grad_target_only" % (loss, red), loss, t, o,
            grad=["target"])
        # inputs at 0 and 1: log clamp at -100 and the 1e-12f EPS gradient
        xe = T([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.5, 1e-50]])
        ye = T([[1.0, 0.0, 0.3, 0.7], [0.0, 1.0, 0.5, 1.0]])
        add("%s/input_0_and_1/%s/grad" % (loss, red), loss,
            {"input": xe, "target": ye}, {"reduction": red}, grad=True)
        add("%s/input_0_and_1/%s/grad_input" % (loss, red), loss,
            {"input": xe, "target": ye}, {"reduction": red}, grad=["input"])
        add("%s/empty_0x4/%s/grad" % (loss, red), loss,
            {"input": torch.zeros(0, 4), "target": torch.zeros(0, 4)},
            {"reduction": red}, grad=True)
    # clamp only where its coefficient is 0 (p=0,y=0 / p=1,y=1): the value is
    # finite; whether bce-log-clamp is reported is left open
    add("%s/input_0_and_1_exact_targets/mean/grad_input" % loss, loss,
        {"input": T([0.0, 1.0, 0.25]), "target": T([0.0, 1.0, 0.5])}, {},
        grad=["input"])
    add("%s/scalar_0d/grad" % loss, loss, {"input": T(0.3), "target": T(0.6)},
        {}, grad=True)

    loss = "binary_cross_entropy_with_logits"
    x = randn(3, 4, scale=3.0)
    x[0, 0] = 1000.0
    x[0, 1] = -1000.0
    y = rand(3, 4)
    y[1, 0] = 0.0
    y[1, 1] = 1.0
    wv = rand(4, lo=0.1, hi=2.0)
    pw = rand(4, lo=0.5, hi=3.0)
    for red in REDS:
        for wname, w in (("noweight", None), ("weight_4", wv),
                         ("weight_3x1", rand(3, 1, lo=0.1, hi=2.0))):
            for pname, p in (("", None), ("/pos_weight_4", pw),
                             ("/pos_weight_1", rand(1, lo=0.5, hi=3.0))):
                t = {"input": x, "target": y}
                if w is not None:
                    t["weight"] = w
                if p is not None:
                    t["pos_weight"] = p
                add("%s/%s/%s%s/grad" % (loss, red, wname, pname), loss, t,
                    {"reduction": red}, grad=True)
        t = {"input": x, "target": y, "weight": wv, "pos_weight": pw}
        o = {"reduction": red}
        add("%s/%s/grad_output" % (loss, red), loss, t, o, grad=True,
            grad_output=go_for(loss, t, o))
        add("%s/%s/grad_target_only" % (loss, red), loss, t, o,
            grad=["target"])
        add("%s/empty_0x4/%s/grad" % (loss, red), loss,
            {"input": torch.zeros(0, 4), "target": torch.zeros(0, 4)},
            {"reduction": red}, grad=True)
    # targets outside [0,1] are not validated here
    add("%s/targets_outside_01/mean/grad" % loss, loss,
        {"input": randn(2, 3), "target": T([[1.5, -0.5, 0.5],
                                            [2.0, 0.0, -1.0]])},
        {}, grad=True)
    add("%s/nonfinite/none/grad" % loss, loss,
        {"input": T([INF, -INF, NAN, 0.0]), "target": T([1.0, 0.0, 0.5, 0.5])},
        {"reduction": "none"}, grad=True)
    add("%s/kdim_pos_weight_3x1x1/mean/grad" % loss, loss,
        {"input": randn(2, 3, 2, 2), "target": rand(2, 3, 2, 2),
         "pos_weight": rand(3, 1, 1, lo=0.5, hi=2.0)}, {}, grad=True)


# ----------------------------------------------------------------------------
# kl_div


def gen_kl():
    loss = "kl_div"
    x = r6(torch.log_softmax(randn(3, 4), 1))
    y = probs(3, 4)
    y[0, 0] = 0.0
    ylog = r6(torch.log_softmax(randn(3, 4), 1))
    for red in ("none", "mean", "sum", "batchmean"):
        for lt in (False, True):
            yy = ylog if lt else y
            o = {"reduction": red}
            if lt:
                o["log_target"] = True
            add("%s/%s/log_target_%s/grad" % (loss, red, str(lt).lower()),
                loss, {"input": x, "target": yy}, o, grad=True)
            add("%s/%s/log_target_%s/grad_output" %
                (loss, red, str(lt).lower()), loss,
                {"input": x, "target": yy}, o, grad=True,
                grad_output=go_for(loss, {"input": x, "target": yy}, o))
        add("%s/%s/broadcast_target_4/grad" % (loss, red), loss,
            {"input": x, "target": probs(4)}, {"reduction": red}, grad=True)
        add("%s/%s/log_target_false_explicit/grad_input" % (loss, red), loss,
            {"input": x, "target": y},
            {"reduction": red, "log_target": False}, grad=["input"])
        add("%s/%s/empty_0x3/grad" % (loss, red), loss,
            {"input": torch.zeros(0, 3), "target": torch.zeros(0, 3)},
            {"reduction": red}, grad=True)
        add("%s/%s/1d/grad" % (loss, red), loss,
            {"input": r6(torch.log_softmax(randn(5), 0)), "target": probs(5)},
            {"reduction": red}, grad=True)
    add("%s/default_reduction/grad" % loss, loss, {"input": x, "target": y},
        {}, grad=True)
    add("%s/batchmean/0d" % loss, loss, {"input": T(-0.5), "target": T(0.25)},
        {"reduction": "batchmean"}, grad=True)
    # negative targets give NaN (xlogy), not validated
    add("%s/sum/negative_target/grad" % loss, loss,
        {"input": T([-1.0, -2.0]), "target": T([-0.5, 0.5])},
        {"reduction": "sum"}, grad=True)
    add("%s/kdim_2x3x2/batchmean/grad" % loss, loss,
        {"input": r6(torch.log_softmax(randn(2, 3, 2), 1)),
         "target": probs(2, 3, 2, dim=1)}, {"reduction": "batchmean"},
        grad=True)


# ----------------------------------------------------------------------------
# softmax, log_softmax


def gen_softmax():
    x3 = randn(2, 3, 4, scale=2.0)
    for loss in ("softmax", "log_softmax"):
        for d in (0, 1, 2, -1, -2, -3):
            add("%s/3d/dim_%d/grad" % (loss, d), loss, {"input": x3},
                {"dim": d}, grad=True)
        add("%s/3d/implicit_dim/grad" % loss, loss, {"input": x3}, {},
            grad=True)
        add("%s/3d/dim_1/grad_output" % loss, loss, {"input": x3},
            {"dim": 1}, grad=True, grad_output=rand(2, 3, 4, lo=-1, hi=1))
        add("%s/1d/implicit_dim/grad" % loss, loss, {"input": randn(5)}, {},
            grad=True)
        add("%s/1d/dim_0/grad_output" % loss, loss, {"input": randn(5)},
            {"dim": 0}, grad=True, grad_output=rand(5, lo=-1, hi=1))
        x2 = randn(3, 4)
        add("%s/2d/implicit_dim/grad" % loss, loss, {"input": x2}, {},
            grad=True)
        add("%s/2d/dim_0/grad" % loss, loss, {"input": x2}, {"dim": 0},
            grad=True)
        add("%s/2d/dim_-1" % loss, loss, {"input": x2}, {"dim": -1})
        add("%s/4d/implicit_dim/grad" % loss, loss,
            {"input": randn(2, 3, 2, 2)}, {}, grad=True)
        add("%s/0d/implicit_dim/grad" % loss, loss, {"input": T(0.7)}, {},
            grad=True)
        add("%s/0d/dim_0/grad" % loss, loss, {"input": T(-3.0)}, {"dim": 0},
            grad=True)
        edge = T([[1000.0, 0.0, -1000.0], [1.0, INF, 2.0],
                  [-INF, -INF, -INF], [-INF, 1.0, 2.0], [NAN, 0.0, 1.0]])
        add("%s/edge_rows/dim_1/grad" % loss, loss, {"input": edge},
            {"dim": 1}, grad=True)
        add("%s/empty_0x3/dim_1/grad" % loss, loss,
            {"input": torch.zeros(0, 3)}, {"dim": 1}, grad=True)
        add("%s/empty_0x3/dim_0/grad" % loss, loss,
            {"input": torch.zeros(0, 3)}, {"dim": 0}, grad=True)


# ----------------------------------------------------------------------------
# info_nce


def gen_info_nce():
    loss = "info_nce"
    n, d, m = 4, 3, 5
    q = randn(n, d)
    k = r6(q + 0.5 * torch.randn(n, d, generator=GEN))
    base = {"query": q, "positive_key": k}
    variants = (("pairs", {}), ("symmetric", {"variant": "symmetric"}),
                ("nt_xent_mask", {"variant": "nt_xent"}),
                ("nt_xent_mask_true", {"variant": "nt_xent",
                                       "mask_self": True}),
                ("nt_xent_nomask", {"variant": "nt_xent", "mask_self": False}),
                ("pairs_explicit", {"variant": "pairs"}))
    for vname, vo in variants:
        for norm in (True, False):
            for red in REDS:
                o = dict(vo)
                o["normalize"] = norm
                o["reduction"] = red
                add("%s/%s/normalize_%s/%s/grad" %
                    (loss, vname, str(norm).lower(), red), loss, base, o,
                    grad=True)
        for tau in (0.05, 0.5, 1.0):
            o = dict(vo)
            o["temperature"] = tau
            add("%s/%s/tau_%g/grad" % (loss, vname, tau), loss, base, o,
                grad=True)
        o = dict(vo)
        o["reduction"] = "none"
        add("%s/%s/none/grad_output" % (loss, vname), loss, base, o,
            grad=True, grad_output=go_for(loss, base, o))
        add("%s/%s/default_options" % (loss, vname), loss, base, dict(vo))
    nk_u = randn(m, d)
    nk_p = randn(n, 2, d)
    for mode, nk in (("unpaired", nk_u), ("paired", nk_p)):
        t = dict(base)
        t["negative_keys"] = nk
        for norm in (True, False):
            for red in REDS:
                o = {"normalize": norm, "reduction": red}
                if mode == "paired" or red == "sum":
                    o["negative_mode"] = mode
                add("%s/negatives_%s/normalize_%s/%s/grad" %
                    (loss, mode, str(norm).lower(), red), loss, t, o,
                    grad=True)
        o = {"negative_mode": mode, "temperature": 0.5, "variant": "pairs"}
        add("%s/negatives_%s/tau_0.5/grad_list" % (loss, mode), loss, t, o,
            grad=["query", "negative_keys"])
        o = {"negative_mode": mode, "reduction": "none"}
        add("%s/negatives_%s/none/grad_output" % (loss, mode), loss, t, o,
            grad=True, grad_output=go_for(loss, t, o))
    # the note's formula: cross_entropy(q @ k.T / tau, arange(N))
    add("%s/pairs/normalize_false/tau_1/grad" % loss, loss, base,
        {"normalize": False, "temperature": 1.0}, grad=True)
    # a zero vector under normalization: x / 1e-12
    qz = q.clone()
    qz[1] = 0.0
    add("%s/pairs/zero_query_row/grad" % loss, loss,
        {"query": qz, "positive_key": k}, {}, grad=True)
    add("%s/nt_xent/zero_key_row/grad" % loss, loss,
        {"query": q, "positive_key": torch.zeros(n, d)},
        {"variant": "nt_xent"}, grad=True)
    add("%s/pairs/zero_query_row/normalize_false/grad" % loss, loss,
        {"query": qz, "positive_key": k}, {"normalize": False}, grad=True)
    add("%s/pairs/n1/grad" % loss, loss,
        {"query": randn(1, 4), "positive_key": randn(1, 4)}, {}, grad=True)
    add("%s/symmetric/n6_d8/tau_0.07/grad" % loss, loss,
        {"query": randn(6, 8), "positive_key": randn(6, 8)},
        {"variant": "symmetric", "temperature": 0.07}, grad=True)


# ----------------------------------------------------------------------------
# tensor encodings and output formats


def gen_formats():
    x = randn(4, 3, scale=2.0)
    tgt = T([0, 2, 1, 2])
    for fmt in ("flat", "base64"):
        add("cross_entropy/output_%s/none/grad" % fmt, "cross_entropy",
            {"input": x, "target": tgt}, {"reduction": "none"}, grad=True,
            output_format=fmt)
        add("cross_entropy/output_%s/mean/grad" % fmt, "cross_entropy",
            {"input": x, "target": tgt}, {}, grad=True, output_format=fmt)
        add("softmax/output_%s/dim_1/grad" % fmt, "softmax", {"input": x},
            {"dim": 1}, grad=True, output_format=fmt)
        add("mse/output_%s/none/grad" % fmt, "mse",
            {"input": x, "target": randn(3)}, {"reduction": "none"},
            grad=True, output_format=fmt)
        add("info_nce/output_%s/nt_xent/none/grad" % fmt, "info_nce",
            {"query": randn(3, 2), "positive_key": randn(3, 2)},
            {"variant": "nt_xent", "reduction": "none"}, grad=True,
            output_format=fmt)
        add("kl_div/output_%s/batchmean/grad" % fmt, "kl_div",
            {"input": r6(torch.log_softmax(x, 1)), "target": probs(4, 3)},
            {"reduction": "batchmean"}, grad=True, output_format=fmt)
        add("cross_entropy/output_%s/unbatched/none" % fmt, "cross_entropy",
            {"input": randn(3), "target": T(1.0)}, {"reduction": "none"},
            grad=True, output_format=fmt)
        add("mse/output_%s/empty/none/grad" % fmt, "mse",
            {"input": torch.zeros(0, 2), "target": torch.zeros(0, 2)},
            {"reduction": "none"}, grad=True, output_format=fmt)
    add("cross_entropy/output_nested_explicit/none/grad", "cross_entropy",
        {"input": x, "target": tgt}, {"reduction": "none"}, grad=True,
        output_format="nested")
    add("cross_entropy/request_flat_input", "cross_entropy",
        {"input": x, "target": tgt}, {}, grad=True, enc={"input": "flat"})
    add("cross_entropy/request_flat_both/none", "cross_entropy",
        {"input": x, "target": tgt}, {"reduction": "none"}, grad=True,
        enc={"input": "flat", "target": "flat"})
    add("cross_entropy/request_b64_float64_int64", "cross_entropy",
        {"input": x, "target": tgt}, {}, grad=True,
        enc={"input": "float64", "target": "int64"})
    add("cross_entropy/request_b64_float32_int32/none", "cross_entropy",
        {"input": randn(4, 3, scale=2.0), "target": tgt},
        {"reduction": "none"}, grad=True,
        enc={"input": "float32", "target": "int32"})
    add("cross_entropy/request_b64_weight_float32", "cross_entropy",
        {"input": x, "target": tgt, "weight": rand(3, lo=0.1, hi=1.0)},
        {"reduction": "sum"}, grad=True, enc={"weight": "float32"})
    add("mse/request_b64_float32_input_flat_target", "mse",
        {"input": randn(2, 3), "target": randn(2, 3)}, {}, grad=True,
        enc={"input": "float32", "target": "flat"})
    add("mse/request_b64_int64_target", "mse",
        {"input": randn(2, 3), "target": T([[1, -2, 3], [0, 5, -7]])},
        {"reduction": "sum"}, grad=True, enc={"target": "int64"})
    add("info_nce/request_b64_float32/negatives", "info_nce",
        {"query": randn(3, 4), "positive_key": randn(3, 4),
         "negative_keys": randn(5, 4)}, {}, grad=True,
        enc={"query": "float32", "positive_key": "float64",
             "negative_keys": "flat"})
    add("softmax/request_flat_0d", "softmax", {"input": T(2.5)}, {},
        enc={"input": "flat"})
    add("mse/request_flat_empty", "mse",
        {"input": torch.zeros(0, 3), "target": torch.zeros(0, 3)},
        {"reduction": "sum"}, enc={"input": "flat", "target": "float64"})
    add("mse/request_b64_nonfinite_float64", "mse",
        {"input": T([NAN, INF, 1.0]), "target": T([0.0, 1.0, -INF])},
        {"reduction": "none"}, grad=True, enc={"input": "float64"})
    add("mse/request_flat_nonfinite_strings", "mse",
        {"input": T([NAN, -INF, 1.0]), "target": T([0.0, 1.0, INF])},
        {"reduction": "none"}, enc={"input": "flat", "target": "flat"})
    # -0 keeps its sign: l1 gradient at d = -0 - 0
    add("l1/negative_zero/none/grad", "l1",
        {"input": T([-0.0, 0.0, 1.0]), "target": T([0.0, -0.0, 1.0])},
        {"reduction": "none"}, grad=True)


# ----------------------------------------------------------------------------
# refused requests


def gen_errors():
    x = [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]]
    x5 = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9],
          [1.0, 1.1, 1.2], [1.3, 1.4, 1.5]]
    SM = "/problems/shape-mismatch"
    IO = "/problems/invalid-option"
    IV = "/problems/invalid-value"
    UF = "/problems/unknown-field"
    MF = "/problems/missing-field"
    IJ = "/problems/invalid-json"
    IT = "/problems/invalid-tensor"

    # shapes
    err("error/cross_entropy/target_rows", "cross_entropy",
        {"input": x5, "target": [0, 1, 2]}, 422, SM, "/target")
    err("error/nll/target_rows", "nll", {"input": x5, "target": [0, 1]},
        422, SM, "/target")
    err("error/mse/no_broadcast", "mse",
        {"input": x, "target": [1.0, 2.0]}, 422, SM, "/target")
    err("error/l1/no_broadcast_3d", "l1",
        {"input": [[[1.0, 2.0]]], "target": [[1.0, 2.0, 3.0]]}, 422, SM)
    err("error/huber/no_broadcast", "huber",
        {"input": [1.0, 2.0, 3.0], "target": [1.0, 2.0]}, 422, SM)
    err("error/smooth_l1/no_broadcast", "smooth_l1",
        {"input": [[1.0, 2.0, 3.0]], "target": [[1.0, 2.0]]}, 422, SM)
    err("error/kl_div/no_broadcast", "kl_div",
        {"input": x, "target": [0.5, 0.5]}, 422, SM)
    err("error/cross_entropy/weight_size", "cross_entropy",
        {"input": x, "target": [0, 1], "weight": [1.0, 2.0]}, 422, SM)
    err("error/cross_entropy/prob_weight_size", "cross_entropy",
        {"input": x, "target": [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]],
         "weight": [1.0, 2.0, 3.0, 4.0]}, 422, SM)
    err("error/cross_entropy/kdim_target_shape", "cross_entropy",
        {"input": [[[1.0, 2.0], [3.0, 4.0]]], "target": [[0, 1, 1]]}, 422,
        SM)
    err("error/cross_entropy/0d_input", "cross_entropy",
        {"input": 1.0, "target": 0}, 422, SM)
    err("error/nll/multi_target", "nll",
        {"input": x, "target": [[0, 1, 0], [1, 0, 0]]}, 422, SM)
    err("error/binary_cross_entropy/target_shape", "binary_cross_entropy",
        {"input": [0.5, 0.5, 0.5], "target": [[0.5], [0.5], [0.5]]}, 422, SM)
    err("error/binary_cross_entropy/weight_beyond_input",
        "binary_cross_entropy",
        {"input": [0.5, 0.5, 0.5], "target": [0.1, 0.2, 0.3],
         "weight": [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]}, 422, SM)
    err("error/binary_cross_entropy_with_logits/target_shape",
        "binary_cross_entropy_with_logits",
        {"input": [0.5, 0.5, 0.5], "target": [[0.5], [0.5], [0.5]]}, 422, SM)
    err("error/binary_cross_entropy_with_logits/pos_weight_beyond_input",
        "binary_cross_entropy_with_logits",
        {"input": [0.5, 0.5, 0.5], "target": [0.1, 0.2, 0.3],
         "pos_weight": [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]}, 422, SM)
    err("error/binary_cross_entropy_with_logits/weight_not_broadcastable",
        "binary_cross_entropy_with_logits",
        {"input": x, "target": x, "weight": [1.0, 2.0]}, 422, SM)
    err("error/mse/grad_output_shape", "mse",
        {"input": x, "target": x, "reduction": "none", "grad": True,
         "grad_output": [1.0, 2.0, 3.0]}, 422, SM)
    err("error/mse/grad_output_tensor_for_scalar", "mse",
        {"input": x, "target": x, "grad": True, "grad_output": [1.0, 2.0]},
        422, SM)
    err("error/info_nce/query_1d", "info_nce",
        {"query": [1.0, 2.0], "positive_key": [[1.0, 2.0]]}, 422, SM)
    err("error/info_nce/n_mismatch", "info_nce",
        {"query": [[1.0, 2.0], [3.0, 4.0]], "positive_key": [[1.0, 2.0]]},
        422, SM)
    err("error/info_nce/d_mismatch", "info_nce",
        {"query": [[1.0, 2.0]], "positive_key": [[1.0, 2.0, 3.0]]}, 422, SM)
    err("error/info_nce/negatives_d_mismatch", "info_nce",
        {"query": [[1.0, 2.0]], "positive_key": [[1.0, 2.0]],
         "negative_keys": [[1.0, 2.0, 3.0]]}, 422, SM)
    err("error/info_nce/paired_negatives_2d", "info_nce",
        {"query": [[1.0, 2.0]], "positive_key": [[1.0, 2.0]],
         "negative_keys": [[1.0, 2.0]], "negative_mode": "paired"}, 422, SM)
    err("error/info_nce/unpaired_negatives_3d", "info_nce",
        {"query": [[1.0, 2.0]], "positive_key": [[1.0, 2.0]],
         "negative_keys": [[[1.0, 2.0]]], "negative_mode": "unpaired"},
        422, SM)

    # values
    err("error/cross_entropy/class_index_out_of_range", "cross_entropy",
        {"input": x, "target": [0, 3]}, 422, IV)
    err("error/cross_entropy/class_index_negative", "cross_entropy",
        {"input": x, "target": [0, -1]}, 422, IV)
    err("error/cross_entropy/class_index_1.5", "cross_entropy",
        {"input": x, "target": [0, 1.5]}, 422, IV)
    err("error/nll/class_index_out_of_range", "nll",
        {"input": x, "target": [4, 0]}, 422, IV)
    err("error/nll/class_index_-100_with_ignore_255", "nll",
        {"input": x, "target": [-100, 0], "ignore_index": 255}, 422, IV)
    err("error/cross_entropy/class_index_nan", "cross_entropy",
        {"input": x, "target": ["NaN", 0]}, 422, IV)
    err("error/binary_cross_entropy/input_above_1", "binary_cross_entropy",
        {"input": [0.5, 1.5], "target": [0.5, 0.5]}, 422, IV)
    err("error/binary_cross_entropy/input_negative", "binary_cross_entropy",
        {"input": [-0.1, 0.5], "target": [0.5, 0.5]}, 422, IV)
    err("error/binary_cross_entropy/target_above_1", "binary_cross_entropy",
        {"input": [0.5, 0.5], "target": [0.5, 1.5]}, 422, IV)
    err("error/binary_cross_entropy/target_negative", "binary_cross_entropy",
        {"input": [0.5, 0.5], "target": [-0.5, 0.5]}, 422, IV)
    err("error/mse/null_in_tensor", "mse",
        {"input": [1.0, None], "target": [1.0, 2.0]}, 422, IV)
    err("error/mse/null_tensor", "mse",
        {"input": None, "target": [1.0, 2.0]}, 422, IV)

    # options
    err("error/cross_entropy/label_smoothing_negative", "cross_entropy",
        {"input": x, "target": [0, 1], "label_smoothing": -0.1}, 422, IO,
        "/label_smoothing")
    err("error/cross_entropy/label_smoothing_above_1", "cross_entropy",
        {"input": x, "target": [0, 1], "label_smoothing": 1.5}, 422, IO,
        "/label_smoothing")
    err("error/cross_entropy/label_smoothing_string", "cross_entropy",
        {"input": x, "target": [0, 1], "label_smoothing": "0.1"}, 422, IO,
        "/label_smoothing")
    err("error/smooth_l1/beta_negative", "smooth_l1",
        {"input": [1.0], "target": [2.0], "beta": -1.0}, 422, IO, "/beta")
    err("error/huber/delta_zero", "huber",
        {"input": [1.0], "target": [2.0], "delta": 0.0}, 422, IO, "/delta")
    err("error/huber/delta_negative", "huber",
        {"input": [1.0], "target": [2.0], "delta": -0.5}, 422, IO, "/delta")
    err("error/mse/reduction_invalid", "mse",
        {"input": [1.0], "target": [2.0], "reduction": "average"}, 422, IO,
        "/reduction")
    err("error/mse/reduction_elementwise_mean", "mse",
        {"input": [1.0], "target": [2.0], "reduction": "elementwise_mean"},
        422, IO, "/reduction")
    err("error/mse/reduction_number", "mse",
        {"input": [1.0], "target": [2.0], "reduction": 1}, 422, IO,
        "/reduction")
    for loss in ("mse", "cross_entropy", "info_nce"):
        req = ({"query": [[1.0, 2.0]], "positive_key": [[1.0, 2.0]]}
               if loss == "info_nce" else
               {"input": x, "target": [0, 1] if loss == "cross_entropy"
                else x})
        req["reduction"] = "batchmean"
        err("error/%s/batchmean" % loss, loss, req, 422, IO, "/reduction")
    err("error/nll/ignore_index_1.5", "nll",
        {"input": x, "target": [0, 1], "ignore_index": 1.5}, 422, IO,
        "/ignore_index")
    err("error/kl_div/log_target_string", "kl_div",
        {"input": x, "target": x, "log_target": "yes"}, 422, IO,
        "/log_target")
    err("error/softmax/dim_out_of_range", "softmax",
        {"input": x, "dim": 2}, 422, IO)
    err("error/log_softmax/dim_negative_out_of_range", "log_softmax",
        {"input": x, "dim": -3}, 422, IO)
    err("error/softmax/dim_1.5", "softmax", {"input": x, "dim": 1.5}, 422, IO,
        "/dim")
    err("error/mse/grad_output_without_grad", "mse",
        {"input": x, "target": x, "grad_output": 1.0}, 422, IO)
    err("error/cross_entropy/grad_index_target", "cross_entropy",
        {"input": x, "target": [0, 1], "grad": ["target"]}, 422, IO)
    err("error/cross_entropy/grad_weight", "cross_entropy",
        {"input": x, "target": [0, 1], "weight": [1.0, 1.0, 1.0],
         "grad": ["weight"]}, 422, IO)
    err("error/binary_cross_entropy/grad_weight", "binary_cross_entropy",
        {"input": [0.5], "target": [0.5], "weight": [1.0],
         "grad": ["weight"]}, 422, IO)
    err("error/binary_cross_entropy_with_logits/grad_pos_weight",
        "binary_cross_entropy_with_logits",
        {"input": [0.5], "target": [0.5], "pos_weight": [1.0],
         "grad": ["pos_weight"]}, 422, IO)
    err("error/nll/grad_target", "nll",
        {"input": x, "target": [0, 1], "grad": ["target"]}, 422, IO)
    err("error/mse/grad_unknown_tensor", "mse",
        {"input": x, "target": x, "grad": ["output"]}, 422, IO)
    err("error/mse/grad_string", "mse",
        {"input": x, "target": x, "grad": "input"}, 422, IO)
    err("error/mse/output_format_invalid", "mse",
        {"input": x, "target": x, "output_format": "csv"}, 422, IO,
        "/output_format")
    qk = {"query": [[1.0, 2.0], [0.5, -1.0]],
          "positive_key": [[1.0, 1.0], [2.0, 0.0]]}

    def inr(**kw):
        r = dict(qk)
        r.update(kw)
        return r
    err("error/info_nce/negatives_with_symmetric", "info_nce",
        inr(negative_keys=[[1.0, 0.0]], variant="symmetric"), 422, IO)
    err("error/info_nce/negatives_with_nt_xent", "info_nce",
        inr(negative_keys=[[1.0, 0.0]], variant="nt_xent"), 422, IO)
    err("error/info_nce/mask_self_with_pairs", "info_nce",
        inr(mask_self=True), 422, IO)
    err("error/info_nce/mask_self_with_symmetric", "info_nce",
        inr(mask_self=False, variant="symmetric"), 422, IO)
    err("error/info_nce/negative_mode_without_negatives", "info_nce",
        inr(negative_mode="unpaired"), 422, IO)
    err("error/info_nce/negative_mode_paired_without_negatives", "info_nce",
        inr(negative_mode="paired"), 422, IO)
    err("error/info_nce/temperature_zero", "info_nce", inr(temperature=0.0),
        422, IO, "/temperature")
    err("error/info_nce/temperature_negative", "info_nce",
        inr(temperature=-0.1), 422, IO, "/temperature")
    err("error/info_nce/temperature_infinity", "info_nce",
        inr(temperature="Infinity"), 422, IO, "/temperature")
    err("error/info_nce/variant_unknown", "info_nce", inr(variant="moco"),
        422, IO, "/variant")
    err("error/info_nce/negative_mode_unknown", "info_nce",
        inr(negative_keys=[[1.0, 0.0]], negative_mode="shared"), 422, IO,
        "/negative_mode")
    err("error/info_nce/normalize_string", "info_nce",
        inr(normalize="true"), 422, IO, "/normalize")

    # fields
    err("error/mse/unknown_field", "mse",
        {"input": [1.0], "target": [2.0], "reducton": "sum"}, 422, UF,
        "/reducton")
    err("error/mse/weight_not_taken", "mse",
        {"input": [1.0], "target": [2.0], "weight": [1.0]}, 422, UF,
        "/weight")
    err("error/mse/size_average", "mse",
        {"input": [1.0], "target": [2.0], "size_average": False}, 422, UF,
        "/size_average")
    err("error/softmax/reduction_not_taken", "softmax",
        {"input": x, "reduction": "sum"}, 422, UF, "/reduction")
    err("error/smooth_l1/delta_not_taken", "smooth_l1",
        {"input": [1.0], "target": [2.0], "delta": 1.0}, 422, UF, "/delta")
    err("error/nll/label_smoothing_not_taken", "nll",
        {"input": x, "target": [0, 1], "label_smoothing": 0.1}, 422, UF,
        "/label_smoothing")
    err("error/kl_div/weight_not_taken", "kl_div",
        {"input": x, "target": x, "weight": [1.0]}, 422, UF, "/weight")
    err("error/mse/duplicate_key", "mse", None, 422, UF, "/reduction",
        body='{"input": [1.0], "target": [2.0], "reduction": "sum", '
             '"reduction": "none"}')
    err("error/mse/duplicate_tensor_key", "mse", None, 422, UF, "/input",
        body='{"input": [1.0], "input": [3.0], "target": [2.0]}')
    err("error/mse/missing_target", "mse", {"input": [1.0]}, 422, MF)
    err("error/cross_entropy/missing_input", "cross_entropy",
        {"target": [0, 1]}, 422, MF)
    err("error/info_nce/missing_positive_key", "info_nce",
        {"query": [[1.0, 2.0]]}, 422, MF)
    err("error/softmax/missing_input", "softmax", {"dim": 0}, 422, MF)

    # syntax and tensors
    err("error/mse/malformed_json", "mse", None, 400, IJ,
        body='{"input": [1.0, 2.0], "target": [1.0, ')
    err("error/mse/trailing_data", "mse", None, 400, IJ,
        body='{"input": [1.0], "target": [2.0]} x')
    err("error/mse/bare_nan", "mse", None, 400, IJ,
        body='{"input": [NaN, 1.0], "target": [2.0, 1.0]}')
    err("error/mse/bare_infinity", "mse", None, 400, IJ,
        body='{"input": [Infinity], "target": [2.0]}')
    err("error/mse/number_out_of_range", "mse", None, 400, IJ,
        body='{"input": [1e999], "target": [2.0]}')
    err("error/mse/empty_body", "mse", None, 400, IJ, body="")
    err("error/mse/ragged", "mse",
        {"input": [[1.0, 2.0], [3.0]], "target": [[1.0, 2.0], [3.0, 4.0]]},
        400, IT)
    err("error/mse/ragged_depth", "mse",
        {"input": [[1.0, 2.0], 3.0], "target": [1.0, 2.0]}, 400, IT)
    err("error/mse/string_in_tensor", "mse",
        {"input": [1.0, "two"], "target": [1.0, 2.0]}, 400, IT)
    err("error/mse/bool_in_tensor", "mse",
        {"input": [1.0, True], "target": [1.0, 2.0]}, 400, IT)
    err("error/mse/flat_length_mismatch", "mse",
        {"input": {"shape": [2, 2], "data": [1.0, 2.0, 3.0]},
         "target": [1.0]}, 400, IT)
    b = base64.b64encode(struct.pack("<3d", 1.0, 2.0, 3.0)).decode()
    err("error/mse/base64_length_mismatch", "mse",
        {"input": {"shape": [2, 2], "dtype": "float64", "base64": b},
         "target": [1.0]}, 400, IT)
    err("error/mse/base64_invalid", "mse",
        {"input": {"shape": [1], "dtype": "float64", "base64": "!!!notb64"},
         "target": [1.0]}, 400, IT)
    err("error/unknown_loss", "hinge", {"input": [1.0], "target": [1.0]},
        404, "/problems/not-found")


# ----------------------------------------------------------------------------
# batch


def item_expect(loss, t, o, grad=None, id_=None):
    _, exp = build(loss, t, o, grad=grad)
    if id_ is not None:
        exp["id"] = id_
    return exp


def gen_batch():
    x = randn(3, 4)
    y = randn(3, 4)
    tgt = T([0, 3, 1])
    shared = {"input": nested(x)}
    reqs = [
        {"loss": "mse", "id": "a", "target": nested(y)},
        {"loss": "l1", "id": "b", "target": nested(y), "reduction": "sum",
         "grad": True},
        {"loss": "cross_entropy", "id": "c", "target": nested(tgt, True),
         "reduction": "none"},
        {"loss": "huber", "target": nested(y), "delta": 0.5},
        {"loss": "softmax", "id": "e", "dim": 0},
    ]
    results = [
        item_expect("mse", {"input": x, "target": y}, {}, id_="a"),
        item_expect("l1", {"input": x, "target": y}, {"reduction": "sum"},
                    grad=True, id_="b"),
        item_expect("cross_entropy", {"input": x, "target": tgt},
                    {"reduction": "none"}, id_="c"),
        item_expect("huber", {"input": x, "target": y}, {"delta": 0.5}),
        item_expect("softmax", {"input": x}, {"dim": 0}, id_="e"),
    ]
    put("batch/shared_input_five_losses", "batch",
        {"requests": reqs, "shared": shared},
        {"status": 200, "results": results})

    # per-item errors, an item overriding shared, no shared at all
    xs = randn(2, 3)
    reqs = [
        {"loss": "cross_entropy", "id": "ok", "target": [2, 0],
         "grad": ["input"]},
        {"loss": "cross_entropy", "id": "rows", "target": [0, 1, 2]},
        {"loss": "mse", "id": "own", "input": nested(xs * 2),
         "target": nested(xs)},
        {"loss": "mse", "id": "unknown", "target": nested(xs),
         "label_smoothing": 0.1},
        {"loss": "binary_cross_entropy", "id": "range",
         "input": [[0.5, 0.5, 1.5], [0.1, 0.2, 0.3]], "target": nested(xs)},
    ]
    results = [
        item_expect("cross_entropy", {"input": xs, "target": T([2, 0])}, {},
                    grad=["input"], id_="ok"),
        {"status": 422, "id": "rows", "type": "/problems/shape-mismatch",
         "pointer": "/requests/1/target"},
        item_expect("mse", {"input": xs * 2, "target": xs}, {}, id_="own"),
        {"status": 422, "id": "unknown", "type": "/problems/unknown-field",
         "pointer": "/requests/3/label_smoothing"},
        {"status": 422, "id": "range", "type": "/problems/invalid-value"},
    ]
    put("batch/item_errors_and_overrides", "batch",
        {"shared": {"input": nested(xs)}, "requests": reqs},
        {"status": 200, "results": results})

    put("batch/no_shared_info_nce_kl_div", "batch",
        {"requests": [
            {"loss": "info_nce", "id": "n",
             "query": nested(xs), "positive_key": nested(xs * 0.5),
             "variant": "symmetric", "grad": True},
            {"loss": "kl_div", "id": "k",
             "input": nested(torch.log_softmax(xs, 1)),
             "target": nested(torch.softmax(xs * 2, 1)),
             "reduction": "batchmean"}]},
        {"status": 200, "results": [
            item_expect("info_nce", {"query": xs, "positive_key": xs * 0.5},
                        {"variant": "symmetric"}, grad=True, id_="n"),
            item_expect("kl_div", {"input": torch.log_softmax(xs, 1),
                                   "target": torch.softmax(xs * 2, 1)},
                        {"reduction": "batchmean"}, id_="k")]})


def main():
    gen_pointwise()
    gen_ce_nll()
    gen_bce()
    gen_kl()
    gen_softmax()
    gen_info_nce()
    gen_formats()
    gen_errors()
    gen_batch()
    with open(OUT, "w") as f:
        f.write('{"generator": "tests/golden/gen_golden.py", '
                '"torch_version": %s,\n "cases": [\n' %
                json.dumps(torch.__version__))
        f.write(",\n".join(json.dumps(c, separators=(",", ":"),
                                      allow_nan=False) for c in CASES))
        f.write("\n]}\n")
    by = {}
    for c in CASES:
        key = c["loss"] if c["expect"]["status"] == 200 else "error"
        by[key] = by.get(key, 0) + 1
    print("%d cases, %d bytes -> %s" % (len(CASES), os.path.getsize(OUT),
                                        OUT))
    for k in sorted(by):
        print("  %-34s %d" % (k, by[k]))


if __name__ == "__main__":
    main()
