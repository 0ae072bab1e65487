-- wrk script: Profile API lookups by MPID (bench/profile_bench.py).
--
-- Arguments (after "--"): path_prefix token mpids_file query seed
--   path_prefix: "/userprofile/v1/{org}/{account}/{workspace}/"; query: "?fields=..."
--   mpids_file: one seeded MPID per line (a random sample of the seeded users)
-- Each request reads a random MPID from the sample.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local common = require("common")

local prefix, headers, query
local mpids = {}

function init(args)
  prefix = args[1]
  headers = { ["Authorization"] = "Bearer " .. args[2] }
  for line in io.lines(args[3]) do
    if #line > 0 then mpids[#mpids + 1] = line end
  end
  query = args[4]
  math.randomseed(tonumber(args[5]) + id * 7777)
end

function request()
  local mpid = mpids[math.random(1, #mpids)]
  return wrk.format("GET", prefix .. mpid .. query, headers)
end
