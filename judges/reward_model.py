"""Reward-model judge: p(A better) = sigmoid(r_A - r_B) from a scalar reward model.

`rm:<spec>` names, where spec is
  - a run id of an `algo: reward_model` run in the store: its newest complete checkpoint (the final
    one once the run is done), loaded on the run's own model config (LoRA included);
  - a harness checkpoint directory (`<home>/<run>/checkpoints/step-N`);
  - a local directory or hub id of any HF sequence-classification model with one label.
The judge also gives `.score(prompts, responses)`: the scalar rewards RL trains on. Asking both
orders gives the same answer (the rewards do not see an order), so it asks one by default.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch

from harness.config import DataConfig, ModelConfig, load_config
from harness.records import Annotator, Label, Pair, content_hash


@dataclass
class RewardModelJudge:
    model: torch.nn.Module
    tokenizer: object
    data_cfg: DataConfig
    spec: str
    version: str
    config: dict = field(default_factory=dict)
    batch_size: int = 8
    orders: tuple[str, ...] = ("AB",)
    tie_band: float = 0.0
    annotator: Annotator = field(init=False)

    def __post_init__(self):
        self.annotator = Annotator(kind="reward_model", id=f"rm:{self.spec}", version=self.version, config=self.config)

    @torch.no_grad()
    def score(self, prompts: Sequence, responses: Sequence[str],
              references: Sequence[str | None] | None = None) -> list[float]:
        """One reward per (prompt, response); references are not used by a reward model."""
        from harness.algorithms.reward_model import reward_scores

        if len(prompts) != len(responses):
            raise ValueError(f"rm:{self.spec}: {len(prompts)} prompts but {len(responses)} responses")
        out: list[float] = []
        for i in range(0, len(prompts), self.batch_size):
            out += reward_scores(self.model, self.tokenizer, list(prompts[i:i + self.batch_size]),
                                 list(responses[i:i + self.batch_size]), self.data_cfg).tolist()
        return out

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        pairs = list(pairs)
        if not pairs:
            return []
        t = time.perf_counter()
        rewards = self.score([p.prompt for p in pairs] * 2, [p.response_a for p in pairs] + [p.response_b for p in pairs])
        dt = (time.perf_counter() - t) / len(pairs)
        n = len(pairs)
        out = []
        for i, p in enumerate(pairs):
            ra, rb = rewards[i], rewards[n + i]
            p_a = 1.0 / (1.0 + math.exp(-(ra - rb))) if math.isfinite(ra - rb) else (1.0 if ra > rb else 0.0)
            verdict = "tie" if abs(p_a - 0.5) <= self.tie_band else ("A" if p_a > 0.5 else "B")
            raw = json.dumps({"r_a": ra, "r_b": rb})
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o, p_a=p_a,
                              raw_output=raw, latency_s=dt, tokens_in=None, tokens_out=0, cost=0.0,
                              meta={"r_a": ra, "r_b": rb}) for o in orders])
        return out


def _run_checkpoint(store, run_id: str) -> tuple[dict, Path]:
    run = store.get_run(run_id)
    if run["algo"] != "reward_model":
        raise ValueError(f"rm:{run_id}: run {run_id} is an algo={run['algo']} run, not a reward model")
    ckpt = store.latest_checkpoint(run_id)
    if ckpt is None:
        raise ValueError(f"rm:{run_id}: the run has no complete checkpoint under {store.checkpoints_dir(run_id)}")
    return run["config"], ckpt


def load_reward_judge(spec: str, home=None, device: str | None = None, batch_size: int = 8) -> RewardModelJudge:
    """The reward-model judge `rm:<spec>` names (spec without the `rm:` prefix)."""
    from harness.models import load_model
    from harness.store import Store, StoreError

    spec = spec.removeprefix("rm:")
    if not spec:
        raise ValueError("rm:<run-id-or-path>: empty spec")
    config, ckpt = None, None
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "trainer_state.json").exists():  # a harness checkpoint directory
        ckpt = path
        cfg_file = path.parent.parent / "config.yaml"
        if not cfg_file.exists():
            raise ValueError(f"rm:{spec}: {cfg_file} (the run's config) not found next to the checkpoint")
        import yaml

        config = yaml.safe_load(cfg_file.read_text())
    elif not path.exists():
        store = Store(home)
        try:
            config, ckpt = _run_checkpoint(store, spec)
        except StoreError:
            if spec.startswith((".", "/", "~")):
                raise ValueError(f"rm:{spec}: no such directory") from None
            config = None  # not a run: a hub id
    if config is not None:
        cfg = load_config(defaults=config)
        model_cfg = cfg.model
        if device:
            model_cfg = replace(model_cfg, device=device)
        model, tok = load_model(model_cfg, home, for_training=False, init_from=ckpt, causal_lm=False)
        data_cfg = cfg.data
        step = json.loads((ckpt / "trainer_state.json").read_text()).get("step")
        version = content_hash("rm", str(ckpt.resolve()), step, cfg.model.name, n=12)
        meta = {"run_config": cfg.model.name, "checkpoint": str(ckpt), "step": step}
    else:
        model_cfg = ModelConfig(name=spec, device=device or "auto")
        model, tok = load_model(model_cfg, home, for_training=False, causal_lm=False)
        data_cfg = DataConfig(max_prompt_tokens=512, max_response_tokens=512)
        version = content_hash("rm", spec, getattr(model.config, "_commit_hash", None), n=12)
        meta = {"model": spec}
    if getattr(model.config, "num_labels", 1) != 1:
        raise ValueError(f"rm:{spec}: a reward model needs one output label, the model has {model.config.num_labels}")
    model.eval()
    return RewardModelJudge(model=model, tokenizer=tok, data_cfg=data_cfg, spec=spec, version=version, config=meta,
                            batch_size=batch_size)
