#!/usr/bin/env bash
# Runs every check `make test` promises, after `scripts/setup.sh test`:
#   1. ruff check .
#   2. pytest -m "not browser"
#   3. pytest -m browser, in its own process: pytest-asyncio and Playwright's sync API cannot
#      share one ("Runner.run() cannot be called from a running event loop").
# Every step runs even if an earlier one failed; the script fails if any did, including pytest's
# exit code 5 (no tests collected). Extra arguments go to both pytest runs.
# The last line adds up both runs: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit

reports=var/test-reports
mkdir -p "$reports"
rm -f "$reports"/*.xml

results=()
failed=0
step() {
  local name=$1 status
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  "$@"
  status=$?
  if [ "$status" -eq 0 ]; then
    results+=("$name: ok")
  else
    results+=("$name: FAILED (exit $status)")
    failed=1
  fi
}

step lint .venv/bin/ruff check .
step tests .venv/bin/pytest -m "not browser" --junitxml="$reports/tests.xml" "$@"
step browser-tests .venv/bin/pytest -m browser --junitxml="$reports/browser.xml" "$@"

printf '\n==> summary\n'
shopt -s nullglob
printf '  %s\n' "${results[@]}"
.venv/bin/python - "$reports"/*.xml <<'PY'
import sys
import xml.etree.ElementTree as ET

total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sys.argv[1:]:
    for suite in ET.parse(path).getroot().iter("testsuite"):
        for key in total:
            total[key] += int(suite.get(key, 0))
failed = total["failures"] + total["errors"]
passed = total["tests"] - failed - total["skipped"]
print(f"tests: {passed} passed, {failed} failed, {total['skipped']} skipped")
PY
exit "$failed"
