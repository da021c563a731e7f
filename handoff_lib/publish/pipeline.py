"""The picture of one moment: the extracts loaded and linked (join/linked.py), then, given a review time, the
analysis (picture.analyse: cutoffs, states, blockers, promise, the learned score, the order board)."""

from __future__ import annotations

import datetime as dt

import duckdb

from handoff_lib.join.linked import load_and_link
from handoff_lib.load.settings import Settings

from .picture import analyse


def build_picture(
    settings: Settings,
    now: dt.datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: bool = False,
    note_model: object | None = None,
    allow_stale: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Load, validate and link the site's extracts into `con` (a new in-memory connection when
    None). With `now`, also judge how current each extract is (load_report's freshness columns) and
    derive order states, blockers and the promise view as of `now`; with `allow_stale=False`, an extract
    of an earlier operating day stops the build right after the load (errors.StaleExtractError)."""
    con = load_and_link(settings, now, con, progress=progress, allow_stale=allow_stale)
    if now is not None:
        analyse(con, settings, now, note_model)
    return con


def trained_note_model(settings: Settings) -> object | None:
    """The site's trained notes model (`notes.model` of its site file, `handoff notes train --site`), for
    the notes its note rules leave undecided; None when the site has none or it is not trained yet (the
    note rules decide alone). A model of another site or of other labelled notes is refused with an
    error naming the setting to fix."""
    from handoff_lib.learn.notes import load_site_model

    return load_site_model(settings)
