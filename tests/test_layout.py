"""The library laid out by stage (handoff_lib/__init__.py, docs/layout.md): a module imports only its own stage,
an earlier one, or the shared modules; no import makes a circle; every folder is a stage that says its job and
what it may import; and the entry points (the `handoff` command, `python -m`, the notebooks' imports) resolve."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from import_graph import circles, imports, modules, stage, upward

import handoff_lib
from handoff_lib import SHARED, STAGES

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "handoff_lib"


@pytest.fixture(scope="module")
def found():
    return imports(modules(ROOT))


def test_every_import_points_down_the_flow(found):
    wrong = upward(found, STAGES, SHARED)
    assert not wrong, "imports that point up the flow (load -> ... -> cli):\n" + "\n".join(map(str, wrong))


def test_no_import_makes_a_circle(found):
    assert circles(found) == []


def test_every_folder_is_a_stage_whose_init_says_its_job_and_what_it_may_import():
    folders = sorted(p.parent.name for p in LIB.glob("*/__init__.py"))
    assert sorted(folders) == sorted(STAGES)
    for name in STAGES:
        doc = ast.get_docstring(ast.parse((LIB / name / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "may import" in doc and len(doc.split()) > 30, f"handoff_lib/{name}/__init__.py: say its job and what it may import"
    top = sorted(p.stem for p in LIB.glob("*.py") if p.stem != "__init__")
    assert top == sorted(SHARED)  # nothing else sits at the top


def test_the_check_finds_an_upward_import_and_a_circle(tmp_path):
    """A made-up library: load reads a rule (upward), and two rules import each other (a circle)."""
    pkg = tmp_path / "lib"
    for folder, files in {"load": {"settings.py": "from lib.rules.policy import Policy\n"},
                          "rules": {"policy.py": "from .states import x\nPolicy = 1\n",
                                    "states.py": "def f():\n    from lib.rules import policy\nx = 1\n"}}.items():
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
        for file, text in files.items():
            (pkg / folder / file).write_text(text)
    (pkg / "__init__.py").write_text("")
    found = imports(modules(tmp_path, "lib"))
    assert [(i.importer, i.imported) for i in upward(found, ("load", "rules"), ())] == [("lib.load.settings", "lib.rules.policy")]
    assert circles(found) == [["lib.rules.policy", "lib.rules.states"]]
    with pytest.raises(ValueError, match="lib.stray"):
        stage("lib.stray.mod", ("load", "rules"), ())


def test_the_handoff_command_and_python_m_entry_points_resolve():
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["handoff"]
    module, func = script.split(":")
    assert callable(getattr(importlib.import_module(module), func))
    for entry in ("handoff_lib.cli", "handoff_lib.board.server"):  # (python -m handoff_lib.exports: every `handoff run`)
        run = subprocess.run([sys.executable, "-m", entry, "--help"], check=False, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "usage" in run.stdout.lower(), (entry, run.stderr[-500:])
    failed = subprocess.run([sys.executable, "-m", "handoff_lib.cli", "picture", "--site", "/nonexistent/site.yaml"], check=False,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "site parameters file not found" in failed.stderr  # the exit code reaches the shell


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_each_notebooks_imports_of_the_library_resolve(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    found = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("handoff_lib")]
    assert found, f"{notebook} imports nothing of handoff_lib"
    for node in found:
        module = importlib.import_module(node.module)  # a ModuleNotFoundError names a moved module
        for alias in node.names:
            assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), ast.unparse(node)


def test_the_package_says_the_flow_in_the_order_of_stages():
    assert " -> ".join(STAGES) in handoff_lib.__doc__
