"""Normalise identifiers and build the crosswalk between systems, with method and confidence.

The crosswalk runs in stages, because some identifiers only become known once an earlier source
is linked (a pick ticket belongs to an order once its pick task is linked; a carton once its pack
event is; a tracking number once its shipment is):

1. index order ids and customer POs from the OMS orders;
2. link pick tasks, then index their pick tickets (and task ids, for lookups);
3. link pack events, then index their cartons;
4. link shipments, then index shipment ids and tracking numbers;
5. link holds and CRM cases against everything.

For every referencing record the reference fields are normalised under each identifier kind the
field may carry and matched against the index. One candidate order -> `linked`; candidates that
disagree -> `ambiguous` (listed with the candidates, never guessed); none -> `unmatched`.
Every record ends in exactly one `xref` row, so no record is ever dropped.

Tables written: `id_index`, `xref`, `linked_<entity>` for each referencing entity, `join_quality`.
See docs/crosswalk.md for the rules and the confidence scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd

from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import IdRule, Settings
from handoff_lib.load.site_keys import IDENTIFIER_KINDS

# Identifier kinds the crosswalk knows. A site configures the normalisation of each in
# `identifiers:`; a kind the site leaves out gets the default rule (case, whitespace, separators,
# leading zeros).
KINDS = IDENTIFIER_KINDS  # the site file's identifiers: may set a rule for each (site_keys.py)
LINKING_KINDS = KINDS[:6]

# Which kinds each reference field may carry, in order of preference.
REFERENCE_FIELDS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "pick_tasks": [("order_ref", ("order", "customer_po"))],
    "pack_events": [("order_ref", ("order", "customer_po")), ("pick_ticket", ("pick_ticket", "order"))],
    "shipments": [("reference", ("carton", "pick_ticket", "order", "customer_po"))],
    "holds": [("reference", ("order", "customer_po", "pick_ticket", "carton"))],
    "cases": [("reference", ("order", "customer_po", "tracking_no", "shipment", "carton", "pick_ticket"))],
}
STAGES = ("pick_tasks", "pack_events", "shipments", "holds", "cases")

# Confidence of a link by how it was made (docs/crosswalk.md). Chained links multiply by the
# confidence of the record that put the identifier in the index.
CONFIDENCE = {
    "exact": 1.0,  # the reference is the order id exactly as the OMS writes it
    "normalised": 0.97,  # the same order id after the site's normalisation rules
    "customer_po": 0.9,  # the customer PO of exactly one order
    "chained": 0.95,  # an identifier another linked record carries (ticket, carton, tracking)
}
HIGH = 0.95  # a link at or above this is 'high' confidence; below 0.8 is 'low'
MEDIUM = 0.8

# What each entity contributes to the index once linked: (kind, column).
INDEX_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "pick_tasks": [("pick_ticket", "pick_ticket"), ("task", "task_id")],
    "pack_events": [("carton", "carton_id")],
    "shipments": [("shipment", "shipment_id"), ("tracking_no", "tracking_no")],
    "holds": [("hold", "hold_id")],
    "cases": [("case", "case_id")],
}


@dataclass(frozen=True)
class NormExpr:
    sql: str
    params: dict[str, object]


def rule_for(settings: Settings, kind: str) -> IdRule:
    return settings.identifiers.get(kind) or IdRule(kind=kind)


def norm_expr(column: str, rule: IdRule, tag: str) -> NormExpr:
    """SQL that normalises `column` under `rule`: upper, no whitespace, line suffix and prefix
    dropped, separators removed, leading zeros stripped. Patterns travel as parameters."""
    p: dict[str, object] = {}
    s = f"regexp_replace(upper(coalesce({column}, '')), '\\s+', '', 'g')"
    if rule.line_suffix:
        p[f"{tag}_suffix"] = rule.line_suffix
        s = f"regexp_replace({s}, ${tag}_suffix, '')"
    if rule.prefixes:
        alts = "|".join(_re_escape(x) for x in sorted(rule.prefixes, key=len, reverse=True))
        p[f"{tag}_prefix"] = f"^{rule.separators}*({alts})"
        s = f"regexp_replace({s}, ${tag}_prefix, '')"
    p[f"{tag}_sep"] = rule.separators
    s = f"regexp_replace({s}, ${tag}_sep, '', 'g')"
    if rule.strip_zeros:
        s = f"(CASE WHEN ltrim({s}, '0') = '' AND {s} <> '' THEN '0' ELSE ltrim({s}, '0') END)"
    return NormExpr(s, p)


def prefix_seen_expr(column: str, rule: IdRule, tag: str) -> NormExpr:
    """SQL that is true when the raw value carries one of the rule's prefixes."""
    if not rule.prefixes:
        return NormExpr("false", {})
    alts = "|".join(_re_escape(x) for x in sorted(rule.prefixes, key=len, reverse=True))
    return NormExpr(
        f"regexp_matches(regexp_replace(upper(coalesce({column}, '')), '\\s+', '', 'g'), ${tag}_seen)",
        {f"{tag}_seen": f"^{rule.separators}*({alts})"},
    )


def normalise(value: str, rule: IdRule) -> str:
    """The normalised form of one identifier (the same rules as the SQL, for lookups and tests)."""
    con = duckdb.connect()
    e = norm_expr("$v", rule, "k")
    return con.execute(f"SELECT {e.sql}", {**e.params, "v": value}).fetchone()[0]


def _re_escape(s: str) -> str:
    return "".join("\\" + c if c in r".^$*+?{}[]\|()" else c for c in s)


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]
    )


def _add_to_index(
    con: duckdb.DuckDBPyConnection, settings: Settings, kind: str, table: str, column: str, order_col: str, conf_col: str
) -> None:
    rule = rule_for(settings, kind)
    e = norm_expr(column, rule, "ix")
    con.execute(
        f"""
        INSERT INTO id_index
        SELECT DISTINCT $kind AS kind, {e.sql} AS key, upper(trim({column})) AS raw_key,
               {order_col} AS order_id, {conf_col} AS confidence, $src AS source
        FROM {table}
        WHERE {column} IS NOT NULL AND trim({column}) <> '' AND {order_col} IS NOT NULL
        """,
        {**e.params, "kind": kind, "src": table},
    )


def _link_entity(con: duckdb.DuckDBPyConnection, settings: Settings, entity: str) -> None:
    """Link every record of `entity` to an order through its reference fields; write xref rows
    and the `linked_<entity>` table.

    A record's link depends only on the values of its reference fields, and many records share them
    (every pick task of an order carries the same order reference). So the references are resolved
    once per distinct combination of values (`_refs`), and the records take the result by joining on
    those values."""
    key_col = ENTITIES[entity].key[0] if ENTITIES[entity].key else "_line"
    fields = REFERENCE_FIELDS[entity]
    names = [f for f, _ in fields]
    present = " OR ".join(f"({f} IS NOT NULL AND trim({f}) <> '')" for f in names)
    # 0. the distinct reference values, numbered
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _refs AS
            SELECT row_number() OVER () AS _ref, {", ".join(names)}
            FROM (SELECT DISTINCT {", ".join(names)} FROM {entity} WHERE {present})"""
    )
    # 1. one row per (reference, field, kind) with the normalised key
    parts, params = [], {}
    for fi, (field, kinds) in enumerate(fields):
        for ki, kind in enumerate(kinds):
            rule = rule_for(settings, kind)
            tag = f"f{fi}k{ki}"
            e = norm_expr(field, rule, tag)
            seen = prefix_seen_expr(field, rule, tag)
            params.update(e.params)
            params.update(seen.params)
            params[f"{tag}_kind"] = kind
            params[f"{tag}_field"] = field
            parts.append(
                f"""SELECT _ref, ${tag}_field AS field, upper(trim({field})) AS raw_key, ${tag}_kind AS kind, {ki} AS kind_rank,
                           {e.sql} AS key, {seen.sql} AS prefix_seen
                    FROM _refs WHERE {field} IS NOT NULL AND trim({field}) <> ''"""
            )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _refkeys AS {' UNION ALL '.join(parts)}", params)
    # 2. candidates: every index entry the normalised keys hit
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cands AS
        SELECT r._ref, r.field, r.kind, r.kind_rank, r.prefix_seen, i.order_id, i.raw_key AS matched_key,
               (r.raw_key = i.raw_key) AS exact,
               CASE
                 WHEN r.kind = 'order' AND r.raw_key = i.raw_key THEN $c_exact
                 WHEN r.kind = 'order' THEN $c_norm
                 WHEN r.kind = 'customer_po' THEN $c_po
                 ELSE $c_chain * i.confidence
               END AS confidence
        FROM _refkeys r JOIN id_index i ON i.kind = r.kind AND i.key = r.key AND r.key <> ''
        """,
        {
            "c_exact": CONFIDENCE["exact"],
            "c_norm": CONFIDENCE["normalised"],
            "c_po": CONFIDENCE["customer_po"],
            "c_chain": CONFIDENCE["chained"],
        },
    )
    # 3. resolve per reference. Candidates through a kind whose prefix the raw value carries are
    #    preferred; if they name one order, that is the link. Otherwise all candidates must agree.
    #    A reference with candidates that is not linked is ambiguous; one without is unmatched.
    con.execute(_RESOLVE, {"fields": names})
    # 4. each record takes its reference's result by its reference values: linked_<entity> (in file
    #    order), then its xref row. `_candidates` rides along for xref (no second join) and is dropped.
    same = " AND ".join(f"e.{f} IS NOT DISTINCT FROM r.{f}" for f in names)
    linked = f"""
        CREATE OR REPLACE TABLE linked_{entity} AS
        SELECT e.*, r.order_id, r.method AS link_method, r.confidence AS link_confidence,
               coalesce(r.status, 'unmatched') AS link_status, r.link_kind, r.link_key, r.candidates AS _candidates
        FROM {entity} e LEFT JOIN (SELECT f.*, r.* EXCLUDE (_ref) FROM _refs f JOIN _resolved r USING (_ref)) r ON {same}"""
    # Sorting the wide records by _line was half the cost of this step. On one thread the join hands
    # the records on in the order it reads them, which is file order; that is checked (a cheap pass
    # over _line), and the records are sorted only when it does not hold.
    with _one_thread(con):
        con.execute(linked)
    if not _in_line_order(con, f"linked_{entity}"):
        con.execute(f"{linked} ORDER BY e._line")
    ref_cols = " || ' | ' || ".join(f"coalesce(e.{f}, '')" for f in names)
    con.execute(
        f"""
        INSERT INTO xref
        SELECT $entity AS source, e._file, e._line, CAST(e.{key_col} AS VARCHAR) AS record_key, {ref_cols} AS reference,
               e.order_id, e.link_method, e.link_confidence,
               CASE WHEN e.link_confidence >= $high THEN 'high' WHEN e.link_confidence >= $medium THEN 'medium'
                    WHEN e.link_confidence IS NOT NULL THEN 'low' END AS level,
               e.link_status, e._candidates
        FROM linked_{entity} e
        """,
        {"entity": entity, "high": HIGH, "medium": MEDIUM},
    )
    con.execute(f"ALTER TABLE linked_{entity} DROP COLUMN _candidates")
    for t in ("_refs", "_refkeys", "_cands", "_resolved"):
        con.execute(f"DROP TABLE IF EXISTS {t}")


@contextmanager
def _one_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block with DuckDB on one thread, then restore the connection's thread count."""
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.execute("SET threads = 1")
    try:
        yield
    finally:
        con.execute(f"SET threads = {threads}")


def _in_line_order(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """True when `table` stores its rows in increasing `_line` (file) order: lag() over an empty
    window sees the rows in their stored order (DuckDB's order-preservation rules)."""
    sql = f"SELECT count(*) FROM (SELECT _line <= lag(_line) OVER () AS back FROM {table}) WHERE back"
    return con.execute(sql).fetchone()[0] == 0


# Resolution of every reference (`_ref`) from its candidates (`_cands`), written as `_resolved`.
# Most references have exactly one candidate: that candidate is the link (`single`). The others go
# through one aggregation per reference field: the field names one order (o_lo = o_hi), or its prefix
# settles which kind it is (s_lo = s_hi); its pick is then the best candidate by exactness,
# confidence, kind and key, taken as the candidate's rowid with arg_min (candidates tied on that whole
# key carry the same order, kind, exactness, confidence and key, so which one is taken never shows).
# Then per reference: every field that matched must pick the same order; the best pick by confidence
# names the method (ties: the first field). Counting distinct orders is only ever compared with 1,
# so min = max does it (order_id is never NULL in the index) without DuckDB's costly DISTINCT
# aggregates; the sorted candidate list is built only for the few references that name several orders.
_RESOLVE = """
CREATE OR REPLACE TEMP TABLE _resolved AS
WITH n_cands AS (SELECT _ref, count(*) AS n FROM _cands GROUP BY _ref),
single AS (SELECT c.* FROM _cands c JOIN n_cands k USING (_ref) WHERE k.n = 1),
multi AS NOT MATERIALIZED (
    SELECT c.rowid AS _id, c._ref, c.field, c.order_id, c.prefix_seen, c.exact, c.confidence, c.kind_rank, c.matched_key
    FROM _cands c JOIN n_cands k USING (_ref) WHERE k.n > 1
),
per_field AS (      -- one reference field read as several kinds: its orders and its pick (a rowid of _cands)
    SELECT _ref, field, o_lo, o_hi, CASE WHEN o_lo = o_hi THEN best_all WHEN s_lo = s_hi THEN best_seen END AS pick
    FROM (SELECT _ref, field, min(order_id) AS o_lo, max(order_id) AS o_hi,
                 min(order_id) FILTER (WHERE prefix_seen) AS s_lo, max(order_id) FILTER (WHERE prefix_seen) AS s_hi,
                 arg_min(_id, {x: NOT exact, c: -confidence, k: kind_rank, m: matched_key}) AS best_all,
                 arg_min(_id, {x: NOT exact, c: -confidence, k: kind_rank, m: matched_key}) FILTER (WHERE prefix_seen)
                     AS best_seen
          FROM multi GROUP BY _ref, field)
),
per_ref AS (        -- every field that matched must pick the same order
    SELECT pf._ref, min(pf.o_lo) AS o_lo, max(pf.o_hi) AS o_hi, count(*) AS n_fields, count(pf.pick) AS n_picked,
           min(c.order_id) = max(c.order_id) AS one_order,
           arg_min(pf.pick, {c: -c.confidence, f: list_position($fields, pf.field)}) AS best
    FROM per_field pf LEFT JOIN _cands c ON c.rowid = pf.pick GROUP BY pf._ref
),
many AS (           -- the candidate list of references that name several orders
    SELECT _ref, array_to_string(list_sort(list_distinct(list(order_id))), ', ') AS candidates
    FROM multi WHERE _ref IN (SELECT _ref FROM per_ref WHERE o_lo <> o_hi) GROUP BY _ref
),
picked AS (
    SELECT pr._ref, CASE WHEN pr.o_lo = pr.o_hi THEN pr.o_lo ELSE m.candidates END AS candidates,
           coalesce(pr.one_order AND pr.n_picked = pr.n_fields, false) AS ok,
           c.order_id, c.field, c.kind, c.exact, c.confidence,
           pf.o_lo <> pf.o_hi AS several,  -- other orders matched too and a prefix settled it
           c.matched_key
    FROM per_ref pr LEFT JOIN many m USING (_ref)
    LEFT JOIN _cands c ON c.rowid = pr.best
    LEFT JOIN per_field pf ON pf._ref = pr._ref AND pf.pick = pr.best
    UNION ALL
    SELECT _ref, order_id, true, order_id, field, kind, exact, confidence, false, matched_key FROM single
)
SELECT _ref,
       CASE WHEN ok THEN 'linked' ELSE 'ambiguous' END AS status,
       CASE WHEN ok THEN order_id END AS order_id,
       CASE WHEN ok THEN field || ' -> ' || kind ||
            CASE WHEN kind = 'order' AND exact THEN ' (exact)'
                 WHEN kind = 'order' THEN ' (normalised)' ELSE '' END END AS method,
       -- a prefix settled a conflicting reading: one step down in confidence
       CASE WHEN ok THEN confidence * CASE WHEN several THEN 0.8 ELSE 1.0 END END AS confidence,
       candidates,
       CASE WHEN ok THEN kind END AS link_kind,
       CASE WHEN ok THEN matched_key END AS link_key
FROM picked
"""


def build_crosswalk(con: duckdb.DuckDBPyConnection, settings: Settings) -> pd.DataFrame:
    """Link every referencing record to an OMS order. Writes `id_index`, `xref`, `linked_*` and
    `join_quality`; returns the join-quality table."""
    con.execute(
        """CREATE OR REPLACE TABLE id_index (kind VARCHAR, key VARCHAR, raw_key VARCHAR, order_id VARCHAR,
                                              confidence DOUBLE, source VARCHAR)"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE xref (source VARCHAR, _file VARCHAR, _line BIGINT, record_key VARCHAR,
               reference VARCHAR, order_id VARCHAR, method VARCHAR, confidence DOUBLE, level VARCHAR,
               status VARCHAR, candidates VARCHAR)"""
    )
    for entity in STAGES:  # a second build on the same connection: the sources are tables again
        _as_table(con, entity)
    _add_to_index(con, settings, "order", "orders", "order_id", "order_id", "1.0")
    _add_to_index(con, settings, "customer_po", "orders", "customer_po", "order_id", "1.0")
    for entity in STAGES:
        _link_entity(con, settings, entity)
        for kind, column in INDEX_COLUMNS.get(entity, []):
            _add_to_index(con, settings, kind, f"linked_{entity}", column, "order_id", "link_confidence")
    for entity in STAGES:
        _as_view(con, entity)
    return join_quality(con)


def _as_view(con: duckdb.DuckDBPyConnection, entity: str) -> None:
    """Replace the loaded table `entity` by a view of the same rows and columns over `linked_<entity>`,
    which holds every record of it (in file order) plus the link: the picture keeps one copy of the
    rows, not two (at 1M order lines the five linked sources are about 1.4M rows)."""
    cols = ", ".join(f'"{r[0]}"' for r in con.execute(f"DESCRIBE {entity}").fetchall())
    con.execute(f"DROP TABLE {entity}")
    con.execute(f"CREATE VIEW {entity} AS SELECT {cols} FROM linked_{entity}")


def _as_table(con: duckdb.DuckDBPyConnection, entity: str) -> None:
    """Undo _as_view (when `entity` is a view): the crosswalk reads its sources as tables."""
    is_view = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = $n AND NOT internal AND database_name = current_database()",
        {"n": entity},
    ).fetchone()[0]
    if is_view:
        con.execute(f"CREATE OR REPLACE TABLE _xw_{entity} AS SELECT * FROM {entity}")
        con.execute(f"DROP VIEW {entity}")
        con.execute(f"ALTER TABLE _xw_{entity} RENAME TO {entity}")


def join_quality(con: duckdb.DuckDBPyConnection, examples: int = 3) -> pd.DataFrame:
    """Per source: records linked by each method, ambiguous and unmatched, with shares and examples.
    Also written as table `join_quality`."""
    con.execute(
        """
        CREATE OR REPLACE TABLE join_quality AS
        WITH g AS (   -- the first n lines of each group with a record key, without sorting every record
            SELECT source, status, coalesce(method, '') AS method, count(*) AS records,
                   min(_line, $n) FILTER (WHERE record_key IS NOT NULL) AS first_lines
            FROM xref GROUP BY ALL
        ),
        ex AS (       -- the example texts, built for those lines only (a line names one record of a source)
            SELECT x.source, x.status, coalesce(x.method, '') AS method,
                   array_to_string(list(x.record_key || ' [' || coalesce(x.reference, '') || ']' ||
                       CASE WHEN x.status = 'ambiguous' THEN ' candidates: ' || coalesce(x.candidates, '') ELSE '' END
                       ORDER BY x._line), '; ') AS examples
            FROM xref x SEMI JOIN (SELECT source, unnest(first_lines) AS _line FROM g) f ON f.source = x.source AND f._line = x._line
            GROUP BY ALL
        )
        SELECT source, status, method, CAST(records AS BIGINT) AS records,
               round(100.0 * records / sum(records) OVER (PARTITION BY source), 2) AS share_pct, examples
        FROM g LEFT JOIN ex USING (source, status, method)
        ORDER BY source, CASE status WHEN 'linked' THEN 0 WHEN 'ambiguous' THEN 1 ELSE 2 END, records DESC
        """,
        {"n": examples},
    )
    return con.execute("SELECT * FROM join_quality").df()


def build_order_picture(con: duckdb.DuckDBPyConnection) -> None:
    """One row per OMS order with what every system holds for it (counts and key facts).
    Written as table `order_picture`."""
    con.execute(
        """
        CREATE OR REPLACE TABLE order_picture AS
        WITH l AS (SELECT order_id, count(*) AS lines, CAST(sum(qty) AS BIGINT) AS units FROM order_lines GROUP BY 1),
        t AS (SELECT order_id, count(*) AS pick_tasks,
                     count(*) FILTER (WHERE status = 'picked') AS tasks_picked,
                     count(*) FILTER (WHERE status = 'short') AS tasks_short,
                     count(*) FILTER (WHERE substituted_sku IS NOT NULL) AS tasks_substituted
              FROM linked_pick_tasks WHERE order_id IS NOT NULL GROUP BY 1),
        p AS (SELECT order_id, count(*) AS cartons, count(*) FILTER (WHERE status = 'packed') AS cartons_packed,
                     count(*) FILTER (WHERE status = 'exception') AS cartons_exception
              FROM linked_pack_events WHERE order_id IS NOT NULL GROUP BY 1),
        h AS (SELECT order_id, count(*) AS holds, count(*) FILTER (WHERE released_at IS NULL) AS open_holds
              FROM linked_holds WHERE order_id IS NOT NULL GROUP BY 1),
        s AS (SELECT order_id, count(*) AS shipments,
                     count(*) FILTER (WHERE label_created_at IS NOT NULL) AS labels,
                     count(*) FILTER (WHERE manifested_at IS NOT NULL) AS manifested,
                     count(*) FILTER (WHERE handed_off_at IS NOT NULL) AS handed_off,
                     nullif(array_to_string(list_sort(list_distinct(list(tracking_no))), ', '), '') AS tracking_numbers
              FROM linked_shipments WHERE order_id IS NOT NULL GROUP BY 1),
        c AS (SELECT order_id, count(*) AS cases, count(*) FILTER (WHERE closed_at IS NULL) AS open_cases
              FROM linked_cases WHERE order_id IS NOT NULL GROUP BY 1)
        SELECT o.order_id, o.customer_id, o.customer_po, o.priority, o.release_status, o.carrier, o.service,
               o.promised_delivery,
               coalesce(l.lines, 0) AS lines, coalesce(l.units, 0) AS units,
               coalesce(t.pick_tasks, 0) AS pick_tasks, coalesce(t.tasks_picked, 0) AS tasks_picked,
               coalesce(t.tasks_short, 0) AS tasks_short, coalesce(t.tasks_substituted, 0) AS tasks_substituted,
               coalesce(p.cartons, 0) AS cartons, coalesce(p.cartons_packed, 0) AS cartons_packed,
               coalesce(p.cartons_exception, 0) AS cartons_exception,
               coalesce(h.holds, 0) AS holds, coalesce(h.open_holds, 0) AS open_holds,
               coalesce(s.shipments, 0) AS shipments, coalesce(s.labels, 0) AS labels,
               coalesce(s.manifested, 0) AS manifested, coalesce(s.handed_off, 0) AS handed_off,
               s.tracking_numbers,
               coalesce(c.cases, 0) AS cases, coalesce(c.open_cases, 0) AS open_cases
        FROM orders o
        LEFT JOIN l USING (order_id) LEFT JOIN t USING (order_id) LEFT JOIN p USING (order_id)
        LEFT JOIN h USING (order_id) LEFT JOIN s USING (order_id) LEFT JOIN c USING (order_id)
        ORDER BY o.order_id
        """
    )
