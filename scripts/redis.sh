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
# plain Makefile does not link), no TLS, no systemd.  Nothing is done when
# both exist.  The source comes from scripts/redis-source.sh.
set -e
DIR=${1:?usage: scripts/redis.sh DIR}
[ -x "$DIR/redis-server" ] && [ -x "$DIR/redis-benchmark" ] && exit 0
"$(dirname "$0")/redis-source.sh" "$DIR/src"
cd "$DIR/src"
dsc=$(ls redis_*.dsc | head -n 1)
[ -d tree ] || dpkg-source --no-check -x "$dsc" tree >/dev/null
cd tree
echo "relive: building $(basename "$dsc" .dsc) (Redis's Makefile, 2 jobs)"
make -j2 BUILD_TLS=no USE_SYSTEMD=no MALLOC=libc >build.log 2>&1 ||
	{ tail -n 30 build.log; exit 1; }
cp src/redis-server src/redis-benchmark ../..
