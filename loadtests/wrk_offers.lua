-- wrk script: POST offers at random rounds with random bank tokens.
--   python -m loadtests.quick_bench --setup-only /tmp/wrk.json ...
--   WRK_SETUP=/tmp/wrk.json wrk -t2 -c32 -d15s --latency -s loadtests/wrk_offers.lua http://127.0.0.1:8000
local cjson_ok, cjson = pcall(require, "cjson")
local setup = os.getenv("WRK_SETUP") or "/tmp/wrk.json"
local tokens, rounds = {}, {}

local function load()
  local f = assert(io.open(setup, "r"))
  local text = f:read("*a")
  f:close()
  for t in text:gmatch('"(Bearer [^"]+)"') do tokens[#tokens + 1] = t end
  local r = text:match('"rounds"%s*:%s*%[(.-)%]')
  for id in r:gmatch('"([^"]+)"') do rounds[#rounds + 1] = id end
end

init = function(args)
  load()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local rid = rounds[math.random(#rounds)]
  local rate = string.format("%.2f", 30 + math.random() * 15)
  local body = '{"annual_rate":"' .. rate .. '","amount":"5000000.00","tenor_months":24,' ..
    '"grace_months":6,"repayment_every_months":3,"upfront_fee":"0.00",' ..
    '"assumes_export_commitment":true}'
  return wrk.format("POST", "/v1/bank/rounds/" .. rid .. "/offers",
    {["Authorization"] = tokens[math.random(#tokens)], ["Content-Type"] = "application/json"}, body)
end

local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx: %d\n", summary.errors.status))
end
