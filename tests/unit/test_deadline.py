"""Storage calls bounded by a deadline (lakehouse.io.deadline): the answer or the call's own error within it,
StorageTimeout past it, and the abandoned call left to finish in its thread."""

from __future__ import annotations

import threading

import pytest

from lakehouse.io import deadline


def test_a_call_that_answers_in_time_returns_its_value() -> None:
    assert deadline.within(5, "a quick call", lambda: 42) == 42


def test_a_call_that_fails_in_time_raises_its_own_error() -> None:
    def fails() -> None:
        raise ValueError("refused by storage")

    with pytest.raises(ValueError, match="refused by storage"):
        deadline.within(5, "a failing call", fails)


def test_a_call_that_hangs_is_abandoned_with_a_storage_timeout_naming_it() -> None:
    release, finished = threading.Event(), threading.Event()

    def hangs() -> None:  # as a write waiting on a DataNode that never answers
        release.wait()
        finished.set()

    with pytest.raises(deadline.StorageTimeout, match=r"write of ops\.replication_state in europe: no answer") as err:
        deadline.within(0.2, "write of ops.replication_state in europe", hangs)
    assert err.value.fix and "HDFS" in err.value.fix
    assert not finished.is_set()
    release.set()  # the abandoned call goes on in its daemon thread
    assert finished.wait(5)
