#!/usr/bin/python3
"""Write the OIP client fixtures: request bodies byte for byte as real clients
build them, with the answers PyTorch gives.

Each fixture is two files in fixtures/:
  NAME.body  the request body exactly as the client library sends it (the
             JSON header, then the binary tensors, when there are any);
  NAME.json  the sidecar: method, path, the headers the library sets, where
             in the library's source the bytes come from, and what lossd
             must answer (status, outputs with datatype, shape and values).

The request builders below re-implement, step by step, the public code of
  tritonclient.http (triton-inference-server/client, src/python/library/
    tritonclient/http/_utils.py _get_inference_request, _infer_input.py
    InferInput.set_data_from_numpy/_get_tensor, _requested_output.py
    InferRequestedOutput, _client.py InferenceServerClient.infer; utils/
    __init__.py serialize_bf16_tensor), serialized with python-rapidjson's
    dumps (compact: no spaces, insertion order, ASCII);
  kserve (kserve/kserve, python/kserve/kserve/protocol/infer_type.py
    InferInput.set_data_from_numpy, RequestedOutput, InferRequest.to_rest;
    inference_client.py InferenceRESTClient.infer), serialized with
    orjson.dumps (compact, insertion order, UTF-8);
README.md names the commits read and what each fixture stands for. Neither
library is needed here: both serializers write what json.dumps writes with
separators=(",", ":") for the values used, which are ASCII strings, integers,
booleans and floats whose shortest representation has no exponent (checked
by safe_float(): that is where rapidjson, orjson and Python would differ).

Expected values come from PyTorch in float64, computed on the values the
bytes carry (FP32, FP16 and BF16 widened exactly, as lossd must widen them).

Run with the interpreter that has numpy and torch (Debian's /usr/bin/python3
here; torch 1.13):  /usr/bin/python3 gen_fixtures.py [OUTDIR]
The outputs are committed; the test suite reads them with the standard
library only (check_fixtures.py).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH = torch.__version__


# --- serializers --------------------------------------------------------


def safe_float(x):
    """True when rapidjson, orjson and Python print x identically: finite,
    shortest round-trip form without an exponent, not -0.0."""
    r = repr(x)
    return (math.isfinite(x) and "e" not in r and "E" not in r
            and float(r) == x and not (x == 0 and math.copysign(1, x) < 0))


def check_json_values(obj, where="$"):
    if isinstance(obj, float):
        if not safe_float(obj):
            raise ValueError(f"{where}: {obj!r} may print differently in "
                             "rapidjson/orjson; pick a short dyadic value")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_json_values(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_json_values(v, f"{where}[{i}]")


try:  # Debian's python3-rapidjson, when installed: cross-check with it.
    import rapidjson
except ImportError:
    rapidjson = None


def rapidjson_dumps(obj):
    """python-rapidjson's rapidjson.dumps(obj) with its defaults
    (WM_COMPACT, ensure_ascii=True): '{"foo":100,"bar":"baz"}'. Returns str,
    as rapidjson does; tritonclient takes len() of that str."""
    check_json_values(obj)
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=True,
                   allow_nan=False)
    if rapidjson is not None:
        assert rapidjson.dumps(obj) == s, "rapidjson writes otherwise"
    return s


def orjson_dumps(obj):
    """orjson.dumps(obj): compact, UTF-8 bytes."""
    check_json_values(obj)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


# --- tritonclient.http --------------------------------------------------

NP_TO_TRITON = {
    np.dtype(bool): "BOOL", np.dtype(np.uint8): "UINT8",
    np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
}


class TritonInferInput:
    """tritonclient.http.InferInput(name, shape, datatype) followed by
    set_data_from_numpy(array, binary_data)."""

    def __init__(self, name, shape, datatype):
        self._name, self._shape, self._datatype = name, shape, datatype
        self._parameters = {}
        self._data = None
        self._raw_data = None

    def set_data_from_numpy(self, a, binary_data=True):
        if self._datatype == "BF16":
            assert a.dtype == np.float32  # triton_to_np_dtype("BF16")
        else:
            assert NP_TO_TRITON[a.dtype] == self._datatype
        assert list(a.shape) == list(self._shape)
        if not binary_data:
            assert self._datatype != "BF16"  # "must be sent as binary data"
            self._parameters.pop("binary_data_size", None)
            self._raw_data = None
            self._data = [v.item() for v in a.flatten()]
        else:
            self._data = None
            if self._datatype == "BF16":
                # serialize_bf16_tensor: the high half of each float32, i.e.
                # truncation toward zero, not round-to-nearest.
                self._raw_data = b"".join(struct.pack("<f", v)[2:4]
                                          for v in a.flatten())
            else:
                self._raw_data = a.tobytes()
            self._parameters["binary_data_size"] = len(self._raw_data)

    def _get_tensor(self):
        t = {"name": self._name, "shape": self._shape,
             "datatype": self._datatype}
        if self._parameters:
            t["parameters"] = self._parameters
        if self._raw_data is None and self._data is not None:
            t["data"] = self._data
        return t


class TritonRequestedOutput:
    """tritonclient.http.InferRequestedOutput(name, binary_data=True)."""

    def __init__(self, name, binary_data=True):
        self._name = name
        self._parameters = {"binary_data": binary_data}

    def _get_tensor(self):
        return {"name": self._name, "parameters": self._parameters}


def triton_request(inputs, request_id="", outputs=None, parameters=None):
    """tritonclient.http._utils._get_inference_request (no sequence,
    priority or timeout): (body bytes, json_size or None)."""
    infer_request, params = {}, {}
    if request_id != "":
        infer_request["id"] = request_id
    infer_request["inputs"] = [i._get_tensor() for i in inputs]
    if outputs:
        infer_request["outputs"] = [o._get_tensor() for o in outputs]
    else:
        params["binary_data_output"] = True
    for k, v in (parameters or {}).items():
        assert k not in ("sequence_id", "sequence_start", "sequence_end",
                         "priority", "binary_data_output")
        params[k] = v
    if params:
        infer_request["parameters"] = params
    request_json = rapidjson_dumps(infer_request)
    json_size = len(request_json)
    body = [request_json.encode()]
    body += [i._raw_data for i in inputs if i._raw_data is not None]
    if len(body) == 1:
        return body[0], None
    return b"".join(body), json_size


def triton_headers(json_size):
    """InferenceServerClient.infer: the only header it adds itself (no
    Content-Type; geventhttpclient adds User-Agent, Host, Content-Length)."""
    if json_size is None:
        return []
    return [["Inference-Header-Content-Length", str(json_size)]]


def triton_path(model, version=""):
    if version:
        return f"/v2/models/{model}/versions/{version}/infer"
    return f"/v2/models/{model}/infer"


# --- kserve -------------------------------------------------------------


class KServeInferInput:
    """kserve.InferInput(name, shape, datatype) followed by
    set_data_from_numpy(array, binary_data)."""

    def __init__(self, name, shape, datatype):
        self.name, self.shape, self.datatype = name, shape, datatype.upper()
        self.parameters = None
        self.data = None
        self._raw_data = None

    def set_data_from_numpy(self, a, binary_data=True):
        assert NP_TO_TRITON[a.dtype] == self.datatype
        assert list(a.shape) == list(self.shape)
        if not binary_data:
            if self.parameters:
                self.parameters.pop("binary_data_size", None)
            self._raw_data = None
            self.data = [v.item() for v in a.flatten()]
        else:
            self.data = None
            self._raw_data = a.tobytes()
            if self.parameters is None:
                self.parameters = {"binary_data_size": len(self._raw_data)}
            else:
                self.parameters["binary_data_size"] = len(self._raw_data)


def kserve_request(model_name, inputs, request_id, parameters=None,
                   request_outputs=None):
    """kserve InferRequest(...).to_rest(), then what
    InferenceRESTClient.infer posts: (body bytes, headers)."""
    infer_inputs, raw_inputs = [], []
    for i in inputs:
        assert not (i.data and i._raw_data)
        assert not (i.datatype == "FP16" and i.data)  # JSON FP16 refused
        d = {"name": i.name, "shape": i.shape, "datatype": i.datatype}
        if i.parameters:
            d["parameters"] = dict(i.parameters)
        if i._raw_data:
            raw_inputs.append(i._raw_data)
        else:
            d["data"] = i.data
        infer_inputs.append(d)
    requested = []
    for name, params in request_outputs or []:
        o = {"name": name}
        if params:
            o["parameters"] = params
        requested.append(o)
    # A real client without request_id sends str(uuid.uuid4()); the
    # fixtures always pass one, so that the bytes are reproducible.
    res = {"id": request_id, "model_name": model_name, "inputs": infer_inputs}
    if requested:
        res["outputs"] = requested
    if parameters:
        res["parameters"] = parameters
    if raw_inputs:
        js = orjson_dumps(res)
        return b"".join([js] + raw_inputs), [
            ["inference-header-content-length", str(len(js))],
            ["content-type", "application/octet-stream"]]
    # A dict is posted as httpx content=orjson.dumps(dict): no Content-Type.
    return orjson_dumps(res), []


def kserve_path(model):
    return f"/v2/models/{model}/infer"


# What the transports add besides Host and Content-Length, as captured on
# the wire from Debian 12's geventhttpclient 2.0.8 and httpx 0.23.3 (httpx
# adds ", br" to Accept-Encoding only when brotli is installed). The checker
# sends these too: httpx's Accept-Encoding makes a compressed answer
# possible.
TRANSPORT = {
    "tritonclient": [["user-agent", "python/gevent-http-client-2.0.8"]],
    "kserve": [["Accept", "*/*"], ["Accept-Encoding", "gzip, deflate"],
               ["Connection", "keep-alive"],
               ["User-Agent", "python-httpx/0.23.3"]],
}


# --- expected values ----------------------------------------------------


def widened(datatype, raw, shape):
    """float64 ndarray of the values the binary bytes carry."""
    if datatype == "BF16":
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u16.view(np.float32).astype(np.float64).reshape(shape)
    dt = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8",
          "INT32": "<i4", "UINT8": "u1", "BOOL": "?"}[datatype]
    return np.frombuffer(raw, dtype=dt).astype(np.float64).reshape(shape)


def tensor_values(inp):
    """float64 ndarray of one built input, whichever client built it."""
    raw = inp._raw_data
    datatype = inp._datatype if hasattr(inp, "_datatype") else inp.datatype
    shape = inp._shape if hasattr(inp, "_shape") else inp.shape
    if raw is not None and len(raw) > 0:
        return widened(datatype, raw, shape)
    data = inp._data if hasattr(inp, "_data") else inp.data
    return np.array([float(v) for v in data], dtype=np.float64).reshape(shape)


def t64(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def expect_cross_entropy(x, target, weight=None, ignore_index=-100,
                         label_smoothing=0.0, reduction="mean"):
    inp = t64(x, grad=True)
    tgt = torch.tensor(target.astype(np.int64))
    w = None if weight is None else t64(weight)
    kw = dict(weight=w, ignore_index=ignore_index,
              label_smoothing=label_smoothing)
    value = F.cross_entropy(inp, tgt, reduction=reduction, **kw)
    value.backward()
    total = F.cross_entropy(inp.detach(), tgt, reduction="sum", **kw)
    kept = target != ignore_index
    count = (float(np.sum(weight[target[kept].astype(np.int64)]))
             if weight is not None else float(np.sum(kept)))
    if reduction == "mean":  # lossd computes mean as sum / count
        assert abs(value.item() - total.item() / count) <= \
            1e-14 * abs(value.item())
    return {"value": value.item(), "sum": total.item(), "count": count,
            "grad_input": inp.grad.numpy()}


def expect_bce_logits(x, target, reduction="mean"):
    inp = t64(x, grad=True)
    tgt = t64(target)
    value = F.binary_cross_entropy_with_logits(inp, tgt, reduction=reduction)
    value.backward()
    total = F.binary_cross_entropy_with_logits(inp.detach(), tgt,
                                               reduction="sum")
    return {"value": value.item(), "sum": total.item(),
            "count": float(x.size), "grad_input": inp.grad.numpy()}


def out(name, values, binary, datatype="FP64"):
    """One expected output. Values are the float64 reference; for FP32 the
    checker compares against their float32 rounding."""
    a = np.asarray(values, dtype=np.float64)
    return {"name": name, "datatype": datatype, "shape": list(a.shape),
            "binary": binary, "data": [float(v) for v in a.flatten()]}


def all_outputs(e, binary):
    """The outputs a request that names none gets: value, sum, count and
    grad_input, all binary or all JSON."""
    return [out(name, e[name], binary)
            for name in ("value", "sum", "count", "grad_input")]


# --- the fixtures ---------------------------------------------------------

rng = np.random.RandomState(20261203)
LOGITS = rng.standard_normal((4, 5)).astype(np.float32)
TARGET = np.array([1, 0, 3, 2], dtype=np.int64)


def dyadic(shape, seed):
    """Floats k/8 in [-3, 3]: short, exact in FP32, identical in every
    JSON serializer."""
    r = np.random.RandomState(seed)
    return (r.randint(-24, 25, size=shape) / 8.0)


def fx_triton_fp32_binary():
    """tritonclient's default: every input binary, no outputs listed, so
    binary_data_output: true and every output comes back binary."""
    a = TritonInferInput("input", [4, 5], "FP32")
    a.set_data_from_numpy(LOGITS)
    b = TritonInferInput("target", [4], "INT64")
    b.set_data_from_numpy(TARGET)
    body, n = triton_request([a, b], request_id="triton-fp32",
                             parameters={"grad": True})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "tritonclient",
        "reproduces": "tritonclient.http InferenceServerClient.infer("
                      "'cross_entropy', [input FP32 (4,5), target INT64 (4,)]"
                      " with set_data_from_numpy(binary_data=True, the "
                      "default), request_id='triton-fp32', outputs=None, "
                      "parameters={'grad': True})",
        "path": triton_path("cross_entropy"), "headers": triton_headers(n),
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "id": "triton-fp32", "binary": True,
                   "outputs": all_outputs(e, True)},
    }


def fx_triton_fp64_json_outputs():
    """FP64 binary inputs, every output asked for by name as JSON
    (InferRequestedOutput(binary_data=False)): a JSON-only response."""
    x = LOGITS.astype(np.float64) * 1.5
    a = TritonInferInput("input", [4, 5], "FP64")
    a.set_data_from_numpy(x)
    b = TritonInferInput("target", [4], "INT64")
    b.set_data_from_numpy(TARGET)
    names = ["value", "sum", "count", "grad_input"]
    body, n = triton_request(
        [a, b], outputs=[TritonRequestedOutput(k, binary_data=False)
                         for k in names],
        parameters={"reduction": "sum", "grad": "input"})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b),
                             reduction="sum")
    return {
        "client": "tritonclient",
        "reproduces": "infer('cross_entropy', [input FP64 (4,5), target "
                      "INT64 (4,)] binary, outputs=[InferRequestedOutput(n, "
                      "binary_data=False) for value, sum, count, "
                      "grad_input], parameters={'reduction': 'sum', 'grad': "
                      "'input'}); no request_id",
        "path": triton_path("cross_entropy"), "headers": triton_headers(n),
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "binary": False, "outputs": [
                       out(k, e[k], False) for k in names]},
    }


def fx_triton_mixed():
    """Binary, JSON, binary inputs (the JSON one between the two binary
    chunks), an ignored target, options as parameters, the version segment,
    one output binary and one JSON."""
    a = TritonInferInput("input", [4, 5], "FP32")
    a.set_data_from_numpy(LOGITS)
    t = np.array([4, -100, 0, 2], dtype=np.int64)
    b = TritonInferInput("target", [4], "INT64")
    b.set_data_from_numpy(t, binary_data=False)
    w = np.array([1.0, 0.5, 2.0, 1.25, 0.75], dtype=np.float32)
    c = TritonInferInput("weight", [5], "FP32")
    c.set_data_from_numpy(w)
    body, n = triton_request(
        [a, b, c], request_id="mixed-1",
        outputs=[TritonRequestedOutput("value", binary_data=True),
                 TritonRequestedOutput("grad_input", binary_data=False)],
        parameters={"label_smoothing": 0.125, "grad": "input"})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b),
                             weight=tensor_values(c), label_smoothing=0.125)
    return {
        "client": "tritonclient",
        "reproduces": "infer('cross_entropy', model_version='1', inputs=["
                      "input FP32 binary, target INT64 set_data_from_numpy("
                      "binary_data=False), weight FP32 binary], outputs=["
                      "value binary, grad_input JSON], request_id='mixed-1', "
                      "parameters={'label_smoothing': 0.125, 'grad': "
                      "'input'})",
        "path": triton_path("cross_entropy", "1"),
        "headers": triton_headers(n), "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "id": "mixed-1", "binary": True, "outputs": [
                       out("value", e["value"], True),
                       out("grad_input", e["grad_input"], False)]},
    }


def fx_triton_all_json():
    """Every input as JSON data and no outputs listed: no binary input, so
    no Inference-Header-Content-Length, yet binary_data_output: true."""
    x = dyadic((3, 4), 7).astype(np.float32)
    a = TritonInferInput("input", [3, 4], "FP32")
    a.set_data_from_numpy(x, binary_data=False)
    b = TritonInferInput("target", [3], "INT32")
    b.set_data_from_numpy(np.array([3, 0, 1], dtype=np.int32),
                          binary_data=False)
    body, n = triton_request([a, b], request_id="triton-json",
                             parameters={"grad": "input"})
    assert n is None
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "tritonclient",
        "reproduces": "infer('cross_entropy', [input FP32 (3,4), target "
                      "INT32 (3,)] both set_data_from_numpy(binary_data="
                      "False), outputs=None, request_id='triton-json', "
                      "parameters={'grad': 'input'})",
        "path": triton_path("cross_entropy"), "headers": triton_headers(n),
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "id": "triton-json", "binary": True,
                   "outputs": all_outputs(e, True)},
    }


def fx_triton_fp16():
    a = TritonInferInput("input", [4, 5], "FP16")
    a.set_data_from_numpy(LOGITS.astype(np.float16))
    b = TritonInferInput("target", [4], "INT64")
    b.set_data_from_numpy(TARGET)
    body, n = triton_request([a, b], request_id="fp16",
                             parameters={"grad": True})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "tritonclient",
        "reproduces": "infer('cross_entropy', [input FP16 (4,5), target "
                      "INT64 (4,)] binary, outputs=None, request_id='fp16', "
                      "parameters={'grad': True})",
        "path": triton_path("cross_entropy"), "headers": triton_headers(n),
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy", "id": "fp16",
                   "binary": True, "outputs": all_outputs(e, True)},
    }


def fx_triton_bf16():
    """BF16 as tritonclient sends it: the high halves of a float32 array
    (truncated, not rounded), an INT32 target, two outputs named with the
    default binary_data=True (tritonclient's outputs take no other
    parameter, so they come back FP64)."""
    a = TritonInferInput("input", [4, 5], "BF16")
    a.set_data_from_numpy(LOGITS)
    b = TritonInferInput("target", [4], "INT32")
    b.set_data_from_numpy(TARGET.astype(np.int32))
    body, n = triton_request(
        [a, b], request_id="bf16",
        outputs=[TritonRequestedOutput("value"),
                 TritonRequestedOutput("grad_input")],
        parameters={"grad": "input"})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "tritonclient",
        "reproduces": "infer('cross_entropy', [input BF16 (4,5) from a "
                      "float32 array, target INT32 (4,)] binary, outputs="
                      "[InferRequestedOutput('value'), InferRequestedOutput("
                      "'grad_input')] (binary_data=True by default), "
                      "request_id='bf16', parameters={'grad': 'input'})",
        "path": triton_path("cross_entropy"), "headers": triton_headers(n),
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy", "id": "bf16",
                   "binary": True, "outputs": [
                       out("value", e["value"], True),
                       out("grad_input", e["grad_input"], True)]},
    }


def fx_triton_bce_bool():
    """0/1 targets as BOOL: one byte per element, 0x00 or 0x01."""
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = np.array([[True, False, True], [False, False, True]])
    a = TritonInferInput("input", [2, 3], "FP32")
    a.set_data_from_numpy(x)
    b = TritonInferInput("target", [2, 3], "BOOL")
    b.set_data_from_numpy(t)
    body, n = triton_request([a, b], request_id="bce-bool",
                             parameters={"grad": "input"})
    e = expect_bce_logits(tensor_values(a), tensor_values(b))
    return {
        "client": "tritonclient",
        "reproduces": "infer('binary_cross_entropy_with_logits', [input FP32"
                      " (2,3), target BOOL (2,3)] binary, outputs=None, "
                      "request_id='bce-bool', parameters={'grad': 'input'})",
        "path": triton_path("binary_cross_entropy_with_logits"),
        "headers": triton_headers(n), "body": body,
        "expect": {"status": 200,
                   "model_name": "binary_cross_entropy_with_logits",
                   "id": "bce-bool", "binary": True,
                   "outputs": all_outputs(e, True)},
    }


def fx_kserve_json():
    """KServe's REST client with JSON data: no binary input, so the dict
    is posted as orjson bytes without any Content-Type, and it carries
    model_name."""
    x = dyadic((4, 5), 11).astype(np.float32)
    a = KServeInferInput("input", [4, 5], "FP32")
    a.set_data_from_numpy(x, binary_data=False)
    b = KServeInferInput("target", [4], "INT64")
    b.set_data_from_numpy(TARGET, binary_data=False)
    body, headers = kserve_request("cross_entropy", [a, b], "kserve-json",
                                   parameters={"grad": True})
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "kserve",
        "reproduces": "InferenceRESTClient(RESTConfig(protocol='v2')).infer("
                      "base_url, InferRequest('cross_entropy', [input FP32 "
                      "(4,5), target INT64 (4,)] with set_data_from_numpy("
                      "binary_data=False), request_id='kserve-json', "
                      "parameters={'grad': True}), model_name="
                      "'cross_entropy')",
        "path": kserve_path("cross_entropy"), "headers": headers,
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "id": "kserve-json", "binary": False,
                   "outputs": all_outputs(e, False)},
    }


def fx_kserve_binary():
    """KServe's REST client with binary inputs (octet-stream and the
    lower-case header), outputs asked for one by one, the gradient in FP32."""
    a = KServeInferInput("input", [4, 5], "FP32")
    a.set_data_from_numpy(LOGITS)
    b = KServeInferInput("target", [4], "INT64")
    b.set_data_from_numpy(TARGET)
    body, headers = kserve_request(
        "cross_entropy", [a, b], "kserve-bin", parameters={"grad": "input"},
        request_outputs=[
            ("value", {"binary_data": True}),
            ("count", {"binary_data": False}),
            ("grad_input", {"binary_data": True, "datatype": "FP32"})])
    e = expect_cross_entropy(tensor_values(a), tensor_values(b))
    return {
        "client": "kserve",
        "reproduces": "InferenceRESTClient(...).infer(base_url, InferRequest"
                      "('cross_entropy', [input FP32 (4,5), target INT64 "
                      "(4,)] with set_data_from_numpy() (binary), "
                      "request_id='kserve-bin', parameters={'grad': 'input'}"
                      ", request_outputs=[RequestedOutput('value', "
                      "{'binary_data': True}), RequestedOutput('count', "
                      "{'binary_data': False}), RequestedOutput('grad_input'"
                      ", {'binary_data': True, 'datatype': 'FP32'})]), "
                      "model_name='cross_entropy')",
        "path": kserve_path("cross_entropy"), "headers": headers,
        "body": body,
        "expect": {"status": 200, "model_name": "cross_entropy",
                   "id": "kserve-bin", "binary": True, "outputs": [
                       out("value", e["value"], True),
                       out("count", e["count"], False),
                       out("grad_input", e["grad_input"], True, "FP32")]},
    }


def fx_kserve_bce_uint8():
    """UINT8 0/1 targets in binary after FP64 logits sent as JSON data."""
    x = dyadic((5,), 3)
    a = KServeInferInput("input", [5], "FP64")
    a.set_data_from_numpy(x, binary_data=False)
    b = KServeInferInput("target", [5], "UINT8")
    b.set_data_from_numpy(np.array([1, 0, 0, 1, 1], dtype=np.uint8))
    body, headers = kserve_request(
        "binary_cross_entropy_with_logits", [a, b], "kserve-u8",
        parameters={"binary_data_output": True, "grad": True})
    e = expect_bce_logits(tensor_values(a), tensor_values(b))
    return {
        "client": "kserve",
        "reproduces": "InferenceRESTClient(...).infer(base_url, InferRequest"
                      "('binary_cross_entropy_with_logits', [input FP64 (5,)"
                      " set_data_from_numpy(binary_data=False), target UINT8"
                      " (5,) set_data_from_numpy()], request_id='kserve-u8',"
                      " parameters={'binary_data_output': True, 'grad': "
                      "True}), model_name=...)",
        "path": kserve_path("binary_cross_entropy_with_logits"),
        "headers": headers, "body": body,
        "expect": {"status": 200,
                   "model_name": "binary_cross_entropy_with_logits",
                   "id": "kserve-u8", "binary": True,
                   "outputs": all_outputs(e, True)},
    }


def fx_bad_size(base):
    """A client bug, not a client: the first binary_data_size one too
    large, so the sizes no longer add up. 400 with OIP's {"error": ...}."""
    body = base["body"]
    n = int(base["headers"][0][1])
    head = json.loads(body[:n])
    head["inputs"][0]["parameters"]["binary_data_size"] += 1
    js = rapidjson_dumps(head).encode()
    return {
        "client": "none (hostile)",
        "reproduces": "triton_fp32_binary with inputs[0].parameters."
                      "binary_data_size one byte too large",
        "path": base["path"],
        "headers": [["Inference-Header-Content-Length", str(len(js))]],
        "body": js + body[n:],
        "expect": {"status": 400, "error": True},
    }


def fx_bad_header_length(base):
    """Inference-Header-Content-Length beyond the body: 400."""
    return {
        "client": "none (hostile)",
        "reproduces": "triton_fp32_binary with Inference-Header-Content-"
                      "Length one byte longer than the whole body",
        "path": base["path"],
        "headers": [["Inference-Header-Content-Length",
                     str(len(base["body"]) + 1)]],
        "body": base["body"],
        "expect": {"status": 400, "error": True},
    }


def build_all():
    fx = {
        "triton_fp32_binary": fx_triton_fp32_binary(),
        "triton_fp64_json_outputs": fx_triton_fp64_json_outputs(),
        "triton_mixed": fx_triton_mixed(),
        "triton_all_json": fx_triton_all_json(),
        "triton_fp16": fx_triton_fp16(),
        "triton_bf16": fx_triton_bf16(),
        "triton_bce_bool": fx_triton_bce_bool(),
        "kserve_json": fx_kserve_json(),
        "kserve_binary": fx_kserve_binary(),
        "kserve_bce_uint8": fx_kserve_bce_uint8(),
    }
    fx["bad_binary_data_size"] = fx_bad_size(fx["triton_fp32_binary"])
    fx["bad_header_length"] = fx_bad_header_length(fx["triton_fp32_binary"])
    return fx


def sidecar_text(sidecar):
    """One member a line, one expected output a line: diffable, short."""
    line = lambda v: json.dumps(v, separators=(", ", ": "))
    parts = []
    for k, v in sidecar.items():
        if k == "expect" and "outputs" in v:
            head = {kk: vv for kk, vv in v.items() if kk != "outputs"}
            outs = ",\n".join("   " + line(o) for o in v["outputs"])
            parts.append(f' "{k}": {line(head)[:-1]}, "outputs": [\n'
                         f'{outs}\n ]}}')
        else:
            parts.append(f" {line(k)}: {line(v)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE,
                                                                "fixtures")
    os.makedirs(outdir, exist_ok=True)
    for name, f in build_all().items():
        body = f.pop("body")
        with open(os.path.join(outdir, name + ".body"), "wb") as fh:
            fh.write(body)
        client = f["client"].split()[0]
        sidecar = {
            "name": name,
            "client": f["client"],
            "reproduces": f["reproduces"],
            "method": "POST",
            "path": f["path"],
            "headers": f["headers"],
            "transport_headers": TRANSPORT.get(client, []),
            "body_bytes": len(body),
            "torch": TORCH,
            "expect": f["expect"],
        }
        with open(os.path.join(outdir, name + ".json"), "w") as fh:
            fh.write(sidecar_text(sidecar))
        print(f"{name}: {len(body)} bytes")


if __name__ == "__main__":
    main()
