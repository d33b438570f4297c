-- Scenario 2: a portal's incident list: first 50, by state and assignment
-- group (rotating over the groups and over ASSIGNED / IN_PROGRESS), with
-- service, assignee, group, affected CIs and clocks nested.
-- Environment: GROUP_IDS (comma-separated global ids).
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local groups = split(os.getenv("GROUP_IDS"))
local states = { "ASSIGNED", "IN_PROGRESS" }
local query = "query($f: IncidentFilter) { incidents(first: 50, filter: $f) { edges { node { id number title state priority service { name } assignee { displayName } assignmentGroup { name } affectedCis { name status } clocks { kind targetSeconds dueAt businessElapsedSeconds remainingSeconds paused met breachedAt } } } pageInfo { hasNextPage endCursor } } }"
local n = 0
function init(args)
  n = (thread_no or 0) * 13
end
function request()
  n = n + 1
  local body = '{"query":"' .. query .. '","variables":{"f":{"state":["' .. states[n % 2 + 1] ..
    '"],"assignmentGroupId":"' .. groups[n % #groups + 1] .. '"}}}'
  return graphql_request(body)
end
