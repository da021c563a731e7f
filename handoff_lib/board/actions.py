"""Acting on a blocker from the board: acknowledge it, assign it to a person, comment on it, say by
when it should be cleared. Each action is one entry in the acknowledgement log (`handoff_lib.history.acks`),
signed with the viewer the server named: never a name typed on the page. Nothing is written back to a
source system.

Only a viewer whose role acts (`ops`) and who is a known person gets this panel; `record` checks the
same again, so a panel built by mistake could not write either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from handoff_lib.errors import HandoffError
from handoff_lib.history import acks

from .data import BoardSource, Page, Snapshot, blocker_choices, blocker_row
from .render import entries_html, text
from .roles import Viewer


def record(source: BoardSource, snap: Snapshot, viewer: Viewer, what: str, blocker_id: str, assignee: str = "",
           comment: str = "", expected_by: str = "", now: dt.datetime | None = None) -> int:
    """Append one action on a blocker of the review in `snap` to the site's acknowledgement log."""
    if not viewer.acts:
        raise HandoffError(f"{viewer.name} ({viewer.role.name}) cannot act on blockers: only a signed-in ops user can")
    row = blocker_row(snap, blocker_id) if blocker_id else None
    if row is None:
        raise HandoffError("pick a blocker of this review first")
    entry = acks.Entry(
        site=source.site, blocker_id=blocker_id, order_id=row["order_id"], what=what, actor=viewer.user,
        actor_name=viewer.name, assignee=assignee or None, comment=comment or None,
        expected_by=acks.parse_expected(expected_by, source.settings.tz, now),
        review_date=snap.key.review_date, review_time=snap.key.review_time,
    )
    return acks.record(source.ack_log, entry, now)


class ActPanel:
    """Pick a blocker of the page shown, then acknowledge / assign / comment; shows its log."""

    def __init__(self, source: BoardSource, viewer: Viewer, snap: Callable[[], Snapshot], guard: Callable,
                 after: Callable[[], None]):
        import ipywidgets as w

        self.source, self.viewer, self.snap, self.after = source, viewer, snap, after
        self.pick = w.Dropdown(description="Blocker", options=[], style={"description_width": "initial"},
                               layout=w.Layout(width="520px"))
        self.pick.add_class("board-act-blocker")
        self.assignee = w.Text(placeholder="assign to (name)", layout=w.Layout(width="200px"))
        self.assignee.add_class("board-act-assignee")
        self.expected = w.Text(placeholder="expected by HH:MM", layout=w.Layout(width="150px"))
        self.expected.add_class("board-act-expected")
        self.comment = w.Textarea(placeholder=f"comment (at most {acks.MAX_COMMENT} characters)", layout=w.Layout(width="520px"))
        self.comment.add_class("board-act-comment")
        self.buttons = {}
        for what, label, style in (("acknowledge", "Acknowledge", "primary"), ("assign", "Assign", ""), ("comment", "Comment", "")):
            b = w.Button(description=label, button_style=style, layout=w.Layout(width="120px"))
            b.add_class(f"board-act-{what}")
            b.on_click(guard(lambda _, what=what: self.act(what)))
            self.buttons[what] = b
        self.message = w.HTML()
        self.message.add_class("board-act-message")
        self.log = w.HTML()
        self.log.add_class("board-act-log-html")
        self.pick.observe(guard(lambda ch: self.show_log()), names="value")
        self.widget = w.VBox([
            w.HTML(text(f"Act on a blocker (as {viewer.name}); nothing is written to the source systems.", "h4")),
            self.pick, w.HBox([self.assignee, self.expected]), self.comment, w.HBox(list(self.buttons.values())),
            self.message, self.log,
        ])
        self.widget.add_class("board-act")

    def set_page(self, page: Page) -> None:
        """Offer the blockers of the page the queue shows."""
        current = self.pick.value
        choices = blocker_choices(self.snap(), page.rows)
        ids = [v for _, v in choices]
        self.pick.options = choices
        self.pick.value = current if current in ids else (ids[0] if ids else None)
        self.show_log()

    def show_log(self) -> None:
        bid = self.pick.value
        self.log.value = entries_html(acks.history(self.source.ack_log, self.source.site, bid), self.source.settings.tz) if bid else ""

    def act(self, what: str) -> Any:
        self.message.value = ""
        record(self.source, self.snap(), self.viewer, what, self.pick.value or "", self.assignee.value,
               self.comment.value, self.expected.value)
        self.assignee.value = self.comment.value = self.expected.value = ""
        self.message.value = text(f"{what} recorded for {self.viewer.name}", "p", "board-msg board-act-done")
        self.after()
        self.show_log()
