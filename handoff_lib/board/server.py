"""The board server: Voila serving notebooks/board.ipynb, with sign-in, roles per kernel, a capacity
limit that says so in plain words, culling of abandoned pages, and TLS (docs/board.md).

- Loopback (127.0.0.1) by default. With a users file (the site's `board: users:` or --users) every page
  needs a sign-in, on any host; on another host without one the server refuses to start unless
  --no-login is given, and then every page carries a banner saying so.
- Who a page belongs to is decided here, from the signed-in user: the page's kernel is given to that
  user (`session.Sessions`), loads what the user's role may see (`roles.py`), and only that user may
  connect to it or shut it down (`BoardAuthorizer`, `OwnedShutdownHandler`).
- At most `max_kernels` kernels (pre-heated ones included). When they are all taken a page gets a
  plain "the board is full" page that retries by itself; the log says why (how many pages are open,
  how many have lost their connection and when the culler reclaims them).
- A page whose connection is gone (closed, killed browser, sleeping laptop: websocket pings stop) gives
  its kernel back after `cull_idle` seconds of inactivity, checked every `cull_interval` seconds.
- Sources and tracebacks never reach the browser.
- The fix for page loads that hang (`patch_session_send`) is applied before Voila starts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import html
import ipaddress
import os
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider
from jupyter_server.auth.identity import User as JupyterUser
from jupyter_server.auth.login import LoginFormHandler
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from tornado.web import HTTPError
from traitlets import Integer

from handoff_lib.errors import HandoffError

from .auth import UsersFile, users_file
from .data import ENV_HISTORY, ENV_SITE, PROJECT, BoardSource, resolve_source, run_folder
from .layout import EXPORT_FILES
from .roles import ROLES, Viewer
from .session import ENV_SESSIONS, PAGE_VIEWER, Sessions, local_user

NOTEBOOK = PROJECT / "notebooks" / "board.ipynb"
ENV_HOST = "HANDOFF_BOARD_HOST"
ENV_PORT = "HANDOFF_BOARD_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
POOL_SIZE = 2  # pre-heated kernels kept ready (each waits for its page at `board.viewer()`)
CULL_IDLE_S = 45  # a kernel with no page connected and no activity this long is shut down ...
CULL_INTERVAL_S = 15  # ... checked this often: an abandoned page's kernel lives about a minute
WS_PING_MS = 10_000  # websocket keep-alive: a page that stops answering (network gone, laptop asleep) ...
WS_PING_TIMEOUT_MS = 25_000  # ... is disconnected once its last pong is this old (more than the interval: Jupyter checks
# at each ping, so equal values drop live pages; tornado warns once that its own, unused, timeout is clamped)
MAX_KERNELS = 60  # kernels at once, pre-heated ones included; a page beyond gets "the board is full"
FIRST_CONNECT_S = 180  # a page's kernel whose page has not connected yet (still loading on a busy machine) is kept this long
RETRY_S = 15  # a "board is full" page retries this often
IOPUB_TIMEOUT_S = 120  # how long Voila waits for a cell's output after the kernel says the cell is done
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NO_LOGIN_BANNER = ("No sign-in: anyone who can reach this address can open this board "
                   "(served with --no-login; see docs/board.md to set up users).")



# ------------------------------------------------------------------------------ configuration

@dataclass
class BoardConfig:
    """What the server decided at start: how people sign in, and where kernels learn who they serve."""

    source: BoardSource
    mode: str  # "users" (sign-in), "local" (loopback, no users file: the local user) or "open" (--no-login)
    sessions: Sessions
    users: UsersFile | None = None
    open_role: str = "status"  # the role of everyone in "open" mode
    banner: str = ""
    started: float = field(default_factory=time.monotonic)

    def viewer_for(self, user: JupyterUser | None) -> Viewer | None:
        """The viewer a signed-in (or, without sign-in, anonymous / local) user is, with their role."""
        if user is None:
            return None
        if self.mode == "users":
            u = self.users.get(user.username) if self.users else None
            return Viewer(u.user, u.name, ROLES[u.role], can_act=True, banner=self.banner, signed_in=True) if u else None
        if self.mode == "local":
            return Viewer(user.username, user.name, ROLES["ops"], can_act=True, banner=self.banner)
        return Viewer(user.username, "anonymous", ROLES[self.open_role], can_act=False, banner=self.banner)


def _config(handler) -> BoardConfig:
    return handler.settings["handoff_board"]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------ sign-in

class BoardIdentityProvider(IdentityProvider):
    """Users from the board's users file, signed in with a cookie (tornado's signed cookie, which
    carries the user name and a stamp of the password hash). Without a users file: the local user on
    loopback, or a per-browser anonymous user with --no-login."""

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list:
        return [(r"/login", BoardLoginHandler), (r"/logout", BoardLogoutHandler)]

    def user_to_cookie(self, user: JupyterUser) -> str:
        import json

        return json.dumps({"username": user.username, "name": user.name, "stamp": user.display_name})

    def user_from_cookie(self, cookie_value: str) -> JupyterUser | None:
        import json

        d = json.loads(cookie_value)
        return JupyterUser(d["username"], d["name"], d.get("stamp", ""))

    def get_user(self, handler: web.RequestHandler) -> JupyterUser | None:
        cfg = _config(handler)
        if cfg.mode == "local":
            me = local_user()
            return JupyterUser(me, f"{me} (this machine)")
        user = self.get_user_cookie(handler)
        if cfg.mode == "open":
            if user is None:
                user = self.generate_anonymous_user(handler)
                user = JupyterUser(user.username, "anonymous", "")
                self.set_login_cookie(handler, user)
            return user
        if user is None:
            return None
        try:
            known = cfg.users.get(user.username) if cfg.users else None
        except HandoffError as exc:  # the users file was removed or broken while serving: nobody is signed in
            self.log.error("handoff board: %s", exc)
            known = None
        if known is None or known.stamp != user.display_name:  # removed, or the password changed since
            self.clear_login_cookie(handler)
            return None
        return JupyterUser(known.user, known.name, known.stamp)


class BoardLoginHandler(LoginFormHandler):
    """User name and password; the same answer for an unknown user and a wrong password."""

    def _render(self, message: str = "", status: int = 200) -> None:
        cfg = _config(self)
        nxt = self.get_argument("next", default=self.base_url)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page_html(
            f"{cfg.source.settings.name}: sign in",
            f"""<form method="post" action="{html.escape(self.base_url.rstrip('/') + '/login', quote=True)}" class="board-login">
            {self.xsrf_form_html()}<input type="hidden" name="next" value="{html.escape(nxt, quote=True)}">
            <p><label>User name <input name="username" autocomplete="username" autofocus required></label></p>
            <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
            <p><button type="submit">Sign in</button></p></form>"""
            + (f'<p class="board-login-error">{html.escape(message)}</p>' if message else ""),
            cfg.banner))

    @allow_unauthenticated
    def get(self) -> None:
        if self.current_user and _config(self).mode == "users":
            self._redirect_safe(self.get_argument("next", default=self.base_url))
        else:
            self._render()

    @allow_unauthenticated
    async def post(self) -> None:
        cfg = _config(self)
        if cfg.mode != "users":
            self._redirect_safe(self.get_argument("next", default=self.base_url))
            return
        name = self.get_argument("username", default="").strip()
        password = self.get_argument("password", default="")
        loop = asyncio.get_running_loop()
        try:
            user = await loop.run_in_executor(None, cfg.users.verify, name, password)
        except HandoffError as exc:
            self.log.error("handoff board: sign-in failed: %s", exc)
            self._render("Sign-in is not available right now; the board server's log says why.", 503)
            return
        if user is None:
            self.log.warning("handoff board: sign-in refused for %r from %s (wrong user name or password)",
                             name[:64], self.request.remote_ip)
            await asyncio.sleep(1.0)  # slows guessing down; the event loop stays free
            self._render("Wrong user name or password.", 403)
            return
        self.identity_provider.set_login_cookie(self, JupyterUser(user.user, user.name, user.stamp))
        self.log.info("handoff board: %s (%s) signed in from %s", user.user, user.role, self.request.remote_ip)
        self._redirect_safe(self.get_argument("next", default=self.base_url))


class BoardLogoutHandler(JupyterHandler):
    @allow_unauthenticated
    def get(self) -> None:
        self.identity_provider.clear_login_cookie(self)
        self.redirect(self.base_url.rstrip("/") + "/login")


class BoardAuthorizer(Authorizer):
    """A page's kernel is its viewer's alone: connecting to it, reading or shutting it down is refused to
    anyone else (kernel ids are random, but never the only lock)."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        if resource != "kernels":
            return True
        kid = handler.path_kwargs.get("kernel_id") or getattr(handler, "kernel_id", None)
        owner = _config(handler).sessions.owner(kid) if kid else None
        allowed = user is not None and owner is not None and owner == user.username
        if not allowed:
            self.log.warning("handoff board: refused %s on kernel %s to %r (its page belongs to %r)", action, kid,
                             getattr(user, "username", None), owner)
        return allowed


# ------------------------------------------------------------------------------ pages

PAGE_STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 15px; margin: 3em auto; max-width: 40em; color: #222; }
.board-banner { background: #fff3cd; border: 2px solid #b26a00; padding: 6px 10px; font-weight: 600; }
.board-login-error { color: #c62828; font-weight: 600; } label { display: inline-block; min-width: 22em; }
input { font-size: 15px; padding: 3px 6px; } button { font-size: 15px; padding: 4px 16px; }
</style>"""


def page_html(title: str, body: str, banner: str = "", refresh_s: int | None = None) -> str:
    """A small self-contained page (no script, no outside request); `body` must already be escaped."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else ""
    top = f'<div class="board-banner">{html.escape(banner)}</div>' if banner else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{html.escape(title)}</title>{PAGE_STYLE}</head>"
            f"<body>{top}<h2>{html.escape(title)}</h2>{body}</body></html>")


def full_page(cfg: BoardConfig, kernels: int, limit: int) -> str:
    return page_html(
        f"{cfg.source.settings.name}: the board is full",
        f"<p class='board-full'>The board is full right now: {kernels} pages are open and this server holds at most "
        f"{limit} at once.</p><p>This page tries again by itself every {RETRY_S} seconds. A page that was closed "
        "gives its place back within about a minute.</p>",
        cfg.banner, RETRY_S)


def _voila_page_handler():
    from voila.tornado.handler import TornadoVoilaHandler

    class BoardPageHandler(TornadoVoilaHandler):
        """Voila's page, for a signed-in user with a role, when there is room; the kernel handed to the
        page is bound to that user (see LimitedKernelManager)."""

        async def prepare(self, *args, **kwargs):
            result = super().prepare(*args, **kwargs)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            # Voila 0.5.13's page sends its kernel-shutdown beacon with the _xsrf cookie's value but never
            # sets that cookie, so a closed page's kernel lived on: reading xsrf_token sets it (the check stays on).
            self.xsrf_token  # noqa: B018
            return result

        @web.authenticated
        async def get(self, path=None):
            cfg = _config(self)
            viewer = cfg.viewer_for(self.current_user)
            if viewer is None:
                self.identity_provider.clear_login_cookie(self)
                self.redirect(self.get_login_url())
                return
            km = self.kernel_manager
            if not km.room_for_page(self.notebook_path):
                km.log_full(viewer)
                self.set_status(503)
                self.set_header("Retry-After", str(RETRY_S))
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.finish(full_page(cfg, len(km.list_kernel_ids()), km.max_kernels))
                return
            token = PAGE_VIEWER.set(viewer)
            try:
                await super().get(path)
            finally:
                PAGE_VIEWER.reset(token)

        def should_use_rendered_notebook(self, notebook_data, pool_size, template_name, theme, request_args) -> bool:
            return (super().should_use_rendered_notebook(notebook_data, pool_size, template_name, theme, request_args)
                    and self.kernel_manager.pooled_ready(self.notebook_path))

        def write_error(self, status_code: int, **kwargs) -> None:
            if status_code == 503:  # a kernel could not start because the board filled up meanwhile
                self.set_header("Retry-After", str(RETRY_S))
                self.finish(full_page(_config(self), len(self.kernel_manager.list_kernel_ids()), self.kernel_manager.max_kernels))
                return
            super().write_error(status_code, **kwargs)

    return BoardPageHandler


def _owned_shutdown_handler():
    from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler

    class OwnedShutdownHandler(VoilaShutdownKernelHandler):
        """The closing page's beacon shuts its kernel down: only the page's own user may."""

        @web.authenticated
        async def post(self, kernel_id):
            user = self.current_user
            if _config(self).sessions.owner(kernel_id) != getattr(user, "username", None):
                raise HTTPError(403)
            await super().post.__wrapped__(self, kernel_id)

    return OwnedShutdownHandler


class ExportHandler(JupyterHandler):
    """The report and exports of a stored review, for roles with exports (served from the run folder)."""

    @web.authenticated
    def get(self, day: str, hhmm: str, name: str) -> None:
        cfg = _config(self)
        viewer = cfg.viewer_for(self.current_user)
        if viewer is None or not viewer.role.exports:
            raise HTTPError(403, "exports are not part of your role's view")
        if name not in EXPORT_FILES:
            raise HTTPError(404)
        try:
            folder = run_folder(cfg.source, dt.date.fromisoformat(day), hhmm, wait_s=5.0)
        except (ValueError, HandoffError):
            folder = None
        path = folder / name if folder else None
        if path is None or not path.is_file():
            raise HTTPError(404)
        if name.endswith(".html"):
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Content-Security-Policy", "sandbox allow-scripts")  # its own origin: no board cookies
        else:
            kind = "text/csv" if name.endswith(".csv") else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            self.set_header("Content-Type", kind)
            self.set_header("Content-Disposition", f'attachment; filename="{cfg.source.site}-{day}-{hhmm}-{name}"')
        self.log.info("handoff board: %s downloaded %s %s %s", viewer.user, day, hhmm, name)
        self.finish(path.read_bytes())


# ------------------------------------------------------------------------------ the hang fix

def _rearm(sock: object) -> None:
    """Make a zmq.asyncio socket re-check its events now, as pyzmq's own async send does."""
    if not getattr(sock, "_recv_futures", None):
        return
    loop = getattr(sock, "_current_loop", None)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or running is loop:
        sock._schedule_remaining_events()
    else:  # sent from another thread: let the socket's own loop re-check
        loop.call_soon_threadsafe(sock._schedule_remaining_events)


def patch_session_send() -> bool:
    """Work around page loads that hang forever partway through a widget cell (~5 % of loads).

    Mechanism: Voila executes the notebook through nbclient. While nbclient awaits a cell's
    `execute_reply` on the shell channel (a zmq.asyncio socket with a pending receive future), its
    Output-widget handling sends a `comm_msg` on that same socket through
    `jupyter_client.session.Session.send`, which sends on a plain *shadow* socket of the asyncio
    socket. ZMQ's ZMQ_FD is edge-triggered: the raw send can consume the edge that announced the
    incoming reply, so the event loop is never woken for it, the reply sits unread in the socket and
    the execution waits forever. pyzmq's own asyncio send re-checks the socket's events after sending
    (`_schedule_remaining_events`); the raw shadow send does not.

    Fix: after `Session.send` / `Session.send_raw` on a zmq.asyncio socket that has pending receive
    futures, ask the socket to re-check its events, exactly what pyzmq's async send does.

    Drop this patch when jupyter_client does it itself (checked against jupyter_client 8.10,
    pyzmq 27.3, nbclient 0.11, voila 0.5.13). Returns False when already applied."""
    import zmq.asyncio
    from jupyter_client.session import Session

    if getattr(Session.send, "_handoff_rearm", False):
        return False

    def wrap(original):
        @functools.wraps(original)
        def send(self, stream, *args, **kwargs):
            try:
                return original(self, stream, *args, **kwargs)
            finally:
                if isinstance(stream, zmq.asyncio.Socket):
                    _rearm(stream)

        send._handoff_rearm = True
        return send

    Session.send = wrap(Session.send)
    Session.send_raw = wrap(Session.send_raw)
    return True


# ------------------------------------------------------------------------------ kernels

class LimitedKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager (Voila wraps it with its pre-heated pool) that holds at most
    `max_kernels` kernels, binds each page's kernel to its viewer, and forgets the binding when the
    kernel goes (closed page, culled, server stopping)."""

    max_kernels = Integer(MAX_KERNELS, config=True, help="Most kernels running at once (0 = no limit).")
    first_connect = Integer(FIRST_CONNECT_S, config=True,
                            help="Seconds a page's kernel is kept before its page first connects (then cull_idle_timeout applies).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ever_connected: set[str] = set()

    def notify_connect(self, kernel_id):
        self._ever_connected.add(kernel_id)
        return super().notify_connect(kernel_id)

    async def cull_kernel_if_idle(self, kernel_id):
        """As Jupyter's culler, but a page's kernel whose page has never connected (a page still loading
        when the machine is busy) gets `first_connect` seconds instead of cull_idle_timeout."""
        kernel = self._kernels.get(kernel_id)
        if kernel_id not in self._ever_connected and getattr(kernel, "last_activity", None) is not None:
            idle = (dt.datetime.now(dt.UTC) - kernel.last_activity).total_seconds()
            if idle < self.first_connect and getattr(kernel, "execution_state", None) != "dead":
                return None
        return await super().cull_kernel_if_idle(kernel_id)

    def _full(self) -> bool:
        return self.max_kernels > 0 and len(self.list_kernel_ids()) >= self.max_kernels

    def pooled_ready(self, notebook: str) -> bool:
        """The pre-heated kernel Voila would hand out next has run the notebook up to `board.viewer()` and
        waits there. Handing out one still running an earlier cell loses the later cells' output (Voila
        0.5.13, seen when pages arrive faster than the pool refills): such a page starts its own kernel."""
        pool = getattr(self, "_pools", {}).get(notebook, [])
        if not pool or not pool[0].done() or pool[0].cancelled() or pool[0].exception() is not None:
            return False
        rendered = "".join(pool[0].result()["renderer"].rendered_cache)
        return f'cell-index="{wait_cell(notebook) - 1}"' in rendered

    def room_for_page(self, notebook: str) -> bool:
        """A pre-heated kernel is ready for the page, or there is room to start one."""
        return self.pooled_ready(notebook) or not self._full()

    def log_full(self, viewer: Viewer) -> None:
        cfg = self._board
        connected = sum(1 for k in self.list_kernel_ids() if self._kernel_connections.get(k, 0) > 0)
        unconnected = [k for k in self.list_kernel_ids() if not self._kernel_connections.get(k, 0) and cfg and cfg.sessions.owner(k)]
        now = dt.datetime.now(dt.UTC)
        idle = [(now - self.get_kernel(k).last_activity).total_seconds() for k in unconnected
                if getattr(self.get_kernel(k), "last_activity", None)]
        soonest = max(0.0, self.cull_idle_timeout - max(idle)) if idle else None
        self.log.warning(
            "handoff board: FULL, refused a page to %s (%s): %d kernels running (limit %d): %d with a page connected, "
            "%d bound to a page that is gone or still loading%s, the rest pre-heated. Raise --max-kernels if memory allows.",
            viewer.user, viewer.role.name, len(self.list_kernel_ids()), self.max_kernels, connected, len(unconnected),
            f" (the first is culled in about {soonest + self.cull_interval:.0f} s)" if soonest is not None else "")

    @property
    def _board(self) -> BoardConfig | None:
        return getattr(self.parent, "board", None)

    async def start_kernel(self, *args, **kwargs):
        env = kwargs.get("env") or {}
        preheat = env.get("VOILA_PREHEAT") == "True"
        if kwargs.get("kernel_id") is None and self._full():
            if not preheat:
                raise HTTPError(503, f"the board is full ({self.max_kernels} kernels)")
            while self._full():  # a pre-heated kernel waits for room; pages are told "full" meanwhile
                await asyncio.sleep(1.0)
        kernel_id = await super().start_kernel(*args, **kwargs)
        viewer = PAGE_VIEWER.get()
        if viewer is not None and not preheat and self._board:  # a page's own kernel (no pre-heated one was ready)
            self.bind(kernel_id, viewer)
        return kernel_id

    def bind(self, kernel_id: str, viewer: Viewer) -> None:
        self._board.sessions.bind(kernel_id, viewer)
        self.log.info("handoff board: kernel %s serves %s (%s)", kernel_id, viewer.user, viewer.role.name)

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        try:
            return await super().shutdown_kernel(kernel_id, *args, **kwargs)
        finally:
            self._ever_connected.discard(kernel_id)
            if self._board:
                self._board.sessions.forget(kernel_id)
            from voila.request_info_handler import RequestInfoSocketHandler

            RequestInfoSocketHandler._cache.pop(kernel_id, None)  # Voila keeps each page's request info until then


@functools.cache
def wait_cell(notebook: str) -> int:
    """The (1-based, as Voila numbers them in the page) cell of the notebook that calls board.viewer()."""
    import json

    path = Path(notebook) if Path(notebook).is_absolute() else NOTEBOOK.parent / Path(notebook).name
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return next(i for i, c in enumerate(cells, start=1) if "board.viewer(" in "".join(c["source"]))


def _bind_preheated(km) -> None:
    """Wrap the pool's hand-over so a pre-heated kernel is bound to the page's viewer as it is handed out."""
    original = km.get_rendered_notebook

    async def get_rendered_notebook(*args, **kwargs):
        render_task, rendered, kernel_id = await original(*args, **kwargs)
        viewer = PAGE_VIEWER.get()
        if viewer is None:  # never expected: every page request sets it
            km.log.error("handoff board: kernel %s handed to a page without a viewer; shutting it down", kernel_id)
            await km.shutdown_kernel(kernel_id)
            raise HTTPError(500)
        km.bind(kernel_id, viewer)
        return render_task, rendered, kernel_id

    km.get_rendered_notebook = get_rendered_notebook


def _board_app(cfg: BoardConfig, ssl_context: ssl.SSLContext | None):
    from voila.app import Voila
    from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
    from voila.tornado.handler import TornadoVoilaHandler

    page_handler, shutdown_handler = _voila_page_handler(), _owned_shutdown_handler()

    class BoardApp(Voila):
        board = cfg

        def init_settings(self):
            settings = super().init_settings()
            settings["handoff_board"] = cfg
            settings["ws_ping_interval"], settings["ws_ping_timeout"] = WS_PING_MS, WS_PING_TIMEOUT_MS
            if hasattr(self.kernel_manager, "get_rendered_notebook"):
                _bind_preheated(self.kernel_manager)
            return settings

        def init_handlers(self):
            out = [(self.server_url.rstrip("/") + r"/handoff/exports/(\d{4}-\d{2}-\d{2})/(\d{4})/([A-Za-z0-9_.-]+)", ExportHandler)]
            for h in super().init_handlers():
                if h[1] is TornadoVoilaHandler:
                    h = (h[0], page_handler, *h[2:])
                elif h[1] is VoilaShutdownKernelHandler:
                    h = (h[0], shutdown_handler, *h[2:])
                out.append(h)
            return out

        def listen(self):
            if ssl_context is not None:
                plain = self.app.listen
                self.app.listen = lambda port, address="", **kw: plain(port, address, ssl_options=ssl_context, **kw)
            super().listen()

    return BoardApp()


def voila_argv(host: str, port: int, pool_size: int = POOL_SIZE, cull_idle_s: int = CULL_IDLE_S,
               cull_interval_s: int = CULL_INTERVAL_S, max_kernels: int = MAX_KERNELS, notebook: Path = NOTEBOOK) -> list[str]:
    """Voila's command line for the board."""
    return [
        str(notebook),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",  # the port asked for, or a clear failure (never another port)
        "--Voila.identity_provider_class=handoff_lib.board.server.BoardIdentityProvider",
        "--Voila.authorizer_class=handoff_lib.board.server.BoardAuthorizer",
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.preheat_kernel=True",
        f"--VoilaConfiguration.default_pool_size={pool_size}",
        "--VoilaConfiguration.multi_kernel_manager_class=handoff_lib.board.server.LimitedKernelManager",
        f"--LimitedKernelManager.max_kernels={max_kernels}",
        # nbclient waits only 4 s for a cell's output after its reply and then drops what has not come: with many
        # kernels starting on a busy machine the board's own output came later and pages showed no board
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_S}",
        "--MappingKernelManager.allow_tracebacks=False",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_s}",
        f"--MappingKernelManager.cull_interval={cull_interval_s}",
        "--MappingKernelManager.cull_connected=False",  # an open page keeps its kernel
        "--MappingKernelManager.cull_busy=False",  # a pre-heated kernel waiting for its page is busy
    ]


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext | None:
    """A server TLS context from a certificate and key (PEM), or None when neither is given."""
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise HandoffError("TLS needs both --certfile and --keyfile (PEM files)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise HandoffError(f"{certfile} / {keyfile}: cannot load the TLS certificate and key ({exc})") from None
    return ctx


def configure(source: BoardSource, host: str, users: str = "", no_login: bool = False, open_role: str = "status",
              sessions: Sessions | None = None) -> BoardConfig:
    """How people sign in: a users file (the site's or --users) means sign-in on any host; without one,
    loopback serves the local user, and any other host is refused unless --no-login."""
    path = users_file(source.settings, users)
    if open_role not in ROLES:
        raise HandoffError(f"--no-login-role '{open_role}' is not one of {', '.join(ROLES)}")
    if path is not None:
        uf = UsersFile(path)
        if not uf.users():
            raise HandoffError(f"{path}: no users yet (add one: handoff board users add NAME --role ops --site {source.settings.path})")
        if no_login:
            raise HandoffError(f"--no-login with a users file ({path}): leave one of them out")
        return BoardConfig(source, "users", sessions or Sessions(), uf)
    if is_loopback(host):
        return BoardConfig(source, "local", sessions or Sessions())
    if not no_login:
        raise HandoffError(
            f"refusing to serve the board on {host} without sign-in: name a users file in the site file "
            f"(board: users: board_users.yaml) and add users (handoff board users add NAME --role ops --site "
            f"{source.settings.path}), or pass --no-login to serve it open to anyone who can reach {host}")
    return BoardConfig(source, "open", sessions or Sessions(), open_role=open_role, banner=NO_LOGIN_BANNER)


def serve(site: str = "", history: str = "", host: str = "", port: int | None = None, pool_size: int = POOL_SIZE,
          cull_idle_s: int = CULL_IDLE_S, cull_interval_s: int = CULL_INTERVAL_S, max_kernels: int = MAX_KERNELS,
          users: str = "", no_login: bool = False, open_role: str = "status", certfile: str = "", keyfile: str = "",
          send_fix: bool = True) -> None:
    """Check the site, history, users and TLS files, apply the hang fix, and run Voila until interrupted."""
    host = host or os.environ.get(ENV_HOST) or DEFAULT_HOST
    port = int(port or os.environ.get(ENV_PORT) or DEFAULT_PORT)
    source = resolve_source(site, history)  # a broken site file fails here, not in every page
    cfg = configure(source, host, users, no_login, open_role)
    ctx = tls_context(certfile, keyfile)
    if not source.history_db.exists():
        print(f"handoff board: no history yet at {source.history_db}; the page says so until a review is run", file=sys.stderr)
    # the kernels (pre-heated before any request) read where to look from their environment
    os.environ[ENV_SITE] = str(source.settings.path.resolve())
    os.environ[ENV_HISTORY] = str(source.history_db.resolve())
    os.environ[ENV_SESSIONS] = str(cfg.sessions.folder)
    if cfg.mode == "open":
        print(f"handoff board: WITHOUT sign-in on {host}: anyone who can reach it opens the board as '{open_role}' "
              "(every page says so)", file=sys.stderr)
    elif cfg.mode == "users" and ctx is None and not is_loopback(host):
        print(f"handoff board: sign-in on {host} without TLS: passwords cross the network in clear text "
              "(give --certfile and --keyfile)", file=sys.stderr)
    if send_fix:
        patch_session_send()
    else:
        print("handoff board: WITHOUT the Session.send fix (diagnostics only: some page loads will hang)", file=sys.stderr)
    app = _board_app(cfg, ctx)
    app.initialize(voila_argv(host, port, pool_size, cull_idle_s, cull_interval_s, max_kernels))
    scheme = "https" if ctx else "http"
    who = (f"sign-in with {cfg.users.path}" if cfg.users else
           f"no sign-in, as {local_user()} on loopback" if cfg.mode == "local" else "NO sign-in")
    print(f"handoff board for {source.settings.name}: {scheme}://{host}:{port}/  ({who}; history {source.history_db})",
          file=sys.stderr)
    app.start()


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--site", default="", help=f"site parameters file (default ${ENV_SITE}, else parameters/demo.yaml)")
    p.add_argument("--history", default="", help=f"history database (default ${ENV_HISTORY}, else outputs/<site>/history.duckdb)")
    p.add_argument("--host", default="", help=f"address to listen on (default ${ENV_HOST}, else {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=None, help=f"port (default ${ENV_PORT}, else {DEFAULT_PORT})")
    p.add_argument("--users", default="", help="board users file (default: the site file's board: users:)")
    p.add_argument("--no-login", action="store_true", help="serve a non-loopback host without sign-in (every page says so)")
    p.add_argument("--no-login-role", default="status", choices=list(ROLES), help="the role of everyone with --no-login")
    p.add_argument("--certfile", default="", help="TLS certificate (PEM): serve https")
    p.add_argument("--keyfile", default="", help="TLS private key (PEM)")
    p.add_argument("--pool-size", type=int, default=POOL_SIZE, help="pre-heated kernels kept ready")
    p.add_argument("--cull-idle", type=int, default=CULL_IDLE_S, help="seconds before an idle kernel with no page connected is shut down")
    p.add_argument("--cull-interval", type=int, default=CULL_INTERVAL_S, help="seconds between checks for such kernels")
    p.add_argument("--max-kernels", type=int, default=MAX_KERNELS, help="most kernels at once, pre-heated ones included (0 = no limit)")
    p.add_argument("--no-send-fix", action="store_true", help=argparse.SUPPRESS)  # bench/board_loop.py --without-fix
    return p


def board_main(args: argparse.Namespace) -> int:
    """`handoff board`: serve the board until interrupted."""
    serve(site=args.site or "", history=args.history or "", host=args.host or "", port=args.port, pool_size=args.pool_size,
          cull_idle_s=args.cull_idle, cull_interval_s=args.cull_interval, max_kernels=args.max_kernels, users=args.users,
          no_login=args.no_login, open_role=args.no_login_role, certfile=args.certfile, keyfile=args.keyfile,
          send_fix=not args.no_send_fix)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = add_arguments(argparse.ArgumentParser(prog="python -m handoff_lib.board.server",
                                                 description=__doc__.splitlines()[0])).parse_args(argv)
    try:
        return board_main(args)
    except HandoffError as exc:
        print(f"handoff board: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Run the importable module, not this `__main__` copy: Voila loads the kernel manager, identity provider
    # and authorizer by their dotted names, and they must share this module's state (e.g. PAGE_VIEWER).
    import importlib

    sys.exit(importlib.import_module("handoff_lib.board.server").main())
