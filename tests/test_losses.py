"""Losses against values worked out by hand (math module, not torch), and their limiting cases."""
from __future__ import annotations

import math

import pytest
import torch

from harness import losses

# policy chosen/rejected, reference chosen/rejected: h = (-10 + 11) - (-12 + 11) = 2
PC, PR, RC, RR = torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0])
H = 2.0


def softplus(x):  # -log sigmoid(-x)
    return math.log1p(math.exp(x))


def test_dpo_by_hand():
    loss, rc, rr = losses.dpo_loss(PC, PR, RC, RR, beta=0.1)
    assert loss.item() == pytest.approx(softplus(-0.1 * H))  # -log sigmoid(0.2) = 0.5981
    assert loss.item() == pytest.approx(0.598138869, abs=1e-6)
    assert rc.item() == pytest.approx(0.1) and rr.item() == pytest.approx(-0.1)
    assert not rc.requires_grad


def test_ipo_by_hand_and_length_normalised():
    loss, _, _ = losses.ipo_loss(PC, PR, RC, RR, beta=0.1)
    assert loss.item() == pytest.approx((H - 1 / 0.2) ** 2)  # (2 - 5)^2 = 9
    # per-token: chosen log-ratio 1 over 4 tokens, rejected -1 over 2 tokens -> 0.25 + 0.5
    loss, _, _ = losses.ipo_loss(PC, PR, RC, RR, beta=0.5, chosen_tokens=torch.tensor([4.0]),
                                 rejected_tokens=torch.tensor([2.0]))
    assert loss.item() == pytest.approx((0.75 - 1.0) ** 2)


def test_slic_hinge_by_hand():
    loss, _, _ = losses.slic_loss(PC, PR, RC, RR, beta=0.1, margin=1.0)
    assert loss.item() == pytest.approx(1 - 0.2)
    loss, _, _ = losses.slic_loss(PC, PR, RC, RR, beta=1.0, margin=1.0)
    assert loss.item() == 0.0  # margin met: no gradient signal


def test_cdpo_by_hand_and_limits():
    eps = 0.2
    loss, _, _ = losses.cdpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=eps)
    want = (1 - eps) * softplus(-0.2) + eps * softplus(0.2)
    assert loss.item() == pytest.approx(want)
    dpo, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=0.1)
    assert losses.cdpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.0)[0].item() == pytest.approx(dpo.item())


def test_rdpo_by_hand_and_unbiased():
    eps = 0.2
    loss, _, _ = losses.rdpo_loss(PC, PR, RC, RR, beta=0.1, flip_rate=eps)
    want = ((1 - eps) * softplus(-0.2) - eps * softplus(0.2)) / (1 - 2 * eps)
    assert loss.item() == pytest.approx(want)
    # unbiased: averaged over the label noise (pair kept w.p. 1-eps, flipped w.p. eps) it equals clean DPO
    flipped, _, _ = losses.rdpo_loss(PR, PC, RR, RC, beta=0.1, flip_rate=eps)
    clean, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=0.1)
    assert ((1 - eps) * loss + eps * flipped).item() == pytest.approx(clean.item())
    with pytest.raises(ValueError, match="flip_rate"):
        losses.rdpo_loss(PC, PR, RC, RR, flip_rate=0.5)


def test_soft_dpo_by_hand_and_limits():
    p = torch.tensor([0.7])
    loss, _, _ = losses.soft_dpo_loss(PC, PR, RC, RR, p=p, beta=0.1)
    assert loss.item() == pytest.approx(0.7 * softplus(-0.2) + 0.3 * softplus(0.2))
    assert losses.soft_dpo_loss(PC, PR, RC, RR, p=1.0, beta=0.1)[0].item() == pytest.approx(
        losses.dpo_loss(PC, PR, RC, RR, beta=0.1)[0].item())
    # p = 0.5: minimum at h = 0 (zero gradient there)
    x = torch.tensor([0.0], requires_grad=True)
    loss, _, _ = losses.soft_dpo_loss(x, torch.zeros(1), torch.zeros(1), torch.zeros(1), p=0.5, beta=0.1)
    loss.backward()
    assert x.grad.abs().item() < 1e-7


def test_bt_and_sft_by_hand():
    loss, c, r = losses.bt_loss(torch.tensor([1.5]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(softplus(-1.0))
    loss, _, _ = losses.bt_loss(torch.tensor([1.5]), torch.tensor([0.5]), p=0.25)
    assert loss.item() == pytest.approx(0.25 * softplus(-1.0) + 0.75 * softplus(1.0))
    nll = losses.sft_nll(torch.tensor([-6.0, -3.0]), torch.tensor([3, 1]))
    assert nll.tolist() == pytest.approx([2.0, 3.0])


def test_gradient_direction_and_batch_shapes():
    """Every preference loss pushes chosen up and rejected down, elementwise over a batch."""
    torch.manual_seed(0)
    ref_c, ref_r = torch.randn(5) - 20, torch.randn(5) - 20
    for kind in losses.PREFERENCE_LOSSES:
        pc = (ref_c.clone()).requires_grad_(True)
        pr = (ref_r.clone()).requires_grad_(True)
        out, rc, rr = losses.preference_loss(kind, pc, pr, ref_c, ref_r, beta=0.1, p=torch.full((5,), 0.9),
                                             label_smoothing=0.1, flip_rate=0.1, chosen_tokens=torch.full((5,), 7.0),
                                             rejected_tokens=torch.full((5,), 9.0))
        assert out.shape == rc.shape == rr.shape == (5,), kind
        out.sum().backward()
        assert (pc.grad < 0).all() and (pr.grad > 0).all(), kind
    with pytest.raises(ValueError, match="loss.kind"):
        losses.preference_loss("kto", PC, PR, RC, RR, beta=0.1)


@pytest.mark.bench
def test_matches_trl_dpo_trainer(tmp_path, embedded_path):
    """Same tokens through TRL 1.x DPOTrainer.compute_loss and through our log-probs + loss functions, for
    every loss TRL also has (tiny random Llama so it runs in seconds; the tokenizer is SmolLM2's)."""
    import copy
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from harness.logprobs import sequence_logprobs
    from tiny import make_tiny_model

    path = make_tiny_model(embedded_path, tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():  # move the policy away from the reference so the losses are not all at h=0
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref = AutoModelForCausalLM.from_pretrained(path)
    data = Dataset.from_list([
        {"prompt": "What is the capital of France?", "chosen": " Paris.", "rejected": " I will not say."},
        {"prompt": "Name a colour.", "chosen": " Blue.", "rejected": " Colours are overrated and so are you."},
    ])
    beta, eps = 0.3, 0.2
    args = DPOConfig(output_dir=str(tmp_path / "trl"), loss_type=["sigmoid"], beta=beta, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, bf16=False, gradient_checkpointing=False, max_length=64,
                     label_smoothing=eps)  # fp32 like ours (TRL's default is bf16)
    trainer = DPOTrainer(model=model, ref_model=copy.deepcopy(ref), args=args, train_dataset=data, processing_class=tok)
    inputs = next(iter(trainer.get_train_dataloader()))
    batch = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"],
             "response_mask": inputs["completion_mask"]}
    with torch.no_grad():
        pol, n = sequence_logprobs(model, batch)
        rl, _ = sequence_logprobs(ref, batch)
    b = pol.shape[0] // 2
    for trl_kind, ours in (("sigmoid", "dpo"), ("hinge", "slic"), ("ipo", "ipo"), ("robust", "rdpo")):
        trainer.loss_types = [trl_kind]  # one trainer, its loss switched (building one per loss is slow)
        with torch.no_grad():
            trl_loss = trainer.compute_loss(trainer.model, inputs).item()
        out, _, _ = losses.preference_loss(ours, pol[:b], pol[b:], rl[:b], rl[b:], beta=beta, flip_rate=eps,
                                           chosen_tokens=n[:b].float(), rejected_tokens=n[b:].float())
        # float32 sums of ~100-nat log-probs computed in different tile orders: agree to ~1e-4
        assert out.mean().item() == pytest.approx(trl_loss, rel=1e-3, abs=1e-3), trl_kind


def test_a_loss_added_to_the_registry_is_a_valid_config_value_and_is_dispatched(monkeypatch):
    """losses.LOSSES drives loss.kind: the config accepts what the registry holds and nothing else,
    so adding a loss is one entry there (plus its test), not a second list to keep in step."""
    from harness.config import ConfigError, load_config

    def hinge0(*lp, beta, **_):  # a made-up loss: margin-0 SLiC
        return losses.slic_loss(*lp, beta=beta, margin=0.0)

    with pytest.raises(ConfigError, match="known: dpo, ipo, slic, cdpo, rdpo, soft"):
        load_config(None, ["loss.kind=hinge0"])
    monkeypatch.setitem(losses.LOSSES, "hinge0", hinge0)
    assert load_config(None, ["loss.kind=hinge0"]).loss.kind == "hinge0"
    out, _, _ = losses.preference_loss("hinge0", PC, PR, RC, RR, beta=0.1)
    ref, _, _ = losses.slic_loss(PC, PR, RC, RR, beta=0.1, margin=0.0)
    assert torch.equal(out, ref)
