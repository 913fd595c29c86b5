#!/usr/bin/env bash
# mmdebstrap --essential-hook for the gate image (called by build-image.sh),
# run once the essential packages are in ROOT and before the rest (kernel,
# initramfs-tools, raspi-firmware) is installed:
# - /boot/firmware exists, so raspi-firmware's kernel hook has its target;
# - update-initramfs is diverted to a no-op: under qemu-user, Debian's
#   mkinitramfs for the arm64 kernel took most of an hour; the initramfs is
#   built natively by make-initramfs.sh instead, and image-customize.sh puts
#   the real update-initramfs back.
#
#   image-essential.sh ROOT
set -euo pipefail
[ $# -eq 1 ] || { echo "image-essential.sh: needs ROOT" >&2; exit 2; }
root=$1
mkdir -p "$root/boot/firmware"
chroot "$root" dpkg-divert --quiet --local --rename \
  --divert /usr/sbin/update-initramfs.gate-build --add /usr/sbin/update-initramfs
cat >"$root/usr/sbin/update-initramfs" <<'STUB'
#!/bin/sh
# Left by images/gate-node/image-essential.sh while the image is built;
# removed again by image-customize.sh.
echo "update-initramfs $*: skipped while the gate image is built (make-initramfs.sh makes it)" >&2
exit 0
STUB
chmod 0755 "$root/usr/sbin/update-initramfs"
