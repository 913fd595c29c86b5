#!/usr/bin/env bash
# Runs the cloud's container image against the host's PostgreSQL and checks
# it as an operator would: the container's own health check passes,
# /healthz and /readyz answer, and a purchase goes through (an organizer's
# event, a buyer's order, paid, a ticket with its QR credential issued).
#
#   images/cloud/smoke.sh [--image TAG] [--database-url URL] [--port PORT]
#
# Defaults: localhost/gatehouse-cloud:latest, a fresh database on
# postgres://postgres@127.0.0.1:5432 (dropped afterwards), port 38080.
# The container uses the host's network (podman --network host), so it
# reaches PostgreSQL on loopback. Prints one line per check and the time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=localhost/gatehouse-cloud:latest
pg=postgres://postgres@127.0.0.1:5432
db_url=""
port=38080
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image=$2; shift ;;
    --database-url) db_url=$2; shift ;;
    --port) port=$2; shift ;;
    *) echo "smoke.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
export CONTAINERS_CONF="$here/containers.conf"
started=$(date +%s)
name="gatehouse-smoke-$$"
db=""
if [ -z "$db_url" ]; then
  db="gh_smoke_$$"
  psql -q "$pg/postgres" -c "CREATE DATABASE $db"
  db_url="$pg/$db"
fi
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  [ -z "$db" ] || psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

ok() { echo "ok: $*"; }
fail() {
  echo "FAILED: $*" >&2
  podman logs --tail 30 "$name" >&2 || true
  exit 1
}

podman run -d --name "$name" --network host --read-only --cap-drop ALL \
  --security-opt no-new-privileges \
  --tmpfs /tmp --tmpfs /var/lib/cloud:rw,mode=1777 \
  -e CLOUD_SERVER__BIND="127.0.0.1:$port" \
  -e CLOUD_DATABASE__URL="$db_url" \
  -e CLOUD_AUTH__JWT_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  -e CLOUD_KEYS__MASTER_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  -e CLOUD_AUTH__BOOTSTRAP_ADMIN_EMAIL=admin@smoke.test \
  -e CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD=smoke-admin-password \
  "$image" serve >/dev/null
user=$(podman inspect "$name" --format '{{.Config.User}}')
[ "$user" = "10001:10001" ] || fail "the container runs as $user, not 10001"
ok "container started as uid 10001 (read-only root, no capabilities)"

base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  [ "$(podman inspect "$name" --format '{{.State.Running}}')" = true ] || fail "the container exited"
  sleep 0.5
done
curl -fsS "$base/healthz" | grep -q '"ok"' || fail "/healthz"
ok "/healthz answers"
curl -fsS "$base/readyz" | grep -q '"postgres"' || fail "/readyz (PostgreSQL)"
ok "/readyz answers: ready on postgres"
podman healthcheck run "$name" || fail "the image's HEALTHCHECK"
ok "the image's own health check passes"

call() { # METHOD PATH TOKEN [BODY] -> body; fails on a non-2xx answer
  local args=(-fsS -X "$1" "$base$2" -H 'content-type: application/json')
  [ -z "$3" ] || args+=(-H "authorization: Bearer $3")
  [ $# -lt 4 ] || args+=(-d "$4")
  curl "${args[@]}" || fail "$1 $2"
}
admin=$(call POST /auth/login "" '{"email":"admin@smoke.test","password":"smoke-admin-password"}' | jq -r .access_token)
org_id=$(call POST /auth/register "" '{"email":"org@smoke.test","password":"correct horse battery","display_name":"Org"}' | jq -r .user.id)
call PATCH "/users/$org_id/role" "$admin" '{"role":"organizer"}' >/dev/null
org=$(call POST /auth/login "" '{"email":"org@smoke.test","password":"correct horse battery"}' | jq -r .access_token)
event=$(call POST /events "$org" '{"name":"Smoke Test Night","venue":"Pier 4","currency":"EUR","starts_at":"2031-06-01T18:00:00Z","ends_at":"2031-06-01T23:30:00Z","tiers":[{"tier":1,"name":"GA","price_minor":2500,"capacity":100}]}' | jq -r .id)
call PATCH "/events/$event/status" "$org" '{"status":"active"}' >/dev/null
buyer=$(call POST /auth/register "" '{"email":"fan@smoke.test","password":"correct horse battery","display_name":"Fan"}' | jq -r .access_token)
order=$(call POST /orders "$buyer" "{\"event_id\":\"$event\",\"items\":[{\"tier\":1,\"quantity\":1}]}" | jq -r .id)
ticket=$(call PUT "/orders/$order/status" "$org" '{"status":"paid"}' | jq -r '.ticket_ids[0]')
credential=$(call GET "/tickets/$ticket" "$buyer" | jq -r .credential)
[ -n "$credential" ] && [ "$credential" != null ] || fail "the ticket has no credential"
ok "purchase: order $order paid, ticket $ticket issued with a ${#credential}-character QR credential"
echo "image $image passed in $(($(date +%s) - started)) s"
