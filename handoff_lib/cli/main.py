"""The `handoff` command: thin, calls the library modules."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from handoff_lib.errors import HandoffError, LookupNotFound, StaleExtractError
from handoff_lib.load.settings import load_settings

DEFAULT_SITE = "parameters/demo.yaml"
DEMO_MEETING = "14:30"  # the demo review the cutoff meeting uses (make demo names its report)
DEMO_DATE = "2026-11-24"


def parse_at(value: str, settings, default_date: str | None = None) -> dt.datetime:
    """'2026-11-24 14:30' (or just '14:30' with a default date) as an aware site-local datetime."""
    text = value.strip()
    try:
        if len(text) <= 5 and default_date:
            text = f"{default_date} {text}"
        naive = dt.datetime.fromisoformat(text)
    except ValueError:
        raise HandoffError(f"--at '{value}': expected 'YYYY-MM-DD HH:MM' in site local time ({settings.timezone})") from None
    if naive.tzinfo is not None:
        return naive.astimezone(settings.tz)
    return naive.replace(tzinfo=settings.tz)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from handoff_lib.load.demo import generate

    at = [a.strip() for a in args.at.split(",") if a.strip()]
    t0 = time.perf_counter()
    summary = generate(orders=args.orders, seed=args.seed, out=args.out, date=args.date, at=at, site_file=args.site)
    print(f"demo data: {args.orders} orders, seed {args.seed}, day {args.date}, as of {', '.join(at)}")
    print(f"  extracts written to {Path(args.out).resolve()}  ({time.perf_counter() - t0:.1f} s)")
    print(f"  ground truth in {(Path(args.out) / 'truth').resolve()}")
    if isinstance(summary, dict) and summary.get("rows"):
        rows = summary["rows"]
        print(f"  {len(rows)} files, {sum(rows.values())} rows (per-file counts in the returned summary)")
    return 0


def _settings(args: argparse.Namespace, at: str | None = None):
    """The site settings; with a review time, the data folder is the one for that review."""
    settings = load_settings(args.site, data_folder=getattr(args, "data", None))
    if at is not None:
        return settings.for_review(parse_at(at, settings, DEMO_DATE))
    if settings.data_is_template:
        raise HandoffError(
            f"{settings.where('data', 'folder')}: data.folder has {{date}}/{{time}} placeholders: give --at (the review time) or --data"
        )
    return settings.with_files_resolved()


def cmd_picture(args: argparse.Namespace) -> int:
    """Load + link one moment's extracts and write the joined picture and the join-quality report."""
    from handoff_lib.join.linked import write_foundation_outputs
    from handoff_lib.publish.pipeline import build_picture, trained_note_model

    settings = _settings(args, args.at)
    now = parse_at(args.at, settings, DEMO_DATE) if args.at else None
    t0 = time.perf_counter()
    con = build_picture(settings, now=now, progress=not args.quiet, note_model=trained_note_model(settings) if now else None)
    stamp = now.strftime("%Y-%m-%d/%H%M") if now else "latest"
    out = Path(args.out) if args.out else settings.outputs / settings.site / stamp
    written = write_foundation_outputs(con, out)
    load = con.execute(
        "SELECT sum(rows_read), sum(rows_accepted), sum(rows_rejected), sum(rows_other_entity) FROM load_report"
    ).fetchone()
    other = f", {load[3]} belong to other entities of a shared file" if load[3] else ""
    print(f"{settings.name}: read {load[0]} rows, accepted {load[1]}, rejected {load[2]}{other} ({time.perf_counter() - t0:.1f} s)")
    for status, n in con.execute("SELECT status, count(*) FROM xref GROUP BY 1 ORDER BY 1").fetchall():
        print(f"  links {status}: {n}")
    for line in picture_summary(con):
        print(line)
    print(f"outputs written to {out.resolve()}")
    for name, path in written.items():
        print(f"  {name}: {path.name}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Draft a site file for a folder of extracts (docs/extracts.md, "Your own site in three steps")."""
    from handoff_lib.join.inspect import draft_site

    out = Path(args.out) if args.out else Path("site.yaml")
    if out.exists() and not args.force:
        raise HandoffError(f"{out}: exists; give another --out, or --force to overwrite it")
    draft = draft_site(args.folder, out, timezone=args.timezone, progress=not args.quiet)
    found = ", ".join(f"{e} <- {sd.extract.path.name}" for e, sd in draft.sources.items() if sd.extract is not None)
    print(f"{len(draft.sources)} sources found: {found}")
    if draft.left_out:
        print(f"  left out: {'; '.join(draft.left_out)}")
    print(f"  {len(draft.todos)} TODO(s): {', '.join(draft.todos) or 'none'}")
    print(f"draft site file written to {out.resolve()}")
    print(f"next: fix the TODOs, then  handoff picture --site {out}   (join quality and rejects per column), then handoff run")
    return 0


def picture_summary(con) -> list[str]:
    """Join quality per source and method, and the rejects per column with their commonest reason: what a new
    site fixes in its draft site file (docs/extracts.md, "Your own site in three steps")."""
    out = ["join quality (records per source: linked by method, ambiguous, unmatched):"]
    rows = con.execute(
        "SELECT source, status, method, records, share_pct, examples FROM join_quality ORDER BY source, status, records DESC"
    ).fetchall()
    for source, status, method, n, share, examples in rows:
        how = f"{status} {method}".strip() if method else status
        first = (examples or "").split("; ")[0]
        out.append(f"  {source:<12} {how:<44} {n:>7} ({share:5.1f} %)" + (f"   e.g. {first}" if status != "linked" and first else ""))
    cols = con.execute(
        """SELECT c.source, c."column", c.values_nulled, c.values_flagged, c.share_pct, c.top_reason, r.rows_read
           FROM load_columns c JOIN load_report r USING (source)
           WHERE c.values_nulled + c.values_flagged > 0 ORDER BY c.share_pct DESC, c.source, c."column" """
    ).fetchall()
    whole = con.execute(
        "SELECT source, \"column\", count(*), mode(reason) FROM rejects WHERE action = 'row' GROUP BY ALL ORDER BY 3 DESC"
    ).fetchall()
    if not cols and not whole:
        out.append("rejects per column: none")
        return out
    out.append("rejects per column (values nulled / flagged, share of the rows read, commonest reason):")
    for source, column, nulled, flagged, share, reason, _ in cols:
        out.append(f"  {source}.{column}: {nulled} nulled, {flagged} flagged ({share:.1f} %): {reason}")
    for source, column, n, reason in whole:
        out.append(f"  {source}.{column}: {n} rows rejected whole: {reason}")
    return out


def cmd_lookup(args: argparse.Namespace) -> int:
    from handoff_lib.join.lookup import find_orders, format_view, order_view
    from handoff_lib.publish.pipeline import build_picture, trained_note_model

    settings = _settings(args, args.at)
    now = parse_at(args.at, settings, DEMO_DATE) if args.at else None
    con = build_picture(settings, now=now, note_model=trained_note_model(settings) if now else None)
    matches = find_orders(con, settings, args.identifier)
    if not matches:
        raise LookupNotFound(f"'{args.identifier}' matches no order in {settings.data_folder}")
    if len(matches) > 1:
        print(f"'{args.identifier}' is ambiguous: it matches {len(matches)} orders")
    for m in matches:
        print(format_view(order_view(con, m.order_id), m))
        print()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """One cutoff review: papermill + HTML report + exports + manifest + history snapshot."""
    from handoff_lib.publish.runs import run_review

    settings = load_settings(args.site, data_folder=args.data)
    at = parse_at(args.at, settings)
    t0 = time.perf_counter()
    result = run_review(settings, at, history=Path(args.history) if args.history else None,
                        out_root=Path(args.outputs) if args.outputs else None, progress=not args.quiet,
                        allow_stale=args.allow_stale)
    print(f"{settings.name}: cutoff review {at:%Y-%m-%d %H:%M} done in {time.perf_counter() - t0:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in result.timings.items())})")
    s = result.summary
    if s:
        print(f"  orders {s.get('orders', 0)}, open blockers {s.get('blockers', 0)}, at risk {s.get('promise.at_risk', 0)}, "
              f"needs communication {s.get('promise.needs_communication', 0)}")
    for line in result.stale:
        print(f"  STALE: {line}")
    _print_notify(result)
    print(f"outputs written to {result.out_dir.resolve()}")
    for name in result.files:
        print(f"  {name}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    """Run every review time of the site that is due and not yet run (for cron / systemd timers)."""
    from handoff_lib.publish.runs import schedule

    settings = load_settings(args.site)
    now = parse_at(args.now, settings) if args.now else dt.datetime.now(settings.tz)
    if not settings.review_times:
        raise HandoffError(f"{settings.where('reviews')}: no review times configured (reviews: times: [\"09:00\", ...])")
    done = schedule(settings, now, history=Path(args.history) if args.history else None,
                    out_root=Path(args.outputs) if args.outputs else None, days_back=args.days_back,
                    progress=not args.quiet, allow_stale=args.allow_stale)
    _print_deliveries(done.retried)
    for at in done.skipped:
        print(f"  {at:%Y-%m-%d %H:%M} already run: skipped")
    for r in done.results:
        s = r.summary
        print(f"  {r.out_dir.parent.name} {r.out_dir.name}: orders {s.get('orders', 0)}, open blockers {s.get('blockers', 0)}, "
              f"at risk {s.get('promise.at_risk', 0)} -> {r.out_dir.resolve()}")
        for line in r.stale:
            print(f"    STALE: {line}")
        _print_notify(r, "    ")
    for at, why in done.not_run:
        print(f"  {at:%Y-%m-%d %H:%M} not run: no extracts for {at:%Y-%m-%d %H:%M} ({why})")
    if done.stale:
        print(f"  {done.stale[0]:%Y-%m-%d %H:%M} not run: its extracts are of an earlier day (below)")
    if not done.results:
        print(f"{settings.name}: no review run at {now:%Y-%m-%d %H:%M}" if done.not_run or done.stale
              else f"{settings.name}: no review due at {now:%Y-%m-%d %H:%M}")
    else:
        print(f"{settings.name}: {len(done.results)} review(s) run; outputs written under "
              f"{done.results[-1].out_dir.parent.parent.resolve()}")
    if done.stale:  # the current review found an earlier day's extracts: an error (exit 2), as for handoff run
        raise StaleExtractError(done.stale[1])
    return 0


def _print_notify(result, indent: str = "  ") -> None:
    """What the run's notify step did (manifest.json's notify entry)."""
    import json

    path = result.out_dir / "manifest.json"
    entry = json.loads(path.read_text(encoding="utf-8")).get("notify") if path.exists() else None
    if not entry:
        return
    if "error" in entry:
        print(f"{indent}owner queues: not delivered ({entry['error']})")
        return
    sent = sum(d["status"] == "sent" for d in entry["deliveries"])
    print(f"{indent}owner queues: {entry['owners']} in {result.out_dir / entry['folder']}, {sent} sent, {entry['failed']} failed"
          + (", held back (stale)" if entry.get("held_back") else ""))


def _print_deliveries(deliveries, indent: str = "  ") -> None:
    for d in deliveries:
        extra = f" ({d.error})" if d.error else (f", {d.bytes:,} bytes" if d.bytes else "")
        print(f"{indent}{d.owner} by {d.channel} to {d.target}: {d.status}{extra}")


def cmd_notify(args: argparse.Namespace) -> int:
    """Each owner team's queue of one stored review: write its files and send what has not been sent (docs/notify.md);
    without --at, send again what failed after recent reviews."""
    from handoff_lib.history.snapshots import stale_sources
    from handoff_lib.load.freshness import freshness_settings, stale_lines
    from handoff_lib.publish.notify import FOLDER, build_files, deliver, note, notify_settings, retry_failed
    from handoff_lib.publish.runs import _update_notify_manifest, default_history, review_dir, site_lock

    settings = load_settings(args.site)
    notify_settings(settings)  # a bad notify: block fails here, naming the line
    history = Path(args.history) if args.history else default_history(settings, Path(args.outputs) if args.outputs else None)
    out_root = Path(args.outputs) if args.outputs else None
    if not args.at:
        now = dt.datetime.now(settings.tz)
        with site_lock(review_dir(settings, now, out_root).parent.parent / ".run.lock"):
            tried = retry_failed(settings, history, now)
        _print_deliveries(tried)
        print(f"{settings.name}: {len(tried)} failed deliver{'y' if len(tried) == 1 else 'ies'} tried again")
        return 1 if any(d.status == "failed" for d in tried) else 0
    at = parse_at(args.at, settings)
    folder = review_dir(settings, at, out_root)
    if not (folder / "picture.duckdb").exists():
        raise HandoffError(f"{folder}: no stored review at {at:%Y-%m-%d %H:%M} (run it first: handoff run --at ...)")
    stale = stale_lines(stale_sources(history, settings.site, at.date(), at.strftime("%H%M")), settings, at) if history.exists() else []
    held = bool(stale) and freshness_settings(settings).on_stale == "hold"
    with site_lock(folder.parent.parent / ".run.lock"):
        index = build_files(settings, history, folder, at, stale)
        deliveries = [] if args.files_only else deliver(settings, history, folder / FOLDER, at, held=held)
        _update_notify_manifest(folder, note(index, deliveries, held))
    for info in index.values():
        print(f"  {info['subject']}")
    _print_deliveries(deliveries)
    print(f"owner queues written to {(folder / FOLDER).resolve()}")
    return 1 if any(d.status == "failed" for d in deliveries) else 0


def _ensure_notes_model(settings) -> None:
    """Train the site's notes model (notes.model) on its labelled notes when it is missing or stale
    (`handoff demo` does this for the demo site); nothing when the site has no model (rules only)."""
    from handoff_lib.learn.notes import ModelError, load_model
    from handoff_lib.learn.taxonomy import notes_settings

    from .notes import notes_main

    site = notes_settings(settings)
    if site.model is None:
        return
    try:
        load_model(site)
        return
    except ModelError as exc:  # missing, stale or of another site: train this site's own below
        why = str(exc)
    print(f"training the site's blocker-notes model (handoff notes train --site {settings.path}): {why.split(';')[0]}")
    if notes_main(["train", "--site", str(settings.path)]) != 0:
        raise HandoffError("training the notes model failed (see above)")


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on built-in demo data: write a demo day as of each review time of the demo
    site, then run the day's cutoff reviews in order (so each compares with the one before)."""
    settings = load_settings(args.site)
    _ensure_notes_model(settings)
    times = ",".join(t.strftime("%H:%M") for t in settings.review_times)
    data = (
        Path(args.out_data)
        if args.out_data
        else (settings.data_folder.parent if settings.data_is_template else settings.data_folder)
    )
    cmd_demo_data(argparse.Namespace(orders=args.orders, seed=args.seed, out=str(data), date=DEMO_DATE, at=times, site=args.site))
    history = settings.outputs / settings.site / "history.duckdb"
    if history.exists():  # the demo day is regenerated: start its history afresh
        history.unlink()
    last = settings.review_times[-1]
    now = f"{DEMO_DATE} {(dt.datetime.combine(dt.date.today(), last) + dt.timedelta(minutes=5)):%H:%M}"
    code = cmd_schedule(argparse.Namespace(site=args.site, data=None, now=now, history=None, outputs=None, days_back=0,
                                           quiet=False, allow_stale=False))
    if code == 0:
        from .notes import themes_main

        code = themes_main(["export", "--site", str(args.site)])
    if code == 0:
        report = settings.outputs / settings.site / DEMO_DATE / DEMO_MEETING.replace(":", "") / "cutoff_review.html"
        print(f"\nThe {DEMO_MEETING} cutoff meeting's report: {report.resolve()}")
        exe = Path(sys.argv[0]) if sys.argv and Path(sys.argv[0]).is_file() else Path("handoff")
        exe_text = os.path.relpath(exe) if exe.is_absolute() and not os.path.relpath(exe).startswith("..") else str(exe)
        print(f"Open the board: {exe_text} board --site {args.site}   (then http://127.0.0.1:8866/)")
    return code


def cmd_preset(args: argparse.Namespace) -> int:
    from handoff_lib.load.presets import list_presets, preset_text

    if args.action == "list":
        for p in list_presets():
            print(f"{p.name:<22} {p.title}")
            print(f"{'':<22} maps: {', '.join(p.entities)}; follows: {p.follows[0] if p.follows else '-'}")
        print(
            "\nhandoff preset show NAME prints one; copy its entries under sources: into your site file's sources: (and set file:)"
        )
        return 0
    if not args.name:
        raise HandoffError("handoff preset show NAME: which preset? (handoff preset list)")
    sys.stdout.write(preset_text(args.name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="handoff", description="The pick-pack handoff picture across OMS, WMS, carrier and CRM extracts."
    )
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo-data", help="write a realistic demo day of extracts (and its ground truth)")
    d.add_argument("--orders", type=int, default=10_000)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--out", required=True, help="folder for the extracts")
    d.add_argument("--date", default=DEMO_DATE, help="the demo day (YYYY-MM-DD)")
    d.add_argument("--at", default="14:30", help="review time(s) the extracts are as of, e.g. 09:00,12:00,16:00")
    d.add_argument("--site", default=DEFAULT_SITE)
    d.set_defaults(func=cmd_demo_data)

    pc = sub.add_parser("picture", help="load and link one set of extracts; write the joined picture and join quality")
    pc.add_argument("--site", default=DEFAULT_SITE)
    pc.add_argument("--data", help="extracts folder (default: the site file's data.folder)")
    pc.add_argument("--at", help="review time, 'YYYY-MM-DD HH:MM' site local (adds states, blockers, promise)")
    pc.add_argument("--out", help="output folder (default: outputs/<site>/<date>/<HHMM>)")
    pc.add_argument("--quiet", action="store_true")
    pc.set_defaults(func=cmd_picture)

    ins = sub.add_parser("inspect", help="read a folder of extracts and write a draft site file, commented line by line")
    ins.add_argument("folder", help="the folder of extracts (CSV, XLSX, Parquet)")
    ins.add_argument("--out", help="the draft site file to write (default: site.yaml)")
    ins.add_argument("--timezone", help="the site's IANA timezone (else a TODO in the draft)")
    ins.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    ins.add_argument("--quiet", action="store_true", help="no progress bars")
    ins.set_defaults(func=cmd_inspect)

    lk = sub.add_parser("lookup", help="find an order by any identifier and show every linked record")
    lk.add_argument("identifier")
    lk.add_argument("--site", default=DEFAULT_SITE)
    lk.add_argument("--data")
    lk.add_argument("--at", help="review time for state/blockers/promise, 'YYYY-MM-DD HH:MM'")
    lk.set_defaults(func=cmd_lookup)

    rn = sub.add_parser("run", help="run one cutoff review (papermill notebook, HTML report, exports, history)")
    rn.add_argument("--site", default=DEFAULT_SITE)
    rn.add_argument("--at", required=True, help="review time, 'YYYY-MM-DD HH:MM' site local")
    rn.add_argument("--data", help="extracts folder (default: the site file's data.folder)")
    rn.add_argument("--history", help="history database (default: outputs/<site>/history.duckdb)")
    rn.add_argument("--outputs", help="outputs root (default: the site file's outputs)")
    rn.add_argument("--quiet", action="store_true", help="no progress bar")
    rn.add_argument("--allow-stale", action="store_true",
                    help="review extracts of an earlier operating day anyway (stored marked stale) instead of stopping")
    rn.set_defaults(func=cmd_run)

    sc = sub.add_parser("schedule", help="run every configured review that is due and not yet run (cron)")
    sc.add_argument("--site", default=DEFAULT_SITE)
    sc.add_argument("--now", help="pretend it is this time, 'YYYY-MM-DD HH:MM' site local (default: now)")
    sc.add_argument("--days-back", type=int, default=1, help="also catch up missed reviews of this many earlier days")
    sc.add_argument("--history")
    sc.add_argument("--outputs")
    sc.add_argument("--quiet", action="store_true")
    sc.add_argument("--allow-stale", action="store_true",
                    help="run the current review on extracts of an earlier operating day anyway, marked stale (past reviews never are)")
    sc.set_defaults(func=cmd_schedule)

    nf = sub.add_parser("notify", help="each owner team's queue of a review: write its files, send e-mail/webhooks once")
    nf.add_argument("--site", default=DEFAULT_SITE)
    nf.add_argument("--at", help="the stored review, 'YYYY-MM-DD HH:MM' site local (default: retry failed deliveries)")
    nf.add_argument("--history")
    nf.add_argument("--outputs")
    nf.add_argument("--files-only", action="store_true", help="write the owner files, send nothing")
    nf.set_defaults(func=cmd_notify)

    from .notes import notes_main, themes_main

    nt = sub.add_parser("notes", help="blocker-notes classifier: train | evaluate | classify", add_help=False)
    nt.add_argument("rest", nargs=argparse.REMAINDER)
    nt.set_defaults(func=lambda a: notes_main(a.rest))
    th = sub.add_parser("themes", help="recurring blocker themes: export --site --from --to", add_help=False)
    th.add_argument("rest", nargs=argparse.REMAINDER)
    th.set_defaults(func=lambda a: themes_main(a.rest))

    from .store import store_main

    st = sub.add_parser("store", help="the Parquet snapshot store of every site: export --site | info", add_help=False)
    st.add_argument("rest", nargs=argparse.REMAINDER)
    st.set_defaults(func=lambda a: store_main(a.rest))

    from .backtest import add_arguments as add_backtest_arguments

    add_backtest_arguments(
        sub.add_parser("backtest", help="replay order history as cutoff reviews; score the promise rule and a learned score on held-out months")
    )
    add_backtest_arguments(
        sub.add_parser("calibrate", help="recommend the site's buffer, work minutes and learned-score setting from its history; --apply writes them"),
        calibrate=True,
    )

    from .board import board_main

    bd = sub.add_parser("board", help="serve the handoff board (Voila, 127.0.0.1 by default); `board users` manages sign-in",
                        add_help=False)
    bd.add_argument("rest", nargs=argparse.REMAINDER)
    bd.set_defaults(func=lambda a: board_main(a.rest))

    ps = sub.add_parser("preset", help="mapping presets for documented exports: list | show NAME")
    ps.add_argument("action", choices=("list", "show"))
    ps.add_argument("name", nargs="?")
    ps.set_defaults(func=cmd_preset)

    dm = sub.add_parser("demo", help="the main job on built-in demo data")
    dm.add_argument("--orders", type=int, default=10_000)
    dm.add_argument("--seed", type=int, default=7)
    dm.add_argument("--site", default=DEFAULT_SITE)
    dm.add_argument("--out-data", help="folder for the demo extracts (default: from the site's data.folder)")
    dm.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["board"]:  # `board` parses its own options (argparse hands a leading --option to the top level)
        from .board import main as board_main

        return board_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HandoffError as exc:
        print(f"handoff: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("handoff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
