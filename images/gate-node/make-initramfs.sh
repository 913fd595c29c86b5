#!/usr/bin/env bash
# Builds the gate image's initramfs on the build host, natively (nothing
# runs under emulation): Debian's arm64 busybox-static from ROOT as the only
# program, images/gate-node/initramfs-init as /init, and the kernel modules
# from ROOT that reach the root file system on a Raspberry Pi 3/4 (SD card:
# mmc, sdhci-iproc, bcm2835 sdhost and the firmware, clock, power, GPIO and
# regulator drivers they hang on) and under qemu -M virt (virtio), with ext4
# and everything they depend on (resolved by the host's kmod from ROOT's
# modules.dep). Called by build-image.sh; replaces Debian's mkinitramfs,
# which took most of an hour under qemu-user (see images/README.md).
#
#   make-initramfs.sh ROOT KVER OUT
#
#   ROOT  the arm64 root (with busybox-static and linux-image-KVER in it)
#   KVER  the kernel release (a folder in ROOT/lib/modules)
#   OUT   the initramfs to write (gzip-compressed newc cpio)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 3 ]; then
  echo "make-initramfs.sh: needs ROOT KVER OUT (see the header of $0)" >&2
  exit 2
fi
root=$1
kver=$2
out=$3
mods="$root/lib/modules/$kver"
missing() {
  echo "make-initramfs.sh: $1" >&2
  exit 3
}
[ -f "$mods/modules.dep" ] || missing "$mods/modules.dep is missing: is linux-image-$kver installed in $root?"
[ -x "$root/bin/busybox" ] || missing "$root/bin/busybox is missing: install busybox-static in the root"
file -b "$root/bin/busybox" | grep -q 'aarch64.*statically linked' ||
  missing "$root/bin/busybox is not a static aarch64 program: $(file -b "$root/bin/busybox")"
for tool in modprobe depmod cpio gzip; do
  command -v "$tool" >/dev/null || missing "$tool is missing on the host: apt-get install kmod cpio gzip"
done

# Loaded at every boot: ext4 (no device to match) and the drivers of the
# Pi 4's and Pi 3's SD card controllers and of qemu's virtio disk, so the
# root shows up without matching devices first; /init loads what matches
# the devices present (busybox modprobe on their modaliases) only while it
# does not. Names as modprobe takes them.
always=(ext4 crc32c_generic mmc_block sdhci-iproc bcm2835 virtio_pci virtio_mmio virtio_blk)
# Folders (under kernel/) and single modules whose drivers may be needed
# to see the SD card or the virtual disk; only what exists is taken.
wanted=(
  drivers/mmc
  drivers/virtio
  drivers/block/virtio_blk.ko
  drivers/firmware/raspberrypi.ko
  drivers/clk/bcm
  drivers/soc/bcm
  drivers/pmdomain/bcm
  drivers/pinctrl/bcm
  drivers/mailbox/bcm2835-mailbox.ko
  drivers/dma/bcm2835-dma.ko
  drivers/gpio/gpio-raspberrypi-exp.ko
  drivers/reset/reset-raspberrypi.ko
  drivers/regulator/gpio-regulator.ko
  drivers/regulator/fixed.ko
  fs/ext4
  crypto/crc32c_generic.ko
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir -p "$tree"/{bin,sbin,etc,proc,sys,dev,run,root,tmp,"lib/modules/$kver"}

# Module files: the wanted ones, then their dependencies.
list="$work/modules"
: >"$list"
for w in "${wanted[@]}"; do
  path="$mods/kernel/$w"
  if [ -d "$path" ]; then
    find "$path" -name '*.ko*' -printf "kernel/$w/%P\n" >>"$list"
  elif [ -e "$path" ] || compgen -G "$path.*" >/dev/null; then
    for f in "$path" "$path".*; do [ -e "$f" ] && echo "${f#"$mods/"}" >>"$list"; done
  fi
done
for m in "${always[@]}"; do
  # A module built into the kernel has no file: modprobe prints "builtin".
  modprobe -d "$root" -S "$kver" --show-depends "$m" 2>/dev/null | sed -n "s|^insmod $mods/\([^ ]*\).*|\1|p" >>"$list" || true
done
while read -r rel; do
  name=$(basename "$rel")
  name=${name%%.ko*}
  modprobe -d "$root" -S "$kver" --show-depends "$name" 2>/dev/null | sed -n "s|^insmod $mods/\([^ ]*\).*|\1|p"
done <"$list" >"$work/deps"
sort -u "$list" "$work/deps" >"$work/all"
while read -r rel; do
  install -D -m 0644 "$mods/$rel" "$tree/lib/modules/$kver/$rel"
done <"$work/all"
cp "$mods/modules.order" "$mods/modules.builtin" "$tree/lib/modules/$kver/"
[ ! -f "$mods/modules.builtin.modinfo" ] || cp "$mods/modules.builtin.modinfo" "$tree/lib/modules/$kver/"
# modules.dep and modules.alias for just these modules (depmod reads the
# arm64 modules fine; it only parses their ELF sections).
depmod -b "$tree" "$kver"
printf '%s\n' "${always[@]}" >"$tree/etc/initramfs-modules"

# busybox and its applets.
install -m 0755 "$root/bin/busybox" "$tree/bin/busybox"
for applet in sh mount umount switch_root modprobe insmod findfs blkid sleep cat echo grep sort reboot mkdir ls dmesg uname; do
  ln -s busybox "$tree/bin/$applet"
done
ln -s ../bin/busybox "$tree/sbin/modprobe"
install -m 0755 "$here/initramfs-init" "$tree/init"

(cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 --quiet) |
  gzip -9 -n >"$out"
count=$(grep -c . "$tree/lib/modules/$kver/modules.dep")
echo "initramfs: $out ($(du -h "$out" | cut -f1), $count modules)"
