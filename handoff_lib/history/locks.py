"""One writer at a time: an exclusive lock on a file, waited for up to a limit.

Used by a review run (one run per site, runs.site_lock) and by the snapshot store (one writer per site and
store, store._site_lock). The lock is the kernel's (flock): a process that dies lets it go.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def file_lock(path: Path, wait_s: float, timed_out: Callable[[], Exception], waiting: Callable[[], None] | None = None,
              poll_s: float = 0.2) -> Iterator[IO[str]]:
    """Hold an exclusive lock on `path` (created with its folder); yields the open lock file. If another process
    holds it, `waiting()` is called once and the lock is tried every `poll_s` until `wait_s` has passed; then
    `timed_out()` is raised."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise timed_out() from None
                if waiting is not None and not announced:
                    waiting()
                    announced = True
                time.sleep(poll_s)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
