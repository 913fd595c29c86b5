#!/usr/bin/env bash
# Release check of the SD image: boots it under qemu-system-aarch64 -M virt
# -cpu cortex-a72 (software emulation; Debian's arm64 kernel and the
# image's initrd, user-mode networking), enrolls the gate at first boot
# against a cloud on this host, and admits a ticket sold by that cloud
# through the gate's local API.
#
#   images/gate-node/boot-smoke.sh [--image DIR] [--cloud-binary FILE] [--keep]
#
#   --image DIR          build-image.sh's output (gate.img, vmlinuz,
#                        initrd.img; default images/out)
#   --cloud-binary FILE  the host's cloud binary (default
#                        $CARGO_TARGET_DIR/debug/cloud)
#   --keep               keep the booted copy of the image and the logs
#
# The gate reaches the host's cloud at 10.0.2.2 (qemu's user-mode network
# maps it to the host's loopback); the gate's port 7300 is forwarded to
# 127.0.0.1:37300 and its SSH port to 127.0.0.1:37322. A copy of the image
# boots twice: first as flashed (it reaches its login prompt; no SSH server
# and no gate answer), then with the operator's files, put on its FAT
# partition with mtools (no mount):
# gate-enroll.conf, gate.env (no camera or GPIO in qemu: POST /scan stands
# in for the camera) and authorized_keys (a key made for this run, which
# also proves SSH comes on only with a key). POST /scan answers only on the
# gate itself, so the ticket is scanned from inside the gate over SSH.
# Prints each check with the time since the start; exits 1 at the first
# that fails, with the guest's console and journal.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir="$repo/images/out"
cloud_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/cloud"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --image) [ $# -ge 2 ] || { echo "--image needs a folder" >&2; exit 2; }; dir=$2; shift ;;
    --cloud-binary) [ $# -ge 2 ] || { echo "--cloud-binary needs a file" >&2; exit 2; }; cloud_bin=$2; shift ;;
    --keep) keep=1 ;;
    *) echo "boot-smoke.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
for tool in qemu-system-aarch64 mcopy sfdisk curl jq ssh ssh-keygen; do
  command -v "$tool" >/dev/null || { echo "boot-smoke.sh: $tool is missing (apt-get install qemu-system-arm mtools fdisk curl jq openssh-client)" >&2; exit 3; }
done
[ -x "$cloud_bin" ] || { echo "boot-smoke.sh: no cloud binary at $cloud_bin (cargo build -p cloud, or --cloud-binary FILE)" >&2; exit 3; }
for f in gate.img vmlinuz initrd.img; do
  [ -f "$dir/$f" ] || { echo "boot-smoke.sh: $dir/$f is missing: run build-image.sh first" >&2; exit 3; }
done
started=$(date +%s)
work=$(mktemp -d)
cloud_port=38090
gate_port=37300
ssh_port=37322
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
ok() { echo "ok ($(($(date +%s) - started)) s): $*"; }
guest() {
  ssh -q -i "$work/id_ed25519" -p "$ssh_port" -o BatchMode=yes -o ConnectTimeout=10 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 "$@"
}
fail() {
  echo "FAILED ($(($(date +%s) - started)) s): $*" >&2
  echo "--- guest console $console (last 60 lines)" >&2
  tail -n 60 "$console" >&2 || true
  echo "--- guest journal of the gate units (if SSH is up)" >&2
  guest journalctl --no-pager -n 60 -u gate-node -u gate-node-enroll >&2 2>/dev/null || true
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

ssh-keygen -q -t ed25519 -N '' -C boot-smoke -f "$work/id_ed25519"
cp --sparse=always "$dir/gate.img" "$work/gate.img"
offset=$(($(sfdisk --json "$work/gate.img" | jq '.partitiontable.partitions[0].start') * 512))
console="$work/console-1.log"
cmdline="root=LABEL=RASPIROOT ro console=ttyAMA0 systemd.show_status=1"
boot() {
  console=$1
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -accel tcg,thread=multi \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.img" -append "$cmdline" \
    -drive "file=$work/gate.img,format=raw,if=virtio" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$gate_port-:7300,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
    -device virtio-net-pci,netdev=net0 \
    -serial "file:$console" -monitor none -display none &
  pids+=($!)
  qemu_pid=$!
}
wait_for_root() {
  if [ -z "$found_root" ] && grep -q 'initramfs: root LABEL=RASPIROOT is' "$console" 2>/dev/null; then
    found_root=1
    ok "kernel up; the initramfs found the root: $(grep -a -o 'initramfs: root LABEL=RASPIROOT is [^ ]*' "$console" | head -n1)"
  fi
}
gate="http://127.0.0.1:$gate_port"

# Boot 1, the image as flashed, no operator files: it comes up to a login
# prompt, and neither SSH nor the gate answers (not enrolled, no key).
boot "$work/console-1.log"
found_root=""
for _ in $(seq 1 900); do
  kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited"
  wait_for_root
  grep -q 'gate login:' "$console" 2>/dev/null && break
  sleep 1
done
grep -q 'gate login:' "$console" || fail "the image as flashed did not reach its login prompt within 15 minutes"
ok "the image as flashed boots to its login prompt"
sleep 5
banner=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ssh_port && head -c 4 <&3" 2>/dev/null) || true
[ "$banner" != SSH- ] || fail "an SSH server answers on an image without authorized_keys"
if guest true 2>/dev/null; then fail "SSH lets us in on an image without authorized_keys"; fi
ok "without authorized_keys no SSH server answers"
if curl -fsS --max-time 3 "$gate/status" >/dev/null 2>&1; then fail "gate-node runs on an image that was never enrolled"; fi
ok "without gate-enroll.conf gate-node does not run"
kill "$qemu_pid"
wait "$qemu_pid" 2>/dev/null || true

# The operator's files on the boot partition (FAT, at the image's first
# partition), written with mtools: no mount.
printf 'cloud=http://10.0.2.2:%s\ncode=%s\nname=qemu gate\n' "$cloud_port" "$code" >"$work/gate-enroll.conf"
# No camera or GPIO in qemu; POST /scan stands in for the camera.
printf 'GATE_SOURCE__KIND=none\nGATE_REQUIRE_GPIO=false\nGATE_SCAN_ENDPOINT=true\nGATE_MDNS=false\n' >"$work/gate.env"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
mcopy -o -i "$work/gate.img@@$offset" "$work/gate-enroll.conf" "$work/gate.env" "$work/authorized_keys" ::/
ok "operator files written to the image's FAT partition (mtools)"

# Boot 2: first-boot enrolls, turns SSH on and starts the gate.
boot "$work/console-2.log"
found_root=""
for _ in $(seq 1 900); do
  kill -0 "$qemu_pid" 2>/dev/null || fail "qemu exited"
  wait_for_root
  status=$(curl -fsS --max-time 3 "$gate/status" 2>/dev/null) && break
  sleep 1
done
[ -n "${status:-}" ] || fail "the gate's status API did not answer within 15 minutes"
[ "$(jq -r .event_id <<<"$status")" = "$event" ] || fail "the gate serves another event: $status"
jq -e '.manifest.version > 0' <<<"$status" >/dev/null || fail "the gate holds no manifest: $status"
ok "gate-node enrolled at boot; GET /status over the forwarded port answers for event $event (gate $(jq -r .gate <<<"$status"), manifest $(jq -c .manifest <<<"$status"))"

for _ in $(seq 1 60); do guest true 2>/dev/null && break; sleep 2; done
guest true || fail "SSH with the key from authorized_keys does not let us in"
ok "SSH came on with the key from the boot partition (key-only)"
# Each check runs one shell command line on the gate over SSH (ssh hands
# the remote shell one string) and compares its output.
check() {
  local what=$1 want=$2 command=$3 got
  got=$(guest "$command" 2>&1) || true
  [ "$got" = "$want" ] || fail "$what: '$command' printed '$got', expected '$want'"
  ok "$what: $want"
}
check "gate-node.service" "active" 'systemctl is-active gate-node.service'
check "service type and watchdog" "notify 30s" \
  'echo $(systemctl show -p Type --value gate-node.service) $(systemctl show -p WatchdogUSec --value gate-node.service)'
check "the daemon's user" "gate-node" 'stat -c %U "/proc/$(systemctl show -p MainPID --value gate-node.service)"'
check "the gpio group" "gate-node" 'getent group gpio | cut -d: -f4'
check "root file system" "ro" 'findmnt -n -o OPTIONS / | cut -d, -f1'
check "/var on the data partition" "GATEDATA rw" 'echo $(findmnt -n -o LABEL,OPTIONS /var | cut -d, -f1)'
check "systemd-timesyncd" "active" 'systemctl is-active systemd-timesyncd.service'
check "systemd-journald, persistent on /var" "active yes" \
  'echo $(systemctl is-active systemd-journald) $(test -d /var/log/journal/$(cat /etc/machine-id) && echo yes || echo no)'
check "enrollment file consumed" "gone" 'test -e /boot/firmware/gate-enroll.conf && echo present || echo gone'
check "enrollment result on the boot partition" "1" 'grep -c "^[^ ]* enrolled: enrolled as node" /boot/firmware/gate-enroll.result'
check "password login refused by sshd" "passwordauthentication no" 'sshd -T 2>/dev/null | grep -i "^passwordauthentication "'
check "failed units" "0" 'systemctl list-units --failed --no-legend | wc -l'

scan_json="{\"text\":\"$credential\"}"
outside=$(curl -sS -o /dev/null -w '%{http_code}' "$gate/scan" -H 'content-type: application/json' -d "$scan_json")
[ "$outside" = 403 ] || fail "POST /scan from outside the gate answered $outside, expected 403"
ok "POST /scan from outside the gate is refused (403)"
wget_scan="busybox wget -q -O - --header 'content-type: application/json' --post-data '$scan_json' http://127.0.0.1:7300/scan"
local_scan() { guest "$wget_scan"; }
# The first read and a repeat right after it, in one SSH session so both
# fall within debounce_ms (2 s in gate.toml): one scan, not a second entry.
pair=$(guest "$wget_scan && echo && $wget_scan") || fail "POST /scan on the gate failed: $pair"
decision=$(jq -c -s '.[0]' <<<"$pair") || fail "POST /scan on the gate did not answer JSON: $pair"
repeat=$(jq -c -s '.[1]' <<<"$pair")
[ "$(jq -r .decision <<<"$decision")" = admit ] || fail "the ticket was not admitted: $decision"
ok "ticket admitted through the gate's local API (POST /scan on the gate)"
jq -e --arg id "$(jq -r .scan_id <<<"$decision")" '.repeat == true and .scan_id == $id' <<<"$repeat" >/dev/null ||
  fail "a repeat read within the debounce window was not folded into the first scan: $repeat"
ok "a repeat read within 2 s is the same scan ($(jq -r .scan_id <<<"$repeat"))"
sleep 3
again=$(local_scan) || fail "POST /scan on the gate failed: $again"
[ "$(jq -r .decision <<<"$again")" != admit ] || fail "the same ticket was admitted twice: $again"
ok "the same ticket is refused at the next scan ($(jq -r .reason <<<"$again"))"
for _ in $(seq 1 30); do
  status=$(curl -fsS --max-time 3 "$gate/status") &&
    jq -e '.records >= 1 and .pending.pending == 0' <<<"$status" >/dev/null && break
  sleep 2
done
jq -e '.records >= 1 and .pending.pending == 0' <<<"$status" >/dev/null ||
  fail "the gate's scans did not reach the cloud: records $(jq -c .records <<<"$status"), pending $(jq -c .pending <<<"$status")"
ok "the scans reached the cloud ($(jq -r .records <<<"$status") records, pending 0)"
echo "boot smoke passed in $(($(date +%s) - started)) s"
