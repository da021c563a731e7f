"""The kernel a review notebook runs on: the ordinary ipykernel, started so that a run that succeeds prints no
warnings and no tracebacks.

* IPC transport (Unix sockets in the Jupyter runtime folder) instead of TCP on loopback: ipykernel 7 warns
  "Kernel is running over TCP without encryption" on every start over TCP without CurveZMQ keys. Over IPC
  nothing listens on a port, so there is nothing to warn about.
* No interrupt before the shutdown: jupyter_client's shutdown first sends SIGINT, which an idle kernel that is
  handling a late message logs as "ERROR | KeyboardInterrupt caught in kernel". When papermill shuts the kernel
  down the notebook has finished; the shutdown request (and the kill after `shutdown_wait_time`, if it does not
  exit) stops it. An interrupt asked for while the kernel runs (not shutting down) is sent as before.
"""

from __future__ import annotations

from jupyter_client.manager import AsyncKernelManager
from traitlets import default


class ReviewKernelManager(AsyncKernelManager):
    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()
