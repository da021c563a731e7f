"""Change a few settings of a site file by editing its lines: every comment, blank line, key order and
layout the site wrote stays as it was; only the values that change are rewritten.

`edit_settings(text, {("policy", "buffer_minutes"): 480})` replaces the value in place (a comment after
it stays), adds a missing key under its parent mapping (indented like its siblings, after the parent's
last line), and extends a flow mapping such as `buffer_by_customer: {}` in flow style. The result is
checked: it must load to exactly the old settings with these values changed, else nothing is written.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

from handoff_lib.errors import SettingsError

Path_ = tuple[str, ...]


def dump_value(value: Any) -> str:
    """One value as YAML on one line: a scalar, or a mapping/list in flow style."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000, allow_unicode=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


def _find(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if str(k.value) == key:
            return k, v
    return None


def _last_line(node: yaml.Node) -> int:
    """The 0-based line on which `node` (with everything nested in it) ends."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _set(text: str, path: Path_, value: Any, where: str) -> str:
    root = yaml.compose(text)
    if root is None:
        root = yaml.MappingNode("tag:yaml.org,2002:map", [])
    node, depth = root, 0
    while depth < len(path):
        found = _find(node, path[depth])
        if found is None:
            break
        node, depth = found[1], depth + 1
    if depth == len(path):  # the key exists: replace its value where it stands
        if isinstance(value, dict) and isinstance(node, yaml.MappingNode) and not node.flow_style:
            for k, v in value.items():
                text = _set(text, path + (str(k),), v, where)
            return text
        if isinstance(node, yaml.MappingNode) and not node.flow_style or isinstance(node, yaml.SequenceNode) and not node.flow_style:
            raise SettingsError(f"{where}: {'.'.join(path)} is a block; edit it by hand")
        start, end = node.start_mark.index, node.end_mark.index
        new = dump_value(value)
        if start == end and start > 0 and text[start - 1] == ":":  # `key:` with no value
            new = " " + new
        rest = text[end:]
        gap = len(rest) - len(rest.lstrip(" "))
        if gap and rest[gap:].startswith("#"):  # keep a comment after the value in its column where there is room
            rest = " " * max(1, gap - (len(new) - (end - start))) + rest[gap:]
        return text[:start] + new + rest
    if not isinstance(node, yaml.MappingNode):
        raise SettingsError(f"{where}: {'.'.join(path[:depth]) or 'the file'} is not a mapping: cannot add {'.'.join(path)}")
    rest = path[depth:]
    nested: Any = value
    for key in reversed(rest[1:]):
        nested = {key: nested}
    if node.flow_style:  # e.g. `buffer_by_customer: {}`: rewrite the mapping in flow style with the new key
        start, end = node.start_mark.index, node.end_mark.index
        current = yaml.safe_load(text[start:end]) or {}
        current[rest[0]] = nested
        return text[:start] + dump_value(current) + text[end:]
    lines = text.splitlines(keepends=True)
    if node.value:
        indent = node.value[0][0].start_mark.column
        after = _last_line(node)
    else:  # an empty document
        indent, after = 0, len(lines) - 1
    if isinstance(nested, dict):
        body = yaml.safe_dump({rest[0]: nested}, default_flow_style=False, sort_keys=False, allow_unicode=True)
        block = "".join(" " * indent + line + "\n" for line in body.splitlines())
    else:
        block = " " * indent + f"{rest[0]}: {dump_value(nested)}\n"
    if after >= 0 and after < len(lines) and not lines[after].endswith("\n"):
        lines[after] += "\n"
    lines.insert(after + 1, block)
    return "".join(lines)


def _apply(data: Any, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
        if data is None:
            data = {}
    if isinstance(value, dict) and isinstance(data.get(path[-1]), dict):
        for k, v in value.items():
            _apply(data, path + (str(k),), v)
    else:
        data[path[-1]] = value


def edit_settings(text: str, changes: dict[Path_, Any], where: str = "site file") -> str:
    """`text` with each setting of `changes` (path of keys -> new value) set by editing lines only.
    Raises SettingsError when the result would not load to the old settings with exactly these changes."""
    before = yaml.safe_load(text) or {}
    out = text
    for path, value in changes.items():
        out = _set(out, tuple(str(k) for k in path), value, where)
    expected = copy.deepcopy(before)
    for path, value in changes.items():
        _apply(expected, tuple(str(k) for k in path), value)
    try:
        after = yaml.safe_load(out)
    except yaml.YAMLError as exc:
        raise SettingsError(f"{where}: editing the settings by lines gave invalid YAML ({exc}); change them by hand") from None
    if after != expected:
        raise SettingsError(f"{where}: editing the settings by lines did not give the intended settings; change them by hand")
    return out


def unified_diff(old: str, new: str, name: str) -> str:
    """The change as a unified diff (`a/<name>` -> `b/<name>`)."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{name}", f"b/{name}"))
