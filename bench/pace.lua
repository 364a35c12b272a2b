-- wrk script for bench/run.sh (wrk -s bench/pace.lua).
-- Always: done() prints one line "bench-stats p50 p99 p99.9 max requests duration errors" (latencies
-- and duration in microseconds), because wrk's --latency stops at the 99th percentile.
-- With RATE (and CONNECTIONS) in the environment: fixed-rate pacing, exponential per connection
-- (a Poisson process of RATE/CONNECTIONS per connection, RATE in all). A fixed delay() would make
-- every connection fire in step, in bursts of CONNECTIONS, which measures the burst, not the rate.
local rate = tonumber(os.getenv("RATE") or "")
if rate and rate > 0 then
  local connections = tonumber(os.getenv("CONNECTIONS") or "32")
  local mean = connections * 1000 / rate   -- ms between requests on one connection
  math.randomseed(os.time())
  function delay() return math.floor(-math.log(1 - math.random()) * mean + 0.5) end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("bench-stats %d %d %d %d %d %d %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout))
end
