#!/usr/bin/env bash
# http_bench.sh - lossd's HTTP throughput against nginx (the HTTP ceiling of
# this machine) and against the FastAPI + PyTorch service a user would write
# instead, with wrk, alternating servers in every round; optionally several
# lossd variants (builds, allocators) side by side in the same rounds.
#
# Usage (from the repository root; the script builds nothing):
#   meson setup build-bench -Dbuildtype=release -Dtests=disabled
#   ninja -C build-bench
#   bench/http_bench.sh build-bench/server/lossd [peer.py]
#   bench/http_bench.sh NAME=LOSSD[:PRELOAD] [NAME=LOSSD[:PRELOAD] ...]
#
# The first form runs one lossd, named "lossd". The second runs every
# variant given, in its order, each as a server of its own in the rotation
# exactly as the single lossd is: NAME ([A-Za-z0-9._-], not "nginx" or
# "peer", each once), LOSSD its binary, PRELOAD (optional, everything after
# the first ':' following LOSSD) the LD_PRELOAD it runs with, e.g.
#   bench/http_bench.sh base=old/lossd \
#       base-mimalloc=old/lossd:/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \
#       new=build-bench/server/lossd
# The first variant is the baseline: nginx answers with its bytes, the
# others are compared with it, HTTP_BENCH_PERF records it. Giving the same
# binary twice under two names measures the run's noise (an A/A pair).
# Every server adds DURATION seconds to each round.
#
# peer.py defaults to $HTTP_BENCH_PEER (the only way to give it with
# variants): a FastAPI + PyTorch service in one file, the one a user would
# write instead of lossd (POST /v1/mse taking lossd's body). When neither is
# given, or the file is absent, the peer is skipped with a message;
# HTTP_BENCH_PEER=none (or peer.py "none") skips it on purpose.
# Environment (defaults in brackets):
#   ROUNDS [5]      rounds; every round runs each server once, the first
#                   server rotating from round to round
#   CONNS [64]      wrk connections, the same for every server
#   DURATION [10]   seconds per wrk run
#   WRK_THREADS [1] wrk threads
#   WARMUP [2]      seconds of untimed wrk per server before round 1
#   SERVER_CPUS, CLIENT_CPUS   taskset CPU lists; by default the first CPU
#                   this script may run on for the servers and the second
#                   for wrk; with a single CPU nothing is pinned
#   HTTP_BENCH_PERF=DIR   after the rounds, `perf record -g` lossd (the first
#                   variant) during one more wrk run and write DIR/perf.data
#                   and DIR/report.txt
#   KEEP_TMP=1      keep the temporary directory (logs, nginx prefix)
#
# The request (bench/http_bench.lua): POST /v1/mse, Content-Type
# application/json, input and target 2x4, 101 bytes, keep-alive, sent by
# wrk as fast as the server answers on CONNS connections.
#
# The servers, all on SERVER_CPUS (one core on a 2-core machine):
#   lossd   `lossd serve --host 127.0.0.1 --port 0` with its defaults for that
#           CPU set (2 HTTP threads, 1 worker on one core), logging every
#           request as by default (JSON on stderr, here a file; lossd writes
#           it in 16 KiB blocks and every 100 ms); the same for each variant,
#           with its LD_PRELOAD if it has one (checked to be mapped).
#   nginx   bench/nginx.conf: one worker, keep-alive, one JSON access-log line
#           per request written the same way, POST /v1/mse answered with
#           lossd's own answer to this request (the first variant's), byte
#           for byte.
#   peer    uvicorn with the 2 worker processes its docstring asks for (both,
#           and the uvicorn parent, pinned to the same SERVER_CPUS as the
#           others) and --log-level warning, i.e. without an access log: that
#           only flatters the peer.
# Every answer is checked once before timing: lossd (each variant) 200 with
# the right value, nginx the same bytes, the peer 200 with the same value.
#
# Why 64 connections, 10 s, 1 wrk thread: on 2 cores the server gets one
# core and wrk the other; one wrk thread per core is wrk's own advice, and
# one thread of wrk sends a prepared request much faster than one core of
# any of these servers answers it (check the "server CPU" and "wrk CPU"
# columns: server near 1.0 means the server was the limit; wrk near 1.0
# with the server well below it means wrk was, which flatters the slower
# server in a ratio). 64 keep-alive connections keep
# the server's core busy (several requests waiting on every epoll_wait)
# without measuring mostly queueing: latency grows with connections, not
# throughput. 10 s holds about half a million requests for lossd and nginx
# and makes a 5-round run take under 3 minutes.
#
# Reported per round and as medians: requests/s, p50 and p99 latency (wrk's,
# in ms), the server's and wrk's CPU use (CPU-seconds of all their
# processes / wall seconds) and requests per server CPU-second (less
# sensitive to other load on the server's core than requests/s, though
# cache sharing still moves it), then the ratios lossd/nginx and
# lossd/peer of the medians, and the median of the per-round ratios
# (servers alternate within a round, so a slow period hits both sides of a
# per-round ratio), with their range over the rounds. Targets (issue 3):
# lossd >= 0.85x nginx and >= 40x the peer, and nginx/peer: no server beats
# nginx here, so nginx/peer bounds what lossd/peer can reach. With variants,
# every variant gets its /nginx and /peer rows, and every variant after the
# first a row against the first (NAME/BASE: no target; the verdict column
# counts the rounds where NAME answered more requests/s than BASE). Other
# processes on the machine show up as spread between rounds and as server
# CPU well below 1.0: the load average is printed per round.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
"$root/scripts/deps.sh" bench

usage() {
    sed -n '/^# Usage/,/^#$/p' "$0" | sed '$d; s/^# \{0,3\}//' >&2
    exit 2
}
[ $# -ge 1 ] || usage
# The lossd servers: vnames[k] runs vbins[k] with LD_PRELOAD vpreloads[k].
vnames=()
vbins=()
vpreloads=()
if [[ $1 =~ ^[A-Za-z0-9._-]+= ]]; then
    for a in "$@"; do
        [[ $a =~ ^([A-Za-z0-9._-]+)=([^:]+)(:(.*))?$ ]] || {
            echo "http_bench.sh: '$a' is not NAME=LOSSD[:PRELOAD] (see the usage)" >&2
            exit 2
        }
        v=${BASH_REMATCH[1]}
        case " nginx peer ${vnames[*]} " in
        *" $v "*)
            echo "http_bench.sh: variant name '$v' is taken (nginx, peer, or given twice)" >&2
            exit 2
            ;;
        esac
        vnames+=("$v")
        vbins+=("${BASH_REMATCH[2]}")
        vpreloads+=("${BASH_REMATCH[4]}")
    done
    peer=${HTTP_BENCH_PEER:-none}
else
    [ $# -le 2 ] || usage
    vnames=(lossd)
    vbins=("$1")
    vpreloads=("")
    peer=${2:-${HTTP_BENCH_PEER:-none}}
fi
rounds=${ROUNDS:-5}
conns=${CONNS:-64}
duration=${DURATION:-10}
wrk_threads=${WRK_THREADS:-1}
warmup=${WARMUP:-2}
py=/usr/bin/python3
lua=$here/http_bench.lua
body='{"input":[[0.5,-1.25,2.0,3.5],[1.0,0.0,-2.5,4.25]],"target":[[1.0,-1.0,2.5,3.0],[0.75,0.5,-2.0,4.0]]}'
export HTTP_BENCH_BODY=$body

for k in "${!vbins[@]}"; do
    b=${vbins[$k]}
    if [ ! -x "$b" ] || [ -d "$b" ]; then
        echo "http_bench.sh: $b is not an executable (see the usage)" >&2
        exit 2
    fi
    vbins[k]=$(cd "$(dirname "$b")" && pwd)/$(basename "$b")
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/http_bench.XXXXXX")
groups=() # process-group ids of everything started (each runs under setsid)

stop_group() { # pgid: TERM, then KILL after 10 s
    local g=$1 i
    kill -TERM -- "-$g" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 -- "-$g" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$g" 2>/dev/null || true
}
cleanup() {
    local g
    for g in "${groups[@]}"; do
        stop_group "$g"
    done
    groups=()
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "http_bench.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CPUs: servers on one, wrk on another, when there are two.
read -r -a cpus <<<"$("$py" -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if [ -n "${SERVER_CPUS:-}" ] || [ -n "${CLIENT_CPUS:-}" ]; then
    srv_pin=(taskset -c "${SERVER_CPUS:?set both SERVER_CPUS and CLIENT_CPUS}")
    cli_pin=(taskset -c "${CLIENT_CPUS:?set both SERVER_CPUS and CLIENT_CPUS}")
    pin_note="servers on CPUs $SERVER_CPUS, wrk on CPUs $CLIENT_CPUS"
elif [ "${#cpus[@]}" -ge 2 ]; then
    srv_pin=(taskset -c "${cpus[0]}")
    cli_pin=(taskset -c "${cpus[1]}")
    pin_note="servers on CPU ${cpus[0]}, wrk on CPU ${cpus[1]}"
else
    srv_pin=()
    cli_pin=()
    pin_note="one CPU: nothing pinned, wrk shares it with the server"
fi

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on port $1 (up to $2 s) while
# process $3 lives (the process, not its group: right after `cmd &` the
# child may not have run setsid yet, and its group does not exist).
wait_port() {
    local i
    for i in $(seq $(($2 * 10))); do
        kill -0 "$3" 2>/dev/null || return 1
        if "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# check NAME PORT MODE [EXPECTED_BODY_FILE]: one POST, printed; MODE value
# wants status 200, JSON and the MSE of the request; MODE bytes wants the
# body of EXPECTED_BODY_FILE exactly. Writes the body to $tmp/NAME.body.
check() {
    "$py" - "$@" "$tmp" "$body" <<'PY'
import json, socket, sys
name, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
expect_file = sys.argv[4] if len(sys.argv) == 7 else None
tmp, body = sys.argv[-2], sys.argv[-1].encode()
req = (b"POST /v1/mse HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % (port, len(body))) + body
s = socket.create_connection(("127.0.0.1", port), 30)
s.sendall(req)
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(f"{name}: connection closed before the headers")
    data += chunk
head, rest = data.split(b"\r\n\r\n", 1)
lines = head.decode("latin-1").split("\r\n")
status = int(lines[0].split()[1])
hdr = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
n = int(hdr.get("content-length", "-1"))
if n < 0:
    sys.exit(f"{name}: no Content-Length (headers: {hdr})")
while len(rest) < n:
    chunk = s.recv(65536)
    if not chunk:
        break
    rest += chunk
s.close()
open(f"{tmp}/{name}.body", "wb").write(rest)
print(f"  {name}: {lines[0]}, {len(head) + 4} header bytes, {len(rest)} body bytes, "
      f"Content-Type {hdr.get('content-type')}, keep-alive {hdr.get('connection', 'default (HTTP/1.1)')}")
print(f"    {rest.decode('utf-8', 'replace')}")
if status != 200:
    sys.exit(f"{name}: status {status}, want 200")
if not hdr.get("content-type", "").startswith("application/json"):
    sys.exit(f"{name}: Content-Type {hdr.get('content-type')}, want application/json")
if mode == "bytes":
    if rest != open(expect_file, "rb").read():
        sys.exit(f"{name}: body differs from {expect_file}")
else:
    req = json.loads(body)
    x = [v for row in req["input"] for v in row]
    y = [v for row in req["target"] for v in row]
    want = sum((a - b) ** 2 for a, b in zip(x, y)) / len(x)
    got = json.loads(rest)["value"]
    if not isinstance(got, float) or abs(got - want) > 1e-12 * abs(want):
        sys.exit(f"{name}: value {got!r}, want {want!r}")
PY
}

# CPU ticks (utime + stime) of every process in session $1.
cpu_ticks() {
    "$py" - "$1" <<'PY'
import os, sys
sid, total = int(sys.argv[1]), 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        st = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    f = st[st.rindex(")") + 2:].split()
    if int(f[3]) == sid:  # field 6 of stat: session
        total += int(f[11]) + int(f[12])  # utime, stime (all threads)
print(total)
PY
}
clk_tck=$(getconf CLK_TCK)

echo "== environment"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) online; $pin_note"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), uvicorn $("$py" -c 'import uvicorn; print(uvicorn.__version__)' 2>/dev/null || echo absent), torch $("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo absent)"
echo "wrk: $wrk_threads thread(s), $conns connections, ${duration} s per run, $rounds rounds, ${warmup} s warm-up per server"

echo "== servers"
names=()
ports=()
pgids=()

# Each lossd variant. --drain-seconds 0 only makes the final stop quick.
for k in "${!vnames[@]}"; do
    v=${vnames[$k]}
    pre=()
    [ -n "${vpreloads[$k]}" ] && pre=(env "LD_PRELOAD=${vpreloads[$k]}")
    setsid "${srv_pin[@]}" "${pre[@]}" "${vbins[$k]}" serve --host 127.0.0.1 --port 0 --drain-seconds 0 \
        >"$tmp/$v.out" 2>"$tmp/$v.log" &
    pid=$!
    groups+=("$pid")
    for _ in $(seq 100); do
        [ -s "$tmp/$v.out" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port=$("$py" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$tmp/$v.out") || {
        echo "http_bench.sh: $v did not start:" >&2
        cat "$tmp/$v.log" >&2
        exit 1
    }
    note=""
    if [ -n "${vpreloads[$k]}" ]; then
        # ld.so ignores a preload it cannot load, with only a message.
        IFS=': ' read -r -a libs <<<"${vpreloads[$k]}"
        for l in "${libs[@]}"; do
            [ -n "$l" ] || continue
            case $l in
            */*) want=$(readlink -f "$l") ;;
            *) want=/$l ;;
            esac
            grep -qF "$want" "/proc/$pid/maps" || {
                echo "http_bench.sh: $v: $l is not mapped in lossd (LD_PRELOAD=${vpreloads[$k]}):" >&2
                cat "$tmp/$v.log" >&2
                exit 1
            }
        done
        note=" with LD_PRELOAD=${vpreloads[$k]}"
    fi
    echo "$v ${vbins[$k]}$note, port $port: $(grep -m1 '"listening"' "$tmp/$v.log" | sed 's/.*"msg":"\([^"]*\)".*/\1/')"
    check "$v" "$port" value
    names+=("$v")
    ports+=("$port")
    pgids+=("$pid")
done
lossd_pid=${pgids[0]}

# nginx, answering with lossd's body.
nginx_prefix=$tmp/nginx
mkdir -p "$nginx_prefix"
nginx_port=$(free_port)
"$py" - "$here/nginx.conf" "$nginx_prefix/nginx.conf" "$nginx_prefix" "$nginx_port" "$tmp/${vnames[0]}.body" <<'PY'
import sys
src, dst, prefix, port, body_file = sys.argv[1:]
body = open(body_file, encoding="utf-8").read()
if any(c in body for c in "'\\$\n"):
    sys.exit("lossd's answer holds a character nginx.conf cannot quote: " + body)
conf = open(src).read().replace("@PREFIX@", prefix).replace("@PORT@", port).replace("@BODY@", body)
open(dst, "w").write(conf)
PY
setsid "${srv_pin[@]}" nginx -p "$nginx_prefix" -c "$nginx_prefix/nginx.conf" -e "$nginx_prefix/error.log" \
    >"$nginx_prefix/stdout" 2>&1 &
nginx_pid=$!
groups+=("$nginx_pid")
if ! wait_port "$nginx_port" 10 "$nginx_pid"; then
    echo "http_bench.sh: nginx did not start:" >&2
    cat "$nginx_prefix/stdout" "$nginx_prefix/error.log" >&2 2>/dev/null || true
    exit 1
fi
echo "nginx, port $nginx_port, prefix $nginx_prefix"
check nginx "$nginx_port" bytes "$tmp/${vnames[0]}.body"
names+=(nginx)
ports+=("$nginx_port")
pgids+=("$nginx_pid")

# The peer, if present.
if [ "$peer" = none ]; then
    echo "peer: skipped (none given: pass its path as the second argument or in HTTP_BENCH_PEER)"
elif [ -f "$peer" ]; then
    peer_port=$(free_port)
    peer_dir=$(cd "$(dirname "$peer")" && pwd)
    peer_mod=$(basename "$peer" .py)
    setsid "${srv_pin[@]}" "$py" -m uvicorn "$peer_mod:app" --app-dir "$peer_dir" \
        --host 127.0.0.1 --port "$peer_port" --workers 2 --log-level warning \
        >"$tmp/peer.log" 2>&1 &
    peer_pid=$!
    groups+=("$peer_pid")
    if ! wait_port "$peer_port" 120 "$peer_pid"; then
        echo "http_bench.sh: the peer did not start:" >&2
        cat "$tmp/peer.log" >&2
        exit 1
    fi
    # The port opens before the workers have imported torch: wait for an answer.
    for _ in $(seq 120); do
        check peer "$peer_port" value >/dev/null 2>&1 && break
        sleep 1
    done
    echo "peer $peer (uvicorn, 2 workers), port $peer_port"
    check peer "$peer_port" value
    names+=(peer)
    ports+=("$peer_port")
    pgids+=("$peer_pid")
else
    echo "peer: $peer not found, skipped (pass its path as the second argument or in HTTP_BENCH_PEER)"
fi

# run_wrk INDEX SECONDS OUT: wrk against server INDEX; appends the server's
# CPU seconds to the RESULT line.
run_wrk() {
    local i=$1 secs=$2 out=$3 t0 t1 wrk_cpu TIMEFORMAT='%3U %3S'
    t0=$(cpu_ticks "${pgids[$i]}")
    { time "${cli_pin[@]}" wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" --latency -s "$lua" \
        "http://127.0.0.1:${ports[$i]}/v1/mse" >"$out" 2>&1; } 2>"$out.time" || {
        echo "http_bench.sh: wrk failed against ${names[$i]}:" >&2
        cat "$out" >&2
        exit 1
    }
    t1=$(cpu_ticks "${pgids[$i]}")
    grep -q '^RESULT ' "$out" || {
        echo "http_bench.sh: no RESULT line from wrk against ${names[$i]}:" >&2
        cat "$out" >&2
        exit 1
    }
    wrk_cpu=$(awk '{ printf "%.3f", $1 + $2 }' "$out.time")
    sed -i "s/^RESULT .*/& $(awk -v t=$((t1 - t0)) -v h="$clk_tck" 'BEGIN { printf "%.3f", t / h }') $wrk_cpu/" "$out"
}

if [ "$warmup" -gt 0 ]; then
    for i in "${!names[@]}"; do
        run_wrk "$i" "$warmup" "$tmp/warmup"
    done
fi

echo "== rounds"
n=${#names[@]}
sw=6 # width of the server column: the longest name
for v in "${names[@]}"; do
    [ "${#v}" -le "$sw" ] || sw=${#v}
done
printf "%-5s %-${sw}s %10s %9s %9s %10s %11s %8s %6s  %s\n" round server "req/s" "p50 ms" "p99 ms" "server CPU" "req/CPU-s" "wrk CPU" errors "load"
: >"$tmp/results"
for r in $(seq "$rounds"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((r - 1 + k) % n))
        run_wrk "$i" "$duration" "$tmp/run"
        read -r _ reqs secs rps p50 p99 non2xx errs cpu wcpu <<<"$(grep '^RESULT ' "$tmp/run")"
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "$r ${names[$i]} $reqs $secs $rps $p50 $p99 $non2xx $errs $cpu $wcpu $load" >>"$tmp/results"
        awk -v r="$r" -v s="${names[$i]}" -v q="$reqs" -v d="$secs" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
            -v e=$((non2xx + errs)) -v c="$cpu" -v w="$wcpu" -v l="$load" \
            -v fmt="%-5s %-${sw}s %10.0f %9.3f %9.3f %10.2f %11.0f %8.2f %6d  %s\n" 'BEGIN {
                printf fmt,
                    r, s, rps, p50 / 1000, p99 / 1000, c / d, (c > 0 ? q / c : 0), w / d, e, l }'
    done
done

echo "== medians over $rounds rounds"
"$py" - "$tmp/results" "${vnames[@]}" <<'PY'
import statistics, sys
variants = sys.argv[2:]  # the lossd servers; the first is the baseline
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, name, reqs, secs, rps, p50, p99, non2xx, errs, cpu, wcpu, load in rows:
    by.setdefault(name, {})[int(r)] = dict(reqs=int(reqs), secs=float(secs), rps=float(rps),
        p50=float(p50) / 1000, p99=float(p99) / 1000, errors=int(non2xx) + int(errs),
        cpu=float(cpu) / float(secs), wrk_cpu=float(wcpu) / float(secs), per_cpu=int(reqs) / float(cpu) if float(cpu) > 0 else 0.0)
med = lambda name, key: statistics.median(v[key] for v in by[name].values())
sw = max([6] + [len(name) for name in by])
print("%-*s %10s %9s %9s %10s %11s %8s %6s" % (sw, "server", "req/s", "p50 ms", "p99 ms", "server CPU", "req/CPU-s", "wrk CPU", "errors"))
for name in by:
    print("%-*s %10.0f %9.3f %9.3f %10.2f %11.0f %8.2f %6d" % (sw, name, med(name, "rps"), med(name, "p50"),
          med(name, "p99"), med(name, "cpu"), med(name, "per_cpu"), med(name, "wrk_cpu"),
          sum(v["errors"] for v in by[name].values())))
targets = {"nginx": 0.85, "peer": 40.0}
base = variants[0]
pairs = [(v, o) for v in variants for o in ("nginx", "peer")] + [(v, base) for v in variants[1:]]
pairs = [(a, b) for a, b in pairs if a in by and b in by]
lw = max([12] + [len(a) + 1 + len(b) for a, b in pairs])
def ratio_rows(a, b, target, verdict):
    per = [by[a][r]["rps"] / by[b][r]["rps"] for r in by[a] if r in by[b]]
    cpu_ratio = med(a, "per_cpu") / med(b, "per_cpu") if med(b, "per_cpu") else float("nan")
    ratio = med(a, "rps") / med(b, "rps")
    print("%-*s %13.3fx %17.3fx %9.3f-%.3fx %8s  %s" % (lw, a + "/" + b, ratio, statistics.median(per),
          min(per), max(per), "%.2fx" % target if target else "", verdict(ratio, per)))
    print("%-*s %13.3fx   (requests per server CPU-second)" % (lw, "", cpu_ratio))
print()
print("%-*s %14s %18s %18s %8s  %s" % (lw, "ratio", "of medians", "median per round", "per round min-max", "target", "verdict"))
for a, b in pairs:
    if b in targets:
        t = targets[b]
        ratio_rows(a, b, t, lambda ratio, per: "meets" if ratio >= t else "BELOW target")
    else:
        ratio_rows(a, b, None, lambda ratio, per: "faster in %d of %d rounds" % (sum(x > 1 for x in per), len(per)))
if "nginx" in by and "peer" in by:
    # No server does better than nginx here, so this bounds lossd/peer.
    ratio_rows("nginx", "peer", None, lambda ratio, per: "(the most lossd/peer can be here)")
if any(v["errors"] for s in by.values() for v in s.values()):
    print("\nWARNING: some runs had non-2xx answers or socket errors (see the errors column)")
PY
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -n "${HTTP_BENCH_PERF:-}" ]; then
    echo "== perf: ${vnames[0]} during one ${duration} s wrk run"
    mkdir -p "$HTTP_BENCH_PERF"
    perf record -g -o "$HTTP_BENCH_PERF/perf.data" -p "$lossd_pid" -- sleep "$duration" \
        >"$HTTP_BENCH_PERF/record.log" 2>&1 &
    perf_pid=$!
    run_wrk 0 "$duration" "$tmp/run"
    wait "$perf_pid" || true
    grep '^RESULT ' "$tmp/run" | awk -v v="${vnames[0]}" '{ printf "%s under perf: %.0f req/s\n", v, $4 }'
    perf report -i "$HTTP_BENCH_PERF/perf.data" --no-children --sort dso,symbol --stdio -g none \
        --percent-limit 0.5 >"$HTTP_BENCH_PERF/report.txt" 2>/dev/null || true
    grep -v '^#' "$HTTP_BENCH_PERF/report.txt" | grep -v '^$' | head -40
    echo "(full report: $HTTP_BENCH_PERF/report.txt)"
fi

# Stop the servers, then check that every lossd and nginx logged every
# request (the counts include the checks and warm-ups, the answers not).
cleanup_logs() {
    local g v logs="" answered=""
    for g in "${groups[@]}"; do
        stop_group "$g"
    done
    groups=()
    answered_by() { awk -v s="$1" '$2 == s { n += $3 } END { print n + 0 }' "$tmp/results"; }
    for v in "${vnames[@]}"; do
        logs+="$v $(grep -c '"event":"access"' "$tmp/$v.log" || true) ($(du -h "$tmp/$v.log" | cut -f1)), "
        answered+="$v $(answered_by "$v"), "
    done
    echo "access-log lines: ${logs}nginx $(grep -c '"event":"access"' "$nginx_prefix/access.log" || true) ($(du -h "$nginx_prefix/access.log" | cut -f1)); requests answered: ${answered%, } and nginx $(answered_by nginx) in the timed runs"
}
cleanup_logs
