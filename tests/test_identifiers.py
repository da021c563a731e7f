"""The identifier crosswalk: normalisation rules, linking by every reference kind, ambiguity."""

from __future__ import annotations

import duckdb
import pytest
from tables import make_tables

from handoff_lib.join.identifiers import build_crosswalk, normalise
from handoff_lib.load.settings import IdRule, load_settings

ORDER = IdRule("order", prefixes=("SO", "ORD"), strip_zeros=True)
TICKET = IdRule("pick_ticket", prefixes=("PT",), line_suffix=r"-\d{1,3}$")


@pytest.mark.parametrize(
    "raw, rule, expected",
    [
        ("SO-0012345", ORDER, "12345"),  # prefix, separator and zero padding
        (" so12345 ", ORDER, "12345"),  # case and surrounding whitespace
        ("So 0012345", ORDER, "12345"),  # whitespace inside
        ("0012345", ORDER, "12345"),  # padding without prefix
        ("ORD/12345", ORDER, "12345"),  # second prefix, other separator
        ("12345", ORDER, "12345"),  # already normal
        ("0000", ORDER, "0"),  # all zeros keeps one zero
        ("PT0012345-02", TICKET, "12345"),  # line suffix dropped before separators
        ("pt-12345-2", TICKET, "12345"),
        ("1Z 999 AA1", IdRule("tracking_no", strip_zeros=False), "1Z999AA1"),
        ("00777", IdRule("tracking_no", strip_zeros=False), "00777"),  # zeros kept when told
    ],
)
def test_normalisation_rule(raw, rule, expected):
    assert normalise(raw, rule) == expected


def test_prefix_is_only_stripped_at_the_start():
    assert normalise("12SO345", ORDER) == "12SO345"


@pytest.fixture
def con():
    settings = load_settings("parameters/demo.yaml")
    c = duckdb.connect()
    make_tables(
        c,
        orders=[
            {"order_id": "SO-0012345", "customer_id": "C1", "customer_po": "PO-4500000001", "release_status": "released"},
            {"order_id": "SO-0012346", "customer_id": "C2", "customer_po": "PO-4500000002", "release_status": "released"},
            {"order_id": "SO-0012347", "customer_id": "C3", "customer_po": "PO-4500000777", "release_status": "released"},
            {"order_id": "SO-0012348", "customer_id": "C4", "customer_po": "PO-4500000777", "release_status": "released"},
        ],
        pick_tasks=[
            {"task_id": "T1", "pick_ticket": "PT0012345-01", "order_ref": "12345", "sku": "A", "qty_required": 1, "status": "open"},
            {"task_id": "T2", "pick_ticket": "PT0012346-01", "order_ref": " so12346 ", "sku": "A", "qty_required": 1, "status": "open"},
            {"task_id": "T3", "pick_ticket": "PT0099999-01", "order_ref": "99999", "sku": "A", "qty_required": 1, "status": "open"},
            {"task_id": "T4", "pick_ticket": "PT0012345-02", "order_ref": "SO-0012345", "sku": "B", "qty_required": 1, "status": "open"},
        ],
        pack_events=[
            {"carton_id": "CTN09000001", "pick_ticket": "PT0012346-01", "status": "packed"},
            {"carton_id": "CTN09000002", "order_ref": "12345", "pick_ticket": "PT0012346-01", "status": "packed"},
        ],
        shipments=[
            {"shipment_id": "SHP1", "reference": "CTN09000001", "carrier": "UPS", "tracking_no": "1Z999AA10000000001"},
            {"shipment_id": "SHP2", "reference": "ctn 9000777", "carrier": "UPS", "tracking_no": "1Z999AA10000000002"},
        ],
        holds=[
            {"hold_id": "H1", "reference": "PO 4500000001", "code": "CREDIT"},
            {"hold_id": "H2", "reference": "4500000777", "code": "ADDR"},
        ],
        cases=[
            {"case_id": "CS1", "reference": "1z999aa10000000001"},
            {"case_id": "CS2", "reference": "SO 12345"},
            {"case_id": "CS3", "reference": "nothing-here"},
        ],
    )
    build_crosswalk(c, settings)
    return c


def link(con, source, key):
    return con.execute(
        "SELECT status, order_id, method, confidence, level, candidates FROM xref WHERE source = ? AND record_key = ?",
        [source, key],
    ).fetchone()


def test_wms_order_reference_links_after_normalisation(con):
    status, order, method, _conf, level, _ = link(con, "pick_tasks", "T2")
    assert (status, order, method, level) == ("linked", "SO-0012346", "order_ref -> order (normalised)", "high")


def test_exact_order_id_gets_full_confidence(con):
    assert link(con, "pick_tasks", "T4")[3] == 1.0


def test_unknown_order_reference_is_unmatched_not_dropped(con):
    assert link(con, "pick_tasks", "T3")[:2] == ("unmatched", None)
    assert con.execute("SELECT count(*) FROM linked_pick_tasks").fetchone()[0] == 4


def test_pack_event_links_through_the_pick_ticket(con):
    status, order, method, *_ = link(con, "pack_events", "CTN09000001")
    assert (status, order, method) == ("linked", "SO-0012346", "pick_ticket -> pick_ticket")


def test_references_that_disagree_are_ambiguous_with_candidates(con):
    status, order, _, _, _, cands = link(con, "pack_events", "CTN09000002")
    assert (status, order) == ("ambiguous", None)
    assert cands == "SO-0012345, SO-0012346"


def test_shipment_links_through_the_carton(con):
    assert link(con, "shipments", "SHP1")[:2] == ("linked", "SO-0012346")
    assert link(con, "shipments", "SHP2")[0] == "unmatched"


def test_hold_links_through_the_customer_po(con):
    assert link(con, "holds", "H1")[:3] == ("linked", "SO-0012345", "reference -> customer_po")


def test_a_po_two_orders_share_is_ambiguous(con):
    status, order, _, _, _, cands = link(con, "holds", "H2")
    assert (status, order, cands) == ("ambiguous", None, "SO-0012347, SO-0012348")


def test_case_links_through_the_tracking_number(con):
    assert link(con, "cases", "CS1")[:3] == ("linked", "SO-0012346", "reference -> tracking_no")
    assert link(con, "cases", "CS2")[:2] == ("linked", "SO-0012345")
    assert link(con, "cases", "CS3")[0] == "unmatched"


def test_every_record_has_exactly_one_xref_row(con):
    for source in ("pick_tasks", "pack_events", "shipments", "holds", "cases"):
        n_src, n_x = con.execute(
            f"SELECT (SELECT count(*) FROM {source}), (SELECT count(*) FROM xref WHERE source = ?)", [source]
        ).fetchone()
        assert n_src == n_x


def test_join_quality_shares_add_up_per_source(con):
    jq = con.execute("SELECT source, sum(records), sum(share_pct) FROM join_quality GROUP BY 1").fetchall()
    for source, records, share in jq:
        assert abs(share - 100) < 0.05, source
    assert {s: r for s, r, _ in jq}["cases"] == 3


def test_linked_sources_are_views_with_every_record_and_their_columns(con):
    """After the crosswalk each linked source is a view over linked_<source>: same rows, same columns."""
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"pick_tasks", "pack_events", "shipments", "holds", "cases"} <= views
    assert con.execute("SELECT count(*) FROM pick_tasks").fetchone()[0] == 4
    cols = [r[0] for r in con.execute("DESCRIBE pick_tasks").fetchall()]
    assert "order_id" not in cols and "link_status" not in cols and "task_id" in cols
    assert con.execute("SELECT list(task_id ORDER BY _line) FROM pick_tasks").fetchone()[0] == ["T1", "T2", "T3", "T4"]


def test_a_second_crosswalk_on_the_same_connection_gives_the_same_links(con):
    settings = load_settings("parameters/demo.yaml")
    before = con.execute("SELECT * FROM xref ORDER BY source, _line").fetchall()
    build_crosswalk(con, settings)
    assert con.execute("SELECT * FROM xref ORDER BY source, _line").fetchall() == before
    assert con.execute("SELECT count(*) FROM linked_pick_tasks").fetchone()[0] == 4


def test_records_sharing_a_reference_each_get_the_link():
    """References are resolved once per distinct value; every record carrying it gets the result,
    and a blank reference stays unmatched on its own."""
    settings = load_settings("parameters/demo.yaml")
    c = duckdb.connect()
    make_tables(
        c,
        orders=[{"order_id": "SO-0000001", "customer_id": "C1", "customer_po": "PO-1", "release_status": "released"}],
        pick_tasks=[
            {"task_id": f"T{i}", "pick_ticket": f"PT0000001-0{i}", "order_ref": ref, "sku": "A", "qty_required": 1, "status": "open"}
            for i, ref in enumerate(["1", "1", "SO-0000001", None, "1"], start=1)
        ],
        pack_events=[], shipments=[], holds=[], cases=[],
    )  # fmt: skip
    build_crosswalk(c, settings)
    rows = c.execute("SELECT record_key, status, order_id, method FROM xref WHERE source = 'pick_tasks' ORDER BY record_key").fetchall()
    assert rows == [
        ("T1", "linked", "SO-0000001", "order_ref -> order (normalised)"),
        ("T2", "linked", "SO-0000001", "order_ref -> order (normalised)"),
        ("T3", "linked", "SO-0000001", "order_ref -> order (exact)"),
        ("T4", "unmatched", None, None),
        ("T5", "linked", "SO-0000001", "order_ref -> order (normalised)"),
    ]


def _ticket_lines_con(pick_tasks_reversed: bool = False) -> duckdb.DuckDBPyConnection:
    """One order with two pick-ticket lines (T1 normalised, T4 exact) and pack events that cite them."""
    settings = load_settings("parameters/demo.yaml")
    c = duckdb.connect()
    make_tables(
        c,
        orders=[{"order_id": "SO-0012345", "customer_id": "C1", "customer_po": "PO-1", "release_status": "released"}],
        pick_tasks=[
            {"task_id": "T1", "pick_ticket": "PT0012345-01", "order_ref": "12345", "sku": "A", "qty_required": 1, "status": "open"},
            {"task_id": "T2", "pick_ticket": "PT0099999-01", "order_ref": "99999", "sku": "A", "qty_required": 1, "status": "open"},
            {"task_id": "T4", "pick_ticket": "PT0012345-02", "order_ref": "SO-0012345", "sku": "B", "qty_required": 1, "status": "open"},
        ],
        pack_events=[
            {"carton_id": "C3", "order_ref": "SO-0012345", "pick_ticket": "PT0012345-02", "status": "packed"},
            {"carton_id": "C4", "pick_ticket": "PT0012345-01", "status": "packed"},
            {"carton_id": "C5", "pick_ticket": "PT0012345", "status": "packed"},
            {"carton_id": "C6", "order_ref": "12345", "status": "packed"},
        ],
        shipments=[], holds=[], cases=[],
    )  # fmt: skip
    if pick_tasks_reversed:  # the same records, stored against file order
        c.execute("CREATE OR REPLACE TABLE pick_tasks AS SELECT * FROM pick_tasks ORDER BY _line DESC")
    build_crosswalk(c, settings)
    return c


def test_a_ticket_hitting_several_lines_takes_the_exact_line_then_the_most_confident():
    """References with several candidates (the per-field path) against one with a single candidate."""
    c = _ticket_lines_con()
    rows = c.execute(
        """SELECT carton_id, link_status, order_id, link_method, round(link_confidence, 4), link_key
           FROM linked_pack_events ORDER BY _line"""
    ).fetchall()
    assert rows == [
        # both fields name the order: the more confident one (the exact order id) names the method
        ("C3", "linked", "SO-0012345", "order_ref -> order (exact)", 1.0, "SO-0012345"),
        # the exact ticket line wins over the more confident other line
        ("C4", "linked", "SO-0012345", "pick_ticket -> pick_ticket", round(0.95 * 0.97, 4), "PT0012345-01"),
        # no exact line: the most confident one
        ("C5", "linked", "SO-0012345", "pick_ticket -> pick_ticket", 0.95, "PT0012345-02"),
        # a single candidate
        ("C6", "linked", "SO-0012345", "order_ref -> order (normalised)", 0.97, "SO-0012345"),
    ]


def test_linked_records_keep_file_order_whatever_order_the_source_is_stored_in(monkeypatch):
    """The join keeps file order on one thread (checked); a source stored out of order is sorted instead."""
    import handoff_lib.join.identifiers as ident

    seen = []
    check = ident._in_line_order

    def spy(con, table):
        seen.append((table, check(con, table)))
        return seen[-1][1]

    monkeypatch.setattr(ident, "_in_line_order", spy)
    stored = "SELECT * EXCLUDE (_file) FROM linked_pick_tasks"  # a single table's rows in stored order
    in_order = _ticket_lines_con().execute(stored).fetchall()
    assert ("linked_pick_tasks", True) in seen
    seen.clear()
    reversed_ = _ticket_lines_con(pick_tasks_reversed=True).execute(stored).fetchall()
    assert ("linked_pick_tasks", False) in seen
    assert in_order == reversed_
    assert [r[0] for r in in_order] == ["T1", "T2", "T4"]


def test_join_quality_examples_are_the_first_records_by_line_with_their_reference(con):
    rows = dict(
        con.execute(
            "SELECT method, examples FROM join_quality WHERE source IN ('pick_tasks', 'pack_events') AND status <> 'unmatched'"
        ).fetchall()
    )
    assert rows["order_ref -> order (normalised)"] == "T1 [12345]; T2 [ so12346 ]"
    assert rows[""] == "CTN09000002 [12345 | PT0012346-01] candidates: SO-0012345, SO-0012346"
