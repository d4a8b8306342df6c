"""`harness leaderboard`: Bradley-Terry ratings (Elo scale, mean 1000) with bootstrap CIs from all
pairwise labels in the store whose pairs name policy_a and policy_b; also the win-rate matrix.
Each (judge, item) is one battle: a judge asked in both orders gives its combined verdict.
Definitions: harness/evaluation/bradley_terry.py. Stores a `leaderboard` result.
"""
from __future__ import annotations

from ..console import emit
from ..store import Store


def add_arguments(p):
    p.add_argument("--dataset", default=None, help="only pairs of this dataset")
    p.add_argument("--judge", nargs="+", default=None, help="only labels of these annotators (default: all)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the battles (0: no CIs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--anchor", default=None, metavar="MODEL=RATING", help="shift ratings so MODEL has RATING")


def run(args) -> int:
    from ..evaluation.frames import label_frame, matrix_to_dict, to_records
    from ..evaluation.reports import leaderboard_report

    anchor = None
    if args.anchor:
        model, sep, rating = args.anchor.rpartition("=")
        try:
            anchor = (model, float(rating))
        except ValueError:
            raise ValueError(f"--anchor {args.anchor!r}: expected MODEL=RATING") from None
        if not sep or not model:
            raise ValueError(f"--anchor {args.anchor!r}: expected MODEL=RATING")
    store = Store(args.home)
    labels = label_frame(store, dataset=args.dataset, annotators=args.judge)
    rep = leaderboard_report(labels, n_boot=args.n_boot, seed=args.seed, anchor=anchor)
    if rep["ratings"].empty:
        raise ValueError(f"no pairwise labels whose pairs name policy_a and policy_b in {store.db_path}"
                         + (f" (dataset {args.dataset})" if args.dataset else "")
                         + (f" (judges {', '.join(args.judge)})" if args.judge else ""))
    battles = rep["battles"]
    result = {"dataset": args.dataset, "judges": sorted(battles["annotator"].unique()), "n_battles": len(battles),
              "n_boot": args.n_boot, "anchor": args.anchor, "ratings": to_records(rep["ratings"]),
              "win_rate_matrix": matrix_to_dict(rep["win_rate_matrix"]),
              "battle_counts": matrix_to_dict(rep["battle_counts"])}
    result_id = store.add_result("leaderboard", result, name=f"leaderboard:{args.dataset or 'all'}",
                                 judge=",".join(args.judge) if args.judge else None)
    if args.format == "json":
        emit({"result_id": result_id, **result}, "json")
        return 0
    emit(to_records(rep["ratings"]), "table",
         title=f"Bradley-Terry ratings, {len(battles)} battles, judges: {', '.join(result['judges'])}")
    print(f"\nstored result #{result_id} (kind leaderboard; win-rate matrix in --format json)")
    return 0
