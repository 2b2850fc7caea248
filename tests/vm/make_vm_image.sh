#!/bin/sh
# Build, once, the cgroup-v2 systemd virtual machine that tests/vm boots with QEMU (TCG): Debian's
# own kernel, a small initramfs that mounts the root disk, and an ext4 disk image filled from the
# cached debootstrapped rootfs (tests/launcher/make_systemd_rootfs.sh) with `mkfs.ext4 -d`, so no
# loop mount and no kernel on the host. Like debootstrap it needs the Debian mirror apt is
# configured with (the kernel and a few packages: `apt-get download`), so CI setup runs it; the
# tests never reach the network and the virtual machine gets no network device.
#   tests/vm/make_vm_image.sh ROOTFS.tar OUTDIR      build OUTDIR/<name>/ unless it exists
#   tests/vm/make_vm_image.sh --path ROOTFS.tar OUTDIR   print the directory it would use
# <name> changes whenever this script, the agent or the rootfs tarball changes, so a stale
# image is never booted; OUTDIR keeps the new image and the one before.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
print_only=false
if [ "${1:-}" = --path ]; then print_only=true; shift; fi
rootfs=${1:?usage: make_vm_image.sh [--path] ROOTFS.tar OUTDIR}
outdir=${2:?usage: make_vm_image.sh [--path] ROOTFS.tar OUTDIR}
[ -s "$rootfs" ] || { echo "no rootfs tarball at $rootfs (tests/launcher/make_systemd_rootfs.sh)" >&2; exit 1; }
key=$( { cat "$0" "$here/agent.py"; stat -L -c '%s %Y' "$rootfs"; } | sha256sum | cut -c1-16)
image="$outdir/systemd-vm-$key"
if $print_only; then echo "$image"; exit 0; fi
[ -s "$image/disk.img" ] && exit 0
# One build at a time (several test sessions may ask at once); the winner's image serves all.
mkdir -p "$outdir"
exec 9>"$outdir/.build.lock"
flock 9
[ -s "$image/disk.img" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# Debian's kernel, resolved from the metapackage, unpacked here (installing it would touch the
# host's /boot and initramfs hooks).
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -qq
kpkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
[ -n "$kpkg" ] || { echo "cannot resolve linux-image-amd64 to a kernel package" >&2; exit 1; }
kver=${kpkg#linux-image-}
# What the tests need on the machine besides the minbase rootfs: kmod (modprobe, for the kernel's
# own requests too), iptables (the CNI plugins' NAT and masquerading), iproute2 (ip), procps (ps,
# kill, pgrep), and those of their libraries a minbase rootfs lacks (apt-cache depends --recurse,
# minus the rootfs').
extras="kmod iptables iproute2 procps libxtables12 libip6tc2 libnftnl11 libnetfilter-conntrack3
  libnfnetlink0 libmnl0 libbpf1 libelf1 libbsd0 libcap2-bin libproc2-0 netbase"
mkdir debs kernel extra root initrd
( cd debs && apt-get download -q -o APT::Sandbox::User=root "$kpkg" $extras >/dev/null )
dpkg-deb -x debs/"$kpkg"_*.deb kernel
for deb in debs/*.deb; do case $deb in debs/"$kpkg"_*) ;; *) dpkg-deb -x "$deb" extra ;; esac; done
tar -xf "$rootfs" -C root
# (merged /usr: the packages' /bin and /sbin go through the rootfs' symlinks)
tar -C extra -cf - . | tar -C root -xf - --keep-directory-symlink
# What the packages' maintainer scripts would have made: iptables is the nft flavour (Debian's).
for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "$tool-nft" "root/usr/sbin/$tool"
done
for tool in /usr/sbin/xtables-nft-multi /usr/bin/ip /usr/bin/ps; do  # every library is there
  if chroot root /lib64/ld-linux-x86-64.so.2 --list "$tool" | grep 'not found' >&2; then
    echo "the rootfs lacks libraries of $tool" >&2; exit 1
  fi
done
modules="lib/modules/$kver"

# Modules that a test host needs (filesystems, netfilter, veth, bridge, virtio ...): everything
# but hardware drivers, sound and radios, which keeps the disk small.
mkdir -p "root/$modules"
cp -a "kernel/$modules/." "root/$modules/"
( cd "root/$modules/kernel" && rm -rf sound drivers/gpu drivers/media drivers/infiniband \
    drivers/usb drivers/iio drivers/staging drivers/comedi drivers/net/wireless \
    drivers/net/ethernet drivers/scsi drivers/hwmon drivers/input drivers/hid drivers/isdn \
    drivers/bluetooth net/wireless net/mac80211 net/bluetooth )
chroot root /usr/sbin/depmod "$kver"

# The initramfs: a static busybox, the modules that mount the root disk (in the order modprobe
# resolves them, softdeps included) and /init.
mkdir -p initrd/bin initrd/proc initrd/sys initrd/dev initrd/newroot
cp /bin/busybox initrd/bin/busybox
for applet in sh mount umount insmod sleep switch_root mkdir echo cat; do ln -s busybox "initrd/bin/$applet"; done
chroot root /usr/sbin/modprobe -S "$kver" --show-depends -a virtio_pci virtio_blk ext4 crc32c_generic |
  awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
    rel=${ko#/}
    mkdir -p "initrd/$(dirname "$rel")"
    cp "root/$rel" "initrd/$rel"
    echo "/$rel" >>initrd/modules
  done
cat >initrd/init <<'INIT'
#!/bin/sh
# Load the disk's drivers, mount it and hand over to systemd.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for ko in $(cat /modules); do insmod "$ko" 2>/dev/null || true; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda" >&2; sleep 5; exit 1; }
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
INIT
chmod 755 initrd/init
# (busybox's cpio: the host need not have one; in two steps so a failure stops the script)
( cd initrd && find . >../initrd.list && busybox cpio -o -H newc <../initrd.list >../initrd.cpio )
gzip -1 initrd.cpio && mv initrd.cpio.gz initrd.img

# The machine's own configuration.
echo pyrkt-vm >root/etc/hostname
# No udev in a minbase rootfs, so nothing would load these on demand.
printf '%s\n' virtio_console 9pnet_virtio 9p overlay >root/etc/modules-load.d/pyrkt-vm.conf
# /tmp is not emptied at boot (files may be copied there before the machine boots).
echo 'd /tmp 1777 root root -' >root/etc/tmpfiles.d/tmp.conf
# Nothing starts behind the tests' back (timers would disturb CPU and memory measurements),
# and nothing waits for a console or hardware the machine does not have.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer systemd-tmpfiles-clean.timer e2scrub_reap.service getty@tty1.service \
    modprobe@drm.service; do
  ln -sf /dev/null "root/etc/systemd/system/$unit"
done
mkdir -p root/usr/local/lib/pyrkt-vm
cp "$here/agent.py" root/usr/local/lib/pyrkt-vm/agent.py
cat >root/etc/systemd/system/pyrkt-vm-agent.service <<'UNIT'
[Unit]
Description=pyrkt test agent (runs the host's requests from the pyrkt.agent virtio port)
After=systemd-modules-load.service
Wants=systemd-modules-load.service

[Service]
ExecStart=/usr/bin/python3 /usr/local/lib/pyrkt-vm/agent.py
Restart=always
RestartSec=0.2

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p root/etc/systemd/system/multi-user.target.wants
ln -sf ../pyrkt-vm-agent.service root/etc/systemd/system/multi-user.target.wants/pyrkt-vm-agent.service

truncate -s 4G disk.img
mkfs.ext4 -q -F -L pyrkt-vm -d root disk.img

rm -rf "$image.part"
mkdir "$image.part"
cp "kernel/boot/vmlinuz-$kver" "$image.part/vmlinuz"
mv initrd.img "$image.part/initrd.img"
mv disk.img "$image.part/disk.img"
echo "$kpkg" >"$image.part/kernel"
mv "$image.part" "$image"
# Older images go, but the previous one stays: a checkout not yet updated may still boot it.
ls -dt "$outdir"/systemd-vm-* | tail -n +3 | while read -r old; do rm -rf "$old"; done
