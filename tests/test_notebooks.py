"""Every notebook runs top to bottom under nbval (lax) with its default parameters, and is
committed without outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def default_demo_data():
    """The review notebook's defaults read the demo site's data folder: make sure it has a day."""
    from handoff_lib.load.demo import generate
    from handoff_lib.load.settings import load_settings

    settings = load_settings(ROOT / "parameters/demo.yaml")
    root = settings.data_folder.parent
    if not (root / "1430" / "oms_orders.csv").exists():
        times = [t.strftime("%H:%M") for t in settings.review_times]
        generate(orders=400, seed=7, out=root, at=times, site_file=ROOT / "parameters/demo.yaml", progress=False)
    return root


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(notebook):
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, notebook.name
            assert "def " not in "".join(cell["source"]) and "class " not in "".join(cell["source"]), "logic belongs in handoff_lib"


SHARED_DATA = ROOT.parent / "shared" / "data" / "olist-2017-10k"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_nbval(notebook, default_demo_data, tmp_path):
    if notebook.name == "backtest_report.ipynb" and not SHARED_DATA.is_dir():
        pytest.skip(f"the backtest notebook reads the public order history at {SHARED_DATA}, which is not here")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_review_notebook_has_one_parameters_cell():
    nb = json.loads((ROOT / "notebooks/cutoff_review.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    src = "".join(tagged[0]["source"])
    for name in ("site_file", "review_at", "data_folder", "history_db", "out_dir"):
        assert f"{name}: str = " in src


def test_backtest_notebook_runs_the_backtest_itself_wherever_the_checkout_lives(tmp_path):
    """With no tables folder, the report notebook runs the backtest itself: here on the shared history found
    above this checkout (its `data_folder` parameter), over five months (one fold)."""
    import papermill as pm
    from conftest import OLIST_DATA, olist_site

    if OLIST_DATA is None:
        pytest.skip("the shared public order history is not here")
    out = tmp_path / "backtest_report.ipynb"
    params = {"site_file": str(olist_site(tmp_path)), "data_folder": str(OLIST_DATA), "date_from": "2017-01-01",
              "date_to": "2017-05-31", "reviews": "12:00", "tables_dir": ""}
    nb = pm.execute_notebook(str(ROOT / "notebooks/backtest_report.ipynb"), str(out), parameters=params, progress_bar=False,
                             cwd=str(ROOT / "notebooks"))
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Today's setting</b>, a buffer of 60 min" in html and "tested on May 2017, 1 month)" in html
