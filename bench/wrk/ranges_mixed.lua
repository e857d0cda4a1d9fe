-- Workload 2 over several objects in turn: random closed ranges of SPAN bytes, each request for the next object
-- of the list (viewers of different videos served by one event loop), on keep-alive connections.
-- Usage: wrk -s ranges_mixed.lua URL_PREFIX -- SPAN KEY SIZE [KEY SIZE ...]   (URL_PREFIX ends with '/')
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local span
local keys, sizes = {}, {}
local turn = 0
function init(args)
  span = tonumber(args[1])
  for i = 2, #args, 2 do
    keys[#keys + 1] = args[i]
    sizes[#sizes + 1] = tonumber(args[i + 1])
  end
  seed_random()
end

function request()
  turn = turn % #keys + 1
  local size = sizes[turn]
  local len = math.min(span, size)
  local first = math.random(0, size - len)
  return wrk.format("GET", wrk.path .. keys[turn], {["Range"] = "bytes=" .. first .. "-" .. (first + len - 1)})
end

function done(summary, latency, requests)
  report_done(summary, latency, requests)
end
