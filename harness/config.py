"""Run configuration: YAML -> typed dataclasses, `a.b=value` overrides, unknown keys fail loudly.

One `RunConfig` describes every algorithm; sections an algorithm does not use are ignored by it
but still validated, so a typo never passes silently.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names where."""


@dataclass
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    name: str = "smollm2-135m-instruct"  # embedded default, a hub id, or a local directory
    revision: str | None = None
    dtype: str = "auto"  # auto, per role (harness/devices.py ROLES): trained weights fp32; frozen text generation bf16 where native
    device: str = "auto"  # auto: cuda if available, else cpu
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class DataConfig:
    task: str = "quickstart"
    path: str | None = None  # overrides the task's data source (local file or hub id)
    split: str = "train"
    max_train: int | None = None
    max_eval: int | None = None
    eval_fraction: float = 0.1
    max_prompt_tokens: int = 128
    max_response_tokens: int = 64
    padding_side: str = "right"


@dataclass
class LossConfig:
    kind: str = "dpo"  # dpo | ipo | slic | cdpo | rdpo | soft: losses.LOSSES (algos dpo, oaif; sft and reward_model have their own)
    beta: float = 0.1
    label_smoothing: float = 0.0  # cdpo: assumed label-noise rate
    flip_rate: float = 0.0  # rdpo: known flip rate
    margin: float = 1.0  # slic hinge margin (in units of beta-scaled log-ratio)
    sft_weight: float = 0.0  # optional NLL on chosen, added to the preference loss


@dataclass
class TrainConfig:
    steps: int = 30
    batch_size: int = 4  # pairs (or prompts) per optimizer step, global
    grad_accum: int = 1
    lr: float = 5e-6
    weight_decay: float = 0.0
    warmup_steps: int = 2
    schedule: str = "linear"  # linear | cosine | constant (warmup first), from transformers.get_scheduler: trainer.SCHEDULES
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16: autocast over fp32 weights (devices.resolve_mixed_precision)
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 10
    eval_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    report_to: list[str] = field(default_factory=list)  # experiment trackers: tensorboard | mlflow | wandb (harness/trackers.py)


@dataclass
class SamplingConfig:
    backend: str = "transformers"  # transformers | vllm
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    sync_every: int = 1  # vllm: push policy weights every k steps
    vllm_url: str | None = None  # vllm: a served engine (`vllm serve`, docs/vllm.md); None: vllm.LLM in-process
    batch_size: int = 16
    dtype: str = "auto"  # transformers: auto = a bf16 copy synced every step where bf16 is native, else the policy itself; bf16/fp16/fp32 = a copy in that dtype, synced every sync_every steps


@dataclass
class JudgeRef:
    name: str = "smollm2-logprob"  # a judges/configs/<name>.yaml, a rule id, or rm:<run-id>
    instruction: str | None = None  # the controllability knob of the OAIF paper
    mode: str | None = None  # logprob | generate (None: the judge config's own)
    both_orders: bool | None = None
    # judge validity card (harness/evaluation/validity.py), checked before OAIF trains with this judge
    min_consistency: float = 0.5  # train stops when position consistency is below this
    allow_biased: bool = False  # true: train anyway (a warning names the figure)
    validity_pairs: int = 32  # held-out human-labelled pairs per dataset (PandaLM, LLMBar), both orders
    validity_data: str | None = None  # folder with pandalm_testset/ and llmbar/ (default ../shared/data)


@dataclass
class OaifConfig:
    tie_policy: str = "skip"  # skip | soft
    missing_eos_penalty: float | None = None
    # responses sampled per prompt; the pair is the annotator's best vs worst (Copeland over the
    # k(k-1)/2 pairwise verdicts, algorithms/pairs.py); 2 = one pair per prompt. The offline arm too.
    k: int = 2
    # equal decided-pair budgets (docs/study.md): every step trains on train.batch_size DECIDED pairs;
    # OAIF draws more prompts until it has them, an offline run refuses to cycle its pairs
    equal_budget: bool = False
    max_calls_per_step: int = 0  # annotator calls (pairs asked) one step may spend; 0: 4 x batch_size x k(k-1)/2


@dataclass
class RLConfig:
    method: str = "rloo"  # rloo | ppo
    k: int = 2  # samples per prompt
    kl_coef: float = 0.05
    reward_model: str | None = None  # judge name providing a scalar reward, e.g. rm:<run-id>
    clip_range: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    ppo_epochs: int = 1
    whiten_rewards: bool = False


@dataclass
class RewardModelConfig:
    annotators: list[str] = field(default_factory=list)  # label-store annotator ids (human: RLHF, AI: RLAIF); empty: the task's preference data
    dataset: str | None = None  # only pairs of this store dataset (e.g. hh-rlhf)
    labels: str = "hard"  # hard: majority verdict per pair | soft: mean p(A better) as the BT target
    calibration_bins: int = 10


@dataclass
class RunConfig:
    algo: str = "dpo"  # sft | dpo | oaif | reward_model | rlhf
    name: str | None = None
    resume: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judge: JudgeRef = field(default_factory=JudgeRef)
    oaif: OaifConfig = field(default_factory=OaifConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    init_from: str | None = None  # a run id or checkpoint dir to start the policy from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; convert int->float only. Names `where` on error."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is dict or tp is dict:  # dict[str, X]: a mapping of names to X (plain dict: any mapping)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        inner = typing.get_args(tp)[1] if typing.get_args(tp) else None
        return {str(k): (v if inner is None else _coerce(v, inner, f"{where}.{k}")) for k, v in value.items()}
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected float, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected bool, got {value!r}")
        return value
    if tp is str:
        if value is False and where.endswith("train.mixed_precision"):
            return "no"  # YAML 1.1 reads a bare `no` as false; accelerate's name for "no autocast" is "no"
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected str, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where.rstrip(':')}: unknown key(s) {', '.join(where_join(where, k) for k in unknown)}; "
                          f"known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], where_join(where, k)) for k, v in data.items()}
    return cls(**kwargs)


def where_join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and not where.endswith(":") else f"{where}{key}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (['a','b'], value); the value is parsed as YAML (so 3, 0.1, true, [x, y] work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"override {text!r}: value is not valid YAML ({problem}); quote it, e.g. "
                          f"{key}='\"...\"'") from None
    # keep strings like model names that YAML would read as something else
    if isinstance(value, (dict,)) or (raw and value is None and raw.lower() not in ("null", "~", "none")):
        value = raw
    if isinstance(raw, str) and raw.lower() == "none":
        value = None
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def read_yaml_mapping(path: str | Path, empty_ok: bool = True) -> dict:
    """A YAML file (safe loader) that must hold a mapping; errors name the file, and the line for
    YAML syntax errors."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(f"{path}:{line} invalid YAML: {e}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                defaults: dict | None = None) -> RunConfig:
    """Read YAML (safe loader), apply `a.b=value` overrides, validate into a RunConfig."""
    data: dict = json.loads(json.dumps(defaults or {}))
    where = "config:"
    if path is not None:
        where = f"{path}:"
        _deep_update(data, read_yaml_mapping(path))
    apply_overrides(data, overrides or [])
    cfg = _build(RunConfig, data, where)
    validate(cfg, where)
    return cfg


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def validate(cfg: RunConfig, where: str = "config:") -> None:
    def bad(key, msg):
        raise ConfigError(f"{where_join(where, key)}: {msg}")

    from .algorithms import ALGORITHMS  # the registry is the list of allowed values

    if cfg.algo not in ALGORITHMS:
        bad("algo", f"{cfg.algo!r} is not one of {', '.join(ALGORITHMS)}")
    from .losses import LOSSES

    if cfg.loss.kind not in LOSSES:
        own = {"sft": "algo: sft trains the NLL of the responses", "bt": "algo: reward_model trains Bradley-Terry"}
        bad("loss.kind", f"unknown loss {cfg.loss.kind!r}; known: {', '.join(LOSSES)}"
            + (f" ({own[cfg.loss.kind]} whatever loss.kind says: leave it out)" if cfg.loss.kind in own else ""))
    if cfg.train.batch_size < 1 or cfg.train.grad_accum < 1:
        bad("train.batch_size", "batch_size and grad_accum must be >= 1")
    if cfg.train.batch_size % cfg.train.grad_accum:
        bad("train.grad_accum", f"batch_size {cfg.train.batch_size} is not divisible by grad_accum {cfg.train.grad_accum}")
    from .devices import MIXED_PRECISION
    from .trainer import SCHEDULES

    if cfg.train.schedule not in SCHEDULES:
        bad("train.schedule", f"unknown schedule {cfg.train.schedule!r}; known: {', '.join(SCHEDULES)}")
    if cfg.train.mixed_precision not in MIXED_PRECISION:
        bad("train.mixed_precision", f"unknown {cfg.train.mixed_precision!r}; known: {', '.join(MIXED_PRECISION)}")
    if cfg.data.padding_side not in ("left", "right"):
        bad("data.padding_side", "must be left or right")
    from .algorithms import check_config  # the chosen algorithm checks the section it owns

    check_config(cfg, bad)
    from .trackers import TRACKERS

    for name in cfg.train.report_to:
        if name not in TRACKERS:
            bad("train.report_to", f"{name!r} is not a tracker; known: {', '.join(TRACKERS)}")
    if cfg.sampling.backend not in ("transformers", "vllm"):
        bad("sampling.backend", "must be transformers or vllm")
    if not 0.0 <= cfg.judge.min_consistency <= 1.0:
        bad("judge.min_consistency", "must be in [0, 1]")
    if cfg.judge.validity_pairs < 1:
        bad("judge.validity_pairs", "must be >= 1")
    if not 0.0 <= cfg.loss.label_smoothing < 0.5:
        bad("loss.label_smoothing", "must be in [0, 0.5)")
    if not 0.0 <= cfg.loss.flip_rate < 0.5:
        bad("loss.flip_rate", "must be in [0, 0.5)")
    _check_numbers(cfg, bad)


# (key, test, what the key must be): value checks, run before any model or data is loaded
_RANGES = (
    ("train.steps", lambda v: v >= 1, ">= 1"),
    ("train.lr", lambda v: v > 0, "> 0"),
    ("train.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("train.max_grad_norm", lambda v: v > 0, "> 0"),
    ("train.weight_decay", lambda v: v >= 0, ">= 0"),
    ("train.checkpoint_every", lambda v: v >= 0, ">= 0 (0: only at the end)"),
    ("train.eval_every", lambda v: v >= 0, ">= 0 (0: only at the end)"),
    ("train.keep_checkpoints", lambda v: v >= 0, ">= 0"),
    ("loss.beta", lambda v: v > 0, "> 0"),
    ("loss.margin", lambda v: v >= 0, ">= 0"),
    ("loss.sft_weight", lambda v: v >= 0, ">= 0"),
    ("sampling.top_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("sampling.temperature", lambda v: v >= 0, ">= 0"),
    ("sampling.max_new_tokens", lambda v: v >= 1, ">= 1"),
    ("sampling.batch_size", lambda v: v >= 1, ">= 1"),
    ("sampling.sync_every", lambda v: v >= 1, ">= 1"),
    ("data.max_prompt_tokens", lambda v: v >= 1, ">= 1"),
    ("data.max_response_tokens", lambda v: v >= 1, ">= 1"),
    ("data.eval_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.max_train", lambda v: v is None or v >= 1, ">= 1 or null"),
    ("data.max_eval", lambda v: v is None or v >= 0, ">= 0 or null"),
    ("model.lora.r", lambda v: v >= 1, ">= 1"),
    ("model.lora.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
)


def _lookup(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_numbers(cfg: RunConfig, bad) -> None:
    """Every float is finite (YAML reads .nan and .inf), then each value check of _RANGES."""
    def walk(node, prefix):
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, f"{prefix}{f.name}.")
            elif isinstance(v, float) and not math.isfinite(v):
                bad(f"{prefix}{f.name}", f"must be a finite number, got {v}")
    walk(cfg, "")
    for key, ok, what in _RANGES:
        v = _lookup(cfg, key)
        if not ok(v):
            bad(key, f"must be {what}, got {v!r}")


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
