"""Gold evaluation of a verifiable task: `harness eval --judge gold` (docs/verifiable.md).

`--judge gold` names the gold scorer of the task the evaluation runs on (`gold:<task>`,
judges/gold.py); a task without constraints is a clear error, never an empty evaluation. The gold
scorer is the truth by construction (each constraint is a program, harness/verifiable.py), so no
PandaLM / LLMBar validity card is computed for it: those human-labelled pairs are not prompts of
the task, and the gold judge would answer none of them. Its card is one line saying so.

Besides the win rate (the gold verdict of each pair), the gold score itself, per side:
  gold_mean          mean gold score over prompts (0 degenerate, else 1 + k/K), percentile-
                     bootstrap 95% CI over prompts (harness/evaluation/bootstrap.py);
  satisfied          (prompt, constraint) items whose check passes / all items, Wilson 95% CI
                     (items of one prompt are not independent: the Wilson interval is narrower than
                     a prompt-level bootstrap would be; `satisfied_valid` counts only items of
                     non-degenerate responses, the ones the gold score credits);
  degenerate         prompts whose response is empty / a loop / off-topic, Wilson 95% CI;
and the paired difference of gold means (policy - baseline), bootstrap 95% CI over prompts.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..verifiable import score_parts
from .bootstrap import bootstrap_mean_ci
from .validity import proportion

GOLD_NAME = "gold"
BOOT = "95% percentile bootstrap over prompts"
GOLD_CARD_LINE = ("judge {id}@{version} is the gold scorer of task {task}: the truth by construction "
                  "(constraints are programs, harness/verifiable.py); no validity card is computed for it")


def resolve_ref(ref, task_name: str):
    """`--judge gold` -> JudgeRef `gold:<task_name>`; any other name passes unchanged.
    Raises ConfigError when `task_name` is not verifiable (its prompts carry no constraints)."""
    from ..config import ConfigError
    from ..tasks import load_task

    if ref.name != GOLD_NAME:
        return ref
    task = load_task(task_name)
    if not task.verifiable:
        raise ConfigError(f"--judge gold: task {task.name} is not verifiable (its prompts file "
                          f"{task.directory / (task.spec.data.prompts or 'prompts.jsonl')} carries no constraints); "
                          "gold needs a verifiable task, e.g. --task verifiable")
    return replace(ref, name=f"gold:{task_name}")  # as given: a task dir path resolves the same way


def is_gold(judge) -> bool:
    """The gold scorer itself (kind rule, config `gold`), not a judge built on it (simulated raters
    carry `gold` in their config too, but are kind simulated-human and noisy)."""
    ann = judge.annotator
    return ann.kind == "rule" and bool((ann.config or {}).get("gold"))


SIMULATED_CARD_LINE = ("judge {id}@{version} is a simulated rater of task {task} (gold + noise, judges/simulated.py): "
                       "PandaLM/LLMBar pairs are not its prompts, so it has no human-agreement card; its validity "
                       "is its accuracy against gold (`harness agreement --gold {task}`; OAIF logs it per step as "
                       "judge/gold_accuracy)")


def is_simulated(judge) -> bool:
    return getattr(getattr(judge, "annotator", None), "kind", None) == "simulated-human"


def task_card(judge) -> tuple[dict, str] | None:
    """What stands in for the PandaLM/LLMBar validity card of a judge that can only answer its own
    task's prompts (the gold scorer, a simulated rater); None for every other judge."""
    if is_gold(judge):
        return gold_card(judge)
    if is_simulated(judge):
        ann = judge.annotator
        line = SIMULATED_CARD_LINE.format(id=ann.id, version=ann.version, task=(ann.config or {}).get("task", "?"))
        return {"annotator_id": ann.id, "annotator_kind": ann.kind, "annotator_version": ann.version,
                "simulated": True, "note": line}, line
    return None


def gold_card(judge) -> tuple[dict, str]:
    """What stands in for the validity card of a gold judge: no figures, the reason."""
    ann = judge.annotator
    line = GOLD_CARD_LINE.format(id=ann.id, version=ann.version, task=judge.task)
    return {"annotator_id": ann.id, "annotator_kind": ann.kind, "annotator_version": ann.version,
            "gold": True, "note": line}, line


def side_figures(rows: Sequence[dict], outputs: Sequence[str], n_boot: int = 1000, seed: int = 0) -> dict:
    """Gold score, constraint satisfaction and degenerate rate of one side's answers (module docs).
    `rows`: the gold prompts rows (constraints, topic), one per answer."""
    scores, sat, sat_valid, items, degen = [], 0, 0, 0, 0
    for row, text in zip(rows, outputs):
        score, why, met = score_parts(text, row["constraints"], row["topic"])
        scores.append(score)
        degen += why is not None
        items += len(met)
        sat += sum(met)
        sat_valid += 0 if why else sum(met)
    lo, hi = bootstrap_mean_ci(scores, n_boot=n_boot, seed=seed)
    return {"gold_mean": float(np.mean(scores)) if scores else float("nan"), "gold_ci_low": lo, "gold_ci_high": hi,
            "n": len(scores), "gold_ci_method": BOOT,
            "satisfied": proportion(sat, items, "(prompt, constraint) items satisfied / items"),
            "satisfied_valid": proportion(sat_valid, items, "items satisfied by a non-degenerate response / items"),
            "degenerate": proportion(degen, len(scores), "degenerate responses / prompts"),
            "scores": scores}


def gold_figures(judge, rows: Sequence[dict], policy_out: Sequence[str], baseline_out: Sequence[str],
                 n_boot: int = 1000, seed: int = 0) -> dict:
    """{policy: side, baseline: side, diff: paired gold-mean difference with CI} for a gold judge.
    Prompts the task does not know (a --task other than the judge's) are left out and counted."""
    from ..records import prompt_text

    gold_rows = [judge.row(prompt_text(r["prompt"])) for r in rows]
    keep = [i for i, g in enumerate(gold_rows) if g is not None]
    g = [gold_rows[i] for i in keep]
    pol = side_figures(g, [policy_out[i] for i in keep], n_boot, seed)
    base = side_figures(g, [baseline_out[i] for i in keep], n_boot, seed)
    d = np.asarray(pol.pop("scores")) - np.asarray(base.pop("scores"))
    lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
    return {"policy": pol, "baseline": base, "n_unknown_prompts": len(rows) - len(keep),
            "diff": {"mean": float(d.mean()) if len(d) else float("nan"), "ci_low": lo, "ci_high": hi,
                     "n": int(len(d)), "method": f"policy - baseline gold score, paired; {BOOT}"}}


def _pct(fig: dict) -> str:
    if fig.get("value") is None:
        return f"n/a (n={fig.get('n', 0)})"
    return f"{fig['value']:.2f} [{fig['ci_low']:.2f}, {fig['ci_high']:.2f}] ({fig['count']}/{fig['n']})"


def gold_lines(gold: dict, policy: str, baseline: str) -> list[str]:
    """Lines printed under a gold win rate: gold mean, satisfaction and degenerate rate per side."""
    out = [f"gold score (0 degenerate, 1 + constraints met / constraints; mean, {BOOT}) and constraint "
           f"satisfaction ((prompt, constraint) items, Wilson 95% CI):"]
    for name, side in ((policy, gold["policy"]), (baseline, gold["baseline"])):
        out.append(f"  {name}: gold {side['gold_mean']:.3f} [{side['gold_ci_low']:.3f}, {side['gold_ci_high']:.3f}] "
                   f"(n={side['n']}); satisfied {_pct(side['satisfied'])}; by non-degenerate answers "
                   f"{_pct(side['satisfied_valid'])}; degenerate {_pct(side['degenerate'])}")
    d = gold["diff"]
    out.append(f"  difference {policy} - {baseline}: {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
               f"(n={d['n']}, paired)")
    if gold.get("n_unknown_prompts"):
        out.append(f"  {gold['n_unknown_prompts']} prompts are not in the gold task: left out of these figures")
    return out


def print_gold(results: Sequence[dict]) -> None:
    """The gold lines of every win-rate result that carries `gold` (a gold-judged evaluation)."""
    for r in results:
        if "gold" in r:
            print("\n".join(gold_lines(r["gold"], r["policy"], r["baseline"])))
