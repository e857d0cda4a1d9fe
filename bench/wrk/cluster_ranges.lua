-- bench/cluster: random closed ranges of SPAN bytes over COUNT objects PREFIX000.bin .. of SIZE bytes each, on
-- keep-alive connections (many objects, so that a balancer's choice of node matters).
-- Usage: wrk -s cluster_ranges.lua URL -- PREFIX COUNT SIZE [SPAN]
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local prefix, count, size, span
function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  size = tonumber(args[3])
  span = tonumber(args[4] or "65536")
  seed_random()
end

function request()
  local path = string.format("%s%03d.bin", prefix, math.random(0, count - 1))
  local first = math.random(0, size - span)
  return wrk.format("GET", path, {["Range"] = "bytes=" .. first .. "-" .. (first + span - 1)})
end

function done(summary, latency, requests)
  report_done(summary, latency, requests)
end
