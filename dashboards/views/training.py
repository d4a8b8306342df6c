"""Training: per-step curves of several runs overlaid, and their configs side by side with the
keys that differ highlighted."""
import json

import pandas as pd
import streamlit as st

from dashboards import common
from dashboards import results as R
from harness import plots

common.header("Training")
runs = common.runs()
if not runs:
    common.empty("runs", "harness train CONFIG")
    st.stop()

table = pd.DataFrame([{"run_id": r["run_id"], "name": r["name"], "algo": r["algo"], "task": r["task"],
                       "group": r["group_name"], "status": r["status"], "last_step": r["last_step"]} for r in runs])
st.dataframe(table, hide_index=True, height=min(400, 38 + 35 * len(table)))

ids = table["run_id"].tolist()
chosen = st.multiselect("Runs to compare", ids, default=common.default_runs(runs), key="tr_runs")
if not chosen:
    st.info("Pick at least one run.")
    st.stop()

split = st.radio("Split", ["train", "eval"], horizontal=True, key="tr_split")
m = common.metrics(chosen, split)
st.header("Per-step curves")
if m.empty:
    st.info(f"No {split} metrics logged for these runs yet.")
else:
    numeric = [c for c in m.columns if c not in ("run_id", "step", "split") and pd.api.types.is_numeric_dtype(m[c])]
    default = [c for c in plots.DEFAULT_TRAINING_METRICS if c in numeric] or numeric[:6]
    picked = st.multiselect("Metrics", numeric, default=default, key="tr_metrics")
    if picked:
        common.chart(plots.training_curves(m, picked))
    last = m.sort_values("step").groupby("run_id").tail(1)
    st.caption("Last logged step of each run")
    st.dataframe(last[["run_id", "step"] + picked], hide_index=True)

cards = common.metrics(chosen, "judge_validity")
if not cards.empty:  # OAIF runs: the validity card of the annotator they trained with
    st.header("Judge validity of the annotators")
    val = R.validity(common.results("judge_validity"))
    val = cards[["run_id", "result_id"]].astype({"result_id": int}).merge(val, on="result_id")
    st.dataframe(val, hide_index=True)


def flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


st.header("Configs side by side")
by_id = {r["run_id"]: r for r in runs}
flat = {rid: flatten(by_id[rid]["config"]) for rid in chosen}
keys = sorted(set().union(*flat.values()))
cfg = pd.DataFrame({rid: [flat[rid].get(k) for k in keys] for rid in chosen}, index=keys).astype("string")
cfg.index.name = "key"
differs = cfg.nunique(axis=1, dropna=False) > 1
st.write(f"{int(differs.sum())} of {len(keys)} keys differ between the chosen runs (highlighted).")
if st.toggle("Only keys that differ", value=False, key="tr_only_diff"):
    cfg = cfg[differs]
    differs = differs[differs]
styled = cfg.style.apply(lambda row: ["background-color: #ffe08a" if differs[row.name] else "" for _ in row], axis=1)
st.dataframe(styled, height=min(600, 38 + 35 * max(1, len(cfg))))
