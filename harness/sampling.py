"""Sampling backends: transformers `generate` (CPU/GPU) here, vLLM in harness/vllm_sampling.py.

Both give `sampler.sample(prompts, n) -> list[list[Sample]]` (n samples per prompt, in prompt
order) and `sampler.update(model, step)`, called before each step's sampling so the backend samples
the *current* policy: the transformers backend uses the live model; vLLM (a served engine or an
in-process one) gets the policy's weights pushed into its engine every `sampling.sync_every` steps.

Randomness comes from the global torch RNG (transformers) or a seed drawn from it per call that
seeds each request (vLLM), so the trainer's RNG checkpoint makes a resumed run sample what the
interrupted one did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .config import DataConfig, SamplingConfig
from .logprobs import encode_prompt


class SamplingError(ValueError):
    pass


@dataclass
class Sample:
    text: str  # decoded response, special tokens and EOS removed
    token_ids: list[int]  # generated ids up to and including EOS (no padding)
    n_tokens: int  # len(token_ids)
    truncated: bool  # no EOS within max_new_tokens
    logprobs: list[float] | None = None  # vLLM: the engine's log-prob of each sampled token (the sync check)

    def as_row(self, prompt: str, index: int, policy: str | None = None, meta: dict | None = None) -> dict:
        """The row `Store.add_samples` takes."""
        return {"prompt": prompt, "response": self.text, "policy": policy, "n_tokens": self.n_tokens,
                "truncated": self.truncated, "index": index, "meta": meta or {}}


def eos_ids(tokenizer, model=None) -> set[int]:
    """Every id that ends a response: the tokenizer's EOS and the generation config's (may be a list)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None) if model is not None else None
    extra = getattr(gen, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(i) for i in extra)
    return ids


def split_generated(tokenizer, ids: Sequence[int], eos: set[int], max_new_tokens: int) -> Sample:
    """Cut one row of generated ids at its first EOS; the rest is padding."""
    ids = list(ids)
    end = next((i for i, t in enumerate(ids) if t in eos), None)
    kept = ids[:end + 1] if end is not None else ids[:max_new_tokens]
    body = kept[:-1] if end is not None else kept
    text = tokenizer.decode(body, skip_special_tokens=True)
    return Sample(text=text, token_ids=kept, n_tokens=len(kept), truncated=end is None)


class TransformersSampler:
    """Batched `generate` with the KV cache and left padding; greedy when temperature == 0."""

    def __init__(self, sampling_cfg: SamplingConfig, model, tokenizer, data_cfg: DataConfig,
                 system: str | None = None, top_k: int = 0, min_new_tokens: int = 0):
        self.cfg, self.model, self.tokenizer, self.data_cfg = sampling_cfg, model, tokenizer, data_cfg
        self.system = system
        self.top_k = top_k  # 0: off, so only temperature / top_p shape the distribution (as configured)
        self.min_new_tokens = min_new_tokens  # benches: > 0 holds EOS back so both sides sample equal lengths
        self.eos = eos_ids(tokenizer, model)
        if not self.eos:
            raise SamplingError("sampling: the tokenizer has no eos_token_id; truncation cannot be detected")
        if getattr(sampling_cfg, "dtype", "auto") not in ("auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"):
            raise SamplingError(f"sampling.dtype: {sampling_cfg.dtype!r} is not auto, bf16, fp16 or fp32")
        self.copy = self.copy_source = self.synced_step = None
        self.update(model, 0)

    def update(self, model, step: int) -> None:
        """Sample `model` from now on; with `sampling.dtype` set, refresh the low-precision copy
        every `sync_every` steps (like the vLLM backend, a sampling-only copy of the policy)."""
        self.model = model
        dtype = self._copy_dtype(model)
        if dtype is None:
            self.copy, self.synced_step = None, None
            return
        every = max(1, self.cfg.sync_every)
        if self.copy is None or self.copy_source is not model:
            import copy as _copy

            self.copy = _copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
            self.copy_source, self.synced_step = model, step
        elif self.synced_step is None or step - self.synced_step >= every:
            with torch.no_grad():
                self.copy.load_state_dict(model.state_dict())  # casts into the copy's dtype
            self.synced_step = step

    def _copy_dtype(self, model):
        """The sampling copy's dtype, or None (sample the policy itself): devices.resolve_dtype, role
        sampling, own = the policy's dtype, so `auto` (or the policy's own dtype) means no copy."""
        from .devices import resolve_dtype

        param = next(model.parameters())
        dtype, _ = resolve_dtype(getattr(self.cfg, "dtype", "auto"), param.device, "sampling", own=param.dtype,
                                 where="sampling.dtype")
        return None if dtype == param.dtype else dtype

    def generation_config(self):
        from transformers import GenerationConfig

        greedy = self.cfg.temperature <= 0
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos)
        kw = dict(max_new_tokens=self.cfg.max_new_tokens, do_sample=not greedy, pad_token_id=pad,
                  eos_token_id=sorted(self.eos), use_cache=True)
        if self.min_new_tokens:
            kw["min_new_tokens"] = self.min_new_tokens
        if not greedy:
            kw.update(temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=self.top_k)
        return GenerationConfig(**kw)

    @torch.no_grad()
    def sample(self, prompts: Sequence[str | list[dict]], n: int = 1) -> list[list[Sample]]:
        if n < 1:
            raise SamplingError(f"sampling: n must be >= 1, got {n}")
        encoded = [encode_prompt(self.tokenizer, p, self.data_cfg.max_prompt_tokens, self.system) for p in prompts]
        rows = [ids for ids in encoded for _ in range(n)]  # prompt i's samples are rows i*n .. i*n+n-1
        gen_cfg = self.generation_config()
        model = self.copy if self.copy is not None else self.model
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # no dropout (LoRA) while sampling
        out: list[Sample] = []
        try:
            size = max(1, self.cfg.batch_size)
            for start in range(0, len(rows), size):
                out += self._generate(model, rows[start:start + size], gen_cfg, device)
        finally:
            model.train(was_training)
        return [out[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _generate(self, model, rows: list[list[int]], gen_cfg, device) -> list[Sample]:
        width = max(len(r) for r in rows)
        pad = gen_cfg.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: every row's next token is at the same column
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            attention[i, width - len(r):] = 1
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                        generation_config=gen_cfg)
        new = generated[:, width:].tolist()
        return [split_generated(self.tokenizer, ids, self.eos, self.cfg.max_new_tokens) for ids in new]


def make_sampler(sampling_cfg: SamplingConfig, model, tokenizer, data_cfg: DataConfig, system: str | None = None,
                 **kw):
    """The configured backend; both share `sample(prompts, n)` and `update(model, step)`."""
    if sampling_cfg.backend == "transformers":
        return TransformersSampler(sampling_cfg, model, tokenizer, data_cfg, system, **kw)
    if sampling_cfg.backend == "vllm":
        from .vllm_sampling import VllmSampler  # its own module, which imports this one

        return VllmSampler(sampling_cfg, model, tokenizer, data_cfg, system, **kw)
    raise SamplingError(f"sampling.backend: unknown backend {sampling_cfg.backend!r} (transformers, vllm)")


def mean_length(samples: Sequence[Sample]) -> float:
    return sum(s.n_tokens for s in samples) / len(samples) if samples else math.nan
