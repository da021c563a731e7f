"""Stage 3, rules: decide, by the site's written policy, each line's and order's state, each open blocker
with its reason and owner, the pickup each order is due on and THE promise rule (docs/states.md), and each
coming pickup's verdict from the labour plan. The policy is prepared once per analysis (`policy.prepare`) and
passed to every builder. It may import join, load and the shared modules; nothing here learns or stores.

| module | its job |
|---|---|
| `policy` | the site's policy: reasons, owners, buffers, work minutes; `prepare` once per analysis |
| `calendars` | site, carrier and service calendars: pickups and delivery days |
| `labour` | people per area and shift, minutes per unit, the day's observed pace |
| `states` | line and order states (`build_states`) |
| `blockers` | open blockers with reason, owner and priority (`build_blockers`) |
| `promise` | cutoffs (`assign_cutoffs`) and the one promise rule (`decide`, `build_promise`) |
| `meeting` | pickup verdicts (will make / at risk / will miss) and act-now groups |
"""
