"""The board page: header (banner, who is signed in, review picker, tiles) and the tabs of the viewer's
role. A tab the role does not have is never built, and its data is never read (`roles.py`)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pandas as pd

from handoff_lib.errors import HandoffError

from .data import (
    HANDLING,
    BlockerFilter,
    BoardSource,
    Found,
    Snapshot,
    act_now_page,
    blocker_options,
    blocker_page,
    calls_page,
    change_counts,
    change_page,
    find,
    headline,
    list_reviews,
    load_snapshot,
    meeting_pickups,
    order_detail,
    order_page,
    order_summaries,
    promise_page,
    resolve_source,
    review_label,
)
from .render import (
    STYLE,
    banner_html,
    html_table,
    matches_html,
    pickups_html,
    stale_html,
    text,
    tiles_html,
    timeline_html,
    who_html,
)
from .roles import Viewer
from .session import local_viewer
from .widgets import AGE_OPTIONS, ALL, ANY, PagedTable, dropdown, guard_with, show_figure, unset

MEETING_TAB = "Cutoff meeting"
EXPORT_FILES = ("cutoff_review.html", "cutoff_review.xlsx", "order_board.csv", "blocker_queue.csv", "promise_view.csv",
                "changes.csv", "drafts.csv", "rejects.csv", "join_quality.csv")


class Board:
    """The dashboard's state and widgets for one viewer; `Board(...).widget` is what the notebook shows."""

    def __init__(self, source: BoardSource, review: str = "", viewer: Viewer | None = None):
        import ipywidgets as w

        self.source = source
        self.viewer = viewer or local_viewer()
        self.role = role = self.viewer.role
        self.snap: Snapshot | None = None
        self.status = w.HTML()
        self.status.add_class("board-status")
        guard = self.guard = guard_with(self.status)

        self.picker = w.Dropdown(description="Review", style={"description_width": "initial"}, layout=w.Layout(width="320px"))
        self.picker.add_class("board-review")
        self.refresh = w.Button(description="↻ refresh", tooltip="look for reviews stored and blockers acknowledged since the page was opened",
                                layout=w.Layout(width="100px"))
        self.refresh.add_class("board-refresh")
        self.title = w.HTML()
        self.tiles = w.HTML()
        self.tiles.add_class("board-tiles-html")
        self.stale = w.HTML()
        self.stale.add_class("board-stale-html")
        tabs: list[tuple[str, object]] = []
        self.blockers = self.promise = self.changes = self.orders = self.act = None
        self.m_act = self.m_calls = self.m_risk = None
        self.q_found: dict[str, Found] = {}
        self.q_version = 0
        self.shown: set[str] = set()
        if role.lookup and not role.blocker_queue:  # sales and support come to look an order up
            tabs.append(("Order lookup", self._lookup_tab(w, guard)))
        tabs.append((MEETING_TAB, self._meeting_tab(w, guard)))  # the report's order: pickups, act now, who calls
        if role.blocker_queue:
            tabs.append(("Blocker queue", self._blocker_tab(w, guard)))
        if role.promise:
            tabs.append(("Promises at risk", self._promise_tab(w, guard)))
        if role.changes:
            tabs.append(("Changes since last review", self._changes_tab(w, guard)))
        if role.lookup and role.blocker_queue:
            tabs.append(("Order lookup", self._lookup_tab(w, guard)))
        if role.charts:
            self.fig_funnel, self.fig_owner, self.fig_burn = w.Output(), w.Output(), w.Output()
            tabs.append(("Cutoff burn-down & charts", w.VBox([self.fig_burn, self.fig_funnel, self.fig_owner])))
        if role.orders:
            tabs.append(("All orders", self._orders_tab(w, guard)))
        if role.themes:
            self.t_go = w.Button(description="Show recurring themes", layout=w.Layout(width="200px"))
            self.t_out = w.Output()
            self.t_go.on_click(guard(lambda _: self.show_themes()))
            tabs.append(("Recurring themes", w.VBox([w.HTML(text("Blocker themes that recur across the stored reviews of this site.")),
                                                     self.t_go, self.t_out])))
        if role.exports:
            self.exports = w.HTML()
            self.exports.add_class("board-exports")
            tabs.append(("Exports", self.exports))
        self.tab_names = [t for t, _ in tabs]
        self.tabs = w.Tab(children=[c for _, c in tabs])
        for i, t in enumerate(self.tab_names):
            self.tabs.set_title(i, t)
        self.tabs.add_class("board-tabs")
        self.tabs.observe(guard(lambda _: self.show_tab()), names="selected_index")

        self._quiet = False
        self.picker.observe(guard(lambda ch: ch["new"] and not self._quiet and self.open_review(ch["new"])), names="value")
        self.refresh.on_click(guard(lambda _: self.load_reviews(keep=False)))
        who = w.HTML(who_html(self.viewer.name, role.label, self.viewer.signed_in, os.environ.get("VOILA_BASE_URL", "/")))
        head = w.HBox([self.title, who], layout=w.Layout(justify_content="space-between", align_items="center"))
        self.widget = w.VBox([w.HTML(STYLE + banner_html(self.viewer.banner)), head,
                              w.HBox([self.picker, self.refresh, self.status], layout=w.Layout(align_items="center")),
                              self.stale, self.tiles, self.tabs])
        self.widget.add_class("board-root")
        self.widget.add_class(f"board-role-{role.name}")
        self.load_reviews(prefer=review)
        self.widget.add_class("board-ready")

    # ---- tabs
    def _meeting_tab(self, w, guard):
        """The cutoff meeting's questions in the report's order: which trucks we will miss (next pickups and
        their verdicts), what to do first (act now, for the queue's role), who calls the customer (needs
        communication with drafts, then at risk), then how much changed."""
        self.m_pickups = w.HTML()
        self.m_pickups.add_class("board-meeting-pickups")
        parts = [self.m_pickups]
        if self.role.blocker_queue:
            self.m_act = PagedTable("board-act-now", lambda p: act_now_page(self.snap, p), guard)
            parts += [w.HTML(text("Act now: what clearing saves before the coming pickups", "h4", "board-section")), self.m_act.widget]
        if self.role.promise:
            self.m_calls = PagedTable("board-calls", lambda p: calls_page(self.snap, "needs_communication", p), guard)
            self.m_risk = PagedTable("board-calls-at-risk", lambda p: calls_page(self.snap, "at_risk", p), guard)
            parts += [w.HTML(text("Who calls the customer: needs communication, highest priority first", "h4", "board-section")),
                      self.m_calls.widget, w.HTML(text("Then: promise at risk", "h4", "board-section")), self.m_risk.widget]
        self.m_changes = w.HTML()
        parts.append(self.m_changes)
        box = w.VBox(parts)
        box.add_class("board-meeting")
        return box

    def _blocker_tab(self, w, guard):
        from .actions import ActPanel

        self.f_owner = dropdown("Owner", [], cls="board-filter-owner")
        self.f_reason = dropdown("Reason", [], cls="board-filter-reason")
        self.f_priority = dropdown("Priority ≥", [], cls="board-filter-priority", any_label="any")
        self.f_carrier = dropdown("Carrier", [], cls="board-filter-carrier")
        self.f_cutoff = dropdown("Pickup", [], cls="board-filter-cutoff")
        self.f_ship_by = dropdown("Ship-by", [], cls="board-filter-ship-by")
        self.f_age = w.Dropdown(options=list(AGE_OPTIONS), value=ALL, description="Age", style={"description_width": "initial"},
                                layout=w.Layout(width="auto"))
        self.f_age.add_class("board-filter-age")
        self.f_handling = w.Dropdown(options=list(HANDLING), value=ALL, description="Handling",
                                     style={"description_width": "initial"}, layout=w.Layout(width="auto"))
        self.f_handling.add_class("board-filter-handling")
        if self.viewer.acts:
            self.act = ActPanel(self.source, self.viewer, lambda: self.snap, guard, lambda: self.blockers.show(self.blockers.page))
        self.blockers = PagedTable("board-blockers", lambda p: blocker_page(self.snap, self.blocker_filter(), p), guard,
                                   hidden=("blocker_id",), on_show=self.act.set_page if self.act else None)
        for d in (self.f_owner, self.f_reason, self.f_priority, self.f_carrier, self.f_cutoff, self.f_ship_by, self.f_age,
                  self.f_handling):
            d.observe(guard(lambda _: self.blockers.show(0)), names="value")
        rows = [w.HBox([self.f_owner, self.f_reason, self.f_priority], layout=w.Layout(flex_flow="row wrap")),
                w.HBox([self.f_carrier, self.f_cutoff, self.f_ship_by, self.f_age, self.f_handling], layout=w.Layout(flex_flow="row wrap")),
                self.blockers.widget]
        if self.act:
            rows.append(self.act.widget)
        elif self.role.act:
            rows.append(w.HTML(text("Sign in to acknowledge, assign or comment on a blocker.", "p", "board-msg")))
        return w.VBox(rows)

    def _promise_tab(self, w, guard):
        self.p_status = w.ToggleButtons(options=[("both", ALL), ("needs communication", "needs_communication"),
                                                 ("at risk", "at_risk")], value=ALL)
        self.p_status.add_class("board-promise-status")
        self.promise = PagedTable("board-promise", lambda p: promise_page(self.snap, unset(self.p_status.value), p), guard)
        self.p_status.observe(guard(lambda _: self.promise.show(0)), names="value")
        return w.VBox([self.p_status, self.promise.widget])

    def _changes_tab(self, w, guard):
        self.c_counts = w.HTML()
        self.c_kind = dropdown("Kind", [], lambda k: k.replace("_", " "), cls="board-change-kind")
        self.changes = PagedTable("board-changes", lambda p: change_page(self.snap, unset(self.c_kind.value), p), guard)
        self.c_kind.observe(guard(lambda _: self.changes.show(0)), names="value")
        return w.VBox([self.c_counts, self.c_kind, self.changes.widget])

    def _orders_tab(self, w, guard):
        self.o_state = dropdown("State", [], lambda k: k.replace("_", " "), cls="board-order-state")
        self.o_promise = dropdown("Promise", [], lambda k: k.replace("_", " "), cls="board-order-promise")
        self.orders = PagedTable("board-orders",
                                 lambda p: order_page(self.snap, unset(self.o_state.value), unset(self.o_promise.value), p), guard)
        for d in (self.o_state, self.o_promise):
            d.observe(guard(lambda _: self.orders.show(0)), names="value")
        return w.VBox([w.HBox([self.o_state, self.o_promise]), self.orders.widget])

    def _lookup_tab(self, w, guard):
        self.q = w.Text(placeholder="order, PO, pick ticket, task, carton, shipment, tracking no., hold or case",
                        layout=w.Layout(width="480px"), continuous_update=False)
        self.q.add_class("board-lookup-input")
        self.q_go = w.Button(description="Find", button_style="primary", layout=w.Layout(width="80px"))
        self.q_go.add_class("board-lookup-go")
        self.q_pick = w.Dropdown(description="Matches", layout=w.Layout(display="none"))
        self.q_out = w.HTML()
        self.q_out.add_class("board-lookup-result")
        self.q_go.on_click(guard(lambda _: self.lookup(self.q.value)))
        self.q.observe(guard(lambda ch: self.lookup(ch["new"])), names="value")
        self.q_pick.observe(guard(lambda ch: ch["new"] and not self._quiet and self.show_order(ch["new"])), names="value")
        return w.VBox([w.HBox([self.q, self.q_go]), self.q_pick, self.q_out])

    # ---- state
    def blocker_filter(self) -> BlockerFilter:
        return BlockerFilter(owner=unset(self.f_owner.value), reason=unset(self.f_reason.value),
                             min_priority=unset(self.f_priority.value), carrier=unset(self.f_carrier.value),
                             cutoff=unset(self.f_cutoff.value), ship_by=unset(self.f_ship_by.value), min_age=unset(self.f_age.value),
                             handling=unset(self.f_handling.value))

    def load_reviews(self, prefer: str = "", keep: bool = True) -> None:
        """Fill the review picker (newest first) and open the preferred review, else the latest."""
        df = list_reviews(self.source)
        if df.empty:
            self.title.value = text(f"{self.source.settings.name}: handoff board", "h2")
            raise HandoffError(f"{self.source.history_db}: no cutoff review of site '{self.source.site}' stored yet "
                               f"(run one: handoff run --site ... --at 'YYYY-MM-DD HH:MM')")
        options = []
        for i, (d, t, stale) in enumerate(zip(df["review_date"], df["review_time"], df["stale"])):
            label = review_label(d, t) + (" (latest)" if i == 0 else "") + (" STALE" if stale else "")
            options.append((label, f"{pd.Timestamp(d):%Y-%m-%d}|{t}"))
        values = [v for _, v in options]
        want = prefer.replace(" ", "|").replace(":", "") if prefer else ""
        if want and want not in values:
            raise HandoffError(f"review '{prefer}' is not stored for site '{self.source.site}' (stored: "
                               f"{', '.join(label for label, _ in options[:8])})")
        current = self.snap and f"{self.snap.key.review_date:%Y-%m-%d}|{self.snap.key.review_time}"
        target = want or (current if keep and current in values else values[0])
        self._quiet = True
        try:
            self.picker.options = options
            self.picker.value = target
        finally:
            self._quiet = False
        if target != current or not keep:
            self.open_review(target)

    def open_review(self, value: str) -> None:
        """Open a review: header and tiles now, each tab's rows when the tab is first shown (a page opens on
        one tab: the others cost nothing until someone looks at them)."""
        day, hhmm = value.split("|")
        t0 = time.perf_counter()
        snap = load_snapshot(self.source, dt.date.fromisoformat(day), hhmm, self.role)
        if self.snap is not None:
            self.snap.close()
        self.snap = snap
        self.title.value = text(f"{self.source.settings.name}: handoff board, cutoff review {snap.label}", "h2")
        self.h = headline(snap)
        self.stale.value = stale_html(snap.stale_headline, snap.on_stale, self.role.promise)
        self.tiles.value = tiles_html(self.h)
        if self.role.lookup:
            self.q_out.value = ""
            self.q_pick.layout.display = "none"
        self.shown: set[str] = set()
        self.show_tab()
        took = time.perf_counter() - t0
        self.status.value = text(f"Review {snap.label} loaded in {took:.1f} s"
                                 + ("" if snap.picture else " (run folder gone: no timelines, changes from history)"),
                                 "p", "board-msg")

    def show_tab(self) -> None:
        """Fill the visible tab for the open review, once."""
        name = self.tab_names[self.tabs.selected_index or 0] if self.tab_names else ""
        if self.snap is None or name in self.shown:
            return
        self.shown.add(name)
        fill = {MEETING_TAB: self._fill_meeting, "Blocker queue": self._fill_blockers, "Promises at risk": lambda: self.promise.show(0),
                "Changes since last review": self._fill_changes, "All orders": self._fill_orders,
                "Cutoff burn-down & charts": self.show_charts,
                "Exports": lambda: setattr(self.exports, "value", exports_html(self.snap))}.get(name)
        if fill is not None:
            fill()

    def _fill_meeting(self) -> None:
        snap = self.snap
        if not snap.meeting:
            self.m_pickups.value = text(
                "This review holds no meeting view (it was run before the meeting view existed, or its run folder is gone): "
                "the other tabs show its blockers and promises.", "p", "board-msg board-meeting-none")
        else:
            self.m_pickups.value = pickups_html(meeting_pickups(snap))
        for t in (self.m_act, self.m_calls, self.m_risk):
            if t is not None:
                t.show(0)
        if self.role.changes:
            if snap.previous is None:
                self.m_changes.value = text("No earlier review to compare with.", "p", "board-msg")
            else:
                n = int(change_counts(snap)["count"].sum())
                prev = review_label(snap.previous.review_date, snap.previous.review_time)
                self.m_changes.value = text(f"{n:,} changes since the review of {prev}: see the tab Changes since last review.",
                                            "p", "board-msg board-meeting-changes")

    def _fill_blockers(self) -> None:
        opts = blocker_options(self.snap)
        for d, key in ((self.f_owner, "owner"), (self.f_reason, "reason"), (self.f_priority, "min_priority"),
                       (self.f_carrier, "carrier"), (self.f_cutoff, "cutoff"), (self.f_ship_by, "ship_by")):
            with d.hold_trait_notifications():
                d.options = [(d.options[0][0], ALL)] + [(str(v), v) for v in opts[key]]
                d.value = ALL
        self.f_age.value = self.f_handling.value = ALL
        self.blockers.show(0)

    def _fill_changes(self) -> None:
        snap = self.snap
        counts = change_counts(snap)
        if snap.previous is None:
            self.c_counts.value = text("No earlier review of this site in the history: nothing to compare with.", "p", "board-msg")
        else:
            prev = review_label(snap.previous.review_date, snap.previous.review_time)
            self.c_counts.value = text(f"Since the review of {prev}:", "p") + html_table(counts, "board-change-counts")
        with self.c_kind.hold_trait_notifications():
            self.c_kind.options = [(ANY, ALL)] + [(k.replace("_", " "), k) for k, n in counts.itertuples(index=False) if n]
            self.c_kind.value = ALL
        self.changes.show(0)

    def _fill_orders(self) -> None:
        for d, key in ((self.o_state, "by_state"), (self.o_promise, "by_promise")):
            with d.hold_trait_notifications():
                d.options = [(ANY, ALL)] + [(k.replace("_", " "), k) for k in self.h[key]]
                d.value = ALL
        self.orders.show(0)

    def show_charts(self) -> None:
        from handoff_lib.publish import charts

        with self.snap.reading() as con:
            show_figure(self.fig_burn, charts.cutoff_burndown(con))
            show_figure(self.fig_funnel, charts.state_funnel(con))
            show_figure(self.fig_owner, charts.blockers_by_owner(con))

    def lookup(self, identifier: str) -> None:
        """Look an identifier up; one order is shown at once, several (a PO two orders share) are listed
        to choose from, as `handoff lookup` lists them."""
        if not (identifier or "").strip():
            return
        found = find(self.snap, self.source.settings, identifier)
        self.q_found = {f.order_id: f for f in found}
        self.q_version += 1
        self._quiet = True
        try:
            # options, then value, each on its own: under hold_trait_notifications a Dropdown validates the
            # value against its old options and refuses it (TraitError: the multi-match lookup used to fail so)
            self.q_pick.options = ([(f"choose one of {len(found)} orders", ALL)]
                                   + [(f"{f.order_id} ({f.kind} {f.matched})", f.order_id) for f in found])
            self.q_pick.value = ALL
        finally:
            self._quiet = False
        self.q_pick.layout.display = "" if len(found) > 1 else "none"
        if not found:
            self.q_out.value = text(f"'{identifier.strip()}' matches no order in the review of {self.snap.label}.",
                                    "p", "board-msg board-lookup-none")
        elif len(found) > 1:
            self.q_out.value = matches_html(identifier.strip(), found, order_summaries(self.snap, list(self.q_found)),
                                            self.q_version)
        else:
            self.show_order(found[0].order_id)

    def show_order(self, order_id: str) -> None:
        self.q_version += 1
        self.q_out.value = timeline_html(order_detail(self.snap, order_id), self.q_found.get(order_id), self.q_version)

    def show_themes(self) -> None:
        try:
            from handoff_lib.learn import themes

            widget = themes.explorer(self.source.history_db, self.source.site)
        except (ImportError, AttributeError) as exc:
            raise HandoffError(f"recurring themes are not available in this version ({exc})") from None
        from IPython.display import display

        self.t_out.clear_output()
        with self.t_out:
            display(widget)
        self.t_go.layout.display = "none"


def exports_html(snap: Snapshot) -> str:
    """Links to the review's report and exports, served by the board server to roles with exports."""
    import html

    folder = snap.outputs
    have = [f for f in EXPORT_FILES if folder and (folder / f).is_file()]
    if not have:
        return text("This review's run folder holds no exports (it may have been cleaned up).", "p", "board-msg")
    base = os.environ.get("VOILA_BASE_URL", "/").rstrip("/")
    items = "".join(
        f'<li><a href="{html.escape(f"{base}/handoff/exports/{snap.key.review_date:%Y-%m-%d}/{snap.key.review_time}/{f}", quote=True)}" '
        f'target="_blank" rel="noopener noreferrer" download>{html.escape(f)}</a></li>' for f in have)
    return text(f"The report and exports of the review of {snap.label}:", "p") + f'<ul class="board-export-list">{items}</ul>'


def dashboard(history_db: str = "", site: str = "", review: str = "", viewer: Viewer | None = None):
    """The handoff board as one widget for `viewer` (default: the local user, ops). `site`: the site
    parameters file (default $HANDOFF_BOARD_SITE, else parameters/demo.yaml); `history_db`: default
    $HANDOFF_BOARD_HISTORY, else the site's outputs/<site>/history.duckdb; `review`: 'YYYY-MM-DD HH:MM'
    (default: the latest stored review). A missing site file or history shows its message on the page
    instead of a traceback."""
    import ipywidgets as w

    viewer = viewer or local_viewer()
    try:
        return Board(resolve_source(site, history_db), review, viewer).widget
    except HandoffError as exc:
        box = w.VBox([w.HTML(STYLE + banner_html(viewer.banner)), w.HTML(text("Handoff board", "h2")),
                      w.HTML(text(str(exc), "p", "board-error"))])
        box.add_class("board-root")
        box.add_class("board-ready")
        return box

