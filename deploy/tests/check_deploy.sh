#!/usr/bin/env bash
# The `deploy` suite: checks deploy/ offline, with no cluster and no registry.
#
#   deploy/tests/check_deploy.sh
#
#  - yamllint over deploy/;
#  - every kustomization under deploy/k8s rendered with `kubectl kustomize`,
#    every rendered object validated (schemas, unknown fields, lossd's
#    policy: deploy/tests/validate.mjs) with the npm packages pinned in
#    deploy/tests/package-lock.json, installed by `npm ci`; the policy
#    includes that no NetworkPolicy ingress rule of the base or an overlay
#    admits every namespace (no "from", or a namespaceSelector {});
#  - every broken kustomization under deploy/tests/testdata/broken must fail
#    with the problem its "# expect:" line names;
#  - promtool check rules and promtool test rules;
#  - every metric the dashboard and the rules query is one that a running
#    `lossd serve` exports (deploy/tests/metrics.mjs on a real scrape), and
#    a dashboard broken on purpose is refused.
#
# Needs kubectl (with kustomize v5), node and npm, yamllint, promtool, curl,
# and Meson with lossd's build dependencies (it builds lossd in
# build-deploy/ unless LOSSD_BIN names a binary). Without them the suite is
# skipped with the reason, except with CI=true, where that is a failure.
# Ends with "deploy: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
tests=deploy/tests

missing=()
for tool in kubectl node npm yamllint promtool curl meson ninja; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "deploy: FAILED: missing ${missing[*]} (scripts/deps.sh build deploy installs all but kubectl)" >&2
        exit 1
    fi
    echo "deploy: skipped: missing ${missing[*]} (scripts/deps.sh build deploy installs all but kubectl)"
    exit 0
fi

work=$(mktemp -d)
lossd_pid=
cleanup() {
    if [ -n "$lossd_pid" ]; then
        kill "$lossd_pid" 2>/dev/null || true
        wait "$lossd_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
# step NAME COMMAND...: runs COMMAND, its output kept in a log shown on
# failure. (Inside a step, set -e does not apply: functions return on
# failure themselves.)
step() {
    local name=$1
    shift
    local log="$work/step.log"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $name"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        sed 's/^/      /' "$log"
    fi
}

# npm ci only when the installed tree is not the locked one.
npm_install() {
    if [ -f $tests/node_modules/.package-lock.json ] &&
        [ $tests/node_modules/.package-lock.json -nt $tests/package-lock.json ]; then
        echo "node_modules is up to date"
        return 0
    fi
    npm ci --prefix $tests --ignore-scripts --no-audit --no-fund \
        --loglevel=error
}
step "npm ci (deploy/tests/package-lock.json)" npm_install

step "yamllint deploy/" yamllint --strict -c deploy/.yamllint.yml deploy

# Renders and validates every kustomization (components are rendered by the
# overlays that include them).
render_all() {
    local n=0 k dir name image
    while IFS= read -r k; do
        dir=$(dirname "$k")
        grep -q '^kind: Component' "$k" && continue
        name=$(echo "${dir#deploy/k8s/}" | tr / -)
        kubectl kustomize "$dir" >"$work/render-$name.yaml" || return 1
        echo "rendered $dir: $(grep -c '^kind:' "$work/render-$name.yaml") objects"
        # The image a kustomization sets must be the one rendered (an
        # overlay's images: entry must name the base's final image).
        image=$(sed -n 's/^ *newName: *//p' "$k" | tail -n 1):$(sed -n 's/^ *newTag: *//p' "$k" | tail -n 1)
        if [ "$image" != ":" ] && ! grep -q "image: $image\$" "$work/render-$name.yaml"; then
            echo "$dir: sets image $image, but renders $(grep 'image:' "$work/render-$name.yaml")"
            return 1
        fi
        n=$((n + 1))
    done < <(find deploy/k8s -name kustomization.yaml | sort)
    [ "$n" -ge 3 ] || { echo "only $n kustomizations rendered"; return 1; }
}
step "kubectl kustomize every kustomization" render_all

step "validate every rendered object" \
    node $tests/validate.mjs --rules deploy/observability/lossd.rules.yml \
    "$work"/render-*.yaml

# Each broken case must be refused, for the reason its "# expect:" names.
broken_cases() {
    local ok=0 bad=0 k dir expect out
    for k in $tests/testdata/broken/*/kustomization.yaml; do
        dir=$(dirname "$k")
        expect=$(sed -n 's/^# expect: //p' "$k")
        if ! kubectl kustomize "$dir" >"$work/broken.yaml" 2>&1; then
            echo "$dir: does not render"
            cat "$work/broken.yaml"
            bad=$((bad + 1))
            continue
        fi
        if out=$(node $tests/validate.mjs "$work/broken.yaml"); then
            echo "$dir: accepted, but must fail with: $expect"
            bad=$((bad + 1))
        elif ! grep -qF -- "$expect" <<<"$out"; then
            echo "$dir: refused, but not with: $expect"
            echo "$out"
            bad=$((bad + 1))
        else
            echo "$dir: refused: $expect"
            ok=$((ok + 1))
        fi
    done
    echo "$ok broken cases refused, $bad not"
    [ "$bad" -eq 0 ] && [ "$ok" -ge 1 ]
}
step "broken manifests are refused" broken_cases

step "promtool check rules" promtool check rules deploy/observability/lossd.rules.yml
step "promtool test rules" \
    sh -c 'cd deploy/observability && promtool test rules lossd.rules.test.yml'
step "dashboard is JSON" \
    node -e 'JSON.parse(require("fs").readFileSync(process.argv[1]))' \
    deploy/observability/grafana-dashboard.json

# A scrape of a real `lossd serve`, after one API request and a probe.
build_lossd() {
    if [ -n "${LOSSD_BIN:-}" ]; then
        echo "using LOSSD_BIN=$LOSSD_BIN"
        return 0
    fi
    scripts/deps.sh build || return 1
    if [ -d build-deploy/meson-private ]; then
        meson setup --reconfigure build-deploy -Dtests=disabled || return 1
    else
        meson setup build-deploy -Dtests=disabled || return 1
    fi
    meson compile -C build-deploy server/lossd
}
scrape() {
    local bin=${LOSSD_BIN:-build-deploy/server/lossd} port="" i
    "$bin" serve --host 127.0.0.1 --port 0 --log-level warn \
        >"$work/lossd.out" 2>"$work/lossd.err" &
    lossd_pid=$!
    for i in $(seq 100); do
        port=$(sed -n 's/.*"port": *\([0-9][0-9]*\).*/\1/p' "$work/lossd.out" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$lossd_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "lossd serve did not start"
        cat "$work/lossd.out" "$work/lossd.err"
        return 1
    fi
    local url=http://127.0.0.1:$port
    curl -sf -H 'Content-Type: application/json' \
        --data-binary @examples/cross_entropy.json \
        "$url/v1/cross_entropy" >/dev/null || return 1
    curl -sf "$url/healthz" >/dev/null || return 1
    curl -sf "$url/metrics" >"$work/metrics.txt" || return 1
    kill -TERM "$lossd_pid"
    wait "$lossd_pid" || { echo "lossd exited $?"; return 1; }
    lossd_pid=
    echo "scraped $(grep -c '^# TYPE' "$work/metrics.txt") metrics from lossd on port $port"
}
step "build lossd (build-deploy/)" build_lossd
step "scrape a running lossd serve" scrape
step "promtool check metrics on the scrape" \
    sh -c "promtool check metrics <'$work/metrics.txt'"
step "dashboard and rules query only lossd's metrics" \
    node $tests/metrics.mjs "$work/metrics.txt" \
    deploy/observability/grafana-dashboard.json \
    deploy/observability/lossd.rules.yml
# The same check must refuse a dashboard with one mistake of each kind.
broken_dashboard() {
    local out
    if out=$(node $tests/metrics.mjs "$work/metrics.txt" \
        $tests/testdata/metrics/broken-dashboard.json \
        deploy/observability/lossd.rules.yml); then
        echo "accepted the broken dashboard"
        return 1
    fi
    echo "$out"
    grep -q '; 5 problem(s)$' <<<"$out"
}
step "a broken dashboard is refused (5 problems)" broken_dashboard

echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
