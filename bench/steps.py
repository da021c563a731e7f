"""One benchmark step in its own process: `python bench/steps.py STEP --data DIR --db IN --out OUT --result R.json`.

bench/run.py starts one child per step and measures its wall time and peak memory from outside. Each
step starts from a DuckDB file holding the previous step's output (run.py copies it to OUT first), so
the steps are independent processes:

    load       extracts -> OUT                 (load + validate: typed tables, rejects, load report)
    crosswalk  OUT after load -> OUT           (id index, xref, linked_*, join quality, order picture)
    analyse    OUT after crosswalk -> OUT      (cutoffs, states, blockers, promise, order board, summary)
    snapshot   OUT after analyse -> history    (write_snapshot into a fresh history database)
    suite      extracts -> history, OUT        (all of the above in one process: the suite's own compute)
    suite_file extracts -> OUT -> history      (the same, built straight into a DuckDB file: context)
    review     extracts -> review folder       (handoff_lib.publish.runs.run_review: papermill + HTML + history)
    notes      100,000 demo notes -> reasons   (handoff_lib.learn.notes, when it has a trained model)

The picture is built in memory, as pipeline.build_picture and a review run build it. A stage step
copies the previous stage's file into memory first and writes its picture back to OUT after (both
outside its timed work, reported as `copy_in_s` / `picture_file_s`); the suite writes its picture file
after the snapshot and reports that as `picture_file_s` too (a review run writes it in the background
while the report renders).

The child writes what it timed itself (seconds of work, without interpreter start and imports) to the
result file as JSON; a step that cannot run writes {"status": "n/a", "why": ...}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

SITE_FILE = REPO / "parameters" / "demo.yaml"
REVIEW_AT = "2026-11-24 14:30"
T = time.perf_counter


def _settings(data: str):
    from handoff_lib.load.settings import load_settings

    return load_settings(SITE_FILE, data_folder=data)


def _now(settings) -> dt.datetime:
    return dt.datetime.strptime(REVIEW_AT, "%Y-%m-%d %H:%M").replace(tzinfo=settings.tz)


def _timed_analyse(con, settings, now) -> dict[str, float]:
    """picture.analyse as it is, with each of its stages timed (wrapped in the picture module's namespace)."""
    from handoff_lib.publish import picture

    parts: dict[str, float] = {}
    names = ("prepare", "assign_cutoffs", "build_states", "build_blockers", "build_promise", "build_board", "summary")
    saved = {n: getattr(picture, n) for n in names}

    def wrap(name, fn):
        def timed(*a, **k):
            t0 = T()
            try:
                return fn(*a, **k)
            finally:
                parts[name] = round(parts.get(name, 0.0) + T() - t0, 3)

        return timed

    for n, fn in saved.items():
        setattr(picture, n, wrap(n, fn))
    try:
        picture.analyse(con, settings, now)
    finally:
        for n, fn in saved.items():
            setattr(picture, n, fn)
    return parts


def _counts(con, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def _from_file(s, path: str):
    """An in-memory picture holding the tables and views of the DuckDB file `path`."""
    from handoff_lib.db import connect

    con = connect(s)
    con.execute("ATTACH ? AS f (READ_ONLY)", [path])
    for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'f' AND NOT temporary").fetchall():
        con.execute(f'CREATE TABLE "{t}" AS SELECT * FROM f."{t}"')
    views = con.execute("SELECT sql FROM duckdb_views() WHERE database_name = 'f' AND NOT internal AND NOT temporary").fetchall()
    con.execute("DETACH f")
    for (sql,) in views:
        con.execute(sql)
    return con


def _stage_input(a):
    """(settings, in-memory picture of the previous stage's file, seconds the copy took)."""
    s = _settings(a.data)
    t = T()
    con = _from_file(s, a.out)
    return s, con, round(T() - t, 3)


def _save(con, path: str) -> float:
    from handoff_lib.db import save_picture

    t0 = T()
    Path(path).unlink(missing_ok=True)
    save_picture(con, path)
    return round(T() - t0, 3)


def step_load(a) -> dict:
    from handoff_lib.db import connect
    from handoff_lib.load.extracts import load_source
    from handoff_lib.load.validate import flag_events_out_of_order

    s = _settings(a.data)
    t0 = T()
    con = connect(s)
    parts = {}
    for entity in s.sources:
        t1 = T()
        load_source(con, s, entity, as_of=_now(s))
        parts[entity] = round(T() - t1, 3)
    t1 = T()
    from handoff_lib.join.asof import apply_as_of

    apply_as_of(con, s, _now(s))
    parts["as_of"] = round(T() - t1, 3)
    t1 = T()
    flag_events_out_of_order(con, s)
    parts["events_in_order"] = round(T() - t1, 3)
    seconds = round(T() - t0, 3)
    rows = int(con.execute("SELECT sum(rows_read) FROM load_report").fetchone()[0])
    rejected = int(con.execute("SELECT count(*) FROM rejects").fetchone()[0])
    saved = _save(con, a.out)
    return {"seconds": seconds, "parts": parts, "rows_read": rows, "rejected": rejected, "picture_file_s": saved}


def step_crosswalk(a) -> dict:
    from handoff_lib.join.identifiers import build_crosswalk, build_order_picture

    s, con, copy_in = _stage_input(a)
    t0 = T()
    build_crosswalk(con, s)
    t1 = T()
    build_order_picture(con)
    t2 = T()
    status = dict(con.execute("SELECT status, count(*) FROM xref GROUP BY 1").fetchall())
    parts = {"build_crosswalk": round(t1 - t0, 3), "build_order_picture": round(t2 - t1, 3)}
    saved = _save(con, a.out)
    return {
        "seconds": round(t2 - t0, 3),
        "parts": parts,
        "xref": {k: int(v) for k, v in status.items()},
        "copy_in_s": copy_in,
        "picture_file_s": saved,
    }


def step_analyse(a) -> dict:
    s, con, copy_in = _stage_input(a)
    t0 = T()
    parts = _timed_analyse(con, s, _now(s))
    seconds = round(T() - t0, 3)
    counts = _counts(con, ("order_states", "line_states", "blockers", "promise", "order_board"))
    saved = _save(con, a.out)
    return {"seconds": seconds, "parts": parts, "rows": counts, "copy_in_s": copy_in, "picture_file_s": saved}


def _snapshot(con, s, history: Path) -> None:
    from handoff_lib.history.snapshots import ReviewKey, write_snapshot

    if history.exists():
        history.unlink()
    at = _now(s)
    write_snapshot(con, history, ReviewKey.of(s.site, at), at, run_id="bench", data_folder=str(s.data_folder))


def step_snapshot(a) -> dict:
    s, con, copy_in = _stage_input(a)
    t0 = T()
    _snapshot(con, s, Path(a.history))
    seconds = round(T() - t0, 3)
    con.close()
    return {"seconds": seconds, "history_bytes": Path(a.history).stat().st_size, "copy_in_s": copy_in}


def _suite(a, con) -> dict:
    """Load (+ as of the review time, the events-in-order check) -> crosswalk -> order picture -> analyse ->
    snapshot in `con`: the steps of pipeline.build_picture, each timed."""
    from handoff_lib.join.asof import apply_as_of
    from handoff_lib.join.identifiers import build_crosswalk, build_order_picture
    from handoff_lib.load.extracts import load_extracts
    from handoff_lib.load.validate import flag_events_out_of_order

    s = _settings(a.data)
    parts = {}
    t0 = T()
    load_extracts(con, s, as_of=_now(s))
    apply_as_of(con, s, _now(s))
    flag_events_out_of_order(con, s)
    parts["load"] = round(T() - t0, 3)
    t1 = T()
    build_crosswalk(con, s)
    build_order_picture(con)
    parts["crosswalk"] = round(T() - t1, 3)
    t1 = T()
    sub = _timed_analyse(con, s, _now(s))
    parts["analyse"] = round(T() - t1, 3)
    t1 = T()
    _snapshot(con, s, Path(a.history))
    parts["snapshot"] = round(T() - t1, 3)
    return {"seconds": round(T() - t0, 3), "parts": parts, "analyse_parts": sub}


def step_suite(a) -> dict:
    """The suite's own compute in one process, the picture in memory as pipeline.build_picture and a
    review run keep it; then the picture file (not part of `seconds`: a review writes it in the
    background while its report renders)."""
    from handoff_lib.db import connect

    s = _settings(a.data)
    con = connect(s)
    res = _suite(a, con)
    res["picture_file_s"] = _save(con, a.out)
    return res


def step_suite_file(a) -> dict:
    """The same compute built straight into a DuckDB file (how review runs kept the picture before): what
    writing every intermediate table to disk costs."""
    from handoff_lib.db import connect

    s = _settings(a.data)
    Path(a.out).unlink(missing_ok=True)
    t0 = T()
    con = connect(s, a.out)
    res = _suite(a, con)
    con.execute("CHECKPOINT")
    res["seconds"] = round(T() - t0, 3)
    con.close()
    return res


def step_review(a) -> dict:
    from handoff_lib.publish.runs import run_review

    s = _settings(a.data)
    out = Path(a.out)
    t0 = T()
    res = run_review(s, _now(s), history=out / "history.duckdb", out_root=out / "outputs", progress=False)
    return {
        "seconds": round(T() - t0, 3),
        "parts": {k: round(v, 3) for k, v in res.timings.items()},
        "output_mb": {n: round(f.stat().st_size / 1e6, 1) for n, f in res.files.items() if f.stat().st_size > 1e6},
        "folder": str(res.out_dir),
    }


def _demo_notes(data: str, n: int) -> list[str]:
    """n free-text notes as the demo day's systems wrote them (hold, pick, pack notes and case texts),
    cycled when the day has fewer."""
    import duckdb

    d = Path(data)
    parts = [
        ("wms_holds.csv", "HOLD_NOTE"),
        ("wms_pack_events.csv", "PACK_NOTE"),
        ("wms_pick_tasks.csv", "PICK_NOTE"),
        ("crm_cases.csv", "Description"),
    ]
    con = duckdb.connect()
    texts: list[str] = []
    for file, col in parts:
        if (d / file).exists():
            texts += [
                r[0]
                for r in con.execute(
                    f'SELECT "{col}" FROM read_csv(?, all_varchar = true, header = true) WHERE trim("{col}") <> \'\'',
                    [str(d / file)],
                ).fetchall()
            ]
    if not texts:
        return []
    return [texts[i % len(texts)] for i in range(n)]


def step_notes(a) -> dict:
    try:
        from handoff_lib.learn import notes
    except ImportError as exc:
        return {"status": "n/a", "why": f"handoff_lib.learn.notes not importable ({exc})"}
    if not hasattr(notes, "classify_notes"):
        return {"status": "n/a", "why": "handoff_lib.learn.notes has no classify_notes"}
    import dataclasses

    from handoff_lib.learn.taxonomy import notes_settings
    from handoff_lib.load.settings import load_settings

    site = notes_settings(load_settings(Path(__file__).resolve().parents[1] / "parameters" / "demo.yaml"))
    t0 = T()
    trained = False
    try:
        model = notes.load_model(site)
        source = "the demo site's trained model"
    except notes.ModelError:
        try:  # no trained model yet: train one on the demo site's labelled notes into the bench cache
            model, _ = notes.train(dataclasses.replace(site, model=Path(a.out) / "notes_model.joblib"))
        except Exception as exc:  # noqa: BLE001 - whatever keeps training from working, report it
            return {"status": "n/a", "why": f"no trained notes model and training failed: {type(exc).__name__}: {exc}"}
        source = f"trained by the bench on the shipped labelled notes ({model.meta.get('n_examples')} notes)"
        trained = True
    t_model = T() - t0
    texts = _demo_notes(a.data, a.notes)
    if not texts:
        return {"status": "n/a", "why": f"no notes in {a.data}"}
    t1 = T()
    res = notes.classify_notes(model, texts, progress=False)
    t_cls = T() - t1
    return {
        "seconds": round(t_cls, 3),
        "parts": {("train" if trained else "load_model"): round(t_model, 3), "classify": round(t_cls, 3)},
        "notes": len(texts),
        "distinct_notes": len(set(texts)),
        "notes_per_s": round(len(texts) / t_cls),
        "needs_review_pct": round(100 * float((res["status"] == "needs_review").mean()), 1),
        "model": source,
    }


STEPS = {
    "load": step_load,
    "crosswalk": step_crosswalk,
    "analyse": step_analyse,
    "snapshot": step_snapshot,
    "suite": step_suite,
    "suite_file": step_suite_file,
    "review": step_review,
    "notes": step_notes,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=list(STEPS))
    ap.add_argument("--data", required=True, help="folder of the demo day's extracts")
    ap.add_argument("--out", required=True, help="DuckDB file (or folder, for review and notes) the step works in")
    ap.add_argument("--history", default="", help="history database the snapshot goes to")
    ap.add_argument("--notes", type=int, default=100_000, help="notes to classify")
    ap.add_argument("--result", required=True, help="JSON file for the step's own figures")
    a = ap.parse_args()
    res = STEPS[a.step](a)
    res.setdefault("status", "ok")
    Path(a.result).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
