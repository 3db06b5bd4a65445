#!/bin/sh
# Installs, with apt-get, the Debian packages relive needs to build, test
# and benchmark, when any is missing.  Run by `make` before building.
set -e
PKGS="gcc make meson ninja-build pkgconf libelf-dev libdw-dev libzydis-dev
libcmocka-dev python3 python3-pytest gnuplot-nox procps util-linux patch"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "relive: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
