"""The one KL (issue #12 item 9): k3 per token summed over the response, on the policy's own samples,
estimates KL(pi || ref) per sequence. Checked against the exact KL of one-token responses (the
vocabulary-level sum over the next-token distributions), >= 0, and 0 for policy == ref; the CI
against scipy's percentile bootstrap."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.evaluation.kl import KL_METRIC, estimate_kl, k3_per_sequence, summarize

from tiny_llama import make_tiny_llama

PROMPTS = ["Tell me about cats.", "Where is the red house?"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, model_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models import resolve_model

    root = tmp_path_factory.mktemp("kl")
    tok_dir = resolve_model("smollm2-135m-instruct")
    # word-shaped heads (~20 live tokens); the reference ends (EOS) more eagerly: a first-token KL of ~0.24 nat
    a = make_tiny_llama(root / "a", tok_dir, seed=0, words=True)
    b = make_tiny_llama(root / "b", tok_dir, seed=0, words=True, eos_boost=0.5)
    tok = AutoTokenizer.from_pretrained(a)
    return (AutoModelForCausalLM.from_pretrained(a).eval(), AutoModelForCausalLM.from_pretrained(b).eval(), tok)


def exact_first_token_kl(policy, ref, tok, prompt) -> float:
    """sum_v pi(v|x) (log pi(v|x) - log ref(v|x)) over the whole vocabulary: the exact KL of
    one-token responses."""
    from harness.config import DataConfig
    from harness.logprobs import encode_prompt

    ids = torch.tensor([encode_prompt(tok, prompt, DataConfig().max_prompt_tokens)])
    with torch.no_grad():
        lp = torch.log_softmax(policy(input_ids=ids).logits[0, -1].double(), -1)
        lr = torch.log_softmax(ref(input_ids=ids).logits[0, -1].double(), -1)
    return float((lp.exp() * (lp - lr)).sum())


def test_k3_by_hand_and_non_negative():
    pi = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, 9.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    lr = np.array([-0.5, 1.0])
    want = float((np.exp(lr) - 1 - lr).sum())  # the padded third token does not count
    got = k3_per_sequence(pi, ref, mask)
    assert got.tolist() == pytest.approx([want, 0.0])
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=g), torch.randn(50, 7, generator=g)
    assert (k3_per_sequence(a, b, torch.ones(50, 7)) >= 0).all()


def test_monte_carlo_matches_exact_one_token_kl(two_models):
    policy, ref, tok = two_models
    m = 1500
    out = estimate_kl(policy, ref, tok, PROMPTS, m=m, max_new_tokens=1, batch_size=500, n_boot=300)
    exact = [exact_first_token_kl(policy, ref, tok, p) for p in PROMPTS]
    assert min(exact) > 0.1  # a KL worth estimating
    assert out["n_sequences"] == 2 * m and out["unit"] == "nats/sequence"
    assert out["estimator"] == "k3 per token, summed"
    for est, ex in zip(out["per_prompt"], exact):
        assert est == pytest.approx(ex, rel=0.15)  # ~4 standard errors at m = 1500
    assert out[KL_METRIC] == pytest.approx(np.mean(exact), rel=0.1)
    assert out["ci_low"] <= out[KL_METRIC] <= out["ci_high"]


def test_policy_equal_to_reference_gives_zero(two_models):
    policy, _, tok = two_models
    out = estimate_kl(policy, policy, tok, PROMPTS, m=3, max_new_tokens=6, n_boot=100)
    assert out[KL_METRIC] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0


def test_longer_responses_non_negative(two_models):
    policy, ref, tok = two_models
    out = estimate_kl(policy, ref, tok, PROMPTS, m=4, max_new_tokens=8, n_boot=100)
    assert out[KL_METRIC] > 0 and min(out["per_prompt"]) >= 0


def test_ci_is_a_percentile_bootstrap_over_prompts():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(3)
    n_prompts, m = 40, 4
    per_prompt_kl = rng.gamma(2.0, 0.5, size=n_prompts)
    values = np.repeat(per_prompt_kl, m) * rng.uniform(0.5, 1.5, size=n_prompts * m)
    groups = np.repeat(np.arange(n_prompts), m)
    out = summarize(values, groups, n_boot=20000, seed=0)
    # with equal samples per prompt, resampling prompts = bootstrapping the per-prompt means
    ref = bootstrap((values.reshape(n_prompts, m).mean(1),), np.mean, n_resamples=20000, method="percentile",
                    random_state=1).confidence_interval
    assert out[KL_METRIC] == pytest.approx(values.mean())
    assert out["ci_low"] == pytest.approx(ref.low, abs=0.02) and out["ci_high"] == pytest.approx(ref.high, abs=0.02)
    with pytest.raises(ValueError, match="no sequences"):
        summarize([], [])
