"""The reason taxonomy: required codes, settings, and how it maps onto the site's policy.reasons."""

import pandas as pd
import pytest
from scenario_tables import demo_settings

from handoff_lib.errors import SettingsError
from handoff_lib.policy import load_policy
from handoff_lib.taxonomy import REQUIRED_CODES, check_against_policy, load_taxonomy


def test_the_demo_taxonomy_has_every_required_reason_with_label_owner_description_and_examples():
    t = load_taxonomy()
    assert set(REQUIRED_CODES) <= set(t.codes)
    for theme in t.themes.values():
        assert theme.label and theme.owner and theme.description and theme.examples
    assert t.threshold == 0.6
    assert t.labelled_notes.name == "demo_labelled_notes.csv"


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


def test_a_taxonomy_missing_a_required_code_is_refused_naming_the_file(tmp_path):
    text = load_taxonomy().path.read_text().replace("  carrier_pickup:", "  carrier_pick:")
    bad = tmp_path / "reasons.yaml"
    bad.write_text(text)
    with pytest.raises(SettingsError, match=r"reasons.yaml line \d+: the taxonomy lacks the reason codes carrier_pickup"):
        load_taxonomy(bad)


def test_a_threshold_outside_0_1_is_refused_naming_the_line(tmp_path):
    bad = tmp_path / "reasons.yaml"
    bad.write_text(load_taxonomy().path.read_text().replace("threshold: 0.6", "threshold: 6"))
    with pytest.raises(SettingsError, match=r"line 15: settings.threshold must be a number in \[0, 1\]"):
        load_taxonomy(bad)


def test_the_shipped_labelled_notes_use_exactly_the_taxonomy_codes():
    t = load_taxonomy()
    df = pd.read_csv(t.labelled_notes, dtype=str, keep_default_na=False)
    assert set(df["reason"]) == set(t.codes)
    assert len(df) >= 1500
    assert not df["text"].str.lower().str.split().str.join(" ").duplicated().any()
