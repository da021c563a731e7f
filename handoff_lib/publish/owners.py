"""Each owner team's queue after a review, and its words: what the team owns, new since the last review first,
ranked as the act-now list ranks them (meeting.act_now), with the orders and pickups each blocker holds, its
source link and where it stands on the board (acks.py). Delivery is notify.py's job; rules in docs/notify.md.

A queue holds exactly the blocker queue's rows (table `blockers`, = blocker_queue.csv) whose owner is the team.
Order: new since the previous review first (every row is new when there is no previous review); then by the rank
of the act-now action the blocker belongs to (blockers in no action, such as unlinked records, after those in
one); then as the blocker queue orders them (priority, cutoff). Nothing here is sent, and nothing is written
to the picture: `build_queues` reads a review's picture (`act_now`, `blockers`, `changes`, `meeting_orders`).

Text from the source systems (details, comments, names) is untrusted: `html` escapes every value it shows, and
`chat_text` escapes what chat tools would read as markup (Slack's &, <, >), so a `<script>` or `<!channel>` in a
note is shown as text. Links are only made of http(s) addresses.
"""

from __future__ import annotations

import datetime as dt
import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from handoff_lib.load.settings import Settings
from handoff_lib.rules.meeting import act_now_members

QUEUE = """
WITH m AS (SELECT * FROM _owner_members),
fresh AS (SELECT DISTINCT blocker_id FROM changes WHERE kind = 'new_blocker')
SELECT coalesce(b.owner, 'unassigned') AS owner, b.blocker_id, b.order_id, b.reason, b.reason_label, b.priority, b.blocks_work,
       $all_new OR b.blocker_id IN (SELECT blocker_id FROM fresh) AS is_new,
       a.rank AS act_rank, a.action, a.orders_held AS action_orders, a.orders_saved AS action_saves,
       mo.pickup, mo.pickup_at, mo.carrier, mo.fate, mo.clear_by,
       coalesce(mo.pickup_at > $now AND mo.pickup_at <= $until AND mo.fate = 'blocked' AND b.blocks_work, FALSE) AS on_coming_pickup,
       b.cutoff_at, b.cutoff_label, b.age_minutes, b.source_system, b.source_entity, b.source_key, b.source_link,
       b.order_link, b.detail, b.rowid AS queue_line
FROM blockers b
LEFT JOIN m USING (blocker_id)
LEFT JOIN act_now a ON a.reason = m.reason AND a.group_key = m.group_key
LEFT JOIN meeting_orders mo ON mo.order_id = b.order_id
ORDER BY owner, is_new DESC, act_rank NULLS LAST, queue_line
"""

# columns of an owner's queue file (CSV) and of the webhook's structured rows, in this order
COLUMNS = ["rank", "is_new", "act_rank", "action", "reason_label", "order_id", "priority", "pickup", "clear_by", "cutoff_label",
           "detail", "ack", "source_link", "order_link", "blocker_id", "reason", "source_system", "source_entity", "source_key"]


@dataclass
class OwnerQueue:
    """One owner team's queue of one review, and its message texts."""

    site: str
    site_name: str
    owner: str
    review_at: dt.datetime
    previous_at: dt.datetime | None
    rows: pd.DataFrame  # COLUMNS, in queue order
    stale: list[str] = field(default_factory=list)  # one sentence per stale source (freshness.stale_lines)
    stakes: dict = field(default_factory=dict)  # the subject's figures: orders, pickup, carrier, what

    @property
    def slug(self) -> str:
        return slug(self.owner)

    @property
    def n_new(self) -> int:
        return int(self.rows["is_new"].sum())

    @property
    def n_orders(self) -> int:
        return int(self.rows["order_id"].dropna().nunique())

    @property
    def subject(self) -> str:
        return subject(self)


def slug(owner: str) -> str:
    """'customer service' -> 'customer-service' (the owner's file names)."""
    return re.sub(r"[^a-z0-9]+", "-", owner.lower()).strip("-") or "owner"


def _when(ts: dt.datetime, at: dt.datetime) -> str:
    return f"{ts:%H:%M}" if ts.date() == at.date() else f"{ts:%a %H:%M}"


def build_queues(con: duckdb.DuckDBPyConnection, settings: Settings, at: dt.datetime, previous_at: dt.datetime | None,
                 ack_log: Path | None = None, stale: list[str] | None = None, owners: list[str] | None = None) -> dict[str, OwnerQueue]:
    """The queue of every owner with open blockers in the review's picture on `con` (plus each of `owners`, empty
    when it has none), by owner. `previous_at`: the previous stored review (None: every blocker is new).
    `ack_log`: the board's acknowledgement log (acks.log_path); `stale`: the review's stale sources in words."""
    from handoff_lib.history import acks
    from handoff_lib.rules.labour import load_labour

    members = act_now_members(con)
    until = at + dt.timedelta(hours=load_labour(settings).lookahead_hours)
    con.register("_owner_members", members)
    try:
        df = con.execute(QUEUE, {"all_new": previous_at is None, "now": at, "until": until}).df()
    finally:
        con.unregister("_owner_members")
    states = acks.states(ack_log, settings.site, df["blocker_id"].tolist()) if ack_log is not None else {}
    tz = settings.tz
    df["ack"] = [states[b].summary(tz, now=at) if b in states else "not acknowledged" for b in df["blocker_id"]]
    df["clear_by"] = [_when(t.to_pydatetime().astimezone(tz), at) if isinstance(t, pd.Timestamp) and f == "blocked" else None
                      for t, f in zip(df["clear_by"], df["fate"])]
    out = {}
    for owner in sorted(set(df["owner"]) | set(owners or [])):
        mine = df[df["owner"] == owner].reset_index(drop=True)
        rows = mine.assign(rank=range(1, len(mine) + 1))
        out[owner] = OwnerQueue(settings.site, settings.name, owner, at, previous_at, rows[COLUMNS], list(stale or []),
                                _stakes(mine, at, tz))
    return out


def _stakes(mine: pd.DataFrame, at: dt.datetime, tz) -> dict:
    """The figures the subject line says: the owner's blocked orders due on the first coming pickup that has any
    (orders that can still make it once cleared), that pickup, and the blocker labels holding them."""
    due = mine[mine["on_coming_pickup"].astype(bool)]
    if due.empty:
        return {}
    first = due["pickup_at"].min()
    on_first = due[due["pickup_at"] == first]
    carriers = sorted({str(c) for c in on_first["carrier"].dropna()})
    labels = on_first.groupby("reason_label", dropna=False)["order_id"].nunique().sort_values(ascending=False)
    return {"orders": int(on_first["order_id"].nunique()), "pickup_at": first.to_pydatetime().astimezone(tz),
            "carrier": "/".join(carriers), "what": [str(x) for x in labels.index]}


def subject(q: OwnerQueue) -> str:
    """'Finance: 14 orders for the 15:00 UPS pickup wait on credit hold, 6 new' (docs/notify.md, "The subject")."""
    owner = q.owner[:1].upper() + q.owner[1:]
    stale = "[STALE] " if q.stale else ""
    new = f"{q.n_new:,} new"
    if q.rows.empty:
        return f"{stale}{owner}: no open blockers"
    s = q.stakes
    if s:
        n = s["orders"]
        what = [w.lower() for w in s["what"]]
        said = what[0] if len(what) == 1 else (f"{what[0]} and {what[1]}" if len(what) == 2 else f"{what[0]} and {len(what) - 1} other blockers")
        truck = f"{_when(s['pickup_at'], q.review_at)} {s['carrier']}".strip()
        return f"{stale}{owner}: {n:,} order{'s' if n != 1 else ''} for the {truck} pickup wait{'s' if n == 1 else ''} on {said}, {new}"
    n, k = len(q.rows), q.n_orders
    on = f"on {k:,} order{'s' if k != 1 else ''}" if k else "on no order (records to link or correct)"
    return f"{stale}{owner}: {n:,} open blocker{'s' if n != 1 else ''} {on}, {new}"


def _intro(q: OwnerQueue) -> str:
    since = (f"{q.n_new:,} new since the {_when(q.previous_at, q.review_at)} review" if q.previous_at is not None
             else "the first review: every blocker is listed as new")
    n = len(q.rows)
    return (f"{q.site_name}, cutoff review {q.review_at:%a %d %b %Y %H:%M}: {n:,} open blocker{'s' if n != 1 else ''} owned by "
            f"{q.owner} on {q.n_orders:,} order{'s' if q.n_orders != 1 else ''}, {since}. New first, then as the act-now list ranks "
            "them (what clearing them saves before the coming pickups).")


def _stale_line(q: OwnerQueue) -> str:
    return "STALE EXTRACTS - check before acting: " + "; ".join(q.stale) + "." if q.stale else ""


def _txt(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA or v is pd.NaT:
        return ""
    return str(v)


def text(q: OwnerQueue) -> str:
    """The plain-text message: subject, intro, then one block per blocker in queue order."""
    lines = [q.subject, "", _intro(q)]
    if q.stale:
        lines += ["", _stale_line(q)]
    for r in q.rows.to_dict("records"):
        head = f"{r['rank']}. {'NEW ' if r['is_new'] else ''}{_txt(r['reason_label'])}"
        head += f" - order {r['order_id']}" if _txt(r["order_id"]) else " - no order linked"
        lines += ["", head]
        if _txt(r["action"]):
            lines.append(f"   act-now #{int(r['act_rank'])}: {r['action']}")
        where = ", ".join(x for x in (f"pickup {_txt(r['pickup'])}" if _txt(r["pickup"]) else "",
                                      f"clear by {r['clear_by']}" if _txt(r["clear_by"]) else "",
                                      f"cutoff {_txt(r['cutoff_label'])}" if _txt(r["cutoff_label"]) else "",
                                      f"priority {_txt(r['priority'])}") if x)
        lines.append(f"   {where}")
        if _txt(r["detail"]):
            lines.append(f"   {_one_line(r['detail'])}")
        lines.append(f"   board: {r['ack']}")
        if _txt(r["source_link"]):
            lines.append(f"   source: {r['source_link']}")
    if q.rows.empty:
        lines += ["", "Nothing open."]
    lines += ["", f"Blocker ids and every column: the owner's CSV beside this message ({q.slug}.csv) and blocker_queue.csv."]
    return "\n".join(lines) + "\n"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


_SAFE_URL = re.compile(r"^https?://[^\s\"'<>]+$", re.IGNORECASE)


def _link(url: object, label: str) -> str:
    u = _txt(url)
    if not u:
        return ""
    if _SAFE_URL.match(u):
        return f'<a href="{_html.escape(u, quote=True)}">{_html.escape(label)}</a>'
    return _html.escape(u)  # not an http(s) address: shown, never a link


CSS = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328;margin:0;padding:16px;background:#fff}
h1{font-size:18px;margin:0 0 6px} p{margin:4px 0 10px;max-width:1100px}
.stale{background:#fde7e9;border:2px solid #c62828;color:#8e0000;padding:8px 10px;font-weight:600}
table{border-collapse:collapse;width:100%;max-width:1400px} th,td{border-bottom:1px solid #d8dee4;padding:4px 6px;text-align:left;
vertical-align:top} th{background:#f3f5f7;font-size:12px} td.n{text-align:right;white-space:nowrap}
.new{background:#1a7f37;color:#fff;border-radius:3px;padding:0 4px;font-size:11px;font-weight:600}
.muted{color:#57606a;font-size:12px} .detail{max-width:420px;word-break:break-word} .nw{white-space:nowrap}
"""


def html(q: OwnerQueue) -> str:
    """The HTML message: a self-contained page (inline style, no scripts, no images), every value escaped."""
    e = _html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(q.subject)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{e(q.subject)}</h1>", f"<p>{e(_intro(q))}</p>"]
    if q.stale:
        out.append(f'<p class="stale">{e(_stale_line(q))}</p>')
    if q.rows.empty:
        out.append("<p>Nothing open.</p>")
    else:
        out.append('<table class="queue"><thead><tr><th>#</th><th>New</th><th>Act-now</th><th>Blocker</th><th>Order</th>'
                   "<th>Pickup</th><th>Clear by</th><th>Detail</th><th>On the board</th><th>Source</th></tr></thead><tbody>")
        for r in q.rows.to_dict("records"):
            act = f"#{int(r['act_rank'])} {e(_txt(r['action']))}" if _txt(r["action"]) else '<span class="muted">not in an action</span>'
            order = _link(r["order_link"], _txt(r["order_id"])) if _txt(r["order_id"]) else '<span class="muted">no order</span>'
            if _txt(r["order_id"]) and not _SAFE_URL.match(_txt(r["order_link"])):
                order = e(_txt(r["order_id"]))
            pickup = e(_txt(r["pickup"])) or f'<span class="muted">{e(_txt(r["cutoff_label"]))}</span>'
            out.append(
                f'<tr data-blocker="{e(r["blocker_id"])}"><td class="n">{r["rank"]}</td>'
                f"<td>{'<span class=new>NEW</span>' if r['is_new'] else ''}</td><td>{act}</td>"
                f"<td>{e(_txt(r['reason_label']))}<div class=muted>priority {e(_txt(r['priority']))}</div></td><td class=nw>{order}</td>"
                f"<td class=nw>{pickup}</td><td>{e(_txt(r['clear_by']))}</td><td class=detail>{e(_one_line(_txt(r['detail'])))}</td>"
                f"<td>{e(r['ack'])}</td><td>{_link(r['source_link'], 'open') if _txt(r['source_link']) else ''}</td></tr>")
        out.append("</tbody></table>")
    out.append(f'<p class="muted">handoff, site {e(q.site)}: every column of this list is in {e(q.slug)}.csv beside this message '
               "and in the review's blocker_queue.csv. Nothing here goes to customers.</p></body></html>")
    return "\n".join(out) + "\n"


def chat_escape(value: object) -> str:
    """Text a chat tool shows as text: Slack's control characters &, <, > escaped (no links, mentions or markup
    from a note)."""
    return _txt(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


CHAT_ROWS = 10  # blockers a chat message lists; the whole queue is in the owner's files and the e-mail


def chat_text(q: OwnerQueue) -> str:
    """The chat message's text (mrkdwn that Slack and Teams render as plain lines): subject, intro, the first
    CHAT_ROWS blockers in queue order and how many more there are."""
    lines = [f"*{chat_escape(q.subject)}*", chat_escape(_intro(q))]
    if q.stale:
        lines.append(f"*{chat_escape(_stale_line(q))}*")
    for r in q.rows.head(CHAT_ROWS).to_dict("records"):
        bits = [f"{r['rank']}.", "NEW" if r["is_new"] else "", chat_escape(r["reason_label"]),
                f"order {chat_escape(r['order_id'])}" if _txt(r["order_id"]) else "no order",
                f"pickup {chat_escape(r['pickup'])}" if _txt(r["pickup"]) else "",
                f"clear by {chat_escape(r['clear_by'])}" if _txt(r["clear_by"]) else "",
                f"- {chat_escape(_one_line(_txt(r['detail'])))}" if _txt(r["detail"]) else "", f"({chat_escape(r['ack'])})"]
        lines.append(" ".join(b for b in bits if b))
    more = len(q.rows) - CHAT_ROWS
    if more > 0:
        lines.append(f"... and {more:,} more in {chat_escape(q.slug)}.html / .csv in the review folder")
    return "\n".join(lines)


def payload(q: OwnerQueue) -> dict:
    """The webhook body (docs/notify.md, "Webhook"): `text` (what Slack, Mattermost, Rocket.Chat and Teams
    incoming webhooks show) and Slack `blocks` with the same words."""
    body = chat_text(q)
    head, _, rest = body.partition("\n")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": head[:3000]}}]
    for i in range(0, len(rest), 2900):  # a section holds at most 3,000 characters
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": rest[i:i + 2900]}})
    return {"text": body, "blocks": blocks[:50]}


def queue_frame(q: OwnerQueue) -> pd.DataFrame:
    """The queue as a table (the owner's CSV): COLUMNS, times as text."""
    return q.rows.astype({"is_new": bool})
