-- Shared by the identity/profile wrk scripts (bench/identity_bench.py, bench/profile_bench.py).
--
-- Counts every status per thread (a response is "ok" when its status is the expected one) and
-- extra per-thread counters in the global table `extra` (reported as "x_<name>"); done() prints
-- one "BENCHJSON {...}" line that bench/idp_harness.py parses. Scripts load this module with
--   package.path = <their directory> .. "?.lua;" .. package.path; local common = require("common")

local M = {}

local threads = {}
local next_id = 0

-- Each thread gets an id (for unique values) and its own random seed (set in init()).
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

ok_status = 200
ok, bad = 0, 0
statuses = {}
extra = {}

function response(status, headers, body)
  if status == ok_status then ok = ok + 1 else bad = bad + 1 end
  statuses[status] = (statuses[status] or 0) + 1
end

function M.count(name, n)
  extra[name] = (extra[name] or 0) + (n or 1)
end

function done(summary, latency, requests)
  local okc = 0
  local st, ex = {}, {}
  for _, t in ipairs(threads) do
    okc = okc + t:get("ok")
    for code, count in pairs(t:get("statuses")) do st[code] = (st[code] or 0) + count end
    for name, count in pairs(t:get("extra")) do ex[name] = (ex[name] or 0) + count end
  end
  local codes = {}
  for code, count in pairs(st) do codes[#codes + 1] = string.format('"%d":%d', code, count) end
  local extras = {}
  for name, count in pairs(ex) do extras[#extras + 1] = string.format(',"x_%s":%d', name, count) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_s":%.6f,"requests":%d,"ok":%d,"status":{%s},"socket_errors":%d,' ..
    '"timeouts":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f%s}\n',
    summary.duration / 1e6, summary.requests, okc, table.concat(codes, ","),
    e.connect + e.read + e.write + e.timeout, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, table.concat(extras)))
end

-- base64 for the Authorization header (wrk's Lua has no library for it)
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function M.base64(data)
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return B64:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

-- A walk over 0..m-1 that visits every index once before repeating: (start + k * step) mod m
-- with a prime step that does not divide m. Seeded per run and thread, so a warm-up and the
-- measured run (or two threads) do not replay the same users.
function M.walk(m, seed)
  local primes = { 1000003, 999983, 7919, 104729 }
  local step = primes[1]
  for _, p in ipairs(primes) do
    if m % p ~= 0 then step = p; break end
  end
  local pos = seed % m
  return function()
    pos = (pos + step) % m
    return pos
  end
end

return M
