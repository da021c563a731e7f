"""What the backtest report shows (notebooks/backtest_report.ipynb): the conclusion in plain words, the
tables a person reads (named columns, no index, no empty cells shown as NaN, escaped), and like-for-like
charts (every point of one chart is scored on the same orders of the same months). Every function returns
something to display; nothing is displayed here."""

from __future__ import annotations

import datetime as dt
import html

import pandas as pd
from IPython.display import HTML, Markdown

from .backtest import CURRENT, BacktestResult

DASH = "–"
STYLE = """<style>
table.bt-table { border-collapse: collapse; margin: 0.4em 0 1.2em 0; font-size: 13px; max-width: 100%; table-layout: auto; }
table.bt-table th, table.bt-table td { padding: 4px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
.jp-RenderedHTMLCommon table.bt-table th, .jp-RenderedHTMLCommon table.bt-table td, table.bt-table th, table.bt-table td {
  text-align: left; }
.jp-RenderedHTMLCommon table.bt-table th.num, .jp-RenderedHTMLCommon table.bt-table td.num, table.bt-table th.num,
table.bt-table td.num { text-align: right; }
table.bt-table td.num, table.bt-table td.short { white-space: nowrap; }
table.bt-table th { background: #f5f5f5; font-weight: 600; white-space: normal; }
.bt-conclusion { font-size: 16px; line-height: 1.5; border-left: 4px solid #1565c0; padding: 0.5em 1em; background: #f3f7fc; }
.bt-conclusion p { margin: 0.3em 0; }
</style>"""


# -------------------------------------------------------------------------------------- words


def _d(value: str) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


def months_text(start: str, end: str) -> str:
    """'2017-05-01', '2017-12-31' -> 'May-Dec 2017' (with the years where they differ)."""
    a, b = _d(start), _d(end)
    if (a.year, a.month) == (b.year, b.month):
        return f"{a:%b %Y}"
    if a.year == b.year:
        return f"{a:%b}–{b:%b %Y}"
    return f"{a:%b %Y}–{b:%b %Y}"


def _months_in(start: str, end: str) -> int:
    a, b = _d(start), _d(end)
    return (b.year - a.year) * 12 + b.month - a.month + 1


def pct(x: float | None) -> str:
    return DASH if x is None or pd.isna(x) else f"{100 * float(x):.0f} %"


def hours(x: float | None) -> str:
    return DASH if x is None or pd.isna(x) else f"{float(x):.1f} h"


def num(x: float | None, digits: int = 2) -> str:
    return DASH if x is None or pd.isna(x) else f"{float(x):.{digits}f}"


def buffer_text(minutes: float | None) -> str:
    """480 -> '480 min (8 h)'."""
    if minutes is None or pd.isna(minutes):
        return DASH
    m = int(minutes)
    return f"{m} min" + (f" ({m / 60:g} h)" if m >= 60 else "")


def _spread_text(s: dict, fmt) -> str:
    if not s or s.get("mean") is None:
        return DASH
    if s.get("n", 0) <= 1 or s["min"] == s["max"]:
        return fmt(s["mean"])
    return f"{fmt(s['mean'])} ({fmt(s['min'])} to {fmt(s['max'])})"


def conclusion(result: BacktestResult) -> HTML:
    """The report's opening: today's setting, what to set instead, and the learned score's verdict, each
    with the figures it delivered on the test months."""
    return HTML(f'{STYLE}<div class="bt-conclusion">{conclusion_html(result)}</div>')


def conclusion_html(result: BacktestResult) -> str:
    cal = result.meta.get("calibration")
    if not cal:
        return "<p>No calibration in these tables: run <code>handoff backtest</code> again.</p>"
    test, rec, cur, ver = cal["test"], cal["recommended"], cal["current"], cal["verdicts"]
    tested = months_text(*test["current"]["tested_on"])
    n = test["current"]["folds"]
    chosen_on = months_text(*rec["chosen_on"])
    P = cal["min_precision"]
    c = test["current"]
    window = _months_in(*cal["folds"][0]["chosen_on"])
    before = "the month" if window == 1 else f"the {({2: 'two', 3: 'three', 4: 'four'}).get(window, window)} months"
    today = (f"warned about <b>{pct(c['recall']['mean'])}</b> of late hand-offs, <b>{hours(c['median_lead_h']['mean'])}</b> ahead "
             f"(precision {num(c['precision']['mean'])}" if c["precision"]["mean"] is not None
             else f"warned about <b>{pct(c['recall']['mean'])}</b> of late hand-offs (no warning at all")
    out = [
        (f"<p><b>Today's setting</b>, a buffer of {html.escape(buffer_text(cur['buffer_minutes']))}, {today}; "
        f"tested on {tested}, {n} month{'s' if n != 1 else ''}).</p>")
    ]
    fam = "recommended" if rec["buffer_by_customer"] else "promise"
    r = test.get(fam)
    if r:
        k = len(rec["buffer_by_customer"])
        customers = f" and own buffers for {k} customer{'s' if k != 1 else ''}" if k else ""
        spread = (f"; {pct(r['recall']['min'])} to {pct(r['recall']['max'])} month by month"
                  if r["recall"]["min"] != r["recall"]["max"] else "")
        out.append(
            f"<p><b>Recommended: buffer {html.escape(buffer_text(rec['buffer_minutes']))}</b>{customers} (chosen on {chosen_on}). "
            f"Choosing the buffer this way on {before} before each test month warned about <b>{pct(r['recall']['mean'])}</b> "
            f"of late hand-offs at precision <b>{num(r['precision']['mean'])}</b>, <b>{hours(r['median_lead_h']['mean'])}</b> ahead, "
            f"{num(r['false_alarms_per_review']['mean'])} false alarms per review (tested on {tested}{spread}).</p>"
        )
    fixed = test.get("fixed")
    if fixed:
        out.append(
            f"<p>The same {html.escape(buffer_text(rec['buffer_minutes']))} buffer on {months_text(*fixed['tested_on'])}, months it was "
            f"not chosen on: <b>{pct(fixed['recall']['mean'])}</b> warned at precision <b>{num(fixed['precision']['mean'])}</b>, "
            f"{hours(fixed['median_lead_h']['mean'])} ahead, {num(fixed['false_alarms_per_review']['mean'])} false alarms per review.</p>"
        )
    if rec.get("work_minutes"):
        w = rec["work_minutes"]
        out.append("<p><b>Work minutes</b> from the WMS history: " + html.escape(", ".join(f"{k} {v}" for k, v in w.items())) + ".</p>")
    on_top = ver.get("score_on_top_of_promise")
    if on_top:
        g = on_top["recall_gain_pts"]
        tested_gain = (f"on top of the buffer chosen before each test month it added {num(g['mean'], 1)} points of recall "
                       f"(better in {on_top['better_recall_in']} of {on_top['folds']} months, worse in {on_top['worse_recall_in']}), "
                       f"at precision {num(on_top['precision']['mean'])} against {num(on_top['other_precision']['mean'])}")
        if rec["risk_score"]["enabled"]:
            out.append(f"<p><b>Turn the learned score on at {num(rec['risk_score']['threshold'], 4)}</b>: {tested_gain}.</p>")
        elif on_top["turn_on"]:
            out.append(f"<p><b>Leave the learned score off</b>: with the recommended buffer, no threshold warns about more late "
                       f"hand-offs in {chosen_on} without pushing precision below {P:g}. (Tested: {tested_gain}.)</p>")
        else:
            out.append(f"<p><b>Leave the learned score off</b>: {tested_gain}; that is not enough to turn it on "
                       f"({html.escape(on_top['rule'])}).</p>")
    vs = ver.get("score_vs_plain_rule")
    if vs:
        word = "beat" if vs["beats"] else "did not beat"
        out.append(
            f"<p>Alone, the learned score <b>{word}</b> the plain rule \"hours left &lt; X\": recall "
            f"{pct(test['score']['recall']['mean'])} against {pct(test['hours_left']['recall']['mean'])}, "
            f"{hours(test['score']['median_lead_h']['mean'])} against {hours(test['hours_left']['median_lead_h']['mean'])} ahead "
            f"(better in {vs['better_recall_in']} of {vs['folds']} months, worse in {vs['worse_recall_in']}).</p>"
        )
    out.append(
        f"<p><small>Every setting is chosen on a validation window (the most recall at precision ≥ {P:g}) and scored on the "
        f"month after it, which it never saw; figures are the mean over the test months. A warning counts once per order, "
        f"from its first review on.</small></p>"
    )
    return "\n".join(out)


def summary_markdown(result: BacktestResult) -> Markdown:
    """What was replayed, in a few lines."""
    m = result.meta
    acc = result.tables["accounting"]
    by_cat = acc.groupby("category", sort=False)["orders"].sum()
    scored = int(by_cat.get("late", 0) + by_cat.get("on time", 0))
    hidden = m.get("review_rows_deadline_not_yet_known", 0)
    known = {"released": "set at release (approval): a review before it does not see it", "ordered": "known from the order on"}
    lines = [
        (f"**{m['site_name']}**: {m['reviews']} reviews ({', '.join(m['review_times'])}) from {m['date_from']} to {m['date_to']}, "
         f"{m['orders']} orders read through `{m['site_file']}`; deadline = the {m['deadline']} line ship-by, "
         f"{known.get(m.get('ship_by_known_from', 'ordered'), '')}."),
        "",
        f"- scored: {scored} orders, of which {int(by_cat.get('late', 0))} late ({m['late_share_pct']} %)",
        (f"- open order-reviews replayed: {m['review_rows']}, of which {hidden} ({100 * hidden / max(m['review_rows'], 1):.1f} %) "
         "before the deadline was known"),
    ]
    return Markdown("\n".join(lines))


# -------------------------------------------------------------------------------------- tables


def table(df: pd.DataFrame, numeric: tuple[str, ...] = (), short: tuple[str, ...] = ()) -> HTML:
    """An escaped HTML table without index; empty cells show a dash; `numeric` columns align right and, like
    `short` ones, never wrap."""

    def cls(c: str) -> str:
        return "num" if c in numeric else "short" if c in short else ""

    head = "".join(f'<th class="{cls(c)}">{html.escape(str(c))}</th>' for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            text = DASH if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)
            cells.append(f'<td class="{cls(c)}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return HTML(f'<table class="bt-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def what_to_set(result: BacktestResult) -> HTML:
    """Setting | today | recommended | basis."""
    cal = result.meta["calibration"]
    rec, cur, support = cal["recommended"], cal["current"], cal["customer_buffers_support"]
    chosen_on = months_text(*rec["chosen_on"])
    cust_rec = ", ".join(f"{c}: {b} min" for c, b in rec["buffer_by_customer"].items())
    cust_cur = ", ".join(f"{c}: {b} min" for c, b in cur["buffer_by_customer"].items()) or "none"
    if not cust_rec:
        cust_rec = "no change"
        cust_basis = (f"the data does not support them: no customer has {support['needs']} "
                      f"(most in one window: {support['most_orders_of_one_customer_in_a_window']})") if not support["customers_qualifying"] \
            else f"{support['customers_qualifying']} customers qualified; none did better with its own buffer"
    else:
        cust_basis = f"chosen on each customer's orders due {chosen_on}"
    work_cur = ", ".join(f"{k} {v}" for k, v in cur["work_minutes"].items())
    work_rec = ", ".join(f"{k} {v}" for k, v in rec["work_minutes"].items()) if rec.get("work_minutes") else "no change"
    work_basis = "medians of the observed step times (table below)" if rec.get("work_minutes") else "no WMS history of pick, pack and label times"
    rs_cur = f"on at {cur['risk_score']['threshold']:g}" if cur["risk_score"]["enabled"] else "off"
    rs = rec["risk_score"]
    rs_rec = f"on at {rs['threshold']:.4f}" if rs["enabled"] else "off"
    rows = [
        ("policy.buffer_minutes", buffer_text(cur["buffer_minutes"]), buffer_text(rec["buffer_minutes"]),
         f"chosen on the orders due {chosen_on}"),
        ("policy.buffer_by_customer", cust_cur, cust_rec, cust_basis),
        ("policy.work_minutes", work_cur, work_rec, work_basis),
        ("policy.risk_score", rs_cur, rs_rec, "see the learned score's verdict above"),
    ]
    return table(pd.DataFrame(rows, columns=["Setting", "Today", "Recommended", "Basis"]))


def test_figures(result: BacktestResult) -> HTML:
    """Per rule: what it delivered on the test months, mean (lowest to highest month)."""
    test = result.meta["calibration"]["test"]
    rows = []
    for family, s in test.items():
        if family == "recommended" and not result.meta["calibration"]["recommended"]["buffer_by_customer"]:
            continue
        chosen = s["settings_chosen"]
        if family == "score" or family == "promise_score":
            chosen_text = f"a threshold per month ({len(chosen)} different)" if len(chosen) > 1 else next(iter(chosen))
        else:
            chosen_text = ", ".join(f"{k} ({v}×)" for k, v in chosen.items())
        rows.append((s["rule"], chosen_text, _spread_text(s["recall"], pct), _spread_text(s["precision"], num),
                     _spread_text(s["median_lead_h"], hours), _spread_text(s["false_alarms_per_review"], num)))
    cols = ["Rule", "Setting (chosen before each test month)", "Late hand-offs warned", "Precision", "Lead time (median)",
            "False alarms per review"]
    return table(pd.DataFrame(rows, columns=cols), numeric=tuple(cols[2:]))


def month_by_month(result: BacktestResult) -> HTML:
    """Per test month: the buffer chosen before it and what it and today's setting delivered."""
    c = result.tables["calibration"]
    c = c[~c["final"].astype(bool)]
    cur = c[c["family"] == "current"].set_index("fold")
    customers = bool(result.meta["calibration"]["recommended"]["buffer_by_customer"])
    pro = c[c["family"] == ("recommended" if customers else "promise")].set_index("fold")
    site = c[c["family"] == "promise"].set_index("fold")
    sco = c[c["family"] == "promise_score"].set_index("fold") if (c["family"] == "promise_score").any() else None
    rows = []
    for fold, p in pro.iterrows():
        t = cur.loc[fold] if fold in cur.index else None
        row = {
            "Test month": months_text(p["tested_from"], p["tested_to"]),
            "Chosen on": months_text(p["chosen_from"], p["chosen_to"]),
            "Late orders": DASH if pd.isna(p["test_late_orders"]) else f"{int(p['test_late_orders'])}",
            "Today: warned": pct(None if t is None else t["test_recall"]),
            "Buffer chosen": buffer_text(site.loc[fold, "value"] if fold in site.index else None)
            + (" + customers" if customers else ""),
            "Warned": pct(p["test_recall"]),
            "Precision": num(p["test_precision"]),
            "Lead time": hours(p["test_median_lead_h"]),
            "False alarms per review": num(p["test_false_alarms_per_review"]),
        }
        if sco is not None and fold in sco.index:
            s = sco.loc[fold]
            row["With the score: warned"] = pct(s["test_recall"])
            row["With the score: precision"] = num(s["test_precision"])
        rows.append(row)
    df = pd.DataFrame(rows)
    return table(df, numeric=tuple(c for c in df.columns if c not in ("Test month", "Chosen on", "Buffer chosen")),
                 short=("Test month", "Chosen on", "Buffer chosen"))


def bridge_table(result: BacktestResult) -> HTML:
    """From the plain count of late hand-offs to the late orders scored: what each accounting category takes
    out or adds."""
    b = result.tables["bridge"]
    orders = [f"{int(v):+,}".replace("-", "−") if s.startswith(("- ", "+ ")) else f"{int(v):,}" for s, v in zip(b["step"], b["orders"], strict=True)]
    steps = [s[2:] if s.startswith(("- ", "+ ")) else s for s in b["step"]]
    return table(pd.DataFrame({"Step": steps, "Orders": orders, "What it means": b["meaning"]}), numeric=("Orders",))


def accounting_table(result: BacktestResult) -> HTML:
    a = result.tables["accounting"].rename(columns={"category": "Category", "outcome": "Outcome", "orders": "Orders",
                                                    "share_pct": "Share"})
    a["Orders"] = a["Orders"].map(lambda v: f"{int(v):,}")
    a["Share"] = a["Share"].map(lambda v: f"{float(v):.1f} %")
    return table(a, numeric=("Orders", "Share"))


def work_minutes_table(result: BacktestResult) -> HTML:
    w = result.tables.get("work_minutes")
    if w is None or w.empty or int(w["orders_observed"].max()) == 0:
        return HTML("<p>This history has no WMS step times (pick, pack, label, manifest): the work minutes stay as set.</p>")
    w = w.rename(columns={"step": "Step", "current_min": "Today (min)", "orders_observed": "Orders observed",
                          "median_min": "Median (min)", "p75_min": "75th percentile (min)", "proposed_min": "Proposed (min)",
                          "basis": "Basis"})
    return table(w, numeric=("Today (min)", "Orders observed", "Median (min)", "75th percentile (min)", "Proposed (min)"))


def features_table(result: BacktestResult) -> HTML:
    f = result.tables.get("risk_features")
    if f is None:
        return HTML("<p>The learned score was not trained in this run.</p>")
    return table(f.rename(columns={"feature": "Feature", "meaning": "What it is (known at the review)"}))


# -------------------------------------------------------------------------------------- charts


def _test_months(result: BacktestResult) -> str:
    return months_text(*result.meta["calibration"]["test"]["current"]["tested_on"])


def sweep_chart(result: BacktestResult):
    """On the test months (orders due then): share of late hand-offs warned and precision against the buffer,
    with today's and the recommended buffer marked; and the same for the plain rule against X."""
    from plotly.subplots import make_subplots

    df = result.tables["test_sweep"]
    cal = result.meta["calibration"]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "Promise rule: buffer (hours)", "Plain rule: warn with less than X hours left"))
    for col, rule in ((1, "promise"), (2, "hours left < X")):
        part = df[df["rule"] == rule].sort_values("value")
        x = part["value"] / 60 if rule == "promise" else part["value"]
        for metric, name, colour in (("recall", "late hand-offs warned", "#c62828"), ("precision", "precision", "#1565c0")):
            fig.add_scatter(x=x, y=part[metric], name=name, mode="lines+markers", marker_color=colour, showlegend=col == 1,
                            legendgroup=metric, row=1, col=col, hovertemplate="%{x:g} h: %{y:.2f}<extra>" + name + "</extra>")
    for minutes, label, dash in ((cal["current"]["buffer_minutes"], "today", "dot"), (cal["recommended"]["buffer_minutes"], "recommended", "dash")):
        fig.add_vline(x=minutes / 60, line_dash=dash, line_color="#424242", row=1, col=1,
                      annotation_text=label, annotation_position="top right" if label == "recommended" else "top left")
    fig.add_hline(y=cal["min_precision"], line_dash="dot", line_color="#1565c0", opacity=0.5)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(title_text="hours")
    fig.update_layout(height=400, template="plotly_white", margin={"l": 10, "r": 10, "t": 90, "b": 10},
                      title=f"Test months {_test_months(result)}: what each setting would have delivered",
                      legend={"orientation": "h", "y": -0.18})
    return fig


def tradeoff_chart(result: BacktestResult):
    """Precision against share warned, every rule on the same orders (due in the test months): the buffer
    sweep, the plain rule, the learned score (each month scored by the model trained before it), today's setting."""
    import plotly.graph_objects as go

    df = result.tables["test_sweep"]
    fig = go.Figure()
    for rule, name in (("promise", "promise rule, buffer swept"), ("hours left < X", "plain rule, X swept")):
        part = df[df["rule"] == rule].sort_values("value")
        fig.add_scatter(x=part["recall"], y=part["precision"], mode="markers+lines", name=name, text=part["setting"],
                        hovertemplate="%{text}<br>warned %{x:.0%}, precision %{y:.2f}<extra></extra>")
    if "risk_curve" in result.tables:
        c = result.tables["risk_curve"]
        c = c[c["warned_orders"] > 0]
        fig.add_scatter(x=c["recall"], y=c["precision"], mode="lines", name="learned score, threshold swept", line={"dash": "dot"},
                        text=c["setting"], hovertemplate="%{text}<br>warned %{x:.0%}, precision %{y:.2f}<extra></extra>")
    cur = df[df["rule"] == CURRENT]
    fig.add_scatter(x=cur["recall"], y=cur["precision"], mode="markers", name="today's setting", marker={"size": 14, "symbol": "star"},
                    text=cur["setting"], hovertemplate="today: %{text}<br>warned %{x:.0%}, precision %{y:.2f}<extra></extra>")
    fig.update_layout(title=f"Precision against late hand-offs warned, orders due {_test_months(result)}",
                      xaxis_title="late hand-offs warned", yaxis_title="precision", xaxis_range=[0, 1.02], yaxis_range=[0, 1.05],
                      xaxis_tickformat=".0%", height=440, template="plotly_white", margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig
