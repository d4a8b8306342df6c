"""Where an LLM judge's model runs. Every backend offers the same three calls:

  logprob(prompts, labels, batch_size) -> [BackendResult(probs={label: p})]   one forward, no generation
  generate(prompts, max_new_tokens, temperature, top_p, seed, batch_size) -> [BackendResult(text=...)]
  truncate(text, n_tokens) -> text cut to about n tokens (marked " [...]")

Backends never raise for one bad request: a failure becomes `BackendResult(error=...)`, which the
judge records as an `unparsed` label with the error as raw output (nothing lost, nothing guessed).

- transformers: local model (default the embedded SmolLM2), batched, left-padded; `dtype: auto` loads
  it with role judge (harness.devices): bf16 only where the CPU/GPU has it natively, else fp32.
- http: any OpenAI-compatible /chat/completions endpoint (`vllm serve`, llama.cpp, a provider):
  `timeout_s` bounds each WHOLE attempt (not each read: a server trickling bytes is cut off), retries
  with exponential back-off or the server's `Retry-After` (429/503, capped by `max_retry_wait_s`), a
  thread-pool concurrency limit, API key from the environment variable the config names (never
  stored or logged). Answers are checked before they are read: a non-finite or positive logprob, a
  non-string content or a missing field is an error result, never a number or a verdict.
- vllm: in-process `vllm.LLM`, imported lazily. vLLM pins its own torch and cannot be installed in
  the CPU environment here, so this adapter is kept thin and is untested on this machine.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from harness.config import ConfigError

from .backend_types import BackendResult, Prompt  # noqa: F401 (re-exported)
from .http_backend import HttpBackend, HttpBackendConfig  # noqa: F401 (re-exported)


@dataclass
class VllmBackendConfig:
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 4096
    top_logprobs: int = 20


# -- local transformers ---------------------------------------------------------------------------
_MODELS: dict[tuple, tuple] = {}  # one frozen copy per (model, dtype, device, home) per process
_MODELS_LOCK = threading.Lock()


def judge_dtype(dtype: str, device: str, where: str = "judge dtype") -> tuple[str, str]:
    """(short dtype name, reason) a judge's `dtype` resolves to on `device`: role judge, so `auto` is
    bf16 only where the device computes it natively (AVX512-BF16/AMX CPUs, most GPUs), else fp32 on CPU."""
    from harness.devices import SHORT, resolve_dtype
    from harness.models import pick_device

    resolved, why = resolve_dtype(dtype, pick_device(device), "judge", where=where)
    return SHORT[resolved], why


def _load_frozen(name: str, dtype: str, device: str, home):
    from harness.config import ModelConfig
    from harness.models import load_model

    key = (name, dtype, device, str(home))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(ModelConfig(name=name, dtype=dtype, device=device), home, for_training=False,
                                      role="judge")
        return _MODELS[key]


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_name: str, dtype: str, device: str, home=None, model=None, tokenizer=None):
        if model is None:
            model, tokenizer = _load_frozen(model_name, dtype, device, home)
        from harness.devices import SHORT

        self.model, self.tok = model, tokenizer
        param = next(model.parameters())
        self.device = param.device
        # what the judge computes in (the resolved `auto`): part of the judge's version (LLMJudge)
        self.dtype = SHORT.get(param.dtype, str(param.dtype).removeprefix("torch."))
        self._head_w = self._head_b = None

    def _head_fp32(self, hidden):
        """Output layer in fp32 on the last position only: bf16 logits are too coarse (steps of ~0.06)
        and make near answers exactly equal; the bf16 body is where the time goes anyway."""
        import torch

        head = self.model.get_output_embeddings()
        if self._head_w is None:
            self._head_w = head.weight.detach().float()
            self._head_b = None if getattr(head, "bias", None) is None else head.bias.detach().float()
        return torch.nn.functional.linear(hidden.float(), self._head_w, self._head_b)

    def check_labels(self, labels: list[str], where: str) -> None:
        for l in labels:
            ids = self.tok.encode(l, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"{where} labels: {l!r} is {len(ids)} tokens for this tokenizer; logprob mode needs "
                                  "single-token labels such as '1'/'2' or 'A'/'B'")

    def truncate(self, text: str, n_tokens: int) -> str:
        ids = self.tok.encode(text, add_special_tokens=False)
        return text if len(ids) <= n_tokens else self.tok.decode(ids[:n_tokens]) + " [...]"

    def _texts(self, prompts: list[Prompt]) -> list[str]:
        from harness.models import format_prompt

        return [format_prompt(self.tok, p.messages) + p.prefix for p in prompts]

    def _batches(self, texts: list[str], batch_size: int):
        """Index batches of similar length (less padding), each tokenised left-padded."""
        lengths = [len(self.tok.encode(t, add_special_tokens=False)) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = self.tok([texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                           add_special_tokens=False)
            yield idx, {k: v.to(self.device) for k, v in enc.items()}

    def logprob(self, prompts: list[Prompt], labels: list[str], batch_size: int = 8) -> list[BackendResult]:
        import torch

        label_ids = [self.tok.encode(l, add_special_tokens=False)[0] for l in labels]
        out: list[BackendResult | None] = [None] * len(prompts)
        for idx, enc in self._batches(self._texts(prompts), batch_size):
            t = time.perf_counter()
            mask = enc["attention_mask"]
            # positions count real tokens only, so a left-padded row sees the same positions as alone
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                hidden = self.model.get_decoder()(input_ids=enc["input_ids"], attention_mask=mask,
                                                  position_ids=pos).last_hidden_state[:, -1]
                logits = self._head_fp32(hidden)
            probs = logits.softmax(-1)
            top = probs.topk(3, dim=-1)
            dt = (time.perf_counter() - t) / len(idx)
            n_in = mask.sum(-1).tolist()
            for row, i in enumerate(idx):
                out[i] = BackendResult(
                    probs={l: probs[row, tid].item() for l, tid in zip(labels, label_ids)},
                    top=[[self.tok.decode([j]), round(v, 4)] for v, j in zip(top.values[row].tolist(), top.indices[row].tolist())],
                    tokens_in=int(n_in[row]), tokens_out=0, latency_s=dt)
        return out

    def generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 8) -> list[BackendResult]:
        import torch

        out: list[BackendResult | None] = [None] * len(prompts)
        eos = self.tok.eos_token_id
        for idx, enc in self._batches(self._texts(prompts), batch_size):
            t = time.perf_counter()
            torch.manual_seed(seed)
            kw = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=self.tok.pad_token_id, **kw)
            new = gen[:, enc["input_ids"].shape[1]:]
            dt = (time.perf_counter() - t) / len(idx)
            n_in = enc["attention_mask"].sum(-1).tolist()
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                n_out = ids.index(eos) + 1 if eos in ids else len(ids)
                out[i] = BackendResult(text=self.tok.decode(ids[:n_out], skip_special_tokens=True),
                                       tokens_in=int(n_in[row]), tokens_out=n_out, latency_s=dt)
        return out


# -- vLLM in-process (GPU extra) -------------------------------------------------------------------
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


def make_backend(cfg, where: str, home=None):
    """The backend an LLMJudgeConfig names (ONE table: transformers | http | vllm)."""
    if cfg.backend == "transformers":
        return TransformersBackend(cfg.model, cfg.dtype, cfg.device, home)
    if cfg.backend == "http":
        return HttpBackend(cfg.http, where)
    if cfg.backend == "vllm":
        return VllmBackend(cfg.model, cfg.dtype, cfg.vllm, cfg.seed, where, home)
    raise ConfigError(f"{where} backend: {cfg.backend!r} is not one of transformers, http, vllm")
