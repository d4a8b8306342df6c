"""`harness eval`: win rate of a policy against a baseline on a task's evaluation prompts.

    harness eval --policy RUN_ID|MODEL|outputs.jsonl --baseline initial|RUN_ID|MODEL|outputs.jsonl|reference
                 --judge NAME [--task T] [--n N] [--temperature 0] [--max-new-tokens 64]
    harness eval --head-to-head RUN RUN [RUN ...] | --group GROUP   --judge NAME [...]
    harness eval ... --judge gold     (a verifiable task's gold scorer: harness/evaluation/gold_eval.py)

Each side answers every prompt once (greedy by default, sampled with --temperature > 0); the
judge sees every pair in both orders (AB and BA), and the combined verdict scores the policy
1 / 0.5 (tie) / 0. A prompt whose two answers are the same text is a tie the judge never sees
(counted as `n_identical`). Reported: win rate (ties half), n, wins/ties/losses, a percentile-
bootstrap 95% CI over prompts, a one-line verdict (harness/evaluation/verdicts.py), the length-
controlled win rate with its CI or "not identified", and the judge's validity card. The pairs and
labels go to the store (policy_a = policy, policy_b = baseline) and the summary is a `winrate`
result. `--head-to-head` compares every pair of the given runs on the same prompts (each run
answers once) and stores one `head_to_head` result. With `--judge gold` (the gold scorer of the
task, no validity card: it is the truth by construction) each result also carries `gold`: the
mean gold score and constraint-satisfaction rate of each side, with CIs.
"""
from __future__ import annotations

from typing import Sequence

from ..config import ConfigError, JudgeRef, SamplingConfig
from ..evaluation import gold_eval
from ..pipelines.evaluate import evaluate, group_policies, head_to_head
from ..console import emit
from ..store import Store


def print_winrates(results: Sequence[dict], baseline_names: Sequence[str], title: str, lead: str = "policy") -> None:
    """The win-rate table every command prints: n, W/T/L, CI, LC (with CI or 'not identified'), verdict."""
    from ..evaluation.verdicts import ci_note, winrate_row

    rows = [winrate_row(r, b, **{lead: r.get("policy"), "baseline": r.get("baseline")})
            for r, b in zip(results, baseline_names)]
    emit([{k: v for k, v in row.items() if k != "verdict"} for row in rows], "table", title=title)
    print(ci_note())
    for row in rows:
        print(f"  {row[lead]}: {row['verdict']}")


# -- CLI ----------------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--policy", default=None, help="a run id, a model (hub id, local dir, smollm2-135m-instruct) "
                                                   "or an outputs .jsonl ({prompt|id, response})")
    p.add_argument("--baseline", default="initial", help="initial (the policy run's starting model), a run id, "
                                                         "a model, an outputs .jsonl, or reference (the task's answers)")
    p.add_argument("--head-to-head", nargs="+", default=None, metavar="RUN",
                   help="compare every pair of these policies (run ids, models, outputs files) with each other")
    p.add_argument("--group", default=None, help="head-to-head between the finished policy runs of this group")
    p.add_argument("--judge", default="smollm2-logprob", help="judge name (judges/configs/<name>.yaml, rule:..., rm:..., "
                                                              "gold:<task>, or gold: the task's gold scorer)")
    p.add_argument("--instruction", default=None, help="annotator instruction for an LLM judge")
    p.add_argument("--task", default=None, help="task whose prompts to use (default: the policy run's task)")
    p.add_argument("--split", default="eval", choices=("train", "eval"))
    p.add_argument("--n", type=int, default=None, help="only the first N prompts")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--one-order", action="store_true", help="judge only in the AB order (default: both)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="name of the stored result")


def _baseline_words(name: str) -> str:
    return "the initial policy" if name.startswith("initial:") else name


def run(args) -> int:
    chosen = [x for x, given in (("--policy", args.policy), ("--head-to-head", args.head_to_head),
                                 ("--group", args.group)) if given]
    if len(chosen) != 1:
        raise ConfigError("harness eval: give exactly one of --policy, --head-to-head or --group"
                          + (f" (got {', '.join(chosen)})" if chosen else ""))
    store = Store(args.home)
    sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    ref = JudgeRef(name=args.judge, instruction=args.instruction)
    orders = ("AB",) if args.one_order else ("AB", "BA")
    if args.policy is None:
        runs = args.head_to_head or group_policies(store, args.group)
        res = head_to_head(store, runs, ref, task=args.task, split=args.split, n=args.n, sampling=sampling,
                           home=args.home, orders=orders, seed=args.seed, name=args.name)
        if args.format == "json":
            emit(res, "json")
            return 0
        print_winrates(res["rows"], [r["baseline"] for r in res["rows"]], lead="policy",
                       title=f"head-to-head on {res['task']} ({res['split']}), judge {res['judge']}: "
                             "win rate of policy over baseline")
        gold_eval.print_gold(res["rows"])
        print(res["judge_card_line"])
        return 0
    result = evaluate(store, args.policy, args.baseline, ref, task=args.task, split=args.split, n=args.n,
                      sampling=sampling, home=args.home, name=args.name, orders=orders, seed=args.seed)
    result.pop("baseline_outputs", None)
    if args.format == "json":
        emit(result, "json")
        return 0
    print_winrates([result], [_baseline_words(result["baseline"])],
                   title=f"win rate on {result['task']} ({result['split']}), judge {result['judge']}")
    print(f"mean chars policy {result['mean_chars_policy']:.0f} vs baseline {result['mean_chars_baseline']:.0f}; "
          f"on these pairs: P(first shown preferred) {result['p_first']:.2f}, both orders agree "
          f"{result['consistency']:.2f}")
    gold_eval.print_gold([result])
    print(result["judge_card_line"])
    return 0
