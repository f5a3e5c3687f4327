#!/usr/bin/env bash
# One-command set-up on a fresh machine, idempotent: Debian packages, the venv with pinned Python
# packages, and the Maven-resolved JVM jars. Each step is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON_BIN=${PYTHON_BIN:-python3.11}
command -v "$PYTHON_BIN" >/dev/null || PYTHON_BIN=python3
t0=$(date +%s)

# 1. Debian packages (scripts/apt-packages.txt: one "command package" pair per line)
missing=()
while read -r cmd pkg; do
  [[ -z "$cmd" || "$cmd" == \#* ]] && continue
  command -v "$cmd" >/dev/null || missing+=("$pkg")
done < scripts/apt-packages.txt
if (( ${#missing[@]} )); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python venv with exact versions (constraints.txt)
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV with $($PYTHON_BIN --version)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
stamp="$VENV/.lakehouse-setup"
want=$(cat setup.cfg constraints.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "setup: installing Python packages (pinned by constraints.txt; a few minutes on a fresh machine) ..."
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=24" >/dev/null
  "$VENV/bin/python" -m pip install -q --progress-bar off -c constraints.txt -e ".[dev,analyst]"
  echo "$want" > "$stamp"
else
  echo "setup: Python packages up to date"
fi

# 3. JVM jars from Maven Central
PYTHON="$VENV/bin/python" scripts/fetch_jars.sh

# 4. the class-data archive Spark job JVMs start from (skipped when one matches this JDK and these jars)
"$VENV/bin/python" -m lakehouse.stack.cds
echo "setup: done in $(( $(date +%s) - t0 ))s"
