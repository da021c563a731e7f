"""`handoff backtest` and `handoff calibrate`: replay a site's order history as cutoff reviews, score the
promise rule and the learned score on months they were not chosen on, write CSV tables, `backtest.json` and
an offline HTML report; `calibrate` also proposes the change to the site file and applies it with `--apply`
(docs/backtest.md)."""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from pathlib import Path

from handoff_lib.errors import HandoffError

REPORT_NOTEBOOK = "backtest_report.ipynb"


def add_arguments(p: argparse.ArgumentParser, calibrate: bool = False) -> argparse.ArgumentParser:
    """The options of `handoff backtest` (and, with `calibrate`, of `handoff calibrate`)."""
    p.add_argument("--site", required=True, help="site parameters file, e.g. parameters/olist.yaml")
    p.add_argument("--from", dest="date_from", required=True, help="first review day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last review day, YYYY-MM-DD")
    p.add_argument("--reviews", help="review times, site local, e.g. 09:00,12:00,16:00 (default: the site's reviews.times)")
    p.add_argument("--min-precision", type=float, default=None,
                   help="the precision a chosen setting must reach on its validation months (default 0.8)")
    p.add_argument("--validation-months", type=int, default=None, help="months each setting is chosen on (default 2)")
    p.add_argument("--deadline", choices=("latest", "earliest"), default="latest",
                   help="an order's deadline is its latest (default) or earliest line ship-by")
    p.add_argument("--engine", choices=("duckdb", "spark"), default=None,
                   help="where the replay and the scores run (default: the site file's store.engine, else duckdb)")
    p.add_argument("--out", help="output folder (default: <outputs>/<site>/backtest/<from>_<to>)")
    p.add_argument("--no-report", action="store_true", help="write the CSV tables only, no notebook/HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if calibrate:
        p.add_argument("--apply", action="store_true", help="write the proposed change into the site file (keeps its comments and layout)")
        p.set_defaults(func=cmd_calibrate)
    else:
        p.set_defaults(func=cmd_backtest)
    return p


def _run(args: argparse.Namespace):
    from handoff_lib.learn import backtest, calibrate
    from handoff_lib.load.settings import load_settings

    settings = load_settings(args.site)
    date_from = backtest.parse_date(args.date_from, "--from")
    date_to = backtest.parse_date(args.date_to, "--to")
    if args.reviews:
        times = backtest.parse_times(args.reviews)
    elif settings.review_times:
        times = settings.review_times
    else:
        raise HandoffError(f"{settings.where('reviews')}: no review times: give --reviews, e.g. 09:00,12:00,16:00")
    from handoff_lib.history.store import store_settings

    conf = store_settings(settings)
    engine = args.engine or (conf.engine if conf else "duckdb")
    result = calibrate.run_backtest(
        settings, date_from, date_to, times, deadline=args.deadline,
        min_precision=args.min_precision if args.min_precision is not None else calibrate.MIN_PRECISION,
        validation_months=args.validation_months or calibrate.VALIDATION_MONTHS, progress=not args.quiet, engine=engine,
    )
    out = Path(args.out) if args.out else settings.outputs / settings.site / "backtest" / f"{date_from}_{date_to}"
    out = out.resolve()
    model = result.meta.pop("_model", None)
    written = {}
    if model is not None:
        from handoff_lib.learn import risk

        written["risk_model"] = risk.save_model(model, out / "risk_model.joblib")
    return settings, date_from, date_to, times, result, out, written


def _print_facts(settings, result, date_from, date_to) -> None:
    m = result.meta
    print(f"{settings.name}: {m['reviews']} reviews ({', '.join(m['review_times'])}) from {date_from} to {date_to}, "
          f"{m['orders']} orders, {m['review_rows']} open order-reviews ({m['review_rows_deadline_not_yet_known']} before the "
          f"deadline was known); {m['wall_s']:.1f} s ({m.get('engine', 'duckdb')})")
    print(f"  read through the mapping: {m['handed_off_after_latest_ship_by']} of {m['orders_with_items_and_handoff']} orders "
          f"with items and a hand-off were handed off after their latest ship-by")
    for r in result.tables["skipped"].itertuples(index=False):
        print(f"  skipped ({r.reason}): {r.orders}")


def conclusion_text(result) -> list[str]:
    """The report's conclusion as plain lines for the terminal."""
    from handoff_lib.learn.backtest_report import conclusion_html

    paragraphs = re.findall(r"<p>(.*?)</p>", conclusion_html(result), flags=re.DOTALL)
    return [html.unescape(re.sub(r"<[^>]+>", "", p)) for p in paragraphs]


def _finish(args, settings, result, out, written, date_from, date_to, times, t0) -> None:
    written.update(result.write(out))
    if not args.no_report:
        written.update(run_report(settings, out, date_from, date_to, times, progress=not args.quiet))
    for line in conclusion_text(result):
        print("  " + line)
    print(f"outputs written to {out} ({time.perf_counter() - t0:.1f} s in all)")
    for name, path in written.items():
        print(f"  {name}: {path.name}")


def cmd_backtest(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    settings, date_from, date_to, times, result, out, written = _run(args)
    _print_facts(settings, result, date_from, date_to)
    _finish(args, settings, result, out, written, date_from, date_to, times, t0)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from handoff_lib.learn.calibrate import proposed_changes
    from handoff_lib.load.site_edit import edit_settings, unified_diff

    t0 = time.perf_counter()
    settings, date_from, date_to, times, result, out, written = _run(args)
    _print_facts(settings, result, date_from, date_to)
    site_file = Path(settings.path)
    cal = result.meta["calibration"]
    changes = proposed_changes(cal, written.get("risk_model"), site_file)
    old = site_file.read_text(encoding="utf-8")
    new = edit_settings(old, changes, where=str(site_file))
    cal["proposed_changes"] = {".".join(k): v for k, v in changes.items()}
    cal["applied"] = bool(args.apply and changes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "proposed_site.yaml").write_text(new, encoding="utf-8")
    diff = unified_diff(old, new, site_file.name)
    (out / "site_change.diff").write_text(diff, encoding="utf-8")
    written["proposed_site"] = out / "proposed_site.yaml"
    written["site_change"] = out / "site_change.diff"
    _finish(args, settings, result, out, written, date_from, date_to, times, t0)
    if not changes:
        print(f"{site_file}: already set as recommended; nothing to change")
        return 0
    print(f"proposed change to {site_file}:")
    print(diff, end="" if diff.endswith("\n") else "\n")
    if args.apply:
        tmp = site_file.with_name(site_file.name + ".calibrate")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, site_file)
        print(f"applied to {site_file}")
    else:
        print(f"not applied: run again with --apply, or copy {out / 'proposed_site.yaml'}")
    return 0


def run_report(settings, out: Path, date_from, date_to, times, progress: bool = True, kernel: str = "python3") -> dict[str, Path]:
    """Run notebooks/backtest_report.ipynb with papermill on the tables in `out`; export it as
    offline HTML without code cells. Returns the two files."""
    import papermill as pm

    from handoff_lib.publish.kernel import ReviewKernelManager
    from handoff_lib.publish.runs import NOTEBOOK_DIR, export_html

    executed = out / REPORT_NOTEBOOK
    params = {
        "site_file": str(settings.path.resolve()),
        "date_from": str(date_from),
        "date_to": str(date_to),
        "reviews": ",".join(t.strftime("%H:%M") for t in times),
        "tables_dir": str(out),
    }
    try:
        pm.execute_notebook(str(NOTEBOOK_DIR / REPORT_NOTEBOOK), str(executed), parameters=params, kernel_name=kernel,
                            progress_bar=progress, cwd=str(NOTEBOOK_DIR.parent),
                            kernel_manager_class=ReviewKernelManager)  # no TCP warning, no interrupt at shutdown (kernel.py)
    except pm.PapermillExecutionError as exc:
        raise HandoffError(f"backtest report failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} (executed notebook: {executed})") from None
    html_path = export_html(executed, out / "backtest_report.html", f"{settings.name} backtest {date_from} to {date_to}")
    return {"report_notebook": executed, "report": html_path}


def backtest_main(argv: list[str] | None = None, calibrate: bool = False) -> int:
    """`handoff backtest ...` (or `handoff calibrate ...`) as a function: parse `argv` (without the subcommand) and run it."""
    name = "calibrate" if calibrate else "backtest"
    p = add_arguments(argparse.ArgumentParser(prog=f"handoff {name}", description=__doc__), calibrate=calibrate)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except HandoffError as exc:
        print(f"handoff: error: {exc}", file=sys.stderr)
        return 2


def calibrate_main(argv: list[str] | None = None) -> int:
    """`handoff calibrate ...` as a function."""
    return backtest_main(argv, calibrate=True)


if __name__ == "__main__":
    sys.exit(backtest_main())
