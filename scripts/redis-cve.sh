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
# Nothing is done when DIR/tree/src/redis-server exists.  The source comes
# from scripts/redis-source.sh.
set -e
DIR=${1:?usage: scripts/redis-cve.sh DIR}
FIX=0006-CVE-2025-32023.patch
[ -x "$DIR/tree/src/redis-server" ] && exit 0
"$(dirname "$0")/redis-source.sh" "$DIR/src"
DIR=$(cd "$DIR" && pwd)
cd "$DIR/src"
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
