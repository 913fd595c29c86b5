#!/usr/bin/env bash
# Cross-builds gate-node for a Raspberry Pi (aarch64-unknown-linux-gnu) on an
# x86_64 Debian host, and proves it under qemu user emulation.
#
#   images/gate-node/cross-build.sh [--test] [--profile release|dev] [--out DIR]
#   images/gate-node/cross-build.sh --check      # only check the toolchain
#   images/gate-node/cross-build.sh --dry-run    # print what would run
#
#   --test     also build gate-node's tests for aarch64 and run the engine's
#              and store's unit tests and the CLI tests (`gate-node scan
#              --image` on a ticket QR, admitting) under qemu-aarch64-static
#   --profile  cargo profile (default release: the shipped binary)
#   --out DIR  copy the binary to DIR/gate-node (default images/out)
#
# Needs: Debian packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross (and
# qemu-user-static for --test), plus Rust's standard library for the target
# (`rustup target add aarch64-unknown-linux-gnu`). The target comes from the
# Rust toolchain server, which is not a promised source: when it cannot be
# had, this script says so and stops (exit 3).
#
# Exit codes: 0 done; 2 bad arguments; 3 a tool or the target is missing;
# anything else: the build or a test failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
profile=release
out="$repo/images/out"
run_tests=0
check_only=0
dry_run=0

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}
die_usage() {
  echo "cross-build.sh: $1" >&2
  echo "run with --help for the options" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --test) run_tests=1 ;;
    --check) check_only=1 ;;
    --dry-run) dry_run=1 ;;
    --profile)
      [ $# -ge 2 ] || die_usage "--profile needs a value (release or dev)"
      case "$2" in
        release | dev) profile=$2 ;;
        *) die_usage "unknown profile '$2': use release or dev" ;;
      esac
      shift
      ;;
    --out)
      [ $# -ge 2 ] && [ -n "$2" ] || die_usage "--out needs a directory"
      out=$2
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
  shift
done

missing() {
  echo "cross-build.sh: $1" >&2
  exit 3
}

check_tools() {
  command -v cargo >/dev/null || missing "cargo is not installed (install Rust with rustup)"
  command -v aarch64-linux-gnu-gcc >/dev/null ||
    missing "aarch64-linux-gnu-gcc is missing: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  [ -e "$sysroot/include/stdio.h" ] && [ -e "$sysroot/include/linux/videodev2.h" ] ||
    missing "the arm64 C library headers are missing in $sysroot: apt-get install libc6-dev-arm64-cross"
  if [ "$run_tests" = 1 ]; then
    command -v qemu-aarch64-static >/dev/null ||
      missing "qemu-aarch64-static is missing: apt-get install qemu-user-static"
  fi
  local sysroot_dir
  sysroot_dir=$(rustc --print sysroot)
  if [ -d "$sysroot_dir/lib/rustlib/$target/lib" ]; then
    return 0
  fi
  command -v rustup >/dev/null ||
    missing "Rust's standard library for $target is not installed and there is no rustup to fetch it; install a toolchain that has it"
  echo "== rustup target add $target"
  if ! rustup target add "$target"; then
    missing "Rust's standard library for $target cannot be had: 'rustup target add $target' failed (the toolchain server is unreachable or lacks it). Install it from an offline rustup mirror or a toolchain archive that contains rust-std-$target, then run this again."
  fi
}

# The cross toolchain: linker and C compiler (rusqlite's bundled SQLite,
# aws-lc), and the sysroot bindgen needs for the V4L2 headers (nokhwa).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=$sysroot"
# Test binaries run under qemu; processes they spawn (the gate-node binary
# in the CLI tests) find the arm64 loader through QEMU_LD_PREFIX.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $sysroot"
export QEMU_LD_PREFIX=$sysroot

profile_dir=$profile
[ "$profile" = dev ] && profile_dir=debug
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin="$target_dir/$target/$profile_dir/gate-node"

run() {
  echo "+ $*"
  [ "$dry_run" = 1 ] || "$@"
}

if [ "$dry_run" = 0 ]; then
  check_tools
fi
if [ "$check_only" = 1 ]; then
  echo "toolchain ready: $target ($(aarch64-linux-gnu-gcc -dumpversion), $(rustc --version))"
  exit 0
fi

cd "$repo"
if [ "$run_tests" = 1 ]; then
  # The CLI tests spawn the aarch64 gate-node binary; without a binfmt_misc
  # handler for arm64 the kernel cannot exec it.
  if [ "$dry_run" = 0 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    missing "no binfmt_misc handler for arm64 executables: as root run 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register' (Debian's qemu-user-static ships the handler)"
  fi
  echo "== building and running gate-node's tests for $target under qemu"
  started=$(date +%s)
  run cargo test --locked --profile "$profile" -p gate-node --target "$target" --lib -- \
    engine:: store::
  run cargo test --locked --profile "$profile" -p gate-node --target "$target" --test engine -- \
    cli::
  echo "tests under qemu took $(($(date +%s) - started)) s"
fi

echo "== building gate-node for $target ($profile)"
run cargo build --locked --profile "$profile" -p gate-node --target "$target" --bin gate-node
run mkdir -p "$out"
run install -m 0755 "$bin" "$out/gate-node"
if [ "$dry_run" = 0 ]; then
  file "$out/gate-node" 2>/dev/null || true
  echo "binary: $out/gate-node"
fi
