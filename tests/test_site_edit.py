"""Editing a few settings of a site file by lines: comments, blank lines and layout stay; only the values
change; a key that is missing is added where its siblings are."""

from __future__ import annotations

import pytest
import yaml

from handoff_lib.errors import SettingsError
from handoff_lib.load.site_edit import edit_settings, unified_diff

TEXT = """# Site file written by a person
site: s1
policy:
  # work left and the buffer on top
  work_minutes: {pick_per_line: 10, pack: 15, label: 5, manifest: 5}
  buffer_minutes: 60           # minutes on top of the work
  buffer_by_customer: {}       # customer_id: minutes

  risk_score:
    enabled: false
    model: ../outputs/x/risk_model.joblib   # written by handoff backtest
    threshold: 0.5
reviews:
  times: ["09:00", "12:00"]
"""


def test_a_value_is_replaced_in_place_and_its_comment_stays_in_its_column():
    out = edit_settings(TEXT, {("policy", "buffer_minutes"): 480, ("policy", "risk_score", "threshold"): 0.8123})
    assert "  buffer_minutes: 480          # minutes on top of the work\n" in out
    assert "    threshold: 0.8123\n" in out
    changed = [(a, b) for a, b in zip(TEXT.splitlines(), out.splitlines(), strict=True) if a != b]
    assert len(changed) == 2


def test_a_flow_mapping_takes_new_keys_in_flow_style_and_keeps_the_others():
    out = edit_settings(TEXT, {("policy", "buffer_by_customer", "C-1042"): 240, ("policy", "buffer_by_customer", "007"): 480,
                               ("policy", "work_minutes", "pack"): 8})
    assert "  buffer_by_customer: {C-1042: 240, '007': 480}" in out  # '007' stays a string
    assert "  work_minutes: {pick_per_line: 10, pack: 8, label: 5, manifest: 5}\n" in out
    assert yaml.safe_load(out)["policy"]["buffer_by_customer"] == {"C-1042": 240, "007": 480}


def test_a_missing_key_is_added_after_its_siblings_with_their_indent():
    out = edit_settings(TEXT, {("policy", "risk_score", "window"): 3, ("backtest", "ship_by_known_from"): "released"})
    lines = out.splitlines()
    assert lines[lines.index("    threshold: 0.5") + 1] == "    window: 3"
    assert "backtest:\n  ship_by_known_from: released\n" in out
    assert out.startswith(TEXT.split("reviews:")[0].replace("    threshold: 0.5\n", ""))  # everything before stays
    assert yaml.safe_load(out)["reviews"]["times"] == ["09:00", "12:00"]


def test_no_change_leaves_the_text_as_it_was_and_the_diff_is_empty():
    assert edit_settings(TEXT, {}) == TEXT
    assert unified_diff(TEXT, TEXT, "s1.yaml") == ""


def test_replacing_a_block_by_a_value_is_refused():
    with pytest.raises(SettingsError, match="policy.risk_score is a block; edit it by hand"):
        edit_settings(TEXT, {("policy", "risk_score"): 5})
