-- wrk script for bench/run. Configured through the environment:
--   BENCH_METHOD  GET (default) or POST
--   BENCH_BODY    request body (POST), sent as application/json
--   BENCH_AUTH    value of the Authorization header (optional)
--   BENCH_COOKIE  value of the Cookie header (optional: a dashboard session)
--   BENCH_OUT     file to write the machine-readable summary to
-- The summary is one line of "key=value" pairs (latencies in microseconds).

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local line = string.format(
    "requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout)
  local path = os.getenv("BENCH_OUT")
  if path and path ~= "" then
    local f = io.open(path, "w")
    f:write(line, "\n")
    f:close()
  else
    io.write(line, "\n")
  end
end
