"""The one KL the harness prints: KL(pi || ref) per sequence, in nats, on the POLICY's own samples.

Estimator (Schulman's k3, per token, summed over the response): for a response y ~ pi(.|x) with
tokens y_1..y_T and log r_t = log ref(y_t | x, y_<t) - log pi(y_t | x, y_<t),

    k3(y) = sum_t (r_t - 1 - log r_t)  >= 0 term by term.

Given the prefix, E_{y_t ~ pi}[r_t] = 1, so each term's expectation is the per-token KL at that
prefix and, by the chain rule, E_pi[k3(y)] = KL(pi(.|x) || ref(.|x)) over whole responses (cut at
`max_new_tokens`, i.e. of the truncated-response distributions). Unbiased only on exact samples of pi:
temperature 1, no top-p / top-k. Unit: nats per sequence; the column is `kl_nats_per_seq`.

CI: percentile bootstrap over PROMPTS (the M samples of a prompt are resampled together, since they
share the prompt's KL).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch

from .bootstrap import DEFAULT_N_BOOT, percentile_ci

KL_METRIC = "kl_nats_per_seq"
ESTIMATOR = "k3 per token, summed"
UNIT = "nats/sequence"
CI_METHOD = "percentile bootstrap over prompts"


def k3_per_sequence(logp_pi: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_t (r_t - 1 - log r_t), log r_t = logp_ref - logp_pi, over the masked tokens.

    logp_pi, logp_ref, mask: [N, T] (mask 1 on response tokens). Returns float32 [N], nats, >= 0."""
    log_r = (logp_ref.float() - logp_pi.float()) * mask.float()
    return ((torch.expm1(log_r) - log_r) * mask.float()).sum(-1)


@torch.no_grad()
def sequence_k3(policy, reference, batch: dict) -> torch.Tensor:
    """k3 of each row of a prompt+response `batch` (logprobs.collate / build_batch layout) under
    `policy` and `reference` (a module, or a models.Reference), both in eval mode. Returns [N], nats.
    Meaningful as KL(pi || ref) only when the responses are samples of `policy` at temperature 1."""
    from ..algorithms.rl import response_forward

    def forward(model):
        was = model.training
        model.eval()
        try:
            return response_forward(model, batch)
        finally:
            model.train(was)

    pol = forward(policy)
    with (reference.active() if hasattr(reference, "active") else nullcontext(reference)) as ref_model:
        ref = forward(ref_model)
    return k3_per_sequence(pol.logps, ref.logps.to(pol.logps.device), pol.mask)


def summarize(per_seq: Sequence[float], prompt_index: Sequence[int], n_boot: int = DEFAULT_N_BOOT,
              seed: int = 0, ci: float = 0.95) -> dict:
    """Mean k3 over all sequences and its bootstrap CI over prompts (clusters of samples)."""
    values = np.asarray(per_seq, dtype=float)
    groups = np.asarray(prompt_index)
    if values.size == 0:
        raise ValueError("kl: no sequences to estimate from")
    if values.shape != groups.shape:
        raise ValueError(f"kl: {values.size} values but {groups.size} prompt indices")
    ids = np.unique(groups)
    sums = np.array([values[groups == g].sum() for g in ids])
    counts = np.array([(groups == g).sum() for g in ids], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    boot = sums[idx].sum(1) / counts[idx].sum(1)  # ratio of sums: prompts with more samples weigh more
    lo, hi = percentile_ci(boot, ci) if len(ids) > 1 else (float("nan"), float("nan"))
    return {KL_METRIC: float(values.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "n_sequences": int(values.size), "n_prompts": int(len(ids)), "estimator": ESTIMATOR, "unit": UNIT,
            "ci_method": CI_METHOD if len(ids) > 1 else "none (one prompt)"}


def sample_k3(policy, reference, tokenizer, prompts: Sequence, samples, data_cfg, system: str | None,
              batch_size: int) -> tuple[list[float], list[int]]:
    """k3 per token summed, per sequence, of samples already drawn from `policy` at temperature 1
    (samples[i]: prompt i's). Returns (values, the prompt index of each value), for `summarize`."""
    from ..logprobs import collate, encode_prompt

    prompt_ids = [encode_prompt(tokenizer, p, data_cfg.max_prompt_tokens, system) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [(i, prompt_ids[i], list(s.token_ids)) for i, group in enumerate(samples) for s in group]
    values: list[float] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = collate([r[1] for r in chunk], [r[2] for r in chunk], pad, "right")
        values += sequence_k3(policy, reference, batch).tolist()
    return values, [r[0] for r in rows]


def estimate_kl(policy, reference, tokenizer, prompts: Sequence, m: int = 4, max_new_tokens: int = 48,
                data_cfg=None, system: str | None = None, batch_size: int = 16, n_boot: int = DEFAULT_N_BOOT,
                seed: int = 0) -> dict:
    """KL(policy || reference) per sequence: `m` samples per prompt from `policy` at temperature 1
    (no top-p/top-k), k3 per token summed, mean over all samples, bootstrap CI over prompts.

    prompts: texts or chat messages (a task's `{"prompt": ...}` rows are accepted). Returns
    {kl_nats_per_seq, ci_low, ci_high, n_sequences, n_prompts, estimator, unit, ci_method, per_prompt}."""
    from ..config import DataConfig, SamplingConfig
    from ..sampling import TransformersSampler

    if m < 1:
        raise ValueError(f"kl: m (samples per prompt) must be >= 1, got {m}")
    prompts = [p["prompt"] if isinstance(p, dict) else p for p in prompts]
    if not prompts:
        raise ValueError("kl: no prompts")
    data_cfg = data_cfg or DataConfig()
    torch.manual_seed(seed)
    sampler = TransformersSampler(SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens,
                                                 batch_size=batch_size), policy, tokenizer, data_cfg, system=system)
    samples = sampler.sample(prompts, m)
    values, prompt_of = sample_k3(policy, reference, tokenizer, prompts, samples, data_cfg, system, batch_size)
    out = summarize(values, prompt_of, n_boot=n_boot, seed=seed)
    out["per_prompt"] = [float(np.mean(values[i * m:(i + 1) * m])) for i in range(len(prompts))]
    return out


def run_kl(store, run_id: str, home, prompts: Sequence, m: int = 4, max_new_tokens: int | None = None,
           batch_size: int = 16, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
    """`estimate_kl` for a trained run: its newest checkpoint against its initial model (the weights it
    started from, found as `harness eval --baseline initial` finds them), with the run's prompt
    length, sampling length (default `sampling.max_new_tokens`) and task system prompt."""
    from ..pipelines.evaluate import resolve_policy
    from ..config import DataConfig
    from ..models import load_model

    policy_spec = resolve_policy(run_id, store)
    if policy_spec.kind != "run":
        raise ValueError(f"kl: {run_id!r} is not a run in {store.db_path}")
    initial_spec = resolve_policy("initial", store, policy_spec)
    run_cfg = store.get_run(run_id)["config"]
    data = run_cfg.get("data", {})
    data_cfg = DataConfig(**{k: v for k, v in data.items() if k in DataConfig.__dataclass_fields__})
    system = None
    if data_cfg.task:
        from ..tasks import load_task

        system = load_task(data_cfg.task).spec.system
    max_new = max_new_tokens or run_cfg.get("sampling", {}).get("max_new_tokens", 48)
    policy, tok = load_model(policy_spec.model_cfg, home, for_training=False, init_from=policy_spec.init_from)
    initial, _ = load_model(initial_spec.model_cfg, home, for_training=False, init_from=initial_spec.init_from)
    out = estimate_kl(policy, initial, tok, prompts, m=m, max_new_tokens=max_new, data_cfg=data_cfg, system=system,
                      batch_size=batch_size, n_boot=n_boot, seed=seed)
    out.update({"run_id": run_id, "policy": policy_spec.name, "reference": initial_spec.name})
    return out


def exact_policy_samples(sampling_cfg) -> bool:
    """True when a training sampler draws exact samples of the current policy (the k3 estimate is then
    KL(pi || ref)): temperature 1, no top-p, the policy's own weights (no low-precision copy, vLLM
    synced every step)."""
    return (float(sampling_cfg.temperature) == 1.0 and float(sampling_cfg.top_p) == 1.0
            and getattr(sampling_cfg, "dtype", "auto") in (None, "auto")
            and (sampling_cfg.backend != "vllm" or sampling_cfg.sync_every == 1))
