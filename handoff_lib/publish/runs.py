"""Run the cutoff review notebook with papermill per site and review time, and lay out its outputs.

A run works in a temporary folder beside its final place and goes through named steps:

1. `execute`  papermill runs notebooks/cutoff_review.ipynb (picture, exports, charts); the XLSX
              workbook is built by a process of its own from the Parquet views the notebook writes;
2. `report`   the executed notebook becomes a self-contained HTML report without code cells (and the
              run waits for the workbook);
3. `manifest` input files with hashes and row counts (database sources: query, server, time, fingerprint),
              rejects, versions, parameters, durations, and what decided the note reasons (the site's notes
              model with its sha256, or rules only);
4. `history`  the snapshot goes into the history database in one transaction;
5. `publish`  the folder is moved into `outputs/<site>/<date>/<HHMM>/` whole;
6. (`store`)  when the site file has `store:`, the snapshot is also written to the Parquet snapshot
              store (store.py); a failure there is reported in manifest.json and does not fail the run;
7. `notify`   each owner team's queue is written to `owners/` and sent as the site's `notify:` block says
              (notify.py); a failed delivery is reported in manifest.json, retried by the next `schedule`,
              and does not fail the run.

A failure at any step raises `RunError` naming the step; history and earlier outputs stay as they
were, and the temporary folder is removed. A second run of the same site waits for the first
(a lock file per site) instead of interleaving with it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from handoff_lib.errors import HandoffError
from handoff_lib.history.faults import crash_point as _crash_point
from handoff_lib.history.locks import file_lock
from handoff_lib.load.settings import Settings

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
REVIEW_NOTEBOOK = "cutoff_review.ipynb"
TEMPLATES = Path(__file__).resolve().parent / "templates"


class RunError(HandoffError):
    """A cutoff review run failed at a named step."""

    def __init__(self, step: str, message: str):
        super().__init__(f"review run failed at step '{step}': {message}")
        self.step = step


@dataclass
class RunResult:
    out_dir: Path
    files: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)  # one sentence per source past its freshness limit (the review is stale)


def review_dir(settings: Settings, at: dt.datetime, out_root: Path | None = None) -> Path:
    root = out_root or settings.outputs
    return root / settings.site / at.strftime("%Y-%m-%d") / at.strftime("%H%M")


def default_history(settings: Settings, out_root: Path | None = None) -> Path:
    return (out_root or settings.outputs) / settings.site / "history.duckdb"


def site_lock(path: Path, wait_s: float = 600.0) -> contextlib.AbstractContextManager:
    """Hold the site's run lock; wait for another run of the same site to finish first (yields the lock file)."""
    return file_lock(
        path, wait_s,
        timed_out=lambda: HandoffError(f"{path}: another review run of this site is still running after {wait_s:.0f} s"),
        waiting=lambda: print(f"waiting for another review run of this site to finish ({path})", file=sys.stderr),
        poll_s=0.5,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_OUTPUT_DIV = re.compile(r'(<div class="[^"<>]*\bjp-(?:OutputArea-output|Cell-inputWrapper)\b[^"<>]*"(?= |>))')


def _report_exporter():
    """nbconvert's HTML exporter with our template, minus its last pass: HTMLExporter re-parses the
    whole page with BeautifulSoup only to add alt text to <img> tags and tabindex to outputs, which
    took ~2/3 of the report's time on a 100,000-order review. The report has no <img> outputs; the
    tabindex is added to the template's output divs by `_focusable` instead."""
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class ReportExporter(HTMLExporter):
        def from_notebook_node(self, nb, resources=None, **kw):
            lang = nb.metadata.get("language_info", {})
            resources = self._init_resources(resources)
            lexer = lang.get("pygments_lexer", lang.get("name"))
            self.register_filter("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
            self.register_filter(
                "filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources)
            )
            body, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            return _focusable(body), resources

    return ReportExporter(
        template_name="handoff_report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )


def _focusable(body: str) -> str:
    """Markdown cells and outputs keyboard-focusable, as nbconvert's own pass does (only the
    template's divs match: text from the notebook's outputs reaches the page escaped)."""
    return _OUTPUT_DIV.sub(r'\1 tabindex="0"', body)


def export_html(notebook: Path | str | dict, html: Path, title: str) -> Path:
    """The executed notebook (a path, or the notebook papermill returned) as one HTML file without
    code cells that needs no network."""
    import copy

    import nbformat

    if isinstance(notebook, (str, os.PathLike)):
        nb = nbformat.read(notebook, as_version=4)
    else:
        nb = copy.copy(notebook)  # shallow: only its metadata is replaced below
        nb.metadata = copy.deepcopy(notebook.metadata)
    nb.metadata["title"] = title
    nb.metadata.pop("widgets", None)  # widget state needs a CDN widget manager: not in a report
    body, _ = _report_exporter().from_notebook_node(nb)
    tmp = html.with_name(html.name + ".part")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html)
    return html


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("handoff", "duckdb", "pandas", "papermill", "plotly", "scikit-learn", "nbconvert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def run_review(
    settings: Settings,
    at: dt.datetime,
    history: Path | None = None,
    out_root: Path | None = None,
    progress: bool = True,
    kernel: str = "python3",
    allow_stale: bool = False,
) -> RunResult:
    """Execute one cutoff review and publish its outputs; see the module docstring for the steps. An extract of
    an earlier operating day stops it with errors.StaleExtractError, storing nothing, unless `allow_stale`
    (the review is then stored marked stale; docs/extracts.md, "How current the extracts are")."""
    import papermill as pm

    from handoff_lib.errors import StaleExtractError
    from handoff_lib.history.store import store_settings
    from handoff_lib.load.freshness import freshness_settings

    from .kernel import ReviewKernelManager
    from .notify import notify_settings

    freshness_settings(settings)  # a bad freshness: block fails before the notebook starts

    settings = settings.for_review(at)
    store_settings(settings)  # a bad `store:` block fails before the run, not after it is committed
    notify_settings(settings)  # so does a bad `notify:` block (its deliveries may fail later; its settings may not)
    final = review_dir(settings, at, out_root)
    history = history or default_history(settings, out_root)
    site_root = final.parent.parent
    run_id = f"{at:%Y%m%d-%H%M}-{uuid.uuid4().hex[:8]}"
    with site_lock(site_root / ".run.lock") as lock:
        recover(site_root, history)
        tmp = site_root / f".tmp-{run_id}"
        tmp.mkdir(parents=True)
        timings: dict[str, float] = {}
        step = "execute"
        workbook: subprocess.Popen | None = None
        wb_err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - the workbook builder's stderr; closed below
        try:
            _crash_point(step)
            t0 = time.perf_counter()
            # the XLSX workbook is built in its own process, which starts now and begins as soon as the
            # notebook's export cell has written the Parquet views (while the notebook goes on writing
            # CSVs and the HTML report is made); it shares the site lock, so a run killed before it is
            # done leaves nothing for the next run to trip over
            workbook = subprocess.Popen(
                [sys.executable, "-m", "handoff_lib.exports", str(tmp), "--wait"],
                stdout=subprocess.DEVNULL,
                stderr=wb_err,
                text=True,
                pass_fds=(lock.fileno(),),
            )
            params = {
                "site_file": str(settings.path.resolve()),
                "review_at": at.strftime("%Y-%m-%d %H:%M"),
                "data_folder": str(settings.data_folder),
                "history_db": str(history.resolve()),
                "out_dir": str(tmp.resolve()),
                "make_xlsx": False,
                "allow_stale": bool(allow_stale),
            }
            executed = tmp / REVIEW_NOTEBOOK
            try:
                # saved once at the end, not before and after every cell (papermill's default): each
                # save re-serialises the whole notebook, ~15 MB with the 100,000-order tables
                nb = pm.execute_notebook(
                    str(NOTEBOOK_DIR / REVIEW_NOTEBOOK),
                    str(executed),
                    parameters=params,
                    kernel_name=kernel,
                    progress_bar=progress,
                    cwd=str(NOTEBOOK_DIR.parent),
                    request_save_on_cell_execute=False,
                    kernel_manager_class=ReviewKernelManager,  # no TCP warning, no interrupt at shutdown (kernel.py)
                )
            except pm.PapermillExecutionError as exc:
                if exc.ename == "StaleExtractError":  # not a failure to diagnose: the extracts are of an earlier day
                    raise StaleExtractError(exc.evalue) from None
                raise RunError(step, f"cell {exc.exec_count}: {exc.ename}: {exc.evalue} (executed notebook kept at {executed})") from None
            timings["execute"] = time.perf_counter() - t0

            step = "report"
            _crash_point(step)
            t1 = time.perf_counter()
            export_html(nb, tmp / "cutoff_review.html", f"{settings.name} cutoff review {at:%Y-%m-%d %H:%M}")
            timings["report"] = time.perf_counter() - t1
            workbook.wait(timeout=1800)
            if workbook.returncode != 0:
                wb_err.seek(0)
                err = wb_err.read().strip()
                raise RunError(step, f"building cutoff_review.xlsx failed: {err.splitlines()[-1] if err else workbook.returncode}")
            timings["workbook"] = time.perf_counter() - t1  # waited for it after the notebook ran

            step = "manifest"
            _crash_point(step)
            from handoff_lib.learn.notes import note_manifest

            summary = json.loads((tmp / "summary.json").read_text(encoding="utf-8")) if (tmp / "summary.json").exists() else {}
            manifest = {
                "site": settings.site,
                "site_file": str(settings.path),
                "review_at": at.isoformat(),
                "run_id": run_id,
                "parameters": params | {"out_dir": str(final.resolve())},
                "inputs": _inputs(tmp / "picture.duckdb"),
                "freshness": _freshness(settings, at, tmp / "picture.duckdb"),
                "notes": note_manifest(tmp / "picture.duckdb", settings),  # the model or "rules only"; who decided
                "summary": summary,
                "versions": _versions(),
                "durations_s": {k: round(v, 3) for k, v in timings.items()},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")

            step = "history"
            _crash_point(step)
            t2 = time.perf_counter()
            _store_history(settings, at, tmp / "picture.duckdb", history, run_id, final, summary, stale=bool(manifest["freshness"]["stale"]))
            timings["history"] = time.perf_counter() - t2

            step = "publish"
            _crash_point(step)
            _publish(tmp, final)
            # the shared snapshot store (docs/store.md), when the site has one: written from history after the
            # run is committed and published; a failure is reported in the manifest, never fails the run
            store_note = _write_store(settings, history, at, timings)
            # each owner team's queue (docs/notify.md): files in owners/, then e-mail/webhook per the site's notify:
            # block; a failed delivery is in the manifest and retried by the next `handoff schedule`, never fails the run
            notify_note = _notify(settings, history, final, at, manifest["freshness"], timings)
        except StaleExtractError:
            _discard(tmp, stop=workbook)
            raise
        except RunError:
            _discard(tmp, keep_notebook=True, stop=workbook)
            raise
        except HandoffError as exc:
            _discard(tmp, stop=workbook)
            raise RunError(step, str(exc)) from None
        except Exception as exc:  # anything unexpected still names its step
            _discard(tmp, stop=workbook)
            raise RunError(step, f"{type(exc).__name__}: {exc}") from exc
        finally:
            _stop(workbook)
            wb_err.close()
        manifest["durations_s"] = {k: round(v, 3) for k, v in timings.items()}
        if store_note is not None:
            manifest["store"] = store_note
        manifest["notify"] = notify_note
        (final / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        files = {p.name: p for p in sorted(final.iterdir()) if p.is_file()}
        return RunResult(final, files, timings, summary, manifest["freshness"]["stale"])


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _inputs(picture_db: Path) -> list[dict]:
    import duckdb

    con = duckdb.connect(str(picture_db), read_only=True)
    try:
        rows = con.execute(
            """SELECT source, file, rows_read, rows_accepted, rows_rejected, rows_other_entity, sha256,
                      strftime(data_as_of, '%Y-%m-%dT%H:%M:%S%z') AS data_as_of,
                      strftime(file_as_of, '%Y-%m-%dT%H:%M:%S%z') AS file_as_of, strftime(as_of, '%Y-%m-%dT%H:%M:%S%z') AS as_of,
                      as_of_basis, age_minutes, max_age_minutes, freshness
               FROM load_report ORDER BY source"""
        ).df()
        inputs = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
        # A database source (dbsource.py): the query, the server and when it ran; its "sha256" is the row fingerprint.
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'db_reads'").fetchall()[0][0]:
            reads = con.execute(
                """SELECT source, "database", server, query, strftime(started_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') AS ran_at,
                          seconds, fingerprint FROM db_reads"""
            ).df()
            by_source = {r.pop("source"): r for r in reads.to_dict(orient="records")}
            for row in inputs:
                if row["source"] in by_source:
                    row["database"] = by_source[row["source"]]
        return inputs
    finally:
        con.close()


def _freshness(settings: Settings, at: dt.datetime, picture_db: Path) -> dict:
    """The manifest's freshness: each stale source in words, and the setting drafts follow."""
    import duckdb

    from handoff_lib.load.freshness import freshness_settings, stale_lines

    con = duckdb.connect(str(picture_db), read_only=True)
    try:
        con.execute("SET TimeZone = ?", [settings.timezone])
        report = con.execute("SELECT * FROM load_report").df()
    finally:
        con.close()
    return {"stale": stale_lines(report, settings, at), "on_stale": freshness_settings(settings).on_stale}


def _store_history(
    settings: Settings, at: dt.datetime, picture_db: Path, history: Path, run_id: str, final: Path, summary: dict, stale: bool = False
) -> None:
    import duckdb

    from handoff_lib.history.snapshots import ReviewKey, write_snapshot

    con = duckdb.connect(str(picture_db))
    try:
        con.execute("SET TimeZone = ?", [settings.timezone])
        write_snapshot(
            con,
            history,
            ReviewKey.of(settings.site, at),
            at,
            run_id,
            data_folder=str(settings.data_folder),
            outputs=str(final),
            summary=json.dumps(summary, default=str),
            stale=stale,
        )
    finally:
        con.close()


def _write_store(settings: Settings, history: Path, at: dt.datetime, timings: dict[str, float]) -> dict | None:
    from handoff_lib.history.store import after_review

    t0 = time.perf_counter()
    note = after_review(settings, history, at)
    if note is not None:
        timings["store"] = time.perf_counter() - t0
    return note


def _notify(settings: Settings, history: Path, final: Path, at: dt.datetime, freshness: dict, timings: dict[str, float]) -> dict:
    from .notify import after_review

    t0 = time.perf_counter()
    note = after_review(settings, history, final, at, freshness["stale"], freshness["on_stale"])
    timings["notify"] = time.perf_counter() - t0
    return note


def _update_notify_manifest(folder: Path, entry: dict) -> None:
    """Replace the `notify` entry of a published review's manifest.json."""
    from .notify import _update_manifest

    _update_manifest(folder, entry)


def _publish(tmp: Path, final: Path) -> None:
    """Move the finished folder into place whole; an earlier run's folder is replaced only after."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:6]}")
        os.replace(final, old)
        _crash_point("publish-swap")
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _discard(tmp: Path, keep_notebook: bool = False, stop: subprocess.Popen | None = None) -> None:
    """Remove a failed run's temporary folder (keeping the executed notebook for diagnosis), after
    stopping `stop` (the workbook builder) so that nothing writes into it any more."""
    _stop(stop)
    if keep_notebook and (tmp / REVIEW_NOTEBOOK).exists():
        failed = tmp.parent / "failed"
        failed.mkdir(exist_ok=True)
        shutil.copy2(tmp / REVIEW_NOTEBOOK, failed / f"{tmp.name.removeprefix('.tmp-')}.ipynb")
    shutil.rmtree(tmp, ignore_errors=True)


def recover(site_root: Path, history: Path | None = None) -> list[Path]:
    """Clean up after runs that were killed. The history write is a run's commit point:
    a temporary folder whose run is in history (killed while publishing) is published now;
    any other temporary folder is removed; a review folder caught between 'old moved aside' and
    'new moved in' gets its previous outputs back. Runs under the site lock."""
    handled: list[Path] = []
    if not site_root.exists():
        return handled
    committed = _committed_run_ids(history) if history is not None else set()
    for tmp in site_root.glob(".tmp-*"):
        manifest = tmp / "manifest.json"
        run_id = tmp.name.removeprefix(".tmp-")
        if run_id in committed and manifest.is_file():
            final = Path(json.loads(manifest.read_text(encoding="utf-8"))["parameters"]["out_dir"])
            _publish(tmp, final)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        handled.append(tmp)
    for old in site_root.glob("*/.old-*"):
        name = old.name.removeprefix(".old-").rsplit("-", 1)[0]
        final = old.parent / name
        if not final.exists():
            os.replace(old, final)
        else:
            shutil.rmtree(old, ignore_errors=True)
        handled.append(old)
    return handled


def _committed_run_ids(history: Path) -> set[str]:
    if not history.exists():
        return set()
    from handoff_lib.history.snapshots import open_history

    con = open_history(history, read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").fetchone()[0]
        return {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()} if exists else set()
    finally:
        con.close()


def pd_date(value: object) -> dt.date:
    """A date from what DuckDB/pandas hand back for a DATE column (date, datetime or Timestamp)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return value.to_pydatetime().date()  # pandas Timestamp


def due_reviews(settings: Settings, now: dt.datetime, done: set[tuple[dt.date, str]], days_back: int = 1) -> list[dt.datetime]:
    """Review times configured for the site (`reviews:`) at or before `now`, over today and the
    `days_back` days before it, that are not in `done` ((date, HHMM) pairs), oldest first."""
    out = []
    for back in range(days_back, -1, -1):
        day = (now - dt.timedelta(days=back)).date()
        if day.weekday() not in settings.review_days:
            continue
        for t in settings.review_times:
            at = dt.datetime.combine(day, t, tzinfo=settings.tz)
            if at <= now and (day, at.strftime("%H%M")) not in done:
                out.append(at)
    return out


def done_reviews(settings: Settings, history: Path) -> set[tuple[dt.date, str]]:
    """(date, HHMM) of every review of the site stored in the history database."""
    from handoff_lib.history.snapshots import list_reviews, open_history

    if not history.exists():
        return set()
    con = open_history(history, read_only=True)
    try:
        df = list_reviews(con, settings.site)
        return {(pd_date(d), str(t)) for d, t in zip(df["review_date"], df["review_time"])}
    finally:
        con.close()


@dataclass
class Scheduled:
    """What `schedule` did: the runs made, the reviews already stored, the past reviews not run with the reason,
    and `stale`: why the current review was not run (its extracts are of an earlier day; an error for the caller)."""

    results: list[RunResult] = field(default_factory=list)
    skipped: list[dt.datetime] = field(default_factory=list)
    not_run: list[tuple[dt.datetime, str]] = field(default_factory=list)
    stale: tuple[dt.datetime, str] | None = None
    retried: list = field(default_factory=list)  # notify.Delivery: failed owner-queue deliveries sent again


def schedule(
    settings: Settings,
    now: dt.datetime,
    history: Path | None = None,
    out_root: Path | None = None,
    days_back: int = 1,
    progress: bool = True,
    allow_stale: bool = False,
) -> Scheduled:
    """Run every configured review that is due and not yet stored, oldest first (catching up missed ones, skipping
    done ones). A past review (any but the latest review time due by `now` today) runs only when the folder it would
    read holds extracts of that review (freshness.fits_review): never from another day's files. The current review
    runs as `handoff run` would: extracts of an earlier day stop it (`Scheduled.stale`) unless `allow_stale`."""
    from handoff_lib.errors import StaleExtractError
    from handoff_lib.load.freshness import fits_review

    history = history or default_history(settings, out_root)
    done = done_reviews(settings, history)
    due = due_reviews(settings, now, done, days_back)
    out = Scheduled(skipped=[
        dt.datetime.combine(d, dt.time(int(t[:2]), int(t[2:])), tzinfo=settings.tz)
        for d, t in sorted(done)
        if (now.date() - d).days <= days_back
    ])
    current = max(due_reviews(settings, now, set(), 0), default=None)  # the latest review time due today
    from .notify import retry_failed

    # deliveries that failed after earlier reviews go first (docs/notify.md); a failure again is recorded, never raised
    with site_lock(review_dir(settings, now, out_root).parent.parent / ".run.lock"):
        try:
            out.retried = retry_failed(settings, history, now)
        except (OSError, sqlite3.Error, HandoffError) as exc:  # the sent-log unreadable: say so, run the reviews anyway
            print(f"handoff notify: failed deliveries not retried: {exc}", file=sys.stderr)
    for at in due:
        if at != current:
            why = fits_review(settings, at)
            if why is not None:
                out.not_run.append((at, why))
                continue
        try:
            out.results.append(run_review(settings, at, history=history, out_root=out_root, progress=progress,
                                          allow_stale=allow_stale and at == current))
        except StaleExtractError as exc:
            if at == current:
                out.stale = (at, str(exc))
            else:
                out.not_run.append((at, str(exc)))
    return out
