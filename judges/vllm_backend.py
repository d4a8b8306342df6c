"""In-process vLLM judge backend (`backend: vllm`, GPU extra), imported lazily.

vLLM pins its own torch and cannot be installed in the CPU environment here, so this adapter is kept
thin and only its missing-package error is tested on this machine.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from harness.config import ConfigError

from .backend_types import BackendResult, BackendSpec
from .backends import TransformersBackend, judge_dtype


@dataclass
class VllmBackendConfig:
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 4096
    top_logprobs: int = 20



class VllmBackend:
    """Same calls through `vllm.LLM`. Thin on purpose: vLLM cannot be installed next to the CPU torch
    here, so only its missing-package error is tested on this machine."""

    name = "vllm"

    def __init__(self, model_name: str, dtype: str, cfg: VllmBackendConfig, seed: int, where: str, home=None):
        try:
            import vllm
        except ImportError:
            raise ConfigError(f"{where} backend: vllm needs the vllm package (GPU only: pip install "
                              "'feedback-harness[vllm]'); it is not installed. Use backend: transformers, or "
                              "backend: http against a `vllm serve` endpoint") from None
        from harness.models import resolve_model

        self._vllm = vllm
        self.dtype, _ = judge_dtype(dtype, "cuda", f"{where} dtype")  # vLLM runs on a GPU
        self.llm = vllm.LLM(model=resolve_model(model_name, home),
                            dtype={"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}[self.dtype],
                            gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len, seed=seed)
        self.tok = self.llm.get_tokenizer()
        self.cfg = cfg

    check_labels = TransformersBackend.check_labels
    truncate = TransformersBackend.truncate
    _texts = TransformersBackend._texts

    def logprob(self, prompts, labels, batch_size=8):
        label_ids = [self.tok.encode(l, add_special_tokens=False)[0] for l in labels]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.cfg.top_logprobs)
        t = time.perf_counter()
        outs = self.llm.generate(self._texts(prompts), params, use_tqdm=False)
        dt = (time.perf_counter() - t) / max(len(prompts), 1)
        res = []
        for o in outs:
            lp = o.outputs[0].logprobs[0]  # {token_id: Logprob}; answer tokens outside the top-k count as 0
            res.append(BackendResult(probs={l: math.exp(lp[i].logprob) if i in lp else 0.0 for l, i in zip(labels, label_ids)},
                                     tokens_in=len(o.prompt_token_ids), tokens_out=0, latency_s=dt))
        return res

    def generate(self, prompts, max_new_tokens, temperature=0.0, top_p=1.0, seed=0, batch_size=8):
        params = self._vllm.SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        t = time.perf_counter()
        outs = self.llm.generate(self._texts(prompts), params, use_tqdm=False)
        dt = (time.perf_counter() - t) / max(len(prompts), 1)
        return [BackendResult(text=o.outputs[0].text, tokens_in=len(o.prompt_token_ids),
                              tokens_out=len(o.outputs[0].token_ids), latency_s=dt) for o in outs]


def _validate(v: VllmBackendConfig, where: str) -> None:
    if not 0.0 < v.gpu_memory_utilization <= 1.0 or v.max_model_len < 1 or v.top_logprobs < 1:
        raise ConfigError(f"{where} vllm: 0 < gpu_memory_utilization <= 1, max_model_len >= 1 and top_logprobs >= 1 "
                          "are required")


BACKEND = BackendSpec(
    name="vllm", options=VllmBackendConfig, validate=_validate,
    make=lambda judge_cfg, options, where, home=None: VllmBackend(judge_cfg.model, judge_cfg.dtype, options,
                                                                 judge_cfg.seed, where, home),
    doc="in-process vllm.LLM on a GPU (the vllm extra)")
