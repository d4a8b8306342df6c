"""The reward over-optimisation curve (`harness overopt`, harness/pipelines/overopt.py): proxy and
gold score against sqrt(KL) from the initial policy, one line per method (best-of-n, RLOO), 95% CI
bands. `overopt_chart` takes the stored result's `rows` as a DataFrame (tests need no Streamlit);
`dashboard_block` is the Replication page's block (Streamlit imported only there)."""
from __future__ import annotations

from typing import Callable

import altair as alt
import pandas as pd

from .plots import PlotError, _need

METHODS = {"bon": "best-of-n", "rloo": "RLOO"}
PANELS = {"proxy": "proxy (reward model) - initial", "gold": "gold score (0-2)"}


def long_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Wide curve rows (method, x, kl, sqrt_kl, proxy[_ci_low/_ci_high], gold[...]) -> one row per
    (method, x, metric) with value, ci_low, ci_high."""
    _need(rows, ("method", "x", "kl", "proxy", "gold"), "overopt_chart")
    parts = []
    for metric in PANELS:
        part = rows[["method", "x", "kl"]].copy()
        part["sqrt_kl"] = rows["kl"].clip(lower=0) ** 0.5
        part["metric"] = metric
        part["value"] = rows[metric]
        part["ci_low"] = rows.get(f"{metric}_ci_low")
        part["ci_high"] = rows.get(f"{metric}_ci_high")
        part["label"] = [f"{METHODS.get(m, m)} {'n' if m == 'bon' else 'step'}={x}" for m, x in zip(rows["method"], rows["x"])]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["method"] = out["method"].map(lambda m: METHODS.get(m, m))
    return out


def overopt_chart(rows: pd.DataFrame, title: str = "Reward over-optimisation") -> alt.HConcatChart:
    """Two panels side by side (proxy, gold) vs sqrt(KL) in sqrt(nats), a line per method with its
    points and a 95% CI band (where the rows carry one)."""
    df = long_frame(rows)
    if df.empty:
        raise PlotError("overopt_chart: no rows")
    color = alt.Color("method:N", title="method")
    x = alt.X("sqrt_kl:Q", title="sqrt(KL from the initial policy), sqrt(nats)")
    tooltip = ["label:N", alt.Tooltip("kl:Q", format=".2f"), alt.Tooltip("value:Q", format=".3f"),
               alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f")]
    panels = []
    for metric, y_title in PANELS.items():
        part = df[df["metric"] == metric]
        base = alt.Chart(part).encode(x=x, color=color)
        layers = []
        banded = part.dropna(subset=["ci_low", "ci_high"])
        if not banded.empty:
            layers.append(alt.Chart(banded).mark_area(opacity=0.18).encode(
                x=x, y=alt.Y("ci_low:Q", title=y_title, scale=alt.Scale(zero=False)), y2="ci_high:Q", color=color))
        layers.append(base.mark_line().encode(y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False))))
        layers.append(base.mark_point(filled=True, size=50).encode(y="value:Q", tooltip=tooltip))
        panels.append(alt.layer(*layers).properties(title=y_title, width=320, height=240))
    return alt.hconcat(*panels).properties(title=title)


def dashboard_block(stored: list[dict], chart: Callable) -> None:
    """The Replication page's block: the newest `overopt` result's curve, its table and what bends.
    `stored`: the store's `overopt` results; `chart`: the page's chart renderer (dashboards.common.chart)."""
    import streamlit as st

    st.markdown("#### Reward over-optimisation (Gao et al. 2022): proxy and gold vs KL")
    if not stored:
        st.caption("No `overopt` result in this store yet: `harness overopt` (configs/overopt_cpu.yaml).")
        return
    res = stored[-1]["result"]
    rows = pd.DataFrame(res["rows"])
    seeds = ", ".join(str(s["seed"]) for s in res.get("seeds", []))
    st.caption(f"#{stored[-1]['result_id']} {res['group']} · seeds {seeds} · {res.get('ci_method')} · "
               f"KL: {res.get('kl_estimator')} · proxy: {res.get('proxy')} · gold: {res.get('gold')}")
    chart(overopt_chart(rows, title=res.get("question") or "Reward over-optimisation"))
    for b in (res.get("bends") or {}).values():
        if b:
            st.caption(bend_sentence(b))
    cols = [c for c in ("method", "x", "kl", "proxy", "proxy_ci_low", "proxy_ci_high", "gold", "gold_ci_low",
                        "gold_ci_high") if c in rows.columns]
    st.dataframe(rows[cols].round(3), hide_index=True)


def bend_sentence(b: dict) -> str:
    """One line: where gold peaks and how much it falls by the last point (CI), proxy first to last."""
    name = METHODS.get(b["method"], b["method"])
    ci = ("" if b.get("drop_ci_low") is None else f" [{b['drop_ci_low']:+.3f}, {b['drop_ci_high']:+.3f}]")
    if not b["bends"]:
        return (f"{name}: gold highest at the last point (KL {b['last_kl']:.2f}, gold {b['last_gold']:.3f}): no "
                f"turn within this range; proxy {b['proxy_first']:+.3f} -> {b['proxy_last']:+.3f}")
    return (f"{name}: gold peaks at x={b['peak_x']} (KL {b['peak_kl']:.2f}, gold {b['peak_gold']:.3f}); last point "
            f"x={b['last_x']} (KL {b['last_kl']:.2f}) gold {b['last_gold']:.3f}, last - peak {b['drop']:+.3f}{ci} "
            f"({b['ci_method']}; the peak is picked on the same data); proxy {b['proxy_first']:+.3f} -> "
            f"{b['proxy_last']:+.3f}")
