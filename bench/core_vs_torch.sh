#!/bin/sh
# core_vs_torch.sh - lossd's core against PyTorch 1.13, same work, one run.
#
# Usage (from the repository root):
#   meson setup build-bench -Dbuildtype=release
#   ninja -C build-bench bench/bench_core
#   bench/core_vs_torch.sh [build-dir [rounds [ce_reps pairs_reps ntx_reps]]]
# Defaults: build-bench, 5 rounds, repetitions 10 2 1; 0 repetitions skip a
# case (e.g. `bench/core_vs_torch.sh build-bench 5 10 0 0`: ce alone).
#
# What it measures (float64, one thread on both sides, forward + backward,
# inputs made outside the timed region, one untimed warm-up per case):
#   ce     cross_entropy, (10000, 100) logits, class-index targets, mean
#   pairs  info_nce pairs, normalize, temperature 0.1, N = 4096, D = 128
#   ntx    info_nce nt_xent with mask_self, normalize, same shapes
# bench_core.c (lossd core, OpenBLAS pinned to one thread by
# loss_blas_init()) and torch_core.py (/usr/bin/python3, torch.set_num_threads
# (1)) run alternately, the first of each round swapping, for `rounds`
# rounds; each prints seconds per repetition. Reported: the median over the
# rounds for each side and torch_time / lossd_time (> 1: lossd is faster),
# the OpenBLAS core lossd used, the BLAS PyTorch used, and both loss values
# (they must agree to about 1e-15 relative: a check that the work is the same).
# Other load on the machine shows up as spread between rounds: look at the
# per-round lines before trusting a ratio.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build-bench}
rounds=${2:-5}
reps="${3:-10} ${4:-2} ${5:-1}"
bench="$build/bench/bench_core"
py=/usr/bin/python3

if [ ! -x "$bench" ]; then
    echo "core_vs_torch.sh: $bench not built (see the usage above)" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

echo "== environment"
"$bench" --info
"$py" "$here/torch_core.py" --info
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) online, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rounds: $rounds, repetitions (ce pairs ntx): $reps"

echo "== rounds (seconds per repetition)"
r=1
while [ "$r" -le "$rounds" ]; do
    if [ $((r % 2)) -eq 1 ]; then
        order="lossd torch"
    else
        order="torch lossd"
    fi
    for side in $order; do
        if [ "$side" = lossd ]; then
            # shellcheck disable=SC2086
            "$bench" $reps >"$out/run"
        else
            # shellcheck disable=SC2086
            "$py" "$here/torch_core.py" $reps >"$out/run"
        fi
        while read -r name secs value; do
            echo "$side $name $secs $value" >>"$out/all"
            echo "round $r $side $name $secs"
        done <"$out/run"
    done
    r=$((r + 1))
done

echo "== medians over $rounds rounds"
"$py" - "$out/all" <<'PY'
import statistics, sys
t, v = {}, {}
for line in open(sys.argv[1]):
    side, name, secs, value = line.split()
    t.setdefault((side, name), []).append(float(secs))
    v[(side, name)] = float(value)
print("%-6s %12s %12s %8s   %s" % ("case", "lossd s", "torch s", "ratio", "loss lossd / torch"))
for name in ("ce", "pairs", "ntx"):
    if ("lossd", name) not in t:
        continue
    a = statistics.median(t[("lossd", name)])
    b = statistics.median(t[("torch", name)])
    print("%-6s %12.6f %12.6f %7.2fx   %.17g / %.17g" % (name, a, b, b / a, v[("lossd", name)], v[("torch", name)]))
PY
