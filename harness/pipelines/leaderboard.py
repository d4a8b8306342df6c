"""The leaderboard-run pipeline (`harness leaderboard-run CONFIG`, harness/commands/leaderboard_run.py): judge a benchmark's model answers pairwise and
fit a Bradley-Terry leaderboard (`make leaderboard` runs configs/leaderboard_mtbench.yaml).

1. Build unlabelled battles from a FastChat-style answer folder (harness/benchmark_answers.py: which questions,
   which models, how many model pairs per question, seeded) and store the pairs.
2. Judge them with the configured judge through `judges.label_and_store` (tqdm progress; stored in
   chunks, so an interrupted run resumes: labels already stored come from the content-hash cache).
3. Bradley-Terry ratings with bootstrap CIs and the win-rate matrix (harness/evaluation/bradley_terry.py)
   over one battle per (question, model pair): the judge's verdict combined over the orders it asked.
   Battles are built from the judgements, not from the store's pair rows, because two models can
   write identical answers (MT-Bench's short answers): the store keeps one pair row per text, while
   each battle keeps its own two models.
4. The judge's position bias on these pairs: P(prefers the response shown first) over its decisive
   per-order labels (with a bootstrap CI over labels), position consistency (same verdict in both
   orders), and P(prefers the longer response).
5. Rank correlation (Spearman, Kendall) of the ratings with published scores (`compare_with`) over
   the models both have.
Stores a `leaderboard` result (the dashboard's Leaderboard page) and prints the table and the cost.
"""
from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from judges.llm import MODES

from ..config import ConfigError, JudgeRef, _build, apply_overrides, read_yaml_mapping
from ..benchmark_answers import PairSelection, build_pairs, validate_selection
from ..store import Store


@dataclass
class JudgeSettings:
    name: str = "smollm2-logprob"  # judges/configs/<name>.yaml, a YAML path, rule:<rule>, rm:<run-id>
    both_orders: bool | None = True  # None: the judge's own default
    mode: str | None = None  # LLM judges: logprob | generate (None: the config's own)
    instruction: str | None = None
    rubric: str | None = None  # LLM judges: replaces the default rubric in the prompt
    max_response_tokens: int | None = None  # LLM judge configs: each answer is cut to this in the prompt
    max_prompt_tokens: int | None = None
    batch_size: int | None = None
    device: str | None = None


@dataclass
class Comparison:
    name: str = ""
    path: str = ""  # CSV with a header; lines starting with '#' are skipped
    model_column: str = "model"
    score_column: str = "score"
    rename: list[str] = field(default_factory=list)  # "our-model=their-model" where the names differ


@dataclass
class LeaderboardSettings:
    n_boot: int = 1000
    seed: int = 0
    anchor: str | None = None  # MODEL=RATING


@dataclass
class LeaderboardRunConfig:
    name: str = "mtbench"
    source: PairSelection = field(default_factory=PairSelection)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    leaderboard: LeaderboardSettings = field(default_factory=LeaderboardSettings)
    compare_with: list[Comparison] = field(default_factory=list)
    chunk_size: int = 32  # pairs judged and stored per transaction (what an interruption can lose)
    use_cache: bool = True  # False: ask the judge again even where its answer is stored


LLM_SETTINGS = ("max_response_tokens", "max_prompt_tokens", "batch_size")


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> LeaderboardRunConfig:
    """YAML (safe loader) + dotted overrides -> a validated LeaderboardRunConfig; unknown keys fail."""
    path = Path(path)
    where = f"{path}:"
    data = read_yaml_mapping(path)
    apply_overrides(data, overrides or [])
    cfg = _build(LeaderboardRunConfig, data, where)
    validate_selection(cfg.source, f"{path}: source")
    j = cfg.judge
    if j.mode is not None and j.mode not in MODES:
        raise ConfigError(f"{path}: judge.mode: {j.mode!r} is not one of {', '.join(MODES)}")
    for key in LLM_SETTINGS:
        v = getattr(j, key)
        if v is not None and v < 1:
            raise ConfigError(f"{path}: judge.{key}: must be >= 1, got {v}")
    if cfg.chunk_size < 1:
        raise ConfigError(f"{path}: chunk_size: must be >= 1")
    if cfg.leaderboard.n_boot < 0:
        raise ConfigError(f"{path}: leaderboard.n_boot: must be >= 0")
    parse_anchor(cfg.leaderboard.anchor, f"{path}: leaderboard.anchor")
    for i, c in enumerate(cfg.compare_with):
        if not c.path:
            raise ConfigError(f"{path}: compare_with[{i}].path: missing")
        for r in c.rename:
            if "=" not in r or not all(r.split("=", 1)):
                raise ConfigError(f"{path}: compare_with[{i}].rename: {r!r} is not 'our-model=their-model'")
    return cfg


def parse_anchor(text: str | None, where: str = "leaderboard.anchor") -> tuple[str, float] | None:
    if not text:
        return None
    model, sep, rating = text.rpartition("=")
    try:
        value = float(rating)
    except ValueError:
        value = None
    if not sep or not model or value is None:
        raise ConfigError(f"{where}: {text!r}: expected MODEL=RATING")
    return model, value


def load_configured_judge(js: JudgeSettings, home):
    """The judge named in the config. Answer/prompt lengths, rubric and batch size are settings of an
    LLM judge config: they are applied to its YAML before the judge is built, so they enter its version
    hash (a different truncation is a different annotator, never served from the other's cache). For
    other judges (rule:, rm:, reference similarity) they do not apply: ignored, with a note on stderr."""
    import sys

    from judges import load_judge
    from judges.registry import config_path, read_judge_config

    ref = JudgeRef(name=js.name, instruction=js.instruction, mode=js.mode, both_orders=js.both_orders)
    settings = {k: getattr(js, k) for k in LLM_SETTINGS if getattr(js, k) is not None}
    if js.rubric is not None:
        settings["rubric"] = js.rubric
    kind = "llm"
    data, path = None, None
    if js.name.startswith(("rule:", "rm:")):
        kind = js.name.split(":", 1)[0]
    elif settings:
        path = config_path(js.name)
        data = read_judge_config(path)
        kind = data.pop("kind", "llm")
    if settings and kind != "llm":
        print(f"note: judge.{', judge.'.join(settings)} only apply to LLM judges; ignored for {js.name} ({kind})",
              file=sys.stderr)
        settings = {}
    if not settings:
        return load_judge(ref, home=home, device=js.device)
    from judges.llm import build_llm_judge

    return build_llm_judge(path.stem, {**data, **settings}, path, ref=ref, home=home, device=js.device)


# -- statistics on the judgements ------------------------------------------------------------------
def battles_from_judgements(judgements) -> pd.DataFrame:
    """One battle per judged pair record: model_a, model_b, winner (A/B/tie; unparsed dropped later)."""
    return pd.DataFrame([{"question_id": j.pair.meta.get("question_id"), "subset": j.pair.subset,
                          "model_a": j.pair.policy_a, "model_b": j.pair.policy_b, "winner": j.verdict}
                         for j in judgements], columns=["question_id", "subset", "model_a", "model_b", "winner"])


def position_bias(judgements, n_boot: int = 1000, seed: int = 0) -> dict:
    """Over the distinct pairs judged (each text once), from `harness.evaluation.bias`:
    p_first: share of decisive (A/B) per-order labels that prefer the response shown first (bootstrap CI);
    position_consistency: share of pairs asked in both orders whose two verdicts agree (an unparsed
    order counts as a disagreement); p_longer: share of decisive combined verdicts that prefer the
    longer response (in characters)."""
    from harness.evaluation.bias import judgement_bias

    distinct = list({j.pair.pair_id: j for j in judgements}.values())
    b = judgement_bias(distinct, unparsed="inconsistent", n_boot=n_boot, seed=seed)
    first, cons, longer = b["p_first"], b["position_consistency"], b["p_longer"]
    return {"n_pairs": len(distinct), "n_decisive_labels": first["n"],
            "p_first": first["value"], "p_first_ci_low": first["ci_low"], "p_first_ci_high": first["ci_high"],
            "n_both_orders": cons["n"], "position_consistency": cons["value"],
            "p_longer": longer["value"], "n_longer": longer["n"],
            "unparsed": sum(j.verdict == "unparsed" for j in distinct)}


def read_scores(c: Comparison) -> dict[str, float]:
    """{their model name: score} from a CSV; errors name the file, the line and the column."""
    path = Path(c.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (compare_with)")
    with open(path, encoding="utf-8") as f:
        kept = [(n, line) for n, line in enumerate(f, 1) if not line.startswith("#")]
    reader = csv.DictReader(line for _, line in kept)
    for col in (c.model_column, c.score_column):
        if col not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no column {col!r} (columns: {reader.fieldnames})")
    theirs = {}
    for row in reader:
        try:
            theirs[row[c.model_column]] = float(row[c.score_column])
        except (TypeError, ValueError):
            line = kept[reader.line_num - 1][0]
            raise ValueError(f"{path}: line {line}: field {c.score_column!r}: not a number: "
                             f"{row[c.score_column]!r}") from None
    return theirs


def rank_correlation(ratings: pd.DataFrame, c: Comparison) -> dict:
    from scipy.stats import kendalltau, spearmanr

    scores = read_scores(c)
    rename = dict(r.split("=", 1) for r in c.rename)
    common = [m for m in ratings["model"] if rename.get(m, m) in scores]
    ours = ratings.set_index("model").loc[common, "rating"].to_numpy(float)
    theirs = np.array([scores[rename.get(m, m)] for m in common])
    out = {"name": c.name or c.path, "path": c.path, "n_models": len(common), "spearman": None,
           "spearman_p": None, "kendall": None, "kendall_p": None,
           "models": [{"model": m, "as": rename.get(m, m), "rating": float(r), "reference_score": float(s)}
                      for m, r, s in zip(common, ours, theirs)]}
    if len(common) >= 3:
        rho, p = spearmanr(ours, theirs)
        tau, pt = kendalltau(ours, theirs)
        out.update(spearman=float(rho), spearman_p=float(p), kendall=float(tau), kendall_p=float(pt))
    return out


# -- the pipeline ------------------------------------------------------------------------------------
def run_leaderboard(cfg: LeaderboardRunConfig, store: Store, config_name: str = "the config") -> tuple[dict, int]:
    """Build the battles, judge them (resumable), fit Bradley-Terry, measure the judge's bias and
    validity, store a `leaderboard` result: (result, result_id)."""
    from ..evaluation.bradley_terry import battle_counts, bradley_terry, win_rate_matrix
    from ..evaluation.frames import matrix_to_dict, to_records
    from ..evaluation.validity import card_line, judge_card
    from judges import label_and_store

    t0 = time.perf_counter()
    pairs = build_pairs(cfg.source, progress=True)
    if not pairs:
        raise ValueError(f"{config_name}: source selects no questions")
    judge = load_configured_judge(cfg.judge, store.home)
    t_judge = time.perf_counter()
    distinct = list({p.pair_id: p for p in pairs}.values())
    store.add_pairs(distinct)
    judgements = label_and_store(judge, pairs, store, use_cache=cfg.use_cache, batch_size=cfg.chunk_size,
                                 progress=True)
    judge_s = time.perf_counter() - t_judge
    seen, fresh, cached = set(), 0, 0
    for j in judgements:  # count each asked label once, though duplicate texts share it
        for lab in j.labels:
            if (lab.pair_id, lab.shown_order) in seen:
                continue
            seen.add((lab.pair_id, lab.shown_order))
            cached += lab.cached
            fresh += not lab.cached
    battles = battles_from_judgements(judgements)
    lb = cfg.leaderboard
    ratings = bradley_terry(battles, n_boot=lb.n_boot, seed=lb.seed, anchor=parse_anchor(lb.anchor))
    if ratings.empty:
        raise ValueError(f"judge {judge.annotator.id} gave no decisive verdict on {len(pairs)} pairs")
    bias = position_bias(judgements, lb.n_boot, lb.seed)
    correlations = [rank_correlation(ratings, c) for c in cfg.compare_with]
    card = judge_card(store, judge, store.home)  # agreement with humans beside the ratings it produced
    wall_s = time.perf_counter() - t0
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    cost = {"pairs": len(pairs), "distinct_texts": len(distinct), "questions": int(battles["question_id"].nunique()),
            "models": len(models), "judge_calls": fresh, "cached_labels": cached,
            "judge_s": round(judge_s, 2), "wall_s": round(wall_s, 2),
            "s_per_call": round(judge_s / fresh, 3) if fresh else None}
    ann = judge.annotator
    result = {"dataset": cfg.source.format, "judges": [ann.id], "judge_version": ann.version,
              "config": {"name": cfg.name, "source": asdict(cfg.source), "judge": asdict(cfg.judge)},
              "n_battles": int(battles["winner"].isin(("A", "B", "tie")).sum()), "n_boot": lb.n_boot,
              "anchor": lb.anchor, "ratings": to_records(ratings),
              "win_rate_matrix": matrix_to_dict(win_rate_matrix(battles)),
              "battle_counts": matrix_to_dict(battle_counts(battles)),
              "position_bias": bias, "correlations": correlations, "cost": cost,
              "judge_card_result_id": card["result_id"], "judge_card_line": card_line(card)}
    result_id = store.add_result("leaderboard", result, name=f"leaderboard-run:{cfg.name}", task=cfg.source.format,
                                 judge=ann.id)
    return result, result_id


__all__ = ["Comparison", "JudgeSettings", "LeaderboardRunConfig", "LeaderboardSettings", "battles_from_judgements",
           "load_configured_judge", "load_run_config", "parse_anchor", "position_bias", "rank_correlation",
           "read_scores", "run_leaderboard"]
