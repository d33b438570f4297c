#!/usr/bin/env bash
# bench/run.sh: measures the release server against its targets and ceilings.
#
#   bench/run.sh [--quick] [--regenerate] [--db NAME] [--postgres URL]
#                [--duration SECONDS] [--subscribers N] [--no-write]
#
# Builds in release, generates the data set on PostgreSQL (200 customers, 50
# services, 100,000 CIs with 300,000 relationships, 1,000,000 incidents over
# 12 months with their SLA clocks; --quick: 20,000 incidents, 25,000 CIs), or
# reuses the database a previous run generated (marker table loadbench_meta;
# --regenerate drops it), starts target/release/servicegraph against it,
# drives it with wrk (32 connections, Lua scripts in bench/wrk/), measures the
# ceilings in the same run ({ __typename } on the same server, pgbench on the
# same database), prints one table and writes it into BENCHMARKS.md between
# the loadbench markers. Not part of `cargo test` or .ci/run.
#
# Environment: BENCH_POSTGRES (server URL without database), BENCH_PORT,
# BENCH_PG_PARAMS (connection parameters; default sslmode=disable).
#
# Needs: cargo, PostgreSQL (psql, pgbench: the postgresql package), curl;
# installs wrk with apt-get when it is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

PG=${BENCH_POSTGRES:-postgres://postgres:postgres@127.0.0.1:5432}
PORT=${BENCH_PORT:-18080}
QUICK=0 REGEN=0 WRITE=1 DB="" DURATION="" SUBSCRIBERS=""
COMMAND_LINE="bench/run.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --regenerate) REGEN=1 ;;
    --no-write) WRITE=0 ;;
    --db) DB=$2; shift ;;
    --postgres) PG=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --subscribers) SUBSCRIBERS=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PG=${PG%/}
if [[ $QUICK == 1 ]]; then
  INCIDENTS=20000 OPEN=2000 CIS=25000 RELATIONSHIPS=75000
  DB=${DB:-sg_loadbench_quick} DURATION=${DURATION:-5} SUBSCRIBERS=${SUBSCRIBERS:-1000}
else
  INCIDENTS=1000000 OPEN=10000 CIS=100000 RELATIONSHIPS=300000
  DB=${DB:-sg_loadbench} DURATION=${DURATION:-20} SUBSCRIBERS=${SUBSCRIBERS:-10000}
fi
# The server and pgbench connect without TLS: both run on this machine, over
# loopback, where TLS only spends CPU that the measured processes share (about
# a third of scenario 1's throughput). BENCH_PG_PARAMS=sslmode=prefer measures
# with it (libpq's and sqlx's default).
PG_PARAMS=${BENCH_PG_PARAMS-sslmode=disable}
DBURL="$PG/$DB${PG_PARAMS:+?$PG_PARAMS}"
SECRET="benchmark-secret-that-is-long-enough-for-hs256-0123" # = examples/common SECRET
OUT="$ROOT/target/loadbench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
BIN="$ROOT/target/release/servicegraph"
LB="$ROOT/target/release/examples/loadbench"
URL="http://127.0.0.1:$PORT"
export WRK_LUA_DIR="$ROOT/bench/wrk"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools --------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
  $SUDO apt-get install -y wrk >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi
for tool in psql pgbench curl cargo; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
# 10,000 WebSocket subscribers: a socket each in the client and in the server.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard" 2>/dev/null || true
if [[ $(ulimit -n) != unlimited ]] && (( $(ulimit -n) < SUBSCRIBERS + 1000 )); then
  log "ulimit -n is $(ulimit -n): fewer subscribers"
  SUBSCRIBERS=$(( $(ulimit -n) - 1000 ))
fi

log "building (release)"
cargo build --release --bin servicegraph --example loadbench

# --- data set ---------------------------------------------------------------------
psql_db() { psql "$DBURL" -XtAq -v ON_ERROR_STOP=1 "$@"; }
exists=$(psql "$PG/postgres" -XtAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")
meta=""
if [[ $exists == 1 ]]; then
  meta=$(psql_db -c "SELECT to_char(incidents, 'FM9,999,999') || ' incidents, ' || to_char(cis, 'FM9,999,999') || ' CIs, ' || to_char(relationships, 'FM9,999,999') || ' relationships, generated ' || to_char(generated_at, 'YYYY-MM-DD HH24:MI') || ' UTC in ' || round(seconds) || ' s' FROM loadbench_meta" 2>/dev/null || true)
fi
if [[ $exists == 1 && ( $REGEN == 1 || -z $meta ) ]]; then
  log "dropping $DB (${meta:-incomplete})"
  psql "$PG/postgres" -Xqc "DROP DATABASE $DB WITH (FORCE)"
  meta=""
fi
if [[ -z $meta ]]; then
  log "generating $DB: $INCIDENTS incidents, $CIS CIs, $RELATIONSHIPS relationships"
  "$LB" generate --postgres "$PG" --name "$DB" --incidents "$INCIDENTS" --open "$OPEN" \
    --cis "$CIS" --relationships "$RELATIONSHIPS" | tee "$OUT/generate.env"
  meta=$(psql_db -c "SELECT to_char(incidents, 'FM9,999,999') || ' incidents, ' || to_char(cis, 'FM9,999,999') || ' CIs, ' || to_char(relationships, 'FM9,999,999') || ' relationships, generated ' || to_char(generated_at, 'YYYY-MM-DD HH24:MI') || ' UTC in ' || round(seconds) || ' s' FROM loadbench_meta")
else
  log "reusing $DB ($meta)"
  meta="$meta; reused"
fi

# --- the server ------------------------------------------------------------------
SERVER_PID=""
stop_server() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}
SAMPLER=""
stop_sampler() {
  if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; fi
  SAMPLER=""
}
trap 'stop_sampler; stop_server' EXIT

rss_kb() { local k v _; while read -r k v _; do [[ $k == VmRSS: ]] && { echo "$v"; return; }; done < "/proc/$1/status"; echo 0; }
# Samples the server's VmRSS every 100 ms; the highest value goes to $OUT/rss.<name>.
start_sampler() {
  local file="$OUT/rss.$1"
  echo 0 > "$file"
  ( max=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
      v=$(rss_kb "$SERVER_PID")
      if (( v > max )); then max=$v; echo "$max" > "$file"; fi
      sleep 0.1
    done ) &
  SAMPLER=$!
}
peak_mb() { awk '{ printf "%.0f", $1 / 1024 }' "$OUT/rss.$1"; }

log "starting the server on $URL"
started=$(date +%s%N)
# The budget per caller: every scenario runs as one subject (and one
# integration) at thousands of requests a second, far beyond what the default
# budget allows one caller (1,000,000 points and 60,000 alerts a minute).
# The harness sets budgets it never reaches, so the runs measure throughput;
# the accounting itself stays in the measured path.
BUDGET_ENV=(SERVICEGRAPH_BUDGET__GRAPHQL_POINTS=1000000000000 SERVICEGRAPH_BUDGET__INGEST_ALERTS=1000000000000)
env DATABASE_URL="$DBURL" SERVICEGRAPH_LISTEN="127.0.0.1:$PORT" SERVICEGRAPH_DATA_DIR="$OUT/data" \
  SERVICEGRAPH_AUTH__HS256_SECRET="$SECRET" SERVICEGRAPH_DEV__SEED_DEMO=false SERVICEGRAPH_LOG__FILTER=warn \
  "${BUDGET_ENV[@]}" "$BIN" serve > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
until curl -fs "$URL/readyz" >/dev/null 2>&1; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.01
done
PG_READY_MS=$(( ($(date +%s%N) - started) / 1000000 ))
# After the start: the server has migrated a data set generated by an older version.
PARAMS=$("$LB" params --database-url "$DBURL") || { echo "loadbench params failed" >&2; exit 1; }
eval "$PARAMS"
sleep 2
IDLE_RSS_MB=$(( $(rss_kb "$SERVER_PID") / 1024 ))
log "ready in $PG_READY_MS ms, idle RSS $IDLE_RSS_MB MB"
TOKEN=$(SERVICEGRAPH_AUTH__HS256_SECRET="$SECRET" "$BIN" token --subject bench@provider --tenant provider --role admin --ttl 12h)
export TOKEN INCIDENT_MIN INCIDENT_MAX GROUP_IDS REPORT_FROM REPORT_TO CORE_CI

# run_wrk NAME CONNECTIONS SECONDS SCRIPT: a 2 s warm-up, then the measured run.
run_wrk() {
  local name=$1 conns=$2 secs=$3 script=$4 threads=2
  (( conns < 2 )) && threads=1
  log "wrk $name: $conns connections, $secs s"
  WRK_RESULT=/dev/null wrk -t"$threads" -c"$conns" -d2s --timeout 30s -s "bench/wrk/$script" "$URL" >/dev/null 2>&1 || true
  start_sampler "$name"
  WRK_RESULT="$OUT/$name.wrk" wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s --latency \
    -s "bench/wrk/$script" "$URL" > "$OUT/$name.out" 2>&1 || true
  stop_sampler
  [[ -s $OUT/$name.wrk ]] || echo "requests=0 seconds=0 rps=0 p50_ms=0 p99_ms=0 max_ms=0 errors=1" > "$OUT/$name.wrk"
  log "  $(cat "$OUT/$name.wrk")"
}
val() { grep -o "\b$2=[^ ]*" "$OUT/$1.wrk" | head -1 | cut -d= -f2; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0) print "n/a"; else if (100 * a / b < 10) printf "%.1f %%", 100 * a / b; else printf "%.0f %%", 100 * a / b }'; }
fmt() { awk -v a="$1" 'BEGIN { if (a + 0 < 100 && a != int(a)) { printf "%.1f\n", a; exit } s = sprintf("%.0f", a); n = length(s); o = ""; for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," } print o }'; }
verdict() { if "$@"; then echo met; else echo "**missed**"; fi; }

HEAVY=$(( DURATION < 30 ? DURATION : 30 ))

# --- ceilings ------------------------------------------------------------------
run_wrk typename 32 "$DURATION" typename.lua

log "pgbench: primary-key select on incidents, 32 clients"
printf '\\set id random(%s, %s)\nSELECT id, number, state, priority FROM incidents WHERE id = :id;\n' \
  "$INCIDENT_MIN" "$INCIDENT_MAX" > "$OUT/pk_select.sql"
pgbench -n -M prepared -c 32 -j 2 -T "$DURATION" -f "$OUT/pk_select.sql" "$DBURL" > "$OUT/pgbench_select.out" 2>&1
PGB_SELECT=$(awk '/^tps/ { print $3; exit }' "$OUT/pgbench_select.out")
PGB_SELECT_LAT=$(awk '/^latency average/ { print $4; exit }' "$OUT/pgbench_select.out")

log "pgbench: one-row INSERT into a scratch table, 16 clients"
psql_db -c "DROP TABLE IF EXISTS loadbench_scratch; CREATE TABLE loadbench_scratch (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, dedup_key text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
printf '\\set k random(1, 1000000000)\nINSERT INTO loadbench_scratch (customer_id, dedup_key) VALUES (1, :k);\n' > "$OUT/insert.sql"
pgbench -n -M prepared -c 16 -j 2 -T "$DURATION" -f "$OUT/insert.sql" "$DBURL" > "$OUT/pgbench_insert.out" 2>&1
PGB_INSERT=$(awk '/^tps/ { print $3; exit }' "$OUT/pgbench_insert.out")
PGB_INSERT_LAT=$(awk '/^latency average/ { print $4; exit }' "$OUT/pgbench_insert.out")
psql_db -c "DROP TABLE loadbench_scratch"

# The same server answering one primary-key SELECT per request: what a request
# that touches the database at all can reach (the floor under scenario 1).
run_wrk incident_pk 32 "$DURATION" incident_pk.lua

# --- scenarios 1-4 --------------------------------------------------------------------
run_wrk incident 32 "$DURATION" incident.lua
run_wrk list 32 "$DURATION" list.lua
run_wrk report 2 "$HEAVY" report.lua
run_wrk impact 2 "$HEAVY" impact.lua

# --- scenario 5: Alertmanager ingestion ----------------------------------------------
# THE BLOCK TO ADJUST when POST /ingest/alertmanager lands (with loadbench's
# alert_setup): how the integration is created and how duplicates are counted.
ALERT_STATUS="" ALERT_SECRET="" DUPLICATES="n/a"
DEDUP_SQL="SELECT count(*) FROM (SELECT customer_id, dedup_key FROM incidents
  WHERE dedup_key IS NOT NULL AND state NOT IN ('resolved', 'closed')
  GROUP BY customer_id, dedup_key HAVING count(*) > 1) d"
eval "$("$LB" alert-setup --url "$URL" --token "$TOKEN" --organization "$CUSTOMER_ID" --service "$SERVICE_ID" 2>"$OUT/alert-setup.err" || echo ALERT_STATUS=setup-failed)"
if [[ $ALERT_STATUS != 404 && -n $ALERT_SECRET ]]; then
  ALERT_SECRET=$ALERT_SECRET RUN_ID=$(date +%s) run_wrk alerts 16 "$DURATION" alerts.lua
  DUPLICATES=$(psql_db -c "$DEDUP_SQL" 2>"$OUT/dedup.err" || echo "check failed")
fi
log "alert ingest: status $ALERT_STATUS, duplicates $DUPLICATES"

# --- scenario 6: WebSocket subscribers ---------------------------------------------
log "websocket: $SUBSCRIBERS subscribers to incidentChanged"
start_sampler ws
"$LB" ws --url "$URL" --token "$TOKEN" --incident "$OPEN_INCIDENT" --subscribers "$SUBSCRIBERS" \
  --pid "$SERVER_PID" > "$OUT/ws.env" 2> "$OUT/ws.err" || log "ws client failed: $(tail -1 "$OUT/ws.err")"
stop_sampler
cat "$OUT/ws.err" >&2
WS_CONNECTED=0 WS_DELIVERED_MIN=0 WS_P50_MS=nan WS_P99_MS=nan WS_MAX_MS=nan WS_RSS_CONNECTED_KB=0 WS_RSS_PEAK_KB=0 WS_ROUNDS=0 WS_CONNECT_SECONDS=0
eval "$(cat "$OUT/ws.env")"
stop_server

# --- statements per list request, start-up on SQLite ---------------------------------
log "counting SQL statements of the list (a second server through a counting proxy)"
STATEMENTS_MIN="?" STATEMENTS_MAX="?" STATEMENTS_MODE="?" STATEMENTS_RUNS=0
eval "$("$LB" statements --bin "$BIN" --postgres "$PG" --name "$DB" --groups "$GROUP_IDS" 2>"$OUT/statements.err" || true)"
log "start-up to ready on SQLite"
STARTUP_COLD_MS="?" STARTUP_WARM_MS="?" STARTUP_WARM_RSS_KB=0
eval "$("$LB" startup --bin "$BIN" 2>"$OUT/startup.err" || true)"

# --- the table ------------------------------------------------------------------------
T_RPS=$(val typename rps)
row() { # name label load
  local n=$1
  printf '| %s | %s | %s | %s ms | %s ms | %s | %s MB |' "$2" "$3" "$(fmt "$(val "$n" rps)")" \
    "$(val "$n" p50_ms)" "$(val "$n" p99_ms)" "$(val "$n" errors)" "$(peak_mb "$n")"
}
if [[ $STATEMENTS_MIN == "$STATEMENTS_MAX" ]]; then STATEMENTS="$STATEMENTS_MIN"; else STATEMENTS="$STATEMENTS_MIN-$STATEMENTS_MAX (mostly $STATEMENTS_MODE)"; fi
{
  echo "| scenario (PostgreSQL) | load | req/s | p50 | p99 | errors | server peak RSS | ceiling (same run) | of ceiling | target | |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  echo "$(row typename 'ceiling: `{ __typename }`' '32 conn.') | | | |"
  echo "| ceiling: pgbench, primary-key SELECT on incidents | 32 clients | $(fmt "$PGB_SELECT") | $PGB_SELECT_LAT ms avg | | | | | | | |"
  echo "| ceiling: pgbench, one-row INSERT (scratch table) | 16 clients | $(fmt "$PGB_INSERT") | $PGB_INSERT_LAT ms avg | | | | | | | |"
  echo "$(row incident_pk 'ceiling: `incident(id) { id number }`, one SELECT through the server' '32 conn.') | $(fmt "$T_RPS") req/s \`{ __typename }\` | $(ratio "$(val incident_pk rps)" "$T_RPS") | | |"
  echo "$(row incident '1. `incident(id)` + service, clocks' '32 conn.') | $(fmt "$T_RPS") req/s \`{ __typename }\`; $(fmt "$PGB_SELECT") pgbench; $(fmt "$(val incident_pk rps)") one SELECT | $(ratio "$(val incident rps)" "$T_RPS"); $(ratio "$(val incident rps)" "$PGB_SELECT"); $(ratio "$(val incident rps)" "$(val incident_pk rps)") | ≥ 40 % of \`{ __typename }\` | $(verdict awk -v a="$(val incident rps)" -v b="$T_RPS" 'BEGIN { exit !(a >= 0.4 * b) }') |"
  list_ok() { ! lt "$(val list rps)" 2000 && lt "$(val list p99_ms)" 50 && [[ $STATEMENTS_MIN == "$STATEMENTS_MAX" ]]; }
  echo "$(row list '2. incident list, 50 nested, by state + group' '32 conn.') | $(fmt "$T_RPS") \`{ __typename }\` | $(ratio "$(val list rps)" "$T_RPS") | ≥ 2,000 req/s, p99 < 50 ms, fixed SQL statements: **$STATEMENTS** a request | $(verdict list_ok) |"
  echo "$(row report "3. \`slaReport\` $REPORT_MONTH by SERVICE" '2 conn.') | | | p50 < 500 ms | $(verdict lt "$(val report p50_ms)" 500) |"
  echo "$(row impact '4. `ciImpact`, 10,000 CIs reached' '2 conn.') | | | p50 < 100 ms | $(verdict lt "$(val impact p50_ms)" 100) |"
  if [[ $ALERT_STATUS == 404 ]]; then
    echo "| 5. Alertmanager ingest, 100 alerts a request, 20 % repeats | 16 senders | skipped: endpoint not available (404) | | | | | $(fmt "$PGB_INSERT") rows/s pgbench INSERT | | ≥ 5,000 alerts/s, p99 < 100 ms, 0 duplicates | not run |"
  elif [[ -z $ALERT_SECRET ]]; then
    echo "| 5. Alertmanager ingest | 16 senders | skipped: integration setup failed (status $ALERT_STATUS, see alert-setup.err) | | | | | | | ≥ 5,000 alerts/s | not run |"
  else
    ALERTS=$(awk -v r="$(val alerts rps)" 'BEGIN { print r * 100 }')
    alerts_ok() { ! lt "$ALERTS" 5000 && lt "$(val alerts p99_ms)" 100 && [[ $DUPLICATES == 0 ]]; }
    echo "| 5. Alertmanager ingest, 100 alerts a request, 20 % repeats | 16 senders | $(fmt "$(val alerts rps)") (**$(fmt "$ALERTS") alerts/s**) | $(val alerts p50_ms) ms | $(val alerts p99_ms) ms | $(val alerts errors) | $(peak_mb alerts) MB | $(fmt "$PGB_INSERT") rows/s pgbench INSERT | $(ratio "$ALERTS" "$PGB_INSERT") | ≥ 5,000 alerts/s, p99 < 100 ms, 0 duplicates (found: $DUPLICATES) | $(verdict alerts_ok) |"
  fi
  ws_ok() { [[ $WS_CONNECTED == "$SUBSCRIBERS" && $WS_DELIVERED_MIN == "$WS_CONNECTED" ]] && lt "$WS_P99_MS" 1000 && lt "$WS_RSS_PEAK_KB" $((300 * 1024)); }
  echo "| 6. \`incidentChanged\`, one update to every subscriber ($WS_ROUNDS rounds) | $(fmt "$WS_CONNECTED") WebSockets (connected in $WS_CONNECT_SECONDS s) | delivered to $(fmt "$WS_DELIVERED_MIN") a round | $WS_P50_MS ms | $WS_P99_MS ms (max $WS_MAX_MS) | $(( SUBSCRIBERS - WS_CONNECTED )) | $(( WS_RSS_PEAK_KB / 1024 )) MB ($(( WS_RSS_CONNECTED_KB / 1024 )) MB connected) | | | delivery p99 < 1 s, RSS < 300 MB | $(verdict ws_ok) |"
  echo "| 7. memory: idle after start (PostgreSQL) | | | | | | $IDLE_RSS_MB MB | | | < 30 MB | $(verdict lt "$IDLE_RSS_MB" 30) |"
  echo "| 7. memory: under scenario 2's load | | | | | | $(peak_mb list) MB | | | < 150 MB | $(verdict lt "$(peak_mb list)" 150) |"
  echo "| 7. start-up to ready (\`/readyz\`), SQLite | new file / migrated file | | $STARTUP_COLD_MS ms / **$STARTUP_WARM_MS ms** | | | $(( STARTUP_WARM_RSS_KB / 1024 )) MB idle | | | < 1 s | $(verdict lt "$STARTUP_WARM_MS" 1000) |"
} > "$OUT/table.md"

MEM_GB=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
PGVER=$(psql_db -c "SHOW server_version" | awk '{ print $1 }')
{
  echo "Machine: $(nproc) cores ($CPU), $MEM_GB GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
  echo "PostgreSQL $PGVER on the same machine, wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') and pgbench on the same machine."
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Command: \`$COMMAND_LINE\`."
  echo "Data set: $meta. Server: release build, default settings"
  echo "(pool of 16 connections, SLA worker on), ready on PostgreSQL in $PG_READY_MS ms;"
  echo "server and pgbench connect with \`${PG_PARAMS:-no parameters}\`."
  echo "Each wrk run: $DURATION s after a 2 s warm-up (slaReport and ciImpact: $HEAVY s on 2 connections)."
  echo
  cat "$OUT/table.md"
} > "$OUT/section.md"

echo
cat "$OUT/section.md"
echo
log "raw output in $OUT"

if [[ $WRITE == 1 ]]; then
  BEGIN='<!-- loadbench:begin (written by bench/run.sh; edit outside these markers) -->'
  END='<!-- loadbench:end -->'
  if ! grep -qF '<!-- loadbench:begin' BENCHMARKS.md; then
    printf '\n## Load benchmark (bench/run.sh)\n\n%s\n%s\n' "$BEGIN" "$END" >> BENCHMARKS.md
  fi
  awk -v section="$OUT/section.md" -v begin="$BEGIN" '
    /<!-- loadbench:begin/ { print begin; while ((getline line < section) > 0) print line; skip = 1; next }
    /<!-- loadbench:end/ { skip = 0 }
    !skip { print }
  ' BENCHMARKS.md > "$OUT/BENCHMARKS.md" && cp "$OUT/BENCHMARKS.md" BENCHMARKS.md
  log "BENCHMARKS.md updated"
fi
