#!/usr/bin/env bash
# Builds a flashable SD-card image for a Raspberry Pi 3/4 gate (arm64):
# Debian bookworm from Debian's apt repositories (mmdebstrap), Debian's
# arm64 kernel and raspi-firmware, and gate-node cross-built from this
# repository, run by a hardened systemd unit.
#
#   sudo images/gate-node/build-image.sh [--out DIR] [--binary FILE] [--mirror URL]
#
#   --out DIR      where gate.img (and its parts) go (default images/out)
#   --binary FILE  an aarch64 gate-node binary (default: build one with
#                  images/gate-node/cross-build.sh)
#   --mirror URL   Debian mirror (default http://deb.debian.org/debian)
#
# The image: partition 1 FAT32 "RASPIFIRM" (firmware, kernel, config.txt,
# cmdline.txt, and the operator's first-boot files), partition 2 ext4
# "RASPIROOT" mounted read-only, partition 3 ext4 "GATEDATA" mounted on /var
# (the scan log in /var/lib/gate-node, the journal, the clock file).
# No file system is mounted to build it: mkfs.ext4 -d fills the ext4
# partitions from folders, mtools writes the FAT one, sfdisk partitions the
# image file. Package configuration runs arm64 code through qemu-user-static
# registered with binfmt_misc (registered here if it is not). Debian's
# mkinitramfs is not run under emulation (it took most of an hour there):
# update-initramfs is diverted to a no-op while packages are configured and
# make-initramfs.sh builds a small initramfs natively on this host (busybox-
# static and the modules that reach the root: SD card on a Pi, virtio under
# qemu), then the real update-initramfs is put back for kernel updates.
#
# Needs root and Debian packages mmdebstrap qemu-user-static e2fsprogs
# dosfstools mtools fdisk kmod cpio (and what cross-build.sh needs).
# Exit codes: 0 built; 2 bad arguments; 3 a tool or a prerequisite is
# missing (the message says which and how to get it); other: a step failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/images/out"
binary=""
mirror=http://deb.debian.org/debian
suite=bookworm
boot_mib=256
root_mib=1400
data_mib=300

die_usage() {
  echo "build-image.sh: $1 (see the header of $0)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die_usage "--out needs a directory"; out=$2; shift ;;
    --binary) [ $# -ge 2 ] || die_usage "--binary needs a file"; binary=$2; shift ;;
    --mirror) [ $# -ge 2 ] || die_usage "--mirror needs a URL"; mirror=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
  shift
done

missing() {
  echo "build-image.sh: $1" >&2
  exit 3
}
[ "$(id -u)" = 0 ] || missing "run as root (mmdebstrap needs it to set file owners)"
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy mmd sfdisk qemu-aarch64-static modprobe depmod cpio file; do
  command -v "$tool" >/dev/null ||
    missing "$tool is missing: apt-get install mmdebstrap e2fsprogs dosfstools mtools fdisk qemu-user-static kmod cpio file"
done
# Package set-up runs arm64 programs: the kernel hands them to qemu through
# binfmt_misc. Register Debian's handler if it is not (as root; this is what
# systemd-binfmt does at boot on a normal host).
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "== registering qemu-aarch64 with binfmt_misc"
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    missing "cannot mount binfmt_misc (output above), so arm64 programs cannot run here and package set-up needs them"
  [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || missing "/usr/lib/binfmt.d/qemu-aarch64.conf is missing: apt-get install qemu-user-static"
  cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register ||
    missing "cannot register /usr/lib/binfmt.d/qemu-aarch64.conf with binfmt_misc (output above)"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
started=$(date +%s)
if [ -z "$binary" ]; then
  "$here/cross-build.sh" --out "$out"
  binary="$out/gate-node"
fi
[ -x "$binary" ] || missing "no gate-node binary at $binary"
file -b "$binary" | grep -q aarch64 || missing "$binary is not an aarch64 program: $(file -b "$binary")"

work="$out/work"
rm -rf "$work"
mkdir -p "$work"
root="$work/root"

echo "== mmdebstrap $suite arm64 into $root"
root_started=$(date +%s)
# Everything the gate needs: systemd with journald, timesyncd (the Pi has
# no battery clock), networkd + resolved (DHCP on the wired port), udev for
# the camera and GPIO devices, the kernel and the Pi firmware, and an SSH
# server that stays off until the operator supplies a key.
# busybox-static is the initramfs's only program (make-initramfs.sh);
# e2fsprogs checks the file systems at boot. No manuals, docs or
# translations on an SD card (copyright files stay).
mmdebstrap --arch=arm64 --variant=minbase --mode=root \
  --components=main,non-free-firmware \
  --include=systemd,systemd-sysv,udev,dbus,systemd-timesyncd,systemd-resolved,ca-certificates,iproute2,openssh-server,linux-image-arm64,raspi-firmware,firmware-brcm80211,initramfs-tools,kmod,file,busybox-static,e2fsprogs \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --essential-hook="$here/image-essential.sh \"\$1\"" \
  --customize-hook="$here/image-customize.sh \"\$1\" \"$binary\" \"$repo\"" \
  "$suite" "$root" "$mirror"
debootstrapped=$(date +%s)

echo "== file systems (no mounts)"
boot="$work/boot.vfat"
rootfs="$work/root.ext4"
datafs="$work/data.ext4"
# /var becomes its own partition; the root keeps an empty mount point.
mv "$root/var" "$work/var"
mkdir -m 0755 "$root/var"
mv "$root/boot/firmware" "$work/firmware"
mkdir -m 0755 "$root/boot/firmware"
mkfs.ext4 -q -F -L RASPIROOT -d "$root" "$rootfs" "${root_mib}M"
mkfs.ext4 -q -F -L GATEDATA -d "$work/var" "$datafs" "${data_mib}M"
rm -f "$boot"
mkfs.vfat -C -F 32 -n RASPIFIRM "$boot" $((boot_mib * 1024)) >/dev/null
mcopy -s -i "$boot" "$work/firmware/"* ::/

echo "== partition table and image"
img="$out/gate.img"
start=8 # MiB: leaves room for the partition table, aligned for SD cards
total=$((start + boot_mib + root_mib + data_mib + 1))
rm -f "$img"
truncate -s "${total}M" "$img"
sfdisk --quiet "$img" <<EOF
label: dos
${start}MiB,${boot_mib}MiB,c,*
$((start + boot_mib))MiB,${root_mib}MiB,83
$((start + boot_mib + root_mib))MiB,${data_mib}MiB,83
EOF
dd if="$boot" of="$img" bs=1M seek="$start" conv=notrunc status=none
dd if="$rootfs" of="$img" bs=1M seek=$((start + boot_mib)) conv=notrunc status=none
dd if="$datafs" of="$img" bs=1M seek=$((start + boot_mib + root_mib)) conv=notrunc status=none

# The boot smoke test boots Debian's kernel and the image's initrd directly.
cp "$work"/firmware/vmlinuz-* "$out/vmlinuz"
cp "$work"/firmware/initrd.img-* "$out/initrd.img"
rm -rf "$work"
sfdisk --dump "$img"
echo "image: $img ($(du -h --apparent-size "$img" | cut -f1), built in $(($(date +%s) - started)) s; root and packages $((debootstrapped - root_started)) s)"
echo "flash: dd if=$img of=/dev/sdX bs=4M conv=fsync status=progress"
