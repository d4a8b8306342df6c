"""Simulated human raters: the gold scorer of a verifiable task plus crowd-worker noise.

AlpacaFarm (Dubois et al. 2023) simulates crowd workers by adding noise to a good annotator (it
flips the label with probability 0.25). Here the good annotator is the gold scorer
(judges/gold.py), so each noise source is a parameter whose effect can be measured exactly.

Each label (one pair, one presentation order) is drawn in this order:
  1. with probability position_bias: the response shown first, whatever it says;
  2. else, when the two responses differ in length (words, harness.verifiable.words), with
     probability length_bias: the longer one;
  3. else the content (gold) answer: on a decided gold pair the gold winner, flipped to the
     loser with probability flip_rate; on a gold tie: 'tie' with probability tie_rate, else
     either side with probability 1/2 each.
A prompt the task does not have is `unparsed` (as the gold judge). The rater votes (p_a None).
The rater's opinion of a pair (steps 2 and 3: length pull, flip, tie answer) is drawn once per pair
and kept in both orders, as a person's would be; only the position pull (step 1) is drawn per
presentation. So the two orders disagree only through position bias, and the combined verdict
(records.combine_orders, MT-Bench rule: orders that disagree are a tie) is the opinion unless the
position pull acted against it. The uniforms come from RNGs seeded by a hash of (rater id, seed,
pair_id) and (rater id, seed, pair_id, order), always drawn in the same sequence: relabelling gives
the same answers (the label cache stays valid), and two raters that differ in one parameter make
the same draws for the others.

What each parameter does to statistics a test can measure (p = position_bias, l = length_bias,
f = flip_rate, t = tie_rate; per-order labels, both orders asked, so the side shown first is
the gold winner in one order of two and the longer response in one order of two):
  decided gold pairs of equal length:  P(picks the first shown) = (1 + p) / 2
                                       P(label != gold)         = p / 2 + (1 - p) f
  decided gold pairs, lengths differ:  P(picks the longer)      = p / 2 + (1 - p)(l + (1 - l) q)
                                       with q = 1 - f where the longer response is the gold
                                       winner, q = f where it is the loser
  gold ties of equal length:           P(tie) = (1 - p) t;  P(picks the first shown) = p + (1 - p)(1 - t) / 2
So flip_rate is the error rate where no bias can act; position_bias = 2 P(first) - 1 on decided
pairs; length_bias is the excess pull toward the longer response beyond what gold gives it.
Across the two orders of one pair: P(the orders disagree) = p(2 - p) when the opinion is a tie,
else p (position acts in the order where the opinion is shown second, or in both).

Annotator: kind `simulated-human` (never `human`: the human majority and the human ceiling
never see these labels), id = the config name, version = hash of the parameters and the gold
annotator's version. Configs: judges/configs/sim-rater-*.yaml, `kind: simulated_human`.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.config import ConfigError, JudgeRef, _build
from harness.records import Annotator, Label, Pair, content_hash
from harness.verifiable import words

from .base import BOTH_ORDERS
from .gold import GoldJudge, make_gold_judge

SIMULATED_VERSION = "1"  # bump when the drawing scheme changes (labels are cached by version)
RATES = ("flip_rate", "position_bias", "length_bias", "tie_rate")


@dataclass
class SimulatedConfig:
    task: str = "verifiable"
    description: str = ""
    flip_rate: float = 0.25
    position_bias: float = 0.0
    length_bias: float = 0.0
    tie_rate: float = 0.5
    seed: int = 0
    both_orders: bool = True


def parse_config(data: dict, path: Path | str) -> SimulatedConfig:
    """A simulated_human config mapping (without `kind`) -> SimulatedConfig; errors name file and field."""
    where = f"{path}:"
    cfg = _build(SimulatedConfig, dict(data), where)
    for name in RATES:
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}{name}: {v} is not a probability in [0, 1]")
    if not str(cfg.task).strip():
        raise ConfigError(f"{where}task: must name a verifiable task")
    return cfg


def _uniforms(*key, n: int) -> list[float]:
    # sha256, not hash(): Python's str hash changes between processes
    digest = hashlib.sha256(json.dumps(list(key)).encode()).digest()
    rng = random.Random(int.from_bytes(digest[:16], "big"))
    return [rng.random() for _ in range(n)]


@dataclass
class SimulatedRater:
    name: str
    cfg: SimulatedConfig
    gold: GoldJudge
    tie_band: float = 0.0

    def __post_init__(self):
        self.orders = BOTH_ORDERS if self.cfg.both_orders else ("AB",)
        params = {k: getattr(self.cfg, k) for k in (*RATES, "seed")}
        self.annotator = Annotator(kind="simulated-human", id=self.name,
                                   version=content_hash("simulated", SIMULATED_VERSION, params,
                                                        self.gold.annotator.version, n=12),
                                   config={**params, "gold": self.gold.annotator.id, "task": self.gold.task,
                                           "simulated_version": SIMULATED_VERSION})

    def draw(self, pair: Pair, order: str, gold_verdict: str) -> tuple[str, str]:
        """(verdict, mechanism) of one label; mechanism: position | length | gold | flip | tie | coin."""
        if gold_verdict == "unparsed":
            return "unparsed", "unparsed"
        c = self.cfg
        (u_pos,) = _uniforms(self.name, c.seed, pair.pair_id, order, n=1)        # per presentation
        u_len, u_content, u_coin = _uniforms(self.name, c.seed, pair.pair_id, n=3)  # the rater's opinion
        if u_pos < c.position_bias:
            return ("A" if order == "AB" else "B"), "position"
        na, nb = len(words(pair.response_a)), len(words(pair.response_b))
        if na != nb and u_len < c.length_bias:
            return ("A" if na > nb else "B"), "length"
        if gold_verdict == "tie":
            if u_content < c.tie_rate:
                return "tie", "tie"
            return ("A" if u_coin < 0.5 else "B"), "coin"
        if u_content < c.flip_rate:
            return ("B" if gold_verdict == "A" else "A"), "flip"
        return gold_verdict, "gold"

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = BOTH_ORDERS) -> list[list[Label]]:
        gold = self.gold.judge(pairs, ("AB",))
        out = []
        for p, (g,) in zip(pairs, gold):
            labs = []
            for o in orders:
                t = time.perf_counter()
                verdict, how = self.draw(p, o, g.verdict)
                labs.append(Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o,
                                  raw_output=json.dumps({"gold": g.verdict, "by": how}),
                                  latency_s=time.perf_counter() - t, tokens_in=0, tokens_out=0, cost=0.0))
            out.append(labs)
        return out


def build_simulated_judge(name: str, data: dict, path: Path, ref: JudgeRef | None = None, home=None,
                          device: str | None = None, rubric: str | None = None) -> SimulatedRater:
    """The `kind: simulated_human` config builder (judges/registry.py); home/device/rubric are unused."""
    cfg = parse_config(data, path)
    if ref is not None and ref.both_orders is not None:  # instruction / mode: refused by registry.load_judge
        cfg.both_orders = ref.both_orders
    try:
        gold = make_gold_judge(cfg.task)
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{path}: task: {e}") from None
    return SimulatedRater(name, cfg, gold)


__all__ = ["RATES", "SimulatedConfig", "SimulatedRater", "build_simulated_judge", "parse_config"]
