"""The acknowledgement log: who on the board acknowledged a blocker, assigned it, commented on it and by
when it should be cleared. Append-only, carried across reviews by `blocker_id`, read by the board, the
next review's report (blocker queue and summary) and the draft notes ("what is being done").

It lives beside the history database, in its own SQLite file (`history.duckdb` ->
`history.acks.sqlite`), not in a DuckDB table, because of who writes when:

* DuckDB allows one writing process per file, and a review run holds `history.duckdb` for writing
  while it stores its snapshot. An acknowledgement written into that file would wait for the run (the
  user sees a spinner for seconds) or fail, and every board reader would in turn hold the run back.
* SQLite in WAL mode lets any number of processes read while one writes, and serialises writers with a
  busy timeout: an acknowledgement is one small INSERT (about a millisecond), so two users acting at
  the same moment both land, one a millisecond after the other, and a review reading the log never
  waits for a writer or makes one wait. It is in Python's standard library.

Nothing here writes to a source system. UPDATE and DELETE are refused by triggers: a correction is a
new entry. Comment text is stored as typed (untrusted): every page escapes it when it shows it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from handoff_lib.errors import HandoffError

ACTIONS = ("acknowledge", "assign", "comment")
MAX_COMMENT = 280
MAX_NAME = 80
BUSY_MS = 10_000  # a writer waits at most this long for another writer (each holds the file ~1 ms)

SCHEMA = """
CREATE TABLE IF NOT EXISTS acks (
    ack_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    site        TEXT NOT NULL,
    blocker_id  TEXT NOT NULL,
    order_id    TEXT,
    what        TEXT NOT NULL CHECK (what IN ('acknowledge', 'assign', 'comment')),
    actor       TEXT NOT NULL,          -- user name of the signed-in user
    actor_name  TEXT NOT NULL,          -- display name, as shown ("J. Diaz")
    acted_at    TEXT NOT NULL,          -- UTC, ISO 8601
    assignee    TEXT,
    comment     TEXT,
    expected_by TEXT,                   -- UTC, ISO 8601
    review_date TEXT,                   -- the review the user was looking at
    review_time TEXT
);
CREATE INDEX IF NOT EXISTS acks_by_blocker ON acks (site, blocker_id, ack_id);
CREATE TRIGGER IF NOT EXISTS acks_append_only_update BEFORE UPDATE ON acks
BEGIN SELECT RAISE(ABORT, 'the acknowledgement log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS acks_append_only_delete BEFORE DELETE ON acks
BEGIN SELECT RAISE(ABORT, 'the acknowledgement log is append-only'); END;
"""


def log_path(history_db: str | Path) -> Path:
    """The acknowledgement log that belongs to a history database (same folder, same stem)."""
    p = Path(history_db)
    return p.with_name(p.stem + ".acks.sqlite")


def _connect(path: Path, write: bool) -> sqlite3.Connection:
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(path)
    con = sqlite3.connect(str(path) if write else f"file:{path}?mode=ro", uri=not write, timeout=BUSY_MS / 1000,
                          isolation_level=None)
    con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    if write:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.executescript(SCHEMA)
    return con


@dataclass(frozen=True)
class Entry:
    """One action on a blocker, as a user recorded it."""

    site: str
    blocker_id: str
    what: str
    actor: str
    actor_name: str
    order_id: str | None = None
    assignee: str | None = None
    comment: str | None = None
    expected_by: dt.datetime | None = None
    review_date: dt.date | None = None
    review_time: str | None = None


def _clean(value: str | None, limit: int, what: str) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).replace("\x00", " ").split()) if what != "comment" else str(value).replace("\x00", " ").strip()
    if not text:
        return None
    if len(text) > limit:
        raise HandoffError(f"{what} is {len(text)} characters long; at most {limit}")
    return text


def _utc(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        raise HandoffError(f"{ts}: a time without a time zone")
    return ts.astimezone(dt.UTC).isoformat(timespec="seconds")


def record(path: str | Path, entry: Entry, now: dt.datetime | None = None) -> int:
    """Append one entry to the log (creating the file on first use); returns its id. An `acknowledge`
    may carry an assignee, comment and expected-by time; `assign` needs an assignee, `comment` a comment."""
    if entry.what not in ACTIONS:
        raise HandoffError(f"'{entry.what}' is not an action on a blocker (one of {', '.join(ACTIONS)})")
    if not entry.blocker_id or not entry.actor:
        raise HandoffError("an acknowledgement needs a blocker and a signed-in user")
    assignee = _clean(entry.assignee, MAX_NAME, "assignee")
    comment = _clean(entry.comment, MAX_COMMENT, "comment")
    if entry.what == "assign" and not assignee:
        raise HandoffError("assign: give the name of the person the blocker is assigned to")
    if entry.what == "comment" and not comment:
        raise HandoffError("comment: the comment is empty")
    at = now or dt.datetime.now(dt.UTC)
    con = _connect(Path(path), write=True)
    try:
        cur = con.execute(
            """INSERT INTO acks (site, blocker_id, order_id, what, actor, actor_name, acted_at, assignee, comment,
                                 expected_by, review_date, review_time)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [entry.site, entry.blocker_id, entry.order_id, entry.what, entry.actor, entry.actor_name or entry.actor,
             _utc(at), assignee, comment, _utc(entry.expected_by) if entry.expected_by else None,
             entry.review_date.isoformat() if entry.review_date else None, entry.review_time],
        )
        return int(cur.lastrowid)
    except sqlite3.Error as exc:
        raise HandoffError(f"{path}: could not record the {entry.what} ({exc})") from None
    finally:
        con.close()


def _latest(column: str, where: str) -> str:
    return (f"(SELECT {column} FROM acks x WHERE x.site = b.site AND x.blocker_id = b.blocker_id AND {where} "
            "ORDER BY x.ack_id DESC LIMIT 1)")


STATE = f"""
SELECT blocker_id, {_latest("actor_name", "what = 'acknowledge'")}, {_latest("acted_at", "what = 'acknowledge'")},
       {_latest("assignee", "assignee IS NOT NULL")}, {_latest("expected_by", "expected_by IS NOT NULL")},
       {_latest("comment", "comment IS NOT NULL")}, {_latest("actor_name", "comment IS NOT NULL")},
       count(*), max(acted_at)
FROM acks b WHERE site = ? {{only}} GROUP BY site, blocker_id
"""
STATE_COLUMNS = ["blocker_id", "acknowledged_by", "acknowledged_at", "assignee", "expected_by", "last_comment",
                 "last_comment_by", "n_entries", "last_at"]


@dataclass(frozen=True)
class AckState:
    """Where one blocker stands on the board: the latest acknowledgement, assignee, expected-by time and
    comment (each the latest entry that set it). Times are aware UTC datetimes."""

    blocker_id: str
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    assignee: str | None
    expected_by: dt.datetime | None
    last_comment: str | None
    last_comment_by: str | None
    n_entries: int
    last_at: dt.datetime | None

    def summary(self, tz: ZoneInfo, comment: bool = True, now: dt.datetime | None = None) -> str:
        """'acknowledged by J. Diaz 14:35, assigned to M. Chen, expected 15:10: "comment" (M. Chen)' in site
        time: the acknowledgement's date is added when it is not today (`now`), the expected time's when it is
        not the acknowledgement's day. Plain text: escape it to show."""
        if self.acknowledged_by:
            parts = [f"acknowledged by {self.acknowledged_by} {_local(self.acknowledged_at, tz, now)}"]
        else:
            parts = ["not acknowledged"]
        if self.assignee:
            parts.append(f"assigned to {self.assignee}")
        if self.expected_by:
            parts.append(f"expected {_local(self.expected_by, tz, self.acknowledged_at or self.last_at)}")
        text = ", ".join(parts)
        if comment and self.last_comment:
            text += f': "{self.last_comment}" ({self.last_comment_by})'
        return text


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _local(ts: dt.datetime | None, tz: ZoneInfo, ref: dt.datetime | None = None) -> str:
    if ts is None:
        return ""
    local = ts.astimezone(tz)
    base = (ref or dt.datetime.now(dt.UTC)).astimezone(tz)
    return f"{local:%H:%M}" if local.date() == base.date() else f"{local:%H:%M} ({local:%a %d %b})"


def states(path: str | Path, site: str, blocker_ids: Iterable[str] | None = None) -> dict[str, AckState]:
    """The state of every blocker of the site with an entry in the log (or of the given ones), by
    blocker_id; {} when there is no log yet. Readers never wait for a writer (WAL)."""
    ids = list(blocker_ids) if blocker_ids is not None else None
    if ids is not None and not ids:
        return {}
    try:
        con = _connect(Path(path), write=False)
    except FileNotFoundError:
        return {}
    try:
        only, params = "", [site]
        if ids is not None:
            con.execute("CREATE TEMP TABLE want (blocker_id TEXT PRIMARY KEY)")
            con.executemany("INSERT OR IGNORE INTO want VALUES (?)", [(i,) for i in ids])
            only = "AND blocker_id IN (SELECT blocker_id FROM want)"
        rows = con.execute(STATE.format(only=only), params).fetchall()
    except sqlite3.Error as exc:
        raise HandoffError(f"{path}: cannot read the acknowledgement log ({exc})") from None
    finally:
        con.close()
    out = {}
    for bid, by, at, assignee, expected, comment, comment_by, n, last in rows:
        out[bid] = AckState(bid, by, _ts(at), assignee, _ts(expected), comment, comment_by, int(n), _ts(last))
    return out


HISTORY_COLUMNS = ["acted_at", "what", "actor_name", "assignee", "expected_by", "comment", "review_date", "review_time"]


def history(path: str | Path, site: str, blocker_id: str) -> list[dict]:
    """Every entry on one blocker, oldest first (acted_at and expected_by as aware UTC datetimes)."""
    try:
        con = _connect(Path(path), write=False)
    except FileNotFoundError:
        return []
    try:
        rows = con.execute(f"SELECT {', '.join(HISTORY_COLUMNS)} FROM acks WHERE site = ? AND blocker_id = ? ORDER BY ack_id",
                           [site, blocker_id]).fetchall()
    finally:
        con.close()
    out = []
    for r in rows:
        d = dict(zip(HISTORY_COLUMNS, r))
        d["acted_at"], d["expected_by"] = _ts(d["acted_at"]), _ts(d["expected_by"])
        out.append(d)
    return out


def parse_expected(value: str, tz: ZoneInfo, now: dt.datetime | None = None) -> dt.datetime | None:
    """'15:10' (today, site time; tomorrow when that time has passed by more than 12 hours) or
    'YYYY-MM-DD HH:MM' (site time) as an aware datetime; None for an empty value."""
    text = (value or "").strip()
    if not text:
        return None
    now_local = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    try:
        if len(text) <= 5:
            t = dt.time.fromisoformat(text.zfill(5))
            at = dt.datetime.combine(now_local.date(), t, tzinfo=tz)
            if at < now_local - dt.timedelta(hours=12):
                at += dt.timedelta(days=1)
            return at
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise HandoffError(f"expected by '{text}': give a time as HH:MM (site time) or 'YYYY-MM-DD HH:MM'") from None
    return at.replace(tzinfo=tz) if at.tzinfo is None else at
