-- Scenario 1: incident(id) with its service name and clocks, a random id a request.
-- Environment: INCIDENT_MIN, INCIDENT_MAX (row ids of the generated incidents, without gaps).
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local lo = tonumber(os.getenv("INCIDENT_MIN"))
local hi = tonumber(os.getenv("INCIDENT_MAX"))
-- INCIDENT_QUERY (a Lua global set before dofile) replaces the query: see incident_pk.lua.
local query = INCIDENT_QUERY or "query($id: ID!) { incident(id: $id) { id number title state priority service { name } clocks { kind targetSeconds dueAt businessElapsedSeconds remainingSeconds paused met breachedAt } } }"
function init(args)
  math.randomseed(os.time() + (thread_no or 0) * 7919)
end
function request()
  local id = gid("Incident", math.random(lo, hi))
  return graphql_request('{"query":"' .. query .. '","variables":{"id":"' .. id .. '"}}')
end
