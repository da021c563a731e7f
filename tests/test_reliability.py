"""Crash safety and concurrent runs: a review killed at any step, or two at once, never loses or
corrupts history or earlier outputs, and the next run recovers without manual cleanup."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handoff_lib.history.snapshots import open_history
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.runs import default_history


def handoff(site: Path, at: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "handoff_lib.cli", "run", "--site", str(site), "--at", at, "--quiet"]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = proc.communicate(timeout=600)
        proc.out, proc.err = out, err
    return proc


def snapshot_state(settings) -> list[tuple]:
    con = open_history(default_history(settings), read_only=True)
    try:
        return con.execute(
            "SELECT review_time, run_id, (SELECT count(*) FROM snap_orders s WHERE s.review_time = r.review_time) "
            "FROM runs r ORDER BY review_time"
        ).fetchall()
    finally:
        con.close()


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def noon(site):
    """The site after a successful 12:00 review: its settings, history and output digest."""
    proc = handoff(site, "2026-11-24 12:00")
    assert proc.returncode == 0, proc.err
    settings = load_settings(site)
    out = settings.outputs / "demo" / "2026-11-24" / "1200"
    return settings, snapshot_state(settings), folder_digest(out), out


@pytest.mark.parametrize("point", ["report", "history-write", "publish-swap"])
def test_a_rerun_killed_at_any_step_leaves_history_and_the_earlier_outputs_intact(site, noon, point):
    settings, history_before, digest_before, out = noon
    proc = handoff(site, "2026-11-24 12:00", env={"HANDOFF_CRASH_AT": point})
    assert proc.returncode == 137
    committed = point == "publish-swap"  # killed after the history write, the run's commit point
    if not committed:
        assert snapshot_state(settings) == history_before
        assert folder_digest(out) == digest_before
    # the next run recovers by itself: no leftovers; the folder holds the run history names
    proc = handoff(site, "2026-11-24 16:00")
    assert proc.returncode == 0, proc.err
    run_id = json.loads((out / "manifest.json").read_text())["run_id"]
    assert run_id == snapshot_state(settings)[0][1]
    if not committed:
        assert folder_digest(out) == digest_before
    else:
        assert run_id != history_before[0][1]
    site_root = settings.outputs / "demo"
    assert not list(site_root.glob(".tmp-*")) and not list(site_root.glob("*/.old-*"))
    assert [r[0] for r in snapshot_state(settings)] == ["1200", "1600"]


def test_a_run_killed_by_sigkill_while_the_notebook_executes_changes_nothing(site, noon):
    settings, history_before, digest_before, out = noon
    proc = handoff(site, "2026-11-24 16:00", wait=False)
    site_root = settings.outputs / "demo"
    deadline = time.monotonic() + 120
    # the picture file is begun (picture.duckdb.part) once the picture is built, in the middle of execute
    while not list(site_root.glob(".tmp-*/picture.duckdb*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(site_root.glob(".tmp-*")), "the run never started executing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert snapshot_state(settings) == history_before
    assert not (site_root / "2026-11-24" / "1600").exists()
    assert folder_digest(out) == digest_before
    proc = handoff(site, "2026-11-24 16:00")
    assert proc.returncode == 0, proc.err
    assert not list(site_root.glob(".tmp-*"))


def test_two_runs_of_the_same_review_at_once_leave_one_snapshot(site):
    a = handoff(site, "2026-11-24 12:00", wait=False)
    b = handoff(site, "2026-11-24 12:00", wait=False)
    for p in (a, b):
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    settings = load_settings(site)
    state = snapshot_state(settings)
    assert [r[0] for r in state] == ["1200"] and state[0][2] > 0
    assert not list((settings.outputs / "demo").glob(".tmp-*"))


def test_a_reader_of_history_during_a_run_is_never_refused(site, noon):
    settings, *_ = noon
    errors, reads = [], []
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            try:
                con = open_history(default_history(settings), read_only=True, wait_s=60)
                reads.append(con.execute("SELECT count(*) FROM runs").fetchone()[0])
                con.close()
            except Exception as exc:  # noqa: BLE001 - the test records any failure
                errors.append(exc)
            time.sleep(0.05)

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        proc = handoff(site, "2026-11-24 16:00")
    finally:
        stop.set()
        t.join()
    assert proc.returncode == 0, proc.err
    assert errors == [] and reads and reads[-1] in (1, 2)
