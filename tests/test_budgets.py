"""Equal decided-pair budgets and best-of-k pairs (issue #37 item 1; docs/study.md "Budgets").

(a) the arms of a study comparison (offline vs OAIF, one source) train on equal decided pairs per
step for the same steps (tiny random Llama, rule annotator); (b) Copeland best-vs-worst on hand-made
verdict tables, cycles and all-ties; (c) k = 2 without the budget rule is today's OAIF: one batch of
prompts a step, the pair as judged; (d) an offline pool that cannot supply steps x batch_size
decided pairs without cycling is refused, naming the field. A fake sampler (deterministic texts)
and a length rule as the annotator keep (b)-(d) model-free."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.algorithms import pairs as pairs_mod
from harness.algorithms.oaif import OaifSource, judgements_to_examples
from harness.config import ConfigError, load_config
from harness.records import Judgement, Pair
from harness.sampling import Sample

REPO = Path(__file__).resolve().parents[1]


def cfg_of(**oaif):
    train = oaif.pop("train", {"steps": 2, "batch_size": 3})
    return load_config(None, [], defaults={"algo": "oaif", "data": {"task": "verifiable"}, "train": train,
                                           "oaif": oaif})


def judged(verdicts: list[str], k: int) -> list[Judgement]:
    return [Judgement(pair=Pair(prompt="p", response_a=f"r{i}", response_b=f"r{j}"), verdict=v, p_a=None, labels=[])
            for (i, j), v in zip(pairs_mod.all_pairs(k), verdicts)]


# -- (b) best vs worst --------------------------------------------------------------------------------
def test_copeland_best_and_worst_on_a_hand_made_table():
    # k=4, pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): 2 beats everyone, 0 loses to everyone but ties 3
    verdicts = ["B", "B", "tie", "B", "A", "A"]
    assert pairs_mod.copeland(4, verdicts) == [0.5, 2.0, 3.0, 0.5]
    best, worst, j = pairs_mod.best_vs_worst(4, judged(verdicts, 4))
    # best = 2; the lowest score 0.5 is shared by 0 and 3: the rule takes the last, 3
    assert (best, worst) == (2, 3)
    assert (j.pair.response_a, j.pair.response_b, j.verdict) == ("r2", "r3", "A")  # decided, 2 over 3


def test_a_cycle_and_all_ties_give_no_preference_and_k2_keeps_the_judgement():
    # 0 > 1, 1 > 2, 2 > 0: all score 1; best 0, worst 2, and 2 beat 0 on their own pair -> no preference
    best, worst, j = pairs_mod.best_vs_worst(3, judged(["A", "B", "A"], 3))
    assert (best, worst, j.verdict) == (0, 2, "tie")
    best, worst, j = pairs_mod.best_vs_worst(3, judged(["tie", "unparsed", "tie"], 3))
    assert (best, worst, j.verdict) == (0, 2, "tie")
    for v in ("A", "B", "tie", "unparsed"):
        [one] = judged([v], 2)
        assert pairs_mod.best_vs_worst(2, [one])[2] is one  # k=2: the pair exactly as judged
    with pytest.raises(ValueError, match="oaif.k"):
        pairs_mod.all_pairs(1)
    with pytest.raises(ValueError, match="expected 3"):
        pairs_mod.copeland(3, ["A"])


def test_k_and_the_budget_are_validated_fields():
    with pytest.raises(ConfigError, match="oaif.k"):
        cfg_of(k=1)
    with pytest.raises(ConfigError, match="oaif.tie_policy"):
        cfg_of(tie_policy="soft", equal_budget=True)
    with pytest.raises(ConfigError, match="oaif.max_calls_per_step"):
        cfg_of(equal_budget=True, max_calls_per_step=2)  # fewer than one batch of 3 prompts
    assert cfg_of().oaif.k == 2 and cfg_of().oaif.equal_budget is False  # the default: today's OAIF


# -- a model-free OAIF source: texts of set lengths, the longer one wins -----------------------------
class LengthSampler:
    """Prompt i's response j is 'x' * lengths(i, j) (+ a tag, so every text differs)."""

    def __init__(self, lengths):
        self.lengths, self.calls = lengths, []

    def update(self, model, step):
        pass

    def sample(self, prompts, n):
        self.calls.append((list(prompts), n))
        out = []
        for p in prompts:
            i = int(p.split()[-1])
            out.append([Sample(text="x" * self.lengths(i, j) + f" #{i}.{j}", token_ids=[1] * (j + 1),
                               n_tokens=j + 1, truncated=False) for j in range(n)])
        return out


def longer(pairs, step=None):
    def length(t):
        return len(t.split(" #")[0])

    return [Judgement(pair=p, p_a=None, labels=[],
                      verdict="A" if length(p.response_a) > length(p.response_b) else
                      "B" if length(p.response_a) < length(p.response_b) else "tie") for p in pairs]


class Ctx:
    rank, world = 0, 1


def source_of(store, cfg, lengths):
    prompts = [{"prompt": f"prompt {i}", "id": str(i)} for i in range(40)]
    return OaifSource(cfg, store, "r1", LengthSampler(lengths), longer, prompts, task_name="t")


def ties_on_even(i, j):  # even prompts: every response the same length (a tie); odd: lengths differ
    return 3 if i % 2 == 0 else 3 + j


# -- (c) k = 2 without the rule is today's OAIF -------------------------------------------------------
def test_k2_without_the_budget_rule_draws_one_batch_and_trains_on_the_pairs_as_judged(store):
    cfg = cfg_of()
    src = source_of(store, cfg, ties_on_even)
    data = src.next(1, None, Ctx())
    assert src.position == 3 and src.sampler.calls[0][1] == 2  # one batch of train.batch_size, 2 samples each
    rows_in = [{"prompt": p} for p in src.sampler.calls[0][0]]
    samples = src.sampler.sample(src.sampler.calls[0][0], 2)
    pairs = [Pair(prompt=r["prompt"], response_a=a.text, response_b=b.text) for r, (a, b) in zip(rows_in, samples)]
    # the old path: every pair's judgement straight into judgements_to_examples
    old, _ = judgements_to_examples(longer(pairs), [((1,), (2,))] * 3, [(False, False)] * 3, "skip",
                                    prompts=[r["prompt"] for r in rows_in],
                                    token_ids=[(a.token_ids, b.token_ids) for a, b in samples])
    keys = ("prompt", "chosen", "rejected", "chosen_ids", "rejected_ids")
    assert [{k: e[k] for k in keys} for e in data.examples] == [{k: e[k] for k in keys} for e in old]
    decided = sum(ties_on_even(i, 0) != ties_on_even(i, 1) for i in [int(p.split()[-1]) for p in src.sampler.calls[0][0]])
    assert data.metrics["source/decided"] == decided == len(data.examples) < 3  # ties dropped, no more drawn
    assert data.metrics["source/calls"] == 3


def test_the_budget_rule_draws_prompts_until_the_step_has_batch_size_decided_pairs(store):
    src = source_of(store, cfg_of(equal_budget=True), ties_on_even)
    for step in (1, 2):
        data = src.next(step, None, Ctx())
        assert len(data.examples) == data.metrics["source/decided"] == 3 and data.metrics["source/shortfall"] == 0
    drawn = [int(p.split()[-1]) for prompts, _ in src.sampler.calls for p in prompts]
    assert drawn == src._order(0)[:src.position]  # the seeded order, none skipped, none twice
    # a round of `need` prompts cannot overshoot: exactly 6 decided (odd) prompts over the two steps
    assert sum(i % 2 for i in drawn) == 6 and len(drawn) > 6
    assert data.metrics["source/calls"] == data.metrics["source/prompts"]  # k=2: one call a prompt
    # a cap on calls: it trains on what it has and says how many it lacked
    capped = source_of(store, cfg_of(equal_budget=True, max_calls_per_step=3), lambda i, j: 3)  # all ties
    data = capped.next(1, None, Ctx())
    assert data.examples == [] and data.metrics["source/shortfall"] == 3 and data.metrics["source/calls"] == 3


def test_best_of_4_asks_every_pair_and_trains_on_best_vs_worst(store):
    src = source_of(store, cfg_of(k=4, train={"steps": 1, "batch_size": 2}), lambda i, j: [5, 9, 2, 7][j])
    data = src.next(1, None, Ctx())
    assert data.metrics["source/calls"] == 2 * 6 and len(data.examples) == 2
    for e in data.examples:  # the longest (j=1, 9) over the shortest (j=2, 2)
        assert e["chosen"].startswith("x" * 9 + " #") and e["rejected"].startswith("xx #")


# -- (d) the offline pool ------------------------------------------------------------------------------
def test_an_offline_pool_too_small_to_train_without_cycling_is_refused(store, tmp_path):
    from harness.algorithms.offline import build_dpo
    from harness.pipelines.pool import label_pool

    cfg = cfg_of(equal_budget=True, max_calls_per_step=8)  # the pool may ask 2 x 8 pairs
    run = store.create_run(cfg.to_dict(), "sample_pairs", task="verifiable", name="pool")
    src = source_of(store, cfg, ties_on_even)
    full = label_pool(src, None, Ctx(), {"longer": (longer, "skip")}, cfg, store, run, 16)
    assert len(full["longer"]["examples"]) == 6  # steps x batch_size, each decided pair once
    odd = [n for n, i in enumerate(src._order(0)) if i % 2]
    assert full["longer"]["calls"] == odd[5] + 1  # the calls up to the prompt that gave the 6th decided pair
    few = src._order(0)[:16:8]  # 2 of the 16 prompts the cap allows are decided, the rest tie
    with pytest.raises(ValueError, match=r"pool of 16 pairs asked .*: 2 decided pairs, but oaif.equal_budget "
                                         r"needs .* = 6 .*oaif.max_calls_per_step"):
        label_pool(source_of(store, cfg, lambda i, j: 3 + j * (i in few)), None, Ctx(),
                   {"longer": (longer, "skip")}, cfg, store, run, 16)
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(5)))
    dpo = load_config(None, [], defaults={"algo": "dpo", "data": {"task": "verifiable", "path": str(path),
                                                                  "eval_fraction": 0.0},
                                          "train": {"steps": 2, "batch_size": 3}, "oaif": {"equal_budget": True}})
    with pytest.raises(ValueError, match=r"pairs.jsonl.*5 decided pairs.*train.steps x train.batch_size = 6"):
        build_dpo(dpo, store, "r2", None, None, ref=object())


# -- (a) two arms of a study comparison --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_path) -> str:
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def test_the_arms_of_a_comparison_get_equal_decided_pairs_per_step(tmp_path, tiny_model, capsys, monkeypatch):
    from card_stub import install_card_stub
    from harness.cli import main
    from harness.store import Store

    install_card_stub(monkeypatch)
    cfg = yaml.safe_load((REPO / "configs" / "study_cpu.yaml").read_text())
    assert cfg["base"]["oaif"]["equal_budget"] is True  # the study's rule, not only this test's
    cfg.update(seeds=[0], arms={"offline_dpo": cfg["arms"]["offline_dpo"], "oaif_dpo": cfg["arms"]["oaif_dpo"]},
               contrasts=[cfg["contrasts"][0]], evaluation={"n": 2, "max_new_tokens": 4})
    cfg["base"]["model"]["name"] = tiny_model
    cfg["base"]["train"].update(steps=2, batch_size=3, checkpoint_every=0, lr=5e-2)
    cfg["base"]["sampling"]["max_new_tokens"] = 8
    cfg["sources"]["gold"]["annotator"] = "rule:longer"  # gold ties a random model's answers
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["--home", str(tmp_path / "home"), "replicate", str(path)]) == 0
    out = capsys.readouterr().out
    [summary] = [r["result"] for r in Store(tmp_path / "home").results("study_summary")]
    b = {c["arm"]: c["budget"] for c in summary["cells"]}
    assert b["offline_dpo"]["decided_per_step"] == b["oaif_dpo"]["decided_per_step"] == [3.0, 3.0]
    assert b["offline_dpo"]["steps"] == b["oaif_dpo"]["steps"] == 2
    assert b["offline_dpo"]["pool_pairs"] == 6  # each decided pair trained on once
    assert 6 <= b["oaif_dpo"]["calls"] <= 2 * 4 * 3 and 6 <= b["offline_dpo"]["calls"] <= 2 * 4 * 3
    rows = {a["arm"]: a["budget"] for a in summary["arms"]}
    assert rows["oaif_dpo"]["decided_per_step"] == [3.0, 3.0]
    assert "offline_dpo seed 0: 2 steps, 3 decided pairs per step (6 in all), 6 distinct" in out
    assert "oaif_dpo seed 0: 2 steps, 3 decided pairs per step (6 in all)" in out
