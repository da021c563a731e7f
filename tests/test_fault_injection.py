"""Fault injection: one bad value at a time into every field of every source of a demo day.

The faults real exports carry: a Windows-1252 byte in UTF-8 text, a word where a number or time belongs,
an unmapped code, a blank required value, a blank key, a milestone stamped minutes before the one it
follows (clock skew between two systems). After injecting them the picture must still hold every order,
every open hold and every hand-off it held before (a fault loses the VALUE, never the record it belongs
to), and every fault must be reported where it happened: in `rejects`, with its file, line and column.
Only a blank key is allowed to reject its record (its identity cannot be read); that too is reported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import make_site

from handoff_lib.db import connect
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.extracts import identity_fields
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

PER_FIELD = 2  # rows hit per field of each source (a small share of every column: nothing systemic)
SEED = 20261124
MARK = "\u0000CP1252\u0000"  # replaced by a raw 0xE9 byte once the text is written as UTF-8
SKEW = {  # the later milestone stamped a few minutes before the earlier one it follows
    "shipments": ("handed_off_at", "manifested_at", 4),
    "holds": ("released_at", "placed_at", 3),
    "orders": ("released_at", "ordered_at", 5),
}


@dataclass(frozen=True)
class Fault:
    source: str
    file: str
    line: int  # physical line in the file (header = 1)
    column: str
    field: str
    kind: str  # bad bytes | wrong type | unmapped code | blank | blank key | clock skew
    raw: str


def fault_value(field, value: str, rng: random.Random) -> tuple[str, str] | None:
    """(kind, bad value) for one field, or None when nothing of that type can be wrong."""
    if field.type in ("id", "text"):
        if not value:
            return None
        cut = rng.randrange(len(value) + 1)
        return "bad bytes", value[:cut] + MARK + value[cut:]
    if field.type in ("int", "decimal"):
        return "wrong type", rng.choice(["abc", "1O", "n/a", "12,5"])
    if field.type == "bool":
        return "wrong type", "maybe"
    if field.type == "timestamp":
        return "wrong type", rng.choice(["yesterday 8am", "2026-02-30 10:00", "25:99"])
    if field.type == "date":
        return "wrong type", "2026-13-45"
    if field.type == "enum":
        return "unmapped code", "ZZ-UNKNOWN"
    return None


def _pick(rng: random.Random, n: int, used: set[int]) -> int | None:
    """A row not hit yet (one fault per row, so each is reported on its own)."""
    free = [i for i in range(n) if i not in used]
    if not free:
        return None
    i = rng.choice(free)
    used.add(i)
    return i


def inject(data: Path, settings, rng: random.Random) -> list[Fault]:
    """Write faults into the extracts under `data`; returns every fault with where it is."""
    faults: list[Fault] = []
    for entity, spec in settings.sources.items():
        if spec.file is None:
            continue
        path = data / spec.file
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        header, body = rows[0], rows[1:]
        if len(body) < 10:
            continue
        ent = ENTITIES[entity]
        used: set[int] = set()
        keys = set(identity_fields(ent))

        for f in ent.fields:
            column = spec.columns.get(f.name)
            if column not in header:
                continue
            c = header.index(column)
            for _ in range(PER_FIELD):
                i = _pick(rng, len(body), used)
                if i is None:
                    break
                value = body[i][c]
                made = fault_value(f, value, rng)
                if f.required and rng.random() < 0.35:  # a blank required value (a blank key rejects its record)
                    made = ("blank key" if f.name in keys else "blank", "")
                if made is None:
                    continue
                kind, bad = made
                body[i][c] = bad
                faults.append(Fault(entity, spec.file, i + 2, column, f.name, kind, bad))
        if entity in SKEW:  # milestones a few minutes out of order, as two systems' clocks drift
            later, earlier, minutes = SKEW[entity]
            lc, ec = header.index(spec.columns[later]), header.index(spec.columns[earlier])
            candidates = [i for i in range(len(body)) if i not in used and body[i][lc] and body[i][ec]]
            for i in rng.sample(candidates, min(PER_FIELD, len(candidates))):
                used.add(i)
                when = dt.datetime.fromisoformat(body[i][ec]) - dt.timedelta(minutes=minutes)
                body[i][lc] = when.isoformat(sep=" ")  # with its zone, as the export wrote the other one
                faults.append(Fault(entity, spec.file, i + 2, spec.columns[later], later, "clock skew", body[i][lc]))
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\n").writerows([header, *body])
        path.write_bytes(out.getvalue().encode("utf-8").replace(MARK.encode("utf-8"), b"\xe9"))
    return faults


def facts(con) -> dict[str, set]:
    """What must never disappear: orders (on the board), open holds, hand-offs, each known by where it is in
    its file (a bad byte inside an id changes the id, not the record)."""
    return {
        "orders": {r[0] for r in con.execute(
            "SELECT o._line FROM order_board b JOIN orders o USING (order_id)").fetchall()},
        "open holds": {r[0] for r in con.execute("SELECT _line FROM holds WHERE released_at IS NULL").fetchall()},
        "hand-offs": {r[0] for r in con.execute("SELECT _line FROM shipments WHERE handed_off_at IS NOT NULL").fetchall()},
    }


@pytest.fixture(scope="module")
def injected(tmp_path_factory, demo_day):
    tmp = tmp_path_factory.mktemp("faults")
    clean_data, bad_data = tmp / "clean", tmp / "bad"
    shutil.copytree(demo_day / "1600", clean_data)
    shutil.copytree(demo_day / "1600", bad_data)
    (tmp / "c").mkdir()
    (tmp / "b").mkdir()
    clean_settings = load_settings(make_site(tmp / "c", clean_data))
    bad_settings = load_settings(make_site(tmp / "b", bad_data))
    now = dt.datetime(2026, 11, 24, 16, 0, tzinfo=clean_settings.tz)
    clean = build_picture(clean_settings, now=now, con=connect(clean_settings))
    faults = inject(bad_data, bad_settings, random.Random(SEED))
    bad = build_picture(bad_settings, now=now, con=connect(bad_settings))
    return clean, bad, faults


def test_faults_are_injected_into_every_source_and_every_kind(injected):
    _, _, faults = injected
    assert len(faults) >= 100
    assert {f.source for f in faults} >= {"orders", "order_lines", "inventory", "pick_tasks", "pack_events", "holds", "shipments"}
    assert {f.kind for f in faults} >= {"bad bytes", "wrong type", "unmapped code", "blank", "blank key", "clock skew"}


def test_no_order_open_hold_or_hand_off_disappears(injected):
    clean, bad, faults = injected
    blank_keys = {  # identity unreadable: rejected, reported
        (f.source, f.line) for f in faults if f.kind != "bad bytes" and f.field in identity_fields(ENTITIES[f.source])
    }
    bad_handoff_times = {f.line for f in faults if f.source == "shipments" and f.field == "handed_off_at" and f.kind != "clock skew"}
    before, after = facts(clean), facts(bad)
    lost = {
        "orders": {line for line in before["orders"] - after["orders"] if ("orders", line) not in blank_keys},
        "open holds": {line for line in before["open holds"] - after["open holds"] if ("holds", line) not in blank_keys},
        # a bad hand-off time loses that value (reported); the shipment is still there
        "hand-offs": {
            line for line in before["hand-offs"] - after["hand-offs"]
            if ("shipments", line) not in blank_keys and line not in bad_handoff_times
        },
    }
    print({k: len(v) for k, v in before.items()}, "lost:", {k: len(v) for k, v in lost.items()}, "faults:", len(faults))
    assert lost == {"orders": set(), "open holds": set(), "hand-offs": set()}


def test_every_fault_is_reported_on_its_file_line_and_column(injected):
    _, bad, faults = injected
    reported = {(r[0], int(r[1]), r[2]) for r in bad.execute('SELECT file, line, "column" FROM rejects').fetchall()}
    # a fault on a row the clean export already repeats (the demo exports a few duplicates) turns an exact duplicate
    # into a conflicting one: reported on that line as the duplicate it is
    dup_rows = {(r[0], int(r[1])) for r in bad.execute(
        "SELECT file, line FROM rejects WHERE action = 'row' AND reason LIKE '%duplicate%'").fetchall()}
    faults = [f for f in faults if (f.file, f.line) not in dup_rows]
    missing = [f for f in faults if (f.file, f.line, f.column) not in reported]
    assert not missing, missing[:10]
    actions = {
        (r[0], int(r[1]), r[2]): r[3] for r in bad.execute('SELECT file, line, "column", action FROM rejects').fetchall()
    }
    for f in faults:
        expected = {"blank key": "row", "bad bytes": "flag", "clock skew": "flag"}.get(f.kind, "value")
        if f.field in identity_fields(ENTITIES[f.source]) and f.kind != "bad bytes":
            expected = "row"  # a key that cannot be read: the record's identity is lost
        assert actions[(f.file, f.line, f.column)] == expected, f


def test_rows_read_equal_rows_accepted_plus_rejected_and_only_unreadable_keys_reject_a_record(injected):
    _, bad, faults = injected
    for source, read, accepted, rejected, other in bad.execute(
        "SELECT source, rows_read, rows_accepted, rows_rejected, rows_other_entity FROM load_report"
    ).fetchall():
        assert read == accepted + rejected + other
        unreadable = [f for f in faults if f.source == source and f.kind != "bad bytes" and f.field in identity_fields(ENTITIES[source])]
        duplicates = bad.execute(
            "SELECT count(*) FROM rejects WHERE source = ? AND action = 'row' AND reason LIKE '%duplicate%'", [source]
        ).fetchone()[0]
        assert rejected == len(unreadable) + duplicates, source


def test_every_order_keeps_a_state_a_promise_and_readable_reasons(injected):
    _, bad, _ = injected
    holes = bad.execute(
        """SELECT order_id, state, state_reason, promise_status, promise_reason FROM order_board
           WHERE state IS NULL OR state_reason IS NULL OR promise_status IS NULL OR promise_reason IS NULL"""
    ).fetchall()
    assert holes == []
    assert bad.execute("SELECT count(*) FROM blockers WHERE detail IS NULL OR reason_label IS NULL").fetchone()[0] == 0


def test_the_data_banner_names_each_damaged_source_as_a_warning(injected):
    from handoff_lib.load.validate import data_warnings

    _, bad, faults = injected
    warned = {d["source"]: d["severity"] for d in data_warnings(bad)}
    for source in {f.source for f in faults if f.kind not in ("bad bytes", "clock skew")}:
        assert warned.get(source) == "warning", (source, warned)
