"""Algorithms: ONE table from the config's `algo` to the function that builds its step source and
objective for the shared trainer core (harness.trainer.train).

A builder is `build(cfg, store, run_id, model, tokenizer, ref, home) -> (source, objective)`.
An algorithm owns its config section (`oaif:`, `rl:`, `reward_model:`): its module's
`check_config(cfg, bad)` says which values it accepts. config.validate runs every algorithm's check
before any model is loaded: a section is ignored by the other algorithms but still validated (the
demo's and study's arms share one config).
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
    check: str | None = None  # "module:function" checking the section this algorithm owns


ALGORITHMS: dict[str, Algorithm] = {
    "sft": Algorithm("harness.algorithms.offline:build_sft", needs_reference=False),
    "dpo": Algorithm("harness.algorithms.offline:build_dpo"),
    "oaif": Algorithm("harness.algorithms.oaif:build", check="harness.algorithms.oaif:check_config"),
    "reward_model": Algorithm("harness.algorithms.reward_model:build", causal_lm=False, needs_reference=False,
                              check="harness.algorithms.reward_model:check_config"),
    "rlhf": Algorithm("harness.algorithms.rl:build", check="harness.algorithms.rl:check_config"),
}


def get_algorithm(algo: str) -> Algorithm:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: {algo!r} is not one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algo]


def get_builder(algo: str) -> Callable:
    return _resolve(algo, get_algorithm(algo).builder)


def check_config(cfg, bad: Callable[[str, str], None]) -> None:
    """Each algorithm checks the section it owns (`bad(key, message)` raises)."""
    for name, spec in ALGORITHMS.items():
        if spec.check is not None:
            _resolve(name, spec.check)(cfg, bad)


def _resolve(algo: str, target: str) -> Callable:
    module, _, func = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise ValueError(f"algo: {algo!r} is not available in this build ({module} missing)") from None
        raise
    return getattr(mod, func)
