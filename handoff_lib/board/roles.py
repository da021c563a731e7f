"""Who sees what on the board: the three roles, and the viewer a page was opened by.

A role decides what a page's kernel *loads*, not which widgets are hidden: a `status` kernel never
builds the blocker queue, never selects a note or a board comment, and has no widget that could ask for
them (Voila refuses code sent to a kernel, but every widget that exists can be driven by its page).

| role | sees | acts |
|---|---|---|
| `ops` | everything: blocker queue with details and notes, comments, promise view, changes, lookup with the full timeline, all orders, charts, themes, exports | acknowledge, assign, comment |
| `status` (sales, support) | order lookup (state, promise, blocker reasons and owners, who is handling them, timeline without notes), promise view with draft notes built without notes, changes without details; none of the fields the site marks internal | - |
| `planner` | headline counts, charts, recurring themes, exports | - |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    blocker_queue: bool = False  # the ranked queue of every open blocker, with its filters
    notes: bool = False  # source notes, blocker details, state reasons that quote notes, board comments
    internal_fields: bool = False  # fields the site marks internal (board: internal_fields:)
    promise: bool = False  # promise view with draft notes
    changes: bool = False
    lookup: bool = False
    orders: bool = False  # every order of the review
    charts: bool = False
    themes: bool = False
    exports: bool = False
    act: bool = False  # acknowledge, assign, comment


ROLES: dict[str, Role] = {
    "ops": Role("ops", "operations", blocker_queue=True, notes=True, internal_fields=True, promise=True, changes=True,
                lookup=True, orders=True, charts=True, themes=True, exports=True, act=True),
    "status": Role("status", "sales and support", promise=True, changes=True, lookup=True),
    "planner": Role("planner", "planning", charts=True, themes=True, exports=True),
}


def role(name: str) -> Role:
    """The role called `name`; a clear error for any other name."""
    try:
        return ROLES[name]
    except KeyError:
        from handoff_lib.errors import HandoffError

        raise HandoffError(f"role '{name}' is not one of {', '.join(ROLES)}") from None


@dataclass(frozen=True)
class Viewer:
    """Who opened a board page, as the board server says (never as the browser says)."""

    user: str  # user name ("jdiaz")
    name: str  # display name ("J. Diaz")
    role: Role
    can_act: bool  # a known person: signed in, or the user of this machine on loopback without login
    banner: str = ""  # a warning the server wants on every page (e.g. served without login)
    signed_in: bool = False

    @property
    def acts(self) -> bool:
        return self.can_act and self.role.act
