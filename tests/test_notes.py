"""Classifying free-text notes: held-out quality, codes beat notes, low confidence is needs_review,
the saved model is tied to its training data, and the classifier plugs into the blocker queue."""

import json
import re

import pandas as pd
import pytest
from scenario_tables import Story
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from handoff_lib import notes
from handoff_lib.errors import HandoffError
from handoff_lib.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def split(taxonomy):
    df = notes.read_labelled(taxonomy.labelled_notes, taxonomy)
    return train_test_split(df, test_size=0.25, stratify=df["reason"], random_state=42)


@pytest.fixture(scope="module")
def model(split, taxonomy):
    train, _ = split
    return notes.fit(train["text"], train["reason"], taxonomy.threshold)


def test_macro_f1_on_a_held_out_split_of_the_shipped_labelled_notes_is_at_least_0_90(model, split):
    _, test = split
    result = notes.classify_notes(model, test["text"])
    assert f1_score(test["reason"], result["best_guess"], average="macro") >= 0.90
    assert set(test["text"]).isdisjoint(set(split[0]["text"]))


def test_a_structured_code_beats_a_conflicting_note(model):
    note = "bin empty at C-14-03, no stock"
    assert notes.resolve_reason(None, note, {}, model).reason == "short_stockout"
    d = notes.resolve_reason(" cr ", note, {"CR": "credit_hold"}, model)
    assert (d.reason, d.status, d.confidence, d.basis) == ("credit_hold", "coded", 1.0, "code CR")


def test_an_unmapped_code_falls_back_to_the_note(model):
    d = notes.resolve_reason("ZZ", "credit limit exceeded, AR hold", {"CR": "credit_hold"}, model)
    assert (d.reason, d.status) == ("credit_payment", "classified")


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


@pytest.fixture
def small_labelled(tmp_path, taxonomy):
    df = notes.read_labelled(taxonomy.labelled_notes, taxonomy).groupby("reason").head(12)
    path = tmp_path / "labelled.csv"
    df.to_csv(path, index=False)
    return path


def test_the_saved_model_has_a_sidecar_with_hash_version_classes_and_threshold(tmp_path, small_labelled, taxonomy):
    model, path = notes.train(taxonomy, small_labelled, tmp_path / "m.joblib")
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["training_sha256"] == notes.file_sha256(small_labelled)
    assert meta["classes"] == sorted(taxonomy.codes) and meta["threshold"] == 0.6 and meta["sklearn_version"]
    again = notes.load_model(taxonomy, path, small_labelled)
    assert again.classes == model.classes


def test_load_model_refuses_a_model_trained_on_other_labelled_notes(tmp_path, small_labelled, taxonomy):
    _, path = notes.train(taxonomy, small_labelled, tmp_path / "m.joblib")
    with small_labelled.open("a") as f:
        f.write("pallet fell over,quality_damage\n")
    with pytest.raises(notes.ModelError, match="labelled notes changed.*run `handoff notes train`"):
        notes.load_model(taxonomy, path, small_labelled)


def test_load_model_without_a_model_says_to_train(tmp_path, small_labelled, taxonomy):
    with pytest.raises(notes.ModelError, match="no trained notes model.*handoff notes train"):
        notes.load_model(taxonomy, tmp_path / "none.joblib", small_labelled)


def test_a_labelled_file_with_an_unknown_reason_is_refused_naming_the_line(tmp_path, taxonomy):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,reason\nbin empty,short_stockout\nbox fell,falling_boxes\n")
    with pytest.raises(HandoffError, match=r"bad.csv line 3: reason 'falling_boxes' is not in the taxonomy"):
        notes.read_labelled(bad, taxonomy)


def test_the_classifier_fills_note_reasons_for_the_blocker_queue_and_never_assigns_a_low_confidence_guess(model):
    s = Story()
    s.order("SO-1")
    s.hold("H-1", "SO-1", note="credit limit exceeded - AR hold")
    s.order("SO-2")
    s.hold("H-2", "SO-2", note="qwxz plv")
    s.order("SO-3")
    s.hold("H-3", "SO-3", code="ADDR", note="credit limit exceeded")  # the code wins: not classified at all
    s.order("SO-4")
    s.carton("CTN-4", "SO-4", status="exception", note="wrong item in slot B-02-03")
    s.analyse("10:00")
    rows = notes.apply_to_blockers(s.con, model).df().set_index("record_key")
    assert set(rows.index) == {"H-1", "H-2", "CTN-4"}
    assert rows.loc["H-1", ["reason", "theme", "status"]].tolist() == ["credit_hold", "credit_payment", "classified"]
    assert re.fullmatch(r"classifier credit_payment [01]\.\d\d", rows.loc["H-1", "classified_by"])
    assert rows.loc["H-2", ["reason", "status"]].tolist() == ["hold_other", "needs_review"]
    assert pd.isna(rows.loc["H-2", "theme"]) and "needs review (best guess" in rows.loc["H-2", "classified_by"]
    assert rows.loc["CTN-4", ["reason", "theme"]].tolist() == ["location_slotting", "location_slotting"]


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
