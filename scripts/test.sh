#!/usr/bin/env bash
# The whole test suite, as the README's quick start runs it:
# installs what is missing, builds, runs every suite in a normal build and
# again in a sanitizer build (AddressSanitizer + UndefinedBehaviorSanitizer,
# stopping at the first report).
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the normal build only
#
# With CI=true, warnings are errors (-Dwerror=true).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/deps.sh build test

# The OpenAPI conformance test's validator, pinned in package-lock.json:
# installed when node_modules is missing or older than the lock file.
oas=tests/server/openapi
if command -v npm >/dev/null; then
    if [ ! -f $oas/node_modules/.package-lock.json ] ||
        [ $oas/package-lock.json -nt $oas/node_modules/.package-lock.json ]; then
        (cd $oas && npm ci --no-audit --no-fund --loglevel=error)
    fi
else
    echo "test.sh: no npm: the OpenAPI conformance test will skip" >&2
fi

werror=false
[ "${CI:-}" = "true" ] && werror=true

setup() { # dir, options...
    local dir=$1
    shift
    if [ -d "$dir/meson-private" ]; then
        meson setup --reconfigure "$dir" -Dwerror=$werror "$@" >/dev/null
    else
        meson setup "$dir" -Dwerror=$werror "$@" >/dev/null
    fi
}

# Prints "<name>: N passed, N failed, N skipped" from Meson's test log
# (testlog-<setup>.json when run with --setup).
summary() { # log, name
    python3 - "$1" "$2" <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    key = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
    counts[key] += 1
print(f"{sys.argv[2]}: {counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
}

status=0
setup build
meson compile -C build
meson test -C build --print-errorlogs || status=1
summary build/meson-logs/testlog.json tests

if [ $quick -eq 0 ]; then
    setup build-sanitize -Db_sanitize=address,undefined \
        -Dc_args=-fno-sanitize-recover=all \
        -Dc_link_args=-fno-sanitize-recover=all
    meson compile -C build-sanitize
    meson test -C build-sanitize --setup sanitize --print-errorlogs || status=1
    summary build-sanitize/meson-logs/testlog-sanitize.json sanitizer-tests
fi
exit $status
