-- wrk script: Events API batches for seeded users, each with a fresh marker attribute
-- (bench/profile_bench.py, the "max sustained ingest" phase).
--
-- Arguments (after "--"): "key:secret" profiles tag seed
-- The batch has the same shape as bench/lag_client.py's: customer_id + email + device stamp of
-- one seeded user, three user attributes (one a unique marker), a custom event and a screen
-- view. Every source_request_id is unique (the server would de-duplicate a repeat).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local common = require("common")

local headers, tag, next_user
local seq = 0
local cities = { "Berlin", "Austin", "Lyon", "Osaka", "Leeds", "Quito", "Perth", "Oslo" }

function init(args)
  ok_status = 202
  headers = {
    ["Authorization"] = "Basic " .. common.base64(args[1]),
    ["Content-Type"] = "application/json",
  }
  local seed = tonumber(args[4]) + id * 7777
  next_user = common.walk(tonumber(args[2]), seed)
  tag = args[3] .. "-" .. id
end

function request()
  seq = seq + 1
  local i = next_user()
  local now = os.time() * 1000
  local marker = string.format("%s-%d", tag, seq)
  local body = string.format(
    '{"environment":"production","source_request_id":"%s",' ..
    '"user_identities":{"customer_id":"cust-%08d","email":"user%d@example.com"},' ..
    '"mp_deviceid":"das-%08d","device_info":{"platform":"Android","os_version":"14"},' ..
    '"user_attributes":{"bench_marker":"%s","$city":"%s","visits":%d},' ..
    '"events":[{"event_type":"custom_event","data":{"event_name":"Search",' ..
    '"custom_event_type":"search","timestamp_unixtime_ms":%d,' ..
    '"custom_attributes":{"query":"q%d"}}},' ..
    '{"event_type":"screen_view","data":{"screen_name":"Home","timestamp_unixtime_ms":%d}}]}',
    marker, i, i, i, marker, cities[(i % 8) + 1], seq, now, seq, now)
  return wrk.format("POST", "/v2/events", headers, body)
end
