-- Scenario 5: Alertmanager webhooks (version 4), 100 alerts a request; about
-- 20 % of the alerts repeat a fingerprint this thread already sent, 80 % are new.
-- Environment: ALERT_SECRET (the integration's bearer secret), RUN_ID (keeps
-- fingerprints of separate runs apart).
dofile(os.getenv("WRK_LUA_DIR") .. "/common.lua")
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer " .. (os.getenv("ALERT_SECRET") or ""),
}
local run = os.getenv("RUN_ID") or "0"
local sent = 0
function init(args)
  math.randomseed(os.time() + (thread_no or 0) * 104729)
end
local function fingerprint(n)
  return string.format("%s%02x%010x", run, thread_no or 0, n)
end
function request()
  local alerts = {}
  for i = 1, 100 do
    local fp
    if sent > 0 and math.random() < 0.2 then
      fp = fingerprint(math.random(0, sent - 1))
    else
      fp = fingerprint(sent)
      sent = sent + 1
    end
    alerts[i] = '{"status":"firing","labels":{"alertname":"LoadBench","severity":"critical","instance":"host-' ..
      fp .. '","job":"node"},"annotations":{"summary":"loadbench alert ' .. fp ..
      '"},"startsAt":"2026-11-22T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.local/graph","fingerprint":"' ..
      fp .. '"}'
  end
  local body = '{"version":"4","groupKey":"{}:{alertname=\\"LoadBench\\"}","status":"firing","receiver":"servicegraph",' ..
    '"groupLabels":{"alertname":"LoadBench"},"commonLabels":{"alertname":"LoadBench","job":"node"},"commonAnnotations":{},' ..
    '"externalURL":"http://alertmanager.local","truncatedAlerts":0,"alerts":[' .. table.concat(alerts, ",") .. ']}'
  return wrk.format("POST", "/ingest/alertmanager", headers, body)
end
