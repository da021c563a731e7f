"""One review's analysis (handoff_lib/publish/picture.py): the site's policy is read and prepared once, then
passed to every rule (cutoffs, states, blockers, promise) and to the summary."""

from __future__ import annotations

from scenario_tables import Story

from handoff_lib.rules import policy as policy_module


def _short_pick_and_credit_hold_day() -> Story:
    """14:30: SO-1 short-picked at A-12-03 (3 of 5), SO-2 on a credit hold since 09:30, SO-3 ordinary."""
    s = Story()
    s.order("SO-1")
    s.task("T-1", "SO-1", 1, required=5, picked=3, status="short", location="A-12-03")
    s.order("SO-2")
    s.hold("H-1", "SO-2", code="CR", note="credit check, waiting on finance")
    s.order("SO-3", carrier="FDX", service="GRD")
    return s


def test_one_analysis_builds_and_prepares_the_site_policy_once(monkeypatch):
    s = _short_pick_and_credit_hold_day()
    built, prepared = [], []

    class Counted(policy_module.Policy):  # load_policy builds the Policy through the module's name
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    real_tables = policy_module.policy_tables

    def counted_tables(con, policy):  # prepare writes the policy tables through the module's name
        prepared.append(1)
        return real_tables(con, policy)

    monkeypatch.setattr(policy_module, "Policy", Counted)
    monkeypatch.setattr(policy_module, "policy_tables", counted_tables)
    counts = s.analyse("14:30")

    assert (len(built), len(prepared)) == (1, 1)  # was 5 and 4: each rule module prepared its own
    assert counts["orders"] == 3 and counts["blockers"] >= 2  # the rules did run: the short pick and the hold
    assert {r[0] for r in s.con.execute("SELECT order_id FROM blockers").fetchall()} >= {"SO-1", "SO-2"}
