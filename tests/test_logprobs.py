"""Response-only log-probs against a naive per-token computation, with left and right padding."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.config import DataConfig
from harness.logprobs import (build_batch, encode_prompt, encode_response, pair_logprobs, sequence_logprobs,
                              token_logprobs)

PROMPTS = ["What is the capital of France?",
           [{"role": "user", "content": "Give me one word that rhymes with cat."}],
           "Name a fruit that is yellow when ripe and is often eaten at breakfast with cereal."]
RESPONSES = ["Paris.", "Hat.", "A banana is yellow when it is ripe, and people slice it onto cereal."]


def naive(model, tokenizer, prompt, response, cfg):
    """Unpadded, one row, full logits, log-softmax over the whole sequence, summed token by token."""
    p = encode_prompt(tokenizer, prompt, cfg.max_prompt_tokens)
    r = encode_response(tokenizer, response, cfg.max_response_tokens)
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    logsm = torch.log_softmax(logits, -1)
    per_token = [logsm[t - 1, ids[0, t]].item() for t in range(len(p), len(p) + len(r))]
    return sum(per_token), per_token


@pytest.mark.slow
@pytest.mark.parametrize("side", ["right", "left"])
def test_sequence_logprobs_match_naive(embedded, side):
    model, tok = embedded
    cfg = DataConfig(max_prompt_tokens=40, max_response_tokens=12, padding_side=side)
    batch = build_batch(tok, PROMPTS, RESPONSES, cfg)
    # the long response is cut to 12 tokens (no EOS); the short ones end in EOS
    assert batch["response_mask"].sum(-1).tolist()[2] == 12
    pads = (batch["attention_mask"] == 0)
    assert pads.any()
    assert (pads[:, 0] if side == "left" else pads[:, -1]).any()
    with torch.no_grad():
        sums, counts = sequence_logprobs(model, batch)
        per_tok, mask = token_logprobs(model, batch)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
        want, want_tokens = naive(model, tok, p, r, cfg)
        assert counts[i].item() == len(want_tokens)
        assert sums[i].item() == pytest.approx(want, abs=2e-3)
        got_tokens = per_tok[i][mask[i].bool()].tolist()
        assert got_tokens == pytest.approx(want_tokens, abs=2e-3)


@pytest.mark.slow
def test_pair_logprobs_one_forward_and_gradients(embedded):
    model, tok = embedded
    policy = copy.deepcopy(model).requires_grad_(True)
    cfg = DataConfig(max_prompt_tokens=40, max_response_tokens=12)
    calls = []
    handle = policy.get_decoder().register_forward_hook(lambda *a: calls.append(1))
    c, r, nc, nr = pair_logprobs(policy, tok, PROMPTS[:2], RESPONSES[:2], RESPONSES[1::-1], cfg)
    handle.remove()
    assert calls == [1]  # chosen and rejected went through the decoder together
    want_c, _ = naive(model, tok, PROMPTS[0], RESPONSES[0], cfg)
    want_r, _ = naive(model, tok, PROMPTS[0], RESPONSES[1], cfg)
    assert c[0].item() == pytest.approx(want_c, abs=2e-3)
    assert r[0].item() == pytest.approx(want_r, abs=2e-3)
    (c.sum() - r.sum()).backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_truncation_and_padding_layout(embedded_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_path)
    cfg = DataConfig(max_prompt_tokens=8, max_response_tokens=3, padding_side="left")
    long_prompt = "one two three four five six seven eight nine ten eleven twelve"
    p = encode_prompt(tok, long_prompt, 8)
    full = encode_prompt(tok, long_prompt, None)
    assert len(p) == 8 and p == full[-8:]  # cut from the left: the end of the prompt survives
    r = encode_response(tok, "alpha beta gamma delta epsilon", 3)
    assert len(r) == 3 and tok.eos_token_id not in r
    assert encode_response(tok, "hi", 10)[-1] == tok.eos_token_id
    b = build_batch(tok, [long_prompt, "hi"], ["alpha beta gamma delta", "ok"], cfg)
    assert b["input_ids"].shape == b["attention_mask"].shape == b["response_mask"].shape
    # left padding: every row ends at the last column; response tokens are the last ones of the row
    assert b["attention_mask"][:, -1].tolist() == [1, 1]
    n_resp = b["response_mask"].sum(-1).tolist()
    for i, n in enumerate(n_resp):
        assert b["response_mask"][i, -n:].tolist() == [1] * n
    assert (b["response_mask"] <= b["attention_mask"]).all()
