"""handoff inspect: a draft site file from a folder of extracts (docs/extracts.md, "Your own site in three steps").

Measured on data demo.py did not make: the hand-written second site (its site file is the right answer) and the
shared Olist history (parameters/olist.yaml), plus small hand-written files for one behaviour each. A proposal the
draft makes without a TODO must be the right one; a draft whose TODOs are fixed must run `handoff run` and load
exactly as the hand-written site file does."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from handoff_lib.join.inspect import draft_site, propose_values, read_extract, score_draft
from handoff_lib.join.inspect import fix_todos_from as fix_todos
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

SITE2 = Path(__file__).resolve().parent / "fixtures" / "site2"
OLIST = Path("/work/shared/data/olist-2017-10k")
OLIST_SITE = Path(__file__).resolve().parent.parent / "parameters" / "olist.yaml"


def reading(site_file: Path, folder: Path, out: Path) -> Path:
    """A copy of a known site file reading `folder`, written to `out`."""
    raw = yaml.safe_load(site_file.read_text(encoding="utf-8"))
    raw["data"] = {"folder": str(folder), "allowed_roots": [str(folder)]}
    raw["outputs"] = str(out.parent / "outputs")
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def load_counts(con: duckdb.DuckDBPyConnection) -> dict:
    """Per source: rows read, accepted, rejected, values nulled and flagged; links per source and status."""
    load = con.execute(
        "SELECT source, rows_read, rows_accepted, rows_rejected, values_nulled, values_flagged FROM load_report ORDER BY 1"
    ).fetchall()
    links = con.execute("SELECT source, status, count(*) FROM xref GROUP BY ALL ORDER BY ALL").fetchall()
    return {"load": load, "links": links}


@pytest.fixture(scope="module")
def site2_draft(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inspect-site2")
    draft = draft_site(SITE2 / "extracts", tmp / "draft.yaml", progress=False)
    return tmp, draft


def test_site2_draft_proposes_every_file_field_and_status_code_as_the_hand_written_site_file(site2_draft):
    tmp, draft = site2_draft
    score = score_draft(tmp / "draft.yaml", SITE2 / "site.yaml", draft.todos)
    assert score.wrong == []
    assert score.counts["entities"]["right"] == len(ENTITIES)
    assert score.counts["fields"]["right"] >= 70  # 72 fields the site file maps
    assert score.counts["values"]["right"] >= 15  # priority P1-P3, task, carton and instruction words
    assert score.links[0] >= score.links[1]  # the draft's identifier rules link every reference the site file's do


def test_site2_draft_derives_release_status_from_the_release_date_because_open_orders_carry_one(site2_draft):
    tmp, _ = site2_draft
    orders = load_settings(tmp / "draft.yaml").sources["orders"]
    rules = orders.derived["release_status"]
    assert [r.value for r in rules] == ["cancelled", "not_released", "not_released", "released"]
    assert {c.test for r in rules for c in r.when} == {"in", "blank", "after_review"}


def test_site2_draft_finds_the_colon_separator_and_prefixes_that_join_its_identifiers(site2_draft):
    _, draft = site2_draft
    order, linked, _of, why = draft.identifiers["order"]
    assert order.prefixes == ("SO",) and ":" in order.separators
    assert linked > 43 and "the default rule: 43" in why  # the default rule links only the order lines' SO:004512
    carton = draft.identifiers["carton"][0]
    assert carton.prefixes == ("LPN",)


def test_site2_draft_reads_the_cp1252_holds_file_and_lists_both_timestamp_formats_of_the_orders(site2_draft):
    tmp, _ = site2_draft
    s = load_settings(tmp / "draft.yaml")
    assert s.sources["holds"].encoding == "cp1252"
    assert s.sources["orders"].encoding == "utf-8"  # one stray cp1252 name in a UTF-8 file: the load flags it
    assert s.sources["orders"].timestamp_format == ["%m/%d/%Y %I:%M %p"]  # the ISO ones are read natively
    text = (tmp / "draft.yaml").read_text(encoding="utf-8")
    assert "# formats used by Entered: %m/%d/%Y %I:%M %p (33), ISO (10)" in text


def test_site2_draft_with_its_todos_fixed_runs_handoff_run_and_loads_as_the_site_file_does(site2_draft):
    tmp, draft = site2_draft
    assert set(draft.todos) <= {"timezone", "cutoffs"}
    fixed = fix_todos(tmp / "draft.yaml", SITE2 / "site.yaml", draft.todos, tmp / "fixed.yaml")
    run = subprocess.run(
        [sys.executable, "-m", "handoff_lib.cli", "run", "--site", str(fixed), "--at", "2026-11-24 13:30", "--quiet",
         "--outputs", str(tmp / "outputs"), "--history", str(tmp / "history.duckdb")],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "outputs written to" in run.stdout
    at = load_settings(fixed)
    now = dt.datetime(2026, 11, 24, 13, 30, tzinfo=at.tz)
    assert load_counts(build_picture(at, now=now)) == load_counts(build_picture(load_settings(SITE2 / "site.yaml"), now=now))


@pytest.mark.skipif(not OLIST.is_dir(), reason="the shared Olist history is not on this machine")
def test_olist_draft_proposes_nothing_wrong_and_flags_what_the_export_lacks(tmp_path):
    draft = draft_site(OLIST, tmp_path / "draft.yaml", progress=False)
    truth = reading(OLIST_SITE, OLIST, tmp_path / "olist.yaml")
    score = score_draft(tmp_path / "draft.yaml", truth, draft.todos)
    proposed_wrong = [w for w in score.wrong if ": draft None," not in w]
    assert proposed_wrong == []
    assert score.wrong == ["fields: orders.carrier: draft None, right constant MARKETPLACE"]  # optional, left out
    assert {"order_lines.columns.qty", "shipments.columns.carrier"} <= set(draft.todos)  # no column holds them
    s = load_settings(tmp_path / "draft.yaml")
    assert s.sources["shipments"].file == "orders.csv"  # one shipment per order row, handed off at the carrier date
    assert any("customers.csv" in x for x in draft.left_out)
    fixed = fix_todos(tmp_path / "draft.yaml", truth, draft.todos, tmp_path / "fixed.yaml")
    run = subprocess.run(
        [sys.executable, "-m", "handoff_lib.cli", "run", "--site", str(fixed), "--at", "2017-10-02 16:00", "--quiet",
         "--outputs", str(tmp_path / "outputs"), "--history", str(tmp_path / "history.duckdb")],
        capture_output=True, text=True, check=False, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_german_semicolon_cp1252_stock_file_is_read_as_inventory(tmp_path):
    folder = tmp_path / "lager"
    folder.mkdir()
    (folder / "bestand.csv").write_bytes(
        "Artikel;Lagerplatz;Menge;Reserviert;Gesperrt;Bemerkung\n"
        "FAS-1020;A-03-02;140;19;0;Prüfen\nFAS-1044;A-03-05;60;10;0;\nELC-5012;C-02-03;80;15;2;Größe falsch\n".encode("cp1252")
    )
    draft = draft_site(folder, tmp_path / "site.yaml", progress=False)
    inv = draft.sources["inventory"]
    assert inv.extract.delimiter == ";" and inv.extract.encoding == "cp1252"
    assert {f: p.column for f, p in inv.fields.items()} == {"sku": "Artikel", "location": "Lagerplatz", "on_hand": "Menge",
                                                              "allocated": "Reserviert", "on_hold": "Gesperrt"}


def test_day_first_dates_are_told_from_month_first_by_a_day_above_twelve(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "holds.csv").write_text(
        "hold_no,held_ref,placed,released\nH1,SO-1,03/11/2026 09:05,\nH2,SO-2,24/11/2026 14:00,2026-11-24T15:00:00+01:00\n",
        encoding="utf-8",
    )
    draft = draft_site(folder, tmp_path / "site.yaml", progress=False)
    holds = draft.sources["holds"]
    assert holds.timestamp_formats == ["%d/%m/%Y %H:%M"]
    assert any("ISO with zone (1)" in n for n in holds.format_notes)


def test_status_words_map_onto_the_contract_and_unknown_ones_are_left_todo():
    tasks = ENTITIES["pick_tasks"]
    col = read_extract(SITE2 / "extracts" / "wms_pick_tasks.csv").column("Status")
    mapped = propose_values(tasks, tasks.field("status"), col)
    assert {k: v[0] for k, v in mapped.items()} == {"Cancelled": "cancelled", "In Progress": "in_progress", "Open": "open",
                                                    "Picked": "picked", "Short Picked": "short"}
    col.values = ["Open", "Wartend", "Open"]
    mapped = propose_values(tasks, tasks.field("status"), col)
    assert mapped["Wartend"][0] == "" and mapped["Wartend"][1] is True


def test_handoff_inspect_cli_writes_the_draft_and_says_where(tmp_path):
    out = tmp_path / "draft.yaml"
    run = subprocess.run([sys.executable, "-m", "handoff_lib.cli", "inspect", str(SITE2 / "extracts"), "--out", str(out), "--quiet"],
                         capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"draft site file written to {out}" in run.stdout and out.exists()
    again = subprocess.run([sys.executable, "-m", "handoff_lib.cli", "inspect", str(SITE2 / "extracts"), "--out", str(out)],
                           capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 2 and "--force" in again.stderr


def test_demo_day_draft_proposes_nothing_wrong_and_links_every_record_as_the_demo_site_file(tmp_path):
    from handoff_lib.load.demo import generate

    root = Path(__file__).resolve().parent.parent
    generate(orders=400, seed=11, out=tmp_path / "day", date="2026-11-24", at=["14:30"], site_file=str(root / "parameters/demo.yaml"))
    draft = draft_site(tmp_path / "day", tmp_path / "draft.yaml", progress=False)
    truth = reading(root / "parameters/demo.yaml", tmp_path / "day", tmp_path / "demo.yaml")
    score = score_draft(tmp_path / "draft.yaml", truth, draft.todos)
    assert score.wrong == []
    assert score.counts["fields"]["right"] == 72
    assert all(t.startswith("values: pick_tasks.status ") for t in score.todo)  # the numeric task codes 10-90 only
    fixed = fix_todos(tmp_path / "draft.yaml", truth, draft.todos, tmp_path / "fixed.yaml")
    now = dt.datetime(2026, 11, 24, 14, 30, tzinfo=load_settings(truth).tz)
    assert load_counts(build_picture(load_settings(fixed), now=now)) == load_counts(build_picture(load_settings(truth), now=now))


def test_xlsx_and_parquet_exports_are_inspected_like_csv(tmp_path):
    import pandas as pd

    folder = tmp_path / "exports"
    folder.mkdir()
    stock = pd.read_csv(SITE2 / "extracts" / "wms_inventory.csv", dtype=str)
    stock.to_excel(folder / "stock.xlsx", index=False)
    pd.read_csv(SITE2 / "extracts" / "crm_account_instructions.csv", dtype=str).to_parquet(folder / "instructions.parquet")
    draft = draft_site(folder, tmp_path / "site.yaml", progress=False)
    assert draft.sources["inventory"].extract.format == "xlsx"
    assert {f: p.column for f, p in draft.sources["inventory"].fields.items()} == {
        "sku": "Item", "location": "Bin", "on_hand": "On Hand", "allocated": "Allocated", "on_hold": "QC Hold"}
    assert draft.sources["account_instructions"].extract.format == "parquet"
    assert load_settings(tmp_path / "site.yaml").sources["inventory"].file == "stock.xlsx"


def test_numeric_task_codes_are_taken_where_the_quantities_tell_and_left_todo_where_not(tmp_path):
    folder = tmp_path / "wms"
    folder.mkdir()
    rows = ["TASK_ID,ORDER_REF,ITEM,QTY_REQ,QTY_PICK,TASK_STAT"]
    rows += [f"T{i},SO-{i},SKU-{1000 + i},4,{q},{c}" for i, (q, c) in enumerate([(0, 10)] * 5 + [(4, 30)] * 6 + [(2, 20), (0, 20)] + [(0, 90)] * 2)]
    (folder / "tasks.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    draft = draft_site(folder, tmp_path / "site.yaml", progress=False)
    status = draft.sources["pick_tasks"].values["status"]
    assert {code: (canon, todo) for code, (canon, todo, _) in status.items()} == {
        "10": ("open", False), "20": ("in_progress", True), "30": ("picked", False), "90": ("cancelled", False)}
    assert "pick_tasks.values.status.20" in draft.todos and "pick_tasks.values.status.30" not in draft.todos


def test_a_file_that_cannot_be_read_is_named_in_the_error(tmp_path):
    from handoff_lib.errors import HandoffError

    (tmp_path / "stock.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(HandoffError, match=r"stock\.xlsx: cannot be read as XLSX"):
        draft_site(tmp_path, None, progress=False)


def test_a_spanish_pick_task_export_maps_its_words_onto_the_contract(tmp_path):
    folder = tmp_path / "almacen"
    folder.mkdir()
    (folder / "tareas_picking.csv").write_text(
        "Tarea;Pedido;Artículo;Ubicación;Onda;Cantidad Solicitada;Cantidad Recogida;Estado;Actualizado\n"
        "900001;PED-1001;FAS-1020;A-03-02;W1;4;4;Recogida;24/11/2026 09:15\n"
        "900002;PED-1001;FAS-1044;A-03-05;W1;2;0;Abierta;24/11/2026 09:20\n"
        "900003;PED-1002;ELC-5012;C-02-03;W2;5;2;Anulada;24/11/2026 13:40\n",
        encoding="utf-8",
    )
    draft = draft_site(folder, tmp_path / "site.yaml", progress=False)
    tasks = draft.sources["pick_tasks"]
    assert {f: p.column for f, p in tasks.fields.items() if not p.todo} == {
        "task_id": "Tarea", "order_ref": "Pedido", "sku": "Artículo", "location": "Ubicación", "wave": "Onda",
        "qty_required": "Cantidad Solicitada", "qty_picked": "Cantidad Recogida", "status": "Estado", "updated_at": "Actualizado"}
    assert tasks.timestamp_formats == ["%d/%m/%Y %H:%M"]
    assert tasks.values["status"]["Anulada"][0] == "cancelled"
