#!/usr/bin/env bash
# The `image` suite: builds deploy/Dockerfile for real with podman, runs the
# image as Kubernetes would (non-root, read-only root filesystem, no
# capabilities), talks to it, stops it and checks that it drained.
#
#   deploy/tests/check_image.sh
#
# No registry is reachable here, so the build stage's base is made locally:
# `debootstrap --variant=minbase bookworm` with the build dependencies (the
# Dockerfile's BUILD_PKGS), kept as a tarball in $LOSSD_IMAGE_CACHE
# (default /var/cache/lossd) and imported with `podman import`; both are
# reused while the package list is the same. Everything else the suite
# builds or starts is removed at the end.
#
# Needs root, podman, runc, debootstrap, curl and python3
# (scripts/deps.sh deploy); without them the suite is skipped with the
# reason, except with CI=true, where that is a failure. Prints the base,
# build and run times separately and ends with "image: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for tool in podman runc debootstrap curl python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ "$(id -u)" -eq 0 ] || missing+=("root")
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "image: FAILED: missing ${missing[*]} (scripts/deps.sh deploy, as root)" >&2
        exit 1
    fi
    echo "image: skipped: missing ${missing[*]} (scripts/deps.sh deploy, as root)"
    exit 0
fi

export CONTAINERS_CONF=$PWD/deploy/tests/containers.conf
cache=${LOSSD_IMAGE_CACHE:-/var/cache/lossd}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
run_id=$$
image=localhost/lossd:check-$run_id
container=lossd-check-$run_id
work=$(mktemp -d)

cleanup() {
    podman rm -f -i "$container" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    echo "ok    $*"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL  $*"
}
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

# ---- base: debootstrap once, then reuse -------------------------------

pkgs=$(sed -n 's/^ARG BUILD_PKGS="\(.*\)"$/\1/p' deploy/Dockerfile)
[ -n "$pkgs" ] || { echo "image: no BUILD_PKGS in deploy/Dockerfile" >&2; exit 1; }
key=$(printf 'bookworm minbase %s\n' "$pkgs" | sha256sum | cut -c1-12)
base=localhost/lossd-build-base:bookworm-$key
tarball=$cache/build-base-bookworm-$key.tar

t0=$(now)
if podman image exists "$base"; then
    how="reused image $base"
else
    mkdir -p "$cache"
    if [ ! -s "$tarball" ]; then
        rootfs=$cache/rootfs-$run_id
        rm -rf "$rootfs"
        echo "debootstrap bookworm with: $pkgs"
        if ! debootstrap --variant=minbase --include="${pkgs// /,}" \
            bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
            tail -n 30 "$work/debootstrap.log"
            rm -rf "$rootfs"
            echo "image: FAILED: debootstrap" >&2
            exit 1
        fi
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
        how="debootstrap, cached in $tarball"
    else
        how="imported from $tarball"
    fi
    if ! podman import --message "lossd build base: bookworm minbase + $pkgs" \
        "$tarball" "$base" >"$work/import.log" 2>&1; then
        cat "$work/import.log"
        echo "image: FAILED: podman import $tarball" >&2
        exit 1
    fi
fi
t1=$(now)
echo "image: base  $(secs "$t0" "$t1") s ($how)"
pass "build-stage base $base"

# ---- build ---------------------------------------------------------------

if podman build --layers=false --pull=never \
    --ignorefile deploy/Dockerfile.dockerignore -f deploy/Dockerfile \
    --build-arg BUILD_BASE="$base" -t "$image" . >"$work/build.log" 2>&1; then
    pass "podman build deploy/Dockerfile"
else
    fail "podman build deploy/Dockerfile"
    tail -n 40 "$work/build.log"
    echo "image: $passed passed, $failed failed"
    exit 1
fi
t2=$(now)
echo "image: build $(secs "$t1" "$t2") s"
grep -q 'build dependencies present: no network needed' "$work/build.log" &&
    pass "build stage installed nothing (offline)" ||
    fail "build stage installed packages: $(grep -m1 '^installing:' "$work/build.log")"
sed -n '/^image root:/,/^[^0-9]/p' "$work/build.log" | grep -v '^STEP\|^-->' | head -n 12

size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image size: $((size / 1000000)) MB ($size bytes)"
[ "$size" -lt 80000000 ] && pass "image under 80 MB" || fail "image is $size bytes"

cfg=$(podman image inspect --format \
    '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}' "$image")
case "$cfg" in
'65532:65532|["/usr/local/bin/lossd","serve"]|{"8080/tcp":{}}') pass "image config: $cfg" ;;
*) fail "image config: $cfg" ;;
esac
layers=$(podman image inspect --format '{{len .RootFS.Layers}}' "$image")
[ "$layers" -eq 1 ] && pass "one layer (FROM scratch)" || fail "$layers layers"

# ---- run -------------------------------------------------------------------

# A job that outlives the drain: nt_xent with N = 4096, D = 256 (about 4 s
# on this project's machines; SIGTERM comes 0.5 s in, the drain ends 1 s
# later).
python3 - "$work/slow.json" <<'PY'
import json, random, sys
rnd = random.Random(4)
rows = lambda: [[round(rnd.uniform(-1, 1), 3) for _ in range(256)] for _ in range(4096)]
json.dump({"query": rows(), "positive_key": rows(), "variant": "nt_xent", "grad": True},
          open(sys.argv[1], "w"))
PY

podman run -d --name "$container" --read-only --user 65532:65532 \
    --cap-drop=ALL --security-opt=no-new-privileges \
    -e LOSSD_DRAIN_SECONDS=1 -e LOSSD_EXIT_TIMEOUT=20 \
    -p 127.0.0.1::8080 "$image" >/dev/null
t3=$(now)
port=$(podman port "$container" 8080/tcp | sed 's/.*://')
url=http://127.0.0.1:$port

ready=""
for _ in $(seq 100); do
    ready=$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz" || true)
    [ "$ready" = 200 ] && break
    sleep 0.1
done
[ "$ready" = 200 ] && pass "GET /readyz 200" || fail "GET /readyz $ready"
live=$(curl -s -w ' %{http_code}' "$url/healthz" || true)
[ "$live" = '{"live":true} 200' ] && pass "GET /healthz $live" || fail "GET /healthz $live"

pid=$(podman inspect --format '{{.State.Pid}}' "$container")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[ "$uids" = "65532 65532 65532 65532" ] && pass "runs as uid 65532" || fail "uids $uids"
ro=$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$container")
[ "$ro" = true ] && pass "read-only root filesystem" || fail "ReadonlyRootfs $ro"

# cross_entropy of the README's example: PyTorch's value to 1e-12 relative.
ce() {
    curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @examples/cross_entropy.json "$url/v1/cross_entropy" || true
}
check_ce() {
    python3 -c '
import json, sys
body, code = sys.stdin.read().rsplit("\n", 1)
v = json.loads(body)["value"] if code == "200" else None
ok = v is not None and abs(v - 1.3933517202806072) <= 1e-12 * 1.4
print(f"{code} value {v}")
sys.exit(0 if ok else 1)'
}
if out=$(ce | check_ce); then pass "POST /v1/cross_entropy $out"; else fail "POST /v1/cross_entropy $out"; fi

# Stop it while a slow job runs: readiness 503 at once, requests still
# served during the drain, the job completes, exit 0.
curl -s -o "$work/slow.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$work/slow.json" "$url/v1/info_nce" >"$work/slow.code" 2>&1 &
slow_pid=$!
sleep 0.5
t_term=$(now)
podman kill --signal TERM "$container" >/dev/null
for _ in $(seq 10); do # the signal is handled asynchronously
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz" || true)
    [ "$code" = 503 ] && break
    sleep 0.05
done
[ "$code" = 503 ] && pass "GET /readyz 503 after SIGTERM" || fail "GET /readyz $code after SIGTERM"
if out=$(ce | check_ce); then pass "POST /v1/cross_entropy while draining: $out"; else fail "POST while draining: $out"; fi
wait "$slow_pid" || true
code=$(cat "$work/slow.code")
if [ "$code" = 200 ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))["value"]' "$work/slow.out"; then
    pass "in-flight info_nce (started before SIGTERM) answered 200"
else
    fail "in-flight info_nce answered $code"
fi
exit_code=$(podman wait "$container")
t_exit=$(now)
[ "$exit_code" = 0 ] && pass "exit code 0, $(secs "$t_term" "$t_exit") s after SIGTERM" ||
    fail "exit code $exit_code"
podman logs "$container" >"$work/lossd.log" 2>&1
closing=$(grep '"event":"closing"' "$work/lossd.log" || true)
inflight=$(sed -n 's/.*"msg":"not accepting; \([0-9]*\) requests in flight.*/\1/p' <<<"$closing")
if grep -q '"event":"draining"' "$work/lossd.log" && [ "${inflight:-0}" -ge 1 ] &&
    grep -q '"event":"stopped".*exit 0' "$work/lossd.log"; then
    pass "drained: stopped accepting with $inflight request(s) in flight, which completed"
else
    fail "log: no draining, no closing with the slow request in flight, or no stopped"
    tail -n 20 "$work/lossd.log"
fi
t4=$(now)
echo "image: run   $(secs "$t3" "$t4") s"

cleanup
trap - EXIT
podman image exists "$image" && fail "image $image left behind" || pass "removed the image and the container (kept $base)"

echo "image: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
