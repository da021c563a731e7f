"""Stage 6, publish: one review, end to end and out. The pipeline loads, joins and analyses (the rules, then
the learned score, on one prepared policy) into the order picture; the review writes its folder (CSVs,
workbook, HTML report); owner queues and notices go to the teams; `runs` is the papermill job per cutoff, with
the site lock, the snapshot into history and the store. This is the orchestration that sits above every stage
it calls: it may import learn, history, rules, join, load and the shared modules.

| module | its job |
|---|---|
| `pipeline` | the extracts loaded and linked (join/linked.py), then analysed, for one review time (`build_picture`) |
| `picture` | the analysis in order and the order board, with summary counts (`analyse`) |
| `review` | the review folder and report (`Review`, used by notebooks/cutoff_review.ipynb) |
| `charts` | the report's and board's figures |
| `owners` | each owner team's queue after a review |
| `notify` | delivery of the queues: files, e-mail, chat webhooks, once only |
| `kernel` | the Jupyter kernel the papermill runs use |
| `runs` | `handoff run` / `schedule`: papermill per cutoff, lock, snapshot, store, notify |
"""
