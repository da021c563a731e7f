"""Test hook for crash-safety: `HANDOFF_CRASH_AT=<point>` makes the process die (like `kill -9`,
exit code 137) when it reaches that point. Points: execute, report, manifest, history,
history-write (inside the history transaction), publish, publish-swap (between moving the old
review folder aside and moving the new one in). Unset in normal use: then this does nothing."""

from __future__ import annotations

import os

CRASH_ENV = "HANDOFF_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
