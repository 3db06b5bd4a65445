#!/bin/sh
# Runs the benchmarks (make bench): bench/bench.py against the programs of
# the build directory, printing one table of every figure and writing
# BUILD/bench.json, BUILD/bench.md and BUILD/bench.png.
#
#     scripts/bench.sh [BUILD] [--quick] [--docs] [--only calls,pause,...]
#
# --docs also copies the table and the plot into docs/performance.md and
# docs/performance.png.  Exit status 1 when a benchmark could not run or a
# patched process gave a wrong answer; a figure that misses its target is
# reported in the table, not in the exit status.
set -e
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ $# -gt 0 ] && shift
PYTHON=${PYTHON:-/usr/bin/python3}
ninja -C "$BUILD" >/dev/null || { ninja -C "$BUILD"; exit 1; }
if [ ! -x "$BUILD/bench/many" ]; then
	echo "bench: $BUILD/bench/many is missing: add subdir('bench') to meson.build" >&2
	exit 1
fi
exec "$PYTHON" bench/bench.py "$BUILD" "$@"
