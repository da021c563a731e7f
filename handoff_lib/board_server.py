"""Serve the handoff board (notebooks/board.ipynb) with Voila, in this process.

- Bound to 127.0.0.1 by default; host, port, site file and history database come from the arguments
  or the environment ($HANDOFF_BOARD_HOST, $HANDOFF_BOARD_PORT, $HANDOFF_BOARD_SITE, $HANDOFF_BOARD_HISTORY).
- Sources and tracebacks never reach the browser (a failing cell shows Voila's one-line error; the
  traceback goes to this process's log).
- A pre-heated kernel per page (pool of `pool_size`), so a page opens on a notebook that already ran.
- Idle kernels are culled (closed pages leave no ~200 MB kernel behind) and the number of kernels is
  capped, so a day of opened and closed pages cannot pile kernels up.
- The fix for page loads that hang (see `patch_session_send`) is applied before Voila starts, and a
  closed page shuts its kernel down at once (see `patch_page_xsrf_cookie`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from pathlib import Path

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Integer

from .board import ENV_HISTORY, ENV_SITE, PROJECT, resolve_source
from .errors import HandoffError

NOTEBOOK = PROJECT / "notebooks" / "board.ipynb"
ENV_HOST = "HANDOFF_BOARD_HOST"
ENV_PORT = "HANDOFF_BOARD_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
POOL_SIZE = 1  # pre-heated kernels kept ready
CULL_IDLE_S = 900  # a kernel idle this long with no page connected is shut down
CULL_INTERVAL_S = 60
MAX_KERNELS = 12  # pages open at once (plus the pre-heated pool); more get a "too many" error page


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


# ------------------------------------------------------------------------------ closed pages

def patch_page_xsrf_cookie() -> bool:
    """Let a closed page shut its kernel down at once.

    Voila's page sends `POST /voila/api/shutdown/<kernel>` from its `beforeunload` handler with the
    `_xsrf` cookie's value, but Voila 0.5.13's page handler never makes tornado set that cookie, so the
    POST is refused (403 "'_xsrf' argument missing") and every closed page's kernel (~200 MB) lives on
    until the idle culler takes it. Reading `xsrf_token` in the page handler sets the cookie (the check
    itself stays on). Drop this when Voila sets the cookie itself. Returns False when already applied."""
    import inspect

    from voila.handler import VoilaHandler

    if getattr(VoilaHandler.prepare, "_handoff_xsrf", False):
        return False
    original = VoilaHandler.prepare

    async def prepare(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        self.xsrf_token  # noqa: B018 - the property sets the _xsrf cookie
        return result

    prepare._handoff_xsrf = True
    VoilaHandler.prepare = prepare
    return True


# ------------------------------------------------------------------------------ kernel limit

class LimitedKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager that refuses to start a kernel beyond `max_kernels` running ones
    (Voila wraps it with its pre-heated pool)."""

    max_kernels = Integer(MAX_KERNELS, config=True, help="Most kernels running at once (0 = no limit).")

    async def start_kernel(self, *args, **kwargs):
        if self.max_kernels > 0 and kwargs.get("kernel_id") is None and len(self.list_kernel_ids()) >= self.max_kernels:
            raise HTTPError(503, f"too many board pages open ({self.max_kernels}); close one or try again later")
        return await super().start_kernel(*args, **kwargs)


def voila_argv(host: str, port: int, pool_size: int = POOL_SIZE, cull_idle_s: int = CULL_IDLE_S,
               cull_interval_s: int = CULL_INTERVAL_S, max_kernels: int = MAX_KERNELS, notebook: Path = NOTEBOOK) -> list[str]:
    """Voila's command line for the board."""
    return [
        str(notebook),
        "--no-browser",
        f"--Voila.ip={host}",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",  # the port asked for, or a clear failure (never another port)
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.preheat_kernel=True",
        f"--VoilaConfiguration.default_pool_size={pool_size}",
        "--VoilaConfiguration.multi_kernel_manager_class=handoff_lib.board_server.LimitedKernelManager",
        f"--LimitedKernelManager.max_kernels={max_kernels}",
        "--MappingKernelManager.allow_tracebacks=False",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_s}",
        f"--MappingKernelManager.cull_interval={cull_interval_s}",
        "--MappingKernelManager.cull_connected=False",  # an open page keeps its kernel
        "--MappingKernelManager.cull_busy=False",
    ]


def serve(site: str = "", history: str = "", host: str = "", port: int | None = None, pool_size: int = POOL_SIZE,
          cull_idle_s: int = CULL_IDLE_S, max_kernels: int = MAX_KERNELS, send_fix: bool = True) -> None:
    """Check the site and history, apply the hang fix, and run Voila until interrupted."""
    host = host or os.environ.get(ENV_HOST) or DEFAULT_HOST
    port = int(port or os.environ.get(ENV_PORT) or DEFAULT_PORT)
    source = resolve_source(site, history)  # a broken site file fails here, not in every page
    if not source.history_db.exists():
        print(f"handoff board: no history yet at {source.history_db}; the page says so until a review is run", file=sys.stderr)
    # the kernels (pre-heated before any request) read where to look from their environment
    os.environ[ENV_SITE] = str(source.settings.path.resolve())
    os.environ[ENV_HISTORY] = str(source.history_db.resolve())
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"handoff board: serving on {host}: anyone who can reach this machine can open the board (no login)",
              file=sys.stderr)
    patch_page_xsrf_cookie()
    if send_fix:
        patch_session_send()
    else:
        print("handoff board: WITHOUT the Session.send fix (diagnostics only: some page loads will hang)", file=sys.stderr)
    from voila.app import Voila

    app = Voila()
    app.initialize(voila_argv(host, port, pool_size, cull_idle_s, CULL_INTERVAL_S, max_kernels))
    print(f"handoff board for {source.settings.name}: http://{host}:{port}/  (history {source.history_db})", file=sys.stderr)
    app.start()


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--site", default="", help=f"site parameters file (default ${ENV_SITE}, else parameters/demo.yaml)")
    p.add_argument("--history", default="", help=f"history database (default ${ENV_HISTORY}, else outputs/<site>/history.duckdb)")
    p.add_argument("--host", default="", help=f"address to listen on (default ${ENV_HOST}, else {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=None, help=f"port (default ${ENV_PORT}, else {DEFAULT_PORT})")
    p.add_argument("--pool-size", type=int, default=POOL_SIZE, help="pre-heated kernels kept ready")
    p.add_argument("--cull-idle", type=int, default=CULL_IDLE_S, help="seconds before an idle, unconnected kernel is shut down")
    p.add_argument("--max-kernels", type=int, default=MAX_KERNELS, help="most kernels at once (0 = no limit)")
    p.add_argument("--no-send-fix", action="store_true", help=argparse.SUPPRESS)  # bench/board_loop.py --without-fix
    return p


def board_main(args: argparse.Namespace) -> int:
    """`handoff board`: serve the board until interrupted."""
    serve(site=args.site or "", history=args.history or "", host=args.host or "", port=args.port,
          pool_size=getattr(args, "pool_size", POOL_SIZE), cull_idle_s=getattr(args, "cull_idle", CULL_IDLE_S),
          max_kernels=getattr(args, "max_kernels", MAX_KERNELS), send_fix=not getattr(args, "no_send_fix", False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = add_arguments(argparse.ArgumentParser(prog="python -m handoff_lib.board_server", description=__doc__.splitlines()[0])).parse_args(argv)
    try:
        return board_main(args)
    except HandoffError as exc:
        print(f"handoff board: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
