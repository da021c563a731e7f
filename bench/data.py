"""Cached demo days for the benchmarks, keyed by size, seed and generator version.

A size is a number of order lines ("100k", "1m", "3m"); the demo generator makes about 3.1 lines per
order, so it is asked for round(lines / 3.1) orders and the real line count is recorded. A day lives in
`bench/cache/<size>-s<seed>-g<version>/` (git-ignored, and under the repo so the demo site's
`data.allowed_roots` accepts it), with `meta.json` written last: a folder without it is incomplete
and is generated again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / "cache"
SITE_FILE = REPO / "parameters" / "demo.yaml"
LINES_PER_ORDER = 3.1
DATE = "2026-11-24"
AT = "14:30"


def parse_size(text: str) -> int:
    """'100k' -> 100_000, '1m' -> 1_000_000, '250000' -> 250_000 (order lines)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([km]?)", text.strip().lower())
    if not m:
        raise SystemExit(f"bench: size '{text}' is not a number of order lines such as 100k, 1m or 250000")
    return round(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2)])


def size_label(lines: int) -> str:
    if lines % 1_000_000 == 0:
        return f"{lines // 1_000_000}m"
    if lines % 1_000 == 0:
        return f"{lines // 1_000}k"
    return str(lines)


def generator_version() -> str:
    """Changes whenever the generator or the demo site file changes: the cache is then rebuilt."""
    h = hashlib.sha256()
    for p in (REPO / "handoff_lib" / "load" / "demo.py", SITE_FILE):
        h.update(p.read_bytes())
    return h.hexdigest()[:10]


def day_dir(lines: int, seed: int) -> Path:
    return CACHE / f"{size_label(lines)}-s{seed}-g{generator_version()}"


def ensure_day(lines: int, seed: int = 7, progress: bool = True) -> dict:
    """The cached demo day of `lines` order lines (generated when missing); returns its meta."""
    folder = day_dir(lines, seed)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    if folder.exists():
        shutil.rmtree(folder)
    from handoff_lib.load.demo import generate

    orders = max(1, round(lines / LINES_PER_ORDER))
    t0 = time.perf_counter()
    info = generate(orders, seed, folder / "data", date=DATE, at=(AT,), site_file=SITE_FILE, progress=progress)
    meta = {
        "size": size_label(lines),
        "target_lines": lines,
        "seed": seed,
        "generator": generator_version(),
        "orders": info["orders"],
        "order_lines": info["order_lines"],
        "date": DATE,
        "at": AT,
        "data": str(folder / "data"),
        "bytes": sum(p.stat().st_size for p in (folder / "data").glob("*.csv")),
        "generate_s": round(time.perf_counter() - t0, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def stale_dirs() -> list[Path]:
    """Cached days of an older generator version (safe to delete)."""
    v = generator_version()
    return [p for p in CACHE.glob("*-s*-g*") if p.is_dir() and not p.name.endswith(f"-g{v}")]
