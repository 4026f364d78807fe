-- wrk script of the benchmark: the same request mix as loadtests/rate_gen.py, and one JSON
-- line of results (latency percentiles from wrk's microsecond histogram).
--   WRK_SETUP=FILE WRK_PUT=0.8 wrk -t1 -c16 -d10s -s loadtests/wrk_bench.lua URL
-- FILE: lines "T <authorization header value>" and "O <token index> <round id> <offer id>"
local setup = os.getenv("WRK_SETUP") or "/tmp/wrk_bench.txt"
local put = tonumber(os.getenv("WRK_PUT") or "0.8")
local tokens, offers = {}, {}

init = function(args)
  for line in io.lines(setup) do
    local kind, rest = line:match("^(%a) (.*)$")
    if kind == "T" then
      tokens[#tokens + 1] = rest
    elseif kind == "O" then
      local t, r, o = rest:match("^(%d+) (%S+) (%S+)$")
      offers[#offers + 1] = {tonumber(t) + 1, r, o}
    end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local o = offers[math.random(#offers)]
  local body = '{"annual_rate":"' .. string.format("%.2f", 30 + math.random() * 15) ..
    '","amount":"5000000.00","tenor_months":24,"grace_months":6,"repayment_every_months":3,' ..
    '"upfront_fee":"0.00","assumes_export_commitment":true}'
  if math.random() < put then
    return wrk.format("PUT", "/v1/bank/rounds/" .. o[2] .. "/offers/" .. o[3],
      {["Authorization"] = tokens[o[1]], ["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("POST", "/v1/bank/rounds/" .. o[2] .. "/offers",
    {["Authorization"] = tokens[math.random(#tokens)], ["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
