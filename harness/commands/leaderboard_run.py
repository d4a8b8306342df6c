"""`harness leaderboard-run CONFIG [key=value ...]`: judge a benchmark's model answers pairwise and
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

from ..pipelines.leaderboard import load_run_config, run_leaderboard
from ..console import emit
from ..store import Store


def add_arguments(p):
    p.add_argument("config", help="a leaderboard-run config YAML, e.g. configs/leaderboard_mtbench.yaml")
    p.add_argument("overrides", nargs="*",
                   help="dotted.key=value overrides, e.g. source.n_questions=4 judge.name=rule:longer")


def run(args) -> int:
    cfg = load_run_config(args.config, args.overrides)
    result, result_id = run_leaderboard(cfg, Store(args.home), str(args.config))
    if args.format == "json":
        emit({"result_id": result_id, **result}, "json")
        return 0
    _print(result, result_id, cfg)
    return 0


def _print(result, result_id, cfg) -> None:
    s, c, b = cfg.source, result["cost"], result["position_bias"]
    sel = (f"turn {s.turn}, {c['questions']} questions"
           + (f" ({s.questions_per_category} per category)" if s.questions_per_category else "")
           + f", {c['models']} models, " + (f"{s.pairs_per_question} model pairs per question" if s.pairs_per_question
                                             else "all model pairs") + f", seed {s.seed}")
    emit(result["ratings"], "table", title=f"Bradley-Terry ratings ({s.format}: {sel}; judge {result['judges'][0]}@{result['judge_version']}"
         f", {result['n_battles']} battles, 95% bootstrap CIs over {result['n_boot']} resamples)")
    print(f"\ncost: {c['pairs']} pairs ({c['distinct_texts']} distinct texts), {c['judge_calls']} judge calls"
          f" + {c['cached_labels']} cached labels, judging {c['judge_s']:.1f} s"
          + (f" ({c['s_per_call']:.3f} s/call)" if c["s_per_call"] else "") + f", wall {c['wall_s']:.1f} s")

    def pct(v):
        return "n/a" if v is None else f"{v:.3f}"

    print(f"position bias: P(prefers the response shown first) = {pct(b['p_first'])} "
          f"[{pct(b['p_first_ci_low'])}, {pct(b['p_first_ci_high'])}] over {b['n_decisive_labels']} labels; "
          f"position consistency {pct(b['position_consistency'])} over {b['n_both_orders']} pairs; "
          f"P(prefers longer) {pct(b['p_longer'])}; unparsed {b['unparsed']}")
    print(f"validity card: {result['judge_card_line']}")
    for r in result["correlations"]:
        print(f"rank correlation with {r['name']}: n={r['n_models']} models, Spearman {pct(r['spearman'])}"
              f" (p {pct(r['spearman_p'])}), Kendall {pct(r['kendall'])} (p {pct(r['kendall_p'])})")
    print(f"\nstored result #{result_id} (kind leaderboard; see the dashboard's Leaderboard page)")
