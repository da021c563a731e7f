"""Every import between modules of a package, read with `ast` (module level and inside functions, typing-only
ones too), and the checks tests/test_layout.py and tests/test_imports.py make on them."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. handoff_lib.rules.states
    imported: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file.name}:{self.line}: {self.importer} imports {self.imported}"


def modules(root: Path, package: str = "handoff_lib") -> dict[str, Path]:
    """Dotted name -> file, for every module of `package` under `root` (a package is its __init__.py)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(mods: dict[str, Path]) -> list[Import]:
    """Each import of one module of `mods` by another, relative or absolute."""
    out = []
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    out.append(Import(name, target, path, node.lineno))
    return out


def stage(name: str, stages: tuple[str, ...], shared: tuple[str, ...]) -> int:
    """0 for the package and its shared modules, else 1 + the position of the module's stage in `stages`."""
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in shared):
        return 0
    if parts[1] in stages:
        return 1 + stages.index(parts[1])
    raise ValueError(f"{name}: neither in a stage package ({', '.join(stages)}) nor a shared module ({', '.join(shared)})")


def upward(found: list[Import], stages: tuple[str, ...], shared: tuple[str, ...]) -> list[Import]:
    """The imports that point up the flow: to a later stage, or from a shared module to any stage."""
    return [i for i in found if stage(i.imported, stages, shared) > stage(i.importer, stages, shared)]


def circles(found: list[Import]) -> list[list[str]]:
    """Each import circle: a set of modules that import each other, directly or through others (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for i in found:
        graph.setdefault(i.importer, set()).add(i.imported)
        graph.setdefault(i.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reach(found: list[Import], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    graph: dict[str, set[str]] = {}
    for i in found:
        graph.setdefault(i.importer, set()).add(i.imported)
    seen, todo = set(), [start]
    while todo:
        for d in graph.get(todo.pop(), ()):
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen
