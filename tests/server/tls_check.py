#!/usr/bin/env python3
"""`lossd serve --tls-cert --tls-key` end to end, with curl and Python's ssl.

Makes a self-signed certificate for 127.0.0.1 with `openssl` (subjectAltName
IP:127.0.0.1), starts its own `lossd serve --host 127.0.0.1 --port 0` with it
and a token file, and checks:
  - curl --cacert with TLS 1.2 only and with TLS 1.3 gets /healthz (200), and
    the version it reports is the one asked;
  - a client limited to TLS 1.0-1.1 (curl --tls-max 1.1, and Python's ssl
    with maximum_version TLSv1_1 at security level 0) is refused;
  - plain HTTP on the port gets no HTTP answer;
  - Python's ssl client verifies the certificate, negotiates TLS 1.3 (1.2
    when capped), and POSTs a loss with the bearer token (200) and without
    it (401), and a body of a few MB, plain and gzipped, every job on the
    worker pool (a suspended connection resumed over TLS);
  - a missing, unreadable or non-PEM certificate or key, a lone --tls-cert,
    and a key that does not go with its certificate exit 2 with one line
    saying what is wrong;
  - SIGTERM still drains and exits 0, with no sanitizer report.

  tls_check.py LOSSD_EXE       (or LOSSD_EXE in the environment)

Without openssl or curl it skips (exit 77) with the reason; with CI=true a
missing tool is a failure.
"""
import gzip
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import warnings

failures = []
MSE = b'{"input": [1, 2], "target": [1, 4]}'


def check(ok, msg):
    print(f"{'ok' if ok else 'not ok'} - {msg}")
    if not ok:
        failures.append(msg)


def missing(reason):
    if os.environ.get("CI") == "true":
        print(f"FAIL: {reason} (CI=true: a missing tool is a failure)")
        sys.exit(1)
    print(f"SKIP: {reason}")
    sys.exit(77)


def make_cert(d, name, cn="127.0.0.1"):
    """A self-signed EC certificate and key for 127.0.0.1 in d."""
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
         cert, "-days", "2", "-subj", f"/CN={cn}", "-addext",
         "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def run_lossd(exe, args, env=None):
    """(exit status, stderr) of a lossd that must not start."""
    p = subprocess.run([exe, "serve", "--host", "127.0.0.1", "--port", "0",
                        *args], capture_output=True, text=True, timeout=60,
                       env=env)
    return p.returncode, p.stderr


def start(exe, args, errpath):
    err = open(errpath, "w")
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", "0",
         "--drain-seconds", "0", *args],
        stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    err.close()
    line = proc.stdout.readline()
    try:
        return proc, json.loads(line)["port"]
    except (ValueError, KeyError):
        proc.kill()
        sys.exit(f"lossd did not start: first line {line!r}; "
                 f"stderr {open(errpath).read()!r}")


def curl(port, cacert, *args):
    """(exit code, status, verbose stderr) of curl on /healthz."""
    p = subprocess.run(
        ["curl", "-sS", "-v", "-o", "/dev/null", "-w", "%{http_code}",
         "--max-time", "30", "--cacert", cacert, *args,
         f"https://127.0.0.1:{port}/healthz"],
        capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def https(port, ctx, method, path, body=None, headers=None):
    """(status, body, TLS version) with Python's ssl."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                    timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), c.sock.version()
    finally:
        c.close()


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LOSSD_EXE")
    if not exe:
        sys.exit("usage: tls_check.py LOSSD_EXE")
    for tool in ("openssl", "curl"):
        if not shutil.which(tool):
            missing(f"{tool} not found (scripts/deps.sh test installs it)")
    d = tempfile.mkdtemp(prefix="lossd-tls-")
    cert, key = make_cert(d, "server")
    tokens = os.path.join(d, "tokens")
    with open(tokens, "w") as f:
        f.write("# test\ns3cret-token\n")
    errpath = os.path.join(d, "stderr")
    # every POST on the worker pool: a suspended connection resumes over TLS
    proc, port = start(exe, ["--tls-cert", cert, "--tls-key", key,
                             "--auth-token-file", tokens,
                             "--inline-max-cost", "0"], errpath)
    try:
        # curl: each version alone works, older ones are refused
        for flags, want in ((["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"),
                            (["--tlsv1.3"], "TLSv1.3")):
            rc, status, verbose = curl(port, cert, *flags)
            check(rc == 0 and status == "200",
                  f"curl {' '.join(flags)}: exit {rc}, status {status}")
            check(f"SSL connection using {want}" in verbose,
                  f"curl {' '.join(flags)} negotiated {want}")
        rc, status, _ = curl(port, cert, "--tlsv1", "--tls-max", "1.1",
                             "--ciphers", "DEFAULT:@SECLEVEL=0")
        check(rc != 0 and status in ("", "000"),
              f"curl --tls-max 1.1 refused (exit {rc})")
        p = subprocess.run(["curl", "-sS", "--max-time", "30",
                            f"http://127.0.0.1:{port}/healthz"],
                           capture_output=True, text=True)
        check(p.returncode != 0 and '"live"' not in p.stdout,
              f"plain HTTP gets no answer (curl exit {p.returncode})")

        # Python's ssl: verified, TLS 1.3 by default, 1.2 when capped
        ctx = ssl.create_default_context(cafile=cert)
        auth = {"Content-Type": "application/json",
                "Authorization": "Bearer s3cret-token"}
        status, body, version = https(port, ctx, "POST", "/v1/mse", MSE, auth)
        check(status == 200 and json.loads(body)["value"] == 2.0,
              f"python ssl POST /v1/mse: {status} {body[:80]!r}")
        check(version == "TLSv1.3", f"python ssl negotiated {version}")
        # a body of many TLS records, also gzipped
        n = 200000
        big = json.dumps({"input": [0.5] * n, "target": [1.5] * n}).encode()
        status, body, _ = https(port, ctx, "POST", "/v1/l1", big, auth)
        check(status == 200 and json.loads(body)["value"] == 1.0,
              f"python ssl POST of {len(big)} bytes: {status} {body[:80]!r}")
        gz = dict(auth, **{"Content-Encoding": "gzip"})
        status, body, _ = https(port, ctx, "POST", "/v1/l1",
                                gzip.compress(big), gz)
        check(status == 200 and json.loads(body)["value"] == 1.0,
              f"python ssl POST gzipped: {status} {body[:80]!r}")
        status, _, _ = https(port, ctx, "POST", "/v1/mse", MSE,
                             {"Content-Type": "application/json"})
        check(status == 401, f"python ssl POST without a token: {status}")
        ctx12 = ssl.create_default_context(cafile=cert)
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        status, _, version = https(port, ctx12, "GET", "/readyz")
        check(status == 200 and version == "TLSv1.2",
              f"python ssl capped at 1.2: {status} {version}")
        old = ssl.create_default_context(cafile=cert)
        with warnings.catch_warnings():  # deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        try:
            https(port, old, "GET", "/healthz")
            check(False, "python ssl TLS 1.1 was accepted")
        except (ssl.SSLError, ConnectionError, OSError) as e:
            check(True, f"python ssl TLS 1.1 refused ({type(e).__name__})")
        # another certificate: the client does not trust it
        other, _ = make_cert(d, "other")
        try:
            https(port, ssl.create_default_context(cafile=other), "GET",
                  "/healthz")
            check(False, "a client trusting another certificate connected")
        except ssl.SSLCertVerificationError:
            check(True, "a client trusting another certificate refuses")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -1
    log = open(errpath).read()
    check(code == 0, f"SIGTERM: exit {code}")
    check("HTTPS, TLS 1.2 and 1.3" in log, "the listening event says HTTPS")
    check("s3cret-token" not in log, "no token in the log")
    for report in ("ERROR: AddressSanitizer", "runtime error:",
                   "LeakSanitizer"):
        check(report not in log, f"no '{report}' in stderr")

    # what cannot start: exit 2 and one line saying why
    junk = os.path.join(d, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    fake = os.path.join(d, "fake.pem")
    with open(fake, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n"
                "-----END CERTIFICATE-----\n")
    _, other_key = make_cert(d, "third")
    nokey = os.path.join(d, "absent.key")
    cases = [
        (["--tls-cert", os.path.join(d, "absent.crt"), "--tls-key", key],
         "--tls-cert: cannot open"),
        (["--tls-cert", cert, "--tls-key", nokey], "--tls-key: cannot open"),
        (["--tls-cert", d, "--tls-key", key], "--tls-cert: cannot read"),
        (["--tls-cert", junk, "--tls-key", key], "not a PEM file"),
        (["--tls-cert", cert], "--tls-cert and --tls-key: give both"),
        (["--tls-key", key], "--tls-cert and --tls-key: give both"),
        (["--tls-cert", fake, "--tls-key", key], "--tls-cert and --tls-key"),
        (["--tls-cert", cert, "--tls-key", other_key],
         "--tls-cert and --tls-key"),
    ]
    # GnuTLS 3.7.9 leaks the certificate it failed to parse (fake.pem): a
    # leak of the library's, on the way to exit 2, that LeakSanitizer in
    # the sanitizer build would otherwise report as lossd's
    supp = os.path.join(d, "lsan.supp")
    with open(supp, "w") as f:
        f.write("leak:libgnutls.so\n")
    env = dict(os.environ)
    env["LSAN_OPTIONS"] = ":".join(
        filter(None, [env.get("LSAN_OPTIONS"), f"suppressions={supp}"]))
    for args, why in cases:
        code, err = run_lossd(exe, args, env)
        check(code == 2 and why in err,
              f"{' '.join(os.path.basename(a) for a in args)}: exit {code}, "
              f"{err.strip()[-200:]!r}")
    shutil.rmtree(d, ignore_errors=True)
    print(f"1..{len(failures)} failures" if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
