#!/usr/bin/env bash
# `make test`: lint and the unit tests run beside the integration tests, as two lanes (processes).
#
# The unit tests need no service (local Spark, local files), so they cannot disturb the integration tests'
# stack. Much of an integration test's time is spent waiting (for Airflow's scheduler, a stream, a service
# restart), which leaves one of the two cores free for the unit tests. The unit tests' output is kept in
# .state/logs/unit-tests.log and printed after the integration tests'; the exit code is non-zero when either
# process failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${VENV:-.venv}/bin/python
mkdir -p .state/logs
unit_log=.state/logs/unit-tests.log
# lint first in the same lane: ruff and mypy (~3 min of one core on a fresh cache) overlap the stack's start
( "${VENV:-.venv}/bin/ruff" check lakehouse jobs dags tests && "${VENV:-.venv}/bin/mypy" \
    && "$PYTHON" -m pytest tests/unit "$@" ) >"$unit_log" 2>&1 &
unit_pid=$!
trap 'pkill -P "$unit_pid" 2>/dev/null; kill "$unit_pid" 2>/dev/null' EXIT INT TERM
echo "test: lint + tests/unit running beside tests/integration (pid $unit_pid, output in $unit_log, printed at the end)"
"$PYTHON" -m pytest tests/integration "$@"
integration=$?
wait "$unit_pid"
unit=$?
trap - EXIT INT TERM
echo
echo "========================== lint + tests/unit =========================="
cat "$unit_log"
echo "test: tests/integration exit $integration, lint + tests/unit exit $unit"
[ "$integration" -eq 0 ] && [ "$unit" -eq 0 ]
