#!/usr/bin/env python3
"""The README's examples run against the real server and print what it says.

Convention (README.md): a runnable example is a fenced block whose info
string is `sh example=NAME`, `python example=NAME` or `js example=NAME`,
using the URL http://localhost:8080 literally; it is followed somewhere by a
block `json output=NAME` holding the one JSON document it prints (request
ids and problem `instance` values left out, as they change on every run).

This test starts `lossd serve --host 127.0.0.1 --port 0`, points every
example at it (http://localhost:8080 becomes http://127.0.0.1:PORT), runs it
(sh with bash, python with /usr/bin/python3, js with node and its global
fetch) and compares what it prints with the expected block semantically:
the same keys and structure, equal strings, booleans and nulls, and numbers
within |a - b| <= 1e-9 |b| + 1e-11 (the README's numbers are printed to
round-trip, so only a different libm or summation order may move them, by a
few ulps). Fails on an example without an output block, an output block
without an example, a duplicate name, or a README without examples.

  readme_examples.py LOSSD_EXE [README.md]

Without bash's helpers (curl), /usr/bin/python3 or node it skips (exit 77)
with the reason; with CI=true a missing tool is a failure.
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

RUNNERS = {
    "sh": lambda path: ["bash", path],
    "python": lambda path: ["/usr/bin/python3", path],
    "js": lambda path: ["node", path],
}
SUFFIX = {"sh": ".sh", "python": ".py", "js": ".js"}
URL = "http://localhost:8080"
# Members that differ on every run; the README leaves them out.
VOLATILE = {"instance", "request_id", "X-Request-Id"}


def missing(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL: {reason} (CI=true: a missing tool is a failure)")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(77)


def blocks(text):
    """[(line, info string, body)] of the fenced blocks (``` or ~~~)."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})\s*(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i + 1
        j = start
        while j < len(lines) and not re.match(
                r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) +
                r",}\s*$", lines[j]):
            j += 1
        out.append((start, info, "\n".join(lines[start:j]) + "\n"))
        i = j + 1
    return out


def parse_readme(text):
    """(examples {name: (line, lang, code)}, outputs {name: (line, json)},
    errors)."""
    examples, outputs, errors = {}, {}, []
    for line, info, body in blocks(text):
        words = info.split()
        attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        lang = words[0] if words else ""
        if "example" in attrs:
            name = attrs["example"]
            if lang not in RUNNERS:
                errors.append(f"README.md:{line}: example={name} in "
                              f"'{lang}': only sh, python and js run")
            elif name in examples:
                errors.append(f"README.md:{line}: example={name} again "
                              f"(first at line {examples[name][0]})")
            else:
                examples[name] = (line, lang, body)
        if "output" in attrs:
            name = attrs["output"]
            if lang != "json":
                errors.append(f"README.md:{line}: output={name} must be a "
                              f"json block, not '{lang}'")
            elif name in outputs:
                errors.append(f"README.md:{line}: output={name} again")
            else:
                try:
                    outputs[name] = (line, json.loads(body))
                except ValueError as e:
                    errors.append(f"README.md:{line}: output={name} is not "
                                  f"one JSON document: {e}")
    for name, (line, _, _) in examples.items():
        if name not in outputs:
            errors.append(f"README.md:{line}: example={name} has no "
                          f"'json output={name}' block")
    for name, (line, _) in outputs.items():
        if name not in examples:
            errors.append(f"README.md:{line}: output={name} has no example")
    return examples, outputs, errors


def differences(got, want, where="$"):
    """The places where got differs from want (empty: equal)."""
    if isinstance(want, bool) or isinstance(got, bool) or want is None \
            or got is None:
        return [] if got is want or (got == want and type(got) is type(want)) \
            else [f"{where}: {json.dumps(got)}, expected {json.dumps(want)}"]
    if isinstance(want, (int, float)):
        if not isinstance(got, (int, float)):
            return [f"{where}: {json.dumps(got)}, expected the number {want}"]
        if math.isnan(want) and math.isnan(got):
            return []
        if abs(got - want) <= 1e-9 * abs(want) + 1e-11:
            return []
        return [f"{where}: {got!r}, expected {want!r} "
                f"(|diff| {abs(got - want):.3g})"]
    if isinstance(want, str):
        return [] if got == want else \
            [f"{where}: {json.dumps(got)}, expected {json.dumps(want)}"]
    if isinstance(want, list):
        if not isinstance(got, list):
            return [f"{where}: {json.dumps(got)[:80]}, expected an array"]
        if len(got) != len(want):
            return [f"{where}: {len(got)} elements, expected {len(want)}"]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += differences(g, w, f"{where}[{i}]")
        return out
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {json.dumps(got)[:80]}, expected an object"]
        out = []
        for k in sorted(set(got) | set(want)):
            if k not in want:
                if k not in VOLATILE:
                    out.append(f"{where}.{k}: not in the README's output")
            elif k not in got:
                out.append(f"{where}.{k}: missing")
            else:
                out += differences(got[k], want[k], f"{where}.{k}")
        return out
    return [f"{where}: unexpected {type(want).__name__}"]


def start(exe):
    err = tempfile.NamedTemporaryFile(prefix="lossd-readme-",
                                      suffix=".stderr", delete=False)
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", "0",
         "--drain-seconds", "0"],
        stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()
    try:
        port = json.loads(line)["port"]
    except (ValueError, KeyError):
        proc.kill()
        sys.exit(f"lossd did not start: first line {line!r}")
    return proc, err.name, port


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: readme_examples.py LOSSD_EXE [README.md]")
    exe = sys.argv[1]
    readme = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.environ.get("LOSSD_SOURCE_ROOT",
                       os.path.join(os.path.dirname(__file__), "..", "..")),
        "README.md")
    with open(readme, encoding="utf-8") as f:
        examples, outputs, errors = parse_readme(f.read())
    failures = list(errors)
    if not examples:
        failures.append(f"{readme} has no runnable examples (fenced blocks "
                        f"'sh example=NAME', 'python example=NAME' or 'js "
                        f"example=NAME', each with a 'json output=NAME')")

    langs = {lang for _, lang, _ in examples.values()}
    need = {"sh": ["bash", "curl"], "python": ["/usr/bin/python3"],
            "js": ["node"]}
    for lang in sorted(langs):
        for tool in need[lang]:
            if not shutil.which(tool):
                missing(f"{tool} not found, needed by the README's {lang} "
                        f"examples (scripts/deps.sh test installs it)")

    proc, err_path, port = start(exe)
    base = f"http://127.0.0.1:{port}"
    work = tempfile.mkdtemp(prefix="lossd-readme-")
    try:
        for name, (line, lang, code) in examples.items():
            if URL not in code:
                failures.append(f"README.md:{line}: example={name} does not "
                                f"use {URL}")
                continue
            path = os.path.join(work, name + SUFFIX[lang])
            with open(path, "w", encoding="utf-8") as f:
                f.write(code.replace(URL, base))
            try:
                r = subprocess.run(RUNNERS[lang](path), capture_output=True,
                                   stdin=subprocess.DEVNULL, timeout=60,
                                   cwd=work)
            except subprocess.TimeoutExpired:
                failures.append(f"example={name} ({lang}): no exit in 60 s")
                continue
            out = r.stdout.decode(errors="replace")
            if r.returncode != 0:
                failures.append(f"example={name} ({lang}): exit "
                                f"{r.returncode}\n{out}"
                                f"{r.stderr.decode(errors='replace')}")
                continue
            try:
                got = json.loads(out)
            except ValueError as e:
                failures.append(f"example={name} ({lang}): printed no single "
                                f"JSON document ({e}):\n{out}")
                continue
            if name not in outputs:
                continue
            diff = differences(got, outputs[name][1])
            if diff:
                failures.append(f"example={name} ({lang}) differs from "
                                f"README.md:{outputs[name][0]}:\n  " +
                                "\n  ".join(diff[:20]) + f"\n  printed: {out}")
            else:
                print(f"ok - example={name} ({lang}) prints its documented "
                      f"output")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        proc.send_signal(signal.SIGTERM)
        try:
            if proc.wait(timeout=20) != 0:
                failures.append(f"lossd exited {proc.returncode}")
        except subprocess.TimeoutExpired:
            proc.kill()
            failures.append("lossd did not exit after SIGTERM")
        with open(err_path, errors="replace") as f:
            err = f.read()
        os.unlink(err_path)
        for report in ["ERROR: AddressSanitizer", "runtime error:",
                       "LeakSanitizer"]:
            if report in err:
                failures.append(f"sanitizer report in lossd's stderr:\n{err}")
                break
    for f in failures:
        print(f"not ok - {f}")
    print(f"{len(examples)} examples; " +
          ("PASS" if not failures else f"FAIL: {len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
