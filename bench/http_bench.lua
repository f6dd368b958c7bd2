-- http_bench.lua - the wrk request of bench/http_bench.sh: a small MSE POST.
--
-- Only wrk's globals are set (no request() function), so wrk formats the
-- request once and reuses it on every keep-alive connection: the load
-- generator spends no Lua time per request. The body (2x4 tensors) comes
-- from HTTP_BENCH_BODY, so the script that checked the answer and this file
-- send the same bytes.
wrk.method = "POST"
wrk.body = os.getenv("HTTP_BENCH_BODY")
    or '{"input":[[0.5,-1.25,2.0,3.5],[1.0,0.0,-2.5,4.25]],'
    .. '"target":[[1.0,-1.0,2.5,3.0],[0.75,0.5,-2.0,4.0]]}'
wrk.headers["Content-Type"] = "application/json"

-- One machine-readable line after wrk's own report:
--   RESULT requests seconds req_per_s p50_us p99_us non2xx socket_errors
function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format("RESULT %d %.3f %.1f %.1f %.1f %d %d\n",
        summary.requests, secs, summary.requests / secs,
        latency:percentile(50), latency:percentile(99), e.status,
        e.connect + e.read + e.write + e.timeout))
end
