"""Mapping presets (parameters/presets/, handoff_lib/load/presets.py): each cites its documentation and loads a
sample written to that documentation (tests/fixtures/presets/) without a reject."""

from __future__ import annotations

import datetime as dt
import io
from contextlib import redirect_stdout
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml
from conftest import ROOT

from handoff_lib.cli.main import main
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.extracts import load_extracts
from handoff_lib.load.presets import list_presets, preset_text
from handoff_lib.load.settings import load_settings

SAMPLES = ROOT / "tests" / "fixtures" / "presets"
TZ = ZoneInfo("America/New_York")


def _site_with(tmp_path, preset: str):
    """The demo site with every source `file: null` except the preset's, whose entries are copied in as
    the preset says, reading the documented samples."""
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": str(SAMPLES), "allowed_roots": [str(SAMPLES)]}
    raw["outputs"] = str(tmp_path / "outputs")
    raw["sources"] = {name: {"file": None} for name in ENTITIES}
    raw["sources"].update(yaml.safe_load(preset_text(preset))["sources"])
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    settings = load_settings(site)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    report = load_extracts(con, settings)
    return con, report.set_index("source")


def test_every_preset_cites_the_documentation_it_follows_and_maps_contract_entities():
    presets = {p.name: p for p in list_presets()}
    assert set(presets) >= {"odoo-transfers", "shopware5-orders"}
    for p in presets.values():
        assert len(p.follows) >= 2 and all(u.startswith("https://") for u in p.follows)
        assert p.entities and set(p.entities) <= set(ENTITIES)
    assert (
        "https://www.odoo.com/documentation/17.0/applications/essentials/export_import_data.html"
        in presets["odoo-transfers"].follows
    )
    assert "https://docs.shopware.com/en/shopware-5-en/import-export/import-export-orders" in presets["shopware5-orders"].follows


def test_the_odoo_preset_reads_an_import_compatible_stock_move_and_stock_picking_export(tmp_path):
    con, report = _site_with(tmp_path, "odoo-transfers")
    assert report.loc["pick_tasks", "rows_read"] == 7 and report.loc["pick_tasks", "rows_rejected"] == 0
    assert report.loc["shipments", "rows_read"] == 3 and report.loc["shipments", "rows_rejected"] == 0
    tasks = con.execute(
        "SELECT task_id, pick_ticket, order_ref, sku, qty_required, qty_picked, status, updated_at FROM pick_tasks"
    ).df()
    by_id = tasks.set_index("task_id")
    assert dict(zip(tasks["task_id"].str[-8:], tasks["status"])) == {
        "5c1e2a9f": "picked", "8d0b7e31": "open", "1f4c9a02": "open", "77aa0c5d": "cancelled",
        "0e9d3b6c": "open", "4b2f8e10": "open", "c3d9e0f1": "open",
    }  # fmt: skip
    done = by_id.loc["__export__.stock_move_101_5c1e2a9f"]
    assert (done["pick_ticket"], done["order_ref"], done["qty_required"], done["qty_picked"]) == ("WH/OUT/00012", "S00042", 2, 2)
    assert done["updated_at"].to_pydatetime() == dt.datetime(2026, 11, 24, 9, 41, 10, tzinfo=TZ)  # the user's (site) time
    assert "[FURN_7777] Desk, Oak" in set(tasks["sku"])
    ships = con.execute("SELECT shipment_id, reference, carrier, tracking_no, handed_off_at FROM shipments ORDER BY 1").fetchall()
    assert ships[0][:4] == ("WH/OUT/00012", "WH/OUT/00012", "FedEx US", "794612345678")
    assert ships[0][4] == dt.datetime(2026, 11, 24, 9, 41, 12, tzinfo=TZ) and ships[1][4] is None
    assert ships[2][2] == "DHL Express, Worldwide"


def test_the_shopware_preset_reads_an_orders_main_data_export(tmp_path):
    con, report = _site_with(tmp_path, "shopware5-orders")
    assert report.loc["orders", "rows_read"] == 5 and report.loc["orders", "rows_rejected"] == 0
    assert "shippingAdditionalAddressLine1" in report.loc["orders", "extra_columns"]  # the profile names it twice
    rows = con.execute(
        "SELECT order_id, customer_id, customer_name, release_status, order_value, ordered_at FROM orders ORDER BY order_id"
    ).fetchall()
    assert [(r[0], r[3]) for r in rows] == [
        ("20001", "not_released"), ("20002", "released"), ("20003", "cancelled"), ("20004", "released"), ("20005", "not_released"),
    ]  # fmt: skip
    assert rows[1][1:3] == ("20010", "Weber GmbH") and rows[1][4] == 1549.0
    assert rows[3][2] == "Klein & Co. KG" and rows[0][2] is None
    assert rows[0][5] == dt.datetime(2026, 11, 24, 8, 12, 44, tzinfo=TZ)


def test_handoff_preset_list_and_show_print_the_presets_and_an_unknown_name_exits_2(capsys):
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["preset", "list"]) == 0
    listing = out.getvalue()
    assert "odoo-transfers" in listing and "shopware5-orders" in listing and "maps: pick_tasks, shipments" in listing
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["preset", "show", "shopware5-orders"]) == 0
    assert out.getvalue() == (ROOT / "parameters/presets/shopware5-orders.yaml").read_text(encoding="utf-8")
    assert main(["preset", "show", "sap-s4"]) == 2
    assert "no preset 'sap-s4'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["odoo-transfers", "shopware5-orders"])
def test_a_preset_is_a_valid_fragment_of_a_site_file(name):
    body = yaml.safe_load(preset_text(name))
    assert set(body) == {"sources"}  # nothing a site file would not take as it is
