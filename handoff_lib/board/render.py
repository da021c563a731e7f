"""The board as HTML strings: tables, tiles, the order lookup answer, banners, the page style.

Untrusted text (notes, comments, customer names, details) only reaches the page through `html_table`
and `text`, which escape every cell; links are anchors only when they are http(s) URLs and open in a
new tab with rel="noopener noreferrer".
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pandas as pd

from .data import Found, OrderDetail

MAX_TEXT = 300  # characters of one text cell shown (the exports hold the full text)
LINK_COLUMNS = ("source_link", "order_link", "source_links")
WHOLE_TEXT_COLUMNS = ("draft_note",)  # shown whole (a draft is written to be read in full)
_HTTP = re.compile(r"https?://[^\s\"'<>]+\Z", re.IGNORECASE)


def safe_url(value: object) -> str | None:
    """The value when it is an http(s) URL without spaces or quotes, else None."""
    return value if isinstance(value, str) and _HTTP.match(value.strip()) else None


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NaT:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt(v: object) -> str:
    """One cell as plain text."""
    if isinstance(v, (list, tuple)) or hasattr(v, "tolist") and not isinstance(v, (str, pd.Timestamp)):
        seq = v.tolist() if hasattr(v, "tolist") else v
        if isinstance(seq, list):
            return "; ".join(_fmt(x) for x in seq)
    if _is_missing(v):
        return ""
    if isinstance(v, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(v)
        return ts.strftime("%a %d %b" if ts.tzinfo is None and ts == ts.normalize() else "%a %d %b %H:%M")
    if isinstance(v, dt.date):
        return v.strftime("%a %d %b")
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() or abs(v) >= 100 else f"{v:,.1f}"
    s = str(v)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _link(url: str, label: str = "open ↗") -> str:
    u = html.escape(url.strip(), quote=True)
    return f'<a href="{u}" target="_blank" rel="noopener noreferrer" title="{u}">{html.escape(label)}</a>'


def _cell(col: str, v: object) -> str:
    if col in WHOLE_TEXT_COLUMNS and isinstance(v, str):
        return html.escape(v)
    if col in LINK_COLUMNS:
        urls = v.tolist() if hasattr(v, "tolist") and not isinstance(v, str) else (v if isinstance(v, (list, tuple)) else [v])
        safe = [u for u in (safe_url(x) for x in urls) if u]
        if safe:
            return " ".join(_link(u) for u in safe)
    return html.escape(_fmt(v))


def html_table(df: pd.DataFrame, table_id: str, total: int | None = None, version: int = 0) -> str:
    """The rows as an HTML table in which every header and cell is escaped text; *_link columns are
    anchors (http(s) only, new tab, noopener). data-rows / data-total / data-version attributes let
    tests and the benchmark see what is shown."""
    tid = html.escape(table_id, quote=True)
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in df.columns)
    cols = list(df.columns)
    body = "".join(
        "<tr>" + "".join(f'<td data-col="{html.escape(str(c), quote=True)}">{_cell(c, v)}</td>' for c, v in zip(cols, row)) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    n_total = len(df) if total is None else total
    return (f'<table class="board-table" id="{tid}" data-rows="{len(df)}" data-total="{n_total}" data-version="{version}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text(s: object, tag: str = "p", cls: str = "") -> str:
    """Escaped text in one element."""
    c = f' class="{html.escape(cls, quote=True)}"' if cls else ""
    return f"<{tag}{c}>{html.escape(_fmt(s) if not isinstance(s, str) else s)}</{tag}>"


def tiles_html(h: dict[str, Any]) -> str:
    """Headline tiles as escaped HTML."""

    def tile(label: str, n: int, cls: str = "", key: str = "") -> str:
        return (f'<div class="board-tile {cls}" data-key="{html.escape(key, quote=True)}" data-count="{int(n)}">'
                f'<div class="n">{int(n):,}</div><div class="l">{html.escape(label)}</div></div>')

    nxt = f"at risk on the next pickup ({h['next_pickup']})" if h["next_pickup"] else "at risk on the next pickup (none ahead)"
    top = [tile("orders", h["orders"], key="orders"),
           tile(f"open blockers on {h['blocked_orders']:,} orders", h["open_blockers"], "warn", "open_blockers"),
           tile(nxt, h["at_risk_next_pickup"], "alert", "at_risk_next_pickup")]
    promise = [tile(k.replace("_", " "), n, f"p-{k}", f"promise.{k}") for k, n in h["by_promise"].items()]
    states = [tile(k.replace("_", " "), n, "state", f"state.{k}") for k, n in h["by_state"].items()]
    # the three figures as tiles; orders by promise and by state as one compact line each, so the meeting's
    # pickups and act-now list fit the first screen under them
    return ('<div class="board-tiles">' + "".join(top) + "</div>"
            + '<div class="board-tiles small"><span class="what">promise</span>' + "".join(promise) + "</div>"
            + '<div class="board-tiles small"><span class="what">state</span>' + "".join(states) + "</div>")


def timeline_html(d: OrderDetail, found: Found | None, version: int = 0) -> str:
    """The order lookup answer: what matched, state and promise with their reasons, blockers, timeline."""
    o = d.order
    out = [f'<div class="board-order" data-order="{html.escape(d.order_id, quote=True)}">']
    head = f"Order {d.order_id}"
    if found:
        head += f" (matched {found.kind.replace('_', ' ')} {found.matched})"
    out.append(text(head, "h4"))
    if o:
        facts = [("customer", f"{_fmt(o.get('customer_name'))} ({_fmt(o.get('customer_id'))})"),
                 ("state", ": ".join(x for x in (_fmt(o.get("state")), _fmt(o.get("state_reason"))) if x)),
                 ("promise", ": ".join(x for x in (_fmt(o.get("promise_status")), _fmt(o.get("promise_reason"))) if x)),
                 ("carrier pickup", f"{_fmt(o.get('carrier'))} {_fmt(o.get('service'))}, {_fmt(o.get('cutoff_label'))}"),
                 ("priority", _fmt(o.get("priority")))]
        out.append('<dl class="board-facts">' + "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>")
        link = safe_url(o.get("order_link"))
        if link:
            out.append("<p>OMS: " + _link(link, "open the order ↗") + "</p>")
    else:
        out.append(text("This order is not on the board of this review (it may be newer or older than the extract)."))
    out.append(text(f"Open blockers ({len(d.blockers)})", "h5"))
    if len(d.blockers):
        out.append(html_table(d.blockers, "board-order-blockers", version=version))
    out.append(text(f"Timeline across systems ({len(d.timeline)} events)", "h5"))
    if d.timeline_note:
        out.append(text(d.timeline_note))
    else:
        out.append(html_table(d.timeline, "board-order-timeline", version=version))
    out.append("</div>")
    return "".join(out)


VERDICT_CLASS = {"will make": "v-make", "at risk": "v-risk", "will miss": "v-miss"}


def pickups_html(df: pd.DataFrame) -> str:
    """The next carrier pickups as one card each, in time order: the verdict first (will make / at risk /
    will miss N orders), then what it rests on: orders due, ready, to do, blocked, at risk, and the labour
    of the binding area. Escaped."""
    if not len(df):
        return text("No carrier pickup in the coming hours.", "p", "board-msg board-pickups-none")
    cards = []
    for r in df.to_dict("records"):
        verdict = str(r.get("verdict") or "")
        counts = " · ".join(f"{_fmt(r.get(k))} {label}" for k, label in (
            ("orders_due", "due"), ("ready", "ready"), ("to_do", "to do"), ("blocked", "blocked"), ("at_risk", "at risk"))
            if not _is_missing(r.get(k)))
        labour = ""
        if not _is_missing(r.get("binding_area")) and not _is_missing(r.get("work_min")):
            usage = "" if _is_missing(r.get("usage_pct")) else f" ({_fmt(r.get('usage_pct'))} %)"
            labour = (f"{r['binding_area']}: {_fmt(r.get('work_min'))} min of work, {_fmt(r.get('available_min'))} min of "
                      f"labour{usage}")
        cards.append(
            f'<div class="board-pickup {VERDICT_CLASS.get(verdict, "")}" data-verdict="{html.escape(verdict, quote=True)}" '
            f'data-not-make="{int(r.get("will_not_make") or 0)}">'
            f'<div class="when">{html.escape(_fmt(r.get("pickup")))}</div>'
            f'<div class="verdict">{html.escape(_fmt(r.get("verdict_text")))}</div>'
            f'<div class="counts">{html.escape(counts)}</div>'
            + (f'<div class="labour">{html.escape(labour)}</div>' if labour else "") + "</div>")
    return ('<div class="board-section-title">Next carrier pickups: will we make them?</div>'
            f'<div class="board-pickups" data-pickups="{len(cards)}">' + "".join(cards) + "</div>")


def stale_html(headline: str | None, on_stale: str, drafts: bool) -> str:
    """The first-screen warning of a review built on stale extracts: which source, and how old (escaped)."""
    if not headline:
        return ""
    what = ("Draft notes of this review are held back (freshness.on_stale: hold)." if on_stale == "hold"
            else "Draft notes of this review are marked stale (freshness.on_stale: mark).")
    return ('<div class="board-stale">' + html.escape(headline) + (" " + html.escape(what) if drafts else "")
            + " This is not the current picture of the floor.</div>")


def matches_html(identifier: str, found: list[Found], summaries: pd.DataFrame, version: int = 0) -> str:
    """An identifier that matches several orders: each order with what matched and its state and promise,
    to choose one from (escaped)."""
    by_id = summaries.set_index("order_id") if len(summaries) else summaries
    rows = []
    for f in found:
        s = by_id.loc[f.order_id] if f.order_id in getattr(by_id, "index", []) else {}
        rows.append({"order": f.order_id, "matched": f"{f.kind.replace('_', ' ')} {f.matched}",
                     "customer": s.get("customer_name", ""), "state": s.get("state", ""),
                     "promise": s.get("promise_status", ""), "pickup": s.get("cutoff_label", "")})
    return (f'<div class="board-lookup-matches" data-matches="{len(found)}">'
            + text(f"'{identifier}' matches {len(found)} orders: choose one above to see it.", "p", "board-msg")
            + html_table(pd.DataFrame(rows), "board-lookup-matches-table", version=version) + "</div>")


STYLE = """<style>
.board-root { font-family: system-ui, sans-serif; font-size: 13px; }
.board-tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0; }
.board-tile { border: 1px solid #ccd; border-radius: 6px; padding: 4px 12px; min-width: 110px; background: #fafbfc; }
.board-tile .n { font-size: 22px; font-weight: 600; }
.board-tiles.small { gap: 4px; margin: 2px 0; align-items: baseline; }
.board-tiles.small .what { color: #555; min-width: 56px; }
.board-tiles.small .board-tile { display: flex; gap: 4px; align-items: baseline; padding: 1px 8px; min-width: 0; border-radius: 10px; }
.board-tiles.small .board-tile .n { font-size: 13px; }
.board-root h2 { margin: 2px 0 4px; font-size: 18px; }
table.board-table td[data-col="example"] { max-width: 320px; font-size: 12px; }
.board-tile.warn { border-color: #f9a825; } .board-tile.alert { border-color: #c62828; }
.board-tile.p-needs_communication .n { color: #c62828; } .board-tile.p-at_risk .n { color: #b26a00; }
table.board-table { border-collapse: collapse; width: 100%; margin: 4px 0; }
table.board-table th { text-align: left; background: #eef1f5; position: sticky; top: 0; }
table.board-table th, table.board-table td { border-bottom: 1px solid #e3e6ea; padding: 3px 6px; vertical-align: top; }
table.board-table td[data-col="detail"], table.board-table td[data-col="draft_note"] { white-space: pre-wrap; max-width: 520px; }
table.board-table tbody tr:nth-child(even) { background: #f8f9fb; }
.board-facts { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
.board-facts dt { font-weight: 600; } .board-facts dd { margin: 0; }
.board-tabs .lm-TabBar-tab, .board-tabs .p-TabBar-tab { flex: 0 0 auto !important; max-width: none !important; }
.board-msg { color: #555; } .board-error { color: #c62828; }
.board-banner { background: #fff3cd; border: 2px solid #b26a00; padding: 6px 10px; font-weight: 600; margin: 4px 0; }
.board-who { color: #555; text-align: right; }
.board-act { border-top: 1px solid #e3e6ea; margin-top: 8px; padding-top: 6px; }
table.board-table td[data-col="handling"] { max-width: 360px; }
table.board-table td[data-col="action"] { max-width: 420px; }
.board-stale { background: #fdecea; border: 2px solid #c62828; color: #8e0000; padding: 6px 10px; font-weight: 600; margin: 4px 0; }
.board-pickups { display: flex; flex-wrap: wrap; gap: 8px; margin: 4px 0 8px; }
.board-pickup { border: 1px solid #ccd; border-left-width: 6px; border-radius: 6px; padding: 4px 10px; min-width: 220px; max-width: 330px; }
.board-pickup .when { font-weight: 600; } .board-pickup .verdict { font-size: 16px; font-weight: 700; }
.board-pickup .counts, .board-pickup .labour { color: #444; font-size: 12px; }
.board-pickup.v-make { border-left-color: #2e7d32; } .board-pickup.v-make .verdict { color: #2e7d32; }
.board-pickup.v-risk { border-left-color: #f9a825; } .board-pickup.v-risk .verdict { color: #b26a00; }
.board-pickup.v-miss { border-left-color: #c62828; } .board-pickup.v-miss .verdict { color: #c62828; }
.board-section-title, h4.board-section { font-weight: 700; font-size: 14px; margin: 6px 0 2px; }
</style>"""


def banner_html(message: str) -> str:
    """A warning the server wants on every page (escaped), or nothing."""
    return text(message, "div", "board-banner") if message else ""


def who_html(name: str, role_label: str, signed_in: bool, base_url: str = "/") -> str:
    """'J. Diaz (operations) · sign out' (escaped), top right of the board."""
    out = f"{html.escape(name)} ({html.escape(role_label)})"
    if signed_in:
        out += f' · <a href="{html.escape(base_url.rstrip("/") + "/logout", quote=True)}">sign out</a>'
    return f'<div class="board-who">{out}</div>'


def entries_html(entries: list[dict], tz: Any, comments: bool = True) -> str:
    """The acknowledgement log of one blocker as an escaped table (oldest first)."""
    if not entries:
        return text("Nobody has acted on this blocker yet.", "p", "board-msg")
    rows = [{"when": f"{e['acted_at'].astimezone(tz):%a %d %b %H:%M}", "who": e["actor_name"], "what": e["what"],
             "assigned to": e["assignee"] or "",
             "expected by": f"{e['expected_by'].astimezone(tz):%a %d %b %H:%M}" if e["expected_by"] else "",
             **({"comment": e["comment"] or ""} if comments else {})} for e in entries]
    return html_table(pd.DataFrame(rows), "board-act-log")

