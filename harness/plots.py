"""Altair charts shared by the dashboards and the CLI (`--plot`).

Each function takes a pandas DataFrame whose columns are named in its docstring and returns an
`alt.Chart` (or a layered/concatenated chart). Nothing here computes a statistic: the numbers come
from `harness.evaluation` or from stored results, so a chart shows exactly what the CLI prints.
`save_chart(chart, path)` writes `.html` always, `.json` (the Vega-Lite spec), and `.png`/`.svg`
when vl-convert-python is installed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd

# Training metrics shown by default, in this order, when present in the metrics table.
DEFAULT_TRAINING_METRICS = ("loss", "reward_margin", "reward_acc", "kl_nats_per_seq", "reward_mean", "response_len")


class PlotError(ValueError):
    pass


def _need(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PlotError(f"{what}: the table lacks column(s) {missing}; it has {list(df.columns)}")


def _ci_columns(df: pd.DataFrame) -> bool:
    return "ci_low" in df.columns and "ci_high" in df.columns and df[["ci_low", "ci_high"]].notna().any().any()


def _point_with_ci(df: pd.DataFrame, label: str, value: str, title: str, x_title: str,
                   domain: tuple[float, float] | None = None, rule_at: float | None = None,
                   color: str | None = None) -> alt.Chart:
    """Horizontal points with CI bars, rows sorted by value (best on top)."""
    order = df.sort_values(value, ascending=False)[label].tolist()
    scale = alt.Scale(domain=list(domain)) if domain else alt.Scale(zero=False)
    y = alt.Y(f"{label}:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    tooltip = [c for c in (label, value, "ci_low", "ci_high", "n", "ties", color) if c and c in df.columns]
    enc_color = alt.Color(f"{color}:N") if color else alt.value("#1f77b4")
    points = alt.Chart(df).mark_point(filled=True, size=70).encode(
        x=alt.X(f"{value}:Q", title=x_title, scale=scale), y=y, color=enc_color, tooltip=tooltip)
    layers = []
    if _ci_columns(df):
        layers.append(alt.Chart(df).mark_rule(strokeWidth=2).encode(
            x=alt.X("ci_low:Q", scale=scale, title=x_title), x2="ci_high:Q", y=y, color=enc_color,
            tooltip=tooltip))
    layers.append(points)
    if rule_at is not None:
        layers.append(alt.Chart(pd.DataFrame({"v": [rule_at]})).mark_rule(strokeDash=[4, 4], color="gray")
                      .encode(x="v:Q"))
    return alt.layer(*layers).properties(title=title, width=420, height=max(90, 26 * len(order)))


def winrate_chart(df: pd.DataFrame, title: str = "Win rate vs baseline (95% CI)") -> alt.Chart:
    """Win rates with CI bars.

    Columns: `policy` (row label), `win_rate` in [0, 1] (ties count half); optional `ci_low`,
    `ci_high` (bootstrap 95% CI), `n`, `ties`, and `baseline` or `judge` (then colored by it).
    """
    _need(df, ("policy", "win_rate"), "winrate_chart")
    color = next((c for c in ("baseline", "judge") if c in df.columns and df[c].nunique() > 1), None)
    return _point_with_ci(df, "policy", "win_rate", title, "win rate", domain=(0, 1), rule_at=0.5, color=color)


def bradley_terry_chart(df: pd.DataFrame, title: str = "Bradley–Terry rating (95% CI)") -> alt.Chart:
    """Bradley–Terry ratings with CI bars.

    Columns: `model`, `rating` (any scale, e.g. Elo-like); optional `ci_low`, `ci_high`, `n`.
    """
    _need(df, ("model", "rating"), "bradley_terry_chart")
    return _point_with_ci(df, "model", "rating", title, "rating")


def heatmap_chart(df: pd.DataFrame, row: str, col: str, value: str, title: str,
                  domain: tuple[float, float] = (0, 1), fmt: str = ".2f") -> alt.Chart:
    """Generic annotated heatmap: one cell per (row, col) with `value` as color and text."""
    _need(df, (row, col, value), "heatmap_chart")
    names = sorted(set(df[row]).union(df[col]), key=str)
    tooltip = [c for c in (row, col, value, "n") if c in df.columns]
    base = alt.Chart(df).encode(x=alt.X(f"{col}:N", sort=names, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=200, labelOverlap=False)),
                                y=alt.Y(f"{row}:N", sort=names, title=None, axis=alt.Axis(labelLimit=260)))
    rect = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", scale=alt.Scale(domain=list(domain), scheme="blues"), title=value),
        tooltip=tooltip)
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text(f"{value}:Q", format=fmt),
        color=alt.condition(f"datum['{value}'] > {domain[0] + 0.6 * (domain[1] - domain[0])}",
                            alt.value("white"), alt.value("black")))
    size = max(160, 42 * len(names))
    return (rect + text).properties(title=title, width=size, height=size)


def agreement_heatmap(df: pd.DataFrame, value: str = "agreement",
                      title: str = "Agreement (annotator × annotator)") -> alt.Chart:
    """Annotator × annotator agreement heatmap.

    Columns: `annotator_a`, `annotator_b`, `agreement` (or the column named by `value`, e.g.
    `kappa`), optional `n` (pairs both labelled). Give both (a, b) and (b, a) for a full square.
    """
    domain = (-1, 1) if value == "kappa" else (0, 1)
    return heatmap_chart(df, "annotator_a", "annotator_b", value, title, domain=domain)


def winrate_matrix_chart(df: pd.DataFrame, title: str = "Win rate of row model vs column model") -> alt.Chart:
    """Columns: `model_a`, `model_b`, `win_rate` (of model_a over model_b), optional `n`."""
    return heatmap_chart(df, "model_a", "model_b", "win_rate", title)


def bias_chart(df: pd.DataFrame, title: str = "Position and length bias") -> alt.Chart:
    """Position- and length-bias bars; 0.5 (no bias) is marked.

    Columns: `annotator`, `metric` (e.g. "P(prefers first shown)", "P(prefers longer)"), `value`
    in [0, 1]; optional `ci_low`, `ci_high`, `n`, and `subset` (then one column of panels per subset).
    """
    _need(df, ("annotator", "metric", "value"), "bias_chart")
    tooltip = [c for c in ("annotator", "metric", "value", "ci_low", "ci_high", "n", "subset") if c in df.columns]
    base = alt.Chart(df).encode(y=alt.Y("annotator:N", title=None, axis=alt.Axis(labelLimit=260)), yOffset="metric:N")
    layers = [base.mark_bar().encode(x=alt.X("value:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
                                     color=alt.Color("metric:N", title=None), tooltip=tooltip)]
    if _ci_columns(df):
        layers.append(base.mark_rule(color="black").encode(x="ci_low:Q", x2="ci_high:Q"))
    layers.append(alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(0.5)))
    n_rows = df["annotator"].nunique() * max(1, df["metric"].nunique())
    chart = alt.layer(*layers, data=df).properties(width=300, height=max(60, 14 * n_rows))
    if "subset" in df.columns and df["subset"].nunique() > 1:
        chart = chart.facet(column=alt.Column("subset:N", title=None))
    return chart.properties(title=title)


def training_curves(df: pd.DataFrame, metrics: Sequence[str] | None = None, columns: int = 3,
                    title: str = "Training curves", max_points: int = 300) -> alt.Chart:
    """Per-step curves, several runs overlaid (one color per run), one panel per metric.

    Columns: `run_id`, `step`, and one numeric column per metric (the wide table returned by
    `Store.metrics`). `metrics` picks panels; default: those of DEFAULT_TRAINING_METRICS present.
    A line longer than `max_points` steps is drawn through evenly spaced steps (first and last
    kept), so long runs stay light in the browser and under altair's row limit.
    """
    _need(df, ("run_id", "step"), "training_curves")
    if metrics is None:
        metrics = [m for m in DEFAULT_TRAINING_METRICS if m in df.columns]
    metrics = [m for m in metrics if m in df.columns]
    if not metrics:
        raise PlotError(f"training_curves: none of the requested metrics in the table ({list(df.columns)})")
    long = df.melt(id_vars=["run_id", "step"], value_vars=list(metrics), var_name="metric", value_name="value")
    long = long.dropna(subset=["value"])
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = _thin(long.sort_values(["run_id", "metric", "step"]), ["run_id", "metric"], max_points)
    chart = alt.Chart(long).mark_line(point=len(df) <= 60).encode(
        x=alt.X("step:Q"), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("run_id:N", title="run", legend=alt.Legend(orient="bottom", labelLimit=400, columns=2)), tooltip=["run_id", "step", "metric", "value"],
    ).properties(width=230, height=170)
    return chart.facet(facet=alt.Facet("metric:N", sort=list(metrics), title=None), columns=columns) \
        .resolve_scale(y="independent").properties(title=title)


def _thin(df: pd.DataFrame, by: list[str], n: int) -> pd.DataFrame:
    """At most n evenly spaced rows (first and last included) of each group of `by`."""
    g = df.groupby(by, sort=False)
    pos = g.cumcount().to_numpy(dtype=float)
    size = g[by[0]].transform("size").to_numpy(dtype=float)
    span = np.maximum(size - 1, 1)
    k = np.round(pos * (n - 1) / span)
    keep = (size <= n) | (np.round(k * span / (n - 1)) == pos)
    return df[keep]


def controllability_chart(df: pd.DataFrame, title: str = "Controllability over training") -> alt.Chart:
    """Mean response length and annotator preference over steps, one line per instruction.

    Columns: `instruction`, `step`, `mean_length`, `pref_shorter` (the annotator's rate of
    preferring the shorter response at that step, in [0, 1]). Either value column may be NaN.
    """
    _need(df, ("instruction", "step"), "controllability_chart")
    panels = []
    for col, ytitle in (("mean_length", "mean response length (tokens)"),
                        ("pref_shorter", "annotator prefers shorter")):
        if col not in df.columns or df[col].isna().all():
            continue
        scale = alt.Scale(domain=[0, 1]) if col == "pref_shorter" else alt.Scale(zero=False)
        panels.append(alt.Chart(df.dropna(subset=[col])).mark_line(point=True).encode(
            x="step:Q", y=alt.Y(f"{col}:Q", title=ytitle, scale=scale),
            color=alt.Color("instruction:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
            tooltip=["instruction", "step", col]).properties(width=320, height=200))
    if not panels:
        raise PlotError("controllability_chart: no `mean_length` or `pref_shorter` values")
    return alt.hconcat(*panels).properties(title=title)


def winrate_vs_length_chart(df: pd.DataFrame, title: str = "Final win rate vs mean length") -> alt.Chart:
    """One point per instruction (or run): final win rate against mean response length.

    Columns: `instruction`, `mean_length`, `win_rate`; optional `ci_low`, `ci_high`.
    """
    _need(df, ("instruction", "mean_length", "win_rate"), "winrate_vs_length_chart")
    base = alt.Chart(df).encode(x=alt.X("mean_length:Q", title="mean response length", scale=alt.Scale(zero=False, padding=24)),
                                color=alt.Color("instruction:N", legend=alt.Legend(orient="bottom", labelLimit=400)))
    layers = [base.mark_point(filled=True, size=90).encode(
        y=alt.Y("win_rate:Q", scale=alt.Scale(domain=[0, 1]), title="final win rate"),
        tooltip=[c for c in ("instruction", "mean_length", "win_rate", "ci_low", "ci_high") if c in df.columns])]
    if _ci_columns(df):
        layers.append(base.mark_rule().encode(y="ci_low:Q", y2="ci_high:Q"))
    return alt.layer(*layers).properties(title=title, width=320, height=220)


def save_chart(chart: alt.TopLevelMixin, path: str | Path) -> Path:
    """Write a chart by suffix: .html (self-contained page), .json (spec), .png/.svg (vl-convert)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".png", ".svg"):
        try:
            import vl_convert  # noqa: F401  (altair uses it for static images)
        except ImportError as e:
            raise PlotError(f"{path}: writing {suffix} needs vl-convert-python (pip install vl-convert-python);"
                            " use .html instead") from e
        chart.save(str(path), scale_factor=2) if suffix == ".png" else chart.save(str(path))
    elif suffix in (".html", ".json"):
        chart.save(str(path))
    else:
        raise PlotError(f"{path}: unknown chart format {suffix!r} (use .html, .json, .png or .svg)")
    return path


def gold_accuracy_chart(df: pd.DataFrame, ceiling: dict | None = None,
                        title: str = "Accuracy vs gold (95% CI)") -> alt.Chart:
    """Each annotator's accuracy against gold with its CI bar; the simulated human-human ceiling as a
    shaded band (its CI) and a line (its value) when given; 0.5 (a coin on decided pairs) is marked.

    Columns: `annotator`, `accuracy` in [0, 1]; optional `ci_low`, `ci_high`, `n`, `kind` (color).
    `ceiling`: {accuracy, accuracy_ci_low, accuracy_ci_high} (the stored ceiling row)."""
    _need(df, ("annotator", "accuracy"), "gold_accuracy_chart")
    chart = _point_with_ci(df, "annotator", "accuracy", title, "accuracy vs gold", domain=(0, 1), rule_at=0.5,
                           color="kind" if "kind" in df.columns else None)
    if not ceiling or ceiling.get("accuracy") is None:
        return chart
    c = pd.DataFrame([{"ceiling": ceiling["accuracy"], "ceiling_ci_low": ceiling.get("accuracy_ci_low"),
                       "ceiling_ci_high": ceiling.get("accuracy_ci_high"), "what": "simulated human-human ceiling"}])
    band = alt.Chart(c).mark_rect(opacity=0.18, color="orange").encode(
        x=alt.X("ceiling_ci_low:Q", scale=alt.Scale(domain=[0, 1])), x2="ceiling_ci_high:Q",
        tooltip=["what", "ceiling", "ceiling_ci_low", "ceiling_ci_high"])
    line = alt.Chart(c).mark_rule(color="orange", strokeWidth=2).encode(
        x="ceiling:Q", tooltip=["what", "ceiling", "ceiling_ci_low", "ceiling_ci_high"])
    return alt.layer(band, line, *chart.layer).properties(title=title, width=chart.width, height=chart.height)


def replication_panels(df: pd.DataFrame) -> list:
    """One chart per unit (gold points, characters): each contrast's paired difference with its CI,
    colored by verdict (reproduced / not reproduced / not resolved), a dashed rule at 0.

    Columns: `contrast`, `mean`, `unit`, `verdict`; optional `ci_low`, `ci_high`, `n` (seeds)."""
    _need(df, ("contrast", "mean", "unit", "verdict"), "replication_panels")
    return [_point_with_ci(part, "contrast", "mean", unit, f"a - b ({unit})", rule_at=0.0, color="verdict")
            for unit, part in df.dropna(subset=["mean"]).groupby("unit", sort=False)]



FOREST_COLUMNS = ("estimate", "lo", "hi", "label", "group")


def forest_chart(df: pd.DataFrame, reference: float, title: str = "", x_title: str = "estimate (95% CI)") -> alt.LayerChart:
    """A forest plot: one row per (label, group), e.g. arm x judge: the estimate as a point, its CI as
    a whisker from `lo` to `hi`, a dashed line at `reference` (0.5 for a win rate, 0 for a difference).

    Columns: `estimate`, `lo`, `hi` (either may be missing: no whisker), `label`, `group` (color);
    optional `n`. Rows keep the table's order, grouped by label."""
    _need(df, FOREST_COLUMNS, "forest_chart")
    rows = df.assign(row=df["label"].astype(str) + "  ·  " + df["group"].astype(str))
    if rows["row"].duplicated().any():
        dup = rows.loc[rows["row"].duplicated(), "row"].tolist()
        raise PlotError(f"forest_chart: more than one row for {dup} (one per label x group)")
    order = rows.sort_values("label", kind="stable")["row"].tolist()
    tooltip = [c for c in ("label", "group", "estimate", "lo", "hi", "n") if c in rows.columns]
    y = alt.Y("row:N", sort=order, title=None, axis=alt.Axis(labelLimit=320))
    # no legend: the group is in every row's label, and Streamlit fits a layered chart into its given
    # height, so a legend would squeeze the rows together
    color = alt.Color("group:N", title=None, legend=None)
    scale = alt.Scale(zero=False, padding=12)
    whiskers = alt.Chart().mark_rule(strokeWidth=2).encode(
        x=alt.X("lo:Q", scale=scale, title=x_title), x2="hi:Q", y=y, color=color, tooltip=tooltip)
    points = alt.Chart().mark_point(filled=True, size=70).encode(x=alt.X("estimate:Q", scale=scale), y=y,
                                                                color=color, tooltip=tooltip)
    ref = alt.Chart().mark_rule(strokeDash=[4, 4], color="gray").encode(x=alt.datum(reference))
    return alt.layer(ref, whiskers, points, data=rows).properties(title=title, width=420,
                                                                 height=max(90, 30 * len(order)))
