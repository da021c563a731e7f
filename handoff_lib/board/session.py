"""How a board page's kernel learns who opened the page: from the server, never from the browser.

When the server hands a kernel to a page request (a pre-heated one or a new one), it writes
`<sessions>/<kernel id>.json` with the signed-in user, their role, whether they may act, and the
banner to show. The folder is private to the server's account (0700) and named to the kernels in
$HANDOFF_BOARD_SESSIONS. The notebook's `board.viewer()` waits for that file: a pre-heated kernel
runs the notebook up to that cell before any request and waits there, so what it loads afterwards
(`layout.Board`) is decided by the role the server wrote. A kernel outside the board server (JupyterLab,
papermill) has no $HANDOFF_BOARD_SESSIONS and is the local user with the `ops` role.
"""

from __future__ import annotations

import contextvars
import getpass
import json
import os
import tempfile
import time
from pathlib import Path

from handoff_lib.errors import HandoffError

from .roles import ROLES, Viewer, role

ENV_SESSIONS = "HANDOFF_BOARD_SESSIONS"
POLL_S = 0.02
# The viewer of the page request being served (set by the server's page handler for the request's task):
# the kernel manager binds the kernel it hands to that request to this viewer.
PAGE_VIEWER: contextvars.ContextVar[Viewer | None] = contextvars.ContextVar("handoff_page_viewer", default=None)


def local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def local_viewer() -> Viewer:
    """The user of this machine: `ops`, may act (a board run outside the board server, or on loopback
    without a users file)."""
    user = local_user()
    return Viewer(user, f"{user} (this machine)", ROLES["ops"], can_act=True)


def kernel_id() -> str | None:
    """This kernel's id: Voila sets $VOILA_KERNEL_ID before the first cell; else the connection file name."""
    kid = os.environ.get("VOILA_KERNEL_ID")
    if kid:
        return kid
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
    except Exception:  # noqa: BLE001 - not in a kernel
        return None
    return name[len("kernel-"):] if name.startswith("kernel-") else None


def viewer(timeout_s: float | None = None) -> Viewer:
    """Who opened this page, as the board server wrote it (waits until it does; a pre-heated kernel waits
    here until its page is requested). Outside the board server: the local user."""
    folder = os.environ.get(ENV_SESSIONS)
    if not folder:
        return local_viewer()
    kid = kernel_id()
    if not kid:
        raise HandoffError("this board kernel does not know its kernel id; reload the page")
    path = Path(folder) / f"{kid}.json"
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not path.exists():
        if deadline is not None and time.monotonic() > deadline:
            raise HandoffError("the board server did not say who opened this page; reload the page")
        time.sleep(POLL_S)
    data = json.loads(path.read_text(encoding="utf-8"))
    return Viewer(user=data["user"], name=data["name"], role=role(data["role"]), can_act=bool(data["can_act"]),
                  banner=data.get("banner", ""), signed_in=bool(data.get("signed_in")))


class Sessions:
    """The server's side: which user each page's kernel belongs to (in memory, and one file per kernel
    for the kernel to read)."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="handoff-board-sessions-"))
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.owners: dict[str, str] = {}

    def bind(self, kernel_id: str, v: Viewer) -> None:
        """Give the kernel to the viewer (atomically: the kernel never reads half a file)."""
        self.owners[kernel_id] = v.user
        data = {"user": v.user, "name": v.name, "role": v.role.name, "can_act": v.can_act, "banner": v.banner,
                "signed_in": v.signed_in}
        part = self.folder / f".{kernel_id}.part"
        part.write_text(json.dumps(data), encoding="utf-8")
        os.chmod(part, 0o600)
        part.replace(self.folder / f"{kernel_id}.json")

    def owner(self, kernel_id: str) -> str | None:
        return self.owners.get(kernel_id)

    def forget(self, kernel_id: str) -> None:
        self.owners.pop(kernel_id, None)
        (self.folder / f"{kernel_id}.json").unlink(missing_ok=True)

    def count(self) -> int:
        return len(self.owners)
