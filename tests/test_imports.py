"""Imports point one way: the live review (picture, runs, review, board) never reaches the backtest or the
calibration, and no module of handoff_lib imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "handoff_lib"
EVALUATION = {"backtest", "calibrate", "backtest_report", "backtest_cli"}
LIVE = {"picture", "runs", "review", "board", "board_server", "pipeline", "risk", "asof_orders"}


def _graph() -> dict[str, set[str]]:
    """module -> handoff_lib modules it imports anywhere (also inside functions)."""
    names = {p.stem for p in LIB.glob("*.py")}
    graph = {}
    for p in LIB.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handoff_lib"):
                deps.add((node.module.split(".") + [a.name for a in node.names])[1])
        graph[p.stem] = deps & names
    return graph


def _reach(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in graph.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def test_the_live_review_never_imports_backtest_or_calibration_code():
    graph = _graph()
    for module in LIVE:
        assert not _reach(graph, module) & EVALUATION, f"{module} reaches {_reach(graph, module) & EVALUATION}"


def test_backtest_and_risk_import_each_other_in_one_direction_only():
    graph = _graph()
    assert "risk" not in _reach(graph, "backtest") or "backtest" not in _reach(graph, "risk")
    assert "backtest" not in _reach(graph, "risk")
    for module in ("asof_orders", "risk", "backtest", "calibrate"):
        assert module not in _reach(graph, module), f"{module} imports itself back"
