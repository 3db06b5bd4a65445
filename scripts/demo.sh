#!/usr/bin/env bash
# scripts/demo.sh - fix a bug in a running server with relive, while a
# client keeps using it.
#
#     scripts/demo.sh                 (after: meson setup build && ninja -C build)
#     RELIVE_BUILD=path scripts/demo.sh
#
# The server (examples/server.c) prices orders and should give 10% off for
# 10 items or more; it gives it only above 10.  The demo shows the wrong
# total, patches the running server with examples/fix.c, shows the right
# total while a background client sends requests without a single failure,
# lists the patch, disables and removes it, and shows the old total again.
# Exit status 0 when every step behaved as described.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${RELIVE_BUILD:-build}
RELIVE=$BUILD/relive
SERVER=$BUILD/examples/server
CLIENT=$BUILD/examples/client
FIX=$BUILD/examples/fix.so

REQUEST="price 250 10"          # 10 items at 2.50
WRONG="total 25.00"             # no discount: the bug
RIGHT="total 22.50"             # 10% off

say() { printf '\n==> %s\n' "$*"; }
show() { printf '    $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; return "${PIPESTATUS[0]}"; }
die() { printf '\ndemo: FAILED: %s\n' "$*" >&2; exit 1; }

for f in "$RELIVE" "$SERVER" "$CLIENT" "$FIX"; do
	[ -e "$f" ] || die "$f is missing; build first: meson setup build && ninja -C build"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/relive-demo.XXXXXX")
server_pid=
loop_pid=
cleanup() {
	local status=$?
	set +e
	if [ -n "$loop_pid" ]; then kill "$loop_pid"; wait "$loop_pid"; fi 2>/dev/null
	if [ -n "$server_pid" ]; then kill "$server_pid"; wait "$server_pid"; fi 2>/dev/null
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT

ask() {
	local answer
	answer=$("$CLIENT" "$port" "$REQUEST") || die "the server did not answer"
	printf '    %s  ->  %s\n' "$REQUEST" "$answer"
	[ "$answer" = "$1" ] || die "expected '$1'"
}

say "Starting the server: a pool of worker threads on 127.0.0.1, port chosen by the kernel"
"$SERVER" 0 >"$work/server.out" &
server_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")
	[ -n "$port" ] && break
	kill -0 "$server_pid" 2>/dev/null || die "the server exited"
	sleep 0.1
done
[ -n "$port" ] || die "the server did not say which port it listens on"
echo "    server pid $server_pid, listening on 127.0.0.1:$port"

say "Ten items at 2.50 each should cost 22.50 after the 10% bulk discount"
ask "$WRONG"
echo "    Wrong: the server only discounts orders of MORE than 10 items."

say "Starting a client that keeps sending that request during the whole fix"
"$CLIENT" -l -a "$WRONG" -a "$RIGHT" "$port" "$REQUEST" >"$work/loop.out" &
loop_pid=$!

say "Patching the running server with examples/fix.c (no restart)"
show "$RELIVE" patch -p "$server_pid" "$FIX" || die "relive patch failed"
ask "$RIGHT"
echo "    Fixed, in the same process: pid $server_pid, same port, same connections."

say "What relive knows about the process"
show "$RELIVE" list -p "$server_pid" || die "relive list failed"

say "Disabling the fix brings the old code back; removing it unloads the patch"
show "$RELIVE" disable -p "$server_pid" fix || die "relive disable failed"
show "$RELIVE" remove -p "$server_pid" fix || die "relive remove failed"
ask "$WRONG"

say "Stopping the background client"
kill -INT "$loop_pid"
loop_status=0
wait "$loop_pid" || loop_status=$?
loop_pid=
sed 's/^/    /' "$work/loop.out"
grep -q '^requests=[1-9][0-9]* failures=0$' "$work/loop.out" ||
	die "the background client saw failures (exit status $loop_status)"
grep -q "x \"$RIGHT\"" "$work/loop.out" ||
	die "the background client never saw the fixed answer"
echo "    Every request was answered, before, during and after the patch."

say "Stopping the server"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=

say "Demo complete"
