#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (docs/testing.md).

    tests/fuzz/gen_corpus.py        (from anywhere; writes under tests/fuzz)

Seeds are small request bodies: a few cases per loss and the batches of
tests/golden/cases.json, plus malformed bodies written here. Each target's
input format is in its source file's opening comment. The script only
writes the files named "seed-*"; crash files added by hand (named
"crash-*") are never touched. Output is deterministic (gzip mtime 0), so
running it again changes nothing unless this script or the cases change.
"""
import base64
import gzip
import json
import os
import re
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PER_LOSS = 4  # golden cases per loss: enough variety, a small corpus

# Bodies that must fail, and some odd but valid ones: every branch of the
# tokenizer, tensor forms, recovery, limits.
MALFORMED = {
    "empty": b"",
    "space": b"  \n\t ",
    "truncated_object": b'{"input": [1, 2',
    "truncated_string": b'{"input": "NaN',
    "truncated_escape": b'{"a\\u12',
    "trailing_data": b'{"input": [1]} x',
    "two_values": b"{} {}",
    "bad_literal": b'{"grad": tru}',
    "bare_nan": b'{"input": [NaN], "target": [1]}',
    "bare_infinity": b'{"input": [-Infinity], "target": [1]}',
    "nonfinite_strings": b'{"input": ["NaN", "Infinity", "-Infinity"],'
                         b' "target": [0, 1, 2]}',
    "huge_number": b'{"input": [1e400], "target": [1]}',
    "tiny_number": b'{"input": [1e-400, -0, -0.0e-0], "target": [1, 2, 3]}',
    "long_integer": b'{"input": [123456789012345678901234567890],'
                    b' "target": [1]}',
    "bad_number": b'{"input": [01, 1., .5, 1e, -], "target": [1]}',
    "ragged": b'{"input": [[1, 2], [3]], "target": [[1, 2], [3, 4]]}',
    "null_in_tensor": b'{"input": [1, null], "target": [1, 2]}',
    "string_in_tensor": b'{"input": [1, "x"], "target": [1, 2]}',
    "object_in_tensor": b'{"input": [[1], {"a": 1}], "target": [1]}',
    "duplicate_key": b'{"input": [1], "input": [2], "target": [1]}',
    "deep": b"[" * 80 + b"]" * 80,
    "deep_object": b'{"a":' * 40 + b"1" + b"}" * 40,
    "rank9": b"[" * 9 + b"1" + b"]" * 9,
    "empty_tensors": b'{"input": [], "target": [[]]}',
    "escapes": b'{"reduction": "m\\u0065an\\n\\t\\"\\\\\\/\\b\\f\\r",'
               b' "input": [1], "target": [1]}',
    "surrogates": b'{"\\ud83d\\ude00": 1, "\\ud800": 2, "\\udc00x": 3}',
    "nul_in_key": b'{"in\\u0000put": [1], "target": [1]}',
    "bad_utf8": b'{"input": [1], "target": [1], "x": "\xc3\x28\xed\xa0\x80"}',
    "utf8": '{"input": [1], "target": [1], "x": "é€😀"}'.encode(),
    "control_char": b'{"x": "a\x01b"}',
    "flat": b'{"input": {"shape": [2, 2], "data": [1, 2, 3, 4]},'
            b' "target": {"shape": [2, 2], "data": [4, 3, 2, 1]}}',
    "flat_bad_length": b'{"input": {"shape": [2, 2], "data": [1, 2, 3]},'
                       b' "target": [1]}',
    "flat_bad_shape": b'{"input": {"shape": [-1], "data": []},'
                      b' "target": {"shape": [1e20, 1e20], "data": []}}',
    "base64": b'{"input": {"shape": [2], "dtype": "float64", "base64": "'
              + base64.b64encode(struct.pack("<2d", 0.5, -2.0))
              + b'"}, "target": [1, 2]}',
    "base64_float32": b'{"input": {"shape": [2], "dtype": "float32",'
                      b' "base64": "'
                      + base64.b64encode(struct.pack("<2f", 0.5, -2.0))
                      + b'"}, "target": [1, 2]}',
    "base64_bad": b'{"input": {"shape": [1], "dtype": "float64",'
                  b' "base64": "AAAA=AAA"}, "target": [1]}',
    "base64_short": b'{"input": {"shape": [2], "dtype": "float64",'
                    b' "base64": "AAAAAAAA8D8="}, "target": [1, 2]}',
    "many_errors": b'{"a": [[1], 2], "b": [null], "c": [1, "x"],'
                   b' "a": 1, "d": {"shape": [1], "data": [[1]]}}',
    "wide": b"[" + b",".join(b"%d" % i for i in range(300)) + b"]",
}

# fuzz_decode's header: flags, depth, rank, elements, split seed (2).
DECODE_HEADERS = {
    "whole": bytes([0, 63, 7, 255, 0, 0]),
    "split": bytes([0, 63, 7, 255, 0x12, 0x34]),
    "recover": bytes([0x31, 63, 7, 255, 0xbe, 0xef]),
    "reuse_tight": bytes([0x03, 3, 1, 8, 0x00, 0x07]),
}


def golden():
    with open(os.path.join(ROOT, "tests", "golden", "cases.json")) as f:
        cases = json.load(f)["cases"]
    by_loss = {}
    for c in cases:
        by_loss.setdefault(c["loss"], []).append(c)
    out = {}
    for loss, cs in sorted(by_loss.items()):
        # spread over the list: the cases of one loss come in groups
        step = max(1, len(cs) // PER_LOSS)
        # and every raw body: those are the malformed ones
        pick = cs if loss == "batch" else cs[::step][:PER_LOSS]
        pick += [c for c in cs if "body" in c and c not in pick]
        for c in pick:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", c["name"])
            if "body" in c:
                body = c["body"].encode()
            else:
                body = json.dumps(c["request"], separators=(",", ":"))
                body = body.encode()
            out[name] = (loss, body)
    return out


def dictionary(cases):
    """libFuzzer's dictionary: JSON's tokens, every key and short string
    of the cases, every loss name."""
    words = set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                words.add(json.dumps(k))
                walk(x)
        elif isinstance(v, list):
            for x in v[:2]:
                walk(x)
        elif isinstance(v, str) and len(v) < 24:
            words.add(json.dumps(v))

    for c in cases:
        walk(c.get("request"))
        words.add(c["loss"])
    words.update(["{", "}", "[", "]", ":", ",", "true", "false", "null",
                  "-0", "1e308", "1e-320", "\\u0000", "\\ud800",
                  "\\udc00", "\\\"", "\\\\"])
    lines = []
    for w in sorted(words):
        esc = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\'
                      else "\\x%02x" % b
                      for ch in w for b in ch.encode())
        lines.append('"%s"\n' % esc)
    with open(os.path.join(HERE, "json.dict"), "w") as f:
        f.write("# libFuzzer dictionary of tests/fuzz; written by"
                " gen_corpus.py\n")
        f.writelines(lines)


def _oip_input(name, shape, datatype, blob=None, data=None):
    i = {"name": name, "shape": shape, "datatype": datatype}
    if blob is not None:
        i["parameters"] = {"binary_data_size": len(blob)}
    else:
        i["data"] = data
    return i


def _oip_seeds():
    """Infer requests for fuzz_handlers: (loss, header, binary blobs)."""
    x32 = struct.pack("<6f", 0.5, -1.25, 2.0, 0.125, 0.25, -0.375)
    x16 = struct.pack("<6e", 0.5, -1.25, 2.0, 0.125, 0.25, -0.375)
    bf16 = bytes.fromhex("003fa0bf0040003e803ec0be")
    t64 = struct.pack("<2q", 2, 0)
    t32 = struct.pack("<2i", 2, 0)
    tb = bytes([1, 0, 1, 0, 0, 1])
    f64 = struct.pack("<2d", float("nan"), 1.0)
    return {
        "ce-fp32-int64": ("cross_entropy", {
            "id": "a", "inputs": [_oip_input("input", [2, 3], "FP32", x32),
                                  _oip_input("target", [2], "INT64", t64)],
            "parameters": {"grad": "input", "binary_data_output": True}},
            [x32, t64]),
        "ce-fp16-int32": ("cross_entropy", {
            "inputs": [_oip_input("input", [2, 3], "FP16", x16),
                       _oip_input("target", [2], "INT32", t32)],
            "parameters": {"grad": True, "label_smoothing": 0.1},
            "outputs": [{"name": "value"},
                        {"name": "grad_input",
                         "parameters": {"binary_data": True,
                                        "datatype": "FP32"}}]},
            [x16, t32]),
        "bce-bf16-bool": ("binary_cross_entropy_with_logits", {
            "inputs": [_oip_input("input", [2, 3], "BF16", bf16),
                       _oip_input("target", [2, 3], "BOOL", tb)],
            "parameters": {"reduction": "none"}}, [bf16, tb]),
        "mse-json": ("mse", {
            "inputs": [_oip_input("input", [2], "FP64", data=[1, 2]),
                       _oip_input("target", [2], "FP32", data=[[0], [0.1]])],
            "outputs": [{"name": "sum"}, {"name": "grad_target"}]}, []),
        "mse-nan-mixed": ("mse", {
            "inputs": [_oip_input("input", [2], "FP64", f64),
                       _oip_input("target", [2], "FP64", data=[0, 0])]},
            [f64]),
        "mse-size-off": ("mse", {
            "inputs": [_oip_input("input", [2], "FP64", f64[:15]),
                       _oip_input("target", [2], "FP64", data=[0, 0])]},
            [f64]),
        "softmax-grad-output": ("softmax", {
            "inputs": [_oip_input("input", [2, 3], "FP32", x32),
                       _oip_input("grad_output", [2, 3], "FP32", x32)],
            "parameters": {"dim": 1, "grad": True}}, [x32, x32]),
    }


OIP_SEEDS = _oip_seeds()


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear(target):
    d = os.path.join(HERE, "corpus", target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.remove(os.path.join(d, n))


def main():
    for t in ("decode", "handlers", "inflate"):
        clear(t)
    cases = golden()
    with open(os.path.join(ROOT, "tests", "golden", "cases.json")) as f:
        dictionary(json.load(f)["cases"])
    bodies = dict((n, b) for n, (_, b) in cases.items())
    bodies.update(("bad-" + n, b) for n, b in MALFORMED.items())

    # fuzz_decode: every body under the first header, a share under the
    # others
    for i, (name, body) in enumerate(sorted(bodies.items())):
        for h, header in DECODE_HEADERS.items():
            if h == "whole" or i % 4 == list(DECODE_HEADERS).index(h):
                write("decode", f"{name}.{h}", header + body)

    # fuzz_handlers: golden bodies with their loss, malformed ones for mse
    # and the batch
    for name, (loss, body) in sorted(cases.items()):
        if loss in ("hinge",):  # an unknown loss: skipped by the target
            continue
        write("handlers", name, loss.encode() + b"\n" + body)
    for name, body in sorted(MALFORMED.items()):
        write("handlers", "bad-" + name, b"mse\n" + body)
    write("handlers", "batch-bad-items",
          b'batch\n{"requests": [{"loss": "nope"}, {"loss": "mse"}, 1,'
          b' {"loss": "mse", "input": [1], "target": [[1, 2]]}],'
          b' "shared": {"input": [1]}}')

    # fuzz_handlers, Open Inference Protocol: "oip/<loss>[/<header length>]"
    for name, (loss, header, blobs) in sorted(OIP_SEEDS.items()):
        head = json.dumps(header, separators=(",", ":")).encode()
        route = "oip/" + loss + (f"/{len(head)}" if blobs else "")
        write("handlers", "oip-" + name,
              route.encode() + b"\n" + head + b"".join(blobs))

    # fuzz_inflate: [bound, split seed] name "\n" compressed body
    small = sorted((n, l, b) for n, (l, b) in cases.items()
                   if l != "hinge" and len(b) < 4000)[::6]
    for name, loss, body in small:
        head = loss.encode() + b"\n"
        write("inflate", name + ".gz",
              bytes([0, 0]) + head + gzip.compress(body, 6, mtime=0))
        write("inflate", name + ".zlib",
              bytes([0, 0x5a]) + head + zlib.compress(body, 1))
    body = cases[small[0][0]][1]
    head = small[0][1].encode() + b"\n"
    gz = gzip.compress(body, 9, mtime=0)
    write("inflate", "truncated.gz", bytes([0, 0]) + head + gz[:-9])
    write("inflate", "trailing.gz", bytes([0, 0]) + head + gz + b"x")
    write("inflate", "two_members.gz", bytes([0, 3]) + head + gz + gz)
    write("inflate", "corrupt.zlib", bytes([0, 0]) + head +
          zlib.compress(body)[:20] + b"\xff" * 8)
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    write("inflate", "raw_deflate", bytes([0, 0]) + head +
          raw.compress(body) + raw.flush())
    write("inflate", "bomb.gz", bytes([255, 0x11]) + b"mse\n" +
          gzip.compress(b" " * (1 << 20), 9, mtime=0))
    write("inflate", "bound.zlib", bytes([4, 0]) + head +
          zlib.compress(body, 9))
    return 0


if __name__ == "__main__":
    sys.exit(main())
