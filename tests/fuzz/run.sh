#!/usr/bin/env bash
# Runs every fuzz target of tests/fuzz for a bounded time (docs/testing.md).
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]     (defaults: 60, build-fuzz)
#
# Configures BUILD_DIR with clang, libFuzzer and the sanitizers when it
# does not exist, builds the targets, and runs each for SECONDS, starting
# from its committed corpus. New inputs go to BUILD_DIR/fuzz-corpus, never
# into the repository; a crash or a broken invariant stops the target,
# leaves its input in BUILD_DIR/fuzz-artifacts and makes the script fail.
# Each target's output is kept in BUILD_DIR/fuzz-logs; the report of a
# failed target is printed again at the end, where a CI log's tail shows
# it.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
build=${2:-build-fuzz}
targets=(decode handlers inflate)

if [ ! -d "$build" ]; then
    CC=clang meson setup "$build" -Dfuzzing=true \
        -Db_sanitize=address,undefined -Db_lundef=false
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz_}"

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=()
for t in "${targets[@]}"; do
    work="$build/fuzz-corpus/$t"
    art="$build/fuzz-artifacts/$t/"
    log="$build/fuzz-logs/$t.log"
    mkdir -p "$work" "$art" "$build/fuzz-logs"
    echo "fuzz_$t: ${secs}s" >&2
    if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -dict=tests/fuzz/json.dict -artifact_prefix="$art" \
        "$work" "tests/fuzz/corpus/$t" 2>&1 | tee "$log" >&2; then
        failed+=("$t")
    fi
done
for t in "${failed[@]}"; do
    # from the first report line (sanitizer, libFuzzer or FUZZ_CHECK) on
    echo "run.sh: fuzz_$t failed; its report:" >&2
    grep -n -m1 -A80 -E '^==[0-9]+==|ERROR: libFuzzer|invariant broken|runtime error' \
        "$build/fuzz-logs/$t.log" >&2 || tail -n 40 "$build/fuzz-logs/$t.log" >&2
    ls -l "$build/fuzz-artifacts/$t" >&2
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "run.sh: crashes in: ${failed[*]}; inputs in $build/fuzz-artifacts" \
        "(docs/testing.md says how to add one to the corpus)" >&2
    exit 1
fi
