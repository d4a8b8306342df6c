"""The annotator-controllability study (the OAIF paper, Guo et al. 2024, §4.6): the work behind
`harness study controllability` (harness/commands/study.py is its CLI; the module docs there say
what it measures). Importable: the CLI, the dashboards and the tests call `run_study` the same way.

Each arm is a normal OAIF run trained through pipelines.train.execute (same config and seed, one
annotator instruction or annotator per arm); fixed-pair controllability is measured before any
training by harness/evaluation/controllability.py.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

from ..config import JudgeRef, SamplingConfig, load_config
from ..store import PairFilter, Store, check_run_id

NO_INSTRUCTION = ("", "default", "none")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32] or "default"


def variants(cfg, instructions: list[str] | None, judges: list[str] | None) -> list[dict]:
    """One dict per arm: {label, slug, overrides, judge, instruction}."""
    if bool(instructions) == bool(judges):
        raise ValueError("study controllability: give --instructions or --judges (one of them)")
    out = []
    if instructions:
        if cfg.judge.name.startswith(("rule:", "rm:")) and not cfg.judge.name.startswith("rule:instructed"):
            raise ValueError(f"study controllability: judge {cfg.judge.name} takes no instruction; "
                             "use an LLM judge in the config, or --judges")
        for text in instructions:
            instr = None if text.strip().lower() in NO_INSTRUCTION else text
            out.append({"label": instr or "(no instruction)", "slug": _slug(instr or "default"),
                        "judge": cfg.judge.name, "instruction": instr,
                        "overrides": [f"judge.instruction={json.dumps(instr) if instr else 'null'}"]})
    else:
        for name in judges:
            out.append({"label": name, "slug": _slug(name), "judge": name, "instruction": None,
                        "overrides": [f"judge.name={json.dumps(name)}", "judge.instruction=null"]})
    slugs = [v["slug"] for v in out]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"study controllability: arms must differ ({slugs})")
    return out


def train_arm(store: Store, config: str, overrides: list[str], arm: dict, run_id: str, group: str,
              quiet: bool = True) -> str:
    """Train one arm through the train pipeline (so it is exactly a normal OAIF run), or reuse/resume it."""
    from .train import execute

    existing = store.has_run(run_id)
    if existing and store.get_run(run_id)["status"] == "done":
        return run_id
    extra = ["resume=true"] if existing else []
    cfg = load_config(config, list(overrides) + arm["overrides"] + extra)
    check_run_id(run_id)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        execute(cfg, store, run_id=run_id, group=group)
    return run_id


def per_step(store: Store, run_id: str) -> list[dict]:
    df = store.metrics([run_id])
    cols = {"sample/len_mean": "len_mean", "sample/words_mean": "words_mean",
            "judge/prefers_shorter": "prefers_shorter", "sample/truncated_rate": "truncated_rate",
            "judge/tie_rate": "tie_rate", "judge/p_first": "p_first", "loss": "loss"}
    rows = []
    for _, r in df.iterrows():
        row = {"step": int(r["step"])}
        for src, dst in cols.items():
            v = r.get(src)
            row[dst] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        rows.append(row)
    return rows


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


HELD_OUT_CANDIDATES = ("minilm-reference", JudgeRef().name)  # in order of preference


def held_out_judge(training_judges, task_has_references: bool, given: str | None = None) -> tuple[str, bool]:
    """(evaluation judge, held_out): `given` if set, else the first candidate that trained no arm.

    A candidate is excluded when an arm trained with the same judge name (any instruction: the same
    model told something else is not an independent grader). minilm-reference needs reference answers."""
    trained = {str(j) for j in training_judges}
    if given:
        return given, given not in trained
    candidates = [c for c in HELD_OUT_CANDIDATES if task_has_references or c != "minilm-reference"]
    for c in candidates:
        if c not in trained:
            return c, True
    raise ValueError(f"study controllability: no held-out evaluation judge: the candidates "
                     f"{', '.join(candidates)} each trained an arm ({', '.join(sorted(trained))}); "
                     "give --eval-judge (it will be reported as not held out if it trained an arm)")


def _has_references(task: str) -> bool:
    from ..tasks import load_task

    rows = load_task(task).prompts("eval")
    return bool(rows) and all(r.get("reference") for r in rows)


# -- fixed-pair controllability, before any training (harness/evaluation/controllability.py) -------
def read_pairs_file(path) -> list:
    """A json-lines file of {prompt, response_a, response_b} (+ optional id, reference) -> Pairs."""
    from ..data import DataError, json_lines
    from ..records import Pair

    out = []
    for n, rec in json_lines(Path(path)):
        for f in ("prompt", "response_a", "response_b"):
            if not isinstance(rec.get(f), str):
                raise DataError(f"{path}: line {n}: field '{f}': expected a string")
        out.append(Pair(prompt=rec["prompt"], response_a=rec["response_a"], response_b=rec["response_b"],
                        source=f"file:{Path(path).name}", dataset=rec.get("dataset"), record_id=rec.get("id"),
                        reference=rec.get("reference")))
    if not out:
        raise DataError(f"{path}: no pairs (expected json lines with prompt, response_a, response_b)")
    return out


def fixed_pairs(store: Store, task: str, pairs_file: str | None = None, n: int | None = None) -> tuple[list, str]:
    """(pairs, where they came from): --pairs FILE; else, for a verifiable task, the policy samples of
    its eval prompts (harness/evaluation/gold_pairs.py, sampled once and stored); else the eval pairs
    in the store (the task's first, else any run's). Pairs with two identical responses are dropped:
    no property tells them apart."""
    from ..tasks import load_task

    if pairs_file:
        pairs, source = read_pairs_file(pairs_file), f"file {pairs_file}"
    elif load_task(task).gold_rows():
        from ..evaluation.gold_pairs import DEFAULT_POLICY, policy_pairs

        pairs = policy_pairs(task, "eval", store, home=store.home, progress=False)
        source = f"{DEFAULT_POLICY} samples of task {task}'s eval prompts (gold_pairs.policy_pairs)"
    else:
        source = f"eval pairs of task {task} in the store"
        df = store.pairs_df(PairFilter(source="eval", dataset=task))
        if df.empty:
            source, df = "eval pairs of any task in the store", store.pairs_df(PairFilter(source="eval"))
        pairs = store.get_pairs(list(dict.fromkeys(df["pair_id"]))) if not df.empty else []
    pairs = list({p.pair_id: p for p in pairs if p.response_a != p.response_b}.values())
    return (pairs[:n] if n else pairs), source


def fixed_plan(cfg, instructions, judges, measure_instructions) -> tuple[list[tuple], list[str]]:
    """[(JudgeRef, [(property, instruction text)])] to measure, and notes on what cannot be measured."""
    from dataclasses import replace

    from ..evaluation.controllability import DEFAULT_PROPERTIES, PROPERTIES, find, resolve

    plan, notes = [], []
    if instructions:
        asks = []
        for text in instructions:
            if text.strip().lower() in NO_INSTRUCTION:
                continue
            name = find(text)
            if name is None:
                notes.append(f"instruction {text!r}: no property test for it, not measured on fixed pairs")
            else:
                asks.append((name, text))  # the very text the training arm gives its annotator
        if asks:
            plan.append((replace(cfg.judge, instruction=None), asks))
    for j in judges or []:
        texts = measure_instructions or list(DEFAULT_PROPERTIES)
        asks = []
        for t in texts:
            name = resolve(t)  # asked for explicitly: an unknown one is an error naming the known ones
            asks.append((name, PROPERTIES[name].instruction if t.strip().casefold() == name.casefold() else t))
        plan.append((replace(cfg.judge, name=j, instruction=None), asks))
    return plan, notes


def judge_for_ref(ref, home, rubric):
    """judge_for(instruction) for `ref`: the annotator told `instruction`; one that takes no
    instruction (rule:shorter, a reward model, ...) is returned as itself: the negative control."""
    from dataclasses import replace

    from judges import load_judge

    from ..config import ConfigError

    base = load_judge(ref, home, rubric=rubric)

    def judge_for(instruction):
        if instruction is None:
            return base
        try:
            return load_judge(replace(ref, instruction=instruction), home, rubric=rubric)
        except ConfigError as e:
            if "takes no instruction" not in str(e):  # the refusal every judge kind words this way
                raise
            return base

    return judge_for


def run_fixed(store: Store, cfg, instructions, judges, measure_instructions, pairs_file, fixed_n,
              group: str) -> tuple[dict | None, list[str]]:
    """Measure and store `controllability_fixed`; (result or None when nothing could be measured, notes)."""
    import time

    from ..evaluation import controllability as C

    plan, notes = fixed_plan(cfg, instructions, judges, measure_instructions)
    if not plan:
        return None, notes + ["fixed-pair controllability: no annotator with a measurable instruction"]
    pairs, source = fixed_pairs(store, cfg.data.task, pairs_file, fixed_n)
    if not pairs:
        return None, notes + ["fixed-pair controllability not measured: no fixed pairs (give --pairs FILE, or "
                              "run `harness eval` first so the store holds eval pairs)"]
    from ..tasks import load_task

    rubric = getattr(load_task(cfg.data.task), "rubric", None)
    rows, timing = [], []
    for ref, asks in plan:
        t = time.perf_counter()
        rows += C.measure(pairs, judge_for_ref(ref, store.home, rubric), asks, store)
        timing.append({"annotator": ref.name, "wall_s": time.perf_counter() - t, "n_labelings": 1 + len(asks)})
    result = {"group": group, "task": cfg.data.task, "pairs_source": source, "n_pairs": len(pairs),
              "estimators": C.note(), "rows": rows, "timing": timing, "notes": notes}
    result["result_id"] = store.add_result(C.KIND, result, name=group, task=cfg.data.task,
                                           judge=", ".join(dict.fromkeys(r["annotator"] for r in rows)))
    return result, notes


def run_study(store: Store, config: str, overrides: list[str], instructions=None, judges=None,
              group: str | None = None, eval_judge: str | None = None, eval_n: int | None = None,
              eval_max_new_tokens: int | None = None, evaluate_arms: bool = True, quiet: bool = True,
              eval_temperature: float = 0.0, measure_instructions=None, pairs_file: str | None = None,
              fixed_n: int | None = None, fixed: bool = True, train: bool = True) -> dict:
    from .evaluate import evaluate

    cfg = load_config(config, overrides)
    if train:
        if cfg.algo != "oaif":
            raise ValueError(f"{config}: algo: the controllability study trains OAIF runs, not {cfg.algo!r}")
        arms = variants(cfg, instructions, judges)
        slugs = [a["slug"] for a in arms]
    else:
        if not (instructions or judges):
            raise ValueError("study controllability: give --instructions and/or --judges")
        arms, slugs = [], [_slug(x) for x in (instructions or []) + (judges or [])]
    group = group or f"ctl-{cfg.name or 'oaif'}-{_slug('-'.join(slugs))}"
    fixed_result, notes = (run_fixed(store, cfg, instructions, judges, measure_instructions, pairs_file, fixed_n,
                                     group) if fixed else (None, []))
    if not train:
        return {"group": group, "task": cfg.data.task, "fixed": fixed_result, "fixed_notes": notes, "arms": None}
    neutral, held_out = (None, None)
    if evaluate_arms:
        neutral, held_out = held_out_judge([a["judge"] for a in arms], _has_references(cfg.data.task), eval_judge)
    sampling = SamplingConfig(temperature=eval_temperature,
                              max_new_tokens=eval_max_new_tokens or cfg.sampling.max_new_tokens)
    baseline_outputs = None
    out_arms = []
    for arm in arms:
        run_id = train_arm(store, config, overrides, arm, f"{group}-{arm['slug']}", group, quiet)
        steps = per_step(store, run_id)
        tail = steps[-3:]
        entry = {**{k: arm[k] for k in ("label", "judge", "instruction")}, "run_id": run_id, "per_step": steps,
                 "len_first": steps[0]["len_mean"] if steps else None,
                 "len_last3": _mean(s["len_mean"] for s in tail),
                 "words_last3": _mean(s["words_mean"] for s in tail),
                 "prefers_shorter": _mean(s["prefers_shorter"] for s in steps)}
        if evaluate_arms:
            res = evaluate(store, run_id, "initial", JudgeRef(name=neutral), task=cfg.data.task, n=eval_n,
                           sampling=sampling, home=store.home, name=f"{group}: {arm['label']} vs initial",
                           baseline_outputs=baseline_outputs)
            baseline_outputs = res.pop("baseline_outputs")
            entry["winrate"] = {k: res.get(k) for k in (
                "policy", "baseline", "n", "wins", "ties", "losses", "n_unparsed", "n_identical", "win_rate",
                "ci_low", "ci_high", "ci_method", "lc_win_rate", "lc_ci_low", "lc_ci_high", "lc_identified",
                "lc_reason", "mean_chars_policy", "mean_chars_baseline", "result_id", "judge_card_line")}
        out_arms.append(entry)
    result = {"group": group, "config": config, "overrides": list(overrides), "task": cfg.data.task,
              "eval_judge": neutral, "eval_judge_held_out": held_out,
              "eval_judge_trained": sorted({a["label"] for a in arms if a["judge"] == neutral}), "eval_n": eval_n,
              "eval_sampling": {"temperature": sampling.temperature, "max_new_tokens": sampling.max_new_tokens},
              "arms": out_arms, "fixed_result_id": fixed_result["result_id"] if fixed_result else None}
    result["result_id"] = store.add_result("controllability", result, name=group, task=cfg.data.task,
                                           judge=neutral, baseline="initial")
    return {**result, "fixed": fixed_result, "fixed_notes": notes}
