"""vLLM as the sampler of OAIF / RL (`sampling.backend: vllm`): a served engine or an in-process one.

`sampling.vllm_url` set: the engine is a `vllm serve` process (its own venv, e.g. `make vllm-env`;
harness/vllm_server.py starts one). Unset: an in-process `vllm.LLM` (vllm installed next to the
trainer, the GPU extra). Both run the harness's worker extension (harness/vllm_worker.py), and the
sampler drives them alike through `rpc(method, *args)` and `generate(...)`:

- weights: before a step's sampling, every `sampling.sync_every` steps, the policy's full weights
  (a LoRA adapter merged in, the policy untouched) go to the engine: a safetensors file (/dev/shm
  where there is one) that the engine loads in place; the prefix cache is dropped after.
- randomness: each `sample` call draws one seed from the torch RNG (the trainer checkpoints it, so a
  resumed step draws it again) and from it one seed per prompt (vLLM seeds a request's j-th sample
  with seed + j). A per-request seed gives each request its own generator, so the samples do not
  depend on how the engine batches the requests (reseeding the engine's global RNG before a batch
  does not repeat samples on a served engine: concurrent requests join its batches in varying
  order). A CPU engine dies of a seeded request whose prompt is prefilled in chunks ("CPU Generator
  does not use offset"): the sampler refuses a CPU engine with chunked prefill on, and starts its
  in-process CPU engine without it.
- every Sample carries the engine's log-prob of each sampled token (`Sample.logprobs`): the check that
  the engine samples the current policy compares them with harness.logprobs on the trainer side.
"""
from __future__ import annotations

import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import httpx
import torch
from safetensors.torch import save_file

from .logprobs import encode_prompt
from .sampling import SamplingError, eos_ids, split_generated

WORKER_EXTENSION = "harness.vllm_worker.HarnessWorker"


class ServedEngine:
    """A `vllm serve` process over HTTP: /v1/completions with token ids, /collective_rpc (dev mode)."""

    def __init__(self, url: str, model: str | None = None, timeout_s: float = 600.0, concurrency: int = 16):
        self.root = url.rstrip("/").removesuffix("/v1")
        self.http = httpx.Client(timeout=timeout_s)
        self.concurrency = concurrency
        self.model = model or self._served_model()

    def _post(self, path: str, body: dict | None = None) -> dict:
        try:
            r = self.http.post(self.root + path, json=body or {})
        except httpx.HTTPError as e:
            raise SamplingError(f"sampling.vllm_url: {self.root}{path}: {type(e).__name__}: {e}") from None
        if r.status_code == 404 and path == "/collective_rpc":
            raise SamplingError(f"sampling.vllm_url: {self.root} has no /collective_rpc: start it with VLLM_SERVER_DEV_MODE=1 "
                      f"and --worker-extension-cls {WORKER_EXTENSION} (harness/vllm_server.py, docs/vllm.md)")
        if r.status_code != 200:
            hint = (f" (is it started with --worker-extension-cls {WORKER_EXTENSION}?)"
                    if "not implemented" in r.text.lower() else "")
            raise SamplingError(f"sampling.vllm_url: {self.root}{path}: HTTP {r.status_code}: {r.text[:300]}{hint}")
        return r.json() if r.content else {}

    def _served_model(self) -> str:
        try:
            data = self.http.get(self.root + "/v1/models").json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as e:
            raise SamplingError(f"sampling.vllm_url: {self.root}/v1/models: {type(e).__name__}: {e}") from None
        return data[0]["id"]

    def rpc(self, method: str, *args: str) -> list:
        return self._post("/collective_rpc", {"method": method, "args": [str(a) for a in args]}).get("results", [])

    def reset_prefix_cache(self) -> None:
        self._post("/reset_prefix_cache")

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        with weights_file(state) as path:
            self.rpc("harness_load_weights", path)

    def check_seedable(self) -> None:
        """A CPU engine must run without chunked prefill (seeded requests; the module's docstring)."""
        info = str(self._get("/server_info").get("vllm_config", ""))
        if "device_config=cpu" in info and "enable_chunked_prefill=True" in info:
            raise SamplingError(f"sampling.vllm_url: {self.root} is a CPU engine with chunked prefill on, where a "
                                "seeded request dies; start it with --no-enable-chunked-prefill (harness/vllm_server.py)")

    def _get(self, path: str) -> dict:
        try:
            r = self.http.get(self.root + path)
            return r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}

    def generate(self, prompt_ids: list[list[int]], seeds: list[int], n: int, max_tokens: int, temperature: float,
                 top_p: float, stop_token_ids: list[int]) -> list[list[tuple[list[int], list[float]]]]:
        """n samples per prompt: (token ids, their log-probs). One request per prompt (each its own seed),
        `concurrency` in flight."""
        def one(ids_seed):
            ids, seed = ids_seed
            body = {"model": self.model, "prompt": [ids], "n": n, "max_tokens": max_tokens, "temperature": temperature,
                    "top_p": top_p, "stop_token_ids": stop_token_ids, "logprobs": 0, "return_token_ids": True,
                    "seed": seed}
            choices = sorted(self._post("/v1/completions", body)["choices"], key=lambda c: c["index"])
            if len(choices) != n:
                raise SamplingError(f"sampling.vllm_url: {len(choices)} samples for one prompt, asked n={n}")
            return [(list(c["token_ids"]), [float(x) for x in c["logprobs"]["token_logprobs"]]) for c in choices]

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, zip(prompt_ids, seeds)))


class InProcessEngine:
    """`vllm.LLM` in this process, its engine core too (VLLM_ENABLE_V1_MULTIPROCESSING=0): the weights
    go in as tensors, with no copy to another process, and nothing is spawned (a script needs no
    `__main__` guard)."""

    def __init__(self, path: str, dtype: str, seed: int = 0, max_model_len: int = 2048, **engine_kw):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = import_vllm()
        from vllm.platforms import current_platform

        if current_platform.is_cpu():  # seeded requests (the module's docstring)
            engine_kw = {"enable_chunked_prefill": False, "max_num_batched_tokens": max_model_len, **engine_kw}
        self.vllm = vllm
        self.llm = vllm.LLM(model=path, dtype=dtype, seed=seed, enable_prefix_caching=True, max_model_len=max_model_len,
                            worker_extension_cls=WORKER_EXTENSION, **engine_kw)

    def check_seedable(self) -> None:
        pass  # made without chunked prefill on a CPU

    def rpc(self, method: str, *args) -> list:
        return self.llm.collective_rpc(method, args=args)

    def reset_prefix_cache(self) -> None:
        self.llm.reset_prefix_cache()

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
            self.rpc("harness_load_weights", state)  # same process: the tensors themselves
        else:
            with weights_file(state) as path:
                self.rpc("harness_load_weights", path)

    def generate(self, prompt_ids, seeds, n, max_tokens, temperature, top_p, stop_token_ids):
        params = [self.vllm.SamplingParams(n=n, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                           stop_token_ids=stop_token_ids, logprobs=0, seed=seed) for seed in seeds]
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        result = []
        for o in outs:
            result.append([(list(c.token_ids), [lp[t].logprob for lp, t in zip(c.logprobs, c.token_ids)])
                           for c in sorted(o.outputs, key=lambda c: c.index)])
        return result


def import_vllm():
    try:
        import vllm  # noqa: F401  (its own torch/transformers pins: make vllm-env, or the GPU extra)
    except ImportError as e:
        raise SamplingError(
            "sampling.backend: 'vllm' needs the vllm package, which is not installed here "
            f"({e.__class__.__name__}: {e}). Set sampling.vllm_url to a served engine (make vllm-env; "
            "docs/vllm.md), install the GPU extra (pip install 'feedback-harness[vllm]'), "
            "or set sampling.backend=transformers.") from None
    return vllm


class weights_file:
    """`with weights_file(state) as path`: the weights as one safetensors file, deleted after."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.state = state

    def __enter__(self) -> str:
        where = "/dev/shm" if Path("/dev/shm").is_dir() else None  # RAM: the file is read back at once
        fd, self.path = tempfile.mkstemp(prefix="harness-weights-", suffix=".safetensors", dir=where)
        os.close(fd)
        seen: set = set()
        flat = {}
        for k, v in self.state.items():  # tied weights share storage, which safetensors refuses
            v = v.detach().cpu().contiguous()
            key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
            flat[k] = v.clone() if key in seen else v
            seen.add(key)
        save_file(flat, self.path)
        return self.path

    def __exit__(self, *exc) -> None:
        Path(self.path).unlink(missing_ok=True)


def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """Full weights under the base model's names. A LoRA adapter (peft) is merged into copies: W +
    the adapter's delta per wrapped layer, so the policy's own weights are never touched (merging in
    place and unmerging after leaves rounding drift in the trained model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    deltas = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            delta = None
            for adapter in getattr(module, "active_adapters", []):
                if adapter in getattr(module, "lora_A", {}):
                    d = module.get_delta_weight(adapter)
                    delta = d if delta is None else delta + d
            if delta is not None:
                deltas[f"{name}.base_layer.weight"] = delta
    state = {}
    for k, v in base.state_dict().items():
        if "lora_" in k or "modules_to_save" in k:
            continue
        v = v.detach()
        if k in deltas:
            v = v + deltas[k].to(v.dtype)
        state[k.replace(".base_layer", "")] = v
    return state


class VllmSampler:
    """`sample(prompts, n)` / `update(model, step)` (harness.sampling's protocol) on a vLLM engine."""

    def __init__(self, sampling_cfg, model, tokenizer, data_cfg, system: str | None = None, engine=None,
                 model_path: str | None = None, **engine_kw):
        self.cfg, self.tokenizer, self.data_cfg, self.system = sampling_cfg, tokenizer, data_cfg, system
        self.eos = eos_ids(tokenizer, model)
        if not self.eos:
            raise SamplingError("sampling: the tokenizer has no eos_token_id; truncation cannot be detected")
        self.engine = engine if engine is not None else open_engine(sampling_cfg, model, model_path, **engine_kw)
        self.engine.check_seedable()
        self.synced_step: int | None = None
        self.pushes = 0
        self.update(model, 0)  # at once: a served engine may hold another run's (or step's) weights

    def update(self, model, step: int) -> None:
        every = max(1, self.cfg.sync_every)
        if self.synced_step is None or step - self.synced_step >= every:
            self.engine.load_weights(merged_state_dict(model))
            self.engine.reset_prefix_cache()  # cached prefixes hold the old weights' keys and values
            self.synced_step, self.pushes = step, self.pushes + 1

    def sample(self, prompts: Sequence, n: int = 1) -> list[list]:
        if n < 1:
            raise SamplingError(f"sampling: n must be >= 1, got {n}")
        encoded = [encode_prompt(self.tokenizer, p, self.data_cfg.max_prompt_tokens, self.system) for p in prompts]
        seeds = request_seeds(int(torch.randint(0, 2**31 - 1, (1,)).item()), len(encoded), n)
        greedy = self.cfg.temperature <= 0
        rows = self.engine.generate(encoded, seeds, n, self.cfg.max_new_tokens, 0.0 if greedy else self.cfg.temperature,
                                    1.0 if greedy else self.cfg.top_p, sorted(self.eos))
        out = []
        for per_prompt in rows:
            samples = []
            for ids, lps in per_prompt:
                s = split_generated(self.tokenizer, ids, self.eos, self.cfg.max_new_tokens)
                s.logprobs = lps[:s.n_tokens]
                samples.append(s)
            out.append(samples)
        return out


def request_seeds(seed: int, n_prompts: int, n: int) -> list[int]:
    """One seed per prompt from one draw; vLLM seeds sample j of a request with seed + j."""
    rng = random.Random(seed)
    return [rng.randrange(2**31 - 1 - n) for _ in range(n_prompts)]


def open_engine(sampling_cfg, model, model_path: str | None = None, **engine_kw):
    """The engine `sampling` names: served at `sampling.vllm_url`, else in-process on the policy's checkpoint."""
    url = getattr(sampling_cfg, "vllm_url", None)
    if url:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1:  # each would push its weights into the one engine while the others sample
            raise SamplingError(f"sampling.vllm_url: {world} processes would share one engine; run one process")
        return ServedEngine(url)
    path = model_path or getattr(getattr(model, "config", None), "_name_or_path", None)
    if not path:
        raise SamplingError("sampling.backend=vllm: cannot tell which checkpoint to start the engine from")
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    return InProcessEngine(path, dtype, **engine_kw)
