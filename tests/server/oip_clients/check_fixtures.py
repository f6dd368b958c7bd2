#!/usr/bin/env python3
"""Post every committed OIP client fixture to a running lossd and check what
it answers, the way tritonclient and KServe would read it.

  check_fixtures.py BASE_URL [NAME ...] [--fixtures DIR]

BASE_URL is the server's root (http://127.0.0.1:PORT, a path prefix
allowed); NAME restricts the run to some fixtures (default: every
fixtures/*.json). It starts nothing: the caller starts `lossd serve` and
stops it. Standard library only (any python3).

For each fixture it sends fixtures/NAME.body byte for byte to the sidecar's
path, with the headers the client library sets ("headers") and those its
HTTP transport adds ("transport_headers"; Host and Content-Length come from
http.client), all on one keep-alive connection, so that a server that drops
the connection after an answer (a 400 included) without saying
`Connection: close` fails the next fixture. It then checks:

- the status; for an expected error (4xx), a JSON body whose "error" member
  is a non-empty string, as OIP clients read it (tritonclient's _get_error);
- the framing of the binary tensor data extension
  (parse_infer_response()): with Inference-Header-Content-Length, a decimal
  0 < n <= body length, the JSON header in the first n bytes, then one chunk
  per output that carries parameters.binary_data_size, in the order of
  "outputs", little-endian, sizes adding up to the body exactly and equal
  to shape product x element size; Content-Type application/octet-stream
  when any output is binary, JSON otherwise; a Content-Encoding (gzip,
  deflate) that the client asked for is undone first, as httpx does;
- model_name (KServe's InferResponse.from_bytes needs it), the echoed id,
  exactly the expected outputs (those named in the request, or all of the
  loss's when none were), each with the expected datatype, shape, form
  (binary or JSON data) and values.

Tolerances. FP64: |got - want| <= 1e-12 * max(|want|, 1e-3 * max|want| of
the tensor): lossd and PyTorch both compute in float64 but sum in different
orders, which moves these small tensors by a few ulps (about 1e-16
relative); 1e-12 leaves room for that and still catches any float32 step or
wrong formula, and the floor covers gradient entries that are a
cancellation (p - 1) of larger terms. An expected 0 tensor must be exactly
0. FP32: the float64 result rounded to float32 by the server; a result a
few ulps off in float64 may round to the neighbouring float32, so one
float32 ulp (2^-23 relative) is allowed. A 0-d output's shape may be [] or
[1]: both reshape the same in tritonclient's and KServe's as_numpy.

Prints TAP (one test point a fixture; "Bail out!" when nothing listens at
BASE_URL) and exits 1 when any fails, 2 on bad usage.
"""
import argparse
import gzip
import http.client
import json
import math
import os
import re
import struct
import sys
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# datatype -> (struct code, bytes per element); BF16 is decoded by hand.
ELEMENT = {
    "BOOL": ("?", 1), "UINT8": ("B", 1), "UINT16": ("H", 2),
    "UINT32": ("I", 4), "UINT64": ("Q", 8), "INT8": ("b", 1),
    "INT16": ("h", 2), "INT32": ("i", 4), "INT64": ("q", 8),
    "FP16": ("e", 2), "BF16": (None, 2), "FP32": ("f", 4), "FP64": ("d", 8),
}
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
FP64_REL = 1e-12
FP32_REL = 2.0 ** -23
FLOOR = 1e-3


class ProtocolError(Exception):
    """The answer breaks OIP or its binary tensor data extension."""


def fixture_names(fixtures_dir):
    return sorted(f[:-5] for f in os.listdir(fixtures_dir)
                  if f.endswith(".json"))


def load_fixture(fixtures_dir, name):
    """(sidecar dict, body bytes)."""
    with open(os.path.join(fixtures_dir, name + ".json")) as fh:
        side = json.load(fh)
    with open(os.path.join(fixtures_dir, name + ".body"), "rb") as fh:
        body = fh.read()
    if len(body) != side["body_bytes"]:
        raise ValueError(f"{name}.body has {len(body)} bytes, the sidecar "
                         f"says {side['body_bytes']}")
    return side, body


def decode_content(headers, body):
    """Undo Content-Encoding (headers: lower-case names)."""
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "deflate":  # zlib-wrapped, as it should be; raw as a rescue
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise ProtocolError(f"Content-Encoding {coding!r} was never asked for")


def shape_product(shape, where):
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0
            for d in shape):
        raise ProtocolError(f"{where}: shape {shape!r} is not a list of "
                            "non-negative integers")
    n = 1
    for d in shape:
        n *= d
    return n


def unpack_binary(datatype, raw, count, where):
    """The count elements of raw, little-endian, as Python numbers."""
    if datatype not in ELEMENT:
        raise ProtocolError(f"{where}: unknown datatype {datatype!r}")
    code, size = ELEMENT[datatype]
    if len(raw) != count * size:
        raise ProtocolError(f"{where}: binary_data_size {len(raw)} is not "
                            f"{count} elements x {size} bytes of {datatype}")
    if datatype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0]
                for i in range(0, len(raw), 2)]
    if datatype == "BOOL" and any(b > 1 for b in raw):
        raise ProtocolError(f"{where}: a BOOL byte is neither 0 nor 1")
    return list(struct.unpack(f"<{count}{code}", raw))


def flatten_data(data, where):
    """OIP allows flat or nested row-major data; non-finite numbers come as
    lossd's strings."""
    out = []

    def walk(v):
        if isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v in NONFINITE:
            out.append(NONFINITE[v])
        elif isinstance(v, (int, float)):
            out.append(v)
        else:
            raise ProtocolError(f"{where}: {v!r} is not a tensor element")

    walk(data)
    return out


def media_type(headers):
    return headers.get("content-type", "").split(";")[0].strip().lower()


def parse_infer_response(headers, body):
    """Split an inference response as the clients do, checking every rule
    of the binary tensor data extension on the way.

    headers: {lower-case name: value}; body: the decoded body bytes.
    Returns {"header": the JSON header (dict), "binary": bool (any binary
    output), "outputs": {name: {"datatype", "shape", "binary", "values"}}}.
    Raises ProtocolError."""
    raw_len = headers.get("inference-header-content-length")
    if raw_len is None:
        n = len(body)
    else:
        if not re.fullmatch(r"[0-9]+", raw_len.strip()):
            raise ProtocolError("Inference-Header-Content-Length "
                                f"{raw_len!r} is not a decimal number")
        n = int(raw_len)
        if not 0 < n <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {n} is "
                                f"not in 1..{len(body)} (the body)")
    try:
        header = json.loads(body[:n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"the first {n} bytes are not JSON: {e}")
    if not isinstance(header, dict) or not isinstance(
            header.get("outputs"), list):
        raise ProtocolError("the JSON header has no \"outputs\" list")
    offset, outputs, any_binary = n, {}, False
    for i, o in enumerate(header["outputs"]):
        where = f"outputs[{i}]"
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise ProtocolError(f"{where} has no name")
        name = o["name"]
        where = f"output {name!r}"
        if name in outputs:
            raise ProtocolError(f"{where} appears twice")
        datatype, shape = o.get("datatype"), o.get("shape")
        count = shape_product(shape, where)
        params = o.get("parameters") or {}
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or \
                    size < 0:
                raise ProtocolError(f"{where}: binary_data_size {size!r}")
            if "data" in o:
                raise ProtocolError(f"{where} has both data and "
                                    "binary_data_size")
            if offset + size > len(body):
                raise ProtocolError(f"{where}: its {size} bytes run past "
                                    f"the body ({len(body) - offset} left)")
            values = unpack_binary(datatype, body[offset:offset + size],
                                   count, where)
            offset += size
            any_binary = True
        else:
            if "data" not in o:
                raise ProtocolError(f"{where} has neither data nor "
                                    "binary_data_size")
            if datatype not in ELEMENT:
                raise ProtocolError(f"{where}: unknown datatype "
                                    f"{datatype!r}")
            values = flatten_data(o["data"], where)
            if len(values) != count:
                raise ProtocolError(f"{where}: {len(values)} values for "
                                    f"shape {shape}")
        outputs[name] = {"datatype": datatype, "shape": shape,
                         "binary": size is not None, "values": values}
    if offset != len(body):
        raise ProtocolError(f"{len(body) - offset} bytes after the last "
                            "binary output")
    mt = media_type(headers)
    if any_binary and mt != "application/octet-stream":
        raise ProtocolError("binary outputs under Content-Type "
                            f"{mt or '(none)'}, not application/octet-stream")
    if not any_binary and not (mt == "application/json" or
                               mt.endswith("+json")):
        raise ProtocolError(f"a JSON answer under Content-Type "
                            f"{mt or '(none)'}")
    return {"header": header, "binary": any_binary, "outputs": outputs}


def close_enough(datatype, got, want, scale):
    """See the module docstring for the tolerances."""
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    if datatype == "FP32":
        want = struct.unpack("<f", struct.pack("<f", want))[0]
        rel = FP32_REL
    else:
        rel = FP64_REL
    return abs(got - want) <= rel * max(abs(want), FLOOR * scale)


def check_error(body, headers):
    problems = []
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ["the error body is not JSON"]
    if not isinstance(doc, dict) or not isinstance(doc.get("error"), str) \
            or not doc["error"]:
        problems.append("the error body has no non-empty \"error\" string")
    mt = media_type(headers)
    if not (mt == "application/json" or mt.endswith("+json")):
        problems.append(f"the error's Content-Type is {mt or '(none)'}")
    return problems


def check_answer(expect, status, headers, body):
    """Problems (a list of strings, empty when all is well) with one answer.

    expect: the sidecar's "expect"; headers: {lower-case name: value};
    body: the body as received (still encoded)."""
    try:
        body = decode_content(headers, body)
    except (ProtocolError, OSError, zlib.error, EOFError) as e:
        return [f"cannot decode the body: {e}"]
    if status != expect["status"]:
        return [f"status {status}, expected {expect['status']}: "
                f"{body[:300]!r}"]
    if expect.get("error"):
        return check_error(body, headers)
    try:
        got = parse_infer_response(headers, body)
    except ProtocolError as e:
        return [str(e)]
    problems = []
    head = got["header"]
    if head.get("model_name") != expect["model_name"]:
        problems.append(f"model_name {head.get('model_name')!r}, expected "
                        f"{expect['model_name']!r}")
    if "id" in expect and head.get("id") != expect["id"]:
        problems.append(f"id {head.get('id')!r}, expected {expect['id']!r}")
    if got["binary"] != expect["binary"]:
        problems.append(f"binary response {got['binary']}, expected "
                        f"{expect['binary']}")
    want_names = [o["name"] for o in expect["outputs"]]
    if sorted(got["outputs"]) != sorted(want_names):
        problems.append(f"outputs {sorted(got['outputs'])}, expected "
                        f"{sorted(want_names)}")
    for w in expect["outputs"]:
        g = got["outputs"].get(w["name"])
        if g is None:
            continue
        where = f"output {w['name']!r}"
        if g["datatype"] != w["datatype"]:
            problems.append(f"{where}: datatype {g['datatype']}, expected "
                            f"{w['datatype']}")
            continue
        if g["shape"] != w["shape"] and not (w["shape"] == [] and
                                             g["shape"] == [1]):
            problems.append(f"{where}: shape {g['shape']}, expected "
                            f"{w['shape']}")
            continue
        if g["binary"] != w["binary"]:
            problems.append(f"{where}: sent as "
                            f"{'binary' if g['binary'] else 'JSON data'}, "
                            f"expected {'binary' if w['binary'] else 'JSON'}")
        scale = max((abs(v) for v in w["data"] if math.isfinite(v)),
                    default=0.0)
        for k, (a, b) in enumerate(zip(g["values"], w["data"])):
            if not close_enough(w["datatype"], float(a), b, scale):
                problems.append(f"{where}[{k}] (flat): {a!r}, expected "
                                f"{b!r}")
                break
    return problems


class Poster:
    """One keep-alive connection to BASE_URL."""

    def __init__(self, base_url, timeout=60):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        cls = (http.client.HTTPSConnection if u.scheme == "https"
               else http.client.HTTPConnection)
        self.prefix = u.path.rstrip("/")
        self.conn = cls(u.hostname, u.port, timeout=timeout)

    def post(self, side, body):
        """(status, {lower-case header: value}, raw body). Header names
        that arrive twice are joined with ", " (then fail the checks that
        read them, as they should)."""
        c = self.conn
        c.putrequest(side.get("method", "POST"), self.prefix + side["path"],
                     skip_accept_encoding=True)
        for name, value in side["transport_headers"] + side["headers"]:
            c.putheader(name, value)
        c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        headers = {}
        for k, v in r.getheaders():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        return r.status, headers, data

    def close(self):
        self.conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--fixtures", default=os.path.join(HERE, "fixtures"))
    args = ap.parse_args(argv)
    names = args.names or fixture_names(args.fixtures)
    poster = Poster(args.base_url)
    failed = 0
    print(f"1..{len(names)}")
    for i, name in enumerate(names, 1):
        side, body = load_fixture(args.fixtures, name)
        try:
            status, headers, data = poster.post(side, body)
            problems = check_answer(side["expect"], status, headers, data)
        except ConnectionRefusedError as e:
            print(f"Bail out! no server at {args.base_url}: {e}")
            return 1
        except (OSError, http.client.HTTPException) as e:
            problems = [f"{type(e).__name__}: {e} (was the connection "
                        "dropped after the previous answer?)"]
            poster.close()  # the next fixture reconnects
        if problems:
            failed += 1
            print(f"not ok {i} - {name}")
            for p in problems:
                print(f"#   {p}")
        else:
            print(f"ok {i} - {name}")
    poster.close()
    print(f"# {len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
