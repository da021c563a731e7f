"""Notes classifier figures: evaluation on the shipped labelled notes, training on 10,000 notes and
classifying 100,000, and a harder check on wordings the model never saw. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_notes.py [--train 10000] [--classify 100000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_labelled_notes as mk
from sklearn.metrics import f1_score

from handoff_lib.learn import notes
from handoff_lib.learn.taxonomy import notes_settings
from handoff_lib.load.settings import load_settings


def synth(n: int, seed: int, phrases: dict[str, list[str]] | None = None) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    saved = mk.PHRASES
    if phrases is not None:
        mk.PHRASES = phrases
    try:
        reasons = list(mk.PHRASES)
        ys = [reasons[i % len(reasons)] for i in range(n)]
        xs = [mk.note(rng, y) for y in ys]
    finally:
        mk.PHRASES = saved
    return xs, ys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=10_000)
    ap.add_argument("--classify", type=int, default=100_000)
    args = ap.parse_args()
    site = notes_settings(load_settings(Path(__file__).resolve().parents[1] / "parameters" / "demo.yaml"))
    t = site.taxonomy()
    df = notes.read_labelled(site.labelled, t)

    t0 = time.perf_counter()
    ev = notes.evaluate(df, t.threshold)
    print(f"evaluate on {len(df)} shipped labelled notes ({time.perf_counter() - t0:.1f} s):")
    print(ev.text().split("\n\nper reason")[0])

    xs, ys = synth(args.train, 1)
    t0 = time.perf_counter()
    model = notes.fit(xs, ys, t.threshold)
    print(f"\ntrain on {len(xs):,} notes: {time.perf_counter() - t0:.1f} s")

    texts, truth = synth(args.classify, 2)
    t0 = time.perf_counter()
    result = notes.classify_notes(model, texts, progress=True)
    dt_ = time.perf_counter() - t0
    print(
        f"classify {len(texts):,} notes: {dt_:.1f} s ({len(texts) / dt_:,.0f} notes/s); "
        f"needs_review {(result['status'] == 'needs_review').mean():.1%}; macro-F1 {f1_score(truth, result['best_guess'], average='macro'):.3f}"
    )

    # Harder: hold out a fifth of every reason's wordings; train on notes built from the rest, test on
    # notes built only from the unseen wordings (new vocabulary, same reasons).
    rng = random.Random(5)
    seen, unseen = {}, {}
    for reason, phrases in mk.PHRASES.items():
        p = phrases[:]
        rng.shuffle(p)
        k = max(1, len(p) // 5)
        unseen[reason], seen[reason] = p[:k], p[k:]
    xs, ys = synth(3_000, 3, seen)
    xt, yt = synth(1_400, 4, unseen)
    m = notes.fit(xs, ys, t.threshold)
    r = notes.classify_notes(m, xt, progress=False)
    assigned = r["status"] == "classified"
    print(
        f"\nunseen wordings: macro-F1 {f1_score(yt, r['best_guess'], average='macro'):.3f}, needs_review {(~assigned).mean():.1%}, "
        f"accuracy of assigned {(r.loc[assigned, 'reason'] == [y for y, a in zip(yt, assigned) if a]).mean():.1%}"
    )


if __name__ == "__main__":
    main()
