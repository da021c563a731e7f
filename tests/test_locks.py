"""A writer waits for the one holding the lock, says so once, and gives up at its limit naming the lock."""

from __future__ import annotations

import threading

import pytest

from handoff_lib.errors import HandoffError
from handoff_lib.history.locks import file_lock
from handoff_lib.publish.runs import site_lock


def test_a_second_writer_waits_says_so_once_and_gets_the_lock_when_the_first_lets_go(tmp_path):
    path = tmp_path / "site" / ".run.lock"
    said: list[str] = []
    got = threading.Event()
    with file_lock(path, 5, timed_out=lambda: AssertionError("gave up")):
        worker = threading.Thread(target=lambda: _take(path, said, got))
        worker.start()
        assert not got.wait(0.6)  # the first writer still holds it
    worker.join(5)
    assert got.is_set() and said == ["waiting"]


def _take(path, said, got):
    with file_lock(path, 5, timed_out=lambda: AssertionError("gave up"), waiting=lambda: said.append("waiting"), poll_s=0.05):
        got.set()


def test_a_writer_that_waits_past_its_limit_gets_the_callers_error_naming_the_lock(tmp_path, capsys):
    path = tmp_path / "demo" / ".run.lock"
    second = site_lock(path, wait_s=0.1)
    with site_lock(path), pytest.raises(HandoffError, match=r"\.run\.lock: another review run of this site is still running after 0 s"), second:
        pass
    assert "waiting for another review run of this site to finish" in capsys.readouterr().err
    with site_lock(path, wait_s=0.1):  # released: the next writer gets it at once
        pass
