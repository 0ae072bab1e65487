-- wrk script for the opencdp benchmark (driven by bench/run.py; see bench/README.md).
--
-- Rotates through pre-generated request bodies ("templates", one JSON body per line) and puts
-- a fresh, fixed-length source_request_id into every "########################" placeholder,
-- so every batch is unique (the server de-duplicates on it) and Content-Length never changes
-- size class. Counts every status per thread; done() prints one "BENCHJSON {...}" line.
--
-- Arguments (after "--"): templates_file url_path "key:secret" tag(8 chars)

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local TOKEN = string.rep("#", 24)

local function split(s, token)
  local parts, from = {}, 1
  while true do
    local a, b = string.find(s, token, from, true)
    if not a then break end
    table.insert(parts, string.sub(s, from, a - 1))
    from = b + 1
  end
  table.insert(parts, string.sub(s, from))
  return parts
end

-- base64 for the Authorization header (wrk's Lua has no library for it)
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
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

local templates, path, headers, tag
local n, seq = 0, 0
accepted, non202, partial = 0, 0, 0
statuses = {}

function init(args)
  templates = {}
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(templates, split(line, TOKEN)) end
  end
  path = args[2]
  headers = {
    ["Authorization"] = "Basic " .. base64(args[3]),
    ["Content-Type"] = "application/json",
  }
  tag = string.sub(args[4] .. "________", 1, 8)
end

function request()
  local t = templates[(n % #templates) + 1]
  n = n + 1
  local out = {}
  for i = 1, #t - 1 do
    seq = seq + 1
    out[#out + 1] = t[i]
    out[#out + 1] = string.format("%s%02d%014d", tag, id % 100, seq)
  end
  out[#out + 1] = t[#t]
  return wrk.format("POST", path, headers, table.concat(out))
end

function response(status, hdrs, body)
  if status == 202 then
    accepted = accepted + 1
    if body and #body > 0 then partial = partial + 1 end
  else
    non202 = non202 + 1
  end
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local acc, bad, part = 0, 0, 0
  local st = {}
  for _, t in ipairs(threads) do
    acc = acc + t:get("accepted")
    bad = bad + t:get("non202")
    part = part + t:get("partial")
    for code, count in pairs(t:get("statuses")) do st[code] = (st[code] or 0) + count end
  end
  local codes = {}
  for code, count in pairs(st) do codes[#codes + 1] = string.format('"%d":%d', code, count) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"loadgen":"wrk","duration_s":%.6f,"requests":%d,"accepted_202":%d,' ..
    '"non_202":%d,"partial_202":%d,"status":{%s},"socket_errors":%d,"timeouts":%d,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.duration / 1e6, summary.requests, acc, bad, part, table.concat(codes, ","),
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
