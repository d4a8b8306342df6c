"""RLOO and PPO pieces of harness.losses against values computed by hand (in the comments)."""
from __future__ import annotations

import math

import pytest
import torch

from harness.losses import (entropy_from_logits, gae_advantages, kl_penalised_rewards, masked_whiten,
                            ppo_policy_loss, ppo_token_rewards, ppo_value_loss, rloo_advantages, rloo_loss)


def test_rloo_leave_one_out_baseline():
    # prompt 1: [1, 2, 4] -> baselines (2+4)/2=3, (1+4)/2=2.5, (1+2)/2=1.5 -> [-2, -0.5, 2.5]
    # prompt 2: [0, 0, 3] -> baselines 1.5, 1.5, 0 -> [-1.5, -1.5, 3]
    adv = rloo_advantages(torch.tensor([1.0, 2.0, 4.0, 0.0, 0.0, 3.0]), k=3)
    assert adv.tolist() == pytest.approx([-2.0, -0.5, 2.5, -1.5, -1.5, 3.0])
    # k=2: each sample's advantage is its reward minus its sibling's
    assert rloo_advantages(torch.tensor([3.0, 1.0]), k=2).tolist() == pytest.approx([2.0, -2.0])
    with pytest.raises(ValueError, match="rl.k"):
        rloo_advantages(torch.tensor([1.0]), k=1)
    with pytest.raises(ValueError, match="groups"):
        rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), k=2)


def test_kl_folded_into_reward_sequence_level():
    scores = torch.tensor([1.0, 0.5])
    logps = torch.tensor([[-1.0, -2.0], [-0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0], [-0.5, -9.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # row 2's second token is padding: ignored
    rewards, kl = kl_penalised_rewards(scores, logps, ref, mask, kl_coef=0.1)
    # kl_1 = (-1 + 1.5) + (-2 + 1) = -0.5 ; kl_2 = 0 ; reward = score - 0.1 * kl
    assert kl.tolist() == pytest.approx([-0.5, 0.0])
    assert rewards.tolist() == pytest.approx([1.05, 0.5])


def test_rloo_loss_clipping_and_gradient():
    logps = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    old = torch.tensor([-1.0, -2.0 - math.log(1.5), -3.0 - math.log(0.5)])  # ratios 1, 1.5, 0.5
    adv = torch.tensor([2.0, 3.0, -1.0])
    losses, clipped = rloo_loss(logps, old, adv, clip_range=0.2)
    # -min(1*2, 1*2) = -2 ; -min(1.5*3, 1.2*3) = -3.6 ; -min(0.5*-1, 0.8*-1) = 0.8
    assert losses.tolist() == pytest.approx([-2.0, -3.6, 0.8])
    assert clipped.tolist() == [0.0, 1.0, 1.0]
    # on-policy (ratio 1) the gradient is REINFORCE's: d loss / d logp = -A
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    l, _ = rloo_loss(lp, lp.detach(), torch.tensor([2.0, -0.5]))
    l.sum().backward()
    assert lp.grad.tolist() == pytest.approx([-2.0, 0.5])


def test_ppo_token_rewards_per_token_kl_and_score_on_last_token():
    scores = torch.tensor([2.0, 1.0])
    logps = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, kl = ppo_token_rewards(scores, logps, ref, mask, kl_coef=0.1)
    # row 1: per-token kl [0.5, 0, (pad)] -> [-0.05, 0 + score 2.0, 0]; row 2: score on token 3
    assert rewards.tolist()[0] == pytest.approx([-0.05, 2.0, 0.0])
    assert rewards.tolist()[1] == pytest.approx([0.0, 0.0, 1.0])
    assert kl.tolist() == pytest.approx([0.5, 0.0])


def test_gae_hand_computed():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    mask = torch.ones(1, 3)
    adv, ret = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.9)
    # delta2 = 1 - 0.7 = 0.3 ; delta1 = 0.7 - 0.6 = 0.1 -> A1 = 0.1 + 0.9*0.3 = 0.37
    # delta0 = 0.6 - 0.5 = 0.1 -> A0 = 0.1 + 0.9*0.37 = 0.433 ; returns = A + V
    assert adv.tolist()[0] == pytest.approx([0.433, 0.37, 0.3])
    assert ret.tolist()[0] == pytest.approx([0.933, 0.97, 1.0])
    # padding: the value after the last real token is 0, whatever sits in the padded slot
    adv, ret = gae_advantages(torch.tensor([[0.0, 2.0, 5.0]]), torch.tensor([[1.0, 1.0, 9.0]]),
                              torch.tensor([[1.0, 1.0, 0.0]]), gamma=0.5, lam=1.0)
    # delta1 = 2 + 0 - 1 = 1 ; delta0 = 0 + 0.5*1 - 1 = -0.5 -> A0 = -0.5 + 0.5*1 = 0
    assert adv.tolist()[0] == pytest.approx([0.0, 1.0, 0.0])
    assert ret.tolist()[0] == pytest.approx([1.0, 2.0, 0.0])


def test_ppo_policy_loss_clipped():
    logps = torch.tensor([[0.0, math.log(1.5), math.log(0.5)]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    losses, frac = ppo_policy_loss(logps, old, adv, torch.ones(1, 3), clip_range=0.2)
    # token 0: ratio 1 -> -1 ; token 1: max(-1.5, -1.2) = -1.2 (clipped) ; token 2: max(0.5, 0.8) = 0.8 (clipped)
    assert losses.item() == pytest.approx((-1.0 - 1.2 + 0.8) / 3)
    assert frac.item() == pytest.approx(2 / 3)
    # a padded token changes nothing
    l2, f2 = ppo_policy_loss(torch.cat([logps, torch.tensor([[5.0]])], 1), torch.zeros(1, 4),
                             torch.cat([adv, torch.tensor([[3.0]])], 1), torch.tensor([[1.0, 1, 1, 0]]))
    assert l2.item() == pytest.approx(losses.item()) and f2.item() == pytest.approx(frac.item())


def test_ppo_value_loss_clipped():
    values = torch.tensor([[1.0, 2.0]])
    old = torch.tensor([[0.0, 2.0]])
    returns = torch.tensor([[0.5, 3.0]])
    losses, frac = ppo_value_loss(values, old, returns, torch.ones(1, 2), clip_range=0.2)
    # token 0: (1-0.5)^2 = 0.25 vs clipped (0.2-0.5)^2 = 0.09 -> 0.25 ; token 1: 1 vs 1 -> 1 ; 0.5 * mean
    assert losses.item() == pytest.approx(0.5 * (0.25 + 1.0) / 2)
    assert frac.item() == 0.0


def test_whiten_and_entropy():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    w = masked_whiten(x, torch.tensor([[1.0, 1.0, 0.0]]))
    assert w.tolist()[0] == pytest.approx([-1.0, 1.0, 0.0], abs=1e-4)
    uniform = torch.zeros(2, 8)
    assert entropy_from_logits(uniform).tolist() == pytest.approx([math.log(8)] * 2)
    peaked = torch.tensor([[100.0, 0.0, 0.0]])
    assert entropy_from_logits(peaked).item() == pytest.approx(0.0, abs=1e-6)
