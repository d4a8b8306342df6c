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

import sys

from ..evaluation.controllability import DEFAULT_PROPERTIES
from ..evaluation.controllability import table as fixed_table
from ..pipelines.controllability import run_study
from ..console import emit
from ..store import Store


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
