-- Ceiling of scenario 1: incident(id) with two of its own fields, a random id a
-- request: one primary-key SELECT through the whole stack (HTTP, auth,
-- GraphQL, the pool, PostgreSQL). Scenario 1 adds its service and clocks.
-- Environment: INCIDENT_MIN, INCIDENT_MAX.
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local lo = tonumber(os.getenv("INCIDENT_MIN"))
local hi = tonumber(os.getenv("INCIDENT_MAX"))
local query = "query($id: ID!) { incident(id: $id) { id number } }"
function init(args)
  math.randomseed(os.time() + (thread_no or 0) * 7919)
end
function request()
  local id = gid("Incident", math.random(lo, hi))
  return graphql_request('{"query":"' .. query .. '","variables":{"id":"' .. id .. '"}}')
end
