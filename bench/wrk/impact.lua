-- Scenario 4: ciImpact (DOWNSTREAM, depth 10) from the core CI, which reaches 10,000 CIs.
-- Environment: CORE_CI (global id).
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local query = "query($id: ID!) { ciImpact(id: $id) { reachedCount configurationItems { depth configurationItemId } services { depth service { name } } customers { code } } }"
local req
function request()
  if not req then
    req = graphql_request('{"query":"' .. query .. '","variables":{"id":"' .. os.getenv("CORE_CI") .. '"}}')
  end
  return req
end
