#!/usr/bin/env bash
# Installs the Debian packages lossd needs, and only those that are missing.
#
#   scripts/deps.sh [build] [test] [lint] [fuzz] [bench]   (default: build)
#
# Uses sudo only when not root; skips apt entirely when every package is
# present; otherwise runs `apt-get update` once and a non-interactive install
# that waits for the dpkg lock instead of failing on it.
set -euo pipefail

build_pkgs=(gcc libc6-dev meson ninja-build pkg-config libmicrohttpd-dev
            libuv1-dev libjansson-dev libopenblas-dev zlib1g-dev)
# prometheus: promtool for the /metrics test; curl: the README's sh examples
# and the TLS test, whose certificate openssl makes;
# node and npm for the OpenAPI validator and the README's js examples, from
# Debian only when no node is installed (a NodeSource nodejs bundles npm, and
# Debian's npm package would conflict with it).
# python3-numpy for the README's binary Open Inference Protocol example.
test_pkgs=(check libsubunit-dev libcurl4-openssl-dev python3 python3-numpy
           prometheus curl openssl)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    test_pkgs+=(nodejs npm)
fi
lint_pkgs=(clang-format git)
# tests/fuzz: clang with libFuzzer's runtime (docs/testing.md).
fuzz_pkgs=(clang libclang-rt-14-dev)
# deploy/tests, the deploy and image suites (root): kubectl with kustomize
# v5 comes with the machine image, not from Debian; npm from Debian only
# where node does not bring its own.
deploy_pkgs=(podman runc debootstrap yamllint prometheus curl python3 nodejs)
# bench/http_bench.sh: load generator, the nginx ceiling, the FastAPI +
# PyTorch peer (run with /usr/bin/python3). bench/bench_json.c: simdjson
# On-Demand (C++) to compare the decoder with.
bench_pkgs=(wrk nginx-light python3-fastapi python3-uvicorn python3-torch
            g++ libsimdjson-dev)

want=()
[ $# -eq 0 ] && set -- build
for group in "$@"; do
    case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    lint) want+=("${lint_pkgs[@]}") ;;
    fuzz) want+=("${fuzz_pkgs[@]}") ;;
    deploy)
        want+=("${deploy_pkgs[@]}")
        command -v npm >/dev/null || want+=(npm)
        ;;
    bench) want+=("${bench_pkgs[@]}") ;;
    *) echo "deps.sh: unknown group '$group' (build, test, lint, fuzz, bench)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
        grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
        echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
echo "deps.sh: installing ${missing[*]}" >&2
apt_opts=(-q -o DPkg::Lock::Timeout=600)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
    install -y --no-install-recommends "${missing[@]}"
