"""Sampling backends: shapes, EOS/truncation, seeding through the torch RNG, left padding, greedy,
and the clear error when vLLM (a GPU extra that cannot be installed here) is missing."""
from __future__ import annotations

import pytest
import torch

from harness.config import DataConfig, ModelConfig, SamplingConfig
from harness.sampling import Sample, SamplingError, make_sampler, split_generated
from tiny_llama import make_tiny_llama

PROMPTS = ["What is the capital of France?", "Name a colour.",
           [{"role": "user", "content": "Say hello in French, one word."}]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, embedded_path):
    from harness.models import load_model

    path = make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)
    return load_model(ModelConfig(name=path))


def sampler(model_tok, **kw):
    model, tok = model_tok
    return make_sampler(SamplingConfig(**{"max_new_tokens": 10, **kw}), model, tok, DataConfig(max_prompt_tokens=64))


def test_shapes_and_truncation(tiny):
    out = sampler(tiny).sample(PROMPTS, 3)
    assert [len(o) for o in out] == [3, 3, 3]
    eos = tiny[1].eos_token_id
    for s in (s for o in out for s in o):
        assert 1 <= s.n_tokens == len(s.token_ids) <= 10
        assert s.truncated == (eos not in s.token_ids)
        if not s.truncated:
            assert s.token_ids[-1] == eos and eos not in s.token_ids[:-1]
        else:
            assert s.n_tokens == 10


def test_split_generated_cuts_at_first_eos(embedded):
    _, tok = embedded
    eos = tok.eos_token_id
    hello = tok("Hello there", add_special_tokens=False)["input_ids"]
    s = split_generated(tok, hello + [eos, eos, eos], {eos}, 10)
    assert s == Sample(text="Hello there", token_ids=hello + [eos], n_tokens=len(hello) + 1, truncated=False)
    s = split_generated(tok, hello, {eos}, len(hello))
    assert s.truncated and s.text == "Hello there" and s.n_tokens == len(hello)


def test_seeded_through_torch_rng(tiny):
    s = sampler(tiny, temperature=1.0)
    torch.manual_seed(7)
    a = s.sample(PROMPTS, 2)
    torch.manual_seed(7)
    b = s.sample(PROMPTS, 2)
    torch.manual_seed(8)
    c = s.sample(PROMPTS, 2)
    ids = lambda out: [x.token_ids for o in out for x in o]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    # two samples of one prompt differ (the pair OAIF compares is not one response twice)
    assert a[0][0].token_ids != a[0][1].token_ids


def test_greedy_is_batch_invariant_with_left_padding(embedded):
    """Greedy answers of prompts of different lengths are the same alone and in one padded batch."""
    model, tok = embedded
    cfg = dict(temperature=0.0, max_new_tokens=12)
    together = make_sampler(SamplingConfig(batch_size=8, **cfg), model, tok, DataConfig()).sample(PROMPTS, 1)
    alone = make_sampler(SamplingConfig(batch_size=1, **cfg), model, tok, DataConfig()).sample(PROMPTS, 1)
    assert [o[0].token_ids for o in together] == [o[0].token_ids for o in alone]
    assert "Paris" in together[0][0].text
    torch.manual_seed(123)  # greedy ignores the RNG
    again = make_sampler(SamplingConfig(batch_size=8, **cfg), model, tok, DataConfig()).sample(PROMPTS[:1], 2)
    assert again[0][0].token_ids == again[0][1].token_ids == together[0][0].token_ids


def test_model_mode_restored_and_update_switches_model(tiny):
    model, tok = tiny
    model.train()
    s = sampler(tiny)
    s.sample(PROMPTS[:1], 1)
    assert model.training
    other = torch.nn.Linear(1, 1)
    s.update(other, 3)
    assert s.model is other


def test_vllm_missing_is_a_clear_error(tiny):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    with pytest.raises(SamplingError, match=r"sampling.backend: 'vllm' needs the vllm package.*sampling.backend=transformers"):
        sampler(tiny, backend="vllm")


def test_bad_n(tiny):
    with pytest.raises(SamplingError, match="n must be >= 1"):
        sampler(tiny).sample(PROMPTS, 0)


def test_low_precision_sampling_copy_synced_every_k_steps(tiny):
    """sampling.dtype=bf16: samples come from a bf16 copy of the policy, refreshed every sync_every steps."""
    import copy

    model, tok = tiny
    policy = copy.deepcopy(model)
    s = make_sampler(SamplingConfig(max_new_tokens=6, dtype="bf16", sync_every=2), policy, tok, DataConfig())
    assert s.copy is not None and next(s.copy.parameters()).dtype == torch.bfloat16
    name, param = next((n, p) for n, p in policy.named_parameters() if n.endswith("embed_tokens.weight"))
    with torch.no_grad():
        param.add_(0.5)
    copied = lambda: dict(s.copy.named_parameters())[name].float()  # noqa: E731
    s.update(policy, 1)  # one step after the last sync: not yet
    assert not torch.allclose(copied(), param, atol=0.05)
    s.update(policy, 2)
    assert torch.allclose(copied(), param, atol=0.02)
    out = s.sample(PROMPTS[:2], 2)
    assert [len(o) for o in out] == [2, 2]
    with pytest.raises(SamplingError, match="sampling.dtype"):
        make_sampler(SamplingConfig(dtype="int3"), policy, tok, DataConfig())
