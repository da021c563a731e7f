"""Mapping presets for exports whose format is publicly documented (parameters/presets/*.yaml).

A preset is a fragment of a site file (its `sources:` entries, with the columns and status codes the
documented export uses), headed by comments that cite the documentation it follows. It is used by
copying its entries under `sources:` into a site file's `sources:` (`handoff preset show NAME` prints it),
then adjusting `file:` names; nothing reads a preset at run time. `handoff preset list` lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from handoff_lib.errors import HandoffError

PRESET_DIR = Path(__file__).resolve().parents[2] / "parameters" / "presets"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str  # the first comment line
    follows: tuple[str, ...]  # the documentation it cites (the URLs in its header)
    entities: tuple[str, ...]  # the contract entities it maps
    path: Path


def list_presets(folder: Path = PRESET_DIR) -> list[Preset]:
    """Every preset in `folder`, by name."""
    return [read_preset(p.stem, folder) for p in sorted(folder.glob("*.yaml"))]


def read_preset(name: str, folder: Path = PRESET_DIR) -> Preset:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(folder.glob("*.yaml"))) or "none"
        raise HandoffError(f"no preset '{name}' in {folder} (presets: {known}; `handoff preset list`)")
    text = path.read_text(encoding="utf-8")
    header = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    urls = tuple(u for line in header for u in re.findall(r"https?://[^\s,()]+", line))
    body = yaml.safe_load(text) or {}
    return Preset(name, header[0] if header else name, urls, tuple((body.get("sources") or {}).keys()), path)


def preset_text(name: str, folder: Path = PRESET_DIR) -> str:
    """The preset file as it is, to copy into a site file."""
    return read_preset(name, folder).path.read_text(encoding="utf-8")
