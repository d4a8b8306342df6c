"""Where an LLM judge's model runs. Every backend offers the same three calls:

  logprob(prompts, labels, batch_size) -> [BackendResult(probs={label: p})]   one forward, no generation
  (transformers also: logprob_then, two positions of one forward, for the pointwise judge's ratings)
  generate(prompts, max_new_tokens, temperature, top_p, seed, batch_size) -> [BackendResult(text=...)]
  truncate(text, n_tokens) -> text cut to about n tokens (marked " [...]")

Backends never raise for one bad request: a failure becomes `BackendResult(error=...)`, which the
judge records as an `unparsed` label with the error as raw output (nothing lost, nothing guessed).

Backends are a registry (`registry()`: name -> BackendSpec). `transformers` lives here: a local model
(default the embedded SmolLM2), batched, left-padded; `dtype: auto` loads it with role judge
(harness.devices): bf16 only where the CPU/GPU has it natively, else fp32. Every other backend is one
file, judges/<name>_backend.py, whose `BACKEND` names its options section (`<name>:` in the judge
config), its checks and the options left out of the judge's version:
- http_backend.py: any OpenAI-compatible /chat/completions endpoint (`vllm serve`, llama.cpp, a
  provider) on the `openai` client;
- vllm_backend.py: in-process `vllm.LLM` where vllm is installed next to the harness (the GPU extra,
  or vLLM's own venv from `make vllm-env`: tests/test_vllm_inprocess.py runs there).
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from functools import lru_cache
from pathlib import Path

from harness.config import ConfigError

from .backend_types import BackendResult, BackendSpec, Prompt  # noqa: F401 (re-exported)


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
        return [r for r, in self._logprob_last(self._texts(prompts), [labels], batch_size)]

    def logprob_then(self, prompts: list[Prompt], labels: list[str], token: str, next_labels: list[str],
                     batch_size: int = 8) -> list[tuple[BackendResult, BackendResult]]:
        """(logprob of `labels` after each prompt, logprob of `next_labels` after prompt + `token`) from
        ONE forward of prompt + token (the pointwise judge's two-token ratings: "1" then "0"). A prompt
        whose tokens change when `token` is appended is asked in two forwards instead."""
        texts = self._texts(prompts)
        tid = self.tok.encode(token, add_special_tokens=False)
        clean = [self.tok.encode(t + token, add_special_tokens=False) == self.tok.encode(t, add_special_tokens=False) + tid
                 for t in texts]
        out: list = [None] * len(texts)
        one = [i for i, ok in enumerate(clean) if ok and len(tid) == 1]
        for i, res in zip(one, self._logprob_last([texts[i] + token for i in one], [labels, next_labels], batch_size)):
            out[i] = res
        rest = [i for i in range(len(texts)) if out[i] is None]
        if rest:
            first = self._logprob_last([texts[i] for i in rest], [labels], batch_size)
            second = self._logprob_last([texts[i] + token for i in rest], [next_labels], batch_size)
            for i, (a,), (b,) in zip(rest, first, second):
                out[i] = (a, b)
        return out

    def _logprob_last(self, texts: list[str], label_sets: list[list[str]], batch_size: int) -> list[tuple]:
        """Per text, one BackendResult per label set: label_sets[-1] read at the last position,
        label_sets[-2] one position earlier, and so on."""
        import torch

        k = len(label_sets)
        ids = [[self.tok.encode(l, add_special_tokens=False)[0] for l in ls] for ls in label_sets]
        out: list = [None] * len(texts)
        for idx, enc in self._batches(texts, batch_size):
            t = time.perf_counter()
            mask = enc["attention_mask"]
            # positions count real tokens only, so a left-padded row sees the same positions as alone
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                hidden = self.model.get_decoder()(input_ids=enc["input_ids"], attention_mask=mask,
                                                  position_ids=pos).last_hidden_state[:, -k:]
                probs = self._head_fp32(hidden).softmax(-1)
            top = probs.topk(3, dim=-1)
            dt = (time.perf_counter() - t) / len(idx)
            n_in = mask.sum(-1).tolist()
            for row, i in enumerate(idx):
                out[i] = tuple(BackendResult(
                    probs={l: probs[row, j, tid].item() for l, tid in zip(ls, lid)},
                    top=[[self.tok.decode([x]), round(v, 4)] for v, x in zip(top.values[row, j].tolist(),
                                                                             top.indices[row, j].tolist())],
                    # the whole forward is on the first result: its cost is counted once
                    tokens_in=int(n_in[row]) if j == 0 else 0, tokens_out=0, latency_s=dt if j == 0 else 0.0)
                    for j, (ls, lid) in enumerate(zip(label_sets, ids)))
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


# -- the registry: `backend: <name>` -> BackendSpec ------------------------------------------------
TRANSFORMERS = BackendSpec(
    name="transformers",
    make=lambda judge_cfg, options, where, home=None: TransformersBackend(judge_cfg.model, judge_cfg.dtype,
                                                                         judge_cfg.device, home),
    doc="a local transformers model (default the embedded SmolLM2), batched, left-padded")


@lru_cache(maxsize=None)
def registry() -> dict[str, BackendSpec]:
    """Every judge backend: transformers, plus the BACKEND of each judges/<name>_backend.py (found by
    file name, so adding a backend is one file). Read lazily: those modules import this one."""
    found = {"transformers": TRANSFORMERS}
    for mod in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if not mod.name.endswith("_backend"):
            continue
        spec = getattr(importlib.import_module(f"judges.{mod.name}"), "BACKEND", None)
        if not isinstance(spec, BackendSpec) or spec.name != mod.name.removesuffix("_backend"):
            raise RuntimeError(f"judges/{mod.name}.py: needs BACKEND = BackendSpec(name={mod.name.removesuffix('_backend')!r}, ...)")
        found[spec.name] = spec
    return found


def backend_spec(name: str, where: str) -> BackendSpec:
    specs = registry()
    if name not in specs:
        raise ConfigError(f"{where} backend: {name!r} is not one of {', '.join(specs)}")
    return specs[name]


def make_backend(cfg, options, where: str, home=None):
    """The backend an LLMJudgeConfig names, built by its registry entry with its options section."""
    return backend_spec(cfg.backend, where).make(cfg, options, where, home)
