-- wrk script: POST pre-generated notification bodies (one JSON per line of $BENCH_BODIES),
-- each thread cycling through its share for the run's duration; $BENCH_DELAY_MS paces
-- each connection. (wrk 4.1 cannot stop after N requests without dropping those in flight,
-- so correctness is checked from the answered count: every answer 200 is 10 occurrences.)
local counter = 0
local threads = {}

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local total = tonumber(os.getenv("BENCH_THREADS"))
   bodies, sent = {}, 0
   local i = 0
   for line in io.lines(os.getenv("BENCH_BODIES")) do
      if i % total == id then table.insert(bodies, line) end
      i = i + 1
   end
   delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end

function delay()
   return delay_ms
end

function request()
   sent = sent % #bodies + 1
   return wrk.format(nil, wrk.path, nil, bodies[sent])
end

function done(summary, latency, requests)
   io.write(string.format(
      '{"duration_us": %d, "requests": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.duration, summary.requests, summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
