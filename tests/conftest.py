"""Shared fixtures: a small demo day with several review times, a site file pointing at it, a headless
Chromium (Debian's /usr/bin/chromium driven by Playwright), one local Spark session, the shared public order
history (wherever this checkout lives) and a planted one (tests/planted_history.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REVIEWS = ("12:00", "16:00")


def make_site(tmp: Path, data: Path, **extra) -> Path:
    """A copy of the demo site file whose data, outputs and allowed roots live under `tmp`."""
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": str(data), "allowed_roots": [str(tmp), str(Path(data).parent)]}
    raw["outputs"] = str(tmp / "outputs")
    raw["reviews"] = {"times": list(REVIEWS), "days": ["mon", "tue", "wed", "thu", "fri"]}
    raw["store"] = {"root": str(tmp / "outputs" / "store")}
    raw.update(extra)
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def demo_day(tmp_path_factory) -> Path:
    """A 400-order demo day as of 12:00 and 16:00 (folders 1200/ and 1600/, truth/)."""
    from handoff_lib.load.demo import generate

    out = tmp_path_factory.mktemp("demo_day")
    generate(orders=400, seed=11, out=out, at=REVIEWS, site_file=ROOT / "parameters/demo.yaml", progress=False)
    return out


@pytest.fixture
def site(tmp_path, demo_day) -> Path:
    """A site file reading the demo day per review time, writing under tmp_path/outputs."""
    data = tmp_path / "data"
    shutil.copytree(demo_day, data)
    return make_site(tmp_path, data / "{time}")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (it takes seconds to start): PySpark on Java 17."""
    from handoff_lib.history.engines import spark_session

    assert shutil.which("java"), "Spark tests need Java 17: apt-get install -y openjdk-17-jre-headless (make test does it)"
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "browser tests need Debian's chromium: apt-get install -y chromium (make test does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def offline_page(browser, width: int = 1440, height: int = 900):
    """A page that may load only local content (file:, data:, blob:, about:); every other request is refused and
    listed in `page.outside_requests` (a report must open without a network)."""
    pg = browser.new_context(viewport={"width": width, "height": height}).new_page()
    pg.outside_requests = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            pg.outside_requests.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    return pg


def _find_olist() -> Path | None:
    """The shared Olist 2017 sample: $HANDOFF_OLIST_DATA, else shared/data/olist-2017-10k in a folder above
    this checkout (a worktree lives deeper than the main checkout, so the site file's relative path may miss)."""
    env = os.environ.get("HANDOFF_OLIST_DATA")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "data" / "olist-2017-10k" for p in ROOT.parents]
    for c in candidates:
        if (c / "orders.csv").exists():
            return c.resolve()
    return None


OLIST_DATA = _find_olist()
needs_history = pytest.mark.skipif(
    OLIST_DATA is None, reason="Olist history not found (shared/data/olist-2017-10k above the checkout, or $HANDOFF_OLIST_DATA)"
)


def olist_site(tmp: Path) -> Path:
    """A copy of parameters/olist.yaml under `tmp` that reads the shared history where it is found and
    writes under tmp/outputs (only those lines edited: the rest of the file is as committed)."""
    from handoff_lib.load.site_edit import edit_settings

    text = (ROOT / "parameters" / "olist.yaml").read_text(encoding="utf-8")
    text = edit_settings(text, {("data", "folder"): str(OLIST_DATA), ("data", "allowed_roots"): [str(OLIST_DATA.parent)],
                                ("outputs",): str(tmp / "outputs")})
    path = tmp / "olist.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def planted_run(tmp_path_factory):
    """The planted history (tests/planted_history.py: right buffer 240, customer SLOW 480) calibrated:
    (site file, result)."""
    import planted_history as ph

    from handoff_lib.learn import calibrate
    from handoff_lib.load.settings import load_settings

    folder = tmp_path_factory.mktemp("planted")
    site = ph.planted(folder)
    settings = load_settings(site)
    result = calibrate.run_backtest(settings, ph.FIRST, ph.LAST, settings.review_times, progress=False)
    return site, result


@pytest.fixture(scope="session")
def year(tmp_path_factory):
    """The 2017 public order-history backtest with its calibration, three reviews a day, and its connection
    (tables bt_*). Once per session: a test that replays again or changes tables uses its own connection."""
    import datetime as dt

    from handoff_lib.learn import backtest
    from handoff_lib.learn import calibrate as bt  # the whole backtest job, with its calibration, is calibrate.run_backtest
    from handoff_lib.load.settings import load_settings

    if OLIST_DATA is None:
        pytest.skip("Olist history not found")
    settings = load_settings(olist_site(tmp_path_factory.mktemp("olist")))
    con = backtest.load_history(settings)
    times = (dt.time(9), dt.time(12), dt.time(16))
    result = bt.run_backtest(settings, dt.date(2017, 1, 1), dt.date(2017, 12, 31), times, progress=False, con=con)
    return settings, con, result


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL cluster on loopback in a temporary folder (tests/pgcluster.py), for the
    whole test session; stopped and removed at the end."""
    from pgcluster import Cluster

    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def wms_pg(pg, demo_day):
    """The demo day's 12:00 extracts held in database `wms` of the cluster as a WMS/ERP would hold them
    (tests/wms_db.py), with the read-only role; returns (cluster, per-entity info)."""
    import wms_db

    with pg.connect() as admin:
        admin.execute("CREATE DATABASE wms")
    with pg.connect("wms") as con:
        info = wms_db.load_day(con, demo_day / "1200", ROOT / "parameters/demo.yaml")
    return pg, info
