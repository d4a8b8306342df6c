"""Stored results (`Store.results(kind)`) -> the DataFrames `harness.plots` draws.

Nothing is computed here: numbers are copied from what `harness eval`, `harness leaderboard`,
`harness agreement` and `harness study` stored. The readers accept the field names those
commands write and a few obvious synonyms, so an older result still shows.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

# canonical column -> names accepted in a stored result
_SYNONYMS = {
    "win_rate": ("win_rate", "winrate", "wr"),
    "lc_win_rate": ("lc_win_rate", "length_controlled_win_rate", "lc_winrate"),
    "ci_low": ("ci_low", "ci_lo", "lower", "low", "ci95_low"),
    "ci_high": ("ci_high", "ci_hi", "upper", "high", "ci95_high"),
    "rating": ("rating", "elo", "score", "bt", "bt_rating"),
    "model": ("model", "policy", "name"),
    "annotator": ("annotator", "annotator_id", "judge", "evaluator"),
    "reference": ("reference", "ref"),
    "agreement": ("agreement", "agreement_with_ties", "agree"),
    "agreement_no_ties": ("agreement_no_ties", "agreement_without_ties"),
    "kappa": ("kappa", "cohen_kappa", "cohens_kappa"),
    "p_first": ("p_first", "p_prefers_first", "prefers_first"),
    "p_longer": ("p_longer", "p_prefers_longer", "prefers_longer"),
    "position_consistency": ("position_consistency", "positional_agreement", "consistency"),
    "n": ("n", "n_battles", "n_pairs", "count"),
}
_CI_KEYS = ("ci", "ci95", "ci_95", "bootstrap_ci")
ALL = "(all)"  # the subset that pools a dataset's subsets (harness.evaluation.agreement)


def _get(d: dict, canon: str, default=None):
    for k in _SYNONYMS.get(canon, (canon,)):
        if k in d and d[k] is not None:
            return d[k]
    return default


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _ci(d: dict, prefix: str = "") -> tuple[float | None, float | None]:
    """CI of a value: `<prefix>ci: [lo, hi]`, or `<prefix>ci_low`/`ci_high`."""
    for k in _CI_KEYS:
        v = d.get(prefix + k)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return _num(v[0]), _num(v[1])
        if isinstance(v, dict):
            return _num(_get(v, "ci_low")), _num(_get(v, "ci_high"))
    if prefix:
        return _num(d.get(prefix + "ci_low")), _num(d.get(prefix + "ci_high"))
    return _num(_get(d, "ci_low")), _num(_get(d, "ci_high"))


def _rows(result: Any, keys: Iterable[str]) -> list[dict]:
    """The list of row dicts inside a result (under one of `keys`), or the result itself as a row."""
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)]
    for k in keys:
        v = result.get(k)
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return v
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            return [{"model": name, "annotator": name, **x} for name, x in v.items()]
    return [result]


def winrates(stored: list[dict]) -> pd.DataFrame:
    """One row per stored `winrate` result: policy, baseline, judge, task, win_rate, CI, n, ties, LC."""
    out = []
    for r in stored:
        res = r["result"]
        lo, hi = _ci(res)
        lc_lo, lc_hi = _ci(res, "lc_")
        out.append({
            "result_id": r.get("result_id"),
            "policy": res.get("policy") or r.get("name") or r.get("run_id") or f"result {r.get('result_id')}",
            "baseline": r.get("baseline") or res.get("baseline"),
            "judge": r.get("judge") or res.get("judge"),
            "task": r.get("task") or res.get("task"),
            "win_rate": _num(_get(res, "win_rate")), "ci_low": lo, "ci_high": hi,
            "n": _num(_get(res, "n")), "ties": _num(res.get("ties")),
            "lc_win_rate": _num(_get(res, "lc_win_rate")), "lc_ci_low": lc_lo, "lc_ci_high": lc_hi,
            "created_at": r.get("created_at"),
        })
    return pd.DataFrame(out)


def leaderboard_meta(stored: dict) -> dict:
    """task (or dataset), judge(s) and baseline of a stored `leaderboard` result, for the filters."""
    res = stored["result"]
    judges = res.get("judges")
    return {"task": stored.get("task") or res.get("task") or res.get("dataset"),
            "judge": stored.get("judge") or (",".join(judges) if isinstance(judges, list) else judges),
            "baseline": stored.get("baseline")}


def leaderboard(stored: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One stored `leaderboard` result -> (ratings: model, rating, ci_low, ci_high, n;
    matrix: model_a, model_b, win_rate, n)."""
    res = stored["result"]
    ratings = []
    for row in _rows(res, ("ratings", "leaderboard", "models", "rows", "table")):
        lo, hi = _ci(row)
        rating = _num(_get(row, "rating"))
        if rating is None:
            continue
        ratings.append({"model": str(_get(row, "model")), "rating": rating, "ci_low": lo, "ci_high": hi,
                        "n": _num(_get(row, "n")), "win_rate": _num(_get(row, "win_rate"))})
    ratings_df = pd.DataFrame(ratings)
    if not ratings_df.empty:
        ratings_df = ratings_df.sort_values("rating", ascending=False).reset_index(drop=True)
        ratings_df.insert(0, "rank", range(1, len(ratings_df) + 1))
    matrix = []
    m = next((res[k] for k in ("matrix", "win_rate_matrix", "winrate_matrix") if k in res), None)
    if isinstance(m, dict):  # {model_a: {model_b: win_rate}}
        for a, row in m.items():
            for b, v in (row or {}).items():
                if _num(v) is not None:
                    matrix.append({"model_a": a, "model_b": b, "win_rate": _num(v)})
    elif isinstance(m, list):  # [{model_a, model_b, win_rate, n}]
        for row in m:
            if _num(_get(row, "win_rate")) is not None:
                matrix.append({"model_a": row.get("model_a"), "model_b": row.get("model_b"),
                               "win_rate": _num(_get(row, "win_rate")), "n": _num(_get(row, "n"))})
    return ratings_df, pd.DataFrame(matrix)


def _flat_rows(rows: list[dict]) -> list[dict]:
    """Rows with nested CIs ({"kappa": {"value": .4, "ci": [lo, hi]}}) flattened to kappa_ci_low/..."""
    out = []
    for row in rows:
        flat = {k: v for k, v in row.items() if not isinstance(v, (dict, list))}
        for k, v in row.items():
            if isinstance(v, dict) and "value" in v:
                flat[k] = v["value"]
                flat[f"{k}_ci_low"], flat[f"{k}_ci_high"] = _ci(v)
            elif isinstance(v, (list, tuple)) and len(v) == 2 and k.endswith("_ci"):
                flat[f"{k[:-3]}_ci_low"], flat[f"{k[:-3]}_ci_high"] = _num(v[0]), _num(v[1])
        out.append(flat)
    return out


def agreement(stored: list[dict]) -> pd.DataFrame:
    """Every stored `agreement` result flattened: one row per (result, annotator, dataset, subset),
    columns as `harness.evaluation.agreement.AGREEMENT_COLUMNS` (annotator, reference, n, agreement,
    kappa, acc_*, position_consistency, p_first, p_longer, ...)."""
    out = []
    for r in stored:
        res = r["result"]
        reference = r.get("baseline") or _get(res, "reference") or r.get("name") or "reference"
        for row in _flat_rows(_rows(res, ("rows", "agreement", "annotators", "per_annotator", "table"))):
            canon = {c: _get(row, c) for c in ("annotator", "agreement", "agreement_no_ties", "kappa",
                                                "p_first", "p_longer", "position_consistency", "n")}
            if canon["annotator"] is None:
                continue
            out.append({**row, **{k: v for k, v in canon.items() if v is not None},
                        "reference": str(row.get("reference") or reference),
                        "subset": str(row.get("subset") or ALL), "result_id": r.get("result_id"),
                        "dataset": str(row.get("dataset") or res.get("dataset") or r.get("task") or "(none)")})
    df = pd.DataFrame(out)
    if not df.empty:
        df["annotator"] = df["annotator"].astype(str)
    return df


def ceilings(stored: list[dict]) -> pd.DataFrame:
    """Human–human reliability stored with agreement results (`human` rows of
    `agreement.human_reliability`: ceiling, its CI, Fleiss' kappa, Krippendorff's alpha)."""
    out = []
    for r in stored:
        res = r["result"]
        c = next((res[k] for k in ("human", "human_reliability", "human_ceiling", "ceiling") if k in res), None)
        if c is None:
            continue
        items = c if isinstance(c, list) else [c] if isinstance(c, dict) else [{"ceiling": c}]
        for item in _flat_rows(items):
            val = _num(item.get("ceiling", item.get("agreement", item.get("value"))))
            if val is None:
                continue
            lo = _num(item.get("ceiling_ci_low", item.get("ci_low")))
            hi = _num(item.get("ceiling_ci_high", item.get("ci_high")))
            out.append({**item, "dataset": str(item.get("dataset") or res.get("dataset") or r.get("task") or "(none)"),
                        "subset": str(item.get("subset") or ALL), "ceiling": val, "ceiling_ci_low": lo,
                        "ceiling_ci_high": hi})
    return pd.DataFrame(out)


def bias(stored: list[dict]) -> pd.DataFrame:
    """Position/length bias rows (`agreement.bias_table`) stored with agreement results under `bias`;
    without them, the p_first / p_longer columns of the agreement rows."""
    out = []
    for r in stored:
        res = r["result"]
        rows = res.get("bias") if isinstance(res, dict) else None
        for row in _flat_rows(rows or []):
            out.append({**row, "dataset": str(row.get("dataset") or res.get("dataset") or "(none)"),
                        "subset": str(row.get("subset") or ALL)})
    if out:
        return pd.DataFrame(out).drop_duplicates(subset=["dataset", "subset", "annotator"], keep="last")
    return agreement(stored)


def bias_long(df: pd.DataFrame) -> pd.DataFrame:
    """Bias rows -> the long table `plots.bias_chart` takes (position and length bias)."""
    rows = []
    for _, r in df.iterrows():
        for col, label in (("p_first", "P(prefers first shown)"), ("p_longer", "P(prefers longer)")):
            if col in df.columns and _num(r.get(col)) is not None:
                rows.append({"annotator": r["annotator"], "subset": r["subset"], "metric": label,
                             "value": float(r[col]), "ci_low": _num(r.get(f"{col}_ci_low")),
                             "ci_high": _num(r.get(f"{col}_ci_high")), "n": _num(r.get("n"))})
    return pd.DataFrame(rows)


def controllability(stored: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stored `controllability` results (`harness study controllability`: {"arms": [{label, judge,
    instruction, run_id, per_step: [{step, len_mean, prefers_shorter, ...}], len_last3, winrate:
    {win_rate, ci_low, ci_high, mean_chars_policy, ...}}]}) -> (per step: instruction, step,
    mean_length, pref_shorter; final: instruction, win_rate, ci_low, ci_high, mean_length, run_id)."""
    steps, final = [], []
    for r in stored:
        res = r["result"]
        for arm in _rows(res, ("arms", "instructions", "runs", "rows")):
            instr = str(arm.get("label") or arm.get("instruction") or arm.get("name") or r.get("name") or "default")
            for s in arm.get("per_step") or arm.get("steps") or []:
                steps.append({"instruction": instr, "step": s.get("step"),
                              "mean_length": _num(next((s[k] for k in ("mean_length", "len_mean", "response_len")
                                                        if s.get(k) is not None), None)),
                              "pref_shorter": _num(next((s[k] for k in ("pref_shorter", "prefers_shorter")
                                                         if s.get(k) is not None), None))})
            wr = arm.get("winrate", arm.get("final_win_rate", arm.get("win_rate")))
            length = arm.get("final_mean_length", arm.get("len_last3"))
            if isinstance(wr, dict):
                lo, hi = _ci(wr)
                length = wr.get("mean_chars_policy", length) if length is None else length
                n = _num(wr.get("n"))
                wr = _get(wr, "win_rate")
            else:
                lo, hi, n = *_ci(arm), None
            if _num(wr) is not None:
                final.append({"instruction": instr, "win_rate": _num(wr), "ci_low": lo, "ci_high": hi, "n": n,
                              "mean_length": _num(length), "run_id": arm.get("run_id")})
    return pd.DataFrame(steps), pd.DataFrame(final)


CONTROLLABILITY_FIXED_COLUMNS = ["result_id", "annotator", "property", "instruction", "delivered", "n_distinguishing",
                                 "n", "baseline_favoured", "instructed_favoured", "flip_toward", "ci_low", "ci_high",
                                 "flip_toward_n", "flip_away", "flip_away_ci_low", "flip_away_ci_high", "net_shift",
                                 "net_ci_low", "net_ci_high"]


def controllability_fixed(stored: list[dict]) -> pd.DataFrame:
    """Stored `controllability_fixed` results (`harness study controllability`, before training: rows of
    harness/evaluation/controllability.py) -> one row per (result, annotator, instruction): the
    figures with their CIs (Wilson for proportions, paired bootstrap for net_shift) as stored."""
    out = []
    for r in stored:
        for row in r["result"].get("rows") or []:
            ft, fa, ns = (row.get(k) or {} for k in ("flip_toward", "flip_away", "net_shift"))
            out.append({"result_id": r["result_id"], "annotator": row.get("annotator"), "property": row.get("property"),
                        "instruction": row.get("instruction"), "delivered": bool(row.get("instruction_delivered")),
                        "n_distinguishing": row.get("n_distinguishing"), "n": row.get("n"),
                        "baseline_favoured": _num((row.get("baseline_favoured") or {}).get("value")),
                        "instructed_favoured": _num((row.get("instructed_favoured") or {}).get("value")),
                        "flip_toward": _num(ft.get("value")), "ci_low": _num(ft.get("ci_low")),
                        "ci_high": _num(ft.get("ci_high")), "flip_toward_n": ft.get("n"),
                        "flip_away": _num(fa.get("value")), "flip_away_ci_low": _num(fa.get("ci_low")),
                        "flip_away_ci_high": _num(fa.get("ci_high")), "net_shift": _num(ns.get("value")),
                        "net_ci_low": _num(ns.get("ci_low")), "net_ci_high": _num(ns.get("ci_high"))})
    return pd.DataFrame(out, columns=CONTROLLABILITY_FIXED_COLUMNS)


VALIDITY_COLUMNS = ["result_id", "annotator", "kind", "version", "figure", "dataset", "reference", "value", "n",
                    "ci_low", "ci_high"]


def validity(stored: list[dict]) -> pd.DataFrame:
    """Every stored `judge_validity` card as long rows (harness.evaluation.validity.card_rows): one
    per (card, figure, dataset), with the card's result_id, annotator id, kind and version."""
    from harness.evaluation.validity import card_rows

    rows = []
    for r in stored:
        card = r["result"]
        head = {"result_id": r["result_id"], "annotator": card.get("annotator_id", r.get("name")),
                "kind": card.get("annotator_kind"), "version": card.get("annotator_version", r.get("baseline"))}
        rows += [{**head, **row} for row in card_rows(card)]
    return pd.DataFrame(rows, columns=VALIDITY_COLUMNS)


GOLD_COLUMNS = ["annotator", "kind", "status", "n", "accuracy", "ci_low", "ci_high", "tie_share", "accuracy_no_ties",
                "n_no_ties", "consistency", "n_both", "p_first", "n_first", "p_longer", "gold_p_longer", "n_longer",
                "n_errors", "version"]


def gold_agreement(result: dict) -> tuple[pd.DataFrame, dict | None]:
    """One stored `gold_agreement` result (`harness agreement --gold`, rows of
    harness/evaluation/gold_agreement.py) -> (annotator rows as stored, the ceiling row or None).
    `ci_low`/`ci_high` are accuracy's 95% CI; the ceiling row is left out of the table."""
    from harness.evaluation.gold_agreement import CEILING

    rows, ceiling = [], None
    for row in result.get("rows") or []:
        if row.get("annotator") == CEILING:
            ceiling = row
            continue
        rows.append({**{c: row.get(c) for c in GOLD_COLUMNS}, "ci_low": _num(row.get("accuracy_ci_low")),
                     "ci_high": _num(row.get("accuracy_ci_high"))})
    return pd.DataFrame(rows, columns=GOLD_COLUMNS), ceiling


FOREST = ["estimate", "lo", "hi", "label", "group", "n"]


def _diff_mean(text) -> float | None:
    """The mean of a demo row's 'gold_diff (ci95)' text, '+0.100 [+0.010, +0.200]' (summary.py writes
    only the text and the CI; the text's first number is the stored mean to 3 decimals)."""
    return _num(str(text).split()[0]) if text else None


def demo_forest(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stored `demo_summary` -> (win rates, gold differences) as `plots.forest_chart` rows: each
    arm vs the initial policy and each head-to-head pair, per judge."""
    wins, diffs = [], []
    for rows, label, win, diff in (
            (summary.get("rows") or [], lambda r: f"{r['arm']} vs initial", "win_rate", "gold_diff (ci95)"),
            (summary.get("head_to_head") or [], lambda r: f"{r['arm_a']} vs {r['arm_b']}", "win_rate_a", "gold_diff_a (ci95)")):
        for r in rows:
            head = {"label": label(r), "group": str(r.get("judge")), "n": _num(r.get("n"))}
            wins.append({**head, "estimate": _num(r.get(win)), "lo": _num(r.get("ci_low")), "hi": _num(r.get("ci_high"))})
            if r.get("gold_diff_ci") and _diff_mean(r.get(diff)) is not None:
                lo, hi = r["gold_diff_ci"]
                diffs.append({**head, "estimate": _diff_mean(r[diff]), "lo": _num(lo), "hi": _num(hi)})
    return pd.DataFrame(wins, columns=FOREST), pd.DataFrame(diffs, columns=FOREST)


def study_forest(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A stored `study_summary` -> forest rows: (each arm's gold win rate vs initial, each arm's gold
    difference, each contrast a - b with a `unit` column), means over seeds with their t CIs."""
    judge = (summary.get("eval") or {}).get("judge", "gold")

    def arm_rows(metric: str) -> pd.DataFrame:
        return pd.DataFrame([{"label": a.get("label") or a["arm"], "group": judge, "estimate": _num(a[metric]["mean"]),
                              "lo": _num(a[metric]["ci_low"]), "hi": _num(a[metric]["ci_high"]), "n": a[metric]["n"]}
                             for a in summary.get("arms", [])], columns=FOREST)

    contrasts = pd.DataFrame([{"label": c["contrast"], "group": c.get("verdict", ""), "estimate": _num(c.get("mean")),
                               "lo": _num(c.get("ci_low")), "hi": _num(c.get("ci_high")), "n": c.get("n"),
                               "unit": c.get("unit", "")} for c in summary.get("contrasts", [])],
                             columns=FOREST + ["unit"])
    return arm_rows("gold_win"), arm_rows("gold_diff"), contrasts
