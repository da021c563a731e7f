"""The reason taxonomy: a site's own reasons (no built-in codes), settings, and how it maps onto the site's
policy.reasons."""

from pathlib import Path

import pandas as pd
import pytest
from scenario_tables import demo_settings

from handoff_lib.errors import SettingsError
from handoff_lib.learn.taxonomy import check_against_policy, load_taxonomy, notes_settings, site_taxonomy
from handoff_lib.rules.policy import load_policy

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notes_site"


def test_the_demo_taxonomy_has_fourteen_reasons_with_label_owner_description_and_examples():
    t = load_taxonomy()
    assert len(t.codes) == 14 and "other" in t.codes
    for theme in t.themes.values():
        assert theme.label and theme.owner and theme.description and theme.examples
    assert t.threshold == 0.6


def test_a_site_taxonomy_of_its_own_reasons_loads_without_any_built_in_code():
    t = load_taxonomy(FIXTURES / "reasons.yaml")
    assert t.codes == ["dock_congestion", "cold_chain", "customs_docs"]
    assert t.themes["dock_congestion"].policy_reason == "dock_congestion"  # default: the policy reason of the same code
    assert t.themes["cold_chain"].policy_reason == "temperature_excursion"
    assert (t.threshold, t.min_examples) == (0.5, 8)
    assert t.fallback_theme() == ("other", "Other", None)  # no `other` theme of its own
    assert load_taxonomy().fallback_theme() == ("other", "Other", "shift lead")


def test_a_theme_needs_only_a_label_and_an_owner(tmp_path):
    path = tmp_path / "reasons.yaml"
    path.write_text("reasons:\n  late_truck: {label: Late truck, owner: yard}\n  no_driver: {label: No driver, owner: yard}\n")
    t = load_taxonomy(path)
    assert t.themes["late_truck"].examples == () and t.themes["late_truck"].description == ""
    path.write_text("reasons:\n  late_truck: {label: Late truck}\n")
    with pytest.raises(SettingsError, match=r"reasons.yaml line 2: reasons.late_truck lacks 'owner'"):
        load_taxonomy(path)


def test_the_demo_site_names_its_taxonomy_labelled_notes_and_model():
    demo = notes_settings(demo_settings())
    assert demo.taxonomy_path.name == "reasons.yaml" and demo.labelled.name == "demo_labelled_notes.csv"
    assert demo.model.name == "demo_notes.joblib" and demo.model.parent.name == "models"
    assert site_taxonomy(demo_settings()).codes == load_taxonomy().codes


def test_every_demo_policy_reason_rolls_up_into_exactly_one_theme():
    t = load_taxonomy()
    policy_codes = set(load_policy(demo_settings()).reasons)
    mapping = t.theme_of_policy_reason()
    assert policy_codes <= set(mapping), policy_codes - set(mapping)
    assert mapping["short_pick"] == "short_stockout"
    assert mapping["credit_hold"] == "credit_payment"
    assert mapping["label_missing"] == "labeling_docs_compliance"
    assert mapping["unlinked_record"] == "system_data_error"


def test_every_theme_of_the_taxonomy_has_its_reason_in_the_demo_policy():
    t = load_taxonomy()
    assert check_against_policy(t, set(load_policy(demo_settings()).reasons)) == []


def test_check_against_policy_names_a_theme_whose_reason_the_policy_lacks():
    t = load_taxonomy()
    reasons = set(load_policy(demo_settings()).reasons) - {"location_slotting"}
    problems = check_against_policy(t, reasons)
    assert [p.split("policy_reason '")[1].split("'")[0] for p in problems] == ["location_slotting"]


def test_a_classified_theme_the_policy_lacks_falls_back_to_the_entitys_other_reason_and_says_so():
    t = load_taxonomy()
    known = set(load_policy(demo_settings()).reasons) - {"location_slotting"}
    assert t.policy_reason("credit_payment", "holds", known) == ("credit_hold", "")
    reason, why = t.policy_reason("location_slotting", "pack_events", known)
    assert reason == "pack_exception_other" and "location_slotting" in why
    assert t.policy_reason("other", "pack_events", known) == ("pack_exception_other", "")


def test_a_model_path_left_in_the_taxonomy_is_refused_saying_it_is_a_site_setting_now(tmp_path):
    bad = tmp_path / "reasons.yaml"
    bad.write_text(load_taxonomy().path.read_text().replace("settings:\n", "settings:\n  model: m.joblib\n", 1))
    with pytest.raises(SettingsError, match=r"reasons.yaml line 17: settings.model belongs to the site now: set notes.model"):
        load_taxonomy(bad)


def test_a_threshold_outside_0_1_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "reasons.yaml"
    bad.write_text(load_taxonomy().path.read_text().replace("threshold: 0.6", "threshold: 6"))
    with pytest.raises(SettingsError, match=r"line 17: settings.threshold must be a number in \[0, 1\]"):
        load_taxonomy(bad)


def test_the_shipped_labelled_notes_use_exactly_the_taxonomy_codes():
    t = load_taxonomy()
    df = pd.read_csv(notes_settings(demo_settings()).labelled, dtype=str, keep_default_na=False)
    assert set(df["reason"]) == set(t.codes)
    assert len(df) >= 1500
    assert not df["text"].str.lower().str.split().str.join(" ").duplicated().any()
