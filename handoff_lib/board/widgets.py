"""The board's building blocks: a paged HTML table, filter dropdowns, figures in an Output widget, and
the guard every widget callback runs under (errors go to the board's status line and the server log,
never a traceback to the page)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from handoff_lib.errors import HandoffError

from .data import Page
from .render import html_table, text

AGE_OPTIONS = (("any age", ""), ("30 min or older", 30), ("1 h or older", 60), ("2 h or older", 120),
               ("4 h or older", 240), ("8 h or older", 480), ("24 h or older", 1440))
ANY = "(all)"
ALL = ""  # the value of a filter's "(all)" option (ipywidgets shows a None value as no selection)


def guard_with(status: Any) -> Callable:
    """Run a widget callback; a HandoffError shows its message on the board, anything else a plain
    message on the page and its traceback in the board server's log.

    The traceback goes to the kernel process's own stderr (`sys.__stderr__`), which the server's log
    receives: the kernel's `sys.stderr` is sent to the page's output, and a widget callback's output is
    shown nowhere."""

    def wrap(fn: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except HandoffError as exc:
                status.value = text(str(exc), "p", "board-error")
            except Exception as exc:  # noqa: BLE001 - the page must stay usable; details go to the log
                log_error(exc)
                status.value = text(f"Something went wrong ({type(exc).__name__}); the page still works, and the board "
                                    "server's log has the details.", "p", "board-error")

        return run

    return wrap


def log_error(exc: BaseException) -> None:
    """The traceback of `exc` in the board server's log, marked with the kernel it came from."""
    import os

    err = sys.__stderr__ or sys.stderr
    kernel = os.environ.get("VOILA_KERNEL_ID", "")
    print(f"handoff board: widget error in kernel {kernel or '(outside the board server)'}:", file=err)
    traceback.print_exception(exc, file=err)
    err.flush()


class PagedTable:
    """An HTML table with previous/next buttons; `fetch(page)` returns the `Page` to show. Columns in
    `hidden` are fetched but not shown; `on_show(page)` is called with every page shown."""

    def __init__(self, table_id: str, fetch: Callable[[int], Page], guard: Callable, hidden: tuple[str, ...] = (),
                 on_show: Callable[[Page], None] | None = None):
        import ipywidgets as w

        self.table_id = table_id
        self.fetch = fetch
        self.hidden = hidden
        self.on_show = on_show
        self.page = 0
        self.version = 0
        self.html = w.HTML()
        self.html.add_class(f"{table_id}-html")
        self.info = w.HTML()
        self.prev = w.Button(description="◀ previous", layout=w.Layout(width="110px"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="110px"))
        self.prev.add_class(f"{table_id}-prev")
        self.next.add_class(f"{table_id}-next")
        self.prev.on_click(guard(lambda _: self.show(self.page - 1)))
        self.next.on_click(guard(lambda _: self.show(self.page + 1)))
        self.widget = w.VBox([w.HBox([self.prev, self.next, self.info]), self.html])

    def show(self, page: int = 0) -> Page:
        p = self.fetch(page)
        self.page = p.page
        self.version += 1
        self.info.value = text(f"{p.caption()} · page {p.page + 1} of {p.pages}", "span", "board-msg")
        self.prev.disabled = p.page == 0
        self.next.disabled = p.page >= p.pages - 1
        shown = p.rows.drop(columns=[c for c in self.hidden if c in p.rows.columns])
        self.html.value = html_table(shown, self.table_id, p.total, self.version)
        if self.on_show is not None:
            self.on_show(p)
        return p


def unset(value: Any) -> Any:
    """A filter widget's value, None for "(all)"."""
    return None if value == ALL else value


def dropdown(description: str, values: list, fmt: Callable[[Any], str] = str, any_label: str = ANY, cls: str = ""):
    import ipywidgets as w

    d = w.Dropdown(options=[(any_label, ALL)] + [(fmt(v), v) for v in values], value=ALL, description=description,
                   style={"description_width": "initial"}, layout=w.Layout(width="auto"))
    if cls:
        d.add_class(cls)
    return d


def show_figure(out: Any, fig: Any) -> None:
    """A plotly figure into an Output widget as plotly's JSON mime bundle only (no inlined plotly.js
    in the widget state; Voila renders it with the jupyterlab-plotly extension)."""
    import plotly.io as pio

    out.clear_output(wait=True)
    with out:
        pio.show(fig, renderer="plotly_mimetype", config={"displaylogo": False, "responsive": True})

