-- wrk script: IDSync identify/login against a seeded graph (bench/identity_bench.py).
--
-- Arguments (after "--"): path "key:secret" profiles new_fraction population with_device tag seed
--   population: "recent" (even users, seen minutes ago), "stale" (odd users, seen days ago), "all"
--   new_fraction: share of requests for users nobody has seen (each one new, never repeated)
--   with_device: 1 adds the user's device application stamp (as SDKs send on login)
-- Existing users are walked without repetition (see common.walk), so each request looks up a
-- different profile of the million, as production traffic would. Counts: x_new (new-user
-- requests sent), x_existing.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local common = require("common")

local path, headers, new_fraction, population, with_device, tag
local next_user
local seq = 0

function init(args)
  path = args[1]
  headers = {
    ["Authorization"] = "Basic " .. common.base64(args[2]),
    ["Content-Type"] = "application/json",
  }
  local profiles = tonumber(args[3])
  new_fraction = tonumber(args[4])
  population = args[5]
  with_device = args[6] == "1"
  tag = args[7]
  local seed = tonumber(args[8]) + id * 7777
  math.randomseed(seed)
  local half = math.floor(profiles / 2)
  if population == "recent" then
    local w = common.walk(half, seed)
    next_user = function() return 2 * w() end
  elseif population == "stale" then
    local w = common.walk(half, seed)
    next_user = function() return 2 * w() + 1 end
  else
    next_user = common.walk(profiles, seed)
  end
end

function request()
  local body
  if new_fraction > 0 and math.random() < new_fraction then
    seq = seq + 1
    local u = string.format("%s-%d-%d", tag, id, seq)
    local dev = with_device and string.format(',"device_application_stamp":"newdev-%s"', u) or ""
    body = string.format(
      '{"known_identities":{"customerid":"new-%s","email":"new-%s@example.com"%s}}', u, u, dev)
    common.count("new")
  else
    local i = next_user()
    local dev = with_device and string.format(',"device_application_stamp":"das-%08d"', i) or ""
    body = string.format(
      '{"known_identities":{"customerid":"cust-%08d","email":"user%d@example.com"%s}}', i, i, dev)
    common.count("existing")
  end
  return wrk.format("POST", path, headers, body)
end
