#!/usr/bin/env bash
# `make test`: lint and every test, in two lanes (processes) side by side, then the disruptive module alone.
#
#   1. The shared local stack is brought up once (`lakehouse stack up`: reuses healthy services), while the
#      second lane lints (ruff, mypy: ~3 min of one core on a fresh cache).
#   2. Lane 1 runs LANE1's integration modules; lane 2 runs tests/unit and the modules with a stack of their
#      own (OWN_STACK), then LANE2's integration modules. Every integration module works in a sandbox of its
#      own (lakehouse root, topics, metastore database, model name) on the shared services, so the lanes never
#      see each other's data; much of an integration test's time is spent waiting (for Airflow's scheduler, a
#      stream, a service), which the other lane's work fills.
#   3. ALONE: test_failover.py kills asia's Kafka and HDFS (the disaster drill), so it runs when nothing else does.
#
# Lane 2's output is kept in .state/logs/lane2-tests.log and printed after lane 1's. Services this script
# started are stopped at the end (a stack that was up before is left up). The exit code is non-zero when any
# part failed. Arguments are passed to every pytest run.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=$VENV/bin/python
IT=tests/integration
OWN_STACK=("$IT/test_stack_lifecycle.py")
LANE1=("$IT/test_airflow.py" "$IT/test_analyst.py" "$IT/test_nightly_retraining.py" "$IT/test_observability.py"
  "$IT/test_services.py")  # test_observability reads what the earlier ones left in Prometheus
LANE2=("$IT/test_interop.py" "$IT/test_pipeline.py" "$IT/test_quality.py" "$IT/test_replication.py"
  "$IT/test_scoring.py" "$IT/test_secure_pipeline.py")  # test_interop and test_pipeline share one filled sandbox
ALONE=("$IT/test_failover.py")

# every integration module is in exactly one group: a new one must be placed
placed=$(printf '%s\n' "${OWN_STACK[@]}" "${LANE1[@]}" "${LANE2[@]}" "${ALONE[@]}" | sort)
present=$(ls "$IT"/test_*.py | sort)
if [ "$placed" != "$present" ]; then
  echo "test: scripts/test.sh places these integration modules differently from $IT:" >&2
  diff <(echo "$placed") <(echo "$present") >&2
  exit 2
fi

mkdir -p .state/logs
lane2_log=.state/logs/lane2-tests.log
ready=$(mktemp -u .state/logs/.stack-ready.XXXXXX)
failed_up=$ready.failed
before=$("$PYTHON" -c 'from lakehouse.config import load_config; from lakehouse.stack import manager
print(" ".join(s.name for s in manager.status(load_config()) if s.running and s.healthy))')

lane2() {
  local rc=0
  "$VENV/bin/ruff" check lakehouse jobs dags tests && "$VENV/bin/mypy" || rc=1
  "$PYTHON" -m pytest tests/unit "${OWN_STACK[@]}" "$@" || rc=1
  until [ -e "$ready" ]; do
    [ -e "$failed_up" ] && { echo "test: the shared stack did not come up: ${LANE2[*]} not run"; return 1; }
    sleep 2
  done
  "$PYTHON" -m pytest "${LANE2[@]}" "$@" || rc=1
  return $rc
}
lane2 "$@" >"$lane2_log" 2>&1 &
lane2_pid=$!
trap 'pkill -P "$lane2_pid" 2>/dev/null; kill "$lane2_pid" 2>/dev/null; rm -f "$ready" "$failed_up"' EXIT INT TERM
echo "test: lint, tests/unit, ${OWN_STACK[*]##*/}, then ${LANE2[*]##*/} in lane 2 (pid $lane2_pid, output in $lane2_log)"

lane1=0
if "$VENV/bin/lakehouse" stack up; then
  touch "$ready"
  echo "test: lane 1: ${LANE1[*]##*/}"
  "$PYTHON" -m pytest "${LANE1[@]}" "$@" || lane1=1
else
  touch "$failed_up"
  lane1=1
fi
wait "$lane2_pid"
lane2=$?
echo
echo "=================== lane 2: lint, tests/unit, ${OWN_STACK[*]##*/}, ${LANE2[*]##*/} ==================="
cat "$lane2_log"
alone=1
if [ -e "$ready" ]; then
  echo "test: alone: ${ALONE[*]##*/}"
  "$PYTHON" -m pytest "${ALONE[@]}" "$@" && alone=0
fi
started=$("$PYTHON" -c 'import sys; from lakehouse.config import load_config; from lakehouse.stack import manager
print(" ".join(f"--service {s.name}" for s in manager.status(load_config()) if s.running and s.name not in sys.argv[1:]))' $before)
[ -n "$started" ] && "$VENV/bin/lakehouse" stack down $started
trap - EXIT INT TERM
rm -f "$ready" "$failed_up"
echo "test: lane 1 exit $lane1, lane 2 (lint, unit, own-stack, integration) exit $lane2, alone exit $alone"
[ "$lane1" -eq 0 ] && [ "$lane2" -eq 0 ] && [ "$alone" -eq 0 ]
