#!/usr/bin/env bash
# mmdebstrap --customize-hook for the gate image (called by build-image.sh):
# installs gate-node and the system's gate settings into the arm64 root
# ROOT. Commands inside ROOT run arm64 code through qemu-user-static; the
# initramfs is built natively (make-initramfs.sh).
#
#   image-customize.sh ROOT BINARY REPO
set -euo pipefail
root=$1
binary=$2
repo=$3
here="$repo/images/gate-node"
in_root() { chroot "$root" "$@"; }

install -D -m 0755 "$binary" "$root/usr/local/bin/gate-node"
install -D -m 0755 "$here/first-boot" "$root/usr/local/lib/gate-node/first-boot"
install -D -m 0644 "$here/gate-node.service" "$root/etc/systemd/system/gate-node.service"
install -D -m 0644 "$here/gate-node-enroll.service" "$root/etc/systemd/system/gate-node-enroll.service"
install -D -m 0644 "$here/gate.toml" "$root/etc/gate-node/gate.toml"
for doc in operations.md gate-node.md; do
  install -D -m 0644 "$repo/docs/$doc" "$root/usr/share/doc/gatehouse/$doc"
done

# The gate's own user; the gpio group owns the GPIO character devices.
in_root groupadd --system gpio
in_root useradd --system --user-group --home-dir /var/lib/gate-node --no-create-home \
  --shell /usr/sbin/nologin --groups video,gpio,dialout gate-node
# The directories the enrollment unit may write (it runs with
# ProtectSystem=strict, whose ReadWritePaths= must exist beforehand).
install -d -m 0700 "$root/var/lib/gate-node"
in_root chown gate-node:gate-node /var/lib/gate-node
install -d -m 0755 "$root/var/local/gate-node"
install -d -m 0700 "$root/var/lib/gate-ssh"
cat >"$root/etc/udev/rules.d/60-gpio.rules" <<'RULES'
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
KERNEL=="gpiomem", GROUP="gpio", MODE="0660"
RULES

echo gate >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 gate\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# Network: DHCP on the wired port (eth0 or end0 on a Pi, enp0s* in qemu).
cat >"$root/etc/systemd/network/10-wired.network" <<'NET'
[Match]
Name=e*

[Network]
DHCP=yes
NET
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# The journal persists on the data partition, bounded for an SD card.
install -d -m 0755 "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\nSystemMaxUse=64M\n' >"$root/etc/systemd/journald.conf.d/gate.conf"
install -d -m 2755 -g systemd-journal "$root/var/log/journal" 2>/dev/null ||
  install -d -m 2755 "$root/var/log/journal"

# SSH: off unless the operator puts authorized_keys on the boot partition
# (first-boot then turns it on); key-only; host keys made per gate on the
# data partition, never baked into the image.
rm -f "$root"/etc/ssh/ssh_host_*
install -d -m 0755 "$root/etc/ssh/sshd_config.d"
cat >"$root/etc/ssh/sshd_config.d/gate.conf" <<'SSH'
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile /var/lib/gate-ssh/authorized_keys
HostKey /var/lib/gate-ssh/ssh_host_ed25519_key
SSH
# The root is read-only, so "turning SSH on" cannot mean enabling a unit:
# ssh.service is enabled but starts only once the operator's keys (and the
# gate's own host key, made by first-boot) are on the data partition.
install -d -m 0755 "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/gate.conf" <<'UNIT'
[Unit]
ConditionPathExists=/var/lib/gate-ssh/authorized_keys
ConditionPathExists=/var/lib/gate-ssh/ssh_host_ed25519_key
UNIT
in_root systemctl enable ssh.service
in_root systemctl mask ssh.socket

# Read-mostly root: / read-only, /var (state, journal, clock) read-write on
# its own partition, /tmp in memory. An empty machine-id on a read-only root
# makes systemd use a transient one per boot.
cat >"$root/etc/fstab" <<'FSTAB'
LABEL=RASPIROOT  /               ext4   ro,noatime                 0 1
LABEL=RASPIFIRM  /boot/firmware  vfat   rw,noatime,umask=0077      0 2
LABEL=GATEDATA   /var            ext4   rw,noatime,commit=5        0 2
tmpfs            /tmp            tmpfs  nosuid,nodev,mode=1777     0 0
FSTAB
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

in_root systemctl enable systemd-networkd.service systemd-resolved.service \
  systemd-timesyncd.service gate-node-enroll.service gate-node.service
in_root systemctl set-default multi-user.target

# The initramfs: built natively from this root (make-initramfs.sh), in
# place of Debian's mkinitramfs, which image-essential.sh turned off while
# packages were configured; then the real update-initramfs goes back, so a
# kernel update on the gate makes a Debian initramfs as usual.
kver=$(ls "$root/lib/modules" | sort -V | tail -n1)
"$here/make-initramfs.sh" "$root" "$kver" "$root/boot/initrd.img-$kver"
rm -f "$root/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename \
  --divert /usr/sbin/update-initramfs.gate-build --remove /usr/sbin/update-initramfs
[ -x "$root/usr/sbin/update-initramfs" ] || { echo "image-customize.sh: update-initramfs was not restored" >&2; exit 1; }

# The Pi boots from the FAT partition: raspi-firmware's hook copies the
# kernel, initrd, device trees and writes config.txt and cmdline.txt.
cat >"$root/etc/default/raspi-firmware" <<'FW'
ROOTPART=LABEL=RASPIROOT
CONSOLES="ttyS1,115200 tty0"
FW
# (The hook does nothing unless DEB_MAINT_PARAMS says configure, as the
# kernel's postinst would.)
DEB_MAINT_PARAMS=configure in_root /etc/kernel/postinst.d/z50-raspi-firmware "$kver"
for f in "vmlinuz-$kver" "initrd.img-$kver" config.txt cmdline.txt bcm2711-rpi-4-b.dtb bcm2837-rpi-3-b.dtb; do
  [ -s "$root/boot/firmware/$f" ] || { echo "image-customize.sh: raspi-firmware did not write /boot/firmware/$f" >&2; exit 1; }
done
sed -i 's/ rw / ro /; s/ rw$/ ro/' "$root/boot/firmware/cmdline.txt"
grep -q ' ro ' "$root/boot/firmware/cmdline.txt" || { echo "image-customize.sh: cmdline.txt does not mount the root read-only" >&2; exit 1; }

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
