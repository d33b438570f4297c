-- Scenario 3: slaReport for one month grouped by service.
-- Environment: REPORT_FROM, REPORT_TO (RFC 3339).
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local query = "query($p: ReportPeriod!) { slaReport(period: $p, groupBy: SERVICE) { rows { key service { name } respond { met breached inProgress compliancePercent meanSeconds p90Seconds } resolve { met breached inProgress compliancePercent meanSeconds p90Seconds } } breachedIncidents(first: 10) { edges { node { number } } } } }"
local req
function request()
  if not req then
    req = graphql_request('{"query":"' .. query .. '","variables":{"p":{"from":"' ..
      os.getenv("REPORT_FROM") .. '","to":"' .. os.getenv("REPORT_TO") .. '"}}}')
  end
  return req
end
