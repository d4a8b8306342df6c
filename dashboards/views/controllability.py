"""Controllability: response length and the annotator's preference over training steps, one line
per annotator instruction, and the final win rate against mean length (`harness study controllability`).
Without a stored study result, the same curves are drawn from the metrics of runs whose judge config
carries an instruction. Above them, the stored `controllability_fixed` result: how far each annotator's
verdicts on fixed pairs move toward the instructed property, measured before any training."""
import altair as alt
import pandas as pd
import streamlit as st

from dashboards import common
from dashboards import results as R
from harness import plots

common.header("Controllability")


def flip_chart(df: pd.DataFrame) -> alt.Chart:
    """flip_toward per instruction (bars, one per annotator) with its Wilson 95% CI (rules)."""
    base = alt.Chart(df).encode(y=alt.Y("property:N", title=None), yOffset="annotator:N")
    tip = ["annotator", "instruction", "flip_toward", "ci_low", "ci_high", "flip_toward_n", "n"]
    bars = base.mark_bar().encode(x=alt.X("flip_toward:Q", scale=alt.Scale(domain=[0, 1]),
                                          title="flip toward the property (95% Wilson CI)"),
                                  color=alt.Color("annotator:N", title=None), tooltip=tip)
    ci = base.mark_rule(color="black").encode(x="ci_low:Q", x2="ci_high:Q")
    rows = df["property"].nunique() * max(1, df["annotator"].nunique())
    return alt.layer(bars, ci).properties(height=max(60, 16 * rows), title="Controllability on fixed pairs")


fixed = common.results("controllability_fixed")
if fixed:
    st.header("Before training: controllability on fixed pairs")
    labels = {f"#{r['result_id']} {r.get('name') or ''} · {r['result'].get('n_pairs')} pairs": r for r in reversed(fixed)}
    chosen_fixed = labels[st.selectbox("Fixed-pair result (newest first)", list(labels), key="ctf_result")]
    res = chosen_fixed["result"]
    st.caption(f"{res.get('n_pairs')} pairs ({res.get('pairs_source')}). {res.get('estimators') or ''}")
    table = R.controllability_fixed([chosen_fixed])
    st.dataframe(table.drop(columns=["result_id"]), hide_index=True)
    drawn = table.dropna(subset=["flip_toward"])
    if drawn.empty:
        st.info("No instruction had pairs to flip (flip_toward has n = 0 everywhere).")
    else:
        common.chart(flip_chart(drawn))
    st.divider()
stored = common.results("controllability")
if stored:
    names = {f"#{r['result_id']} {r.get('name') or ''} · task {r.get('task') or '?'}": r for r in reversed(stored)}
    chosen = names[st.selectbox("Study result (newest first)", list(names), key="ct_result")]
    steps, final = R.controllability([chosen])
    final_note = None
else:
    # No stored study: one line per run, named by the instruction in its config.
    def instruction_of(cfg, prefix=""):
        for k, v in (cfg or {}).items():
            if isinstance(v, dict):
                found = instruction_of(v, prefix + k + ".")
                if found is not None:
                    return found
            elif k.endswith("instruction"):
                return v if v else "(default rubric)"
        return None

    runs = [r for r in common.runs() if r["algo"] == "oaif" and instruction_of(r["config"]) is not None]
    if not runs:
        common.empty("controllability study", "harness study controllability CONFIG --instructions ...")
        st.stop()
    st.caption("No stored study result: curves from the metrics of runs with a judge instruction.")
    ids = [r["run_id"] for r in runs]
    chosen_ids = st.multiselect("Runs", ids, default=ids[-4:], key="ct_runs")
    m = common.metrics(chosen_ids)
    label = {r["run_id"]: f"{instruction_of(r['config'])} ({r['run_id']})" for r in runs}
    steps = pd.DataFrame()
    if not m.empty:
        def col(*names):  # the first of these metric columns the runs logged
            return next((m[n] for n in names if n in m.columns), None)

        steps = pd.DataFrame({"instruction": m["run_id"].map(label), "step": m["step"],
                              "mean_length": col("sample/len_mean", "response_len"),
                              "pref_shorter": col("judge/prefers_shorter", "pref_shorter")})
    # The newest stored win rate of each chosen run (e.g. `harness demo` or `harness eval`).
    newest = {r["run_id"]: r["result"] for r in common.results("winrate") if r.get("run_id") in chosen_ids}
    final = pd.DataFrame([{"instruction": label[rid], "win_rate": res.get("win_rate"), "ci_low": res.get("ci_low"),
                           "ci_high": res.get("ci_high"), "n": res.get("n"), "mean_length": res.get("mean_chars_policy"),
                           "baseline": res.get("baseline"), "judge": res.get("judge"), "run_id": rid}
                          for rid, res in newest.items() if res.get("win_rate") is not None])
    final_note = "The newest stored win rate of each run (`harness eval`, `harness demo`); length in characters."

st.header("Over training steps")
if steps.empty:
    st.info("This study has no per-step values.")
else:
    common.chart(plots.controllability_chart(steps))
    summary = steps.sort_values("step").groupby("instruction").agg(
        steps=("step", "nunique"), first_length=("mean_length", "first"), last_length=("mean_length", "last"),
        last_pref_shorter=("pref_shorter", "last")).reset_index()
    st.dataframe(summary, hide_index=True)

st.header("Final win rate vs mean length")
if final.empty:
    st.info("No final win rates stored for this study.")
else:
    if final_note:
        st.caption(final_note)
    st.dataframe(final.dropna(axis=1, how="all"), hide_index=True)
    common.chart(plots.winrate_vs_length_chart(final))
