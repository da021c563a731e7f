"""Imports point one way: the live review (picture, runs, review, board) never reaches the backtest or the
calibration, and no module of handoff_lib imports one that imports it back."""

from __future__ import annotations

from pathlib import Path

from import_graph import imports, modules, reach

ROOT = Path(__file__).resolve().parent.parent
L = "handoff_lib."
EVALUATION = {L + m for m in ("learn.backtest", "learn.calibrate", "learn.backtest_report", "cli.backtest")}
LIVE = {L + m for m in ("publish.picture", "publish.runs", "publish.review", "board", "board.server", "publish.pipeline",
                        "learn.risk", "history.asof_orders")}


def _graph():
    """The imports between handoff_lib's modules, anywhere in them (also inside functions)."""
    return imports(modules(ROOT))


def _reach(graph, start: str) -> set[str]:
    return reach(graph, L + start if not start.startswith(L) else start)


def test_the_live_review_never_imports_backtest_or_calibration_code():
    graph = _graph()
    for module in LIVE:
        assert not _reach(graph, module) & EVALUATION, f"{module} reaches {_reach(graph, module) & EVALUATION}"


def test_backtest_and_risk_import_each_other_in_one_direction_only():
    graph = _graph()
    assert L + "learn.risk" not in _reach(graph, "learn.backtest") or L + "learn.backtest" not in _reach(graph, "learn.risk")
    assert L + "learn.backtest" not in _reach(graph, "learn.risk")
    for module in ("history.asof_orders", "learn.risk", "learn.backtest", "learn.calibrate"):
        assert L + module not in _reach(graph, module), f"{module} imports itself back"
