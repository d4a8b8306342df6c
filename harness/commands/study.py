"""`harness study controllability CONFIG --instructions "…" "…"` (or `--judges rule:shorter rule:longer`).

The OAIF paper (Guo et al. 2024, §4.6) steers response length through the annotator's instruction
alone. This trains the same OAIF run (same config, same seed) once per annotator instruction or
per annotator, then reports for each:
  - per step: mean response length of the policy's samples (tokens; also words) and the
    annotator's preference rate for the shorter response of each pair (`judge/prefers_shorter`);
  - at the end: the win rate of the final policy against the initial policy on the task's eval
    prompts under ONE fixed judge without any instruction, ties half, with n, wins/ties/losses, a
    bootstrap 95% CI, a one-line verdict and the length-controlled win rate.
The evaluation judge is HELD OUT by default: one that trained none of the arms (`held_out_judge`:
minilm-reference when the task has reference answers, else the default LLM judge), since an arm
graded by its own annotator measures how well it learnt that annotator, not how good it became.
`--eval-judge` overrides it; the summary says whether the judge that graded was held out.
Runs share a group name; a run already done in that group is reused, an unfinished one resumed.
The summary is stored as a `controllability` result.

Before any training, it measures each annotator's controllability on FIXED pairs
(harness/evaluation/controllability.py): how far its verdicts move toward the property an
instruction names (flip_toward / flip_away with Wilson CIs, net shift with a paired bootstrap CI).
Measured: the config's judge with each --instructions entry that names a registered property, and
each --judges entry with --measure-instructions (default: the registry's DEFAULT_PROPERTIES); an
annotator that takes no instruction (rule:shorter, ...) is measured as itself, the negative
control. Fixed pairs: --pairs FILE (json lines {prompt, response_a, response_b}); else, for a
verifiable task, its policy pairs (harness/evaluation/gold_pairs.py::policy_pairs on the eval
prompts); else the eval pairs already in the store (`harness eval` writes them; the task's first). The table is
printed and stored as a `controllability_fixed` result; `--no-train` stops there.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re

import sys
from pathlib import Path

from ..config import JudgeRef, SamplingConfig, load_config
from ..evaluation.controllability import DEFAULT_PROPERTIES
from ..evaluation.controllability import table as fixed_table
from ..report import emit
from ..store import Store

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
    """Train one arm through `harness train` (so it is exactly a normal OAIF run), or reuse/resume it."""
    from . import train

    existing = store.has_run(run_id)
    if existing and store.get_run(run_id)["status"] == "done":
        return run_id
    extra = ["resume=true"] if existing else []
    args = argparse.Namespace(config=config, overrides=list(overrides) + arm["overrides"] + extra, run_id=run_id,
                              group=group, home=str(store.home), format="json")
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        train.run(args)
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
        df = store.pairs_df("source = ? AND dataset = ?", ("eval", task))
        if df.empty:
            source, df = "eval pairs of any task in the store", store.pairs_df("source = ?", ("eval",))
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
    from .eval import evaluate

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


# -- CLI ----------------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("study", choices=("controllability",), help="which study")
    p.add_argument("config", help="an OAIF run config (algo: oaif)")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides applied to every arm")
    p.add_argument("--instructions", nargs="+", default=None,
                   help='annotator instructions, one arm each ("default" = none), e.g. default "Prefer the shorter response."')
    p.add_argument("--judges", nargs="+", default=None, help="annotators, one arm each, e.g. rule:shorter rule:longer")
    p.add_argument("--group", default=None, help="group name of the runs (default: from the config and arms)")
    p.add_argument("--eval-judge", default=None,
                   help="the fixed judge of the final win rates (default: a held-out judge that trained no arm: "
                        "minilm-reference for tasks with reference answers, else smollm2-logprob)")
    p.add_argument("--eval-n", type=int, default=None, help="eval prompts for the win rates (default: all)")
    p.add_argument("--eval-max-new-tokens", type=int, default=None)
    p.add_argument("--eval-temperature", type=float, default=0.0, help="0: greedy answers (default)")
    p.add_argument("--no-eval", action="store_true", help="skip the final win rates")
    p.add_argument("--verbose", action="store_true", help="show each run's training output")
    p.add_argument("--measure-instructions", nargs="+", default=None,
                   help="instructions (property names or texts) each --judges annotator is measured with on fixed "
                        "pairs (default: " + ", ".join(DEFAULT_PROPERTIES) + ")")
    p.add_argument("--pairs", default=None, help="fixed pairs: json lines {prompt, response_a, response_b} "
                                                 "(default: the eval pairs in the store)")
    p.add_argument("--fixed-n", type=int, default=None, help="only the first N fixed pairs")
    p.add_argument("--no-fixed", action="store_true", help="skip the fixed-pair measurement")
    p.add_argument("--no-train", action="store_true", help="only the fixed-pair measurement")


def judge_sentence(result: dict) -> str:
    """Which judge graded, and whether it was held out (trained none of the arms)."""
    j = result["eval_judge"]
    if result.get("eval_judge_held_out"):
        return f"graded by {j}, held out: it trained none of the arms"
    return (f"graded by {j}, NOT held out: it trained arm(s) {', '.join(result.get('eval_judge_trained') or [])}, "
            "so their win rates measure agreement with their own annotator")


def run(args) -> int:
    from ..evaluation.verdicts import ci_note, ci_text, lc_text, verdict_line, wtl

    store = Store(args.home)
    result = run_study(store, args.config, args.overrides, args.instructions, args.judges, args.group,
                       args.eval_judge, args.eval_n, args.eval_max_new_tokens, not args.no_eval,
                       quiet=not args.verbose, eval_temperature=args.eval_temperature,
                       measure_instructions=args.measure_instructions, pairs_file=args.pairs,
                       fixed_n=args.fixed_n, fixed=not args.no_fixed, train=not args.no_train)
    for line in result.get("fixed_notes") or []:
        print(f"note: {line}", file=sys.stderr)
    if args.format == "json":
        emit(result, "json")
        return 0
    fixed = result.get("fixed")
    if fixed:
        emit(fixed_table(fixed["rows"]), "table",
             title=f"controllability on fixed pairs, before training (n_pairs={fixed['n_pairs']}, "
                   f"{fixed['pairs_source']}; result #{fixed['result_id']})")
        print(fixed["estimators"])
        print("wall time: " + ", ".join(f"{t['annotator']} {t['wall_s']:.1f} s" for t in fixed["timing"]))
        print()
    if result["arms"] is None:
        return 0
    arms = result["arms"]
    summary = []
    for a in arms:
        row = {"arm": a["label"], "run_id": a["run_id"], "len_step1": a["len_first"], "len_last3": a["len_last3"],
               "words_last3": a["words_last3"], "prefers_shorter": a["prefers_shorter"]}
        if "winrate" in a:
            w = a["winrate"]
            row.update({"n": w["n"], "w/t/l": wtl(w), "win_rate": w["win_rate"],
                        "ci95": ci_text(w["ci_low"], w["ci_high"]), "lc_win_rate (ci95)": lc_text(w)})
        summary.append(row)
    emit(summary, "table", title=f"controllability ({result['group']}; win rate vs initial under "
                                 f"{result['eval_judge']})")
    if result["eval_judge"]:
        print(ci_note())
        for a in arms:
            print(f"  {a['label']}: {verdict_line(a['winrate'], 'the initial policy')}")
        print(judge_sentence(result))
        card = next((a["winrate"].get("judge_card_line") for a in arms if a["winrate"].get("judge_card_line")), None)
        if card:
            print(f"validity card, evaluation judge {result['eval_judge']}: {card}")
    steps = sorted({s["step"] for a in arms for s in a["per_step"]})
    table = []
    for st in steps:
        row = {"step": st}
        for i, a in enumerate(arms):
            s = next((x for x in a["per_step"] if x["step"] == st), {})
            row[f"len[{i}]"] = s.get("len_mean")
            row[f"shorter[{i}]"] = s.get("prefers_shorter")
        table.append(row)
    print()
    emit(table, "table", title="per step: mean response tokens (len[i]) and annotator's P(prefers shorter) "
                               "(shorter[i]); i = " + ", ".join(f"{i}: {a['label'][:40]}" for i, a in enumerate(arms)))
    return 0
