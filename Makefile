# make demo  - the main job on the embedded default (sets everything up first)
# make test  - lint and the whole test suite against the real local stack (scripts/test.sh: two lanes side by side)
# make setup - set-up only (Debian packages, venv, Maven jars); idempotent
# make report - the metrics report (PNG + HTML) from the stack's Prometheus into .state/report
SHELL := /bin/bash
VENV ?= .venv
LAKEHOUSE := $(VENV)/bin/lakehouse

.PHONY: setup demo test unit lint stack-up stack-down stack-status report

setup:
	@scripts/setup.sh

demo: setup
	@$(LAKEHOUSE) stack up
	@$(LAKEHOUSE) demo

test: setup
	@VENV=$(VENV) scripts/test.sh

unit: setup
	$(VENV)/bin/python -m pytest tests/unit

lint: setup
	$(VENV)/bin/ruff check lakehouse jobs dags tests
	$(VENV)/bin/mypy

stack-up: setup
	@$(LAKEHOUSE) stack up

stack-down:
	@$(LAKEHOUSE) stack down

stack-status:
	@$(LAKEHOUSE) stack status

report:
	@$(LAKEHOUSE) report --out .state/report
