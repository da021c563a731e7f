"""Draft internal notes for sales and support, built only from source facts, for people to review.

For every `at_risk` / `needs_communication` order: what is blocked, the owner, what is being done (the
routing in the blocker queue, and only what the source records say), when it will next be checked, and
the source record behind each statement. Every draft starts with `DRAFT - review before sending`.
A draft never states a ship or delivery date the data does not hold: the only dates in it are copied from
source fields (the promised delivery on the order, the carrier cutoff, the promise rule's next pickup,
times inside blocker details), the review time, or the time by which someone on the board said a blocker
should be cleared (the acknowledgement log: "what is being done"); it says so instead of estimating one.

Also `since_last_cutoff`: a short summary of the high-priority changes since the last review, given the
changes between two reviews as a DataFrame.

Drafts are plain text. Note text from source systems is untrusted and stays plain text here (control
characters removed, never interpreted); HTML views must escape it, spreadsheets go through exports.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from handoff_lib.exports import write_csv

DRAFT_MARK = "DRAFT - review before sending"
STATUSES = ("needs_communication", "at_risk")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

ORDERS = """
SELECT b.order_id, b.customer_id, b.customer_name, b.state, b.state_reason, b.promise_status, b.promise_reason,
       CAST(b.promised_delivery AS VARCHAR) AS promised_delivery, b.cutoff_label, b.minutes_to_cutoff, b.carrier, b.service, b.order_link, b.priority,
       strftime(p.next_pickup_at, '%Y-%m-%d %H:%M') AS next_pickup_at
FROM order_board b LEFT JOIN promise p USING (order_id)
WHERE b.promise_status IN ('needs_communication', 'at_risk')
ORDER BY CASE b.promise_status WHEN 'needs_communication' THEN 0 ELSE 1 END, b.priority DESC, b.order_id
"""
BLOCKERS = """
SELECT order_id, blocker_id, reason, reason_label, owner, basis, detail, source_system, source_entity, source_file,
       source_line, source_key, source_link, age_minutes
FROM blockers WHERE order_id IN (SELECT unnest($ids)) ORDER BY order_id, priority DESC, reason, source_key
"""


def plain(text: object, limit: int = 300) -> str:
    """Untrusted source text as one plain line: control characters and line breaks become spaces."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ""
    s = CONTROL.sub(" ", str(text)).replace("\n", " ").replace("\r", " ")
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _when(value: object) -> str:
    """A source timestamp/date as ISO text (site-local as stored), '' when missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _cite(b: dict) -> str:
    where = f"{b['source_file']} line {b['source_line']}" if b.get("source_file") else ""
    parts = [f"{b['source_system']} {b['source_entity']} {b['source_key']}".strip(), where, b.get("source_link") or ""]
    return "; ".join(p for p in parts if p)


def draft_note(
    order: dict, blockers: list[dict], review_at: dt.datetime | None = None, next_check: str | None = None,
    acks: dict | None = None, tz: ZoneInfo | None = None,
) -> tuple[str, list[str]]:
    """(draft text, source citations) for one order. `order` holds order_board fields (+ next_pickup_at);
    `blockers` its blocker rows. `next_check` says when it is looked at again (e.g. 'the 15:00 cutoff
    review'); without it the draft says 'the next cutoff review'. `acks` (blocker_id -> acks.AckState)
    says who is handling a blocker: it becomes "what is being done" (never the comment text), with
    times in `tz` (default the review time's zone)."""
    oid = plain(order["order_id"])
    status = str(order["promise_status"])
    cust = plain(order.get("customer_name")) or plain(order.get("customer_id")) or "unknown customer"
    if order.get("customer_id") and order.get("customer_name"):
        cust = f"{plain(order['customer_name'])} ({plain(order['customer_id'])})"
    head = DRAFT_MARK + (f" (from the cutoff review at {_when(review_at)})" if review_at else "")
    lines = [head, f"Order {oid} for {cust}: {status.replace('_', ' ')}."]
    cites = [f"order {oid}: OMS order" + (f" {order['order_link']}" if order.get("order_link") else "")]
    lines.append(f"Where it stands: {plain(order.get('state_reason')) or plain(order.get('state'))}.")
    if blockers:
        lines.append("What is blocked, and who owns it:")
        for i, b in enumerate(blockers, start=1):
            detail = plain(b.get("detail"))
            lines.append(f"  [{i}] {plain(b['reason_label'])} - owner {plain(b['owner'])}" + (f": {detail}" if detail else ""))
            cites.append(f"[{i}] {_cite(b)}")
    else:
        lines.append("No open blocker in the queue; the risk comes from the time left (see the promise line).")
    lines.append(f"Promise check: {plain(order.get('promise_reason'))}.")
    facts = []
    if order.get("cutoff_label"):
        facts.append(f"carrier cutoff {plain(order['cutoff_label'])}")
    if _when(order.get("promised_delivery")):
        facts.append(f"promised delivery on the order (OMS) {_when(order['promised_delivery'])}")
    if _when(order.get("next_pickup_at")):
        facts.append(f"next pickup the remaining work allows (promise rule) {_when(order['next_pickup_at'])}")
    if facts:
        lines.append("Dates on record: " + "; ".join(facts) + ".")
    owners = sorted({plain(b["owner"]) for b in blockers if b.get("owner")})
    handled = [(i, acks[b["blocker_id"]]) for i, b in enumerate(blockers, start=1) if acks and b.get("blocker_id") in acks]
    zone = tz or (review_at.tzinfo if review_at is not None and review_at.tzinfo is not None else dt.UTC)
    if handled:
        rest = sorted({plain(b["owner"]) for i, b in enumerate(blockers, start=1)
                       if b.get("owner") and i not in {j for j, _ in handled}})
        lines.append(
            "What is being done: " + "; ".join(f"[{i}] {plain(s.summary(zone, comment=False), 200)}" for i, s in handled)
            + (f"; the other blockers are routed to {', '.join(rest)} in the blocker queue" if rest else "")
            + " (recorded on the handoff board)."
        )
        cites.append("what is being done: the handoff board's acknowledgement log")
    elif owners:
        lines.append(
            "What is being done: the blockers are routed to " + ", ".join(owners) + " in the blocker queue; "
            "no other action is recorded in the source data."
        )
    lines.append(f"Next check: {next_check or 'the next cutoff review'}.")
    lines.append(
        "No new ship or delivery date is given here: "
        + (
            "tell the customer only after the owner confirms one."
            if status == "needs_communication"
            else "confirm with the owner first."
        )
    )
    lines.append("Sources: " + " | ".join(cites))
    return "\n".join(lines), cites


def _none_for_na(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(object).where(df.notna(), None)


def build_drafts(
    con: duckdb.DuckDBPyConnection, review_at: dt.datetime | None = None, next_check: str | None = None,
    acks: dict | None = None, tz: ZoneInfo | None = None,
) -> pd.DataFrame:
    """One draft per at_risk / needs_communication order (needs_communication first, then by priority):
    order_id, promise_status, priority, owners, n_blockers, draft, sources. Reads order_board, promise and
    blockers (and `acks`, see draft_note); changes nothing."""
    orders = _none_for_na(con.execute(ORDERS).df())
    cols = ["order_id", "promise_status", "priority", "owners", "n_blockers", "draft", "sources"]
    if orders.empty:
        return pd.DataFrame(columns=cols)
    blk = _none_for_na(con.execute(BLOCKERS, {"ids": orders["order_id"].tolist()}).df())
    by_order: dict[str, list[dict]] = {}
    for b in blk.to_dict("records"):  # one pass; a per-group to_dict costs ~1 ms an order
        by_order.setdefault(b["order_id"], []).append(b)
    rows = []
    for o in orders.to_dict("records"):
        bs = by_order.get(o["order_id"], [])
        text, cites = draft_note(o, bs, review_at, next_check, acks=acks, tz=tz)
        rows.append(
            {
                "order_id": o["order_id"],
                "promise_status": o["promise_status"],
                "priority": o["priority"],
                "owners": ", ".join(sorted({b["owner"] for b in bs if b.get("owner")})),
                "n_blockers": len(bs),
                "draft": text,
                "sources": " | ".join(cites),
            }
        )
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------ since last cutoff

HIGH_CHANGES = ("new_blocker", "promise_changed", "state_changed", "new_order", "blocker_resolved")


def since_last_cutoff(changes: pd.DataFrame, min_priority: int = 0, top: int = 10, previous: str | None = None) -> str:
    """A short plain-text summary of the high-priority changes since the last review.

    `changes` has one row per change: order_id, change (e.g. new_blocker, blocker_resolved,
    promise_changed, state_changed), and optionally before, after, priority, detail. High priority =
    priority >= `min_priority`, and promise changes to at_risk / needs_communication first; at most `top`
    lines, then how many more."""
    label = f"since the last cutoff review ({previous})" if previous else "since the last cutoff review"
    if changes is None or changes.empty:
        return f"No changes {label}."
    df = changes.copy()
    kind = "change" if "change" in df.columns else ("kind" if "kind" in df.columns else None)
    df["_kind"] = df[kind].astype(str) if kind else "changed"
    df["_prio"] = pd.to_numeric(df["priority"], errors="coerce").fillna(0) if "priority" in df.columns else 0
    df = df[df["_prio"] >= min_priority]
    after = df["after"].astype(str) if "after" in df.columns else pd.Series("", index=df.index)
    worse = after.isin(["needs_communication", "at_risk"]) & df["_kind"].str.contains("promise")
    df = df.assign(_rank=(~worse).astype(int)).sort_values(["_rank", "_prio", "order_id"], ascending=[True, False, True])
    if df.empty:
        return f"No high-priority changes {label}."
    n = len(df)
    lines = [f"{n} high-priority change{'s' if n != 1 else ''} {label}:"]
    for r in df.head(top).to_dict("records"):
        what = r["_kind"].replace("_", " ")
        if "before" in r or "after" in r:
            b, a = plain(r.get("before")), plain(r.get("after"))
            if b or a:
                what += f" {b or '-'} -> {a or '-'}"
        extra = f": {plain(r.get('detail'), 160)}" if plain(r.get("detail")) else ""
        lines.append(f"- {plain(r['order_id']) or '(no order)'} (priority {int(r['_prio'])}) {what}{extra}")
    if n > top:
        lines.append(f"... and {n - top} more (see the changes list)")
    return "\n".join(lines)


def write_drafts(drafts: pd.DataFrame, out_dir: str | Path, summary: str | None = None, held: str | None = None) -> dict[str, Path]:
    """Write drafts.txt (every draft, separated), drafts.csv (neutralised for spreadsheets) and, when
    given, since_last_cutoff.txt under `out_dir`. Returns name -> path. `held`: why drafts were held back
    (a stale review), said at the top of drafts.txt."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    txt = out / "drafts.txt"
    body = "\n\n" + ("-" * 72) + "\n\n"
    text = body.join(drafts["draft"]) if len(drafts) else "" if held else "No at-risk or needs-communication orders."
    txt.write_text("\n\n".join(t for t in (held, text) if t) + "\n", encoding="utf-8")
    written["drafts_txt"] = txt
    written["drafts_csv"] = write_csv(drafts, out / "drafts.csv")
    if summary is not None:
        s = out / "since_last_cutoff.txt"
        s.write_text(summary + "\n", encoding="utf-8")
        written["since_last_cutoff"] = s
    return written
