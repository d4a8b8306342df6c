"""`harness agreement`: every annotator against a reference, per dataset subset, plus position and
length bias and human-human reliability (harness/evaluation/agreement.py), alpaca_eval's annotator
table (annotator_table.py) and cyclic triads next to the Bradley-Terry fit (triads.py); `--definition`
prints the named definitions of agreement (agreement_defs.py: majority, loo, MT-Bench's vote-pairs).
Stores an `agreement` result (all tables: evaluation/agreement_bundle.py) for the dashboards.

`--gold TASK` (a verifiable task): every annotator against the task's gold scorer instead, on pairs
of a policy's own samples of the task's split (harness/evaluation/gold_pairs.py): accuracy vs gold,
position consistency, P(first), P(longer) next to gold's own, and the simulated human-human
ceiling, one table (harness/evaluation/gold_agreement.py), stored as a `gold_agreement` result.
"""
from __future__ import annotations

from ..console import emit
from ..evaluation.agreement_defs import DEFINITIONS
from ..store import Store

SHOWN = ["dataset", "subset", "annotator", "reference", "n", "agreement", "agreement_no_ties", "kappa", "acc_ab",
         "acc_ba", "acc_avg", "acc_both", "position_consistency", "p_first", "p_longer", "ref_p_longer"]


def add_arguments(p):
    p.add_argument("--reference", default="auto",
                   help="NAME (an annotator), human-majority, gold, or auto (default: gold where a ':gold' "
                        "annotator exists, else human-majority)")
    p.add_argument("--dataset", default=None, help="only this dataset (default: every dataset in the store)")
    p.add_argument("--annotators", nargs="+", default=None,
                   help="only rows for these annotators; with --gold: the annotators to measure (default: "
                        "every local LLM judge config, rule:shorter, rule:longer, rule:bleu, sim-rater-*; add "
                        "rm:<run> or http-openai by name)")
    p.add_argument("--unparsed", choices=("wrong", "tie", "drop"), default="wrong",
                   help="unparsed verdicts: count as wrong (default), read as tie (PandaLM's script), or drop")
    p.add_argument("--definition", nargs="+", choices=sorted(DEFINITIONS), default=None, metavar="NAME",
                   help="also print these definitions of agreement, one table with n and CI: majority, loo, "
                        "vote-pairs (MT-Bench's Table 5: S1/S2 per vote pair and subset); all are stored")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-len-diff", type=float, default=30, help="characters; shorter differences are not "
                                                                    "counted in p_longer")
    g = p.add_argument_group("annotators vs gold (--gold TASK)")
    g.add_argument("--gold", default=None, metavar="TASK",
                   help="score every annotator against the gold scorer of this verifiable task")
    g.add_argument("--split", default="eval", choices=("train", "eval"), help="prompts split (default eval)")
    g.add_argument("--policy", default=None, help="model or run whose samples are paired (default: the embedded "
                                                  "smollm2-135m-instruct)")
    g.add_argument("--samples", type=int, default=None, help="samples per prompt (default 4)")
    g.add_argument("--pairs-per-prompt", type=int, default=None,
                   help="a seeded subset of this many pairs per prompt (default: all samples-choose-2)")
    g.add_argument("--max-new-tokens", type=int, default=None, help="tokens per sample (default 64)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 1.0)")
    g.add_argument("--limit", type=int, default=None, help="only the first N prompts of the split")


def default_gold_annotators() -> list[str]:
    """Every local LLM judge config (each mode / template), the three rules, the simulated raters.
    An HTTP judge needs a server and a reward model a run: both only when named."""
    from judges.registry import config_names, config_path, read_judge_config

    llm, sim = [], []
    for name in config_names():
        data = read_judge_config(config_path(name))
        kind = data.get("kind", "llm")
        if kind == "llm" and data.get("backend", "transformers") == "transformers":
            llm.append(name)
        elif kind == "simulated_human":
            sim.append(name)
    return llm + ["rule:shorter", "rule:longer", "rule:bleu"] + sim


GOLD_SHOWN = ["annotator", "kind", "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "tie_share",
              "unparsed", "accuracy_no_ties", "consistency", "p_first", "n_longer", "p_longer", "gold_p_longer"]


def run_gold(args, store) -> int:
    import time

    from ..evaluation import gold_pairs as gp
    from ..evaluation.frames import to_records
    from ..evaluation.gold_agreement import gold_result, gold_table
    from ..models import pick_device

    t0 = time.perf_counter()
    stats: dict = {}
    pairs = gp.policy_pairs(args.gold, args.split, store, model=args.policy or gp.DEFAULT_POLICY,
                            samples_per_prompt=args.samples or gp.SAMPLES_PER_PROMPT,
                            max_new_tokens=args.max_new_tokens or gp.MAX_NEW_TOKENS,
                            temperature=gp.TEMPERATURE if args.temperature is None else args.temperature,
                            seed=args.seed, limit=args.limit, pairs_per_prompt=args.pairs_per_prompt,
                            home=args.home, progress=args.format != "json", stats=stats)
    t_pairs = time.perf_counter() - t0
    annotators = args.annotators or default_gold_annotators()
    table = gold_table(store, args.gold, pairs, annotators, home=args.home, device=str(pick_device("auto")),
                       progress=args.format != "json", n_boot=args.n_boot, seed=args.seed)
    wall = time.perf_counter() - t0
    result = gold_result(args.gold, args.split, annotators, table, stats, len(pairs), wall_s=round(wall, 1),
                         pairs_wall_s=round(t_pairs, 1), pair_ids=[p.pair_id for p in pairs])
    result_id = store.add_result("gold_agreement", result, name=f"gold_agreement:{args.gold}:{args.split}",
                                 task=args.gold, judge=",".join(annotators), baseline="gold")
    if args.format == "json":
        emit({"result_id": result_id, **result}, "json")
        return 0
    share = stats["gold_share"]["decided"]
    print(f"{len(pairs)} pairs of {stats['policy']} samples ({stats['n_prompts']} {args.split} prompts x "
          f"{stats['samples_per_prompt']}, T={stats['temperature']}, {stats['max_new_tokens']} new tokens; "
          f"{stats['n_identical']} identical pairs dropped); gold decides {share['count']}/{share['n']} = "
          f"{share['value']:.2f} (95% Wilson CI [{share['ci_low']:.2f}, {share['ci_high']:.2f}])")
    shown = table[table["status"] == "measured"]
    emit(to_records(shown[GOLD_SHOWN]), "table",
         title="annotators vs gold: accuracy = P(combined verdict == gold) on gold-decided pairs (n; ties and "
               "unparsed count wrong) with 95% Wilson CI (ceiling row: bootstrap); tie_share, accuracy_no_ties, "
               "consistency, p_first, p_longer are proportions (0-1); p_longer vs gold_p_longer on the same n_longer "
               "pairs; CIs of every column in --format json or the dashboard")
    for _, r in table[table["status"] != "measured"].iterrows():
        print(f"  {r['annotator']}: {r['status']}")
    print(f"\nstored result #{result_id} (kind gold_agreement); wall {wall:.0f} s (pairs {t_pairs:.0f} s)")
    return 0


ANNOTATOR_SHOWN = ["dataset", "subset", "annotator", "kind", "n_items", "n_humans", "human_agreement", "loo_agreement",
                   "spearman", "pearson", "n_policies", "variance", "p_longer", "p_lists", "p_first", "seconds_per_1000",
                   "cost_per_1000"]
TRIADS_SHOWN = ["dataset", "subset", "annotator", "n_triads", "n_tied", "n_decided", "n_cyclic", "cyclic_rate",
                "cyclic_ci_low", "cyclic_ci_high", "n_bt_votes", "bt_agreement", "bt_ci_low", "bt_ci_high"]
DEFINITION_SHOWN = ["definition", "dataset", "subset", "annotator", "versus", "humans", "ties", "n", "agreement",
                    "ci_low", "ci_high"]


def _pooled(df):
    """The '(all)' rows where a dataset has them (the per-subset rows are in --format json)."""
    return df[df["subset"] == "(all)"] if (df["subset"] == "(all)").any() else df


def print_new_tables(tables, definitions) -> None:
    from ..evaluation.frames import to_records

    if definitions:
        d = tables["definitions"]
        d = d[d["definition"].isin(definitions)]
        print()
        emit(to_records(d[DEFINITION_SHOWN]) if not d.empty else [], "table",
             title=f"agreement by definition ({', '.join(definitions)}): S1 counts ties (ties must match), S2 leaves "
                   "out whatever involves a tie; n = items (majority, loo) or vote pairs (vote-pairs); 95% bootstrap "
                   "CI over items / comparisons")
    at = tables["annotator_table"]
    if not at.empty:
        print()
        emit(to_records(_pooled(at)[ANNOTATOR_SHOWN]), "table",
             title="annotator table (alpaca_eval analyze_evaluators): human_agreement = alpaca_eval's (mode of n_humans "
                   "votes, its tie-break, a tie earns 0.5); loo_agreement = leave-one-out; spearman/pearson = "
                   "leaderboard vs humans'; variance = 1 - self-agreement on repeated labels; P(longer) > 30 chars, "
                   "P(lists), P(first shown); seconds/cost per 1000 labels; CIs in --format json")
    tr = tables["triads"]
    if not tr.empty and (tr["n_triads"] > 0).any():
        print()
        emit(to_records(_pooled(tr[tr["n_triads"] > 0])[TRIADS_SHOWN]), "table",
             title="cyclic triads (three policies on one prompt, all three pairs judged; 0.25 = coin flips) next to "
                   "the Bradley-Terry fit's agreement (share of decided votes the fitted ranking predicts); 95% "
                   "bootstrap CIs over prompts")


def run(args) -> int:
    from ..evaluation.agreement_bundle import agreement_bundle
    from ..evaluation.comparisons import add_features
    from ..evaluation.frames import label_frame, to_records

    store = Store(args.home)
    if args.gold:
        return run_gold(args, store)
    labels = label_frame(store, dataset=args.dataset)
    if labels.empty:
        where = f" of dataset {args.dataset!r}" if args.dataset else ""
        raise ValueError(f"no labels{where} in {store.db_path}; import some with `harness import-labels`")
    labels = add_features(labels, store, args.dataset)
    tables = agreement_bundle(labels, args.reference, args.unparsed, args.annotators, args.n_boot, args.seed,
                              args.min_len_diff)
    result = {"reference": args.reference, "dataset": args.dataset, "unparsed": args.unparsed,
              "n_boot": args.n_boot, "min_len_diff": args.min_len_diff,
              **{k: to_records(v) for k, v in tables.items()}}
    result_id = store.add_result("agreement", result, name=f"agreement:{args.dataset or 'all'}:{args.reference}",
                                 judge=",".join(args.annotators) if args.annotators else None,
                                 baseline=args.reference)
    if args.format == "json":
        emit({"result_id": result_id, **result}, "json")
        return 0
    emit(to_records(tables["agreement"][SHOWN]) if not tables["agreement"].empty else [], "table",
         title=f"agreement with reference {args.reference} (unparsed: {args.unparsed}); CIs in --format json")
    if not tables["human_reliability"].empty:
        print()
        emit(to_records(tables["human_reliability"].drop(columns=["ceiling_ci_low", "ceiling_ci_high"])), "table",
             title="human-human reliability (ceiling = leave-one-out agreement, alpaca_eval)")
        loo = tables["loo"]
        print()
        emit(to_records(loo[loo["subset"] == "(all)"] if (loo["subset"] == "(all)").any() else loo), "table",
             title="leave-one-out agreement with the humans (comparable to the ceiling)")
    print_new_tables(tables, args.definition)
    print(f"\nstored result #{result_id} (kind agreement)")
    return 0
