"""`harness validity --judge NAME`: the judge's validity card (position consistency, P(first shown),
P(longer), agreement with held-out human labels of PandaLM and LLMBar, each with n and a Wilson
CI). Computed once per annotator version and stored (result kind `judge_validity`); asking again
prints the stored card. Definitions: harness/evaluation/validity.py.
"""
from __future__ import annotations

from ..config import JudgeRef
from ..console import emit
from ..store import Store


def add_arguments(p):
    p.add_argument("--judge", required=True, help="judges/configs/<name>.yaml, a YAML path, rule:<rule>, rm:<run-id>")
    p.add_argument("--instruction", default=None, help="the judge instruction (LLM judges; changes the version)")
    p.add_argument("--mode", default=None, choices=("logprob", "generate"), help="LLM judges: override the mode")
    p.add_argument("--n-pairs", type=int, default=32, help="held-out pairs per dataset, each asked in both orders")
    p.add_argument("--data", default=None, help="folder holding pandalm_testset/ and llmbar/ (default ../shared/data)")
    p.add_argument("--device", default=None, help="device for local judges (default: auto)")


def run(args) -> int:
    from judges.registry import load_judge

    from ..evaluation.validity import card_line, card_rows, judge_card

    store = Store(args.home)
    judge = load_judge(JudgeRef(name=args.judge, instruction=args.instruction, mode=args.mode), store.home,
                       device=args.device)
    card = judge_card(store, judge, store.home, n_pairs=args.n_pairs, data_root=args.data, progress=True)
    if args.format == "json":
        emit(card, "json")
    else:
        print(card_line(card))
        emit(card_rows(card), title=f"judge validity card (result {card['result_id']})")
    return 0
