"""`harness overopt [CONFIG]`: reward over-optimisation at small scale (Gao, Schulman, Hilton 2022,
"Scaling Laws for Reward Model Overoptimization", arXiv:2210.10760), configs/overopt_cpu.yaml.

Per seed, on the verifiable task (the gold scorer is the truth; docs/verifiable.md):
  1. pairs sampled once from the initial policy on train prompts, labelled by a simulated human
     (demo.sample_once, the demo's offline stage);
  2. the project's RLHF arm (demo.train_arm `rlhf_<source>`): a Bradley-Terry reward model on those
     labels (the PROXY), then RLOO against it, checkpointed every `rl.every` steps;
  3. best-of-n against the proxy: N = max(ns) samples per eval prompt from the initial policy (one
     set; every n <= N is the exact expectation over its n-subsets), KL_bon = log n - (n-1)/n;
  4. each RLOO checkpoint samples `evaluation.samples` responses per eval prompt at temperature 1:
     KL(pi || initial) by the project's estimator (evaluation/kl.py: k3 summed, on the policy's own
     samples), their proxy and gold scores. Step 0 (KL 0) is the initial policy: the first samples
     of the best-of-n set.
Proxy is reported as the reward model's score minus the initial policy's mean score on the same
eval prompts (a Bradley-Terry reward has no zero, and every seed has its own reward model); gold is
the gold score (0 degenerate, else 1 + share of constraints met). The curve (evaluation/overopt.py:
means and CIs over seeds) is stored as an `overopt` result; harness/overopt_plot.py draws it.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..config import ConfigError, RunConfig, _build, apply_overrides, read_yaml_mapping
from ..evaluation import overopt as oo
from ..store import Store
from .demo import DemoConfig, RewardStage, RLStage, Source, _merged, arm_config, sample_once, train_arm

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "overopt_cpu.yaml"
SOURCE = "human"  # the one feedback source, named as the demo names it (arm rlhf_human)


@dataclass
class BestOfN:
    ns: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])   # N = max(ns) samples per prompt


@dataclass
class RLCurve:
    steps: int = 6                 # RLOO optimizer steps
    every: int = 2                 # a checkpoint (a point of the curve) every this many steps
    lr: float = 5.0e-5
    k: int = 4                     # samples per prompt (leave-one-out baseline)
    kl_coef: float = 0.05          # the sequence-level KL penalty of the project's RLOO
    batch_size: int = 4            # prompts per step


@dataclass
class OverEval:
    prompts: int = 12              # the verifiable task's first eval prompts
    samples: int = 2               # per prompt and RLOO checkpoint, temperature 1
    max_new_tokens: int = 48
    batch_size: int = 64           # rows per generate() call


@dataclass
class OveroptConfig:
    name: str = "overopt"
    question: str = ""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    source: Source = field(default_factory=lambda: Source(annotator="sim-rater-1", kind="human"))
    reward_model: RewardStage = field(default_factory=RewardStage)
    best_of_n: BestOfN = field(default_factory=BestOfN)
    rl: RLCurve = field(default_factory=RLCurve)
    evaluation: OverEval = field(default_factory=OverEval)
    prune_optimizer: bool = True   # drop the finished runs' AdamW state (the curve needs the weights only)


def load_overopt_config(path: str | Path, overrides: list[str]) -> tuple[OveroptConfig, dict]:
    """(OveroptConfig, base run-config dict); the run configs are built here once, so a bad key fails
    before any sampling, naming the file and the key."""
    path = Path(path)
    data = read_yaml_mapping(path)
    apply_overrides(data, overrides)
    base = data.pop("base", {}) or {}
    _build(RunConfig, copy.deepcopy(base), f"{path}:base")
    cfg = _build(OveroptConfig, data, f"{path}:")
    where = f"{path}:"
    if not cfg.seeds:
        raise ConfigError(f"{where}seeds: at least one seed")
    ns = cfg.best_of_n.ns
    if not ns or any(n < 1 for n in ns) or sorted(set(ns)) != list(ns):
        raise ConfigError(f"{where}best_of_n.ns: increasing distinct integers >= 1, got {ns}")
    rl = cfg.rl
    for key, ok in (("steps", rl.steps >= 1), ("every", 1 <= rl.every <= rl.steps), ("k", rl.k >= 2),
                    ("batch_size", rl.batch_size >= 1), ("lr", rl.lr > 0), ("kl_coef", rl.kl_coef >= 0)):
        if not ok:
            raise ConfigError(f"{where}rl.{key}: {getattr(rl, key)!r} is out of range (steps >= 1, 1 <= every <= "
                              "steps, k >= 2, batch_size >= 1, lr > 0, kl_coef >= 0)")
    ev = cfg.evaluation
    for key in ("prompts", "samples", "max_new_tokens", "batch_size"):
        if getattr(ev, key) < 1:
            raise ConfigError(f"{where}evaluation.{key}: must be >= 1, got {getattr(ev, key)}")
    if ev.samples > max(ns):
        raise ConfigError(f"{where}evaluation.samples: {ev.samples} > max(best_of_n.ns) = {max(ns)} (step 0 reuses "
                          "the best-of-n samples of the initial policy)")
    for label, section in (("source.base", cfg.source.base), ("rl", rl_sections(cfg))):
        _build(RunConfig, _merged(base, section), f"{where}{label}")
    return cfg, base


def rl_sections(cfg: OveroptConfig) -> dict:
    rl = cfg.rl
    return {"train": {"steps": rl.steps, "lr": rl.lr, "batch_size": rl.batch_size, "checkpoint_every": rl.every,
                      "keep_checkpoints": rl.steps // rl.every + 1}}


def as_demo(cfg: OveroptConfig, seed: int) -> DemoConfig:
    return DemoConfig(name=f"{cfg.name}-s{seed}", sources={SOURCE: cfg.source}, arms=[f"rlhf_{SOURCE}"],
                      reward_model=cfg.reward_model, rl=RLStage(k=cfg.rl.k, kl_coef=cfg.rl.kl_coef))


def checkpoints(store: Store, run_id: str) -> list[tuple[int, Path]]:
    """(step, dir) of the run's complete checkpoints, oldest first."""
    root = store.checkpoints_dir(run_id)
    done = [p for p in root.glob("step-*") if (p / "COMPLETE").exists()]
    return sorted(((int(p.name.split("-")[1]), p) for p in done), key=lambda t: t[0])


# -- scoring one set of samples ---------------------------------------------------------------------
class Scorer:
    """Proxy (the reward model) and gold scores of responses to the eval prompts."""

    def __init__(self, rm, gold, prompts: list):
        self.rm, self.gold, self.prompts = rm, gold, prompts

    def __call__(self, samples: list[list]) -> tuple[list[list[float]], list[list[float]], list[list[int]]]:
        flat_p = [self.prompts[i] for i, group in enumerate(samples) for _ in group]
        flat_r = [s.text for group in samples for s in group]
        proxy, gold = self.rm.score(flat_p, flat_r), self.gold.score(flat_p, flat_r)
        if any(g is None for g in gold):
            raise ValueError("overopt: the gold scorer does not know some eval prompts (is the task verifiable?)")
        from ..verifiable import words

        out_p, out_g, out_w, pos = [], [], [], 0
        for group in samples:
            n = len(group)
            out_p.append([float(v) for v in proxy[pos:pos + n]])
            out_g.append([float(v) for v in gold[pos:pos + n]])
            out_w.append([len(words(s.text)) for s in group])
            pos += n
        return out_p, out_g, out_w


def _mean(rows: list[list[float]]) -> list[float]:
    return [sum(r) / len(r) for r in rows]


def bon_points(cfg: OveroptConfig, seed: int, proxy, gold, wordsn, offset: float) -> list[dict]:
    per_prompt = [oo.bon_expected(p, g, cfg.best_of_n.ns, extra={"words": w}) for p, g, w in zip(proxy, gold, wordsn)]
    points = []
    for j, n in enumerate(cfg.best_of_n.ns):
        pp = [r[j]["proxy"] - offset for r in per_prompt]
        gp = [r[j]["gold"] for r in per_prompt]
        points.append({"method": "bon", "x": n, "seed": seed, "kl": oo.bon_kl(n), "proxy": sum(pp) / len(pp),
                       "gold": sum(gp) / len(gp), "words": sum(r[j]["words"] for r in per_prompt) / len(per_prompt),
                       "proxy_prompts": pp, "gold_prompts": gp})
    return points


def rl_point(seed: int, step: int, kl: dict, proxy, gold, wordsn, offset: float) -> dict:
    pp, gp = [v - offset for v in _mean(proxy)], _mean(gold)
    return {"method": "rloo", "x": step, "seed": seed, "kl": kl["kl_nats_per_seq"],
            "kl_ci": [kl.get("ci_low"), kl.get("ci_high")], "proxy": sum(pp) / len(pp), "gold": sum(gp) / len(gp),
            "words": sum(_mean(wordsn)) / len(wordsn), "proxy_prompts": pp, "gold_prompts": gp}


def checkpoint_kl(policy, reference, tok, prompts, samples, data_cfg, system, batch_size: int, seed: int) -> dict:
    """The project's KL estimator (evaluation/kl.py: k3 per token summed, bootstrap over prompts) on
    samples already drawn from `policy` at temperature 1, so proxy, gold and KL share them."""
    from ..evaluation.kl import sample_k3, summarize

    values, prompt_of = sample_k3(policy, reference, tok, prompts, samples, data_cfg, system, batch_size)
    return summarize(values, prompt_of, seed=seed)


# -- one seed ---------------------------------------------------------------------------------------
def run_seed(cfg: OveroptConfig, base: dict, seed: int, store: Store, group: str,
             say: Callable[[str], None]) -> dict:
    import torch
    from judges.gold import make_gold_judge
    from judges.registry import load_judge
    from tqdm.auto import tqdm

    from ..config import SamplingConfig
    from ..models import load_model, pick_device
    from ..sampling import TransformersSampler
    from ..tasks import load_task

    t0 = time.perf_counter()
    sbase = _merged(base, {"train": {"seed": seed}})
    demo = as_demo(cfg, seed)
    say(f"seed {seed}: pairs from the initial policy, labelled by {cfg.source.annotator}")
    pairs = sample_once(demo, sbase, [SOURCE], store, group)
    say(f"seed {seed}: reward model on {pairs[SOURCE]['pairs']} labelled pairs, then RLOO against it "
        f"({cfg.rl.steps} steps, a checkpoint every {cfg.rl.every})")
    arm = train_arm(demo, sbase, f"rlhf_{SOURCE}", store, group, pairs, extra=rl_sections(cfg),
                    name=f"{cfg.name}-rloo-s{seed}")
    if arm.get("skipped"):
        raise RuntimeError(f"overopt seed {seed}: {arm['skipped']}")
    t_train = time.perf_counter() - t0
    rm_run, rl_run = arm["reward_model"]["run_id"], arm["run_id"]

    run_cfg = arm_config(sbase, "rlhf", "x")
    task = load_task(run_cfg.data.task)
    system = task.spec.system
    prompts = [r["prompt"] for r in task.prompts("eval")[:cfg.evaluation.prompts]]
    device = str(pick_device(run_cfg.model.device))
    rm = load_judge(f"rm:{rm_run}", store.home, device)
    scorer = Scorer(rm, make_gold_judge(run_cfg.data.task), prompts)
    ev = cfg.evaluation
    # fp32 = the policy itself, never a bf16 sampling copy: k3 is KL(pi || initial) only on exact samples of pi
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                              dtype="fp32")
    initial, tok = load_model(run_cfg.model, store.home, for_training=False)

    big_n = max(cfg.best_of_n.ns)
    say(f"seed {seed}: best-of-n, {big_n} samples x {len(prompts)} eval prompts from the initial policy")
    torch.manual_seed(seed)
    bon_samples = TransformersSampler(sampling, initial, tok, run_cfg.data, system=system).sample(prompts, big_n)
    proxy, gold, wordsn = scorer(bon_samples)
    offset = sum(sum(p) for p in proxy) / sum(len(p) for p in proxy)  # the initial policy's mean proxy
    points = bon_points(cfg, seed, proxy, gold, wordsn, offset)
    m = ev.samples
    points.append(rl_point(seed, 0, {"kl_nats_per_seq": 0.0, "ci_low": 0.0, "ci_high": 0.0},
                           [p[:m] for p in proxy], [g[:m] for g in gold], [w[:m] for w in wordsn], offset))
    for step, path in tqdm(checkpoints(store, rl_run), desc=f"RLOO checkpoints, seed {seed}"):
        policy, _ = load_model(run_cfg.model, store.home, for_training=False, init_from=path)
        torch.manual_seed(seed * 1000 + step)
        samples = TransformersSampler(sampling, policy, tok, run_cfg.data, system=system).sample(prompts, m)
        kl = checkpoint_kl(policy, initial, tok, prompts, samples, run_cfg.data, system, ev.batch_size, seed)
        p, g, w = scorer(samples)
        points.append(rl_point(seed, step, kl, p, g, w, offset))
        del policy
    if cfg.prune_optimizer:
        for run in (rm_run, rl_run):
            store.drop_optimizer_state(run)
    return {"seed": seed, "rm_run": rm_run, "rl_run": rl_run, "pairs": pairs[SOURCE]["pairs"],
            "pairs_sampled": pairs[SOURCE]["judge/n_pairs"], "rm_eval": arm["reward_model"],
            "proxy_offset": offset, "rm_vs_gold": oo.pairwise_agreement(proxy, gold), "points": points, "train_seconds": t_train,
            "seconds": time.perf_counter() - t0}


def config_hash(cfg: OveroptConfig, base: dict) -> str:
    """What a seed's numbers depend on (everything but the list of seeds and the name)."""
    import json

    from ..records import content_hash

    data = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "name", "question")}
    return content_hash(json.dumps([data, base], sort_keys=True, default=str), n=12)


def seeds_done(store: Store, key: str) -> dict[int, dict]:
    """seed -> the newest stored `overopt_seed` result computed under config hash `key`: a second call
    (more seeds, or after a kill) reuses every seed already done."""
    return {r["result"]["seed"]: r for r in store.results("overopt_seed") if r["result"].get("config_hash") == key}


def run_overopt(config: str | Path, overrides: list[str], store: Store,
                say: Callable[[str], None] = lambda s: print(f"\n=== {s}", flush=True)) -> dict:
    """Every seed not stored yet under the same config (`overopt_seed` results), then the curve;
    stores and returns the `overopt` result."""
    from ..devices import machine

    t0 = time.perf_counter()
    cfg, base = load_overopt_config(config, overrides)
    group = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    say(f"overopt {group}: seeds {cfg.seeds}, best-of-n {cfg.best_of_n.ns}, RLOO {cfg.rl.steps} steps, "
        f"{cfg.evaluation.prompts} eval prompts; home {store.home}")
    key = config_hash(cfg, base)
    done = seeds_done(store, key)
    seeds = []
    for s in cfg.seeds:
        if s in done:
            say(f"seed {s}: reused, stored as result #{done[s]['result_id']} under the same config ({key})")
            seeds.append(done[s]["result"])
            continue
        seed_result = {**run_seed(cfg, base, s, store, group, say), "config_hash": key, "group": group}
        store.add_result("overopt_seed", seed_result, name=f"{group}:s{s}", run_id=seed_result["rl_run"],
                         judge="gold", baseline="initial")
        seeds.append(seed_result)
    points = [p for s in seeds for p in s["points"]]
    rows = oo.curve(points)
    bends = {m: oo.bend(rows, points, m) for m in ("bon", "rloo")}
    result = {"group": group, "question": cfg.question, "config": asdict(cfg),
              "base": base, "rows": rows, "points": points, "bends": bends,
              "seeds": [{k: v for k, v in s.items() if k != "points"} for s in seeds], "config_hash": key,
              "kl_estimator": "best-of-n: log n - (n-1)/n (analytic); RLOO: k3 per token summed, on the "
                              "checkpoint's own temperature-1 samples, vs the initial policy (evaluation/kl.py)",
              "proxy": "reward-model score minus the initial policy's mean score on the same eval prompts",
              "gold": "gold score of the verifiable task (0 degenerate, else 1 + share of constraints met)",
              "ci_method": rows[0]["ci_method"] if rows else None,
              "seconds": time.perf_counter() - t0, "machine": machine(arm_config(base, "rlhf", "x").to_dict())}
    result["result_id"] = store.add_result("overopt", result, name=group, task=arm_config(base, "rlhf", "x").data.task,
                                           judge="gold", baseline="initial")
    return result
