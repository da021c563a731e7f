"""The `handoff` command's own output: what `picture` prints for a new site to fix its draft site file."""

from __future__ import annotations

import re
from pathlib import Path

from handoff_lib.cli.main import main

SITE2 = Path(__file__).resolve().parent / "fixtures" / "site2"


def test_picture_prints_join_quality_per_method_and_the_rejects_per_column_with_their_reason(tmp_path, capsys):
    code = main(["picture", "--site", str(SITE2 / "site.yaml"), "--at", "2026-11-24 13:30", "--quiet", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"pick_tasks +linked order_ref -> order \(normalised\) +87 \(100\.0 %\)", out)
    assert re.search(r"shipments +linked reference -> carton +13 \( 92\.9 %\)", out)
    # the second site's three planted faults, each named by source and column with its reason
    assert "orders.Order Total: 1 nulled, 0 flagged (2.3 %): not a number order_value '1,249.00'" in out
    assert "orders.Customer Name: 0 nulled, 1 flagged" in out and "Windows-1252" in out
    assert "shipments.Pickup Scan: 0 nulled, 1 flagged" in out
    assert out.index("rejects per column") < out.index("outputs written to")


def test_picture_names_an_unmatched_record_with_an_example(tmp_path, capsys):
    text = (SITE2 / "site.yaml").read_text(encoding="utf-8")
    text = text.replace("folder: extracts", f"folder: {SITE2 / 'extracts'}").replace("allowed_roots: [.]", f"allowed_roots: [{SITE2}]")
    text = text.replace("carton: {prefixes: [LPN], separators: \" -_./#:\"}", "carton: {}")  # a bare 00881002 no longer joins
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    assert main(["picture", "--site", str(site), "--at", "2026-11-24 13:30", "--quiet", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"shipments +unmatched +3 \( 21\.4 %\)   e\.g\. UPS-24-0002 \[00881002\]", out)
