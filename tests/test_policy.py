"""The policy: section: validated, and every error names the site file line at fault."""

import pytest
from scenario_tables import demo_settings

from handoff_lib.errors import SettingsError
from handoff_lib.rules.policy import load_policy


def test_the_demo_policy_loads_with_its_routing_table():
    policy = load_policy(demo_settings())
    assert policy.reasons["short_pick"].owner == "replenishment"
    assert policy.hold_codes["CR"] == "credit_hold"
    assert policy.priority_rule.startswith("priority = customer tier 1 +50")


def test_a_code_mapped_to_an_undefined_reason_is_refused_with_the_file_line():
    with pytest.raises(SettingsError, match=r"demo.yaml line \d+: policy.hold_codes.XX names reason 'nope'"):
        load_policy(demo_settings(hold_codes={"XX": "nope"}))


def test_a_bad_note_rule_pattern_is_refused():
    with pytest.raises(SettingsError, match="not a valid regular expression"):
        load_policy(demo_settings(note_rules=[{"reason": "address", "pattern": "(unclosed"}]))


def test_a_note_rule_pattern_duckdb_cannot_run_is_refused_at_load():
    # valid for Python's re, refused by DuckDB's RE2 engine, which runs the rules
    with pytest.raises(SettingsError, match=r"demo.yaml line \d+: policy.note_rules\[0\].pattern is a regular expression DuckDB.s RE2 engine cannot run"):
        load_policy(demo_settings(note_rules=[{"reason": "address", "pattern": "po box(?! ok)"}]))


def test_a_built_in_reason_the_site_leaves_out_gets_its_default_label_and_owner():
    settings = demo_settings()
    reasons = dict(settings.raw["policy"]["reasons"])
    del reasons["short_pick"]
    policy = load_policy(demo_settings(reasons=reasons))
    assert (policy.reasons["short_pick"].label, policy.reasons["short_pick"].owner) == ("Short pick", "replenishment")
    assert policy.reasons["data_quality"].owner == "data team" and not policy.reasons["data_quality"].blocks_work


def test_a_site_reason_without_an_owner_is_refused():
    settings = demo_settings()
    reasons = dict(settings.raw["policy"]["reasons"]) | {"dock_door": {"label": "Dock door blocked"}}
    with pytest.raises(SettingsError, match=r"missing setting 'policy.reasons.dock_door.owner'"):
        load_policy(demo_settings(reasons=reasons))
