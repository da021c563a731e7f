"""One cutoff review, for the review notebook: build the picture as of the review time, compare it
with the last review, build the meeting view (meeting.py), and hand each notebook cell one thing to show
(tables as escaped HTML, the chart as an SVG). Also writes the review's exports.

The report is a page for the meeting, not a dump: each list shows its first rows (TOP) and says how many
more are in which export or on the board (docs/board.md, "What a shift lead sees first and why").
Untrusted text (notes, comments, names) only ever reaches HTML through `html_table`, `tiles` or the chart,
which escape it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from IPython.display import HTML, Markdown

from handoff_lib.db import PictureWriter, connect
from handoff_lib.errors import HandoffError
from handoff_lib.exports import workbook_from_parquet, write_csv, write_parquet
from handoff_lib.history.snapshots import ReviewKey, change_summary, changes_since
from handoff_lib.learn.drafts import build_drafts, since_last_cutoff, write_drafts
from handoff_lib.load.freshness import STALE, apply_to_drafts, describe, freshness_settings, stale_lines
from handoff_lib.load.freshness import label as source_label
from handoff_lib.load.settings import Settings, load_settings
from handoff_lib.rules.meeting import VERDICTS, Meeting, act_now, build_meeting, calls, store_act_now
from handoff_lib.rules.promise import ANSWER_COLUMNS

from . import charts
from .picture import PROMISE_STATUSES, summary
from .pipeline import build_picture, trained_note_model

MAX_ROWS = 2000  # longer tables are cut in the HTML report (the CSV/XLSX exports hold every row)
MAX_TEXT = 240  # characters of a text cell shown in the report (a cut cell ends in "…"; `whole` columns are never cut)
TOP = {"act_now": 15, "calls": 15, "at_risk": 20, "changes": 20, "blocker_queue": 25, "rejects": 25}  # rows each list shows

# Column names as the report shows them (others: underscores become spaces, first letter capitalised).
COLUMN_LABELS = {
    "order_id": "Order", "customer_id": "Customer id", "customer_name": "Customer", "minutes_to_cutoff": "Min to cutoff",
    "cutoff_label": "Cutoff", "promise_status": "Promise", "promise_reason": "Why (promise rule)", "state_reason": "Why (state)",
    "reason_label": "Reason", "age_minutes": "Age (min)", "source_link": "Source link", "order_link": "Order link",
    "n_blockers": "Blockers", "orders_due": "Due", "to_do": "To do", "too_late": "Too late", "at_risk": "At risk",
    "carried_over": "Carried over", "will_not_make": "Won't make it", "verdict_text": "Verdict", "work_min": "Work (labour min)",
    "available_min": "Labour left (min)", "usage_pct": "Needs % of labour", "binding_area": "Binding area",
    "orders_saved": "Orders saved", "value_saved": "Value saved", "orders_held": "Orders held", "top_priority": "Top priority",
    "minutes_left": "Min left to clear", "first_pickup": "First pickup", "makes_it": "On its truck", "pickup": "Pickup",
    "open_blockers": "Open blockers", "median_age_minutes": "Median age (min)", "rows_read": "Rows read",
    "rows_accepted": "Accepted", "rows_rejected": "Rejected",
}

BOARD_COLUMNS = [
    "order_id", "customer_id", "customer_name", "tier", "state", "state_reason", "promise_status", "promise_reason",
    "carrier", "service", "cutoff_label", "minutes_to_cutoff", "inventory", "allocation", "pick_status", "pack_status",
    "shipment_status", "open_holds", "n_blockers", "blockers", "priority", "order_link",
]
BLOCKER_COLUMNS = [
    "priority", "order_id", "order_state", "reason_label", "owner", "cutoff_label", "minutes_to_cutoff", "age_minutes",
    "detail", "source_system", "source_key", "source_link",
]


def _ack_states(history_db: Path | None, site: str) -> dict:
    """The board's acknowledgement log beside the history database, per blocker ({} without one)."""
    from handoff_lib.history import acks

    return acks.states(acks.log_path(history_db), site) if history_db else {}


def parse_review_at(value: str, settings: Settings) -> dt.datetime:
    """'YYYY-MM-DD HH:MM' in site local time -> aware datetime."""
    try:
        naive = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise HandoffError(f"review_at '{value}': expected 'YYYY-MM-DD HH:MM' in site local time ({settings.timezone})") from None
    return naive.astimezone(settings.tz) if naive.tzinfo else naive.replace(tzinfo=settings.tz)


def html_table(
    df: pd.DataFrame, table_id: str, caption: str = "", max_rows: int = MAX_ROWS, total: int | None = None,
    more: str = "the exports", whole: tuple[str, ...] = (), wide: tuple[str, ...] = (),
) -> HTML:
    """An escaped HTML table with a stable id and readable column names (COLUMN_LABELS): text left-aligned,
    numbers right-aligned with thousands separators, blanks for missing values, line breaks kept, long text
    wrapped; a text cell longer than MAX_TEXT is cut with "…" unless its column is in `whole`. An http(s) value
    of a *_link column becomes an anchor that opens a new tab; anything else stays text. `total`: how many rows the list has when `df` holds only its first
    ones (default: len(df)); the table then says "N more in `more`"."""
    n = len(df) if total is None else total
    shown = df.head(max_rows)
    numeric = {c for c in shown.columns if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])}
    classes = [("num" if c in numeric else "whole" if c in whole else "wide" if c in wide else "link" if c.endswith("_link") else "txt")
               for c in shown.columns]
    head = "".join(f'<th class="{cls}">{html.escape(COLUMN_LABELS.get(c, c.replace("_", " ").capitalize()))}</th>'
                   for c, cls in zip(shown.columns, classes))
    rows = []
    for values in shown.itertuples(index=False, name=None):
        cells = []
        for c, cls, v in zip(shown.columns, classes, values):
            if cls == "num":
                text = "" if v is None or pd.isna(v) else (f"{int(v):,}" if float(v).is_integer() else f"{v:,.1f}")
                cells.append(f'<td class="num">{text}</td>')
            elif c.endswith("_link") and isinstance(v, str) and v.startswith(("http://", "https://")):
                short = v.rstrip("/").rsplit("/", 1)[-1] or v  # the record's key; the whole address is the link and its title
                cells.append(f'<td class="link"><a href="{html.escape(v)}" title="{html.escape(v)}" target="_blank" '
                             f'rel="noopener noreferrer">{html.escape(short)}</a></td>')
            else:
                cells.append(f'<td class="{cls}">{html.escape(str(_cell(v, cls == "whole")))}</td>')  # td.whole: never cut
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = (f'<table id="{html.escape(table_id)}" class="handoff-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")
    note = ""
    if n > len(shown):
        note = f'<p class="more"><em>{n - len(shown):,} more in {html.escape(more)}.</em></p>'
    cap = f"<h4>{html.escape(caption)} <small>({n:,} rows)</small></h4>" if caption else ""
    return HTML(f'<div class="handoff-block" data-table="{html.escape(table_id)}" data-rows="{n}">{cap}{body}{note}</div>')


def _cell(v: object, whole: bool = False) -> object:
    """A text cell as shown: '' for missing, lists joined, cut at MAX_TEXT with a sign unless `whole`."""
    if isinstance(v, str):
        return v if whole or len(v) <= MAX_TEXT else v[: MAX_TEXT - 1] + "…"
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (list, tuple, np.ndarray)):
        v = "; ".join(str(x) for x in list(v))
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return f"{v:%a %d %b %H:%M}"
    v = str(v)
    return v if whole or len(v) <= MAX_TEXT else v[: MAX_TEXT - 1] + "…"


def tiles(items: list[tuple]) -> HTML:
    """Headline tiles: (label, count, id of the table that lists them[, small text under the label[, colour]])."""
    cells = []
    for item in items:
        label, n, t = item[:3]
        sub = item[3] if len(item) > 3 else ""
        colour = item[4] if len(item) > 4 else "#ccc"
        count = f"{n:,}" if isinstance(n, int) else html.escape(str(n))
        cells.append(
            f'<a class="tile" href="#{html.escape(t)}" data-count="{html.escape(str(n))}" data-table="{html.escape(t)}" '
            f'style="display:inline-block;margin:3px;padding:6px 12px;border:2px solid {colour};border-radius:6px;min-width:140px;'
            f'color:inherit;text-decoration:none;vertical-align:top"><div style="font-size:22px;font-weight:600">{count}</div>'
            f'<div>{html.escape(label)}</div>' + (f'<div style="font-size:12px;color:#555">{html.escape(sub)}</div>' if sub else "")
            + "</a>"
        )
    return HTML(f'<div class="tiles">{"".join(cells)}</div>')


@dataclass
class Review:
    settings: Settings
    at: dt.datetime
    con: duckdb.DuckDBPyConnection
    history_db: Path | None
    out_dir: Path | None
    previous: ReviewKey | None
    note_model: object | None = None
    picture_writer: PictureWriter | None = None
    acks: dict | None = None  # blocker_id -> acks.AckState: the board's acknowledgement log when the review was built
    meeting: Meeting | None = None

    @classmethod
    def open(cls, site_file: str, review_at: str, data_folder: str = "", history_db: str = "", out_dir: str = "",
             allow_stale: bool = False) -> Review:
        """Build the picture as of `review_at` (site local 'YYYY-MM-DD HH:MM'); compare with the last
        review in history_db. The picture is built in memory; with out_dir it is also written to
        out_dir/picture.duckdb in the background while the review renders (export() and close() wait
        for it). An extract of an earlier operating day stops it (errors.StaleExtractError) unless
        `allow_stale`: then the review is built and marked stale."""
        charts.use_offline_renderer()  # a plotly figure shown in this notebook renders offline (the report itself has none)
        settings = load_settings(site_file, data_folder=data_folder or None)
        at = parse_review_at(review_at, settings)
        settings = settings.for_review(at)
        out = Path(out_dir) if out_dir else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        con = connect(settings)
        con.execute("SET enable_progress_bar = false")  # in a kernel DuckDB draws an ipywidgets bar per long query: the report showed 'FloatProgress(...)'
        model = trained_note_model(settings)
        build_picture(settings, now=at, con=con, note_model=model, allow_stale=allow_stale)
        hist = Path(history_db) if history_db else None
        prev = changes_since(con, hist, ReviewKey.of(settings.site, at))
        review = cls(settings, at, con, hist, out, prev, model)
        review.acks = _ack_states(hist, settings.site)
        review._build_drafts()
        review._build_meeting()
        if out:
            review.picture_writer = PictureWriter(con, out / "picture.duckdb")
        return review

    def wait_for_picture(self) -> Path | None:
        """out_dir/picture.duckdb once it is complete (None without out_dir); raises what writing it raised."""
        return self.picture_writer.wait() if self.picture_writer else None

    def close(self) -> None:
        """Wait for the picture file, then close the picture."""
        try:
            self.wait_for_picture()
        finally:
            self.con.close()

    def next_check(self) -> str:
        """When the order will next be looked at: the site's next review time today, if any."""
        later = [t for t in self.settings.review_times if t > self.at.timetz().replace(tzinfo=None)]
        return f"the {later[0]:%H:%M} cutoff review" if later else "the next cutoff review"

    def _build_drafts(self) -> None:
        drafts = build_drafts(self.con, review_at=self.at, next_check=self.next_check(), acks=self.acks, tz=self.settings.tz)
        # a stale review's drafts are held back or marked stale, as the site chooses (freshness.on_stale)
        drafts = apply_to_drafts(drafts, self.stale_lines(), freshness_settings(self.settings).on_stale)
        self.con.register("_drafts", drafts.astype({c: "object" for c in drafts.columns}))
        self.con.execute("CREATE OR REPLACE TABLE drafts AS SELECT * FROM _drafts")
        self.con.unregister("_drafts")

    def _build_meeting(self) -> None:
        """The meeting view's tables (meeting_orders, meeting_pickups, act_now), kept in the picture for the board."""
        self.meeting = build_meeting(self.con, self.settings, self.at)
        store_act_now(self.con, act_now(self.con, self.at, self.until))

    @property
    def until(self) -> dt.datetime:
        """The end of the coming hours the meeting judges (labour.lookahead_hours)."""
        return self.at + dt.timedelta(hours=self.meeting.labour.lookahead_hours)

    # ---- the meeting: next pickups, act now, who calls
    def meeting_headline(self) -> HTML:
        """A few figures: the next pickup's verdict, orders at risk on it, customers to call, actions that save orders."""
        from .charts import VERDICT_COLOURS

        p = self.meeting.pickups
        items = []
        if len(p):
            first = p.iloc[0]
            items.append((f"next pickup {first['pickup']}", first["verdict_text"], "next-pickups",
                          f"{int(first['orders_due']):,} orders due, {int(first['ready']):,} ready", VERDICT_COLOURS[first["verdict"]]))
            items.append(("at risk on the next pickup", int(first["at_risk"]), "next-pickups", "promise at risk or needs a call"))
            later = p.iloc[1:]
            if len(later):
                bad = later[later["verdict"] != "will make"]
                verdicts = later["verdict"].value_counts()
                items.append(("later pickups not sure", len(bad), "next-pickups",
                              ", ".join(f"{int(verdicts[v])} {v}" for v in VERDICTS if v in verdicts)))
        else:
            items.append(("next pickup", "none ahead", "next-pickups", f"in the next {self.meeting.labour.lookahead_hours:g} h"))
        calls_n = self.con.execute("SELECT count(*) FROM meeting_orders WHERE promise_status = 'needs_communication'").fetchone()[0]
        items.append(("needs a call", int(calls_n), "calls", "customer must be told"))
        saved = self.con.execute("SELECT count(*), coalesce(sum(orders_saved), 0) FROM act_now WHERE orders_saved > 0").fetchone()
        items.append(("actions that save orders", int(saved[0]), "act-now", f"{int(saved[1]):,} orders on the coming pickups"))
        return HTML(self.stale_box() + tiles(items).data)

    def next_pickups(self) -> HTML:
        """One row per carrier pickup in the coming hours, with its verdict."""
        cols = ["pickup", "verdict_text", "orders_due", "ready", "to_do", "blocked", "too_late", "at_risk", "carried_over",
                "binding_area", "work_min", "available_min", "usage_pct"]
        df = self.meeting.pickups[cols].copy() if len(self.meeting.pickups) else pd.DataFrame(columns=cols)
        return html_table(df, "next-pickups", f"Next pickups (the next {self.meeting.labour.lookahead_hours:g} hours)")

    def labour_note(self) -> HTML:
        """Where the labour came from: the plan (or the default), and each area's pace (observed or plan)."""
        m = self.meeting
        no_pickup = self.con.execute(
            "SELECT count(*) FROM meeting_orders WHERE pickup_at IS NULL OR pickup_at > $until", {"until": self.until}
        ).fetchone()[0]
        areas = "".join(f"<li><b>{html.escape(a)}</b>: {html.escape(r['text'])}</li>" for a, r in m.rates.items())
        warn = "" if m.labour.configured else ' style="background:#fff8e1;border:2px solid #f9a825;padding:6px 10px"'
        return HTML(
            f'<div class="labour-note"{warn}><p>Labour: {html.escape(m.labour.describe())}. Work must be done '
            f"{m.labour.load_minutes:g} min before each pickup. Capacity per area:</p><ul>{areas}</ul>"
            f"<p>{no_pickup:,} open orders are due on a later pickup (or their carrier has none configured). "
            "Rules: docs/board.md, <i>Labour and the pickup verdict</i>.</p></div>"
        )

    def pickup_chart(self) -> HTML:
        """Work against labour per area to each pickup, as an SVG (no plotly.js in the report)."""
        from .charts import pickup_capacity_svg

        return HTML(pickup_capacity_svg(self.meeting.pickups, self.meeting.curve, self.at))

    def act_now(self) -> HTML:
        """The top actions: grouped blockers ranked by what clearing them saves before the coming pickups."""
        df = self.con.execute(
            """SELECT rank, action, owner, orders_saved, value_saved, orders_held, top_priority, minutes_left, first_pickup,
                      example, source_link FROM act_now ORDER BY rank LIMIT $n""", {"n": TOP["act_now"]}).df()
        total = self.con.execute("SELECT count(*) FROM act_now").fetchone()[0]
        return html_table(df, "act-now", "Act now: what clearing saves before the coming pickups", TOP["act_now"], total,
                          more="act_now.csv / on the board", wide=("action", "example"))

    def calls(self) -> HTML:
        """Needs-communication orders, highest priority first, with their draft notes."""
        df, total = calls(self.con, "needs_communication", TOP["calls"])
        return html_table(df.drop(columns=["promise_status", "customer_id"]), "calls", "Call the customer: needs communication",
                          TOP["calls"], total, more="drafts.csv / promise_view.csv / on the board", whole=("draft",),
                          wide=("promise_reason",))

    def at_risk(self) -> HTML:
        df, total = calls(self.con, "at_risk", TOP["at_risk"])
        return html_table(df.drop(columns=["promise_status", "customer_id", "draft"]), "at-risk", "Then: promise at risk",
                          TOP["at_risk"], total, more="promise_view.csv / on the board", wide=("promise_reason",))

    # ---- headline
    def title(self) -> Markdown:
        prev = f"{self.previous.review_date} {self.previous.review_time[:2]}:{self.previous.review_time[2:]}" if self.previous else "none"
        load = self.con.execute(
            "SELECT sum(rows_read), sum(rows_accepted), sum(rows_rejected), sum(rows_other_entity) FROM load_report"
        ).fetchone()
        other = f", {load[3]} belong to other entities of a shared file" if load[3] else ""
        stale = self.stale_lines()
        return Markdown(
            f"# {self.settings.name}: cutoff review {self.at:%Y-%m-%d %H:%M} ({self.settings.timezone})"
            + (" - STALE EXTRACTS" if stale else "") + "\n\n"
            + f"Extracts from `{self.settings.data_folder.name}`: {load[0]} rows read, {load[1]} accepted, "
            f"{load[2]} rejected{other}. Previous review: {prev}."
        )

    # ---- how current the extracts are (docs/extracts.md, "How current the extracts are")
    def freshness(self) -> pd.DataFrame:
        """Per source: its as-of time, how it was told, its age at the review, its limit and status (load_report)."""
        df = self.con.execute(
            "SELECT source, file, as_of, as_of_basis, age_minutes, max_age_minutes, freshness FROM load_report"
        ).df()
        df.insert(1, "label", [source_label(s) for s in df["source"]])
        return df

    def stale_lines(self) -> list[str]:
        """One sentence per stale source, oldest first (empty when every extract is within its limit)."""
        return stale_lines(self.freshness(), self.settings, self.at)

    def stale_box(self) -> str:
        """A red box naming each stale source with its age ('' when every extract is within its limit). It opens the
        report's first screen (meeting_headline), since a stale review must not be read as the current picture."""
        stale = self.stale_lines()
        if not stale:
            return ""
        held = freshness_settings(self.settings).on_stale == "hold"
        items = "".join(f"<li>{html.escape(t)}</li>" for t in stale)
        return (f'<div class="data-stale" style="padding:8px 12px;background:#ffebee;border:2px solid #c62828">'
                f"<b>STALE EXTRACTS: this review is not the current picture of these sources.</b><ul>{items}</ul>"
                f"Stored marked stale; draft notes are {'held back' if held else 'marked stale'} (freshness.on_stale).</div>")

    def freshness_html(self) -> str:
        """The data banner's freshness line: every source's as-of time ('WMS pick tasks as of 08:57, 3 min before the
        review'), the stale ones left out (the stale box at the top names them)."""
        df = self.freshness()
        stale = self.stale_lines()
        rows = [r for r in df.to_dict(orient="records") if r["file"] is not None and not pd.isna(r["file"])
                and not (stale and r["freshness"] in STALE)]
        every = "; ".join(describe(r, self.settings, self.at) for r in rows)
        return (f'<div class="data-freshness" style="padding:6px 10px;background:#f5f5f5">{"Other extracts" if stale else "Extracts"}: '
                f"{html.escape(every)}.</div>") if rows else ""

    def data_warnings(self) -> HTML:
        """The data banner: an info line counting what was stamped after the review time (left out, or taken as not
        yet happened), then one line per source with something to say, by severity (validate.data_warnings):
        info = exact duplicates dropped or values flagged (nothing lost), warning = values nulled or records
        rejected (the picture lacks them). A source that failed stopped the run: there is no report to show it in."""
        from handoff_lib.join.asof import summary_text
        from handoff_lib.load.validate import data_warnings

        later = summary_text(self.con, self.settings, self.at)  # info, not an error: records stamped after the review time
        asof = self.freshness_html()
        asof += f'<div class="data-asof" style="padding:6px 10px;background:#e3f2fd">{html.escape(later)}</div>' if later else ""
        found = data_warnings(self.con)
        if not found:
            return HTML(asof + '<div class="data-ok" style="padding:6px 10px;background:#e8f5e9">All extracts loaded whole: nothing rejected, nulled or flagged.</div>')

        def line(d: dict) -> str:
            parts = []
            if d["rows_rejected"]:
                parts.append(f"{d['rows_rejected']} of {d['rows_entity']} records rejected ({d['share_pct']}%), most often: "
                             f"{html.escape(str(d['top_row_reason']))}")
            if d["values_nulled"]:
                parts.append(f"{d['values_nulled']} bad value(s) left blank, most often: {html.escape(str(d['top_value_reason']))}")
            if d["values_flagged"]:
                parts.append(f"{d['values_flagged']} value(s) flagged, most often: {html.escape(str(d['top_flag_reason']))}")
            return (f'<li class="sev-{d["severity"]}"><b>{d["severity"]}</b> {html.escape(d["source"])} '
                    f'({html.escape(str(d["file"]))}): {"; ".join(parts)}</li>')

        warn = any(d["severity"] == "warning" for d in found)
        style = "background:#fff8e1;border:2px solid #f9a825" if warn else "background:#e3f2fd;border:1px solid #90caf9"
        head = ("<b>Data warnings: some values or records could not be read; the picture lacks them.</b>" if warn
                else "<b>Data notes: nothing lost.</b>")
        return HTML(
            asof + f'<div class="data-{"warning" if warn else "info"}" style="padding:8px 12px;{style}">'
            f"{head}<ul>{''.join(line(d) for d in found)}</ul>See <i>Join quality and rejected rows</i> below and rejects.csv.</div>"
        )

    def counts(self) -> dict[str, int]:
        return summary(self.con, self.settings)

    # ---- blockers
    def blocker_summary(self) -> HTML:
        df = self.con.execute(
            """SELECT owner, reason_label AS reason, count(*) AS open_blockers,
                      CAST(round(median(age_minutes)) AS BIGINT) AS median_age_minutes,
                      count(DISTINCT order_id) AS orders
               FROM blockers GROUP BY ALL ORDER BY open_blockers DESC, owner"""
        ).df()
        return HTML(html_table(df, "blockers-by-owner", "Open blockers by owner and reason").data + self.unacknowledged().data
                    + self.acknowledged().data)

    def acknowledged(self) -> HTML:
        """Open blockers someone acknowledged, assigned or commented on on the board, highest priority first, with
        who is handling them (the whole queue, with its handling column, is in blocker_queue.csv)."""
        h = self.handling()
        df = self.con.execute(
            """SELECT blocker_id, priority, order_id, reason_label, owner, cutoff_label FROM blockers
               WHERE list_contains($ids, blocker_id) ORDER BY priority DESC, minutes_to_cutoff NULLS LAST, blocker_id""",
            {"ids": h["blocker_id"].tolist()}).df()
        df = df.merge(h, on="blocker_id", how="left").drop(columns=["blocker_id"])
        return html_table(df, "acknowledged-blockers", "Being handled: open blockers acted on on the board", TOP["blocker_queue"],
                          more="blocker_queue.csv (column handling) / on the board", wide=("handling",))

    def unacknowledged(self) -> HTML:
        """Open blockers nobody has acknowledged on the board yet, per owner."""
        acked = [b for b, s in (self.acks or {}).items() if s.acknowledged_by]
        df = self.con.execute(
            """SELECT owner, count(*) FILTER (WHERE NOT list_contains($acked, blocker_id)) AS unacknowledged,
                      count(*) AS open_blockers FROM blockers GROUP BY ALL ORDER BY unacknowledged DESC, owner""",
            {"acked": acked}).df()
        return html_table(df, "unacknowledged-by-owner", "Open blockers nobody has acknowledged on the board, by owner")

    def handling(self) -> pd.DataFrame:
        """blocker_id -> who is handling it ('acknowledged by J. Diaz 14:35, expected 15:10: "comment"')."""
        tz = self.settings.tz
        return pd.DataFrame({"blocker_id": pd.Series(list(self.acks or {}), dtype="str"),  # typed when empty: merged on
                             "handling": pd.Series([s.summary(tz) for s in (self.acks or {}).values()], dtype="str")})

    def blocker_queue(self) -> HTML:
        cols = ", ".join(f'"{c}"' for c in ["blocker_id", *BLOCKER_COLUMNS])
        df = self.con.execute(f"SELECT {cols} FROM blockers LIMIT $n", {"n": TOP["blocker_queue"]}).df()
        df = df.merge(self.handling(), on="blocker_id", how="left").drop(columns=["blocker_id"])  # who is on it (the board's log)
        total = self.con.execute("SELECT count(*) FROM blockers").fetchone()[0]
        return html_table(df, "blocker-queue", "Blocker queue, highest priority first", TOP["blocker_queue"], total,
                          more="blocker_queue.csv / on the board")

    def state_counts(self) -> HTML:
        """Orders by state (rows) and promise status (columns)."""
        df = self.con.execute("SELECT state, promise_status, count(*) AS n FROM order_board GROUP BY ALL").df()
        table = df.pivot_table(index="state", columns="promise_status", values="n", aggfunc="sum", fill_value=0)
        table = table.reindex([s for s in charts.FUNNEL if s in table.index] + sorted(set(table.index) - set(charts.FUNNEL)))
        table = table[[p for p in PROMISE_STATUSES if p in table.columns]].astype(int)
        table["all"] = table.sum(axis=1)
        table = table.reset_index()
        table.columns = [str(c).replace("_", " ") for c in table.columns]
        return html_table(table, "state-counts", "Orders by state and promise status (the lists: order_board.csv / on the board)")

    # ---- changes
    def changes_summary(self) -> HTML:
        if self.previous is None:
            return HTML("<p>No earlier review of this site in the history: nothing to compare with yet.</p>")
        return html_table(change_summary(self.con), "changes-summary", "Changed since the last review")

    def changes(self) -> HTML:
        df = self.con.execute("SELECT * FROM changes LIMIT $n", {"n": TOP["changes"]}).df()
        total = self.con.execute("SELECT count(*) FROM changes").fetchone()[0]
        return html_table(df, "changes", "Changes, highest priority first", TOP["changes"], total, more="changes.csv / on the board")

    # ---- notes for sales and support
    def drafts(self) -> HTML:
        """Draft internal notes for every at-risk / needs-communication order (for review, not sending); on a stale
        review they are held back (only counted) or marked stale, as freshness.on_stale says."""
        held = self.con.execute("SELECT count(*) FROM drafts WHERE held_back").fetchone()[0]
        if held:
            return HTML(f'<p class="drafts-held"><b>{held} draft note{"s" if held != 1 else ""} held back</b>: this review\'s extracts are stale '
                        f"({html.escape('; '.join(self.stale_lines()))}). They are stored with the review, not exported for "
                        f"sending (freshness.on_stale: hold).</p>")
        df = self.con.execute("SELECT order_id, promise_status, priority, owners, draft, sources FROM drafts").df()
        return html_table(df, "drafts", "Draft notes for sales and support (DRAFT: review before sending)")

    def since_last_text(self) -> str:
        prev = f"{self.previous.review_time[:2]}:{self.previous.review_time[2:]}" if self.previous else None
        changes = self.con.execute("SELECT * FROM changes").df()
        return since_last_cutoff(changes, min_priority=40, previous=prev)

    def since_last(self) -> HTML:
        """A short summary of the high-priority changes since the last review, as plain text."""
        return HTML(f'<pre class="since-last" style="white-space:pre-wrap">{html.escape(self.since_last_text())}</pre>')

    def note_clusters(self) -> HTML:
        """Clusters of the notes the classifier left for a person (needs_review), to name new reasons."""
        if self.note_model is None:
            return HTML("<p>No notes model for this site (<code>notes.model</code> in the site file, "
                        "<code>handoff notes train --site</code>): its note rules decided alone.</p>")
        from handoff_lib.learn.notes import needs_review_clusters

        n = self.con.execute("SELECT count(*) FROM note_reasons WHERE status = 'needs_review'").fetchone()[0]
        if n < 4:
            return HTML(f"<p>{n} note(s) left for review: too few to cluster.</p>")
        _, clusters = needs_review_clusters(self.con)
        return html_table(clusters, "note-clusters", f"Clusters of the {n} notes left for review")

    # ---- data quality
    def load_report(self) -> HTML:
        df = self.con.execute(
            """SELECT source, file, rows_read, rows_accepted, rows_rejected, rows_other_entity, strftime(as_of, '%Y-%m-%d %H:%M') AS as_of,
                      as_of_basis, age_minutes, max_age_minutes, freshness FROM load_report"""
        ).df()
        return html_table(df, "load-report", "Rows per extract (read = accepted + rejected + other entity)")

    def join_quality(self) -> HTML:
        return html_table(self.con.execute("SELECT * FROM join_quality").df(), "join-quality", "Join quality per source")

    def rejects(self) -> HTML:
        df = self.con.execute('SELECT source, file, line, "column", value, reason FROM rejects ORDER BY source, line LIMIT $n',
                              {"n": TOP["rejects"]}).df()
        total = self.con.execute("SELECT count(*) FROM rejects").fetchone()[0]
        return html_table(df, "rejects", "Rejected rows", TOP["rejects"], total, more="rejects.csv")

    # ---- exports
    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        df = self.con.execute(f"SELECT * FROM {name}").df()
        if columns:
            df = df[[c for c in columns if c in df.columns]]
        for col in df.columns:  # lists (DuckDB LIST columns) as "a; b"; only object columns can hold them
            if df[col].dtype == object and df[col].map(lambda v: isinstance(v, (list, tuple)) or hasattr(v, "tolist")).any():
                df[col] = df[col].map(lambda v: "; ".join(map(str, list(v))) if v is not None else "")
        return df

    def export(self, xlsx: bool = True) -> Markdown:
        """Write board, blocker queue, promise view, changes and drafts as CSV and Parquet, the XLSX
        workbook (one sheet each; `xlsx=False` leaves it to the caller: `handoff run` builds it in
        its own process as soon as the Parquet views exist, while this goes on), and summary.json.
        The Parquet views are written first, the Board sheet's last."""
        if self.out_dir is None:
            return Markdown("_No output folder: exports skipped._")
        board = self.table("order_board")
        blockers = self.table("blockers").merge(self.handling(), on="blocker_id", how="left")  # who is on it (the board's log)
        promise = board[[c for c in ANSWER_COLUMNS if c in board.columns]]  # = self.table("order_board", ANSWER_COLUMNS)
        promise = promise[promise["promise_status"].isin(["at_risk", "needs_communication"])]
        changes = self.table("changes")
        drafts = self.table("drafts")
        held = int(drafts["held_back"].astype(bool).sum()) if "held_back" in drafts.columns else 0
        drafts = drafts[~drafts["held_back"].astype(bool)] if held else drafts  # held back: not exported for sending
        held_note = (f"{held} draft note{'s' if held != 1 else ''} held back: this review's extracts are stale ({'; '.join(self.stale_lines())}); "
                     f"freshness.on_stale: hold.") if held else None
        act = self.table("act_now")
        views = {"order_board": board, "blocker_queue": blockers, "promise_view": promise, "changes": changes, "drafts": drafts,
                 "act_now": act}
        parquet = {f"{name}.parquet": write_parquet(df, self.out_dir / f"{name}.parquet") for name, df in views.items()}
        # the workbook's Board sheet holds the columns people read; CSV and Parquet hold every column
        write_parquet(board[[c for c in BOARD_COLUMNS if c in board.columns]], self.out_dir / "board_sheet.parquet")
        files = {
            **{p.name: p for p in write_drafts(drafts, self.out_dir, self.since_last_text(), held_note).values()},
            "order_board.csv": write_csv(board, self.out_dir / "order_board.csv"),
            "blocker_queue.csv": write_csv(blockers, self.out_dir / "blocker_queue.csv"),
            "promise_view.csv": write_csv(promise, self.out_dir / "promise_view.csv"),
            "changes.csv": write_csv(changes, self.out_dir / "changes.csv"),
            "act_now.csv": write_csv(act, self.out_dir / "act_now.csv"),
            "rejects.csv": write_csv(self.table("rejects"), self.out_dir / "rejects.csv"),
            "join_quality.csv": write_csv(self.table("join_quality"), self.out_dir / "join_quality.csv"),
            **parquet,
        }
        if xlsx:
            files["cutoff_review.xlsx"] = workbook_from_parquet(self.out_dir)
        counts = self.counts()
        counts.update({f"changes.{k}": int(n) for k, n in change_summary(self.con).itertuples(index=False)})
        (self.out_dir / "summary.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
        picture = self.wait_for_picture()
        if picture:
            files[picture.name] = picture
        return Markdown("Exports: " + ", ".join(f"`{n}`" for n in files))
