#!/usr/bin/env python3
"""Binary tensors to lossd over the Open Inference Protocol, with numpy and
the standard library only.

  python3 examples/oip_client.py [URL]      (default http://127.0.0.1:8080)

evaluates cross_entropy on a small float32 batch with its gradient and
prints {"value": ..., "grad_input": [[...]]}. As a module:

  from oip_client import infer, cross_entropy_with_grad
  value, grad = cross_entropy_with_grad(url, logits, target)

The request is what Triton's own client sends (the binary tensor data
extension): a JSON header naming each input with its datatype, shape and
parameters.binary_data_size, then the raw little-endian bytes of each input
in the same order; `Inference-Header-Content-Length` says where the JSON
ends. Asking for binary outputs (parameters.binary_data_output), the answer
has the same layout: the JSON header (its length in the response's
Inference-Header-Content-Length), then each output that carries a
binary_data_size, in the order of "outputs". Outputs are float64 ("FP64")
unless an output is asked for with parameters.datatype "FP32".
"""
import json
import sys
import urllib.error
import urllib.request

import numpy as np

# numpy dtype <-> OIP datatype; every tensor travels little-endian.
DATATYPES = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
KINDS = {("b", 1): "BOOL", ("u", 1): "UINT8", ("i", 4): "INT32",
         ("i", 8): "INT64", ("f", 2): "FP16", ("f", 4): "FP32",
         ("f", 8): "FP64"}
NONFINITE = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class OIPError(Exception):
    """lossd refused the request; .status is the HTTP status."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status


def encode_request(inputs, parameters=None, outputs=None):
    """(body bytes, JSON header length) for the given {name: ndarray}.

    outputs: None for every output (all binary), or {name: parameters},
    e.g. {"value": {"binary_data": True}, "grad_input": {"binary_data":
    True, "datatype": "FP32"}}."""
    header, chunks = {"inputs": []}, []
    for name, array in inputs.items():
        array = np.asarray(array)
        datatype = KINDS.get((array.dtype.kind, array.dtype.itemsize))
        if datatype is None:
            raise TypeError(f"{name}: no OIP datatype for {array.dtype}")
        raw = array.astype(DATATYPES[datatype], copy=False).tobytes()
        header["inputs"].append({
            "name": name, "shape": list(array.shape), "datatype": datatype,
            "parameters": {"binary_data_size": len(raw)}})
        chunks.append(raw)
    params = dict(parameters or {})
    if outputs is None:
        params["binary_data_output"] = True
    else:
        header["outputs"] = [{"name": k, "parameters": v}
                             for k, v in outputs.items()]
    if params:
        header["parameters"] = params
    js = json.dumps(header, separators=(",", ":")).encode()
    return js + b"".join(chunks), len(js)


def flatten(data):
    """OIP JSON data, flat or nested, as a flat list; lossd writes
    non-finite numbers as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(data, list):
        return [x for v in data for x in flatten(v)]
    return [NONFINITE.get(data, data) if isinstance(data, str) else data]


def decode_response(body, header_length):
    """{name: ndarray} from an inference response body. header_length: the
    response's Inference-Header-Content-Length (None: all JSON)."""
    n = len(body) if header_length is None else int(header_length)
    if not 0 < n <= len(body):
        raise ValueError(f"Inference-Header-Content-Length {n} outside the "
                         f"{len(body)}-byte body")
    header = json.loads(body[:n])
    offset, result = n, {}
    for out in header["outputs"]:
        dtype = DATATYPES[out["datatype"]]
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:  # this output came as JSON data
            array = np.array(flatten(out["data"]), dtype=dtype)
        else:
            if offset + size > len(body):
                raise ValueError(f"{out['name']}: {size} bytes past the body")
            array = np.frombuffer(body, dtype=dtype, count=size //
                                  dtype.itemsize, offset=offset).copy()
            offset += size
        result[out["name"]] = array.reshape(out["shape"])
    if offset != len(body):
        raise ValueError(f"{len(body) - offset} bytes after the last output")
    return result


def infer(url, loss, inputs, parameters=None, outputs=None, timeout=60):
    """POST /v2/models/{loss}/infer with binary inputs; {name: ndarray}.

    parameters: loss options, "reduction", "grad" (True or "input,target")
    and "grad_output". Raises OIPError with lossd's message on 4xx/5xx."""
    body, n = encode_request(inputs, parameters, outputs)
    req = urllib.request.Request(
        url.rstrip("/") + f"/v2/models/{loss}/infer", data=body,
        method="POST", headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(n)})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Inference-Header-Content-Length")
            return decode_response(resp.read(), length)
    except urllib.error.HTTPError as err:
        text = err.read().decode("utf-8", "replace")
        try:
            text = json.loads(text)["error"]  # OIP's {"error": "..."}
        except (ValueError, KeyError, TypeError):
            pass
        raise OIPError(err.code, text) from None


def cross_entropy_with_grad(url, logits, target, **options):
    """(value, grad_input): cross_entropy of float32 logits (N, C) and int64
    class indices (N,), the mean and its gradient, both float64 arrays."""
    out = infer(url, "cross_entropy",
                {"input": np.asarray(logits, dtype=np.float32),
                 "target": np.asarray(target, dtype=np.int64)},
                parameters={"grad": "input", **options},
                outputs={"value": {"binary_data": True},
                         "grad_input": {"binary_data": True}})
    return out["value"], out["grad_input"]


def main(argv):
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8080"
    logits = np.array([[2.0, 0.5, -1.0, 0.25],
                       [0.1, 0.2, 3.0, -0.5],
                       [-1.5, 1.0, 0.0, 0.75]], dtype=np.float32)
    target = np.array([0, 2, 3], dtype=np.int64)
    try:
        value, grad = cross_entropy_with_grad(url, logits, target)
    except (OIPError, OSError, ValueError) as e:
        print(f"oip_client: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"value": float(value), "grad_input": grad.tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
