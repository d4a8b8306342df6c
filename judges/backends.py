"""Where an LLM judge's model runs. Every backend offers the same three calls:

  logprob(prompts, labels, batch_size) -> [BackendResult(probs={label: p})]   one forward, no generation
  generate(prompts, max_new_tokens, temperature, top_p, seed, batch_size) -> [BackendResult(text=...)]
  truncate(text, n_tokens) -> text cut to about n tokens (marked " [...]")

Backends never raise for one bad request: a failure becomes `BackendResult(error=...)`, which the
judge records as an `unparsed` label with the error as raw output (nothing lost, nothing guessed).

- transformers: local model (default the embedded SmolLM2), batched, left-padded.
- http: any OpenAI-compatible /chat/completions endpoint (`vllm serve`, llama.cpp, a provider):
  timeouts, retries with exponential back-off, a thread-pool concurrency limit, API key from the
  environment variable the config names (never stored or logged).
- vllm: in-process `vllm.LLM`, imported lazily. vLLM pins its own torch and cannot be installed in
  the CPU environment here, so this adapter is kept thin and is untested on this machine.
"""
from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.config import ConfigError


@dataclass
class HttpBackendConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the name the server knows the model by
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    timeout_s: float = 60.0
    max_retries: int = 3  # retries after the first attempt, on timeouts, connection errors, 429/5xx, garbage
    backoff_s: float = 1.0  # wait backoff_s * 2^attempt between attempts
    concurrency: int = 8  # requests in flight at once
    logprobs: bool = True  # logprob mode: ask for top_logprobs; servers without them -> the text is parsed
    top_logprobs: int = 20
    continue_prefix: bool = True  # send answer_prefix as a final assistant turn to continue (vLLM, llama.cpp)


@dataclass
class VllmBackendConfig:
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 4096
    top_logprobs: int = 20


@dataclass
class Prompt:
    messages: list[dict]  # chat messages
    prefix: str = ""  # text the assistant's answer starts with


@dataclass
class BackendResult:
    text: str = ""
    probs: dict | None = None  # logprob mode: {label: probability}
    top: list | None = None  # the most likely next tokens, for the raw output
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    error: str | None = None


# -- local transformers ---------------------------------------------------------------------------
_MODELS: dict[tuple, tuple] = {}  # one frozen copy per (model, dtype, device, home) per process
_MODELS_LOCK = threading.Lock()


def _load_frozen(name: str, dtype: str, device: str, home):
    from harness.config import ModelConfig
    from harness.models import load_model

    key = (name, dtype, device, str(home))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(ModelConfig(name=name, dtype=dtype, device=device), home, for_training=False)
        return _MODELS[key]


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_name: str, dtype: str, device: str, home=None, model=None, tokenizer=None):
        if model is None:
            model, tokenizer = _load_frozen(model_name, dtype, device, home)
        self.model, self.tok = model, tokenizer
        self.device = next(model.parameters()).device
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


# -- OpenAI-compatible HTTP ------------------------------------------------------------------------
class _Retryable(Exception):
    pass


class HttpBackend:
    name = "http"

    def __init__(self, cfg: HttpBackendConfig, where: str = "judge:"):
        import httpx

        self.cfg = cfg
        headers = {"Content-Type": "application/json"}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"{where} http.api_key_env: environment variable {cfg.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._client = httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), headers=headers)

    def close(self) -> None:
        self._client.close()

    def check_labels(self, labels: list[str], where: str) -> None:
        pass  # the server's tokenizer is not known here; labels are matched on the returned token text

    def truncate(self, text: str, n_tokens: int) -> str:
        # no tokenizer for a remote model: whitespace words stand in for tokens (a word is >= 1 token)
        words = text.split()
        return text if len(words) <= n_tokens else " ".join(words[:n_tokens]) + " [...]"

    def _body(self, p: Prompt, **kw) -> dict:
        messages = list(p.messages)
        body = {"model": self.cfg.model, **kw}
        if p.prefix and self.cfg.continue_prefix:
            messages.append({"role": "assistant", "content": p.prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        return body

    def _post(self, body: dict) -> tuple[dict | None, str | None]:
        """One request with retries; (json, None) or (None, error). Never raises for server trouble."""
        import httpx

        err = "no attempt made"
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                r = self._client.post(self.url, json=body)
                if r.status_code == 429 or r.status_code >= 500:
                    raise _Retryable(f"HTTP {r.status_code}: {r.text[:200]!r}")
                if r.status_code >= 400:  # our request is wrong: asking again will not help
                    return None, f"HTTP {r.status_code}: {r.text[:200]!r}"
                try:
                    data = r.json()
                    data["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    raise _Retryable(f"malformed response: {r.text[:200]!r}") from None
                return data, None
            except httpx.TimeoutException:
                err = f"timeout after {self.cfg.timeout_s}s"
            except httpx.TransportError as e:
                err = f"connection error: {type(e).__name__}: {e}"
            except _Retryable as e:
                err = str(e)
        return None, f"{err} (gave up after {attempts} attempts)"

    def _one(self, body: dict, labels: list[str] | None) -> BackendResult:
        t = time.perf_counter()
        data, err = self._post(body)
        dt = time.perf_counter() - t
        if err:
            return BackendResult(error=err, latency_s=dt)
        usage = data.get("usage") or {}
        res = BackendResult(tokens_in=usage.get("prompt_tokens"), tokens_out=usage.get("completion_tokens"), latency_s=dt)
        try:
            choice = data["choices"][0]
            res.text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
            if labels is not None:
                content = ((choice.get("logprobs") or {}).get("content")) or []
                if content:
                    tops = content[0].get("top_logprobs") or [content[0]]
                    probs = {l: 0.0 for l in labels}
                    for t_ in tops:
                        tok = str(t_["token"]).strip()
                        if tok in probs:  # "1" and " 1" are the same answer
                            probs[tok] += math.exp(float(t_["logprob"]))
                    res.probs = probs
                    res.top = [[t_["token"], round(math.exp(float(t_["logprob"])), 4)] for t_ in tops[:3]]
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            return BackendResult(error=f"malformed response: {type(e).__name__}: {e}", latency_s=dt)
        return res

    def _map(self, bodies: list[dict], labels) -> list[BackendResult]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda b: self._one(b, labels), bodies))

    def logprob(self, prompts: list[Prompt], labels: list[str], batch_size: int = 8) -> list[BackendResult]:
        kw = dict(max_tokens=1, temperature=0.0)
        if self.cfg.logprobs:
            kw.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
        return self._map([self._body(p, **kw) for p in prompts], labels)

    def generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 8) -> list[BackendResult]:
        return self._map([self._body(p, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
                          for p in prompts], None)


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
        self.llm = vllm.LLM(model=resolve_model(model_name, home), dtype={"bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype),
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
