#!/bin/sh
# Prepares a Redis with a real, published vulnerability, for the scenario
# test that fixes a running server with a live patch made from the upstream
# fix: CVE-2025-32023, an out-of-bounds write in the HyperLogLog commands
# that a corrupted sparse HyperLogLog triggers.
#
#     scripts/redis-cve.sh DIR
#
# Takes the source of Debian's redis package (bookworm: 7.0.15) and applies
# Debian's patches in the order of debian/patches/series up to, but not
# including, 0006-CVE-2025-32023.patch: the result is Redis as Debian
# shipped it just before the fix.  Leaves
#
#     DIR/src                         the downloaded source package
#     DIR/tree                        the vulnerable source tree, built in
#                                     place (the user's source tree), with
#                                     tree/build.log and tree/src/redis-server
#     DIR/0006-CVE-2025-32023.patch   the fix, as a diff against DIR/tree
#
# Nothing is done when DIR/tree/src/redis-server exists.  Like
# scripts/redis.sh, a deb-src entry for the machine's Debian suites is added
# to apt's sources when apt has none.
set -e
DIR=${1:?usage: scripts/redis-cve.sh DIR}
FIX=0006-CVE-2025-32023.patch
[ -x "$DIR/tree/src/redis-server" ] && exit 0
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
mkdir -p "$DIR/src"
DIR=$(cd "$DIR" && pwd)
cd "$DIR/src"
if ! ls redis_*.dsc >/dev/null 2>&1; then
	apt-get source --download-only redis
fi
dsc=$(ls redis_*.dsc | head -n 1)
cd "$DIR"
if [ ! -d tree ]; then
	# Unpacked and patched beside, then renamed: a tree that exists is
	# complete; a failed run leaves tree.new, which the next run redoes.
	rm -rf tree.new
	dpkg-source --no-check --no-copy --skip-patches -x "src/$dsc" tree.new \
		>/dev/null
	pd=tree.new/debian/patches
	grep -q "^$FIX" "$pd/series" || {
		echo "relive: $dsc has no $FIX in debian/patches/series" >&2
		exit 1
	}
	# The series file: one patch a line, maybe followed by options
	# (none in this package), "#" comments.
	sed -e 's/#.*//' "$pd/series" | while read -r p _; do
		[ -n "$p" ] || continue
		[ "$p" = "$FIX" ] && break
		patch -d tree.new -p1 --quiet <"$pd/$p" || {
			echo "relive: $p does not apply" >&2
			exit 1
		}
	done
	# The fix adds "valid = 0;" to hllSparseToDense, hllSparseRegHisto
	# and hllMerge; the vulnerable code has none (only "invalid = 0;").
	if grep -Eq '(^|[^[:alnum:]_])valid = 0;' tree.new/src/hyperloglog.c
	then
		echo "relive: src/hyperloglog.c has the fix of $FIX" \
			"before it is applied: not a vulnerable tree" >&2
		exit 1
	fi
	mv tree.new tree
fi
cp "tree/debian/patches/$FIX" "$FIX"
cd tree
echo "relive: building $(basename "$dsc" .dsc) before $FIX" \
	"(Redis's Makefile, 2 jobs)"
# OPTIMIZATION=-O2 is 7.0's default, but said explicitly: from 7.2 on the
# default is -O3, with which Redis's Makefile also adds -flto, and link-time
# optimisation leaves object files with no machine code of their own (it is
# made at link time, across files), which a patch builder comparing the
# objects built before and after a change cannot compare.
make -j2 OPTIMIZATION=-O2 MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no \
	>build.log 2>&1 || { tail -n 30 build.log; exit 1; }
