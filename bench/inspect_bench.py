"""How right `handoff inspect` drafts are: on the demo day, the second site (tests/fixtures/site2) and the shared
Olist history, the draft's proposals against each one's known site file (parameters/demo.yaml, site2/site.yaml,
parameters/olist.yaml): entities (which file), fields (which column, constant or derived rule), status codes
(which contract value), each right / wrong / left TODO, and the references the identifier rules link.

    .venv/bin/python bench/inspect_bench.py [--orders 2000] [--olist /work/shared/data/olist-2017-10k]

Prints a Markdown table and every wrong and TODO proposal; writes nothing but temporary files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from handoff_lib.join.inspect import draft_site, fix_todos_from, score_draft
from handoff_lib.load.demo import generate
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

ROOT = Path(__file__).resolve().parent.parent
OLIST = Path("/work/shared/data/olist-2017-10k")


def truth_reading(site_file: Path, folder: Path, tmp: Path) -> Path:
    """A copy of a known site file that reads `folder` (the repo's files point at folders of their own)."""
    raw = yaml.safe_load(site_file.read_text(encoding="utf-8"))
    raw["data"] = {"folder": str(folder), "allowed_roots": [str(folder)]}
    raw["outputs"] = str(tmp / "outputs")
    out = tmp / f"truth-{site_file.stem}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def _links(con) -> str:
    n = dict(con.execute("SELECT status, count(*) FROM xref GROUP BY 1").fetchall())
    return f"{n.get('linked', 0)} / {n.get('ambiguous', 0)} / {n.get('unmatched', 0)}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=2000, help="orders in the demo day")
    ap.add_argument("--olist", default=str(OLIST), help="the shared Olist history folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        demo = tmp / "demo"
        generate(orders=args.orders, seed=7, out=demo, date="2026-11-24", at=["14:30"], site_file=str(ROOT / "parameters/demo.yaml"))
        sets = [
            (f"demo day ({args.orders} orders)", demo, ROOT / "parameters/demo.yaml"),
            ("second site (site2)", ROOT / "tests/fixtures/site2/extracts", ROOT / "tests/fixtures/site2/site.yaml"),
        ]
        if Path(args.olist).is_dir():
            sets.append(("Olist 2017 (10k orders)", Path(args.olist), ROOT / "parameters/olist.yaml"))
        rows, details = [], []
        for name, folder, site in sets:
            t0 = time.perf_counter()
            out = tmp / f"draft-{site.stem}.yaml"
            draft = draft_site(folder, out, progress=False)
            took = time.perf_counter() - t0
            truth = truth_reading(site, folder, tmp)
            s = score_draft(out, truth, draft.todos)
            fixed = fix_todos_from(out, truth, draft.todos, tmp / f"fixed-{site.stem}.yaml")
            xref = [_links(build_picture(load_settings(x))) for x in (fixed, truth)]

            def cell(kind: str, s=s) -> str:
                c = s.counts.get(kind, {})
                return f"{c.get('right', 0)} / {c.get('wrong', 0)} / {c.get('todo', 0)}"

            other = [x for x in draft.todos if ".columns." not in x and ".values." not in x]
            rows.append(f"| {name} | {cell('entities')} | {cell('fields')} | {cell('values')} | {', '.join(other) or '-'} | "
                        f"{xref[0]} | {xref[1]} | {took:.1f} s |")
            details += [f"{name}: wrong {w}" for w in s.wrong] + [f"{name}: TODO {w}" for w in s.todo]
    print("| data set | entities right / wrong / TODO | fields right / wrong / TODO | status codes right / wrong / TODO "
          "| other TODOs | crosswalk, draft with its TODOs fixed: linked / ambiguous / unmatched | crosswalk, site file "
          "| inspect time |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("\n".join(details) or "no wrong or TODO proposal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
