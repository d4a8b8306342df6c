"""Reward model: Bradley-Terry training through the shared trainer moves held-out accuracy on a tiny
separable set; the trained run is a judge by name with p = sigmoid(r_A - r_B); calibration by hand."""
from __future__ import annotations

import math
import random

import pytest
import torch

from harness.algorithms.reward_model import as_model_prompt, calibration, reward_scores
from harness.cli import main
from harness.records import Annotator, Label, Pair
from harness.store.filters import LabelFilter

from tiny_llama import make_tiny_llama

GOOD = ["Sure, here is a short and helpful answer.", "Happy to help: the answer is simple and clear."]
BAD = ["no no no no no no", "I will not. Go away. Stop asking."]
HUMAN = Annotator("human", "test:crowd", "v1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, model_cache) -> str:
    from harness.models import resolve_model

    return str(make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", resolve_model("smollm2-135m-instruct")))


def separable_pairs(n: int, seed: int = 0) -> tuple[list[Pair], list[Label]]:
    """n pairs where a helpful answer beats a rude one; which side is A is random."""
    rng = random.Random(seed)
    pairs, labels = [], []
    for i in range(n):
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        a_good = rng.random() < 0.5
        p = Pair(prompt=f"Question number {i}: can you help me with task {i}?",
                 response_a=good if a_good else bad, response_b=bad if a_good else good,
                 source="dataset:test", dataset="test")
        pairs.append(p)
        labels.append(Label(pair_id=p.pair_id, annotator=HUMAN, verdict="A" if a_good else "B"))
    return pairs, labels


def write_config(path, tiny, steps=30) -> str:
    path.write_text(f"""
algo: reward_model
name: rm-test
model: {{name: {tiny}}}
data: {{task: quickstart, max_prompt_tokens: 32, max_response_tokens: 16, eval_fraction: 0.25}}
reward_model: {{annotators: ["test:crowd"], dataset: test}}
train: {{steps: {steps}, batch_size: 8, lr: 3.0e-3, warmup_steps: 0, schedule: constant, checkpoint_every: 100}}
""")
    return str(path)


def test_calibration_by_hand():
    # two confident right answers (0.9), one confident wrong (0.2 for a pair whose A is better), one tie target
    out = calibration([0.9, 0.1, 0.2, 0.7], [1.0, 0.0, 1.0, 0.5], n_bins=5)
    assert out["accuracy"] == pytest.approx(2 / 3)  # ties are not decisive
    assert out["n_decisive"] == 3 and out["n"] == 4
    assert out["brier"] == pytest.approx((0.01 + 0.01 + 0.64 + 0.04) / 4)
    # confidences 0.9, 0.9, 0.8, 0.7 -> bins [0.8,0.9), [0.9,1]; correctness 1, 1, 0, 0.5
    by_lo = {b["lo"]: b for b in out["bins"] if b["n"]}
    assert by_lo[0.9]["n"] == 2 and by_lo[0.9]["accuracy"] == 1.0
    assert by_lo[0.8]["n"] == 1 and by_lo[0.8]["accuracy"] == 0.0
    assert by_lo[0.7]["n"] == 1 and by_lo[0.7]["accuracy"] == 0.5
    ece = (2 * abs(0.9 - 1.0) + 1 * abs(0.8 - 0.0) + 1 * abs(0.7 - 0.5)) / 4
    assert out["ece"] == pytest.approx(ece)


def test_hh_transcript_prompts_become_chat():
    msgs = as_model_prompt("\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: how to bake bread?\n\nAssistant:")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[-1]["content"] == "how to bake bread?"
    assert as_model_prompt("plain question") == "plain question"


def test_bt_training_moves_accuracy_and_judge(tmp_path, tiny, capsys):
    from harness.store import Store
    from judges.base import label_and_store
    from judges.registry import load_judge

    home = tmp_path / "home"
    store = Store(home)
    pairs, labels = separable_pairs(48)
    store.add_labels(labels, pairs)
    torch.manual_seed(0)
    assert main(["--home", str(home), "train", write_config(tmp_path / "rm.yaml", tiny), "--run-id", "rm1"]) == 0
    results = [r["result"] for r in store.results("reward_model_eval") if r["run_id"] == "rm1"]
    first, last = results[0], results[-1]
    assert first["step"] == 0 and last["step"] == 30
    assert last["n"] == first["n"] >= 6 and last["data_n_train"] + last["n"] == 48
    assert last["accuracy"] == 1.0  # separable: learned
    assert first["accuracy"] < 1.0 or first["brier"] > last["brier"]  # and it was not there at the start
    assert last["brier"] < first["brier"]
    assert 0.0 <= last["ece"] <= 1.0 and sum(b["n"] for b in last["bins"]) == last["n"]
    ev = store.metrics(["rm1"], split="eval")
    assert list(ev["step"]) == [0, 30]
    assert ev["reward_acc"].iloc[-1] == 1.0

    judge = load_judge("rm:rm1", home, "cpu")
    assert judge.annotator.kind == "reward_model" and judge.annotator.id == "rm:rm1"
    held = [p for p in pairs if p.pair_id not in set()]  # all pairs; held-out ones included
    r_a = judge.score([p.prompt for p in held], [p.response_a for p in held])
    r_b = judge.score([p.prompt for p in held], [p.response_b for p in held])
    answers = judge.judge(held, ("AB",))
    for p, ra, rb, (lab,) in zip(held, r_a, r_b, answers):
        assert lab.p_a == pytest.approx(1 / (1 + math.exp(-(ra - rb))), abs=1e-6)
        truth = next(l.verdict for l in labels if l.pair_id == p.pair_id)
        assert lab.verdict == truth  # the trained model ranks every pair right
    # the judge reproduces the run's final held-out Brier score: it loaded the trained weights
    from harness.algorithms.reward_model import split_examples, store_examples
    from harness.config import load_config

    cfg = load_config(tmp_path / "rm.yaml", [f"model.name={tiny}"])
    ex, _ = store_examples(store, ["test:crowd"], "test", soft=False)
    _, heldout = split_examples(ex, cfg.data, cfg.train.seed)
    sa = judge.score([e["prompt"] for e in heldout], [e["response_a"] for e in heldout])
    sb = judge.score([e["prompt"] for e in heldout], [e["response_b"] for e in heldout])
    brier = sum((1 / (1 + math.exp(-(a - b))) - e["p"]) ** 2 for a, b, e in zip(sa, sb, heldout)) / len(heldout)
    assert brier == pytest.approx(last["brier"], abs=1e-5)
    # as an annotator: labels land in the store under the reward-model kind
    out = label_and_store(judge, held[:4], store, run_id="rm-judge-test")
    assert len(out) == 4
    df = store.labels_df(LabelFilter(annotators=["rm:rm1"]))
    assert len(df) == 4 and set(df["annotator_kind"]) == {"reward_model"}


def test_rm_judge_any_hf_classifier(tmp_path, tiny):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from judges.reward_model import load_reward_judge

    for labels in (1, 2):
        model = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=labels)
        model.save_pretrained(tmp_path / f"cls{labels}")
        AutoTokenizer.from_pretrained(tiny).save_pretrained(tmp_path / f"cls{labels}")
    judge = load_reward_judge(str(tmp_path / "cls1"), device="cpu")
    s = judge.score(["hi", "hi"], ["hello there", "go away"])
    assert len(s) == 2 and all(math.isfinite(x) for x in s) and s[0] != s[1]
    with pytest.raises(Exception, match="label|size"):
        load_reward_judge(str(tmp_path / "cls2"), device="cpu")


def test_unknown_annotator_is_a_clear_error(tmp_path, tiny):
    from harness.store import Store

    home = tmp_path / "home"
    store = Store(home)
    pairs, labels = separable_pairs(4)
    store.add_labels(labels, pairs)
    cfg = write_config(tmp_path / "rm.yaml", tiny, steps=1)
    import os

    os.environ.pop("HARNESS_DEBUG", None)
    rc = main(["--home", str(home), "train", cfg, "reward_model.annotators=[nobody]"])
    assert rc == 2


def test_lora_reward_model_trains_its_head_and_reloads(tmp_path, tiny):
    """With LoRA the new score head trains too (saved beside the adapter) and rm:<run> reloads both."""
    from safetensors.torch import load_file

    from harness.store import Store
    from judges.registry import load_judge

    home = tmp_path / "home"
    store = Store(home)
    pairs, labels = separable_pairs(24)
    store.add_labels(labels, pairs)
    cfg = write_config(tmp_path / "rm.yaml", tiny, steps=6)
    assert main(["--home", str(home), "train", cfg, "model.lora.enabled=true", "model.lora.r=4", "--run-id", "lora"]) == 0
    res = [r["result"] for r in store.results("reward_model_eval")]
    assert res[-1]["accuracy"] == 1.0 and res[-1]["brier"] < res[0]["brier"]
    saved = load_file(str(store.latest_checkpoint("lora") / "model.safetensors"))
    assert any("score" in k for k in saved) and any("lora_" in k for k in saved)
    assert all("embed_tokens" not in k for k in saved)  # only the trainable tensors
    judge = load_judge("rm:lora", home, "cpu")
    verdicts = [labs[0].verdict for labs in judge.judge(pairs, ("AB",))]
    assert verdicts == [l.verdict for l in labels]
