"""One cutoff review, for the review notebook: build the picture as of the review time, compare it
with the last review, and hand each notebook cell one thing to show (tables as escaped HTML,
figures as plotly objects). Also writes the review's exports.

Untrusted text (notes, comments, names) only ever reaches HTML through `html_table`, which escapes it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, Markdown

from . import charts
from .db import PictureWriter, connect
from .drafts import build_drafts, since_last_cutoff, write_drafts
from .errors import HandoffError
from .exports import workbook_from_parquet, write_csv, write_parquet
from .history import ReviewKey, change_summary, changes_since
from .picture import PROMISE_STATUSES, summary
from .pipeline import build_picture, trained_note_model
from .settings import Settings, load_settings
from .states import STATE_NAMES

MAX_ROWS = 2000  # longer tables are cut in the HTML report (the CSV/XLSX exports hold every row)
DRILL_ROWS = 500  # the per-state and per-promise-status lists behind the tiles are cut sooner
MAX_TEXT = 240  # characters of a text cell shown in the report

BOARD_COLUMNS = [
    "order_id", "customer_id", "customer_name", "tier", "state", "state_reason", "promise_status", "promise_reason",
    "carrier", "service", "cutoff_label", "minutes_to_cutoff", "inventory", "allocation", "pick_status", "pack_status",
    "shipment_status", "open_holds", "n_blockers", "blockers", "priority", "order_link",
]
BLOCKER_COLUMNS = [
    "priority", "order_id", "order_state", "reason_label", "owner", "cutoff_label", "minutes_to_cutoff", "age_minutes",
    "detail", "source_system", "source_key", "source_link",
]
PROMISE_COLUMNS = [
    "priority", "order_id", "customer_name", "state", "promise_status", "promise_reason", "cutoff_label",
    "minutes_to_cutoff", "promised_delivery", "n_blockers", "blockers",
]


def _ack_states(history_db: Path | None, site: str) -> dict:
    """The board's acknowledgement log beside the history database, per blocker ({} without one)."""
    from . import acks

    return acks.states(acks.log_path(history_db), site) if history_db else {}


def parse_review_at(value: str, settings: Settings) -> dt.datetime:
    """'YYYY-MM-DD HH:MM' in site local time -> aware datetime."""
    try:
        naive = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise HandoffError(f"review_at '{value}': expected 'YYYY-MM-DD HH:MM' in site local time ({settings.timezone})") from None
    return naive.astimezone(settings.tz) if naive.tzinfo else naive.replace(tzinfo=settings.tz)


def html_table(df: pd.DataFrame, table_id: str, caption: str = "", max_rows: int = MAX_ROWS, total: int | None = None) -> HTML:
    """An escaped HTML table with a stable id (links in *_link columns become anchors). `total`: how many
    rows the list has when `df` holds only its first ones (default: len(df))."""
    n = len(df) if total is None else total
    shown = df.head(max_rows).copy()
    for col in shown.columns:
        if shown[col].dtype == object or pd.api.types.is_string_dtype(shown[col]):
            shown[col] = shown[col].map(_clip, na_action="ignore")
    body = shown.to_html(index=False, escape=True, na_rep="", table_id=table_id, classes="handoff-table", border=0,
                         render_links=False)
    note = ""
    if n > len(shown):
        note = f"<p><em>Showing the first {len(shown)} of {n} rows; the exports hold all of them.</em></p>"
    cap = f"<h4>{html.escape(caption)} <small>({n} rows)</small></h4>" if caption else ""
    return HTML(f'<div class="handoff-block" data-table="{table_id}" data-rows="{n}">{cap}{body}{note}</div>')


def _clip(v: object) -> object:
    if isinstance(v, str) and len(v) > MAX_TEXT:
        return v[: MAX_TEXT - 1] + "…"
    if isinstance(v, (list, tuple)):
        return "; ".join(str(x) for x in v)
    return v


def tiles(items: list[tuple[str, int, str]]) -> HTML:
    """Headline tiles: (label, count, id of the table that lists them)."""
    cells = "".join(
        f'<div class="tile" data-count="{n}" data-table="{html.escape(t)}" style="display:inline-block;margin:4px;'
        f'padding:8px 14px;border:1px solid #ccc;border-radius:6px;min-width:120px">'
        f'<div style="font-size:26px;font-weight:600">{n}</div><div>{html.escape(label)}</div></div>'
        for label, n, t in items
    )
    return HTML(f'<div class="tiles">{cells}</div>')


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

    @classmethod
    def open(cls, site_file: str, review_at: str, data_folder: str = "", history_db: str = "", out_dir: str = "") -> Review:
        """Build the picture as of `review_at` (site local 'YYYY-MM-DD HH:MM'); compare with the last
        review in history_db. The picture is built in memory; with out_dir it is also written to
        out_dir/picture.duckdb in the background while the review renders (export() and close() wait
        for it)."""
        charts.use_offline_renderer()  # figures carry plotly.js inline: they render offline in the HTML report
        settings = load_settings(site_file, data_folder=data_folder or None)
        at = parse_review_at(review_at, settings)
        settings = settings.for_review(at)
        out = Path(out_dir) if out_dir else None
        if out:
            out.mkdir(parents=True, exist_ok=True)
        con = connect(settings)
        model = trained_note_model()
        build_picture(settings, now=at, con=con, note_model=model)
        hist = Path(history_db) if history_db else None
        prev = changes_since(con, hist, ReviewKey.of(settings.site, at))
        review = cls(settings, at, con, hist, out, prev, model)
        review.acks = _ack_states(hist, settings.site)
        review._build_drafts()
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
        self.con.register("_drafts", drafts.astype({c: "object" for c in drafts.columns}))
        self.con.execute("CREATE OR REPLACE TABLE drafts AS SELECT * FROM _drafts")
        self.con.unregister("_drafts")

    # ---- headline
    def title(self) -> Markdown:
        prev = f"{self.previous.review_date} {self.previous.review_time[:2]}:{self.previous.review_time[2:]}" if self.previous else "none"
        load = self.con.execute("SELECT sum(rows_read), sum(rows_accepted), sum(rows_rejected) FROM load_report").fetchone()
        return Markdown(
            f"# {self.settings.name}: cutoff review {self.at:%Y-%m-%d %H:%M} ({self.settings.timezone})\n\n"
            f"Extracts from `{self.settings.data_folder.name}`: {load[0]} rows read, {load[1]} accepted, "
            f"{load[2]} rejected. Previous review: {prev}."
        )

    def data_warnings(self) -> HTML:
        """A loud banner naming every source with rejected rows (its picture is missing those rows)."""
        from .validate import degraded_sources

        bad = degraded_sources(self.con)
        if not bad:
            return HTML('<div class="data-ok" style="padding:6px 10px;background:#e8f5e9">All extracts loaded whole: no rejected rows.</div>')
        items = "".join(
            f"<li><b>{html.escape(d['source'])}</b> ({html.escape(d['file'])}): {d['rows_rejected']} of {d['rows_read']} rows "
            f"rejected ({d['share_pct']}%), most often: {html.escape(str(d['top_reason']))}</li>"
            for d in bad
        )
        return HTML(
            '<div class="data-degraded" style="padding:8px 12px;background:#ffebee;border:2px solid #c62828">'
            f"<b>DEGRADED SOURCES: this picture is missing rejected rows.</b><ul>{items}</ul>"
            "See <i>Join quality and rejected rows</i> below and rejects.csv.</div>"
        )

    def counts(self) -> dict[str, int]:
        return summary(self.con, self.settings)

    def headline(self) -> HTML:
        c = self.counts()
        items = [(s.replace("_", " "), c.get(f"orders.{s}", 0), f"orders-{s}") for s in STATE_NAMES if c.get(f"orders.{s}", 0)]
        items += [(f"promise: {p.replace('_', ' ')}", c.get(f"promise.{p}", 0), f"promise-{p}") for p in PROMISE_STATUSES]
        items.append(("open blockers", c["blockers"], "blocker-queue"))
        return tiles(items)

    def state_funnel(self) -> go.Figure:
        return charts.state_funnel(self.con)

    # ---- blockers
    def blocker_summary(self) -> HTML:
        df = self.con.execute(
            """SELECT owner, reason_label AS reason, count(*) AS open_blockers,
                      CAST(round(median(age_minutes)) AS BIGINT) AS median_age_minutes,
                      count(DISTINCT order_id) AS orders
               FROM blockers GROUP BY ALL ORDER BY open_blockers DESC, owner"""
        ).df()
        return HTML(html_table(df, "blockers-by-owner", "Open blockers by owner and reason").data + self.unacknowledged().data)

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
        return pd.DataFrame({"blocker_id": list(self.acks or {}),
                             "handling": [s.summary(tz) for s in (self.acks or {}).values()]}, columns=["blocker_id", "handling"])

    def blocker_chart(self) -> go.Figure:
        return charts.blockers_by_owner(self.con)

    def blocker_queue(self) -> HTML:
        queue = self.table("blockers", ["blocker_id", *BLOCKER_COLUMNS])
        queue = queue.merge(self.handling(), on="blocker_id", how="left").drop(columns=["blocker_id"])
        return html_table(queue, "blocker-queue", "Blocker queue, highest priority first")

    # ---- promise
    def _board_rows(self, column: str, value: str, columns: list[str], limit: int) -> tuple[pd.DataFrame, int]:
        """The first `limit` order_board rows (board order) whose `column` equals `value`, with the
        given columns that the board has, and how many such rows there are."""
        have = set(self.con.execute("SELECT * FROM order_board LIMIT 0").df().columns)
        cols = ", ".join(f'"{c}"' for c in columns if c in have)
        total = self.con.execute(f'SELECT count(*) FROM order_board WHERE "{column}" = ?', [value]).fetchone()[0]
        df = self.con.execute(f'SELECT {cols} FROM order_board WHERE "{column}" = ? LIMIT ?', [value, limit]).df()
        return df, int(total)

    def promise_view(self, status: str, max_rows: int = MAX_ROWS) -> HTML:
        df, total = self._board_rows("promise_status", status, PROMISE_COLUMNS, max_rows)
        return html_table(df, f"promise-{status}", f"Promise {status.replace('_', ' ')}", max_rows, total)

    def orders_in_state(self, state: str) -> HTML:
        df, total = self._board_rows("state", state, BOARD_COLUMNS, DRILL_ROWS)
        return html_table(df, f"orders-{state}", f"Orders {state.replace('_', ' ')}", DRILL_ROWS, total)

    def states_drilldown(self) -> HTML:
        """One table per state that has orders (the lists behind the state tiles)."""
        c = self.counts()
        return HTML("".join(self.orders_in_state(s).data for s in STATE_NAMES if c.get(f"orders.{s}", 0)))

    def promise_drilldown(self) -> HTML:
        """The lists behind the other promise tiles (safe, handed off, cancelled)."""
        rest = [p for p in PROMISE_STATUSES if p not in ("at_risk", "needs_communication")]
        return HTML("".join(self.promise_view(p, DRILL_ROWS).data for p in rest))

    def burndown(self) -> go.Figure:
        return charts.cutoff_burndown(self.con)

    # ---- changes
    def changes_summary(self) -> HTML:
        if self.previous is None:
            return HTML("<p>No earlier review of this site in the history: nothing to compare with yet.</p>")
        return html_table(change_summary(self.con), "changes-summary", "Changed since the last review")

    def changes(self) -> HTML:
        df = self.con.execute("SELECT * FROM changes").df()
        return html_table(df, "changes", "Changes, highest priority first")

    # ---- notes for sales and support
    def drafts(self) -> HTML:
        """Draft internal notes for every at-risk / needs-communication order (for review, not sending)."""
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
            return HTML("<p>No trained notes model (<code>handoff notes train</code>): notes were read by keyword rules.</p>")
        from .notes import needs_review_clusters

        n = self.con.execute("SELECT count(*) FROM note_reasons WHERE status = 'needs_review'").fetchone()[0]
        if n < 4:
            return HTML(f"<p>{n} note(s) left for review: too few to cluster.</p>")
        _, clusters = needs_review_clusters(self.con)
        return html_table(clusters, "note-clusters", f"Clusters of the {n} notes left for review")

    # ---- data quality
    def load_report(self) -> HTML:
        df = self.con.execute("SELECT source, file, rows_read, rows_accepted, rows_rejected FROM load_report").df()
        return html_table(df, "load-report", "Rows per extract (read = accepted + rejected)")

    def join_quality(self) -> HTML:
        return html_table(self.con.execute("SELECT * FROM join_quality").df(), "join-quality", "Join quality per source")

    def rejects(self) -> HTML:
        df = self.con.execute('SELECT source, file, line, "column", value, reason FROM rejects ORDER BY source, line').df()
        return html_table(df, "rejects", "Rejected rows", max_rows=500)

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
        blockers = self.table("blockers")
        promise = board[[c for c in PROMISE_COLUMNS if c in board.columns]]  # = self.table("order_board", PROMISE_COLUMNS)
        promise = promise[promise["promise_status"].isin(["at_risk", "needs_communication"])]
        changes = self.table("changes")
        drafts = self.table("drafts")
        views = {"order_board": board, "blocker_queue": blockers, "promise_view": promise, "changes": changes, "drafts": drafts}
        parquet = {f"{name}.parquet": write_parquet(df, self.out_dir / f"{name}.parquet") for name, df in views.items()}
        # the workbook's Board sheet holds the columns people read; CSV and Parquet hold every column
        write_parquet(board[[c for c in BOARD_COLUMNS if c in board.columns]], self.out_dir / "board_sheet.parquet")
        files = {
            **{p.name: p for p in write_drafts(drafts, self.out_dir, self.since_last_text()).values()},
            "order_board.csv": write_csv(board, self.out_dir / "order_board.csv"),
            "blocker_queue.csv": write_csv(blockers, self.out_dir / "blocker_queue.csv"),
            "promise_view.csv": write_csv(promise, self.out_dir / "promise_view.csv"),
            "changes.csv": write_csv(changes, self.out_dir / "changes.csv"),
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
