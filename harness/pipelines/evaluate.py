"""Win rates of policies: each side answers a task's evaluation prompts once, a judge sees every pair
in both orders, the summary (win rate, CI, length-controlled win rate, judge validity card) is a
stored result. The library behind `harness eval` (harness/commands/eval.py), the demo and the studies.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import ConfigError, JudgeRef, ModelConfig, SamplingConfig
from ..data import json_lines
from ..evaluation import gold_eval
from ..evaluation.bias import judgement_bias
from ..evaluation.verdicts import CI_METHOD
from ..records import prompt_text
from ..store import Store, StoreError


POLICY_ALGOS = ("sft", "dpo", "oaif", "rlhf")


@dataclass
class PolicySpec:
    kind: str  # run | model | outputs | reference
    name: str  # how results and pairs name it
    model_cfg: ModelConfig | None = None
    init_from: str | None = None  # checkpoint dir with the weights (runs, initial policies)
    path: Path | None = None  # outputs file
    run_id: str | None = None
    task: str | None = None  # a run's task


def _model_cfg(d: dict) -> ModelConfig:
    from ..config import _build

    return _build(ModelConfig, d, "run config: model.")


def resolve_policy(spec: str, store: Store, policy: PolicySpec | None = None) -> PolicySpec:
    """What --policy / --baseline names. `policy` (the resolved --policy) is needed for `initial`."""
    if spec == "reference":
        return PolicySpec("reference", "reference")
    if spec == "initial":
        if policy is None or policy.kind != "run":
            raise ConfigError("--baseline initial: needs --policy to be a run id (its starting model is the baseline)")
        cfg = store.get_run(policy.run_id)["config"]
        model_cfg = _model_cfg(cfg.get("model", {}))
        init = cfg.get("init_from")
        if init and not Path(init).exists():  # a run id: its newest checkpoint
            ckpt = store.latest_checkpoint(init)
            if ckpt is None:
                raise StoreError(f"run {policy.run_id}: init_from {init!r} has no checkpoint")
            init = str(ckpt)
        name = model_cfg.name if not init else f"{model_cfg.name}+{Path(init).name}"
        return PolicySpec("model", f"initial:{name}", model_cfg, init_from=init, task=cfg.get("data", {}).get("task"))
    path = Path(spec).expanduser()
    if spec.endswith((".jsonl", ".json")):
        if not path.exists():
            raise FileNotFoundError(f"{path}: outputs file not found")
        return PolicySpec("outputs", f"outputs:{path.stem}", path=path)
    if store.has_run(spec):
        run = store.get_run(spec)
        ckpt = store.latest_checkpoint(spec)
        if ckpt is None:
            raise StoreError(f"run {spec}: has no complete checkpoint to evaluate")
        model_cfg = _model_cfg(run["config"].get("model", {}))
        return PolicySpec("run", spec, model_cfg, init_from=str(ckpt), run_id=spec,
                          task=run["config"].get("data", {}).get("task"))
    return PolicySpec("model", spec, ModelConfig(name=spec))


def read_outputs(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """An outputs file -> ({id: response}, {prompt: response}). Lines: {prompt, response} (or
    alpaca_eval's {instruction, output}), optionally with the task prompt's `id`."""
    by_id, by_prompt = {}, {}
    for n, row in json_lines(Path(path)):
        response = row.get("response", row.get("output"))
        prompt = row.get("prompt", row.get("instruction"))
        if not isinstance(response, str):
            raise ValueError(f"{path}: line {n}: field 'response' (or 'output') missing or not text")
        if prompt is None and row.get("id") is None:
            raise ValueError(f"{path}: line {n}: needs 'prompt' (or 'instruction') or 'id'")
        if row.get("id") is not None:
            by_id[str(row["id"])] = response
        if prompt is not None:
            by_prompt[prompt_text(prompt)] = response
    return by_id, by_prompt


def policy_outputs(spec: PolicySpec, rows: Sequence[dict], sampling: SamplingConfig, data_cfg, home=None,
                   system: str | None = None) -> list[str]:
    """One response per prompt row ({prompt, reference?, id?}) from the policy `spec`."""
    if spec.kind == "reference":
        missing = [r.get("id", i) for i, r in enumerate(rows) if not r.get("reference")]
        if missing:
            raise ValueError(f"baseline reference: the task has no reference answer for prompts {missing[:5]}")
        return [r["reference"] for r in rows]
    if spec.kind == "outputs":
        by_id, by_prompt = read_outputs(spec.path)
        out = []
        for r in rows:
            got = by_id.get(str(r.get("id"))) if r.get("id") is not None else None
            got = got if got is not None else by_prompt.get(prompt_text(r["prompt"]))
            if got is None:
                raise ValueError(f"{spec.path}: no output for prompt {r.get('id') or prompt_text(r['prompt'])[:60]!r}")
            out.append(got)
        return out
    from ..models import load_model
    from ..sampling import make_sampler

    model, tok = load_model(spec.model_cfg, home, for_training=False, init_from=spec.init_from, role="generate")
    try:
        sampler = make_sampler(sampling, model, tok, data_cfg, system=system)
        samples = sampler.sample([r["prompt"] for r in rows], 1)
    finally:
        del model
        gc.collect()
    return [s[0].text for s in samples]


def judge_outputs(store: Store, judge, rows: Sequence[dict], policy_out: Sequence[str], baseline_out: Sequence[str],
                  policy_name: str, baseline_name: str, task: str, run_id: str | None = None,
                  orders: Sequence[str] = ("AB", "BA"), n_boot: int = 1000, seed: int = 0) -> dict:
    """Judge policy (A) vs baseline (B) on every prompt in both orders; store; return the summary.

    A prompt whose two answers are the same text is scored a tie without asking the judge (any
    verdict on it could only reflect the order shown); `n_identical` counts them."""
    from judges import label_and_store

    from ..evaluation.winrate import length_controlled_win_rate, preference_scores, win_rate
    from ..records import Pair

    if not (len(rows) == len(policy_out) == len(baseline_out)):
        raise ValueError(f"{len(rows)} prompts but {len(policy_out)} policy and {len(baseline_out)} baseline answers")
    pairs = [Pair(prompt=prompt_text(r["prompt"]), response_a=a, response_b=b, source="eval", dataset=task,
                  record_id=r.get("id"), run_id=run_id, policy_a=policy_name, policy_b=baseline_name,
                  reference=r.get("reference")) for r, a, b in zip(rows, policy_out, baseline_out)]
    same = [a == b for a, b in zip(policy_out, baseline_out)]
    judged = [p for p, s in zip(pairs, same) if not s]
    judgements = label_and_store(judge, judged, store, run_id=run_id, step=None, orders=orders,
                                 progress=len(judged) > 8)
    it = iter(judgements)
    verdicts = ["tie" if s else next(it).verdict for s in same]
    scores = preference_scores(verdicts=verdicts, policy_is="A")
    wr = win_rate(scores, n_boot=n_boot, seed=seed)
    lc = length_controlled_win_rate(scores, [len(a) for a in policy_out], [len(b) for b in baseline_out],
                                    n_boot=min(n_boot, 200), seed=seed)
    bias = judgement_bias(judgements, unparsed="inconsistent")
    nan = float("nan")
    return {
        "policy": policy_name, "baseline": baseline_name, "judge": judge.annotator.id,
        "judge_version": judge.annotator.version, "task": task, **wr, "n_identical": int(sum(same)),
        "ci_method": CI_METHOD,
        "lc_win_rate": lc["lc_win_rate"], "lc_ci_low": lc["ci_low"], "lc_ci_high": lc["ci_high"],
        # the LC fit says when it is not identified (one-signed length differences, small n)
        "lc_identified": bool(lc.get("identified", True)), "lc_reason": lc.get("reason"),
        "length_coef": lc["length_coef"],
        "mean_chars_policy": sum(map(len, policy_out)) / max(len(policy_out), 1),
        "mean_chars_baseline": sum(map(len, baseline_out)) / max(len(baseline_out), 1),
        "p_first": nan if bias["p_first"]["value"] is None else bias["p_first"]["value"],
        "n_first": bias["p_first"]["n"],
        "consistency": nan if bias["position_consistency"]["value"] is None else bias["position_consistency"]["value"],
        "n_both": bias["position_consistency"]["n"],
        "pair_ids": [p.pair_id for p in pairs],
        "verdicts": verdicts,  # per prompt, A = the policy: what another judge's verdicts are compared with
    }


def _answers(spec: PolicySpec, rows, sampling: SamplingConfig, data_cfg, home, system, seed: int,
             cache: dict | None, split: str) -> list[str]:
    """`policy_outputs`, sampled once per (policy, prompts, sampling, seed) when a `cache` dict is given:
    a study or the demo compares one policy with several others on the same prompts."""
    import torch

    key = (spec.kind, spec.name, spec.init_from, str(spec.path), data_cfg.task, split, len(rows),
           sampling.temperature, sampling.top_p, sampling.max_new_tokens, seed)
    if cache is not None and key in cache:
        return list(cache[key])
    torch.manual_seed(seed)
    out = policy_outputs(spec, rows, sampling, data_cfg, home, system)
    if cache is not None:
        cache[key] = list(out)
    return out


def _prompts(task_name: str, split: str, n: int | None):
    from ..tasks import load_task

    t = load_task(task_name)
    rows = t.prompts(split)
    if n is not None:
        rows = rows[:n]
    if not rows:
        raise ValueError(f"task {task_name}: no {split} prompts")
    return t, rows


def _card(store: Store, judge, home) -> tuple[dict, str]:
    """The judge's validity card (computed once per annotator version, then read back) and its line."""
    from ..evaluation.validity import card_line, judge_card

    own = gold_eval.task_card(judge)  # gold scorer / simulated rater: PandaLM/LLMBar pairs are not its prompts
    if own is not None:
        return own
    card = judge_card(store, judge, home)
    return card, card_line(card)


def evaluate(store: Store, policy: str, baseline: str = "initial", judge: str | JudgeRef = "smollm2-logprob",
             task: str | None = None, split: str = "eval", n: int | None = None, sampling: SamplingConfig | None = None,
             home=None, name: str | None = None, orders: Sequence[str] = ("AB", "BA"), seed: int = 0,
             baseline_outputs: Sequence[str] | None = None, save: bool = True, cache: dict | None = None,
             validity: bool = True) -> dict:
    """Sample (or read) both sides on the task's prompts, judge, store a `winrate` result, return it.
    `baseline_outputs` reuses answers already made (a study compares many policies to one baseline);
    `cache` (a dict the caller keeps) does the same for both sides and any number of calls. With
    `validity`, the result carries the judge's validity card (`judge_card`, `judge_card_line`)."""
    from judges.registry import load_judge

    from ..config import DataConfig
    from ..models import pick_device

    pol = resolve_policy(policy, store)
    base = resolve_policy(baseline, store, pol)
    task_name = task or pol.task or base.task or "quickstart"
    t, rows = _prompts(task_name, split, n)
    # before any sampling: `--judge gold` on a task without constraints fails at once
    ref = gold_eval.resolve_ref(judge if isinstance(judge, JudgeRef) else JudgeRef(name=judge), task_name)
    sampling = sampling or SamplingConfig(temperature=0.0, max_new_tokens=64)
    data_cfg = DataConfig(task=task_name)
    pol_out = _answers(pol, rows, sampling, data_cfg, home, t.spec.system, seed, cache, split)
    base_out = list(baseline_outputs) if baseline_outputs is not None else \
        _answers(base, rows, sampling, data_cfg, home, t.spec.system, seed, cache, split)
    j = load_judge(ref, home, str(pick_device("auto")), rubric=t.rubric)
    result = judge_outputs(store, j, rows, pol_out, base_out, pol.name, base.name, task_name, pol.run_id, orders,
                           seed=seed)
    if gold_eval.is_gold(j):
        result["gold"] = gold_eval.gold_figures(j, rows, pol_out, base_out, seed=seed)
    result.update(split=split, sampling={"temperature": sampling.temperature, "top_p": sampling.top_p,
                                         "max_new_tokens": sampling.max_new_tokens}, instruction=ref.instruction)
    if validity:
        result["judge_card"], result["judge_card_line"] = _card(store, j, home)
    result["baseline_outputs"] = base_out
    if save:
        saved = {k: v for k, v in result.items() if k != "baseline_outputs"}
        result["result_id"] = store.add_result("winrate", saved, name=name or f"{pol.name} vs {base.name}",
                                               run_id=pol.run_id, task=task_name, judge=j.annotator.id,
                                               baseline=base.name)
    return result


def head_to_head(store: Store, run_ids: Sequence[str], judge: str | JudgeRef = "smollm2-logprob",
                 task: str | None = None, split: str = "eval", n: int | None = None,
                 sampling: SamplingConfig | None = None, home=None, orders: Sequence[str] = ("AB", "BA"),
                 seed: int = 0, cache: dict | None = None, name: str | None = None, save: bool = True,
                 validity: bool = True) -> dict:
    """Every pair (i < j) of the policies `run_ids` on the same prompts, both orders, with CIs.

    Each policy answers once (`cache`, shared with `evaluate`), the judge is loaded once. Returns
    {task, judge, policies, rows: [winrate result of policy i (A) vs policy j (B), with
    `verdict`]}; stored as one `head_to_head` result. Identical answers are ties the judge never
    sees (`n_identical` per row)."""
    from judges.registry import load_judge

    from ..config import DataConfig
    from ..evaluation.verdicts import verdict_line
    from ..models import pick_device

    run_ids = list(dict.fromkeys(run_ids))
    if len(run_ids) < 2:
        raise ConfigError(f"head-to-head: needs at least two different policies, got {run_ids}")
    specs = [resolve_policy(r, store) for r in run_ids]
    tasks = {s.task for s in specs if s.task}
    if task is None and len(tasks) > 1:
        raise ConfigError(f"head-to-head: the policies were trained on different tasks {sorted(tasks)}; give --task")
    task_name = task or (tasks.pop() if tasks else "quickstart")
    t, rows = _prompts(task_name, split, n)
    ref = gold_eval.resolve_ref(judge if isinstance(judge, JudgeRef) else JudgeRef(name=judge), task_name)
    sampling = sampling or SamplingConfig(temperature=0.0, max_new_tokens=64)
    data_cfg = DataConfig(task=task_name)
    cache = {} if cache is None else cache
    outs = [_answers(s, rows, sampling, data_cfg, home, t.spec.system, seed, cache, split) for s in specs]
    j = load_judge(ref, home, str(pick_device("auto")), rubric=t.rubric)
    table = []
    for a in range(len(specs)):
        for b in range(a + 1, len(specs)):
            res = judge_outputs(store, j, rows, outs[a], outs[b], specs[a].name, specs[b].name, task_name,
                                None, orders, seed=seed)
            res["verdict"] = f"{specs[a].name}: " + verdict_line(res, specs[b].name)
            if gold_eval.is_gold(j):
                res["gold"] = gold_eval.gold_figures(j, rows, outs[a], outs[b], seed=seed)
            table.append(res)
    result = {"task": task_name, "split": split, "judge": j.annotator.id, "judge_version": j.annotator.version,
              "instruction": ref.instruction, "policies": [s.name for s in specs], "n_prompts": len(rows),
              "ci_method": CI_METHOD, "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p,
                                                   "max_new_tokens": sampling.max_new_tokens},
              "rows": table}
    if validity:
        result["judge_card"], result["judge_card_line"] = _card(store, j, home)
    if save:
        result["result_id"] = store.add_result("head_to_head", result,
                                               name=name or "head-to-head: " + ", ".join(result["policies"]),
                                               task=task_name, judge=j.annotator.id, baseline="each other")
    return result


def group_policies(store: Store, group: str) -> list[str]:
    """The finished policy runs of a group (what `--group` compares): algos that make a policy."""
    runs = [r for r in store.list_runs(group=group)
            if r["algo"] in POLICY_ALGOS and r["status"] == "done" and store.latest_checkpoint(r["run_id"])]
    if len(runs) < 2:
        raise ConfigError(f"--group {group}: needs at least two finished policy runs ({', '.join(POLICY_ALGOS)}), "
                          f"found {len(runs)}")
    return [r["run_id"] for r in runs]
