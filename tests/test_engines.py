"""One definition of each history query, two engines: every themes view gives the same rows on DuckDB
and on Spark (local mode) over a three-site store, and the comparison would notice if one engine's
query drifted."""

from __future__ import annotations

import pytest
from estate_tables import SITES, write_store

from handoff_lib.history import engines
from handoff_lib.history.engines import DuckDBEngine, SparkEngine, compile_sql, differences
from handoff_lib.learn import themes

FILTERS = (
    themes.Filters(themes=("short_stockout", "credit_payment")),
    themes.Filters(owner="finance"),
    themes.Filters(sites=("dc2", "dc3")),
)


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("estate"))


def _views(source, engine: str) -> dict:
    """Every view (the estate ones too) unfiltered, and three views under each filter, by name."""
    con, _ = themes.open_themes(source, engine=engine)
    try:
        out = themes.all_views(con, top=50, estate=True)
        for i, f in enumerate(FILTERS, 1):
            out[f"pareto[{i}]"] = themes.pareto(con, f)
            out[f"repeat_sku[{i}]"] = themes.offenders(con, "sku", 50, f)
            out[f"site_themes[{i}]"] = themes.site_themes(con, f)
        return out
    finally:
        con.close()


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    problems = {name: differences(a[name], b[name]) for name in a}
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_themes_view_gives_the_same_rows_on_duckdb_and_on_spark(estate, spark):
    duck = _views(estate, "duckdb")
    sparked = _views(estate, "spark")
    _assert_same(duck, sparked)
    # the fixture's traps are in the answers both gave
    sku = duck["repeat_sku"].set_index("sku").loc["SKU-300001"]
    assert (sku["sites"], sku["days_seen"], sku["blockers"]) == (3, 5, 15)
    assert sku["main_theme"] == "Short / stock-out"
    assert duck["pareto[2]"]["blockers"].tolist() == [2]  # b-shared at dc1 and at dc2: two blockers
    assert not duck["estate_themes"].empty and set(duck["site_themes"]["site"]) == set(SITES)
    assert set(duck["site_themes[3]"]["site"]) == {"dc2", "dc3"}
    assert sum(len(df) for df in duck.values()) > 80


def test_the_comparison_notices_a_query_that_drifted_on_one_engine(estate, spark, monkeypatch):
    """If Spark's text of a view counted snapshots where DuckDB counts distinct blockers, the test above fails."""
    from sqlglot import exp

    plain = engines._spark_only

    def drifted(node):
        node = plain(node)
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            return exp.Count(this=node.this.expressions[0])
        return node

    def two_views(engine):
        con, _ = themes.open_themes(estate, engine=engine)
        try:
            return {"by_week": themes.by_week(con), "pareto": themes.pareto(con)}
        finally:
            con.close()

    duck = two_views("duckdb")
    compile_sql.cache_clear()
    monkeypatch.setattr(engines, "_spark_only", drifted)
    try:
        sparked = two_views("spark")
    finally:
        monkeypatch.undo()
        compile_sql.cache_clear()
    with pytest.raises(AssertionError):
        _assert_same(duck, sparked)


def test_a_history_and_the_store_written_from_it_give_the_same_views(tmp_path):
    from estate_tables import write_histories

    from handoff_lib.history import store

    history = write_histories(tmp_path)[1]  # dc2
    root = tmp_path / "store"
    store.export_history(history, root, progress=False)
    from_history = themes.all_views(themes.open_themes(history)[0], top=50)
    from_store = themes.all_views(themes.open_themes(root)[0], top=50)
    assert {k: differences(from_history[k], from_store[k]) for k in from_history} == {k: [] for k in from_history}


def test_round_reads_the_decimal_value_half_away_from_zero_on_both_engines(spark):
    sql = "SELECT round(x, 1) AS r FROM (SELECT CAST(9 AS DOUBLE) / 60 AS x UNION ALL SELECT -0.15 UNION ALL SELECT 0.35) t ORDER BY r"
    expected = [-0.2, 0.2, 0.4]  # DuckDB alone rounds the binary 0.1499.. of 0.15 down to 0.1
    assert DuckDBEngine().query(sql)["r"].tolist() == expected
    assert SparkEngine(spark).query(sql)["r"].tolist() == expected


def test_values_travel_as_parameters_on_both_engines(spark):
    sql = "SELECT $name AS name, list_contains($names, $name) AS listed, $day + 1 AS next_day"
    import datetime as dt

    params = {"name": "it's; DROP TABLE x --", "names": ["it's; DROP TABLE x --"], "day": dt.date(2025, 6, 5)}
    for eng in (DuckDBEngine(), SparkEngine(spark)):
        row = eng.query(sql, params).iloc[0]
        assert (row["name"], bool(row["listed"])) == (params["name"], True)
        assert str(row["next_day"])[:10] == "2025-06-06"
        with pytest.raises(engines.EngineError, match="parameters not given: day"):
            eng.query(sql, {"name": "a", "names": []})


def test_spark_is_refused_over_a_history_database(tmp_path):
    from estate_tables import write_histories

    history = write_histories(tmp_path)[0]
    with pytest.raises(engines.HandoffError, match="reads the snapshot store, not a history database"):
        themes.open_themes(history, engine="spark")
