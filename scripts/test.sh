#!/usr/bin/env bash
# `make test`: lint and the unit tests run beside the integration tests, as two lanes (processes).
#
# The unit tests need no service (local Spark, local files), so they cannot disturb the integration tests'
# stack. Much of an integration test's time is spent waiting (for Airflow's scheduler, a stream, a service
# restart), which leaves one of the two cores free for the second lane. Its output is kept in
# .state/logs/unit-tests.log and printed after the integration tests'; the exit code is non-zero when either
# lane failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${VENV:-.venv}/bin/python
mkdir -p .state/logs
unit_log=.state/logs/unit-tests.log
# The second lane: lint first (ruff and mypy, ~3 min of one core on a fresh cache, overlapping the stack's
# start), then the analyst module (BESIDE_SHARED: the shared stack's Kafka and HDFS through a sandbox of its own,
# with a metastore, a Spark Connect server and a Spark standalone cluster of its own; ~12 min, a third of the
# suite), then the unit tests, then the integration modules that bring up a stack of their own (own ports and
# state folder, never the shared one): test_stack_lifecycle.py mostly waits for its services to start and stop.
# test_secure_pipeline.py runs a secure broker of its own (own ports and state) and the shared stack's HDFS;
# test_kafka_cluster.py runs three brokers of its own (kill -9 of one) and the bronze stream onto that HDFS too;
# test_hdfs_cluster.py an HDFS of three DataNodes of its own (kill -9 of one), fed from the shared stack's Kafka.
# In this lane (LAKEHOUSE_TEST_LANE=beside) the integration lane owns the shared stack: these modules wait for its
# services and never start or stop one, and each holds a shared lock on it that the DR drills (the integration
# lane's last module, which kills asia's Kafka and HDFS) take exclusively (tests/conftest.py, shared_stack_lock).
BESIDE_SHARED=(tests/integration/test_analyst.py)
OWN_STACK=(tests/integration/test_stack_lifecycle.py tests/integration/test_secure_pipeline.py
           tests/integration/test_kafka_cluster.py tests/integration/test_hdfs_cluster.py)
BESIDE=("${BESIDE_SHARED[@]}" "${OWN_STACK[@]}")
( "${VENV:-.venv}/bin/ruff" check lakehouse jobs dags tests && "${VENV:-.venv}/bin/mypy" \
    && LAKEHOUSE_TEST_LANE=beside "$PYTHON" -m pytest "${BESIDE_SHARED[@]}" tests/unit "${OWN_STACK[@]}" "$@" ) \
    >"$unit_log" 2>&1 &
unit_pid=$!
trap 'pkill -P "$unit_pid" 2>/dev/null; kill "$unit_pid" 2>/dev/null' EXIT INT TERM
echo "test: lint + ${BESIDE_SHARED[*]} + tests/unit + ${OWN_STACK[*]} running beside tests/integration (pid $unit_pid, output in $unit_log, printed at the end)"
"$PYTHON" -m pytest tests/integration "${BESIDE[@]/#/--ignore=}" "$@"
integration=$?
wait "$unit_pid"
unit=$?
trap - EXIT INT TERM
echo
echo "=================== lint + ${BESIDE_SHARED[*]} + tests/unit + ${OWN_STACK[*]} ==================="
cat "$unit_log"
echo "test: tests/integration exit $integration, lint + analyst + tests/unit + own-stack modules exit $unit"
[ "$integration" -eq 0 ] && [ "$unit" -eq 0 ]
