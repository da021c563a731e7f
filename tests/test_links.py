"""Source links: every record value is URL-quoted, and only http(s) links come out."""

import duckdb
import pytest
from scenario_tables import demo_settings

from handoff_lib.join.links import link_sql, placeholders, record_link, render_link

TRICKY = ["T-88812", "A/../../admin?x=1#frag", "SO 1001&debug=1", "ünïcode~-_.", "javascript:alert(1)", "%2F"]


def test_a_wms_task_link_is_the_template_filled_with_the_task_id():
    assert record_link(demo_settings(), "wms", {"task_id": "T-88812"}) == "https://wms.example.com/tasks/T-88812"


@pytest.mark.parametrize("value", TRICKY)
def test_a_record_value_cannot_leave_its_path_segment(value):
    url = render_link("https://wms.example.com/tasks/{task_id}", {"task_id": value})
    assert url.startswith("https://wms.example.com/tasks/")
    assert not any(c in url.removeprefix("https://wms.example.com/tasks/") for c in "/?#&: ")


def test_a_missing_or_blank_value_gives_no_link():
    assert render_link("https://x.example/{a}", {}) is None
    assert render_link("https://x.example/{a}", {"a": "  "}) is None
    assert render_link(None, {"a": "1"}) is None


def test_only_http_and_https_links_come_out():
    assert render_link("javascript:{a}", {"a": "alert(1)"}) is None
    assert render_link("{a}", {"a": "https://evil.example"}) is None
    assert link_sql("ftp://x/{a}", {"a": "a"}, "l") == ("CAST(NULL AS VARCHAR)", {})


def test_the_sql_rendering_matches_the_python_rendering():
    template = "https://crm.example.com/cases/{case_id}?order={order_id}"
    expr, params = link_sql(template, {"case_id": "c", "order_id": "o"}, "crm")
    con = duckdb.connect()
    for value in TRICKY + [None]:
        got = con.execute(
            f"SELECT {expr} FROM (SELECT CAST($v AS VARCHAR) AS c, 'SO-1' AS o)", {**params, "v": value}
        ).fetchone()[0]
        assert got == render_link(template, {"case_id": value, "order_id": "SO-1"}), value


def test_a_template_placeholder_the_record_lacks_gives_no_sql_link():
    assert link_sql("https://wms.example.com/tasks/{task_id}", {"hold_id": "h.hold_id"}, "l")[0] == "CAST(NULL AS VARCHAR)"
    assert placeholders("https://x/{a}/{b}") == ("a", "b")
