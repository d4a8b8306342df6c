"""`harness agreement`: every annotator against a reference, per dataset subset, plus position and
length bias and human-human reliability. Definitions: harness/evaluation/agreement.py.
Stores an `agreement` result (all tables) for the dashboards.
"""
from __future__ import annotations

from ..report import emit
from ..store import Store

SHOWN = ["dataset", "subset", "annotator", "reference", "n", "agreement", "agreement_no_ties", "kappa", "acc_ab",
         "acc_ba", "acc_avg", "acc_both", "position_consistency", "p_first", "p_longer", "ref_p_longer"]


def add_arguments(p):
    p.add_argument("--reference", default="auto",
                   help="NAME (an annotator), human-majority, gold, or auto (default: gold where a ':gold' "
                        "annotator exists, else human-majority)")
    p.add_argument("--dataset", default=None, help="only this dataset (default: every dataset in the store)")
    p.add_argument("--annotators", nargs="+", default=None, help="only rows for these annotators")
    p.add_argument("--unparsed", choices=("wrong", "tie", "drop"), default="wrong",
                   help="unparsed verdicts: count as wrong (default), read as tie (PandaLM's script), or drop")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-len-diff", type=float, default=30, help="characters; shorter differences are not "
                                                                    "counted in p_longer")


def run(args) -> int:
    from ..evaluation.frames import label_frame, to_records
    from ..evaluation.reports import agreement_report

    store = Store(args.home)
    labels = label_frame(store, dataset=args.dataset)
    if labels.empty:
        where = f" of dataset {args.dataset!r}" if args.dataset else ""
        raise ValueError(f"no labels{where} in {store.db_path}; import some with `harness import-labels`")
    tables = agreement_report(labels, args.reference, args.unparsed, args.annotators, args.n_boot, args.seed,
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
    print(f"\nstored result #{result_id} (kind agreement)")
    return 0
