"""In-process vLLM judge backend (`backend: vllm`): `vllm.LLM` where vllm is installed next to the
harness (the GPU extra, or vLLM's own venv from `make vllm-env`), imported lazily. A served vLLM is
the http backend instead (judges/configs/vllm-served-*.yaml).

The engine is harness.vllm_sampling.InProcessEngine (engine core in this process; on a CPU without
chunked prefill, so a seeded request cannot kill it). Prompts go in as token ids encoded as the
transformers backend encodes them (chat template + answer prefix, no special tokens added), so both
backends read the same tokens: tests/test_vllm_inprocess.py compares their answers.
"""
from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass

from harness.config import ConfigError

from .backend_types import BackendResult, BackendSpec
from .backends import TransformersBackend, judge_dtype

VLLM_DTYPES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
_ENGINES: dict[tuple, object] = {}  # one engine per (model, dtype, limits) per process, as the transformers judge


@dataclass
class VllmBackendConfig:
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 4096
    top_logprobs: int = 20


class VllmBackend:
    """The backend calls (judges/backends.py) through an in-process `vllm.LLM`."""

    name = "vllm"

    def __init__(self, model_name: str, dtype: str, cfg: VllmBackendConfig, seed: int, where: str, home=None):
        if importlib.util.find_spec("vllm") is None:  # its own torch/transformers pins
            raise ConfigError(f"{where} backend: vllm needs the vllm package (pip install 'feedback-harness[vllm]' on "
                              "a GPU, or run in vLLM's venv: make vllm-env); it is not installed. Use backend: "
                              "transformers, or backend: http against a `vllm serve` endpoint (vllm-served-logprob)")
        import torch

        from harness.models import resolve_model
        from harness.vllm_sampling import InProcessEngine

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype, _ = judge_dtype(dtype, device, f"{where} dtype")
        key = (resolve_model(model_name, home), VLLM_DTYPES[self.dtype], seed, cfg.max_model_len,
               cfg.gpu_memory_utilization)
        if key not in _ENGINES:
            _ENGINES[key] = InProcessEngine(key[0], key[1], seed=seed, max_model_len=cfg.max_model_len,
                                            gpu_memory_utilization=cfg.gpu_memory_utilization)
        self.engine = _ENGINES[key]
        self.llm, self._vllm = self.engine.llm, self.engine.vllm
        self.tok = self.llm.get_tokenizer()
        self.cfg = cfg

    check_labels = TransformersBackend.check_labels
    truncate = TransformersBackend.truncate
    _texts = TransformersBackend._texts

    def _inputs(self, prompts) -> list[dict]:
        return [{"prompt_token_ids": self.tok.encode(t, add_special_tokens=False)} for t in self._texts(prompts)]

    def logprob(self, prompts, labels, batch_size=8):
        label_ids = [self.tok.encode(l, add_special_tokens=False)[0] for l in labels]
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=self.cfg.top_logprobs)
        t = time.perf_counter()
        outs = self.llm.generate(self._inputs(prompts), params, use_tqdm=False)
        dt = (time.perf_counter() - t) / max(len(prompts), 1)
        res = []
        for o in outs:
            lp = o.outputs[0].logprobs[0]  # {token_id: Logprob}; answer tokens outside the top-k count as 0
            top = sorted(lp.items(), key=lambda kv: -kv[1].logprob)[:3]
            res.append(BackendResult(probs={l: math.exp(lp[i].logprob) if i in lp else 0.0 for l, i in zip(labels, label_ids)},
                                     top=[[self.tok.decode([i]), round(math.exp(v.logprob), 4)] for i, v in top],
                                     tokens_in=len(o.prompt_token_ids), tokens_out=0, latency_s=dt))
        return res

    def generate(self, prompts, max_new_tokens, temperature=0.0, top_p=1.0, seed=0, batch_size=8):
        params = self._vllm.SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                           seed=seed if temperature > 0 else None)
        t = time.perf_counter()
        outs = self.llm.generate(self._inputs(prompts), params, use_tqdm=False)
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
    doc="in-process vllm.LLM (the vllm extra on a GPU, or vLLM's venv: make vllm-env)")
