"""Notes of a site: the model reads only what the site's own rules leave, belongs to one site and one set of
labelled notes, is recorded in the manifest, works with a site's own reason set; plus the classifier's
quality, thresholds and clusters, and no import circle between the rules and the learning code."""

import dataclasses
import json
import re
from pathlib import Path

import import_graph
import numpy as np
import pandas as pd
import pytest
import yaml
from scenario_tables import Story, at
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from handoff_lib.db import save_picture
from handoff_lib.errors import HandoffError, SettingsError
from handoff_lib.learn import notes
from handoff_lib.learn.taxonomy import load_taxonomy, notes_settings
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.picture import analyse
from handoff_lib.publish.pipeline import trained_note_model

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "notes_site"


def write_site(tmp_path: Path, name: str = "site.yaml", site: str = "demo", notes_section=None, **policy) -> Path:
    """The demo site file under tmp_path with another site code, `notes:` section and policy keys."""
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["site"] = site
    raw["data"] = {"folder": str(tmp_path / "data"), "allowed_roots": [str(tmp_path)]}
    raw["outputs"] = str(tmp_path / "outputs")
    if notes_section is None:
        raw.pop("notes", None)
    else:
        raw["notes"] = notes_section
    raw["policy"].update(policy)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def analyse_with(settings, story_fn, model, now: str = "10:00") -> Story:
    s = Story(settings)
    story_fn(s)
    analyse(s.con, s.settings, at(now), model)
    return s


def blocker(s: Story, key: str) -> dict:
    return s.con.execute("SELECT * FROM blockers WHERE source_key = ?", [key]).df().iloc[0].to_dict()


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def demo_notes():
    return notes_settings(load_settings(ROOT / "parameters/demo.yaml"))


@pytest.fixture(scope="module")
def split(taxonomy, demo_notes):
    df = notes.read_labelled(demo_notes.labelled, taxonomy)
    return train_test_split(df, test_size=0.25, stratify=df["reason"], random_state=42)


@pytest.fixture(scope="module")
def model(split, taxonomy):
    train, _ = split
    return notes.fit(train["text"], train["reason"], taxonomy.threshold, taxonomy=taxonomy)


@pytest.fixture
def small_labelled(tmp_path, taxonomy, demo_notes):
    df = notes.read_labelled(demo_notes.labelled, taxonomy).groupby("reason").head(12)
    path = tmp_path / "labelled.csv"
    df.to_csv(path, index=False)
    return path


def small_site(tmp_path, labelled, site="demo", name="site.yaml", model="models/{site}_notes.joblib"):
    section = {"model": str(tmp_path / model), "taxonomy": str(ROOT / "parameters/reasons.yaml"), "labelled": str(labelled)}
    return load_settings(write_site(tmp_path, name, site, section))


# ------------------------------------------------------------------------------ the classifier itself


def test_macro_f1_on_a_held_out_split_of_the_shipped_labelled_notes_is_at_least_0_90(model, split):
    _, test = split
    result = notes.classify_notes(model, test["text"])
    assert f1_score(test["reason"], result["best_guess"], average="macro") >= 0.90
    assert set(test["text"]).isdisjoint(set(split[0]["text"]))


def test_low_confidence_yields_needs_review_and_no_reason(model):
    result = notes.classify_notes(model, ["qwxz plv", "   ", None], progress=False)
    assert list(result["status"]) == ["needs_review"] * 3
    assert result["reason"].isna().all()
    assert (result["confidence"] < model.threshold).all()
    assert result["best_guess"].iloc[0] is not None  # the guess is shown, never assigned


def test_raising_the_threshold_turns_a_confident_note_into_needs_review(model):
    strict = notes.NotesModel(model.pipeline, threshold=1.0)
    row = notes.classify_notes(strict, ["credit limit exceeded"], progress=False).iloc[0]
    assert row["status"] == "needs_review" and row["reason"] is None and row["best_guess"] == "credit_payment"


def test_typos_abbreviations_and_other_languages_are_classified(model):
    result = notes.classify_notes(
        model,
        ["CRDIT LIMT exceded", "etiqueta no imprime!!", "Palette noch im Hochregal", "cust req hold til mon"],
        progress=False,
    )
    assert list(result["best_guess"]) == ["credit_payment", "labeling_docs_compliance", "replenishment", "customer_request"]


def test_a_labelled_file_with_an_unknown_reason_is_refused_naming_the_line(tmp_path, taxonomy):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,reason\nbin empty,short_stockout\nbox fell,falling_boxes\n")
    with pytest.raises(HandoffError, match=r"bad.csv line 3: reason 'falling_boxes' is not in the taxonomy"):
        notes.read_labelled(bad, taxonomy)


# ------------------------------------------------------------------- precedence in the blocker queue


def bad_zip_model(taxonomy):
    """A model that has learnt (wrongly, for this site) that a bad zip is 'other' (the shift lead's)."""
    texts = ["bad zip, call cust", "bad zip call customer", "zip wrong - call cust", "call cust re zip", "zip?? call cust"]
    texts += ["credit limit exceeded", "AR hold past due", "credit hold - finance", "past due invoices", "prepay not in"]
    return notes.fit(texts, ["other"] * 5 + ["credit_payment"] * 5, taxonomy.threshold, taxonomy=taxonomy)


def test_the_sites_rule_sends_bad_zip_to_customer_service_even_when_the_model_says_shift_lead(taxonomy):
    model = bad_zip_model(taxonomy)
    alone = notes.classify_notes(model, ["bad zip, call cust"], progress=False).iloc[0]
    assert (alone["reason"], alone["status"]) == ("other", "classified")  # the model on its own: other -> shift lead

    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", note="bad zip, call cust")

    settings = load_settings(ROOT / "parameters/demo.yaml")
    b = blocker(analyse_with(settings, story, model), "H-1")
    assert (b["reason"], b["owner"]) == ("address", "customer service")
    assert b["basis"] == "note rule 2 on the note"

    # the same site without note rules: now (and only now) the model decides, and the basis says so
    raw = dict(settings.raw, policy=dict(settings.raw["policy"], note_rules=[]))
    b = blocker(analyse_with(dataclasses.replace(settings, raw=raw), story, model), "H-1")
    assert (b["reason"], b["owner"]) == ("hold_other", "shift lead")
    assert re.fullmatch(r"model other [01]\.\d\d on the note", b["basis"])


def test_a_structured_code_beats_both_the_rules_and_the_model(taxonomy):
    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", code=" qa ", note="bad zip, call cust")

    s = analyse_with(load_settings(ROOT / "parameters/demo.yaml"), story, bad_zip_model(taxonomy))
    b = blocker(s, "H-1")
    assert (b["reason"], b["basis"]) == ("quality_hold", "hold code qa")
    assert s.one("SELECT count(*) FROM note_reasons")[0] == 0


def test_the_model_assigns_a_note_at_its_threshold_and_leaves_one_just_below_it_for_review(model):
    note = "pallet still in reserve, pick face empty"  # no note rule of the demo site matches it
    confidence = float(model.pipeline.predict_proba([note]).max())
    guess = notes.classify_notes(model, [note], progress=False).iloc[0]["best_guess"]
    settings = load_settings(ROOT / "parameters/demo.yaml")

    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", note=note)
        s.order("SO-2")
        s.carton("CTN-2", "SO-2", status="exception", note=note)

    at_threshold = dataclasses.replace(model, threshold=confidence)
    s = analyse_with(settings, story, at_threshold)
    rows = s.con.execute("SELECT * FROM note_reasons ORDER BY entity").df().set_index("entity")
    assert rows["status"].tolist() == ["model", "model"] and rows["theme"].tolist() == [guess, guess]
    assert rows.loc["holds", "reason"] == "replenishment" and blocker(s, "H-1")["owner"] == "replenishment"

    below = dataclasses.replace(model, threshold=float(np.nextafter(confidence, 1.0)))
    s = analyse_with(settings, story, below)
    for key, other in (("H-1", "hold_other"), ("CTN-2", "pack_exception_other")):
        b = blocker(s, key)
        assert (b["reason"], b["owner"]) == (other, "shift lead")
        assert f"best guess {guess} {confidence:.2f}, below its threshold" in b["basis"]
    rows = s.con.execute("SELECT status, theme FROM note_reasons").fetchall()
    assert rows == [("needs_review", None)] * 2


def test_a_note_no_rule_matches_without_a_model_is_left_to_the_shift_lead():
    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", note="pallet still in reserve, pick face empty")

    s = analyse_with(load_settings(ROOT / "parameters/demo.yaml"), story, None)
    b = blocker(s, "H-1")
    assert (b["reason"], b["basis"]) == ("hold_other", "no code and no note rule matched")
    assert s.con.execute("SELECT decided_by, records FROM note_decisions").fetchall() == [("needs_review", 1)]


# ---------------------------------------------------------------------------- a model of one site


def test_the_saved_model_records_the_site_and_the_sha256_of_its_labelled_notes(tmp_path, small_labelled, taxonomy):
    settings = small_site(tmp_path, small_labelled)
    model, path = notes.train(notes_settings(settings))
    assert path == tmp_path / "models" / "demo_notes.joblib"  # {site} filled in
    meta = json.loads(path.with_suffix(".json").read_text())
    assert (meta["site"], meta["labelled"], meta["labelled_sha256"]) == ("demo", str(small_labelled), notes.file_sha256(small_labelled))
    assert meta["classes"] == sorted(taxonomy.codes) and meta["threshold"] == 0.6 and meta["sklearn_version"]
    again = trained_note_model(settings)
    assert again.classes == model.classes and again.sha256 == notes.file_sha256(path)


def test_a_model_trained_for_site_a_is_refused_for_site_b_naming_the_setting(tmp_path, small_labelled):
    a = small_site(tmp_path, small_labelled, site="a", name="a.yaml", model="models/shared.joblib")
    notes.train(notes_settings(a))
    b = small_site(tmp_path, small_labelled, site="b", name="b.yaml", model="models/shared.joblib")
    with pytest.raises(notes.ModelError, match=r"trained for site 'a' .*a.yaml.*not for site 'b'.*notes.model \(.*b.yaml line \d+\)"):
        trained_note_model(b)
    assert trained_note_model(a) is not None


def test_a_model_trained_on_other_labelled_notes_is_refused_naming_notes_labelled(tmp_path, small_labelled):
    settings = small_site(tmp_path, small_labelled)
    notes.train(notes_settings(settings))
    with small_labelled.open("a") as f:
        f.write("pallet fell over,quality_damage\n")
    with pytest.raises(notes.ModelError, match=r"notes.labelled \(.*site.yaml line \d+\).*changed.*handoff notes train --site"):
        trained_note_model(settings)


def test_a_site_without_a_model_or_with_an_untrained_one_uses_its_rules_only(tmp_path, small_labelled):
    assert trained_note_model(load_settings(ROOT / "parameters/olist.yaml")) is None
    assert notes_settings(load_settings(ROOT / "parameters/olist.yaml")).model is None
    assert trained_note_model(small_site(tmp_path, small_labelled)) is None  # configured, not trained yet
    with pytest.raises(notes.ModelError, match="site 'olist' has no notes model"):
        notes.load_model(notes_settings(load_settings(ROOT / "parameters/olist.yaml")))


def test_the_notes_section_is_checked_naming_the_line(tmp_path):
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: unknown setting notes.modle"):
        notes_settings(load_settings(write_site(tmp_path, notes_section={"modle": "m.joblib"})))
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: notes.model needs notes.labelled"):
        notes_settings(load_settings(write_site(tmp_path, notes_section={"model": "m.joblib"})))
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: notes.taxonomy: no reason taxonomy file"):
        notes_settings(load_settings(write_site(tmp_path, notes_section={"taxonomy": "nope.yaml"}))).taxonomy()


# ------------------------------------------------------------------------------------ the manifest


def test_the_manifest_entry_names_the_models_sha256_and_who_decided_each_record(tmp_path, small_labelled):
    settings = small_site(tmp_path, small_labelled)
    _, path = notes.train(notes_settings(settings))
    model = trained_note_model(settings)

    def story(s):
        for i in range(1, 5):
            s.order(f"SO-{i}")
        s.hold("H-1", "SO-1", code="CR", note="bin empty")  # code
        s.hold("H-2", "SO-2", note="credit hold, AR to release")  # note rule 1
        s.hold("H-3", "SO-3", note="waiting on drop from reserve")  # no rule matches: the model
        s.carton("CTN-4", "SO-4", status="exception", note="zzqx")  # no rule, the model is unsure

    s = analyse_with(settings, story, model)
    save_picture(s.con, tmp_path / "picture.duckdb")
    entry = notes.note_manifest(tmp_path / "picture.duckdb", settings)
    assert entry["model"]["sha256"] == notes.file_sha256(path) and entry["model"]["model"] == str(path)
    assert entry["model"]["site"] == "demo" and entry["model"]["trained_at"] and entry["model"]["threshold"] == 0.6
    assert entry["decided"] == {"code": 1, "rule": 1, "model": 1, "needs_review": 1}
    assert entry["rules"] == {"note rule 1": 1}
    assert blocker(s, "H-3")["reason"] == "replenishment"


def test_the_manifest_entry_says_rules_only_and_why(tmp_path, small_labelled):
    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", note="credit hold")

    for settings, why in ((load_settings(write_site(tmp_path)), "the site has no notes.model"),
                          (small_site(tmp_path, small_labelled), "not trained yet")):
        s = analyse_with(settings, story, trained_note_model(settings))
        save_picture(s.con, tmp_path / "picture.duckdb")
        entry = notes.note_manifest(tmp_path / "picture.duckdb", settings)
        assert entry["model"] == "rules only" and why in entry["why"]
        assert entry["decided"] == {"code": 0, "rule": 1, "model": 0, "needs_review": 0}


# ------------------------------------------------------------------------------ a site's own reasons


def test_a_site_taxonomy_without_any_built_in_reason_trains_and_decides_blockers(tmp_path):
    reasons = dict(load_settings(ROOT / "parameters/demo.yaml").raw["policy"]["reasons"])
    reasons.update({"dock_congestion": {"label": "Dock congestion", "owner": "yard"},
                    "temperature_excursion": {"label": "Temperature excursion", "owner": "quality"}})
    section = {"model": str(tmp_path / "cold.joblib"), "taxonomy": str(FIXTURES / "reasons.yaml"),
               "labelled": str(FIXTURES / "labelled.csv")}
    settings = load_settings(write_site(tmp_path, site="cold", notes_section=section, reasons=reasons, note_rules=[]))
    site = notes_settings(settings)
    assert set(site.taxonomy().codes) == {"dock_congestion", "cold_chain", "customs_docs"}
    trained, _ = notes.train(site)
    assert trained.classes == ["cold_chain", "customs_docs", "dock_congestion"]
    result = notes.classify_notes(trained, ["reefer warm, logger alarm", "no free door, yard full"], progress=False)
    assert list(result["reason"]) == ["cold_chain", "dock_congestion"]

    def story(s):
        s.order("SO-1")
        s.hold("H-1", "SO-1", note="temp logger alarm, reefer warm")
        s.order("SO-2")
        s.carton("CTN-2", "SO-2", status="exception", note="EUR1 certificate not here")

    s = analyse_with(settings, story, trained_note_model(settings))
    b = blocker(s, "H-1")
    assert (b["reason"], b["owner"]) == ("temperature_excursion", "quality")  # the theme's policy_reason
    b = blocker(s, "CTN-2")  # customs_docs is not in this site's policy.reasons: the pack exception's other, said so
    assert b["reason"] == "pack_exception_other" and "policy.reasons has no 'customs_docs'" in b["basis"]


# ------------------------------------------------------------------------------------------ clusters


def test_clusters_keep_different_problems_apart_with_top_terms_and_examples():
    fork = [
        "forklift broken dock 3",
        "forklift broken again",
        "forklift down at dock 2",
        "fork lift broken, no drops",
        "forklift battery dead",
        "second forklift broken",
        "forklift broken since am",
        "no forklift, broken",
    ]
    invoice = [
        "invoice missing for export",
        "missing export invoice",
        "export invoice not printed",
        "invoice for export missing",
        "export invoice still missing",
        "need export invoice",
        "invoice missing - export",
        "export docs: invoice missing",
    ]
    assigned, clusters = notes.cluster_notes(fork + invoice, k_range=range(2, 6))
    assert 2 <= clusters["k"].iloc[0] <= 5 and clusters["size"].sum() == 16
    by_text = dict(zip(assigned["text"], assigned["cluster"]))
    assert {by_text[t] for t in fork}.isdisjoint({by_text[t] for t in invoice})
    biggest_fork = max({by_text[t] for t in fork}, key=lambda c: sum(by_text[t] == c for t in fork))
    assert "forklift" in clusters.loc[clusters["cluster"] == biggest_fork, "top_terms"].iloc[0]
    assert clusters["examples"].str.len().gt(0).all()


# ---------------------------------------------------------------------------------- import layering


STAGE = {"blockers": "rules", "notes": "learn", "taxonomy": "learn", "themes": "learn"}


def reachable(module: str) -> set[str]:
    """The handoff_lib modules (short names) `module` imports anywhere, directly or through others."""
    found = import_graph.imports(import_graph.modules(ROOT))
    return {m.rsplit(".", 1)[1] for m in import_graph.reach(found, f"handoff_lib.{STAGE[module]}.{module}")}


def test_the_blocker_rules_never_import_the_notes_model_and_nothing_imports_back_what_imports_it():
    assert not {"notes", "taxonomy", "themes"} & reachable("blockers")  # the model is handed in
    for module in ("blockers", "notes", "taxonomy"):
        assert module not in reachable(module), f"{module} imports a module that imports it back"


def test_a_classifier_row_set_keeps_the_note_reasons_columns(model):
    notes_in = pd.DataFrame({"entity": ["holds", "pack_events"], "record_key": ["H-1", "C-1"], "note": ["AR hold", "qwxz"]})
    out = model.note_reasons(notes_in, {"credit_hold"})
    assert list(out.columns) == ["entity", "record_key", "note", "reason", "classified_by", "theme", "confidence", "status"]
    assert out["status"].tolist() == ["model", "needs_review"] and out["reason"].tolist() == ["credit_hold", "pack_exception_other"]


# ----------------------------------------------------------------------------------------- commands


def test_notes_train_for_a_site_without_a_model_exits_2_naming_the_site(capsys):
    from handoff_lib.cli.notes import notes_main

    assert notes_main(["train", "--site", str(ROOT / "parameters/olist.yaml")]) == 2
    assert "olist.yaml: site 'olist' has no notes model" in capsys.readouterr().err


def test_the_demo_command_trains_the_sites_model_when_missing_or_of_another_site_and_keeps_a_current_one(tmp_path, small_labelled):
    from handoff_lib.cli.main import _ensure_notes_model

    a = small_site(tmp_path, small_labelled, site="a", name="a.yaml", model="shared.joblib")
    _ensure_notes_model(a)
    first = (tmp_path / "shared.joblib").stat().st_mtime_ns
    _ensure_notes_model(a)  # current: kept
    assert (tmp_path / "shared.joblib").stat().st_mtime_ns == first
    b = small_site(tmp_path, small_labelled, site="b", name="b.yaml", model="shared.joblib")
    _ensure_notes_model(b)  # a's model is not b's: b's own is trained
    assert trained_note_model(b).meta["site"] == "b"
    _ensure_notes_model(load_settings(ROOT / "parameters/olist.yaml"))  # rules only: nothing to train
