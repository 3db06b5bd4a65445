#!/bin/sh
# Downloads the source of Debian's redis package, for the scripts that build
# Redis here (scripts/redis.sh for the benchmarks, scripts/redis-cve.sh for
# the live-patching scenario of a real security fix).
#
#     scripts/redis-source.sh DIR
#
# Leaves the source package (.dsc and its tarballs) in DIR, and installs,
# with apt-get, what unpacking and building it needs (dpkg-dev, make, gcc,
# pkgconf, patch) when missing.  A deb-src entry for the machine's Debian
# suites is added to apt's sources when apt has none.  Nothing is
# downloaded when DIR already holds a redis_*.dsc.
set -e
DIR=${1:?usage: scripts/redis-source.sh DIR}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
need=""
for p in dpkg-dev make gcc pkgconf patch; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		need="$need $p"
done
if ! apt-get source --print-uris redis >/dev/null 2>&1; then
	# Debian 12 keeps its sources in deb822 form: the same entries with
	# Types: deb-src.
	src=/etc/apt/sources.list.d/relive-deb-src.sources
	echo "relive: adding deb-src entries to apt ($src)"
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && [ "$f" != "$src" ] || continue
		grep -q 'deb.debian.org' "$f" || continue
		sed -n 's/^Types: deb$/Types: deb-src/; p' "$f"
		echo
	done | $SUDO tee "$src" >/dev/null
	if [ -f /etc/apt/sources.list ]; then
		sed -n 's/^deb \(.*deb\.debian\.org.*\)/deb-src \1/p' \
			/etc/apt/sources.list |
			$SUDO tee /etc/apt/sources.list.d/relive-deb-src.list \
				>/dev/null
	fi
	$SUDO apt-get update -qq
elif [ -n "$need" ]; then
	$SUDO apt-get update -qq
fi
if [ -n "$need" ]; then
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $need
fi
mkdir -p "$DIR"
cd "$DIR"
if ! ls redis_*.dsc >/dev/null 2>&1; then
	apt-get source --download-only redis
fi
