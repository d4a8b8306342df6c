"""`load_judge(ref)`: a judge from a name, a `config.JudgeRef`, or a YAML path.

Names:
  rule:<rule>[:<arg>]       a rule judge (judges/rules.py)
  rm:<run-id-or-path>       a reward-model judge (judges/reward_model.py, loaded lazily)
  gold:<task>               the gold scorer of a verifiable task (judges/gold.py)
  <name>                    judges/configs/<name>.yaml, whose `kind` picks the builder below
                            (llm, reference_similarity, simulated_human: e.g. sim-rater-1)
  path/to/judge.yaml        the same, from any file
"""
from __future__ import annotations

import importlib
from pathlib import Path


from harness.config import ConfigError, JudgeRef, read_yaml_mapping

from .base import BOTH_ORDERS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# THE table of judge kinds: kind -> (how it is named, module, factory). Modules are imported lazily
# so a missing optional dependency only matters for the judge that needs it.
JUDGE_KINDS: dict[str, tuple[str, str, str]] = {
    "rule": ("rule:<rule>[:<arg>]", "judges.rules", "make_rule_judge"),
    "reward_model": ("rm:<run-id-or-path>", "judges.reward_model", "load_reward_judge"),
    "gold": ("gold:<task>", "judges.gold", "make_gold_judge"),
    "llm": ("judges/configs/<name>.yaml with kind: llm", "judges.llm", "build_llm_judge"),
    "reference_similarity": ("judges/configs/<name>.yaml with kind: reference_similarity",
                             "judges.similarity", "build_similarity_judge"),
    # the gold scorer of a verifiable task plus crowd-worker noise; annotator kind simulated-human
    "simulated_human": ("judges/configs/<name>.yaml with kind: simulated_human", "judges.simulated",
                        "build_simulated_judge"),
}
PREFIXES = {"rule:": "rule", "rm:": "reward_model", "gold:": "gold"}


def _factory(kind: str):
    _, module, name = JUDGE_KINDS[kind]
    return getattr(importlib.import_module(module), name)


def _takes_instruction(kind: str, spec: str) -> bool:
    from .rules import INSTRUCTABLE

    return kind == "rule" and spec.partition(":")[0] in INSTRUCTABLE


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.exists():
            raise ConfigError(f"{path}: judge config not found")
        return path
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown judge {name!r}: no {path}; known: {', '.join(config_names())}, "
                          f"or {', '.join(v[0] for k, v in JUDGE_KINDS.items() if k in PREFIXES.values())}")
    return path


def read_judge_config(path: Path) -> dict:
    """YAML (safe loader) -> dict; errors name the file (and the line for YAML syntax)."""
    return read_yaml_mapping(path, empty_ok=False)


def load_judge(ref: JudgeRef | str, home=None, device: str | None = None, rubric: str | None = None):
    """The judge `ref` names, with the JudgeRef's instruction / mode / both_orders applied.

    `rubric`: the task's rubric, inserted into LLM judge prompts (it changes the annotator version)."""
    if isinstance(ref, str):
        ref = JudgeRef(name=ref)
    name = ref.name
    for prefix, kind in PREFIXES.items():
        if name.startswith(prefix):
            spec = name[len(prefix):]
            if ref.instruction and not _takes_instruction(kind, spec):
                raise ConfigError(f"judge {name}: a {kind} judge takes no instruction "
                                  "(only LLM judges and rule:instructed do)")
            if ref.mode:
                raise ConfigError(f"judge {name}: a {kind} judge has no mode (only LLM judges do)")
            if kind == "rule":  # rule:instructed reads a property's instruction (judges/rules.py)
                judge = _factory(kind)(spec, instruction=ref.instruction or None)
            else:
                judge = _factory(kind)(spec) if kind == "gold" else _factory(kind)(spec, home, device)
            if ref.both_orders is not None:
                judge.orders = BOTH_ORDERS if ref.both_orders else ("AB",)
            return judge
    path = config_path(name)
    data = read_judge_config(path)
    kind = data.pop("kind", "llm")
    if kind not in JUDGE_KINDS or kind in PREFIXES.values():
        config_kinds = [k for k in JUDGE_KINDS if k not in PREFIXES.values()]
        raise ConfigError(f"{path}: kind: {kind!r} is not one of {', '.join(config_kinds)}")
    if kind != "llm":  # the config kinds but llm take neither (as the prefix kinds above)
        if ref.instruction:
            raise ConfigError(f"{path}: a {kind} judge takes no instruction (only LLM judges do)")
        if ref.mode:
            raise ConfigError(f"{path}: a {kind} judge has no mode (only LLM judges do)")
    return _factory(kind)(path.stem, data, path, ref=ref, home=home, device=device, rubric=rubric)
