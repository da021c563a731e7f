"""`handoff notes train|evaluate|classify --site` and `handoff themes export`: argparse front ends that call
notes.py and themes.py with a site's notes settings and print where their outputs went. cli.py hands them
the rest of argv."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.learn.taxonomy import check_against_policy, load_taxonomy, notes_settings

DEFAULT_SITE = "parameters/demo.yaml"


def _site_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--site", default=DEFAULT_SITE, help="site parameters YAML: its notes: section names the model, "
                   "taxonomy and labelled notes (default parameters/demo.yaml)")


def notes_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handoff notes", description="Classify free-text blocker notes into a site's reason taxonomy.")
    sub = p.add_subparsers(dest="action", required=True)
    tr = sub.add_parser("train", help="fit the site's model on its labelled notes; save it with the site and the notes' sha256")
    _site_arg(tr)
    ev = sub.add_parser("evaluate", help="cross-validated macro-F1, per-reason precision/recall, confusion matrix")
    _site_arg(ev)
    ev.add_argument("--labelled", help="evaluate these labelled notes (text,reason) instead of the site's notes.labelled")
    ev.add_argument("--folds", type=int, default=5)
    ev.add_argument("--out", help="also write the per-reason report and confusion matrix as CSVs into this folder")
    cl = sub.add_parser("classify", help="classify notes from a CSV (or one --text) with the site's saved model")
    _site_arg(cl)
    cl.add_argument("input", nargs="?", help="CSV with a text column (see --column)")
    cl.add_argument("--column", default="text")
    cl.add_argument("--text", help="classify this one note")
    cl.add_argument("--out", help="output CSV (default: <input>.classified.csv)")
    cl.add_argument("--clusters", action="store_true", help="also cluster the needs_review notes and write <out>.clusters.csv")
    return p


def notes_main(argv: list[str] | None = None) -> int:
    """Entry point of `handoff notes ...`; returns the exit code."""
    args = notes_parser().parse_args(argv)
    try:
        return {"train": _train, "evaluate": _evaluate, "classify": _classify}[args.action](args)
    except HandoffError as exc:
        print(f"handoff notes: error: {exc}", file=sys.stderr)
        return 2


def _site(args: argparse.Namespace):
    from handoff_lib.load.settings import load_settings

    settings = load_settings(args.site)
    return settings, notes_settings(settings)


def _train(args: argparse.Namespace) -> int:
    from handoff_lib.learn import notes
    from handoff_lib.rules.policy import load_policy

    settings, site = _site(args)
    t0 = time.perf_counter()
    model, path = notes.train(site)
    print(
        f"{settings.name}: trained on {model.meta['n_examples']} labelled notes ({len(model.classes)} reasons) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    print(f"  labelled notes {model.meta['labelled']} sha256 {model.meta['labelled_sha256'][:12]}...")
    print(f"  model written to {path} (sha256 {model.sha256[:12]}...)")
    print(f"  sidecar written to {notes.sidecar_path(path)}  (site {site.site}, threshold {model.threshold:.2f})")
    for problem in check_against_policy(model.taxonomy, set(load_policy(settings).reasons)):
        print(f"  note: {problem}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from handoff_lib.learn import notes

    _, site = _site(args)
    taxonomy = site.taxonomy()
    labelled = Path(args.labelled) if args.labelled else site.labelled
    if labelled is None:
        raise HandoffError(f"{site.where['notes']}: site '{site.site}' names no labelled notes (notes.labelled); give --labelled")
    df = notes.read_labelled(labelled, taxonomy)
    t0 = time.perf_counter()
    ev = notes.evaluate(df, taxonomy.threshold, folds=args.folds)
    print(f"{labelled}: {len(df)} labelled notes, {df['reason'].nunique()} reasons ({time.perf_counter() - t0:.1f} s)")
    print(ev.text())
    if args.out:
        from handoff_lib.exports import write_csv

        out = Path(args.out)
        write_csv(ev.report.reset_index(), out / "notes_evaluation_report.csv")
        write_csv(ev.confusion.reset_index(), out / "notes_confusion_matrix.csv")
        print(f"report and confusion matrix written to {out.resolve()}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from handoff_lib.exports import write_csv
    from handoff_lib.learn import notes

    _, site = _site(args)
    model = notes.load_model(site)
    if args.text is not None:
        r = notes.classify_notes(model, [args.text], progress=False).iloc[0]
        guess = r["reason"] if r["status"] == notes.CLASSIFIED else f"(best guess {r['best_guess']})"
        print(f"{r['status']}: {guess} confidence {r['confidence']:.2f} (threshold {model.threshold:.2f})")
        return 0
    if not args.input:
        raise HandoffError("give a CSV of notes to classify, or --text 'one note'")
    src = Path(args.input)
    if not src.is_file():
        raise HandoffError(f"{src}: no such file")
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    if args.column not in df.columns:
        raise HandoffError(f"{src}: no column '{args.column}' (columns: {', '.join(df.columns)}; use --column)")
    t0 = time.perf_counter()
    result = notes.classify_notes(model, df[args.column].tolist())
    out = Path(args.out) if args.out else src.with_name(src.stem + ".classified.csv")
    write_csv(pd.concat([df.drop(columns=[args.column]), result], axis=1), out)
    counts = result["status"].value_counts()
    print(
        f"classified {len(result)} notes in {time.perf_counter() - t0:.1f} s: {counts.get(notes.CLASSIFIED, 0)} classified, "
        f"{counts.get(notes.NEEDS_REVIEW, 0)} needs_review (threshold {model.threshold:.2f})"
    )
    print(f"  written to {out.resolve()}")
    if args.clusters:
        texts = result.loc[result["status"] == notes.NEEDS_REVIEW, "text"].tolist()
        _, clusters = notes.cluster_notes(texts)
        cpath = write_csv(clusters, out.with_name(out.stem + ".clusters.csv"))
        print(f"  {len(clusters)} clusters of needs_review notes written to {cpath.resolve()}")
    return 0


def themes_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handoff themes", description="Recurring blocker themes over the review history.")
    sub = p.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("export", help="planner export: XLSX (one sheet per view) and CSVs")
    ex.add_argument("--site", help="site parameters file (parameters/<site>.yaml) or site code(s) dc1,dc2 (default: the only one / every site of --store)")
    ex.add_argument("--from", dest="date_from", help="first review date YYYY-MM-DD (default: the first in history)")
    ex.add_argument("--to", dest="date_to", help="last review date YYYY-MM-DD (default: the last in history)")
    ex.add_argument("--history", help="history database (default: outputs/<site>/history.duckdb of --site parameters/<site>.yaml)")
    ex.add_argument("--store", help="snapshot store folder or URL (docs/store.md): the estate export over its sites, with cross-site views")
    ex.add_argument("--engine", choices=("duckdb", "spark"), help="where the views run (default: the site file's store.engine, else duckdb); spark reads the store")
    ex.add_argument("--out", help="output folder (default: outputs/<site>/themes, outputs/estate/themes for several sites)")
    ex.add_argument("--top", type=int, default=25, help="rows per repeat-offender view")
    ex.add_argument("--taxonomy", help="reason taxonomy YAML (default: notes.taxonomy of the --site file, else parameters/reasons.yaml)")
    return p


def themes_main(argv: list[str] | None = None) -> int:
    """Entry point of `handoff themes ...`; returns the exit code."""
    from handoff_lib.learn import themes

    args = themes_parser().parse_args(argv)
    try:
        taxonomy = load_taxonomy(args.taxonomy) if args.taxonomy else None
        engine, store_conf = args.engine, None
        if args.site and args.site.endswith((".yaml", ".yml")):  # a site parameters file: its code, history, store, taxonomy
            from handoff_lib.history.store import store_settings
            from handoff_lib.load.settings import load_settings

            settings = load_settings(args.site)
            store_conf = store_settings(settings)
            args.site = settings.site
            if args.history is None:
                args.history = str(settings.outputs / settings.site / "history.duckdb")
            taxonomy = taxonomy or notes_settings(settings).taxonomy()
            if engine == "spark" and args.store is None and store_conf is not None:
                args.store = str(store_conf.root)  # Spark reads the site's part of the store
        if args.store is not None:
            source = args.store
            engine = engine or (store_conf.engine if store_conf else "duckdb")
        else:
            source = args.history or "outputs/history.duckdb"
            engine = engine or "duckdb"
        taxonomy = taxonomy or load_taxonomy()
        t0 = time.perf_counter()
        con, scope = themes.open_themes(source, args.site, args.date_from, args.date_to, taxonomy, engine)
        try:
            print(themes.summary_text(con, scope))
            out = Path(args.out) if args.out else Path("outputs") / scope.site / "themes"
            written = themes.write_export(con, scope, out, args.top)
        finally:
            con.close()
    except HandoffError as exc:
        print(f"handoff themes: error: {exc}", file=sys.stderr)
        return 2
    print(f"planner export ({scope.engine}, {time.perf_counter() - t0:.1f} s) written to {out.resolve()}")
    for name, path in written.items():
        print(f"  {name}: {path.name}")
    return 0
