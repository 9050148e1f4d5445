#!/usr/bin/env bash
# The OpenAPI document held against the real server by schemathesis: no
# input may get a 5xx, and every status a route answers must be documented.
#
#   TUTTI=./target/release/tutti SECONDS_BUDGET=300 bash bench/schemathesis.sh
#
# Starts `tutti serve` on a fresh SQLite file with a requester's token, a
# workspace, a job with items, a held lease and a run, then runs
# schemathesis (pip install schemathesis) with the checks
# not_a_server_error and status_code_conformance for SECONDS_BUDGET seconds.
# Revoking the caller's own token is left out (it would end the run early).
set -euo pipefail
tutti=${TUTTI:-./target/debug/tutti}
budget=${SECONDS_BUDGET:-120}
command -v schemathesis >/dev/null 2>&1 || python3 -m pip install -q schemathesis
dir=$(mktemp -d)
export TUTTI_DATABASE_URL="sqlite://$dir/st.db" TUTTI_LOG=warn
token=$("$tutti" user create req --role requester | sed -n 's/^token: //p')
worker=$("$tutti" user create wkr --role worker | sed -n 's/^token: //p')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$tutti" serve --bind "127.0.0.1:$port" --runs-dir "$dir/runs" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done
api() { curl -fs -X "$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' "$base$3" ${4:+-d "$4"}; }
ws=$(api POST "$token" /api/v1/workspaces '{"name":"Fuzz"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
me=$(api GET "$worker" /api/v1/users/me | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api PUT "$token" "/api/v1/workspaces/$ws/members/$me" '{"role":"worker"}' >/dev/null
job=$(api POST "$token" "/api/v1/workspaces/$ws/jobs" '{"name":"People","question":"Is ${name} a person?","answers":["Yes","No"],"policy":{"k":1,"n":2}}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -fs -X POST -H "Authorization: Bearer $token" -H 'content-type: text/csv' --data-binary $'name\nAda\nOslo\nGrace\n' "$base/api/v1/jobs/$job/items" >/dev/null
api POST "$worker" "/api/v1/jobs/$job/next" >/dev/null
api POST "$token" "/api/v1/workspaces/$ws/runs" '{"format":"json","program":"{\"nodes\":[{\"op\":\"read_table\",\"file\":\"t.csv\",\"outputs\":[\"T\"]},{\"op\":\"write_table\",\"inputs\":[\"T\"],\"file\":\"o.csv\"}]}","files":{"t.csv":"a\n1\n"}}' >/dev/null
schemathesis run "$base/api/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance \
  --exclude-path '/api/v1/tokens/{id}' --exclude-method DELETE \
  --max-time "$budget" --workers 2 --seed 1 --max-examples 25
