#!/usr/bin/env bash
# Compiles the ticket contract with solcjs (pinned in package.json) and
# writes its ABI and bytecode to cloud/contracts/artifacts/ (checked in).
# `OUT=DIR build.sh` writes elsewhere (the artifact test compares the two).
set -euo pipefail
cd "$(dirname "$0")"
[ -x node_modules/.bin/solcjs ] || { echo "solcjs missing: run scripts/setup" >&2; exit 1; }
out="${OUT:-artifacts}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
./node_modules/.bin/solcjs --bin --abi --optimize --optimize-runs 200 \
  --base-path . --include-path node_modules -o "$tmp" src/GatehouseTicket.sol >/dev/null
mkdir -p "$out"
cp "$tmp/src_GatehouseTicket_sol_GatehouseTicket.abi" "$out/GatehouseTicket.abi.json"
cp "$tmp/src_GatehouseTicket_sol_GatehouseTicket.bin" "$out/GatehouseTicket.bin"
