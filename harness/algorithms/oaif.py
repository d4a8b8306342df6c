"""OAIF (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback") as a step source.

Each step: take `train.batch_size` task prompts (seeded order), sample `oaif.k` (default two)
responses per prompt from the current policy (k > 2: every pair asked, best vs worst kept,
algorithms/pairs.py; `oaif.equal_budget`: more prompts until the step has batch_size decided
pairs), ask the annotator (a LabelFn; the trainer never sees the judge) which is better, and hand {prompt, chosen, rejected, p, *_ids, *_truncated} examples (the sampled token ids:
trained on as sampled, EOS only where one was sampled) to the SAME PreferenceObjective offline DPO
uses. A verdict that flips with the presentation order is a tie (MT-Bench), skipped and counted. Only where the pairs come from differs: the loop is harness.trainer.train.

Every sample and label is stored as it is made, with its step. On resume the trainer restores the
RNG and this source's position, so the interrupted step samples the same pairs again; their labels
are read back from the store instead of being asked (or stored) twice.
"""
from __future__ import annotations

import copy
import math
import random
import time
from typing import Sequence

from ..evaluation.bias import judgement_bias
from ..records import Judgement, Label, Pair, combine_orders, order_inconsistent, prompt_text
from ..trainer import StepData
from .pairs import calls_per_prompt, max_calls, select
from .preference import PreferenceObjective


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def apply_eos_penalty(verdict: str, p_a: float | None, trunc_a: bool, trunc_b: bool,
                      penalty: float) -> tuple[str, float | None, bool]:
    """TRL's missing-EOS penalty for a pairwise annotator: (verdict, p_a, changed).

    TRL subtracts `penalty` from the reward of a response without EOS. With a probability p_a =
    sigmoid(r_a - r_b) on a decided verdict that is a shift of logit(p_a) by the penalty. Without a
    probability (a vote: rule judges, generate mode; records.combine_orders gives p_a=None), and
    for unparsed or tied verdicts (a tie's mean p_a is no verified preference: the orders may have
    disagreed), the truncated response loses outright."""
    if trunc_a == trunc_b:
        return verdict, p_a, False
    shift = penalty if trunc_b else -penalty  # the complete response gains
    if p_a is not None and verdict in ("A", "B"):
        new_p = _sigmoid(_logit(p_a) + shift)
        new_v = "A" if new_p > 0.5 else "B" if new_p < 0.5 else "tie"
        return new_v, new_p, new_v != verdict
    new_v = "B" if trunc_a else "A"
    return new_v, None, new_v != verdict


def judgements_to_examples(judgements: Sequence[Judgement], lengths: Sequence[tuple],
                           truncated: Sequence[tuple[bool, bool]], tie_policy: str = "skip",
                           missing_eos_penalty: float | None = None,
                           prompts: Sequence | None = None,
                           token_ids: Sequence[tuple[list[int], list[int]]] | None = None) -> tuple[list[dict], dict]:
    """Judged pairs -> preference examples and the step's judge metrics.

    Decided pairs become {prompt, chosen, rejected, p, chosen_truncated, rejected_truncated} with
    p = P(chosen better) where the annotator gives one. Ties (including pairs whose verdict flipped
    with the order, MT-Bench's rule) and unparsed verdicts are skipped (`tie_policy: skip`; the
    order-flipped ones counted in `judge/order_inconsistent`) or kept with their soft probability
    (`soft`: p_a, or 0.5 without one), which only `loss.kind: soft` reads.
    `token_ids`: per pair, the sampled ids of (a, b) (EOS included where sampled); the examples
    carry them as `chosen_ids`/`rejected_ids`, so the objective trains on exactly those tokens.
    `lengths`: per pair, comparable lengths of (a, b), e.g. (tokens, characters) tuples: the
    shorter response is the one with the smaller tuple; equal lengths do not count. `prompts`: the
    prompts as the policy saw them (chat messages stay messages), default each pair's prompt text."""
    examples, n_tie, n_unparsed, n_skipped, n_eos, n_flipped, n_decided = [], 0, 0, 0, 0, 0, 0
    n_flipped_all = sum(order_inconsistent(j) for j in judgements)  # kept (soft) or not
    prompts = list(prompts) if prompts is not None else [j.pair.prompt for j in judgements]
    lengths = list(lengths)
    ids = list(token_ids) if token_ids is not None else [None] * len(judgements)
    for j, (ta, tb), prompt, pair_ids in zip(judgements, truncated, prompts, ids):
        verdict, p_a = j.verdict, j.p_a
        n_tie += verdict == "tie"
        n_unparsed += verdict == "unparsed"
        if missing_eos_penalty is not None:
            verdict, p_a, changed = apply_eos_penalty(verdict, p_a, ta, tb, missing_eos_penalty)
            n_eos += changed
        pair = j.pair
        if verdict in ("A", "B") or tie_policy == "soft":
            n_decided += verdict in ("A", "B")  # a soft tie trains but carries no preference
            a_wins = verdict != "B"  # a soft tie keeps A as `chosen` with p = p_a
            if verdict in ("A", "B"):
                p = None if p_a is None else (p_a if a_wins else 1.0 - p_a)
            else:
                p = 0.5 if p_a is None else p_a
            ex = {"prompt": prompt, "chosen": pair.response_a if a_wins else pair.response_b,
                  "rejected": pair.response_b if a_wins else pair.response_a, "p": p, "pair_id": pair.pair_id,
                  "chosen_truncated": bool(ta if a_wins else tb), "rejected_truncated": bool(tb if a_wins else ta)}
            if pair_ids is not None:
                ex["chosen_ids"], ex["rejected_ids"] = (list(pair_ids[0]), list(pair_ids[1])) if a_wins else (
                    list(pair_ids[1]), list(pair_ids[0]))
            examples.append(ex)
        else:
            n_skipped += 1
            n_flipped += order_inconsistent(j)
    n = max(len(judgements), 1)
    # the annotator's own taste, before any EOS penalty; an unparsed order is an inconsistent pair
    bias = judgement_bias(judgements, lengths=lengths, unparsed="inconsistent")
    longer = bias["p_longer"]["value"]
    nan = float("nan")
    metrics = {
        "judge/n_pairs": float(len(judgements)),
        "judge/tie_rate": n_tie / n,
        "judge/unparsed_rate": n_unparsed / n,
        "judge/skipped": float(n_skipped),
        "judge/order_inconsistent": float(n_flipped),  # of the skipped: the verdict flipped with the order
        "judge/order_flipped": float(n_flipped_all),  # all pairs whose verdict flipped, skipped or kept soft
        "judge/p_first": _or_nan(bias["p_first"]["value"]),
        "judge/consistency": _or_nan(bias["position_consistency"]["value"]),
        "judge/prefers_shorter": nan if longer is None else 1.0 - longer,
        "judge/eos_overrides": float(n_eos),
        "source/n_examples": float(len(examples)),
        "source/decided": float(n_decided),
    }
    return examples, metrics


def _or_nan(x: float | None) -> float:
    return float("nan") if x is None else x


class OaifSource:
    """`source.next(step, model, ctx)` for the trainer: sample, label, turn into examples."""

    def __init__(self, cfg, store, run_id: str, sampler, label_fn, prompts: Sequence, task_name: str = "",
                 gold=None):
        if not prompts:
            raise ValueError(f"data.task: task {task_name!r} has no training prompts")
        self.cfg, self.store, self.run_id = cfg, store, run_id
        self.sampler, self.label_fn = sampler, label_fn
        self.judge = getattr(label_fn, "judge", None)
        self.prompts = list(prompts)
        self.task_name = task_name
        self.gold = gold  # the task's gold judge (verifiable tasks): the annotator is scored against it per step
        self.position = 0  # prompts handed out so far, over all epochs

    # -- data order: a fresh seeded permutation per epoch; the state is one integer ----------
    def _order(self, epoch: int) -> list[int]:
        idx = list(range(len(self.prompts)))
        random.Random(f"{self.cfg.train.seed}:{epoch}").shuffle(idx)
        return idx

    def take(self, n: int) -> list:
        out, order, order_epoch = [], None, None
        while len(out) < n:
            epoch, offset = divmod(self.position, len(self.prompts))
            if epoch != order_epoch:
                order, order_epoch = self._order(epoch), epoch
            out.append(self.prompts[order[offset]])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])

    # -- one step -------------------------------------------------------------------------
    def next(self, step: int, model, ctx) -> StepData:
        """One batch of train.batch_size prompts; under oaif.equal_budget, more prompts (the same
        seeded order) until the step has train.batch_size DECIDED pairs or max_calls_per_step calls
        are spent: it then trains on what it has, `source/shortfall` says how many it lacked."""
        target, per = self.cfg.train.batch_size, calls_per_prompt(self.cfg.oaif.k)
        if not self.cfg.oaif.equal_budget:
            rows_in, samples, pairs, t_sample = self.sample(step, model, ctx)
            t1 = time.perf_counter()
            judgements = self.label(pairs, step)
            examples, metrics = self.to_examples(judgements, rows_in, samples)
            metrics.update({"source/sample_s": t_sample, "source/judge_s": time.perf_counter() - t1})
            return StepData(examples=examples, metrics=metrics, sharded=True)
        if getattr(ctx, "world", 1) > 1:
            raise ValueError("oaif.equal_budget: one process only (each would draw its own number of prompts)")
        cap = max_calls(self.cfg)
        rows_in, samples, judgements, t_sample, t_judge = [], [], [], 0.0, 0.0
        examples, metrics = [], {}
        while (need := target - len(examples)) > 0 and (n := min(need, (cap - len(judgements)) // per)) > 0:
            # a round of `need` prompts decides at most `need` pairs: the step never overshoots its target
            [(rows, smp, pairs, ts)] = self.sample_steps([step], model, ctx, n=n, offset=len(rows_in),
                                                         update=not rows_in)
            t1 = time.perf_counter()
            judgements += self.label(pairs, step)
            t_judge += time.perf_counter() - t1
            rows_in, samples, t_sample = rows_in + rows, samples + smp, t_sample + ts
            examples, metrics = self.to_examples(judgements, rows_in, samples)
        metrics.update({"source/sample_s": t_sample, "source/judge_s": t_judge,
                        "source/shortfall": float(target - metrics["source/decided"])})
        return StepData(examples=examples, metrics=metrics, sharded=True)

    def sample(self, step: int, model, ctx) -> tuple[list[dict], list, list[Pair], float]:
        """This step's prompts (this process's share), two samples each from the current policy, as
        stored Pairs: (prompt rows, samples, pairs, seconds)."""
        return self.sample_steps([step], model, ctx)[0]

    def sample_steps(self, steps: Sequence[int], model, ctx, n: int | None = None, offset: int = 0,
                     update: bool = True) -> list[tuple[list[dict], list, list[Pair], float]]:
        """`sample` for several steps in one sampler call, for a policy that does not change between
        them (the demo's pairs sampled once): generate() is several times faster per row in large
        batches on a CPU. Prompts are taken in the same order as step by step; seconds are shared.
        `n` prompts per step (default train.batch_size); `offset`: prompts this step drew already
        (a later round of an equal-budget step: its sample indices follow on); `update`: sync the
        sampler's weights first (once per step). Pairs: all k(k-1)/2 of each prompt's k samples."""
        rank, world = getattr(ctx, "rank", 0), getattr(ctx, "world", 1)
        k = self.cfg.oaif.k
        planned = []
        for step in steps:
            batch = self.take(n or self.cfg.train.batch_size)
            mine = list(range(len(batch)))[rank::world]  # each process samples and labels its own prompts
            planned.append((step, [offset + i for i in mine], [prompt_row(batch[i]) for i in mine]))
        t0 = time.perf_counter()
        if update:
            self.sampler.update(model, steps[0])
        flat = self.sampler.sample([r["prompt"] for _, _, rows_in in planned for r in rows_in], k)
        t_sample = (time.perf_counter() - t0) / len(steps)
        out, at = [], 0
        for step, mine, rows_in in planned:
            samples, at = flat[at:at + len(rows_in)], at + len(rows_in)
            out.append((rows_in, samples, self._store_pairs(step, mine, rows_in, samples), t_sample))
        return out

    def _store_pairs(self, step: int, mine: list[int], rows_in: list[dict], samples: list) -> list[Pair]:
        from .pairs import all_pairs

        rows, pairs = [], []
        for gi, row, resp in zip(mine, rows_in, samples):
            text = prompt_text(row["prompt"])
            for k, s in enumerate(resp):
                rows.append(s.as_row(text, len(resp) * gi + k, policy=self.run_id, meta={"pair_slot": chr(65 + k)}))
            for i, j in all_pairs(len(resp)):
                a, b = resp[i], resp[j]
                pairs.append(Pair(prompt=text, response_a=a.text, response_b=b.text, source=f"run:{self.run_id}",
                                  dataset=self.task_name or None, record_id=row.get("id"), run_id=self.run_id,
                                  step=step, reference=row.get("reference"),
                                  policy_a=self.run_id, policy_b=self.run_id,
                                  meta={"n_tokens": [a.n_tokens, b.n_tokens], "truncated": [a.truncated, b.truncated]}))
        self.store.add_samples(self.run_id, step, rows)
        return pairs

    def to_examples(self, judgements: list[Judgement], rows_in: list[dict], samples: list,
                    tie_policy: str | None = None) -> tuple[list[dict], dict]:
        """Judged pairs -> (preference examples, the step's judge/sample metrics, gold agreement included).
        `judgements`: all k(k-1)/2 pairs of each prompt's k `samples`; each prompt trains on its
        best-vs-worst pair (algorithms/pairs.py; for k = 2 the one pair as judged). `source/calls`:
        pairs asked (an order-swapped re-ask is part of one call); `source/decided`: pairs with a preference.
        `tie_policy`: default the run's `oaif.tie_policy` (the demo labels one sample with several sources)."""
        k = len(samples[0]) if samples else self.cfg.oaif.k
        chosen, pair_samples = select(k, judgements, samples)
        lengths = [((a.n_tokens, len(a.text)), (b.n_tokens, len(b.text))) for a, b in pair_samples]
        truncs = [(a.truncated, b.truncated) for a, b in pair_samples]
        examples, metrics = judgements_to_examples(chosen, lengths, truncs, tie_policy or self.cfg.oaif.tie_policy,
                                                   self.cfg.oaif.missing_eos_penalty,
                                                   prompts=[r["prompt"] for r in rows_in],
                                                   token_ids=[(a.token_ids, b.token_ids) for a, b in pair_samples])
        metrics.update(gold_metrics(self.gold, judgements))  # the annotator's accuracy on every pair it was asked
        metrics.update({"source/calls": float(len(judgements)), "source/prompts": float(len(samples))})
        flat = [s for resp in samples for s in resp]
        metrics.update({
            "sample/len_mean": sum(s.n_tokens for s in flat) / max(len(flat), 1),
            "sample/words_mean": sum(len(s.text.split()) for s in flat) / max(len(flat), 1),
            "sample/truncated_rate": sum(s.truncated for s in flat) / max(len(flat), 1),
        })
        return examples, metrics

    def label(self, pairs: list[Pair], step: int) -> list[Judgement]:
        """Labels for this step's pairs. Labels this run already stored for this step (an interrupted
        step being redone after resume) are read back, so none is asked or counted twice."""
        stored = self._stored(pairs, step)
        todo = [p for p in pairs if p.pair_id not in stored]
        fresh = iter(self.label_fn(todo, step=step) if todo else [])
        return [stored[p.pair_id] if p.pair_id in stored else next(fresh) for p in pairs]

    def _stored(self, pairs: list[Pair], step: int) -> dict[str, Judgement]:
        judge = self.judge
        if judge is None or not pairs:
            return {}
        ann = judge.annotator
        orders = tuple(getattr(judge, "orders", ("AB",)))
        by_key = {}
        for r in self.store.step_labels(self.run_id, step, ann.id, ann.version):
            by_key.setdefault((r["pair_id"], r["shown_order"]), r)
        tie_band = getattr(judge, "tie_band", 0.0) or 0.0
        out = {}
        for p in pairs:
            if all((p.pair_id, o) in by_key for o in orders):
                labs = [Label(pair_id=p.pair_id, annotator=ann, verdict=by_key[(p.pair_id, o)]["verdict"],
                              shown_order=o, p_a=by_key[(p.pair_id, o)]["p_a"],
                              raw_output=by_key[(p.pair_id, o)]["raw_output"] or "", run_id=self.run_id, step=step,
                              cached=True) for o in orders]
                verdict, p_a, consistent = combine_orders(labs, tie_band)
                out[p.pair_id] = Judgement(pair=p, verdict=verdict, p_a=p_a, labels=labs, consistent=consistent)
        return out


def gold_metrics(gold, judgements: Sequence[Judgement]) -> dict:
    """The annotator against the task's gold scorer on this step's pairs: `judge/gold_decided` pairs
    gold decides, `judge/gold_agree` of them with the same verdict (a tie or unparsed verdict counts
    as wrong, as in harness/evaluation/gold_agreement.py). Counts, so steps sum to a Wilson CI."""
    if gold is None or not judgements:
        return {}
    pairs = [j.pair for j in judgements]
    truth = [labels[0].verdict for labels in gold.judge(pairs)]
    decided = [(t, j.verdict) for t, j in zip(truth, judgements) if t in ("A", "B")]
    agree = sum(t == v for t, v in decided)
    return {"judge/gold_decided": float(len(decided)), "judge/gold_agree": float(agree),
            "judge/gold_accuracy": agree / len(decided) if decided else float("nan")}


def task_gold(task, judge):
    """The gold judge of a verifiable task (a loaded Task), or None (no constraints, or the annotator
    IS the gold scorer)."""
    from judges.gold import make_gold_judge

    from ..evaluation.gold_eval import is_gold

    if judge is None or is_gold(judge) or not task.gold_rows():
        return None
    return make_gold_judge(str(task.directory))  # a path: tasks outside the package (tests) load too


def prompt_row(prompt) -> dict:
    """A task prompt row {prompt, reference?, id?}, or a bare prompt (text or chat messages)."""
    if isinstance(prompt, dict) and "prompt" in prompt:
        return prompt
    return {"prompt": prompt}


def objective_config(cfg):
    """The run config the objective reads: responses cut at `sampling.max_new_tokens` (the objective
    trains on the sampled ids, EOS only where one was sampled; the cut bounds any text-only example)."""
    out = copy.deepcopy(cfg)
    out.data.max_response_tokens = cfg.sampling.max_new_tokens
    return out


TIE_POLICIES = ("skip", "soft")  # what a tie (or unparsed verdict) becomes: dropped, or kept with its p


def check_config(cfg, bad) -> None:
    """The `oaif:` section (`bad(key, message)` raises); run by config.validate for every config."""
    from .pairs import check_config as check_pairs

    if cfg.oaif.tie_policy not in TIE_POLICIES:
        bad("oaif.tie_policy", f"must be one of {', '.join(TIE_POLICIES)}, got {cfg.oaif.tie_policy!r}")
    check_pairs(cfg, bad)
    if cfg.algo == "oaif" and cfg.oaif.tie_policy == "soft" and cfg.loss.kind != "soft":
        bad("oaif.tie_policy", f"soft keeps ties with their probability, which only loss.kind: soft "
            f"reads; with loss.kind: {cfg.loss.kind} a tie would train as a win for response A")


def build(cfg, store, run_id, model, tokenizer, ref, home):
    """(OaifSource, PreferenceObjective) for the trainer; the annotator stays inside the LabelFn."""
    from judges import make_label_fn
    from judges.registry import load_judge

    from ..config import ConfigError
    from ..models import pick_device
    from ..sampling import make_sampler
    from ..tasks import load_task

    def bad(key, msg):
        raise ConfigError(f"{key}: {msg}")

    check_config(cfg, bad)  # a config made in code, not by load_config, is checked here
    task = load_task(cfg.data.task)
    prompts = list(task.prompts(cfg.data.split))
    if cfg.data.max_train:
        prompts = prompts[:cfg.data.max_train]
    judge = load_judge(cfg.judge, home, str(pick_device(cfg.model.device)), rubric=getattr(task, "rubric", None))
    label_fn = make_label_fn(judge, store, run_id)
    sampler = make_sampler(cfg.sampling, model, tokenizer, cfg.data, system=task.spec.system)
    source = OaifSource(cfg, store, run_id, sampler, label_fn, prompts, task_name=cfg.data.task,
                        gold=task_gold(task, judge))
    # the task's system prompt reaches the objective as it reached the sampler: same prompt tokens
    return source, PreferenceObjective(objective_config(cfg), system=task.spec.system)
