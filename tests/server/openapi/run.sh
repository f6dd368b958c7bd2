#!/usr/bin/env bash
# The OpenAPI conformance test (conformance.mjs) with its tools checked first.
# Without node or the pinned packages it skips (exit 77, Meson's SKIP) with
# the reason, except with CI=true, where a missing tool is a failure.
#
#   tests/server/openapi/run.sh --lossd EXE [--lossd-test EXE] [--suite EXE]...
set -euo pipefail
here=$(cd "${0%/*}" && pwd)

missing() {
    if [ "${CI:-}" = "true" ]; then
        echo "FAIL: $1 (CI=true: a missing tool is a failure)" >&2
        exit 1
    fi
    echo "SKIP: $1" >&2
    exit 77
}

command -v node >/dev/null ||
    missing "node not found (Debian: apt-get install nodejs npm, or scripts/deps.sh test)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || missing "node $major is too old (18 or later)"
[ -f "$here/node_modules/@apidevtools/swagger-parser/package.json" ] ||
    missing "tests/server/openapi/node_modules is missing: run 'npm ci' there (scripts/test.sh does)"
if [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    missing "tests/server/openapi/node_modules is older than package-lock.json: run 'npm ci' there (scripts/test.sh does)"
fi
exec node "$here/conformance.mjs" "$@"
