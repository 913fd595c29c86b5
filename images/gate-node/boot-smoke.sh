#!/usr/bin/env bash
# Release check of the SD image: boots it under qemu-system-aarch64 -M virt
# (Debian's arm64 kernel and initrd from the image, user-mode networking),
# enrolls the gate at first boot against a cloud on this host, and admits a
# ticket sold by that cloud through the gate's local API.
#
#   images/gate-node/boot-smoke.sh [--image DIR] [--cloud-binary FILE]
#
#   --image DIR          build-image.sh's output (gate.img, vmlinuz,
#                        initrd.img; default images/out)
#   --cloud-binary FILE  the host's cloud binary (default
#                        $CARGO_TARGET_DIR/debug/cloud)
#
# The gate reaches the host's cloud at 10.0.2.2 (qemu's user-mode network
# maps it to the host's loopback); the gate's port 7300 is forwarded to
# 127.0.0.1:37300. Prints what it checked and how long it took.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir="$repo/images/out"
cloud_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/cloud"
while [ $# -gt 0 ]; do
  case "$1" in
    --image) [ $# -ge 2 ] || { echo "--image needs a folder" >&2; exit 2; }; dir=$2; shift ;;
    --cloud-binary) [ $# -ge 2 ] || { echo "--cloud-binary needs a file" >&2; exit 2; }; cloud_bin=$2; shift ;;
    *) echo "boot-smoke.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
for tool in qemu-system-aarch64 mcopy curl jq; do
  command -v "$tool" >/dev/null || { echo "boot-smoke.sh: $tool is missing (apt-get install qemu-system-arm mtools curl jq)" >&2; exit 3; }
done
for f in gate.img vmlinuz initrd.img; do
  [ -f "$dir/$f" ] || { echo "boot-smoke.sh: $dir/$f is missing: run build-image.sh first" >&2; exit 3; }
done
started=$(date +%s)
work=$(mktemp -d)
cloud_port=38090
gate_port=37300
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ok() { echo "ok ($(($(date +%s) - started)) s): $*"; }
fail() {
  echo "FAILED: $*" >&2
  tail -n 40 "$work/console.log" >&2 || true
  exit 1
}

# The cloud, on a fresh SQLite database; the gate reaches it as 10.0.2.2.
CLOUD_DATA_DIR="$work/cloud" CLOUD_SERVER__BIND="127.0.0.1:$cloud_port" \
  CLOUD_AUTH__BOOTSTRAP_ADMIN_EMAIL=admin@smoke.test \
  CLOUD_AUTH__BOOTSTRAP_ADMIN_PASSWORD=smoke-admin-password \
  "$cloud_bin" serve >"$work/cloud.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$cloud_port"
for _ in $(seq 1 120); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$base/readyz" >/dev/null || fail "the cloud did not start (see $work/cloud.log)"
call() {
  local args=(-fsS -X "$1" "$base$2" -H 'content-type: application/json')
  [ -z "$3" ] || args+=(-H "authorization: Bearer $3")
  [ $# -lt 4 ] || args+=(-d "$4")
  curl "${args[@]}" || fail "$1 $2"
}
admin=$(call POST /auth/login "" '{"email":"admin@smoke.test","password":"smoke-admin-password"}' | jq -r .access_token)
org_id=$(call POST /auth/register "" '{"email":"org@smoke.test","password":"correct horse battery","display_name":"Org"}' | jq -r .user.id)
call PATCH "/users/$org_id/role" "$admin" '{"role":"organizer"}' >/dev/null
org=$(call POST /auth/login "" '{"email":"org@smoke.test","password":"correct horse battery"}' | jq -r .access_token)
event=$(call POST /events "$org" '{"name":"Boot Smoke","venue":"Pier 4","currency":"EUR","starts_at":"2031-06-01T18:00:00Z","ends_at":"2031-06-01T23:30:00Z","tiers":[{"tier":1,"name":"GA","price_minor":2500,"capacity":100}]}' | jq -r .id)
call PATCH "/events/$event/status" "$org" '{"status":"active"}' >/dev/null
code=$(call POST /devices/enrollment-codes "$org" "{\"event_id\":\"$event\",\"gate\":\"North\",\"direction\":\"entry\",\"require_listed\":false}" | jq -r .code)
credential=$(call POST "/events/$event/ticket-sale" "$org" '{"tier":1,"quantity":1,"holder_name":"Jensen","payment_method":"cash"}' | jq -r '.tickets[0].credential')
ok "cloud on the host: event $event, enrollment code, a ticket sold"

# The operator's files on the boot partition (FAT, at the image's first
# partition), written with mtools: no mount.
cp --sparse=always "$dir/gate.img" "$work/gate.img"
offset=$(($(sfdisk --json "$work/gate.img" | jq '.partitiontable.partitions[0].start') * 512))
printf 'cloud=http://10.0.2.2:%s\ncode=%s\nname=qemu gate\n' "$cloud_port" "$code" >"$work/gate-enroll.conf"
# No camera or GPIO in qemu; POST /scan stands in for the camera.
printf 'GATE_SOURCE__KIND=none\nGATE_REQUIRE_GPIO=false\nGATE_SCAN_ENDPOINT=true\nGATE_MDNS=false\n' >"$work/gate.env"
mcopy -o -i "$work/gate.img@@$offset" "$work/gate-enroll.conf" "$work/gate.env" ::/

cmdline="root=LABEL=RASPIROOT ro rootwait console=ttyAMA0 systemd.show_status=1"
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -nographic \
  -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" -append "$cmdline" \
  -drive "file=$work/gate.img,format=raw,if=virtio" \
  -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$gate_port-:7300" \
  -device virtio-net-pci,netdev=net0 \
  -serial "file:$work/console.log" -monitor none -display none &
pids+=($!)
gate="http://127.0.0.1:$gate_port"
for _ in $(seq 1 600); do
  status=$(curl -fsS --max-time 3 "$gate/status" 2>/dev/null) && break
  kill -0 "${pids[1]}" 2>/dev/null || fail "qemu exited"
  sleep 1
done
[ -n "${status:-}" ] || fail "the gate's status API did not answer within 10 minutes"
[ "$(jq -r .event_id <<<"$status")" = "$event" ] || fail "the gate serves another event: $status"
ok "booted; gate-node enrolled at first boot and its status API answers for event $event"
decision=$(curl -fsS "$gate/scan" -H 'content-type: application/json' -d "{\"text\":\"$credential\"}")
[ "$(jq -r .decision <<<"$decision")" = admit ] || fail "the ticket was not admitted: $decision"
ok "ticket admitted through the gate's local API"
again=$(curl -fsS "$gate/scan" -H 'content-type: application/json' -d "{\"text\":\"$credential\"}")
[ "$(jq -r .decision <<<"$again")" != admit ] || fail "the same ticket was admitted twice: $again"
ok "the same ticket is refused the second time ($(jq -r .reason <<<"$again"))"
echo "boot smoke passed in $(($(date +%s) - started)) s"
