"""Stage 5, learn: scikit-learn at the edges. Hold reasons from messy notes (with confidence; low confidence
goes to a person), blocker clusters and recurring themes over history, a learned late-hand-off risk score, its
backtest and the calibration of the promise buffer on the site's own history, and draft customer notes that
state only what the data supports. It may import history, rules, join, load and the shared modules.

| module | its job |
|---|---|
| `taxonomy` | the blocker themes and reasons (`parameters/reasons.yaml`) |
| `notes` | the notes classifier: train, evaluate, classify, cluster what needs review |
| `themes` | recurring themes, repeat offenders and blocker age over history, with their charts |
| `risk` | the learned risk score: fit, predict, apply to the promise when the site turns it on |
| `backtest` | replay history through the promise rule and score the warnings |
| `backtest_report` | the backtest's tables and words |
| `calibrate` | choose buffer and threshold month by month, out of sample (`handoff calibrate`) |
| `drafts` | draft notes for sales and support: what is blocked and what is being done |
"""
