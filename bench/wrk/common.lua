-- Shared by the wrk scripts of bench/run.sh: the request headers, base64url
-- for global ids, GraphQL error counting and the result line.
-- Environment: TOKEN (bearer), WRK_RESULT (file the result line goes to).

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

-- base64url without padding, as servicegraph::graphql::ids::encode.
function b64url(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chunk = 4
    if not b then chunk = 2 elseif not c then chunk = 3 end
    for k = 1, chunk do
      local shift = 18 - 6 * (k - 1)
      local idx = math.floor(n / 2 ^ shift) % 64
      out[#out + 1] = b64chars:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

function gid(kind, id)
  return b64url(kind .. ":" .. id)
end

function split(s)
  local out = {}
  for part in string.gmatch(s or "", "[^,]+") do out[#out + 1] = part end
  return out
end

auth_headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or ""),
}

function graphql_request(body)
  return wrk.format("POST", "/graphql", auth_headers, body)
end

local threads = {}
local setup_count = 0

function setup(thread)
  setup_count = setup_count + 1
  thread:set("thread_no", setup_count)
  table.insert(threads, thread)
end

gql_errors = 0
units = 0

-- A 2xx answer with a GraphQL "errors" member counts as an error too.
function response(status, headers, body)
  if status >= 200 and status < 300 and body and string.find(body, '"errors"', 1, true) then
    gql_errors = gql_errors + 1
    -- The first few error answers of each thread go to stderr, to tell
    -- failures from expected answers.
    if gql_errors <= 3 then io.stderr:write("graphql error: " .. string.sub(body, 1, 400) .. "\n") end
  end
end

function done(summary, latency, requests)
  local gql = 0
  for _, t in ipairs(threads) do gql = gql + (t:get("gql_errors") or 0) end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout + gql
  local secs = summary.duration / 1e6
  local line = string.format(
    "requests=%d seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d non2xx=%d timeouts=%d gql_errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors, e.status, e.timeout, gql)
  io.write(line)
  local path = os.getenv("WRK_RESULT")
  if path then
    local f = io.open(path, "w")
    f:write(line)
    f:close()
  end
end
