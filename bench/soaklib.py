"""What bench/soak.py and bench/faults.py share: a lossd started in its own
session and always stopped, and a minimal HTTP/1.1 client over a raw socket.

The client is raw rather than http.client because it has to tell apart
what http.client folds together: a connection refused, a connection closed
before the request was sent, and one closed after the request was sent with
no response or part of one (a request failed mid-flight). It sends
prebuilt bytes and reads one response: status line, headers, and a body
of Content-Length bytes (lossd never answers chunked).
"""

import json
import os
import select
import signal
import socket
import subprocess
import time


class Closed(Exception):
    """The peer closed or reset the connection. got: response bytes
    received before that (0: none at all)."""

    def __init__(self, what, got):
        super().__init__(f"{what} after {got} response bytes")
        self.what = what
        self.got = got


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body

    def closes(self):
        return self.headers.get("connection", "").lower() == "close"


class Conn:
    """One keep-alive connection to 127.0.0.1:port. Raises
    ConnectionRefusedError from the constructor when nothing listens."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, got):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise Closed("reset", got + len(self.buf)) from None
        except socket.timeout:
            raise Closed("timeout", got + len(self.buf)) from None
        if not chunk:
            raise Closed("eof", got + len(self.buf))
        self.buf += chunk

    def read(self, head=False):
        """Reads one final response (skipping 1xx). head: the request was
        HEAD, so no body follows whatever Content-Length says."""
        got = 0
        while True:
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    break
                self._fill(got)
            block = self.buf[:end].decode("latin-1").split("\r\n")
            self.buf = self.buf[end + 4:]
            got += end + 4
            status = int(block[0].split(" ", 2)[1])
            headers = {}
            for line in block[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                continue
            n = 0 if head or status in (204, 304) else \
                int(headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill(got)
            body, self.buf = self.buf[:n], self.buf[n:]
            return Response(status, headers, body)


def request_bytes(method, path, body=b"", headers=(), length=None):
    """A request as bytes: Host, the given headers, Content-Length when there
    is a body or length is given (a length without its body: Expect)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or length is not None:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def free_port():
    """A port free right now on 127.0.0.1 (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lossd:
    """lossd serve on 127.0.0.1, in its own session, stderr to log_path.
    start() waits for the JSON "listening" line and returns the port; the
    process group is SIGKILLed by kill() and at the latest by stop()."""

    def __init__(self, binary, args=(), log_path="/dev/null", env=None):
        self.binary = binary
        self.args = list(args)
        self.log_path = log_path
        self.env = env
        self.proc = None
        self.port = None

    def start(self, port=0, timeout=10.0):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--host", "127.0.0.1", "--port",
                 str(port)] + self.args,
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True, env=self.env)
        finally:
            log.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.kill()
            raise RuntimeError(f"lossd did not listen within {timeout} s "
                               f"(exit {self.proc.returncode}); see "
                               f"{self.log_path}")
        ev = json.loads(line)
        if ev.get("event") != "listening":
            raise RuntimeError(f"unexpected first line: {line!r}")
        self.port = ev["port"]
        return self.port

    @property
    def pid(self):
        return self.proc.pid

    def status(self, field):
        """A field of /proc/PID/status, e.g. VmRSS in kB (int) or Threads."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL to the whole session, reaped."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self, timeout=30.0):
        """SIGTERM, wait up to timeout, then SIGKILL. The exit code (negative:
        killed by that signal), or None if it was never started."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


def raise_on_sigterm():
    """SIGTERM and SIGHUP raise KeyboardInterrupt, so the scripts' finally
    blocks stop what they started on any of them."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
