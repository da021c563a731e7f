"""Classify and cluster free-text blocker notes (hold notes, pick/pack exception notes, order comments,
CRM case text) with scikit-learn.

The model is word (1-2) plus character (char_wb 2-5) n-gram TF-IDF into a multinomial logistic
regression: character n-grams carry typos, abbreviations and any language; nothing is stemmed. Every
prediction has a confidence (the model's probability); below the taxonomy's threshold a note is
`needs_review` and gets no reason.

A model belongs to a site: its path, taxonomy and labelled notes are the site file's `notes:` settings
(taxonomy.notes_settings). It is saved with joblib beside a JSON sidecar (site, labelled notes and their
sha256, scikit-learn version, classes, threshold); `load_model` refuses a model of another site or of
other labelled notes. In the blocker queue the site's note rules come first and the model only reads
the notes no rule matched (blockers.build_note_reasons, which receives the model: a NoteClassifier).
The model file is a pickle: load only models your own `handoff notes train` wrote.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.load.settings import Settings

from .taxonomy import FALLBACK_REASONS, SiteNotes, Taxonomy, notes_settings

CLASSIFIED, NEEDS_REVIEW = "classified", "needs_review"
BATCH = 5_000


class ModelError(HandoffError):
    """The notes model is missing, stale, of another site, or does not fit the taxonomy."""


@dataclass
class NotesModel:
    """A fitted pipeline with its sidecar facts (site, sha256 of the labelled notes, classes, threshold),
    the taxonomy its reasons belong to, and where it was loaded from. As `blockers.NoteClassifier` it
    reads the notes no rule of the site matched."""

    pipeline: Any
    threshold: float
    meta: dict = field(default_factory=dict)
    taxonomy: Taxonomy | None = None
    path: Path | None = None
    sha256: str | None = None

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    def describe(self) -> dict[str, Any]:
        """path, sha256, trained_at, site and threshold: what the manifest records."""
        return {
            "model": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "trained_at": self.meta.get("trained_at"),
            "site": self.meta.get("site"),
            "threshold": self.threshold,
        }

    def note_reasons(self, notes: pd.DataFrame, known_reasons: set[str]) -> pd.DataFrame:
        """For `notes` (entity, record_key, note: notes no rule decided), the note_reasons rows: a note
        classified at or above the threshold gets its theme's policy reason (status 'model'; hold_other /
        pack_exception_other when the site's policy.reasons lacks it, said in classified_by); below it the
        entity's other reason with status 'needs_review' and the best guess and confidence in classified_by."""
        if self.taxonomy is None:
            raise ModelError("the notes model has no taxonomy to map its reasons onto policy.reasons")
        result = classify_notes(self, notes["note"].tolist())
        rows = []
        for entity, r in zip(notes["entity"], result.itertuples(index=False)):
            if r.status == CLASSIFIED:
                reason, why = self.taxonomy.policy_reason(r.reason, entity, known_reasons)
                by = f"model {r.reason} {r.confidence:.2f}" + (f" ({why}: counted as {reason})" if why else "")
                rows.append((reason, by, r.reason, float(r.confidence), "model"))
            else:
                guess = f"best guess {r.best_guess} {r.confidence:.2f}" if r.best_guess else "blank note"
                by = f"needs review (model's {guess}, below its threshold {self.threshold:.2f})"
                rows.append((FALLBACK_REASONS.get(entity, "hold_other"), by, None, float(r.confidence), NEEDS_REVIEW))
        out = notes[["entity", "record_key", "note"]].reset_index(drop=True).copy()
        decided = pd.DataFrame(rows, columns=["reason", "classified_by", "theme", "confidence", "status"], dtype=object)
        decided["confidence"] = decided["confidence"].astype(float)
        return pd.concat([out, decided], axis=1)


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
    if len(counts) < 2:
        raise HandoffError(f"{path}: labelled notes of {len(counts)} reason(s); a model needs at least two reasons to tell apart")
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


def fit(
    texts: Iterable[str], reasons: Iterable[str], threshold: float, C: float = 20.0, taxonomy: Taxonomy | None = None
) -> NotesModel:
    """A fitted model (not saved)."""
    pipe = make_pipeline(C)
    pipe.fit(list(texts), list(reasons))
    return NotesModel(pipe, threshold, taxonomy=taxonomy)


def _need_model(site: SiteNotes) -> Path:
    if site.model is None:
        raise ModelError(
            f"{site.where['notes']}: site '{site.site}' has no notes model (notes.model is not set: its note rules decide alone); "
            "set notes.model and notes.labelled in the site file to train one"
        )
    return site.model


def train(site: SiteNotes) -> tuple[NotesModel, Path]:
    """Fit on the site's labelled notes (notes.labelled) with its taxonomy and save model + sidecar at
    notes.model; returns (model, path of the model file). The sidecar names the site and the sha256 of
    the labelled notes, so the model is never applied to another site or to other notes."""
    import sklearn

    model_path = _need_model(site)
    taxonomy = site.taxonomy()
    df = read_labelled(site.labelled, taxonomy)
    model = fit(df["text"], df["reason"], taxonomy.threshold, taxonomy=taxonomy)
    model.meta = {
        "site": site.site,
        "site_file": str(Path(site.site_file).resolve()),
        "labelled": str(site.labelled),
        "labelled_sha256": file_sha256(site.labelled),
        "n_examples": len(df),
        "sklearn_version": sklearn.__version__,
        "classes": model.classes,
        "threshold": taxonomy.threshold,
        "taxonomy": str(taxonomy.path),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    save_model(model, model_path)
    model.path, model.sha256 = model_path, file_sha256(model_path)
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


def load_model(site: SiteNotes) -> NotesModel:
    """The site's saved model (notes.model), after checking its sidecar: trained for this site, on the
    current labelled notes (notes.labelled, sha256), with the installed scikit-learn, on reasons the
    site's taxonomy still has. Raises ModelError naming the setting to fix and saying to run
    `handoff notes train --site` otherwise. The threshold is the taxonomy's current one."""
    import joblib
    import sklearn

    model_path = _need_model(site)
    taxonomy = site.taxonomy()
    side = sidecar_path(model_path)
    retrain = f"run `handoff notes train --site {site.site_file}` to train it on the site's labelled notes"
    if not model_path.is_file() or not side.is_file():
        raise ModelError(f"{model_path}: no trained notes model (or its sidecar {side.name}) at notes.model ({site.where['model']}); {retrain}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: unreadable model sidecar ({exc}); {retrain}") from None
    if meta.get("site") != site.site:
        trained_for = f"site '{meta['site']}' ({meta.get('site_file', '?')})" if meta.get("site") else "no site (an older model)"
        raise ModelError(
            f"{model_path}: this notes model was trained for {trained_for}, not for site '{site.site}', and a model is never "
            f"applied to another site: point notes.model ({site.where['model']}) at a model of this site, or set it to null "
            f"for the note rules only; {retrain}"
        )
    labelled = site.labelled
    if not labelled.is_file():
        raise ModelError(f"{labelled}: notes.labelled ({site.where['labelled']}) is missing, so the model {model_path} cannot be checked")
    current = file_sha256(labelled)
    if meta.get("labelled_sha256") != current:
        raise ModelError(
            f"{model_path}: trained on labelled notes {meta.get('labelled', '?')} with sha256 {str(meta.get('labelled_sha256'))[:12]}..., "
            f"but notes.labelled ({site.where['labelled']}) is {labelled} with sha256 {current[:12]}... (the labelled notes "
            f"changed, or notes.labelled names other notes); {retrain}"
        )
    if meta.get("sklearn_version") != sklearn.__version__:
        raise ModelError(
            f"{model_path}: saved with scikit-learn {meta.get('sklearn_version')}, this is {sklearn.__version__}; {retrain}"
        )
    unknown = [c for c in meta.get("classes", []) if c not in taxonomy.themes]
    if unknown:
        raise ModelError(
            f"{model_path}: predicts {', '.join(unknown)}, which the site's taxonomy {taxonomy.path} (notes.taxonomy, "
            f"{site.where['taxonomy']}) does not define; {retrain}"
        )
    pipeline = joblib.load(model_path)
    return NotesModel(pipeline, taxonomy.threshold, meta, taxonomy, model_path, file_sha256(model_path))


def load_site_model(settings: Settings) -> NotesModel | None:
    """The site's notes model for a review: None when the site has none (no notes.model: its note rules
    decide alone) or it is not trained yet (the manifest says so); the checked model otherwise (a model
    of another site or of other labelled notes raises ModelError)."""
    site = notes_settings(settings)
    if site.model is None or not site.model.is_file():
        return None
    return load_model(site)


# ------------------------------------------------------------------------------------ classification


def classify_notes(model: NotesModel, texts: Iterable[str | None], progress: bool | None = None) -> pd.DataFrame:
    """One row per text: text, reason (None unless classified), confidence (probability of the best
    reason), status ('classified' at or above the threshold, else 'needs_review'), best_guess (the top
    reason even when it is not assigned). A blank text is needs_review with confidence 0. Shows a tqdm bar
    for large batches (progress=None: when there are more than 20,000 texts and stderr is a terminal; never inside
    a review notebook, where it became a widget the HTML report shows as "FloatProgress(...)")."""
    from tqdm.auto import tqdm

    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    n = len(texts)
    classes = np.asarray(model.classes, dtype=object)
    best = np.empty(n, dtype=object)
    conf = np.zeros(n, dtype=float)
    show = (n > 20_000 and sys.stderr.isatty()) if progress is None else progress
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


def note_manifest(picture_db: str | Path, settings: Settings) -> dict[str, Any]:
    """What decided the reasons of the holds and pack exceptions of a finished review picture (its
    `note_model` and `note_decisions` tables): the model (path, sha256, trained_at, site, threshold) or
    "rules only" (and why), and how many records each of code / rule / model / needs_review decided, with
    the count per note rule."""
    con = duckdb.connect(str(picture_db), read_only=True)
    try:
        have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if not {"note_model", "note_decisions"} <= have:
            return {"model": "unknown: the picture has no note_model / note_decisions table"}
        model = con.execute("SELECT * FROM note_model").df().iloc[0].to_dict()
        decisions = con.execute("SELECT decided_by, rule, records FROM note_decisions").fetchall()
    finally:
        con.close()
    out: dict[str, Any] = {}
    if model.get("model") is None or pd.isna(model.get("model")):
        site = notes_settings(settings)
        out["model"] = "rules only"
        out["why"] = (
            "the site has no notes.model"
            if site.model is None
            else f"notes.model {site.model} ({site.where['model']}) is not trained yet: `handoff notes train --site {site.site_file}`"
        )
    else:
        out["model"] = {k: (None if pd.isna(v) else v) for k, v in model.items()}
    decided = {k: 0 for k in ("code", "rule", "model", NEEDS_REVIEW)}
    for by, _, n in decisions:
        decided[by] = decided.get(by, 0) + int(n)
    out["decided"] = decided
    out["rules"] = {rule: int(n) for by, rule, n in decisions if by == "rule"}
    return out


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
    """Clusters of the needs_review notes in `note_reasons` (the model's unsure guesses)."""
    texts = [r[0] for r in con.execute("SELECT note FROM note_reasons WHERE status = 'needs_review'").fetchall()]
    return cluster_notes(texts, **kwargs)
