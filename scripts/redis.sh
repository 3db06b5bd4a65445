#!/bin/sh
# Builds Redis from Debian's source package, for the benchmarks (figure 6,
# a real server under load) and anything else that needs a real Redis built
# here rather than Debian's binary.
#
#     scripts/redis.sh DIR
#
# Leaves DIR/redis-server and DIR/redis-benchmark, built from the source of
# Debian's redis package (bookworm: 7.0.15, with Debian's patches, the
# upstream security fixes among them) with Redis's own Makefile: libc's
# malloc (Debian's patches point Redis at the system jemalloc, which the
# plain Makefile does not link), no TLS, no systemd.  Nothing is done when both exist.
# A deb-src entry for the machine's Debian suites is added to apt's sources
# when apt has none.
set -e
DIR=${1:?usage: scripts/redis.sh DIR}
[ -x "$DIR/redis-server" ] && [ -x "$DIR/redis-benchmark" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
need=""
for p in dpkg-dev make gcc pkgconf; do
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
mkdir -p "$DIR/src"
cd "$DIR/src"
if ! ls redis_*.dsc >/dev/null 2>&1; then
	apt-get source --download-only redis
fi
dsc=$(ls redis_*.dsc | head -n 1)
[ -d tree ] || dpkg-source --no-check -x "$dsc" tree >/dev/null
cd tree
echo "relive: building $(basename "$dsc" .dsc) (Redis's Makefile, 2 jobs)"
make -j2 BUILD_TLS=no USE_SYSTEMD=no MALLOC=libc >build.log 2>&1 ||
	{ tail -n 30 build.log; exit 1; }
cp src/redis-server src/redis-benchmark ../..
