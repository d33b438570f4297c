#!/usr/bin/env bash
# Real clients against a real, running server: the GraphQL-over-HTTP audit
# (graphql-http's serverAudits) and GraphiQL driven in headless Chromium.
#
#   bash tests/clients/run.sh [path/to/servicegraph]   (default: target/release/servicegraph)
#
# Needs Node.js 20+, and for the browser check Debian's chromium
# (/usr/bin/chromium). Starts the server on a free loopback port with a
# fresh SQLite data directory and a generated HS256 secret (not development
# mode, so GraphiQL asks for a token), loads the demo data, mints an admin
# token with `servicegraph token`, runs each check, and stops the server.
# Any failed check fails the script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/target/release/servicegraph}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

(cd "$here" && { [ -d node_modules ] && [ -z "${CI:-}" ] || npm ci --no-audit --no-fund --silent; })

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export SERVICEGRAPH_DATA_DIR="$work/data" SERVICEGRAPH_LISTEN="127.0.0.1:$port"
SERVICEGRAPH_AUTH__HS256_SECRET="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
export SERVICEGRAPH_AUTH__HS256_SECRET
unset DATABASE_URL SERVICEGRAPH_DATABASE__URL
"$bin" seed --demo >/dev/null
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }
url="http://127.0.0.1:$port"
token="$("$bin" token --subject admin@provider --role admin)"

status=0
for check in "$here"/check-*.mjs; do
  echo "== $(basename "$check")"
  # Only the checks see these: the server reads SERVICEGRAPH_* as its settings.
  SERVICEGRAPH_URL="$url" SERVICEGRAPH_TOKEN="$token" node "$check" || status=1
done
if [ "$status" -ne 0 ]; then
  echo "-- server log"
  tail -n 50 "$work/server.log"
fi
exit "$status"
