#!/usr/bin/env bash
# Builds a bootable SD-card image for a Raspberry Pi 4/5 gate: Debian bookworm
# arm64 with Debian's Pi kernel and firmware, chrony (NTP when the venue has
# it), and gate-node cross-compiled from this repository, run by systemd.
#
#   sudo images/gate-node/build-image.sh [OUT_DIR]     # default images/out
#
# Needs: root (debootstrap, loop devices), apt packages debootstrap
# qemu-user-static binfmt-support gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# dosfstools e2fsprogs parted, and `rustup target add aarch64-unknown-linux-gnu`.
# Output: gate-rootfs.tar.gz (for netboot or an existing card) and gate.img
# (flash with `dd` or rpi-imager). After first boot: `gate-node enroll
# --cloud URL --code CODE` as the gatehouse user, then the unit starts scanning.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/images/out}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
target=aarch64-unknown-linux-gnu
root="$out/rootfs"
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and loop devices)" >&2; exit 1; }
mkdir -p "$out"

echo "== cross-compiling gate-node for $target"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
(cd "$repo" && cargo build --release --locked -p gate-node --target "$target")
bin="${CARGO_TARGET_DIR:-$repo/target}/$target/release/gate-node"

echo "== debootstrap $suite arm64 into $root"
rm -rf "$root"
debootstrap --arch=arm64 --foreign --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,chrony,ca-certificates,iproute2,ifupdown,isc-dhcp-client,openssh-server,linux-image-arm64,raspi-firmware,firmware-brcm80211 \
  --components=main,non-free-firmware "$suite" "$root" "$mirror"
cp /usr/bin/qemu-aarch64-static "$root/usr/bin/"
chroot "$root" /debootstrap/debootstrap --second-stage

echo "== installing gate-node"
install -D -m 0755 "$bin" "$root/usr/local/bin/gate-node"
install -D -m 0644 "$here/gate-node.service" "$root/etc/systemd/system/gate-node.service"
install -D -m 0640 "$here/gate.toml" "$root/etc/gatehouse/gate.toml"
install -D -m 0644 "$repo/docs/gate-node.md" "$root/usr/share/doc/gatehouse/gate-node.md"
chroot "$root" /bin/sh -e <<'CHROOT'
groupadd --system gpio 2>/dev/null || true
useradd --system --home-dir /var/lib/gatehouse --shell /usr/sbin/nologin \
  --groups video,gpio,dialout gatehouse
chown root:gatehouse /etc/gatehouse/gate.toml
# GPIO character devices belong to the gpio group.
echo 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' \
  > /etc/udev/rules.d/60-gpio.rules
echo gate > /etc/hostname
printf 'auto eth0\nallow-hotplug eth0\niface eth0 inet dhcp\n' > /etc/network/interfaces.d/eth0
# The Pi has no battery clock: chrony steps the clock when a server is
# reachable; gate-node keeps its own last-known-good time either way.
systemctl enable gate-node.service chrony.service ssh.service
CHROOT
rm "$root/usr/bin/qemu-aarch64-static"

echo "== rootfs tarball"
tar -C "$root" --numeric-owner -czf "$out/gate-rootfs.tar.gz" .

echo "== SD-card image (256 MiB FAT firmware + ext4 root)"
img="$out/gate.img"
rm -f "$img"
truncate -s 2G "$img"
parted -s "$img" mklabel msdos mkpart primary fat32 4MiB 260MiB mkpart primary ext4 260MiB 100%
loop=$(losetup --show -f -P "$img")
trap 'umount -R "$out/mnt" 2>/dev/null || true; losetup -d "$loop"' EXIT
mkfs.vfat -F 32 -n RASPIFIRM "${loop}p1"
mkfs.ext4 -q -L RASPIROOT "${loop}p2"
mkdir -p "$out/mnt"
mount "${loop}p2" "$out/mnt"
mkdir -p "$out/mnt/boot/firmware"
mount "${loop}p1" "$out/mnt/boot/firmware"
cp -a "$root/." "$out/mnt/"
printf 'LABEL=RASPIROOT / ext4 rw,noatime 0 1\nLABEL=RASPIFIRM /boot/firmware vfat rw 0 2\n' > "$out/mnt/etc/fstab"
# raspi-firmware's hook writes config.txt, cmdline.txt and the kernel to the FAT.
chroot "$out/mnt" /etc/kernel/postinst.d/z50-raspi-firmware "$(ls "$out/mnt/lib/modules" | head -n1)" || true
echo "image: $img"
