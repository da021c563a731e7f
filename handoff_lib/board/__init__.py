"""Stage 7, board: the interactive handoff board for the ops meeting and the teams around it, ipywidgets over
the stored review snapshots, served by Voila with sign-in and roles (docs/board.md). It reads what publish and
history wrote and never changes a review; it may import publish, learn, history, rules, join, load and the
shared modules.

| module | its job |
|---|---|
| `roles` | the roles (ops, status, planner), what each sees, the viewer of a page |
| `data` | the stored reviews; one review read for one role, one page of rows at a time |
| `render` | HTML strings: escaped tables, tiles, the lookup answer, banners |
| `widgets` | paged tables, filters, figures, the error guard of every callback |
| `layout` | the page: header and the tabs of the viewer's role (`dashboard`) |
| `actions` | acknowledge, assign, comment (the acknowledgement log, `handoff_lib.history.acks`) |
| `session` | how a page's kernel learns who opened it, from the server |
| `auth` | users file with hashed passwords, sign-in |
| `server` | the Voila server: sign-in, roles per kernel, capacity, culling, TLS |

Notebooks import `dashboard` and `viewer` from here.
"""

from .data import (
    BlockerFilter,
    BoardSource,
    Found,
    OrderDetail,
    Page,
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
    promise_page,
    resolve_source,
    review_label,
)
from .layout import Board, dashboard
from .render import html_table, safe_url, text
from .roles import ROLES, Role, Viewer
from .session import viewer

__all__ = [
    "ROLES", "BlockerFilter", "Board", "BoardSource", "Found", "OrderDetail", "Page", "Role", "Snapshot", "Viewer",
    "act_now_page", "blocker_options", "blocker_page", "calls_page", "change_counts", "change_page", "dashboard", "find", "headline", "html_table",
    "list_reviews", "load_snapshot", "meeting_pickups", "order_detail", "order_page", "promise_page", "resolve_source", "review_label",
    "safe_url", "text", "viewer",
]
