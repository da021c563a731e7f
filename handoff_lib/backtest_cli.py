"""`handoff backtest`: replay a site's order history as cutoff reviews, score the promise rules and
the learned score, write CSV tables and an offline HTML report (docs/backtest.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import HandoffError

REPORT_NOTEBOOK = "backtest_report.ipynb"


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `handoff backtest` (shared by the subcommand and `backtest_main`)."""
    p.add_argument("--site", required=True, help="site parameters file, e.g. parameters/olist.yaml")
    p.add_argument("--from", dest="date_from", required=True, help="first review day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last review day, YYYY-MM-DD")
    p.add_argument("--reviews", help="review times, site local, e.g. 09:00,12:00,16:00 (default: the site's reviews.times)")
    p.add_argument("--split", help="learned score: train on reviews before this day, test on orders placed from it "
                                   "(default: a month start two thirds into the period)")
    p.add_argument("--deadline", choices=("latest", "earliest"), default="latest",
                   help="an order's deadline is its latest (default) or earliest line ship-by")
    p.add_argument("--engine", choices=("duckdb", "spark"), default=None,
                   help="where the replay, warnings and scores run (default: the site file's store.engine, else duckdb)")
    p.add_argument("--out", help="output folder (default: <outputs>/<site>/backtest/<from>_<to>)")
    p.add_argument("--no-report", action="store_true", help="write the CSV tables only, no notebook/HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_backtest)
    return p


def cmd_backtest(args: argparse.Namespace) -> int:
    from . import backtest, risk
    from .settings import load_settings

    t0 = time.perf_counter()
    settings = load_settings(args.site)
    date_from = backtest.parse_date(args.date_from, "--from")
    date_to = backtest.parse_date(args.date_to, "--to")
    if args.reviews:
        times = backtest.parse_times(args.reviews)
    elif settings.review_times:
        times = settings.review_times
    else:
        raise HandoffError(f"{settings.where('reviews')}: no review times: give --reviews, e.g. 09:00,12:00,16:00")
    split = backtest.parse_date(args.split, "--split") if args.split else None
    from .store import store_settings

    conf = store_settings(settings)
    engine = args.engine or (conf.engine if conf else "duckdb")
    result = backtest.run_backtest(settings, date_from, date_to, times, split_at=split, deadline=args.deadline,
                                   progress=not args.quiet, engine=engine)
    out = Path(args.out) if args.out else settings.outputs / settings.site / "backtest" / f"{date_from}_{date_to}"
    out = out.resolve()
    model = result.meta.pop("_model", None)
    written = result.write(out)
    if model is not None:
        written["risk_model"] = risk.save_model(model, out / "risk_model.joblib")
    m = result.meta
    print(f"{settings.name}: {m['reviews']} reviews ({', '.join(m['review_times'])}) from {date_from} to {date_to}, "
          f"{m['orders']} orders, {m['review_rows']} open order-reviews; backtest {m['wall_s']:.1f} s ({engine})")
    print(f"  read through the mapping: {m['handed_off_after_latest_ship_by']} of {m['orders_with_items_and_handoff']} orders "
          f"with items and a hand-off were handed off after their latest ship-by")
    for r in result.tables["skipped"].itertuples(index=False):
        print(f"  skipped ({r.reason}): {r.orders}")
    rules = result.tables["rules"]
    shown = rules[rules["setting"].str.contains("policy") | rules["setting"].isin(["X = 4 h", "X = 12 h", "X = 24 h", "X = 48 h"])]
    for r in shown.itertuples(index=False):
        print(f"  {r.rule} [{r.setting}]: precision {r.precision}, recall {r.recall}, "
              f"median lead {r.median_lead_h} h, false alarms/review {r.false_alarms_per_review}")
    if "risk_vs_rules" in result.tables:
        for r in result.tables["risk_vs_rules"].itertuples(index=False):
            if r.rule == "hours left < X" and r.score_recall == r.score_recall:  # not NaN
                print(f"  learned score vs {r.setting} (test months, precision {r.precision:.2f}): recall {r.score_recall:.2f} vs "
                      f"{r.recall:.2f}, median lead {r.score_median_lead_h} h vs {r.median_lead_h} h")
    if not args.no_report:
        written.update(run_report(settings, out, date_from, date_to, times, split, progress=not args.quiet))
    print(f"outputs written to {out} ({time.perf_counter() - t0:.1f} s in all)")
    for name, path in written.items():
        print(f"  {name}: {path.name}")
    return 0


def run_report(settings, out: Path, date_from, date_to, times, split, progress: bool = True, kernel: str = "python3") -> dict[str, Path]:
    """Run notebooks/backtest_report.ipynb with papermill on the tables in `out`; export it as
    offline HTML without code cells. Returns the two files."""
    import papermill as pm

    from .runs import NOTEBOOK_DIR, export_html

    executed = out / REPORT_NOTEBOOK
    params = {
        "site_file": str(settings.path.resolve()),
        "date_from": str(date_from),
        "date_to": str(date_to),
        "reviews": ",".join(t.strftime("%H:%M") for t in times),
        "split_at": str(split or ""),
        "tables_dir": str(out),
    }
    try:
        pm.execute_notebook(str(NOTEBOOK_DIR / REPORT_NOTEBOOK), str(executed), parameters=params, kernel_name=kernel,
                            progress_bar=progress, cwd=str(NOTEBOOK_DIR.parent))
    except pm.PapermillExecutionError as exc:
        raise HandoffError(f"backtest report failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} (executed notebook: {executed})") from None
    html = export_html(executed, out / "backtest_report.html", f"{settings.name} backtest {date_from} to {date_to}")
    return {"report_notebook": executed, "report": html}


def backtest_main(argv: list[str] | None = None) -> int:
    """`handoff backtest ...` as a function: parse `argv` (without the subcommand) and run it."""
    p = add_arguments(argparse.ArgumentParser(prog="handoff backtest", description=__doc__))
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except HandoffError as exc:
        print(f"handoff: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(backtest_main())
