"""Replication: the table of `make study` (harness replicate, harness/pipelines/study.py) — each
contrast of the OAIF and robust-DPO papers as a paired per-seed difference with its t CI and a
verdict (reproduced / not reproduced / not resolved) and, when unresolved, its MDE and power label
(evaluation/power.py), each arm's gold figures over seeds, and every (arm, seed) cell with its run.
Forest plots (plots.forest_chart) of the arms and the contrasts come first, the tables after."""
import pandas as pd
import streamlit as st

from dashboards import common, results
from harness import plots
from harness.evaluation.replication import relabel

common.header("Replication", "the papers' comparisons at small scale, several seeds, gold as the truth")
from harness.overopt_plot import dashboard_block  # reward over-optimisation (harness overopt), newest result
dashboard_block(common.results("overopt"), common.chart)
stored = common.results("study_summary")
if not stored:
    common.empty("study", "make study` (or `harness replicate")
    st.stop()
by_label = {f"#{r['result_id']} {r['result'].get('group')}": r for r in reversed(stored)}
res = by_label[st.selectbox("Study", list(by_label), key="replication_study")]["result"]

st.subheader(res.get("question") or res["group"])
ev, b = res["eval"], res["budget"]
st.caption(f"{len(res['arms'])} arms x {len(res['seeds'])} seeds ({', '.join(map(str, res['seeds']))}) · each "
           f"{b['steps']} steps x {b['prompts_per_step']} prompts · evaluated by {ev['judge']} on {ev['n']} eval "
           f"prompts ({ev['sampling']}) · {res['method']} · {res.get('seconds_all_cells', 0) / 60:.1f} min of cells")

cells = res["contrasts"]
if not all("mde" in c for c in cells):  # a study stored before cells carried their power: default targets
    cells = relabel({"contrasts": cells}, None)["contrasts"]
contrasts = pd.DataFrame(cells)
arm_wins, arm_diffs, contrast_rows = results.study_forest(res)
left, right = st.columns(2)
with left:
    common.chart(plots.forest_chart(arm_wins, 0.5, "Each arm: gold win rate vs initial, mean over seeds (95% t CI)",
                                    "win rate (ties half)"))
with right:
    common.chart(plots.forest_chart(arm_diffs, 0.0, "Each arm: gold score - initial, mean over seeds (95% t CI)",
                                    "gold points (0..2 scale)"))
st.markdown("#### Each contrast: a - b, mean over seeds (95% t CI)")
for unit, part in contrast_rows.dropna(subset=["estimate"]).groupby("unit", sort=False):  # one per unit
    common.chart(plots.forest_chart(part, 0.0, unit, f"a - b ({unit})"))
st.markdown("#### The table")
st.caption("measured = a - b, the per-seed paired difference, mean over seeds [95% t CI]; verdict against the "
           "paper's claim: reproduced (CI on the claimed side), not reproduced (CI on the other side), not resolved. "
           "mde: the smallest true a - b its seeds detect with 80% power (5% two-sided paired t, its own sd); "
           "power: an unresolved cell is a powered null when mde <= the target effect, unpowered otherwise.")
table = contrasts.assign(measured=[f"{m:+.3f} {common.fmt_ci(lo, hi)}" if m is not None else "n/a"
                                   for m, lo, hi in zip(contrasts["mean"], contrasts["ci_low"], contrasts["ci_high"])])
st.dataframe(table[["contrast", "paper", "measured", "unit", "n", "claim", "verdict", "mde", "power"]], hide_index=True)

st.markdown("#### Arms (each vs the initial policy, scored by gold)")
arms = pd.DataFrame([{"arm": a["label"], "run": a["run"], "objective": a["objective"],
                      **{k: a[k]["mean"] for k in ("gold_win", "gold_diff", "gold", "chars")},
                      "ci_low": a["gold_win"]["ci_low"], "ci_high": a["gold_win"]["ci_high"], "n": a["gold_win"]["n"]}
                     for a in res["arms"]])
st.dataframe(arms.round(3), hide_index=True)

st.markdown("#### Every cell (arm x seed)")
st.dataframe(pd.DataFrame(res["cells"]).drop(columns=["labels", "gold_win_ci"], errors="ignore").round(3), hide_index=True)
