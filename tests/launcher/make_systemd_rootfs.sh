#!/bin/sh
# Build, once, the Debian rootfs with systemd that test_launcher_systemd.py boots with
# systemd-nspawn. Needs a Debian mirror (run it from CI setup, like apt-get); the tests themselves
# never reach the network and skip when the tarball is missing.
#   tests/launcher/make_systemd_rootfs.sh [OUT.tar]   (default .test-cache/debian-systemd-rootfs.tar)
set -eu
out=${1:-$(dirname "$0")/../../.test-cache/debian-systemd-rootfs.tar}
[ -s "$out" ] && exit 0
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,systemd-container,python3 \
    bookworm "$work/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
tar -C "$work/root" -cf "$out.part" .
mv "$out.part" "$out"
