#!/bin/sh
# Runs the whole test suite: the cmocka unit tests (meson test) and the
# pytest scenario suite with real target processes, then prints one
# summary line "N passed, N failed".
BUILD=${1:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
unit_pass=0; unit_fail=0
log=$(mktemp)
if meson test -C "$BUILD" --print-errorlogs >"$log" 2>&1; then :; fi
cat "$log"
unit_pass=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log" | tail -1)
unit_fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$log" | tail -1)
rm -f "$log"
RELIVE_BUILD=$(cd "$BUILD" && pwd) "$PYTHON" -m pytest -q -rfEX tests/scenarios \
	--junitxml="$BUILD/scenarios.xml"
rc=$?
read -r sp sf <<EOT
$("$PYTHON" - "$BUILD/scenarios.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
print(t - f - e - k, f + e)
PY
)
EOT
passed=$(( ${unit_pass:-0} + ${sp:-0} ))
failed=$(( ${unit_fail:-0} + ${sf:-0} ))
echo
echo "unit: ${unit_pass:-0} passed, ${unit_fail:-0} failed; scenarios: ${sp:-0} passed, ${sf:-0} failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ]
