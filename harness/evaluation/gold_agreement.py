"""Every annotator scored against gold on a verifiable task (`harness agreement --gold TASK`).

`gold_table(store, task, pairs, annotators)` labels the pairs with the task's gold scorer
(`gold:<task>`, stored as annotator `<task>:gold`, so `harness agreement --reference gold` reads the
same labels) and with each annotator (judges.registry.load_judge + judges.base.label_and_store, in
the orders the judge asks by default: both for LLM judges and simulated raters, one for rules and
reward models), then per annotator, one row:

  n, accuracy        gold-decided pairs (gold verdict A or B; gold ties carry no truth to be right
                     about) the annotator was asked; accuracy = combined verdict (records.
                     combine_orders: orders that disagree are a tie) == gold / n. A tie or an
                     unparsed answer counts as WRONG (not 0.5): a judge that always ties, or always
                     follows the position, scores 0, not 0.5.
  ties, tie_share    the annotator's ties among those n pairs (tie_share = ties / n); unparsed too
  accuracy_no_ties   == gold / pairs among the n where the combined verdict is decisive (n_no_ties)
  consistency        pairs whose AB and BA verdicts agree / pairs parsed in both orders (n_both),
                     only for an annotator asked in both orders (validity.figures)
  p_first            per-order labels preferring the response shown first / decisive per-order
                     labels (n_first), only for both orders (one order confounds position with content)
  p_longer           pairs whose combined verdict picks the longer response (whitespace words) /
                     n_longer pairs with different word counts where both the annotator and gold are
                     decisive; gold_p_longer: gold's own rate on the SAME n_longer pairs, so a bias is
                     read against the truth (p_longer > gold_p_longer: pulled toward length)
  n_errors           pairs whose labels are errors (server down, judge raised): left out of every
                     figure; an annotator that answered none (errors, or nothing parsed, or it could
                     not be loaded) gets status "not measured: <why>" and no figures, never zeros
Each proportion has a 95% Wilson score interval (validity.wilson = statsmodels proportion_confint).

The ceiling row ("simulated human-human ceiling"): agreement among the simulated raters (kind
simulated-human, judges/simulated.py) on the gold-decided pairs, as agreement.human_reliability
computes the human ceiling (each rater's combined verdict against the mode of the others, 1/k credit
for k tied modes; with three raters this equals their mean pairwise agreement), with a 95%
percentile bootstrap CI over pairs; n = pairs with >= 2 rater verdicts.
"""
from __future__ import annotations

import gc
import math
from typing import Sequence

import pandas as pd

from .validity import WILSON, figures, n_words, proportion

CEILING = "simulated human-human ceiling"
CEILING_KINDS = ("simulated-human",)
DECISIVE = ("A", "B")
NOT_MEASURED = "not measured"
BOOT_CI = "95% percentile bootstrap over pairs (agreement.human_reliability)"

COLUMNS = ["annotator", "kind", "version", "status", "orders", "n", "correct", "accuracy", "accuracy_ci_low",
           "accuracy_ci_high", "ties", "tie_share", "unparsed", "n_no_ties", "accuracy_no_ties",
           "accuracy_no_ties_ci_low", "accuracy_no_ties_ci_high", "n_both", "consistency", "consistency_ci_low",
           "consistency_ci_high", "n_first", "p_first", "p_first_ci_low", "p_first_ci_high", "n_longer", "p_longer",
           "p_longer_ci_low", "p_longer_ci_high", "gold_p_longer", "gold_p_longer_ci_low", "gold_p_longer_ci_high",
           "n_errors", "ci_method"]

ESTIMATORS = {
    "accuracy": "combined verdict == gold / gold-decided pairs; a judge tie or unparsed answer counts as wrong",
    "accuracy_no_ties": "combined verdict == gold / gold-decided pairs where the judge's combined verdict is decisive",
    "tie_share": "judge ties / gold-decided pairs",
    "consistency": "pairs whose AB and BA verdicts agree / pairs parsed in both orders (both-order judges only)",
    "p_first": "per-order labels preferring the response shown first / decisive per-order labels (both orders)",
    "p_longer": "decisive combined verdicts picking the response with more whitespace words / pairs with "
                "different word counts where judge and gold are both decisive; gold_p_longer on the same pairs",
    "ceiling": "simulated raters: each rater's verdict vs the mode of the others (1/k for k tied modes), "
               "averaged over (rater, pair) comparisons on gold-decided pairs; = mean pairwise agreement for 3 raters",
    "ci": f"{WILSON}; the ceiling row: {BOOT_CI}",
}


def gold_name(name: str, task: str) -> str:
    """'gold' names the task's own gold scorer; anything else passes unchanged."""
    return f"gold:{task}" if name == "gold" else name


def _fig(row: dict, prefix: str, fig: dict | None) -> None:
    fig = fig or {}
    row[prefix] = fig.get("value")
    row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"] = fig.get("ci_low"), fig.get("ci_high")


def _not_measured(name: str, why: str, annotator=None) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(annotator=annotator.id if annotator else name, kind=annotator.kind if annotator else None,
               version=annotator.version if annotator else None, status=f"{NOT_MEASURED}: {why}")
    return row


def _errored(j) -> str | None:
    for lab in j.labels:
        if lab.meta.get("error"):
            return lab.meta["error"]
    return None


def annotator_row(judgements, gold: dict[str, str], gold_judgements: dict, orders: Sequence[str]) -> dict:
    """The figures of one annotator's judgements against `gold` (pair_id -> gold verdict); module docs."""
    ok = [j for j in judgements if not _errored(j)]
    ann = judgements[0].labels[0].annotator
    row = dict.fromkeys(COLUMNS)
    row.update(annotator=ann.id, kind=ann.kind, version=ann.version, status="measured",
               orders="+".join(orders), n_errors=len(judgements) - len(ok), ci_method=WILSON)
    decided = [j for j in ok if gold.get(j.pair.pair_id) in DECISIVE]
    hits = sum(j.verdict == gold[j.pair.pair_id] for j in decided)
    ties = sum(j.verdict == "tie" for j in decided)
    dec = [j for j in decided if j.verdict in DECISIVE]
    row.update(n=len(decided), correct=hits, ties=ties, tie_share=ties / len(decided) if decided else None,
               unparsed=sum(j.verdict == "unparsed" for j in decided), n_no_ties=len(dec))
    _fig(row, "accuracy", proportion(hits, len(decided), ESTIMATORS["accuracy"]))
    _fig(row, "accuracy_no_ties", proportion(sum(j.verdict == gold[j.pair.pair_id] for j in dec), len(dec),
                                             ESTIMATORS["accuracy_no_ties"]))
    if set(orders) == {"AB", "BA"}:
        f = figures(ok)
        row["n_both"], row["n_first"] = f["position_consistency"]["n"], f["p_first"]["n"]
        _fig(row, "consistency", f["position_consistency"])
        _fig(row, "p_first", f["p_first"])
    # the word count figures() uses (whitespace words); gold's judgements of the very same pairs
    same = [j for j in dec if n_words(j.pair.response_a) != n_words(j.pair.response_b)]
    row["n_longer"] = len(same)
    _fig(row, "p_longer", figures(same)["p_longer"])
    _fig(row, "gold_p_longer", figures([gold_judgements[j.pair.pair_id] for j in same])["p_longer"])
    return row


def label_annotator(store, judge, pairs, batch_size: int = 16, progress: bool = False):
    """label_and_store in the judge's own orders, one pair first: a judge whose first answer is an
    error (a server that is not there) is not asked the rest. Returns (judgements, why-not or None)."""
    from judges.base import label_and_store

    orders = tuple(getattr(judge, "orders", ("AB",)))
    first = label_and_store(judge, pairs[:1], store, orders=orders)
    if first and _errored(first[0]):
        return first, _errored(first[0])
    rest = label_and_store(judge, pairs[1:], store, orders=orders, batch_size=batch_size, progress=progress)
    out = first + rest
    if all(_errored(j) for j in out):
        return out, _errored(out[0])
    if not any(j.verdict != "unparsed" for j in out if not _errored(j)):
        raw = next((lab.raw_output for j in out for lab in j.labels if lab.raw_output), "")
        return out, f"no answer parsed (e.g. {raw[:80]!r})"
    return out, None


def ceiling_row(judgements_by_rater: dict[str, list], gold: dict[str, str], n_boot: int = 1000,
                seed: int = 0) -> dict:
    """The simulated human-human ceiling on the gold-decided pairs (module docs)."""
    from .agreement import human_reliability

    row = dict.fromkeys(COLUMNS)
    row.update(annotator=CEILING, kind="ceiling", ci_method=BOOT_CI,
               version=",".join(sorted(judgements_by_rater)) or None)
    if len(judgements_by_rater) < 2:
        row["status"] = (f"{NOT_MEASURED}: needs >= 2 simulated raters measured, got "
                         f"{len(judgements_by_rater)} ({', '.join(judgements_by_rater) or 'none'})")
        return row
    frame = pd.DataFrame([{"item": j.pair.pair_id, "annotator": name, "kind": lab.annotator.kind,
                           "verdict": lab.verdict, "shown_order": lab.shown_order}
                          for name, js in judgements_by_rater.items() for j in js
                          if gold.get(j.pair.pair_id) in DECISIVE and not _errored(j) for lab in j.labels])
    rel = human_reliability(frame, n_boot=n_boot, seed=seed, kinds=CEILING_KINDS) if len(frame) else pd.DataFrame()
    if rel.empty:
        row["status"] = f"{NOT_MEASURED}: no gold-decided pair with >= 2 simulated rater verdicts"
        return row
    r = rel.iloc[0]
    row.update(status="measured", n=int(r["n_items"]), accuracy=float(r["ceiling"]),
               accuracy_ci_low=_num(r["ceiling_ci_low"]), accuracy_ci_high=_num(r["ceiling_ci_high"]))
    return row


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def gold_table(store, task: str, pairs, annotators: Sequence, home=None, device: str | None = None,
               batch_size: int = 16, progress: bool = False, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per annotator (a name load_judge takes, 'gold', or a loaded judge object) plus the
    simulated human-human ceiling row; columns COLUMNS (module docs). The gold labels are stored."""
    from judges.base import label_and_store
    from judges.gold import make_gold_judge
    from judges.registry import load_judge

    from ..tasks import load_task

    pairs = list({p.pair_id: p for p in pairs}.values())
    if not pairs:
        raise ValueError(f"gold agreement on {task}: no pairs")
    t = load_task(task)
    gj = make_gold_judge(task)
    gold_js = {j.pair.pair_id: j for j in label_and_store(gj, pairs, store, orders=("AB",))}
    gold = {pid: j.verdict for pid, j in gold_js.items()}
    rows, raters = [], {}
    for a in annotators:
        name = gold_name(a, task) if isinstance(a, str) else a.annotator.id
        try:
            judge = load_judge(name, home, device, rubric=t.rubric) if isinstance(a, str) else a
        except Exception as e:  # an annotator that cannot be loaded is a row saying so, never zeros
            rows.append(_not_measured(name, f"{type(e).__name__}: {e}"))
            continue
        rater_task = getattr(getattr(judge, "gold", None), "task", None)
        if rater_task is not None and rater_task != t.name:
            rows.append(_not_measured(name, f"it scores task {rater_task}, these pairs are task {t.name}",
                                      judge.annotator))
            continue
        js, why = label_annotator(store, judge, pairs, batch_size, progress)
        if why:
            rows.append(_not_measured(name, why, judge.annotator))
        else:
            rows.append(annotator_row(js, gold, gold_js, tuple(getattr(judge, "orders", ("AB",)))))
            if judge.annotator.kind in CEILING_KINDS:
                raters[judge.annotator.id] = js
        if isinstance(a, str):
            del judge
            gc.collect()
    rows.append(ceiling_row(raters, gold, n_boot, seed))
    return pd.DataFrame(rows, columns=COLUMNS)


def gold_result(task: str, split: str, annotators: Sequence, table: pd.DataFrame, pairs_stats: dict | None = None,
                n_pairs: int | None = None, **extra) -> dict:
    """What `harness agreement --gold` stores as a `gold_agreement` result (the dashboard reads it)."""
    from .frames import to_records

    return {"task": str(task), "split": split, "n_pairs": n_pairs,
            "annotators": [a if isinstance(a, str) else a.annotator.id for a in annotators],
            "pairs": pairs_stats or {}, "rows": to_records(table), "estimators": ESTIMATORS, **extra}


__all__ = ["CEILING", "COLUMNS", "ESTIMATORS", "NOT_MEASURED", "annotator_row", "ceiling_row", "gold_name",
           "gold_result", "gold_table", "label_annotator"]
