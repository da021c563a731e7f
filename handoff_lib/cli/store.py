"""`handoff store export|info`: write a site's history into the Parquet snapshot store, and say what a
store holds (docs/store.md). cli.py hands this the rest of argv."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from handoff_lib.errors import HandoffError


def store_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handoff store", description="The Parquet snapshot store of every site's reviews (docs/store.md).")
    sub = p.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("export", help="write the reviews of a history database into the store (those it lacks, or --replace all)")
    ex.add_argument("--site", required=True, help="site parameters file (its history and store.root), or a site code with --history and --store")
    ex.add_argument("--history", help="history database (default: outputs/<site>/history.duckdb of the site file)")
    ex.add_argument("--store", help="store folder (default: the site file's store.root)")
    ex.add_argument("--from", dest="date_from", help="first review date YYYY-MM-DD (default: the first in history)")
    ex.add_argument("--to", dest="date_to", help="last review date YYYY-MM-DD (default: the last in history)")
    ex.add_argument("--replace", action="store_true", help="rewrite reviews the store already holds")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    inf = sub.add_parser("info", help="sites, reviews and rows per table of a store")
    inf.add_argument("--site", help="site parameters file whose store.root to read")
    inf.add_argument("--store", help="store folder")
    return p


def _resolve(args: argparse.Namespace) -> tuple[str | None, Path | None, Path | None]:
    """(site code, history database, store root) from --site / --history / --store."""
    from handoff_lib.history.store import store_settings

    site, history, root = args.site, getattr(args, "history", None), args.store
    if site and site.endswith((".yaml", ".yml")):
        from handoff_lib.load.settings import load_settings

        settings = load_settings(site)
        site = settings.site
        history = history or str(settings.outputs / settings.site / "history.duckdb")
        conf = store_settings(settings)
        if root is None and conf is None:
            raise HandoffError(f"{settings.path}: the site file has no store: (add store: {{root: ../outputs/store}}) and no --store was given")
        root = root or str(conf.root)
    if root is None:
        raise HandoffError("give --store DIR (or --site with a site file that has store.root)")
    return site, Path(history) if history else None, Path(root)


def store_main(argv: list[str] | None = None) -> int:
    """Entry point of `handoff store ...`; returns the exit code."""
    from handoff_lib.history import store
    from handoff_lib.learn.themes import parse_date

    args = store_parser().parse_args(argv)
    try:
        site, history, root = _resolve(args)
        if args.action == "export":
            if history is None:
                raise HandoffError("give --history (the site's history.duckdb) with a site code")
            t0 = time.perf_counter()
            written, kept = store.export_history(
                history, root, site, parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to"), args.replace,
                progress=not args.quiet,
            )
            print(f"{site}: {written} review(s) written to the store, {kept} already there ({time.perf_counter() - t0:.1f} s)")
            print(f"store written to {root.resolve()}")
            return 0
        info = store.summary(root)
        print(f"{root.resolve()}: {len(info)} site(s)")
        print(info.to_string(index=False))
        return 0
    except HandoffError as exc:
        print(f"handoff store: error: {exc}", file=sys.stderr)
        return 2
