"""Which file a source reads: `file:` patterns (`wms_tasks_%Y%m%d_%H%M.csv`, `*`), the time a file name holds,
and the file a pattern names for a review time (docs/extracts.md, "How current the extracts are").

The site file (settings.py) resolves its patterns with this module, and freshness.py judges a file by the time
its name holds, so this module sits below both: it is given paths, patterns and the site timezone, and imports
nothing of the load stage.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from handoff_lib.errors import ExtractError, SettingsError

# %-directives a file-name pattern may hold (zero-padded, as export jobs write them), and their regex.
NAME_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}", "S": r"\d{2}"}


def is_file_pattern(file: str | None) -> bool:
    """`file:` names a pattern (a `*`, or a %-time such as %Y%m%d) rather than one file."""
    return file is not None and ("*" in file or re.search(r"%[A-Za-z]", file) is not None)


def name_pattern(pattern: str, where: str = "") -> tuple[re.Pattern[str], bool]:
    """The regex of a file-name pattern (`*` = any text, %Y %y %m %d %H %M %S = a zero-padded time part, %% = %)
    and whether it holds a time. A time must have its date (%Y or %y, %m, %d)."""
    out, seen, i = [], set(), 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            d = pattern[i + 1 : i + 2]
            if d == "%":
                out.append("%")
            elif d in NAME_DIRECTIVES and d not in seen:
                out.append(f"(?P<{d}>{NAME_DIRECTIVES[d]})")
                seen.add(d)
            else:
                raise SettingsError(
                    f"{where}: file pattern '{pattern}': %{d} is not allowed (use %Y %y %m %d %H %M %S once each, * for any text, %% for %)"
                )
            i += 2
            continue
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    if seen and not ({"Y", "y"} & seen and {"m", "d"} <= seen):
        raise SettingsError(f"{where}: file pattern '{pattern}': a time in the file name needs its date (%Y or %y, %m and %d)")
    return re.compile("".join(out)), bool(seen)


def name_time(pattern: str, name: str, tz: ZoneInfo) -> dt.datetime | None:
    """The site-local time a file's name holds per `pattern`; None when the pattern has no time or does not match."""
    rx, timed = name_pattern(Path(pattern).name)
    m = rx.fullmatch(name)
    if not timed or not m:
        return None
    g = m.groupdict()
    year = int(g["Y"]) if g.get("Y") else 2000 + int(g["y"])
    try:
        return dt.datetime(year, int(g["m"]), int(g["d"]), int(g.get("H") or 0), int(g.get("M") or 0), int(g.get("S") or 0),
                           tzinfo=tz)
    except ValueError:
        return None  # not a real date (month 13): the file does not match


def pick_file(data_folder: Path, entity: str, pattern: str, where: str, review_at: dt.datetime | None, tz: ZoneInfo,
              grace: int = 0) -> Path:
    """The file the `file:` pattern of source `entity` (set at `where`) names in `data_folder` for the review at
    `review_at`: the newest file whose time (in its name, else modified) is at or before the review time; when none
    is, the oldest one after it (an extract taken later, cut back by the as-of rules). Without a review time: the
    newest. `grace`: `data_quality.as_of_grace_minutes` (settings.grace_minutes): files stamped up to that much
    after the review count as before it."""
    if is_file_pattern(str(Path(pattern).parent)):
        raise SettingsError(f"{where}: file pattern '{pattern}': only the file name may hold * or a %-time, not its folder")
    folder = data_folder / Path(pattern).parent
    rx, timed = name_pattern(Path(pattern).name, where)
    found: list[tuple[dt.datetime, str, Path]] = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and rx.fullmatch(p.name):
                t = name_time(pattern, p.name, tz) if timed else modified(p, tz)
                if t is not None:
                    found.append((t, p.name, p))
    if not found:
        raise ExtractError(
            f"{pattern}: no file in {folder} matches the pattern of sources.{entity}.file ({where}); export it there or correct the pattern"
        )
    if review_at is None:
        return max(found)[2]
    cut = review_at + dt.timedelta(minutes=grace)
    before = [f for f in found if f[0] <= cut]
    return max(before)[2] if before else min(found)[2]


def modified(path: Path, tz: ZoneInfo) -> dt.datetime:
    """A file's modification time, site local."""
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=tz)
