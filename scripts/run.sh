#!/usr/bin/env bash
# Installs what is missing, builds lossd (release) and starts the service in
# the foreground on port 8080 (LOSSD_PORT and the other LOSSD_* variables of
# `lossd serve --help` apply). Ctrl-C drains and stops it.
#
#   scripts/run.sh [lossd serve options...]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
opts=(-Dbuildtype=release -Dtests=disabled)
if [ -d build-release/meson-private ]; then
    meson setup --reconfigure build-release "${opts[@]}" >/dev/null
else
    meson setup build-release "${opts[@]}" >/dev/null
fi
meson compile -C build-release server/lossd >/dev/null
exec build-release/server/lossd serve "$@"
