#!/usr/bin/env python3
"""Runs check_fixtures.py against a lossd of its own.

    run_fixtures.py LOSSD_EXE

Starts `LOSSD_EXE serve` on 127.0.0.1 with port 0 (it prints its port as
its first line), runs check_fixtures.py (TAP on standard output) against
it, stops it with SIGTERM and exits with check_fixtures.py's status, or 1
when the server did not stop cleanly.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    server = subprocess.Popen(
        [argv[1], "serve", "--host", "127.0.0.1", "--port", "0",
         "--log-level", "error", "--drain-seconds", "0"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line:
            print("Bail out! lossd did not start")
            return 1
        port = json.loads(line)["port"]
        rc = subprocess.call([sys.executable,
                              os.path.join(HERE, "check_fixtures.py"),
                              f"http://127.0.0.1:{port}"])
    finally:
        server.terminate()
        code = server.wait(timeout=60)
    return rc if rc != 0 else (0 if code == 0 else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
