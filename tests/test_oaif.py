"""OAIF through the shared trainer core: judged pairs -> examples (tie / unparsed policy, missing-EOS
penalty, metrics), samples and labels stored per step, resume after a real kill -9 with no label
lost or counted twice, and one short real run with the embedded model as policy and annotator."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.algorithms.oaif import OaifSource, apply_eos_penalty, judgements_to_examples
from harness.cli import main
from harness.records import Annotator, Judgement, Label, Pair
from harness.store.filters import LabelFilter, PairFilter
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"
CPU_CONFIG = REPO / "configs" / "oaif_quickstart_cpu.yaml"
ANN = Annotator(kind="rule", id="test", version="1")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def tiny_overrides(path: str, steps: int = 3, **extra) -> list[str]:
    kv = {"model.name": path, "train.steps": steps, "train.batch_size": 4, "train.lr": 1e-3,
          "train.checkpoint_every": 0, "sampling.max_new_tokens": 12, **extra}
    return [f"{k}={v}" for k, v in kv.items()]


def judgement(verdict, p_a=None, orders=("AB",), label_verdicts=None, prompt="q", a="a a", b="b"):
    pair = Pair(prompt=prompt, response_a=a, response_b=b)
    lv = label_verdicts or [verdict] * len(orders)
    labels = [Label(pair_id=pair.pair_id, annotator=ANN, verdict=v, shown_order=o, p_a=p_a) for v, o in zip(lv, orders)]
    consistent = None if len(orders) < 2 else len(set(lv)) == 1 and "unparsed" not in lv
    return Judgement(pair=pair, verdict=verdict, p_a=p_a, labels=labels, consistent=consistent)


# -- judged pairs -> examples ----------------------------------------------------------------
def test_tie_and_unparsed_policy():
    js = [judgement("A", 0.8, prompt="1"), judgement("B", 0.3, prompt="2"), judgement("tie", 0.5, prompt="3"),
          judgement("unparsed", None, prompt="4")]
    lengths = [(2, 1), (2, 1), (1, 1), (1, 2)]
    trunc = [(False, False)] * 4
    ex, m = judgements_to_examples(js, lengths, trunc, "skip")
    assert [(e["prompt"], e["chosen"], e["rejected"]) for e in ex] == [("1", "a a", "b"), ("2", "b", "a a")]
    assert [e["p"] for e in ex] == pytest.approx([0.8, 0.7])  # P(chosen better)
    assert m["judge/tie_rate"] == 0.25 and m["judge/unparsed_rate"] == 0.25 and m["judge/skipped"] == 2
    # A chose the longer (2 > 1), B chose the shorter: half the decided pairs prefer the shorter one
    assert m["judge/prefers_shorter"] == 0.5
    ex, m = judgements_to_examples(js, lengths, trunc, "soft")
    assert len(ex) == 4 and m["judge/skipped"] == 0
    assert [e["p"] for e in ex[2:]] == [0.5, 0.5]  # tie: its p_a; unparsed: 0.5
    assert ex[2]["chosen"] == "a a" and ex[2]["rejected"] == "b"


def test_position_and_consistency_metrics():
    both = ("AB", "BA")
    js = [judgement("A", orders=both, label_verdicts=["A", "A"]),  # AB: first preferred; BA: second
          judgement("tie", orders=both, label_verdicts=["A", "B"]),  # first shown preferred both times
          judgement("B", orders=both, label_verdicts=["B", "unparsed"])]
    _, m = judgements_to_examples(js, [(1, 2)] * 3, [(False, False)] * 3, "skip")
    # decided labels: A@AB first, A@BA second, A@AB first, B@BA first, B@AB second -> 3/5
    assert m["judge/p_first"] == pytest.approx(3 / 5)
    assert m["judge/consistency"] == pytest.approx(1 / 3)


def test_missing_eos_penalty_as_trl():
    # a probability is shifted in logit space by the penalty (TRL subtracts it from the reward)
    v, p, changed = apply_eos_penalty("A", 0.6, True, False, 1.0)
    assert v == "B" and p == pytest.approx(1 / (1 + math.e / 1.5)) and changed
    v, p, changed = apply_eos_penalty("A", 0.9, True, False, 1.0)
    assert v == "A" and p < 0.9 and not changed
    # without a probability the truncated response loses outright; both or neither truncated: no change
    assert apply_eos_penalty("A", None, True, False, 1.0) == ("B", None, True)
    assert apply_eos_penalty("unparsed", None, False, True, 1.0) == ("A", None, True)
    assert apply_eos_penalty("A", 0.6, True, True, 1.0) == ("A", 0.6, False)
    js = [judgement("A", None), judgement("B", None)]
    ex, m = judgements_to_examples(js, [(1, 2)] * 2, [(True, False), (True, False)], "skip", missing_eos_penalty=1.0)
    assert [e["chosen"] for e in ex] == ["b", "b"] and m["judge/eos_overrides"] == 1


# -- runs -------------------------------------------------------------------------------------
def labels_per_step(store, run_id) -> dict[int, int]:
    rows = store.query("SELECT step, COUNT(*) AS n FROM labels WHERE run_id=? GROUP BY step", (run_id,))
    return {r["step"]: r["n"] for r in rows}


def test_oaif_run_stores_samples_and_labels_per_step(tmp_path, tiny_path):
    from harness.store import Store

    home = tmp_path / "home"
    assert main(["--home", str(home), "train", str(RULE_CONFIG), *tiny_overrides(tiny_path), "--run-id", "r"]) == 0
    store = Store(home)
    assert labels_per_step(store, "r") == {1: 4, 2: 4, 3: 4}  # rule judge: one order, 4 pairs a step
    samples = store.samples_df("r")
    assert samples.groupby("step").size().to_dict() == {1: 8, 2: 8, 3: 8}
    assert samples["n_tokens"].between(1, 12).all()
    pairs = store.pairs_df(PairFilter(pair_run_id="r"))
    assert len(pairs) == 12 and set(pairs["policy_a"]) == {"r"} and pairs["reference"].notna().all()
    # every pair's responses are two of that step's samples
    for _, p in pairs.iterrows():
        texts = set(samples[samples.step == p["step"]]["response"])
        assert {p["response_a"], p["response_b"]} <= texts
    m = store.metrics(["r"])
    for col in ("judge/tie_rate", "judge/unparsed_rate", "judge/p_first", "judge/prefers_shorter", "judge/order_inconsistent",
                "sample/len_mean", "sample/truncated_rate", "loss", "grad_norm"):
        assert col in m.columns, col
    assert (m["source/n_examples"] + m["judge/skipped"] == 4).all()
    assert store.get_run("r")["status"] == "done"


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.mark.parametrize("policy", ["skip", "soft"])
def test_ties_skipped_or_trained_soft(tmp_path, tiny_path, policy):
    """An annotator that always ties: `skip` trains on nothing (no optimizer step, weights unchanged);
    `soft` trains on every pair with p = 0.5, whose soft loss is at its minimum (ln 2, zero gradient)
    while the policy equals the reference: a tie pulls the two log-ratios together, nothing else."""
    from harness.store import Store

    home = tmp_path / "home"
    over = tiny_overrides(tiny_path, steps=2, **{"judge.name": "rule:keyword:zebra", "oaif.tie_policy": policy,
                                                 "loss.kind": "soft"})
    assert main(["--home", str(home), "train", str(RULE_CONFIG), *over, "--run-id", "t"]) == 0
    store = Store(home)
    m = store.metrics(["t"])
    assert (m["judge/tie_rate"] == 1.0).all()
    after = _weights(store.latest_checkpoint("t"))
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_path).state_dict()
    same = all(torch.equal(after[k], before[k]) for k in after)
    if policy == "skip":
        assert (m["source/n_examples"] == 0).all() and "grad_norm" not in m.columns and same
    else:
        assert (m["source/n_examples"] == 4).all() and (m["label_p"] == 0.5).all()
        assert m["loss"].tolist() == pytest.approx([math.log(2)] * 2, abs=1e-5)
        assert m["grad_norm"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6) and same
    assert labels_per_step(store, "t") == {1: 4, 2: 4}


def test_unparsed_counted_and_skipped(tmp_path, tiny_path):
    """rule:bleu cannot score a pair without a reference answer: `unparsed`, never a guess."""
    from judges import make_label_fn
    from judges.registry import load_judge

    from harness.config import load_config
    from harness.models import load_model
    from harness.sampling import make_sampler
    from harness.store import Store

    cfg = load_config(RULE_CONFIG, tiny_overrides(tiny_path, **{"judge.name": "rule:bleu"}))
    store = Store(tmp_path / "home")
    model, tok = load_model(cfg.model)
    judge = load_judge(cfg.judge)
    src = OaifSource(cfg, store, "u", make_sampler(cfg.sampling, model, tok, cfg.data), make_label_fn(judge, store, "u"),
                     ["Say hi.", "Name a colour.", "Count to three.", "Tell a joke.", "Pick a fruit."], "toy")
    data = src.next(1, model, type("Ctx", (), {"rank": 0, "world": 1})())
    assert data.examples == [] and data.metrics["judge/unparsed_rate"] == 1.0 and data.metrics["judge/skipped"] == 4
    assert labels_per_step(store, "u") == {1: 4}
    assert src.state_dict() == {"position": 4}
    # the seeded order runs over every prompt once per epoch, then reshuffles
    src.load_state_dict({"position": 0})
    first = src.take(5)
    assert sorted(first) == sorted(src.prompts) and len(src.take(5)) == 5


def test_resume_after_kill9_loses_and_doubles_no_label(tmp_path, tiny_path):
    """A real SIGKILL mid-run, then `resume=true`: every step has exactly its labels, the same
    pairs and verdicts as an uninterrupted run, and the same final weights."""
    from harness.store import Store

    over = tiny_overrides(tiny_path, steps=6, **{"train.checkpoint_every": 2, "sampling.max_new_tokens": 24})
    # the uninterrupted reference run
    ref_home = tmp_path / "ref"
    assert main(["--home", str(ref_home), "train", str(RULE_CONFIG), *over, "--run-id", "x"]) == 0
    # the same run, killed with SIGKILL as soon as step 3 has labels
    home = tmp_path / "killed"
    store = Store(home)
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "--home", str(home), "train", str(RULE_CONFIG), *over,
                             "--run-id", "x"], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        try:
            steps = labels_per_step(store, "x")
        except Exception:  # the schema may not exist yet
            steps = {}
        if max(steps, default=0) >= 3:
            proc.send_signal(signal.SIGKILL)
            killed_at = steps
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, f"run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    ckpt = store.latest_checkpoint("x")
    assert ckpt is not None and store.get_run("x")["status"] == "running"
    done = int(ckpt.name.split("-")[1])
    assert done < max(killed_at), "the kill should leave labels of a step after the last checkpoint"
    assert main(["--home", str(home), "train", str(RULE_CONFIG), *over, "resume=true", "--run-id", "x"]) == 0

    ref = Store(ref_home)
    assert labels_per_step(store, "x") == labels_per_step(ref, "x") == {s: 4 for s in range(1, 7)}
    q = "SELECT step, pair_id, verdict, shown_order FROM labels WHERE run_id=? ORDER BY step, pair_id"
    assert store.query(q, ("x",)) == ref.query(q, ("x",))
    assert store.query("SELECT COUNT(*) AS n FROM labels WHERE cached=1")[0]["n"] == 0
    cols = ["step", "sample_id", "response", "n_tokens"]
    assert store.samples_df("x")[cols].equals(ref.samples_df("x")[cols])
    assert sorted(store.metrics(["x"])["step"]) == list(range(1, 7))
    a, b = _weights(store.latest_checkpoint("x")), _weights(ref.latest_checkpoint("x"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.slow
def test_embedded_policy_and_annotator_short_run(tmp_path):
    """Two real OAIF steps: SmolLM2 samples, a frozen SmolLM2 copy judges by log-probs in both orders."""
    from harness.store import Store

    home = tmp_path / "home"
    # the embedded 135M judge follows the order shown (its validity card says so): train anyway
    over = ["train.steps=2", "train.batch_size=2", "sampling.max_new_tokens=16", "data.max_prompt_tokens=64",
            "train.checkpoint_every=0", "judge.allow_biased=true", "judge.validity_pairs=2"]
    assert main(["--home", str(home), "train", str(CPU_CONFIG), *over, "--run-id", "e"]) == 0
    store = Store(home)
    labels = store.labels_df(LabelFilter(run_id="e"))
    assert labels.groupby("step").size().to_dict() == {1: 4, 2: 4}  # 2 pairs x 2 orders
    assert set(labels["shown_order"]) == {"AB", "BA"} and labels["p_a"].between(0, 1).all()
    assert set(labels["annotator_kind"]) == {"llm"}
    m = store.metrics(["e"]).set_index("step")
    assert m["judge/consistency"].between(0, 1).all() and m["sample/len_mean"].between(1, 16).all()
    assert m.loc[1, "source/n_examples"] + m.loc[1, "judge/skipped"] == 2


def test_soft_ties_need_the_soft_loss(tmp_path, tiny_path, capsys):
    over = tiny_overrides(tiny_path, **{"oaif.tie_policy": "soft", "loss.kind": "dpo"})
    assert main(["--home", str(tmp_path / "home"), "train", str(RULE_CONFIG), *over]) == 2
    assert "oaif.tie_policy: soft" in capsys.readouterr().err


class _RecordingSampler:
    """Stands in for the model sampler (what is tested is the bookkeeping of several steps in one call,
    not generation): answers every prompt with its own text and remembers each call's prompts."""

    def __init__(self):
        self.calls = []

    def update(self, model, step):
        pass

    def sample(self, prompts, n):
        from harness.sampling import Sample

        self.calls.append(list(prompts))
        return [[Sample(text=f"{p} #{k}", token_ids=[1, 2], n_tokens=2, truncated=False) for k in range(n)]
                for p in prompts]


def test_sample_steps_matches_step_by_step(tmp_path):
    """The pairs sampled once share one sampler call over all steps: each step gets the prompts (and
    pairs, samples stored under its step) that it would get step by step, in the same seeded order."""
    from types import SimpleNamespace

    from harness.config import load_config
    from harness.store import Store

    cfg = load_config(None, ["train.batch_size=3", "train.seed=7"], defaults={"algo": "oaif"})
    prompts = [f"prompt {i}" for i in range(5)]  # 3 steps x 3 prompts cross an epoch boundary
    ctx = SimpleNamespace(rank=0, world=1)
    runs = {}
    for how in ("one call", "step by step"):
        store = Store(tmp_path / how.replace(" ", "-"))
        sampler = _RecordingSampler()
        source = OaifSource(cfg, store, "r", sampler, label_fn=None, prompts=prompts)
        if how == "one call":
            got = source.sample_steps([1, 2, 3], None, ctx)
        else:
            got = [source.sample(step, None, ctx) for step in (1, 2, 3)]
        runs[how] = ([[r["prompt"] for r in rows] for rows, *_ in got],
                     [[(p.step, p.response_a, p.response_b) for p in pairs] for _, _, pairs, _ in got],
                     store.samples_df("r")[["step", "sample_id", "response"]].values.tolist(),
                     len(sampler.calls), source.position)
    one, each = runs["one call"], runs["step by step"]
    assert one[3] == 1 and each[3] == 3  # one generate batch against three
    assert one[0] == each[0] and one[1] == each[1] and one[2] == each[2] and one[4] == each[4] == 9
    flat = [p for step in one[0] for p in step]
    assert sorted(flat[:5]) == prompts and flat[:5] != prompts  # epoch 1: every prompt once, shuffled
    assert [len(s) for s in one[0]] == [3, 3, 3] and one[1][1][0][0] == 2
