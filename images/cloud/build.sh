#!/usr/bin/env bash
# Builds the cloud's container image with podman, without a registry:
#
#   images/cloud/build.sh [--binary FILE] [--tag TAG] [--mirror URL]
#
#   --binary FILE  the cloud binary to package (default: build it with
#                  `cargo build --release --locked -p cloud`)
#   --tag TAG      image name (default localhost/gatehouse-cloud:latest)
#   --mirror URL   Debian mirror for the base (default http://deb.debian.org/debian)
#
# 1. The base: Debian bookworm (minbase + ca-certificates) made with
#    mmdebstrap into a tarball and `podman import`ed as
#    localhost/gatehouse-debian:bookworm (once; reused while it exists).
# 2. images/cloud/Containerfile: a collecting stage on that base, then a
#    FROM scratch stage with the binary, its libraries and the CA bundle.
#
# podman runs with images/cloud/containers.conf (runc, no default ulimits):
# see that file for why. Needs root, podman, runc and mmdebstrap (Debian).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary=""
tag=localhost/gatehouse-cloud:latest
base=localhost/gatehouse-debian:bookworm
mirror=http://deb.debian.org/debian

die_usage() {
  echo "build.sh: $1 (see the header of $0)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die_usage "--binary needs a file"; binary=$2; shift ;;
    --tag) [ $# -ge 2 ] || die_usage "--tag needs a name"; tag=$2; shift ;;
    --mirror) [ $# -ge 2 ] || die_usage "--mirror needs a URL"; mirror=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
  shift
done
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null ||
    { echo "build.sh: $tool is missing: apt-get install podman runc mmdebstrap" >&2; exit 3; }
done
export CONTAINERS_CONF="$here/containers.conf"
started=$(date +%s)

if [ -z "$binary" ]; then
  (cd "$repo" && cargo build --release --locked -p cloud)
  binary="${CARGO_TARGET_DIR:-$repo/target}/release/cloud"
fi
[ -x "$binary" ] || { echo "build.sh: no cloud binary at $binary" >&2; exit 3; }

if ! podman image exists "$base"; then
  echo "== base image $base from Debian packages"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mmdebstrap --variant=minbase --include=ca-certificates bookworm "$tmp/base.tar" "$mirror"
  podman import "$tmp/base.tar" "$base"
fi

echo "== image $tag"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$binary" "$ctx/cloud"
cp "$here/Containerfile" "$ctx/Containerfile"
# docker format: OCI images have no HEALTHCHECK.
podman build --format docker --network none --build-arg "BASE=$base" -t "$tag" -f "$ctx/Containerfile" "$ctx"
podman image inspect "$tag" --format 'size: {{.Size}} bytes, user: {{.User}}'
echo "built $tag in $(($(date +%s) - started)) s"
