"""Storage calls in a child process (lakehouse.io.isolated): the call's answer or its own error, a hung call
killed at the deadline with the next one in a new child, and the child replaced every ``calls_per_child`` calls."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.io.deadline import StorageTimeout
from lakehouse.io.isolated import IsolatedCalls


@pytest.fixture
def calls() -> Iterator[IsolatedCalls]:
    isolated = IsolatedCalls("test", deadline_s=20.0, calls_per_child=3)
    yield isolated
    isolated.close()


def test_a_call_runs_in_a_child_and_returns_its_answer(calls: IsolatedCalls) -> None:
    child = calls.call("pid", os.getpid)
    assert child != os.getpid()
    assert calls.call("pid", os.getpid) == child  # the same child for the next call


def test_an_error_in_the_child_is_raised_in_the_caller(calls: IsolatedCalls) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        calls.call("parse", int, "not a number")
    assert calls.call("parse", int, "42") == 42


def test_a_hung_call_is_killed_at_its_deadline_and_the_next_runs_in_a_new_child(calls: IsolatedCalls) -> None:
    calls.deadline_s = 1.0
    first = calls.call("pid", os.getpid)
    started = time.monotonic()
    with pytest.raises(StorageTimeout, match=r"a write that hangs: no answer within 1s; its process \(test\)"):
        calls.call("a write that hangs", time.sleep, 600)
    assert time.monotonic() - started < 60, "the caller waited for the hung call"
    calls.deadline_s = 20.0
    second = calls.call("pid", os.getpid)
    assert second != first
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the hung child is gone, not left running


def test_the_child_is_replaced_after_its_share_of_calls(calls: IsolatedCalls) -> None:
    pids = [calls.call("pid", os.getpid) for _ in range(6)]
    assert len(set(pids[:3])) == 1 and len(set(pids[3:])) == 1 and pids[0] != pids[3]


def hangs_the_first_time(marker: str) -> str:
    """Hangs when ``marker`` does not exist yet (creating it), answers otherwise: a storage call that hung once."""
    if not os.path.exists(marker):
        Path(marker).touch()
        time.sleep(600)
    return "written"


def test_a_call_that_may_run_twice_is_tried_again_in_a_new_child(calls: IsolatedCalls, tmp_path: Path) -> None:
    calls.deadline_s = 2.0
    assert calls.call("an idempotent write", hangs_the_first_time, str(tmp_path / "m"), attempts=2) == "written"
    with pytest.raises(StorageTimeout):
        calls.call("a write tried once", hangs_the_first_time, str(tmp_path / "n"))
