#!/usr/bin/env bash
# Installs what is missing, builds lossd (release build) and runs it on the
# example request in examples/, printing the response.
#
#   scripts/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
if [ -d build-release/meson-private ]; then
    meson setup --reconfigure build-release -Dbuildtype=release -Dtests=disabled >/dev/null
else
    meson setup build-release -Dbuildtype=release -Dtests=disabled >/dev/null
fi
meson compile -C build-release lossd >/dev/null
echo "+ build-release/server/lossd eval cross_entropy examples/cross_entropy.json" >&2
exec build-release/server/lossd eval cross_entropy examples/cross_entropy.json
