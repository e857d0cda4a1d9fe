-- Shared by the wrk scripts of bench/run: prints one JSON line with the run's totals and latency percentiles.
-- Loaded with dofile() from the other scripts (wrk runs each script once per thread and once in main).
function report_done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "bytes": %d, "duration_us": %d, "err_connect": %d, "err_read": %d, "err_write": %d, ' ..
    '"err_status": %d, "err_timeout": %d, "lat_p50_us": %d, "lat_p99_us": %d, "lat_max_us": %d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

-- Numbers each thread (wrk's setup, run in the main state) and seeds its random numbers apart from the others'
-- (call seed_random() from init, which runs in the thread's own state).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function seed_random()
  math.randomseed(os.time() * 1000 + (seed or 0) * 7919)
end
