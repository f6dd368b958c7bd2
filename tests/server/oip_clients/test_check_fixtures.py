#!/usr/bin/env python3
"""Unit tests of check_fixtures.py, with no lossd: its parser against
response blobs built here by hand, its checks against each fixture's own
expectations, and its HTTP path against a stand-in server that insists on
receiving every fixture byte for byte.

  python3 test_check_fixtures.py [-v]      (standard library only)
"""
import gzip
import http.server
import io
import json
import os
import struct
import sys
import threading
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_fixtures as cf  # noqa: E402

FIXTURES = os.path.join(cf.HERE, "fixtures")
PACK = {"FP64": "d", "FP32": "f", "FP16": "e", "INT64": "q", "INT32": "i",
        "UINT8": "B", "BOOL": "?"}


def blob(outputs, model_name="m", id_=None, binary_len_header=True):
    """A response as a server would write it. outputs: [(name, datatype,
    shape, values, binary)]. Returns (headers, body)."""
    head, chunks = {"model_name": model_name, "outputs": []}, []
    if id_ is not None:
        head["id"] = id_
    for name, datatype, shape, values, binary in outputs:
        o = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            raw = struct.pack(f"<{len(values)}{PACK[datatype]}", *values)
            o["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            o["data"] = values
        head["outputs"].append(o)
    js = json.dumps(head).encode()
    if not chunks:
        return {"content-type": "application/json"}, js
    headers = {"content-type": "application/octet-stream"}
    if binary_len_header:
        headers["inference-header-content-length"] = str(len(js))
    return headers, js + b"".join(chunks)


def answer_for(expect, scalar_shape=None):
    """The answer a correct lossd gives to a fixture: (status, headers,
    body)."""
    if expect.get("error"):
        return expect["status"], {"content-type":
                                  "application/problem+json"}, \
            b'{"error": "binary_data_size does not add up"}'
    outs = []
    for o in expect["outputs"]:
        shape = o["shape"]
        if shape == [] and scalar_shape is not None:
            shape = scalar_shape
        outs.append((o["name"], o["datatype"], shape, o["data"],
                     o["binary"]))
    headers, body = blob(outs, expect["model_name"], expect.get("id"))
    return expect["status"], headers, body


def all_fixtures():
    return [cf.load_fixture(FIXTURES, n) for n in cf.fixture_names(FIXTURES)]


class ParseTest(unittest.TestCase):
    def test_hand_built_binary_blob(self):
        js = (b'{"model_name":"cross_entropy","id":"x","outputs":['
              b'{"name":"value","datatype":"FP64","shape":[],'
              b'"parameters":{"binary_data_size":8}},'
              b'{"name":"count","datatype":"FP64","shape":[],"data":[4.0]},'
              b'{"name":"grad_input","datatype":"FP32","shape":[2,2],'
              b'"parameters":{"binary_data_size":16}}]}')
        body = js + struct.pack("<d", 1.25) + struct.pack(
            "<4f", 0.5, -0.25, 1.0, -2.0)
        got = cf.parse_infer_response(
            {"content-type": "application/octet-stream",
             "inference-header-content-length": str(len(js))}, body)
        self.assertTrue(got["binary"])
        self.assertEqual(got["outputs"]["value"]["values"], [1.25])
        self.assertFalse(got["outputs"]["count"]["binary"])
        self.assertEqual(got["outputs"]["count"]["values"], [4.0])
        self.assertEqual(got["outputs"]["grad_input"]["values"],
                         [0.5, -0.25, 1.0, -2.0])
        self.assertEqual(got["header"]["id"], "x")

    def test_json_answer_nested_data_and_nonfinite(self):
        headers, body = blob([("value", "FP64", [2, 2],
                               [[1.0, "NaN"], ["-Infinity", 2]], False)])
        got = cf.parse_infer_response(headers, body)
        v = got["outputs"]["value"]["values"]
        self.assertEqual(v[0], 1.0)
        self.assertNotEqual(v[1], v[1])
        self.assertEqual(v[2], float("-inf"))
        self.assertFalse(got["binary"])

    def test_every_datatype_decodes(self):
        for dt, vals in [("FP16", [0.5, -2.0]), ("INT64", [-3, 7]),
                         ("INT32", [1, -1]), ("UINT8", [0, 255]),
                         ("BOOL", [True, False])]:
            headers, body = blob([("t", dt, [2], vals, True)])
            got = cf.parse_infer_response(headers, body)
            self.assertEqual(got["outputs"]["t"]["values"], list(vals), dt)
        # BF16: the high half of a float32.
        js = b'{"outputs":[{"name":"t","datatype":"BF16","shape":[2],' \
             b'"parameters":{"binary_data_size":4}}]}'
        raw = struct.pack("<f", 1.5)[2:] + struct.pack("<f", -0.375)[2:]
        got = cf.parse_infer_response(
            {"content-type": "application/octet-stream",
             "inference-header-content-length": str(len(js))}, js + raw)
        self.assertEqual(got["outputs"]["t"]["values"], [1.5, -0.375])

    def assertRefused(self, headers, body, fragment):
        with self.assertRaises(cf.ProtocolError) as c:
            cf.parse_infer_response(headers, body)
        self.assertIn(fragment, str(c.exception))

    def test_framing_errors(self):
        headers, body = blob([("value", "FP64", [], [1.0], True),
                              ("g", "FP32", [2], [1.0, 2.0], True)])
        n = int(headers["inference-header-content-length"])

        def h(**kw):
            d = dict(headers)
            d.update({k.replace("_", "-"): v for k, v in kw.items()})
            return d
        self.assertRefused(h(inference_header_content_length="0"), body,
                           "not in 1..")
        self.assertRefused(h(inference_header_content_length=str(
            len(body) + 1)), body, "not in 1..")
        self.assertRefused(h(inference_header_content_length="12a"), body,
                           "not a decimal")
        self.assertRefused(h(inference_header_content_length=str(n - 1)),
                           body, "not JSON")
        self.assertRefused(headers, body + b"\0", "1 bytes after")
        self.assertRefused(headers, body[:-1], "run past")
        self.assertRefused(h(content_type="application/json"), body,
                           "not application/octet-stream")
        # Without the header the whole body is read as JSON, as the
        # clients do; trailing binary then is not JSON.
        del headers["inference-header-content-length"]
        self.assertRefused(headers, body, "not JSON")

    def test_size_not_a_whole_tensor(self):
        js = b'{"outputs":[{"name":"t","datatype":"FP64","shape":[2],' \
             b'"parameters":{"binary_data_size":12}}]}'
        self.assertRefused({"content-type": "application/octet-stream",
                            "inference-header-content-length": str(len(js))},
                           js + bytes(12), "not 2 elements x 8 bytes")

    def test_bool_bytes_are_0_or_1(self):
        js = b'{"outputs":[{"name":"t","datatype":"BOOL","shape":[1],' \
             b'"parameters":{"binary_data_size":1}}]}'
        self.assertRefused({"content-type": "application/octet-stream",
                            "inference-header-content-length": str(len(js))},
                           js + b"\x02", "neither 0 nor 1")

    def test_json_answer_content_type(self):
        headers, body = blob([("value", "FP64", [], [1.0], False)])
        self.assertRefused({"content-type": "application/octet-stream"},
                           body, "a JSON answer under")
        self.assertRefused({}, body, "(none)")

    def test_data_count_and_both_forms(self):
        headers, body = blob([("value", "FP64", [3], [1.0, 2.0], False)])
        self.assertRefused(headers, body, "2 values for shape [3]")
        js = b'{"outputs":[{"name":"t","datatype":"FP64","shape":[1],' \
             b'"data":[1.0],"parameters":{"binary_data_size":8}}]}'
        self.assertRefused({"content-type": "application/octet-stream",
                            "inference-header-content-length": str(len(js))},
                           js + bytes(8), "both data and binary_data_size")


class CheckAnswerTest(unittest.TestCase):
    def test_every_fixture_accepts_a_correct_answer(self):
        for side, _ in all_fixtures():
            for scalar in (None, [1]):
                status, headers, body = answer_for(side["expect"], scalar)
                self.assertEqual(
                    cf.check_answer(side["expect"], status, headers, body),
                    [], side["name"])

    def test_gzip_answer(self):
        side, _ = cf.load_fixture(FIXTURES, "kserve_binary")
        status, headers, body = answer_for(side["expect"])
        headers["content-encoding"] = "gzip"
        self.assertEqual(cf.check_answer(side["expect"], status, headers,
                                         gzip.compress(body)), [])

    def perturbed(self, name, output, factor):
        side, _ = cf.load_fixture(FIXTURES, name)
        expect = json.loads(json.dumps(side["expect"]))
        for o in expect["outputs"]:
            if o["name"] == output:
                o["data"] = [v * factor for v in o["data"]]
        status, headers, body = answer_for(expect)
        return cf.check_answer(side["expect"], status, headers, body)

    def test_fp64_tolerance(self):
        self.assertEqual(self.perturbed("triton_fp32_binary", "value",
                                        1 + 1e-13), [])
        self.assertTrue(self.perturbed("triton_fp32_binary", "value",
                                       1 + 1e-10))
        # float32 arithmetic somewhere shows as ~1e-8 errors: refused.
        self.assertTrue(self.perturbed("triton_fp32_binary", "grad_input",
                                       1 + 1e-8))

    def test_fp32_tolerance(self):
        # kserve_binary asks for grad_input in FP32: one ulp is allowed,
        # 2^-20 relative is not.
        self.assertEqual(self.perturbed("kserve_binary", "grad_input",
                                        1 + 2.0 ** -25), [])
        self.assertTrue(self.perturbed("kserve_binary", "grad_input",
                                       1 + 2.0 ** -20))

    def test_wrong_answers(self):
        side, _ = cf.load_fixture(FIXTURES, "triton_mixed")
        e = side["expect"]
        status, headers, body = answer_for(e)
        self.assertIn("status 400", cf.check_answer(e, 400, headers,
                                                    body)[0])
        wrong = json.loads(json.dumps(e))
        wrong["id"] = "other"
        self.assertTrue(any("id" in p for p in cf.check_answer(
            e, *answer_for(wrong))))
        wrong = json.loads(json.dumps(e))
        wrong["outputs"][1]["binary"] = True  # grad_input binary, not JSON
        self.assertTrue(any("sent as binary" in p for p in cf.check_answer(
            e, *answer_for(wrong))))
        wrong = json.loads(json.dumps(e))
        wrong["outputs"][0]["datatype"] = "FP32"
        self.assertTrue(any("datatype FP32" in p for p in cf.check_answer(
            e, *answer_for(wrong))))
        wrong = json.loads(json.dumps(e))
        wrong["outputs"].pop()
        self.assertTrue(any("outputs" in p for p in cf.check_answer(
            e, *answer_for(wrong))))

    def test_error_answers(self):
        side, _ = cf.load_fixture(FIXTURES, "bad_header_length")
        e = side["expect"]
        self.assertEqual(cf.check_answer(e, *answer_for(e)), [])
        self.assertTrue(cf.check_answer(
            e, 400, {"content-type": "application/json"}, b'{"detail":1}'))
        self.assertTrue(cf.check_answer(
            e, 400, {"content-type": "text/plain"}, b'{"error":"x"}'))


class StandIn(http.server.BaseHTTPRequestHandler):
    """Answers each fixture correctly, but only when it arrives byte for
    byte with the fixture's headers."""
    protocol_version = "HTTP/1.1"
    fixtures = []  # [(sidecar, body)]
    seen = []

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)
        side = next((s for s, b in self.fixtures
                     if s["path"] == self.path and b == body and all(
                         self.headers.get_all(k) == [v]
                         for k, v in s["headers"] + s["transport_headers"])),
                    None)
        if side is None:
            self.reply(404, {"content-type": "application/json"},
                       b'{"error":"no fixture has these bytes and headers"}')
            return
        if "accept-encoding" not in [k.lower() for k, _ in
                                     side["transport_headers"]] and \
                self.headers.get("Accept-Encoding") is not None:
            self.reply(400, {"content-type": "application/json"},
                       b'{"error":"an Accept-Encoding the client omits"}')
            return
        self.seen.append(side["name"])
        self.reply(*answer_for(side["expect"]))

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class EndToEndTest(unittest.TestCase):
    def test_main_against_stand_in(self):
        StandIn.fixtures = all_fixtures()
        StandIn.seen = []
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            out = io.StringIO()
            with redirect_stdout(out):
                rc = cf.main([f"http://127.0.0.1:{srv.server_port}"])
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertEqual(rc, 0, out.getvalue())
        self.assertEqual(sorted(StandIn.seen), cf.fixture_names(FIXTURES))
        self.assertTrue(out.getvalue().startswith(
            f"1..{len(StandIn.seen)}\n"))
        self.assertNotIn("not ok ", out.getvalue())


if __name__ == "__main__":
    unittest.main()
