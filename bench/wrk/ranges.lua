-- Workload 2: random closed ranges of SPAN bytes (Safari's / AVFoundation's pattern) over an object of SIZE
-- bytes, on keep-alive connections.
-- Usage: wrk -s ranges.lua URL -- SIZE [SPAN]
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local size, span
function init(args)
  size = tonumber(args[1])
  span = tonumber(args[2] or "65536")
  seed_random()
end

function request()
  local first = math.random(0, size - span)
  return wrk.format("GET", wrk.path, {["Range"] = "bytes=" .. first .. "-" .. (first + span - 1)})
end

function done(summary, latency, requests)
  report_done(summary, latency, requests)
end
