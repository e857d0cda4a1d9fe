-- Workload 1: whole-object GETs (no Range), repeated on keep-alive connections.
-- Usage: wrk -s full.lua URL
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

function done(summary, latency, requests)
  report_done(summary, latency, requests)
end
