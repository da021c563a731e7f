"""Classify and cluster free-text blocker notes (hold notes, pick/pack exception notes, order comments,
CRM case text) with scikit-learn.

The model is word (1-2) plus character (char_wb 2-5) n-gram TF-IDF into a multinomial logistic
regression: character n-grams carry typos, abbreviations and any language; nothing is stemmed. Every
prediction has a confidence (the model's probability); below the taxonomy's threshold a note is
`needs_review` and gets no reason. A structured code always wins over an inferred reason (`resolve_reason`).

A trained model is saved with joblib beside a JSON sidecar (training-data sha256, scikit-learn version,
classes, threshold); `load_model` refuses a model whose training data is not the current labelled file.
The model file is a pickle: load only models your own `handoff notes train` wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from .errors import HandoffError
from .taxonomy import FALLBACK_REASONS, Taxonomy, load_taxonomy

CLASSIFIED, NEEDS_REVIEW, CODED = "classified", "needs_review", "coded"
BATCH = 5_000


class ModelError(HandoffError):
    """The notes model is missing, stale, or does not fit the taxonomy."""


@dataclass
class NotesModel:
    """A fitted pipeline with its sidecar facts (sha256 of the training data, classes, threshold)."""

    pipeline: Any
    threshold: float
    meta: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]


# ------------------------------------------------------------------------------------ labelled data


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_labelled(path: str | Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """The labelled notes (text, reason) from a CSV; raises HandoffError naming the file, line and value at
    fault (a missing column, an empty text, a reason the taxonomy lacks, too few examples of a reason)."""
    path = Path(path)
    if not path.is_file():
        raise HandoffError(f"{path}: no labelled notes file (a CSV with columns text,reason; see {taxonomy.path})")
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    for col in ("text", "reason"):
        if col not in df.columns:
            raise HandoffError(f"{path}: missing column '{col}' (the file needs the columns text,reason)")
    df = df[["text", "reason"]].copy()
    df["reason"] = df["reason"].str.strip()
    blank = df.index[df["text"].str.strip() == ""]
    if len(blank):
        raise HandoffError(f"{path} line {blank[0] + 2}: empty note text (fill it in or delete the row)")
    unknown = df.index[~df["reason"].isin(taxonomy.codes)]
    if len(unknown):
        i = unknown[0]
        raise HandoffError(
            f"{path} line {i + 2}: reason '{df.at[i, 'reason']}' is not in the taxonomy {taxonomy.path} "
            f"(known: {', '.join(taxonomy.codes)})"
        )
    counts = df["reason"].value_counts()
    few = counts[counts < taxonomy.min_examples]
    if len(few):
        raise HandoffError(
            f"{path}: too few labelled notes for {', '.join(f'{r} ({n})' for r, n in few.items())}; "
            f"each reason needs at least {taxonomy.min_examples} (settings.min_examples in {taxonomy.path})"
        )
    return df


# --------------------------------------------------------------------------------------- the model


def make_pipeline(C: float = 20.0):
    """Word 1-2 + char_wb 2-5 TF-IDF (lower-cased, accents kept, no stemming) -> logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"),
            ),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=300_000)),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(C=C, max_iter=3000))])


def fit(texts: Iterable[str], reasons: Iterable[str], threshold: float, C: float = 20.0) -> NotesModel:
    """A fitted model (not saved)."""
    pipe = make_pipeline(C)
    pipe.fit(list(texts), list(reasons))
    return NotesModel(pipe, threshold)


def train(
    taxonomy: Taxonomy | None = None, labelled: str | Path | None = None, model_path: str | Path | None = None
) -> tuple[NotesModel, Path]:
    """Fit on the labelled file and save model + sidecar (default paths from the taxonomy settings);
    returns (model, path of the model file)."""
    import sklearn

    taxonomy = taxonomy or load_taxonomy()
    labelled = Path(labelled) if labelled else taxonomy.labelled_notes
    model_path = Path(model_path) if model_path else taxonomy.model_path
    df = read_labelled(labelled, taxonomy)
    model = fit(df["text"], df["reason"], taxonomy.threshold)
    model.meta = {
        "training_data": str(labelled),
        "training_sha256": file_sha256(labelled),
        "n_examples": len(df),
        "sklearn_version": sklearn.__version__,
        "classes": model.classes,
        "threshold": taxonomy.threshold,
        "taxonomy": str(taxonomy.path),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    save_model(model, model_path)
    return model, model_path


def sidecar_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(model: NotesModel, path: str | Path) -> Path:
    """Write the pipeline (joblib) and its JSON sidecar atomically; returns the model path."""
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    joblib.dump(model.pipeline, tmp)
    os.replace(tmp, path)
    side = sidecar_path(path)
    side.with_name(side.name + ".part").write_text(json.dumps(model.meta, indent=2), encoding="utf-8")
    os.replace(side.with_name(side.name + ".part"), side)
    return path


def load_model(
    taxonomy: Taxonomy | None = None, model_path: str | Path | None = None, labelled: str | Path | None = None
) -> NotesModel:
    """The saved model, after checking its sidecar: trained on the current labelled file (sha256), with the
    installed scikit-learn, on reasons the taxonomy still has. Raises ModelError saying to run
    `handoff notes train` otherwise. The threshold is the taxonomy's current one."""
    import joblib
    import sklearn

    taxonomy = taxonomy or load_taxonomy()
    model_path = Path(model_path) if model_path else taxonomy.model_path
    labelled = Path(labelled) if labelled else taxonomy.labelled_notes
    side = sidecar_path(model_path)
    retrain = "run `handoff notes train` to train it on the current labelled notes"
    if not model_path.is_file() or not side.is_file():
        raise ModelError(f"{model_path}: no trained notes model (or its sidecar {side.name}); {retrain}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: unreadable model sidecar ({exc}); {retrain}") from None
    if not labelled.is_file():
        raise ModelError(f"{labelled}: the labelled notes file is missing, so the model {model_path} cannot be checked")
    current = file_sha256(labelled)
    if meta.get("training_sha256") != current:
        raise ModelError(
            f"{model_path}: trained on labelled notes with sha256 {str(meta.get('training_sha256'))[:12]}..., but "
            f"{labelled} now has sha256 {current[:12]}... (the labelled notes changed); {retrain}"
        )
    if meta.get("sklearn_version") != sklearn.__version__:
        raise ModelError(
            f"{model_path}: saved with scikit-learn {meta.get('sklearn_version')}, this is {sklearn.__version__}; {retrain}"
        )
    unknown = [c for c in meta.get("classes", []) if c not in taxonomy.themes]
    if unknown:
        raise ModelError(f"{model_path}: predicts {', '.join(unknown)}, which {taxonomy.path} no longer defines; {retrain}")
    pipeline = joblib.load(model_path)
    return NotesModel(pipeline, taxonomy.threshold, meta)


# ------------------------------------------------------------------------------------ classification


def classify_notes(model: NotesModel, texts: Iterable[str | None], progress: bool | None = None) -> pd.DataFrame:
    """One row per text: text, reason (None unless classified), confidence (probability of the best
    reason), status ('classified' at or above the threshold, else 'needs_review'), best_guess (the top
    reason even when it is not assigned). A blank text is needs_review with confidence 0. Shows a tqdm bar
    for large batches (progress=None: when there are more than 20,000 texts)."""
    from tqdm.auto import tqdm

    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    n = len(texts)
    classes = np.asarray(model.classes, dtype=object)
    best = np.empty(n, dtype=object)
    conf = np.zeros(n, dtype=float)
    show = n > 20_000 if progress is None else progress
    with tqdm(total=n, desc="classifying notes", unit="note", disable=not show) as bar:
        for start in range(0, n, BATCH):
            chunk = texts[start : start + BATCH]
            proba = model.pipeline.predict_proba(chunk)
            top = proba.argmax(axis=1)
            best[start : start + len(chunk)] = classes[top]
            conf[start : start + len(chunk)] = proba[np.arange(len(chunk)), top]
            bar.update(len(chunk))
    blank = np.array([not t.strip() for t in texts], dtype=bool)
    conf[blank] = 0.0
    ok = conf >= model.threshold
    return pd.DataFrame(
        {
            "text": pd.Series(texts, dtype=object),
            "reason": pd.Series(np.where(ok, best, None), dtype=object),
            "confidence": conf.round(4),
            "status": np.where(ok, CLASSIFIED, NEEDS_REVIEW),
            "best_guess": pd.Series(np.where(blank, None, best), dtype=object),
        }
    )


@dataclass(frozen=True)
class Decision:
    reason: str | None  # taxonomy theme, or the policy reason a structured code maps to
    confidence: float
    status: str  # coded | classified | needs_review
    basis: str


def resolve_reason(code: str | None, note: str | None, code_map: dict[str, str], model: NotesModel | None) -> Decision:
    """The reason of one record: a structured code the site maps (`code_map`, SOURCE CODE upper -> reason)
    always wins, whatever the note says; otherwise the classifier on the note, which assigns a reason only
    at or above the threshold (else needs_review, reason None)."""
    key = (code or "").strip().upper()
    if key and key in code_map:
        return Decision(code_map[key], 1.0, CODED, f"code {key}")
    if model is None or not (note or "").strip():
        return Decision(None, 0.0, NEEDS_REVIEW, "no mapped code and no note" if model else "no mapped code and no model")
    row = classify_notes(model, [note], progress=False).iloc[0]
    if row["status"] == CLASSIFIED:
        return Decision(row["reason"], float(row["confidence"]), CLASSIFIED, f"classifier {row['confidence']:.2f} on the note")
    return Decision(
        None, float(row["confidence"]), NEEDS_REVIEW, f"needs review: best guess {row['best_guess']} {row['confidence']:.2f}"
    )


# The notes the blocker queue needs a reason for: the same query blockers.build_note_reasons uses.
NOTE_REASONS_COLUMNS = (
    "entity VARCHAR, record_key VARCHAR, note VARCHAR, reason VARCHAR, classified_by VARCHAR, "
    "theme VARCHAR, confidence DOUBLE, status VARCHAR"
)


def apply_to_blockers(
    con: duckdb.DuckDBPyConnection, model: NotesModel, taxonomy: Taxonomy | None = None
) -> duckdb.DuckDBPyRelation:
    """Create `note_reasons` (entity, record_key, note, reason, classified_by, + theme, confidence, status)
    with the classifier instead of the keyword rules: a drop-in for `blockers.build_note_reasons(con)`
    (needs the linked_holds / linked_pack_events and policy_* tables that `policy.prepare` writes).
    A classified note gets its theme's policy reason (or hold_other / pack_exception_other when the site's
    policy.reasons lacks it, said in classified_by); a needs_review note gets hold_other /
    pack_exception_other with classified_by 'classifier: needs review (best guess ...)', never a guess."""
    from .blockers import NOTES_TO_CLASSIFY

    taxonomy = taxonomy or load_taxonomy()
    notes = con.execute(NOTES_TO_CLASSIFY).df()
    known = {r[0] for r in con.execute("SELECT reason FROM policy_reasons").fetchall()}
    rows = []
    if len(notes):
        result = classify_notes(model, notes["note"].tolist())
        for (entity, key, text), r in zip(
            notes[["entity", "record_key", "note"]].itertuples(index=False), result.itertuples(index=False)
        ):
            if r.status == CLASSIFIED:
                reason, why = taxonomy.policy_reason(r.reason, entity, known)
                by = f"classifier {r.reason} {r.confidence:.2f}" + (f" ({why}: counted as {reason})" if why else "")
                rows.append((entity, key, text, reason, by, r.reason, float(r.confidence), CLASSIFIED))
            else:
                guess = f"best guess {r.best_guess} {r.confidence:.2f}" if r.best_guess else "blank note"
                by = f"classifier: needs review ({guess}, below {model.threshold:.2f})"
                rows.append(
                    (entity, key, text, FALLBACK_REASONS.get(entity, "hold_other"), by, None, float(r.confidence), NEEDS_REVIEW)
                )
    con.execute(f"CREATE OR REPLACE TABLE note_reasons ({NOTE_REASONS_COLUMNS})")
    if rows:
        con.executemany("INSERT INTO note_reasons VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return con.table("note_reasons")


# -------------------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    cv_macro_f1: list[float]
    report: pd.DataFrame  # per class: precision, recall, f1, support (cross-validated predictions)
    confusion: pd.DataFrame  # rows = true reason, columns = predicted (cross-validated)
    needs_review_rate: float
    wrong_when_assigned: float  # share of assigned (>= threshold) predictions that were wrong
    holdout_macro_f1: float | None = None
    holdout_needs_review_rate: float | None = None
    threshold: float = 0.6

    def text(self) -> str:
        """The evaluation as a plain-text report (what `handoff notes evaluate` prints)."""
        f1 = np.array(self.cv_macro_f1)
        lines = [
            f"cross-validated macro-F1 ({len(f1)}-fold stratified): {f1.mean():.3f} (+/- {f1.std():.3f}; folds "
            + ", ".join(f"{x:.3f}" for x in f1)
            + ")",
        ]
        if self.holdout_macro_f1 is not None:
            lines.append(
                f"held-out split macro-F1: {self.holdout_macro_f1:.3f} (needs_review on it {self.holdout_needs_review_rate:.1%})"
            )
        lines += [
            (
                f"needs_review rate at threshold {self.threshold:.2f}: {self.needs_review_rate:.1%} of notes; "
                f"wrong among assigned: {self.wrong_when_assigned:.1%}"
            ),
            "",
            "per reason (cross-validated, top guess):",
            self.report.to_string(float_format=lambda x: f"{x:.3f}"),
            "",
            "confusion matrix (rows: labelled reason, columns: predicted; cross-validated):",
            self.confusion.to_string(),
        ]
        return "\n".join(lines)


def abbreviations(codes: list[str]) -> dict[str, str]:
    """Short column names for the confusion matrix: 'short_stockout' -> 'sho_sto'."""
    out = {}
    for c in codes:
        parts = c.split("_")
        out[c] = "_".join(p[:3] for p in parts[:2])
    return out


def evaluate(df: pd.DataFrame, threshold: float, folds: int = 5, seed: int = 0, holdout: float = 0.2) -> Evaluation:
    """Stratified k-fold cross-validated macro-F1, per-class precision/recall and the confusion matrix
    (from out-of-fold predictions), the needs_review rate at `threshold`, and macro-F1 on one stratified
    held-out split (the model fitted on the rest)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, train_test_split

    texts = df["text"].to_numpy(dtype=object)
    y = df["reason"].to_numpy(dtype=object)
    classes = sorted(set(y))
    pred = np.empty(len(y), dtype=object)
    conf = np.zeros(len(y))
    scores = []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        m = fit(texts[tr], y[tr], threshold)
        r = classify_notes(m, texts[te], progress=False)
        pred[te] = r["best_guess"].to_numpy()
        conf[te] = r["confidence"].to_numpy()
        scores.append(float(f1_score(y[te], pred[te], average="macro")))
    p, r_, f, s = precision_recall_fscore_support(y, pred, labels=classes, zero_division=0)
    report = pd.DataFrame({"precision": p, "recall": r_, "f1": f, "support": s}, index=pd.Index(classes, name="reason"))
    short = abbreviations(classes)
    cm = pd.DataFrame(
        confusion_matrix(y, pred, labels=classes),
        index=pd.Index(classes, name="labelled"),
        columns=[short[c] for c in classes],
    )
    assigned = conf >= threshold
    wrong = float((pred[assigned] != y[assigned]).mean()) if assigned.any() else 0.0
    ev = Evaluation(scores, report, cm, float((~assigned).mean()), wrong, threshold=threshold)
    if holdout:
        tr, te = train_test_split(np.arange(len(y)), test_size=holdout, stratify=y, random_state=seed)
        m = fit(texts[tr], y[tr], threshold)
        r = classify_notes(m, texts[te], progress=False)
        ev.holdout_macro_f1 = float(f1_score(y[te], r["best_guess"].to_numpy(), average="macro"))
        ev.holdout_needs_review_rate = float((r["status"] == NEEDS_REVIEW).mean())
    return ev


# ---------------------------------------------------------------------------------------- clusters


def cluster_notes(
    texts: Iterable[str], k_range: range = range(2, 9), top_terms: int = 6, examples: int = 4, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Group notes (e.g. the needs_review ones) so an analyst can name a new reason. TF-IDF (word +
    char_wb) -> 50-d SVD -> k-means, with k picked by the best silhouette over `k_range` (capped by the
    number of distinct notes). Returns (notes: text, cluster; clusters: cluster, size, silhouette, k,
    top_terms, examples), largest cluster first."""
    from scipy.sparse import hstack
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import normalize

    texts = [str(t) for t in texts if t is not None and str(t).strip()]
    empty = pd.DataFrame(columns=["cluster", "size", "silhouette", "k", "top_terms", "examples"])
    if len(set(texts)) < 3:
        return pd.DataFrame({"text": texts, "cluster": [0] * len(texts)}), empty
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b[^\W\d_]{2,}\b", sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2 if len(texts) > 50 else 1)
    W = words.fit_transform(texts)
    X = hstack([W, chars.fit_transform(texts)]).tocsr()
    dims = min(50, X.shape[1] - 1, len(texts) - 1)
    Z = normalize(TruncatedSVD(dims, random_state=seed).fit_transform(X)) if dims >= 2 else normalize(X.toarray())
    distinct = len(set(texts))
    best = None
    for k in k_range:
        if k >= distinct or k < 2:
            continue
        labels = KMeans(k, n_init=5, random_state=seed).fit_predict(Z)
        if len(set(labels)) < 2:
            continue
        s = float(silhouette_score(Z, labels, sample_size=min(len(texts), 3000), random_state=seed))
        if best is None or s > best[0]:
            best = (s, k, labels)
    if best is None:
        return pd.DataFrame({"text": texts, "cluster": [0] * len(texts)}), empty
    score, k, labels = best
    vocab = np.asarray(words.get_feature_names_out())
    overall = np.asarray(W.mean(axis=0)).ravel()
    rows = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        centre = np.asarray(W[idx].mean(axis=0)).ravel()
        lift = centre - overall
        terms = [vocab[i] for i in np.argsort(-lift)[:top_terms] if lift[i] > 0]
        # examples: the members closest to the cluster centre
        d = Z[idx] @ normalize(Z[idx].mean(axis=0, keepdims=True)).T
        ex = [texts[idx[i]] for i in np.argsort(-d.ravel())[:examples]]
        rows.append(
            {
                "cluster": c,
                "size": len(idx),
                "silhouette": round(score, 3),
                "k": k,
                "top_terms": ", ".join(terms),
                "examples": " | ".join(ex),
            }
        )
    clusters = pd.DataFrame(rows).sort_values(["size", "cluster"], ascending=[False, True]).reset_index(drop=True)
    order = {c: i for i, c in enumerate(clusters["cluster"])}
    clusters["cluster"] = clusters["cluster"].map(order)
    return pd.DataFrame({"text": texts, "cluster": [order[c] for c in labels]}), clusters


def needs_review_clusters(con: duckdb.DuckDBPyConnection, **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clusters of the needs_review notes in `note_reasons` (after apply_to_blockers)."""
    texts = [r[0] for r in con.execute("SELECT note FROM note_reasons WHERE status = 'needs_review'").fetchall()]
    return cluster_notes(texts, **kwargs)
