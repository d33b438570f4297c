-- Ceiling of scenario 1: incident(id) with two of its own fields, a random id a
-- request: one primary-key SELECT through the whole stack (HTTP, auth,
-- GraphQL, the pool, PostgreSQL). Scenario 1 adds its service and clocks.
-- Environment: INCIDENT_MIN, INCIDENT_MAX.
INCIDENT_QUERY = "query($id: ID!) { incident(id: $id) { id number } }"
dofile(os.getenv("WRK_LUA_DIR") .. "/incident.lua")
