"""Which pair a prompt's k responses become, and how many annotator calls and decided pairs a step
spends: the part of a step source that the equal-budget rule (docs/study.md) and best-of-k share.

k responses per prompt are compared on all k(k-1)/2 pairs (i < j, response i shown as A). They are
ranked by Copeland score (a win 1, a tie or unparsed verdict 1/2) and the training pair is best vs
worst; it is DECIDED only where best strictly beats worst on their own verdict (a non-transitive
cycle or an all-tie prompt gives no preference). For k = 2 this is the one pair as judged: the
Judgement is returned untouched, so the default reproduces one-pair-per-prompt OAIF exactly. A
pointwise score judge compares by score, so Copeland's best/worst are its argmax/argmin.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from ..records import Judgement


def all_pairs(k: int) -> list[tuple[int, int]]:
    """The index pairs (i, j), i < j, asked for k responses, in the order they are asked."""
    if k < 2:
        raise ValueError(f"oaif.k: at least 2 responses per prompt are needed for a pair, got {k}")
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def calls_per_prompt(k: int) -> int:
    return k * (k - 1) // 2


def copeland(k: int, verdicts: Sequence[str]) -> list[float]:
    """Copeland scores of k responses from the verdicts on `all_pairs(k)` (A: i won, B: j won)."""
    pairs = all_pairs(k)
    if len(verdicts) != len(pairs):
        raise ValueError(f"{len(verdicts)} verdicts for k={k}: expected {len(pairs)}")
    score = [0.0] * k
    for (i, j), v in zip(pairs, verdicts):
        if v == "A":
            score[i] += 1
        elif v == "B":
            score[j] += 1
        else:  # tie or unparsed: no preference, half a win each
            score[i] += 0.5
            score[j] += 0.5
    return score


def best_vs_worst(k: int, judgements: Sequence[Judgement]) -> tuple[int, int, Judgement]:
    """(best, worst, the Judgement of their pair) for one prompt's judgements on `all_pairs(k)`.
    best = the first response of highest Copeland score, worst = the last of lowest (a fixed rule,
    so an all-tie prompt gives (0, k-1)). The Judgement is that pair's own, untouched when best beats
    worst on it; otherwise (tie, unparsed, or worst won it: a cycle) it becomes a tie, i.e. skipped."""
    score = copeland(k, [j.verdict for j in judgements])
    best = max(range(k), key=lambda i: (score[i], -i))
    worst = min(range(k), key=lambda i: (score[i], -i))
    i, j = min(best, worst), max(best, worst)
    judged = judgements[all_pairs(k).index((i, j))]
    wins = "A" if best == i else "B"
    if judged.verdict == wins or (k == 2 and judged.verdict not in ("A", "B")):
        return best, worst, judged
    return best, worst, dataclasses.replace(judged, verdict="tie")


def select(k: int, judgements: Sequence[Judgement], samples: Sequence[Sequence]) -> tuple[list[Judgement], list[tuple]]:
    """Per prompt (judgements grouped by `calls_per_prompt(k)`, in prompt order; `samples`: the k
    responses of each prompt): the best-vs-worst Judgement and its (response A, response B) samples
    as that Judgement shows them (A = the lower index)."""
    per = calls_per_prompt(k)
    if len(judgements) != per * len(samples):
        raise ValueError(f"{len(judgements)} judgements for {len(samples)} prompts x {per} pairs")
    out_j, out_s = [], []
    for p, resp in enumerate(samples):
        best, worst, judged = best_vs_worst(k, judgements[p * per:(p + 1) * per])
        i, j = min(best, worst), max(best, worst)
        out_j.append(judged)
        out_s.append((resp[i], resp[j]))
    return out_j, out_s


def max_calls(cfg) -> int:
    """The annotator calls one step may spend (oaif.max_calls_per_step; 0: 4 x a full batch's)."""
    return cfg.oaif.max_calls_per_step or 4 * cfg.train.batch_size * calls_per_prompt(cfg.oaif.k)


def check_config(cfg, bad) -> None:
    """The k / equal-budget fields of `oaif:` (shared by the OAIF and offline sources)."""
    if cfg.oaif.k < 2:
        bad("oaif.k", f"at least 2 responses per prompt are needed for a pair, got {cfg.oaif.k}")
    if cfg.oaif.max_calls_per_step < 0:
        bad("oaif.max_calls_per_step", f"must be >= 0 (0: 4 x train.batch_size x k(k-1)/2), got {cfg.oaif.max_calls_per_step}")
    if cfg.oaif.tie_policy == "soft" and (cfg.oaif.k > 2 or cfg.oaif.equal_budget):
        bad("oaif.tie_policy", "soft keeps ties as training pairs, which neither best-of-k (oaif.k > 2) nor "
            "the decided-pair budget (oaif.equal_budget) counts: use tie_policy skip, or k 2 without the budget")
    if cfg.oaif.equal_budget and max_calls(cfg) < cfg.train.batch_size * calls_per_prompt(cfg.oaif.k):
        bad("oaif.max_calls_per_step", f"{cfg.oaif.max_calls_per_step} calls cannot label even train.batch_size="
            f"{cfg.train.batch_size} prompts x {calls_per_prompt(cfg.oaif.k)} pairs")


def pool_target(cfg) -> int:
    """Decided pairs an offline run needs to train train.steps x train.batch_size without cycling."""
    return cfg.train.steps * cfg.train.batch_size


def check_pool(n: int, cfg, where: str) -> None:
    """Under oaif.equal_budget an offline run trains on each decided pair once: refuse a short pool."""
    need = pool_target(cfg)
    if cfg.oaif.equal_budget and n < need:
        raise ValueError(f"{where}: {n} decided pairs, but oaif.equal_budget needs train.steps x train.batch_size "
                         f"= {need} without cycling; raise oaif.max_calls_per_step (the pool may spend train.steps x "
                         f"that many calls), or lower train.steps / train.batch_size")
