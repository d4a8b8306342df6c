"""`harness validity --judge NAME [NAME ...]`: each judge's validity card (position consistency,
P(first shown), P(longer), agreement with held-out human labels of PandaLM and LLMBar, each with n and
a Wilson CI). Computed once per annotator version and stored (result kind `judge_validity`); asking
again prints the stored card. Several judges (e.g. the embedded judge pairwise and pointwise:
`--judge smollm2-logprob smollm2-score`) are also shown side by side, one column each, on the same
pairs. Definitions: harness/evaluation/validity.py.
"""
from __future__ import annotations

from ..config import JudgeRef
from ..console import emit
from ..store import Store


def add_arguments(p):
    p.add_argument("--judge", required=True, nargs="+",
                   help="one or more: judges/configs/<name>.yaml, a YAML path, rule:<rule>, rm:<run-id>")
    p.add_argument("--instruction", default=None, help="the judge instruction (LLM judges; changes the version)")
    p.add_argument("--mode", default=None, choices=("logprob", "generate", "score"),
                   help="LLM judges: override the mode (score needs a pointwise template)")
    p.add_argument("--n-pairs", type=int, default=32, help="held-out pairs per dataset, each asked in both orders")
    p.add_argument("--data", default=None, help="folder holding pandalm_testset/ and llmbar/ (default ../shared/data)")
    p.add_argument("--device", default=None, help="device for local judges (default: auto)")


def run(args) -> int:
    from judges.registry import load_judge

    from ..evaluation.validity import card_line, card_rows, compare_rows, judge_card

    store = Store(args.home)
    cards = []
    for name in args.judge:  # each card is stored as soon as it is measured
        judge = load_judge(JudgeRef(name=name, instruction=args.instruction, mode=args.mode), store.home,
                           device=args.device)
        cards.append(judge_card(store, judge, store.home, n_pairs=args.n_pairs, data_root=args.data, progress=True))
    if args.format == "json":
        emit(cards[0] if len(cards) == 1 else {"cards": cards, "side_by_side": compare_rows(cards)}, "json")
        return 0
    for card in cards:
        print(card_line(card))
        if len(cards) == 1:
            emit(card_rows(card), title=f"judge validity card (result {card['result_id']})")
    if len(cards) > 1:
        print()
        emit(compare_rows(cards), title="judge validity cards side by side: value [95% Wilson CI] n= (results "
                                        + ", ".join(str(c["result_id"]) for c in cards) + ")")
    return 0
