#!/bin/sh
# Build, once, the Debian rootfs with systemd that test_launcher_systemd.py boots with
# systemd-nspawn. It needs the Debian mirror apt is configured with (run it from CI setup, like
# apt-get); the tests themselves never reach the network and skip when the tarball is missing.
#   tests/launcher/make_systemd_rootfs.sh [OUT.tar]   (default .test-cache/debian-systemd-rootfs.tar)
set -eu
out=${1:-$(dirname "$0")/../../.test-cache/debian-systemd-rootfs.tar}
[ -s "$out" ] && exit 0
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
# The mirror apt already uses for this release: deb822 .sources files first, then sources.list.
mirror=${DEBIAN_MIRROR:-$(awk -v suite="$suite" '
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "no apt mirror for $suite found; set DEBIAN_MIRROR" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,systemd-container,python3 \
    "$suite" "$work/root" "$mirror"
tar -C "$work/root" -cf "$out.part" .
mv "$out.part" "$out"
