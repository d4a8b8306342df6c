"""Algorithms: ONE table from the config's `algo` to the function that builds its step source and
objective for the shared trainer core (harness.trainer.train).

A builder is `build(cfg, store, run_id, model, tokenizer, ref, home) -> (source, objective)`.
Entries name their module as a string and are imported only when used, so one algorithm's
dependencies (judges, vllm, ...) never load for another.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Algorithm:
    builder: str  # "module:function"
    causal_lm: bool = True  # False: load the model with a scalar (sequence-classification) head
    needs_reference: bool = True  # False: no frozen reference copy is made


ALGORITHMS: dict[str, Algorithm] = {
    "sft": Algorithm("harness.algorithms.offline:build_sft", needs_reference=False),
    "dpo": Algorithm("harness.algorithms.offline:build_dpo"),
    "oaif": Algorithm("harness.algorithms.oaif:build"),
    "reward_model": Algorithm("harness.algorithms.reward_model:build", causal_lm=False, needs_reference=False),
    "rlhf": Algorithm("harness.algorithms.rl:build"),
}


def get_algorithm(algo: str) -> Algorithm:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: {algo!r} is not one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algo]


def get_builder(algo: str) -> Callable:
    module, _, func = get_algorithm(algo).builder.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise ValueError(f"algo: {algo!r} is not available in this build ({module} missing)") from None
        raise
    return getattr(mod, func)
