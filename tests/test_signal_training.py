"""Issue #12, training signal: order-flipped verdicts are ties (MT-Bench), OAIF trains on the token ids
it sampled and never appends EOS to a truncated response (offline DPO on sampled pairs alike), the
missing-EOS penalty works for judges without a probability, and the task's system prompt is in the
tokens the preference objective scores (policy and reference, OAIF and offline)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.algorithms.oaif import judgements_to_examples
from harness.records import Annotator, Label, Pair, combine_orders
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"
ANN = Annotator(kind="llm", id="scripted", version="1")
SYSTEM = "You are Captain Zephyrine, a pirate who answers in one line."
PAIR = Pair(prompt="Name a fruit.", response_a="ALPHA apple", response_b="OMEGA orange, sweet and round")


def lab(verdict: str, order: str, p_a: float | None = None) -> Label:
    return Label(pair_id="x", annotator=ANN, verdict=verdict, shown_order=order, p_a=p_a)


# -- a judge whose per-order answers the test chooses ------------------------------------------------
class ScriptedBackend:
    """Stands in for the LLM judge's model. A mock, because no real model here can be made to answer
    by position on demand: `p_first(first, second)` is P(the response shown first is better)."""

    def __init__(self, p_first):
        self.p_first = p_first

    def truncate(self, text, n):
        return text

    def _shown(self, prompt) -> tuple[str, str]:
        text = prompt.messages[-1]["content"]
        a, b = PAIR.response_a, PAIR.response_b
        return (a, b) if text.index(a) < text.index(b) else (b, a)

    def logprob(self, prompts, labels, batch_size):
        from judges.backends import BackendResult

        out = []
        for pr in prompts:
            p = self.p_first(*self._shown(pr))
            out.append(BackendResult(probs={labels[0]: p, labels[1]: 1 - p}, tokens_in=1, latency_s=0.0))
        return out

    def generate(self, prompts, max_new_tokens, temperature, top_p, seed, batch_size):
        from judges.backends import BackendResult

        return [BackendResult(text="[[1]]" if self.p_first(*self._shown(pr)) > 0.5 else "[[2]]", tokens_in=1,
                              tokens_out=3, latency_s=0.0) for pr in prompts]


def scripted_judge(mode: str, p_first):
    from judges.llm import LLMJudge, LLMJudgeConfig, read_template

    cfg = LLMJudgeConfig(mode=mode)
    path, text = read_template(cfg.template, "test")
    return LLMJudge("scripted", cfg, text, path, "Which is better?", ScriptedBackend(p_first))


def position_only(first, second):  # always "the first one", a little more sure when ALPHA is first
    return 0.6 if first.startswith("ALPHA") else 0.55


def prefers_alpha(first, second):
    return 0.8 if first.startswith("ALPHA") else 0.3


# -- item 1: a verdict that flips with the order is a tie ----------------------------------------------
def test_combine_orders_follows_mt_bench():
    # A shown-first wins in AB, B shown-first wins in BA: a tie, not the sign of the mean 0.525
    v, p, c = combine_orders([lab("A", "AB", 0.6), lab("B", "BA", 0.45)])
    assert (v, c) == ("tie", False) and p == pytest.approx(0.525)  # the mean stays for soft use
    assert combine_orders([lab("A", "AB", 0.6), lab("B", "BA", 0.45)], inconsistent="mean")[0] == "A"  # old rule
    assert combine_orders([lab("A", "AB"), lab("tie", "BA")]) == ("tie", None, False)  # one side tie
    assert combine_orders([lab("B", "AB"), lab("B", "BA")]) == ("B", None, True)  # a vote has no probability
    # the tie band applies per order: 0.58 is a tie in AB, so the orders differ
    assert combine_orders([lab("A", "AB", 0.58), lab("A", "BA", 0.7)], tie_band=0.1)[:3:2] == ("tie", False)
    assert combine_orders([lab("A", "AB", 0.9), lab("unparsed", "BA")]) == ("unparsed", None, False)  # not checked
    assert combine_orders([lab("A", "AB", 0.9)]) == ("A", 0.9, None)
    with pytest.raises(ValueError, match="inconsistent"):
        combine_orders([lab("A", "AB")], inconsistent="vote")


def test_position_only_judge_gives_ties_in_logprob_and_generate_modes(store):
    from judges import label_and_store

    out = {m: label_and_store(scripted_judge(m, position_only), [PAIR], store, use_cache=False)[0] for m in ("logprob", "generate")}
    for j in out.values():  # the same per-order verdicts in both modes: first shown wins
        assert [(l.shown_order, l.verdict) for l in j.labels] == [("AB", "A"), ("BA", "B")]
    assert out["logprob"].verdict == out["generate"].verdict == "tie"
    assert out["logprob"].consistent is out["generate"].consistent is False
    assert out["logprob"].p_a == pytest.approx((0.6 + 0.45) / 2) and out["generate"].p_a is None
    agree = {m: label_and_store(scripted_judge(m, prefers_alpha), [PAIR], store, use_cache=False)[0] for m in ("logprob", "generate")}
    assert agree["logprob"].verdict == agree["generate"].verdict == "A"
    # the label path skips the flipped pairs and counts them
    ex, m = judgements_to_examples(list(out.values()) + [agree["logprob"]], [(1, 2)] * 3, [(False, False)] * 3)
    assert len(ex) == 1 and ex[0]["chosen"] == PAIR.response_a
    assert m["judge/skipped"] == 2 and m["judge/order_inconsistent"] == 2 and m["judge/order_flipped"] == 2
    # tie_policy soft keeps them with their mean p: none dropped, both still counted as flipped
    ex, m = judgements_to_examples(list(out.values()) + [agree["logprob"]], [(1, 2)] * 3, [(False, False)] * 3,
                                   tie_policy="soft")
    assert len(ex) == 3 and ex[0]["p"] == pytest.approx((0.6 + 0.45) / 2) and ex[1]["p"] == 0.5
    assert m["judge/skipped"] == 0 and m["judge/order_inconsistent"] == 0 and m["judge/order_flipped"] == 2


# -- item 5: the missing-EOS penalty without a probability ---------------------------------------------
def test_eos_penalty_flips_vote_only_judgements(store):
    """rule:shorter prefers the shorter A, generate mode prefers A in both orders: neither gives a
    probability, so with A truncated the complete B wins outright (a vote read as p = 1 never flipped)."""
    from judges import label_and_store, load_judge

    rule = label_and_store(load_judge("rule:shorter"), [PAIR], store)[0]
    gen = label_and_store(scripted_judge("generate", prefers_alpha), [PAIR], store)[0]
    for j in (rule, gen):
        assert j.verdict == "A" and j.p_a is None
    ex, m = judgements_to_examples([rule, gen], [(1, 2)] * 2, [(True, False)] * 2, missing_eos_penalty=1.0)
    assert [e["chosen"] for e in ex] == [PAIR.response_b] * 2 and m["judge/eos_overrides"] == 2
    assert all(e["p"] is None and e["rejected_truncated"] and not e["chosen_truncated"] for e in ex)


# -- item 4: OAIF trains on the sampled ids; no EOS after a truncated response --------------------------
@pytest.fixture(scope="module")
def words_llama(tmp_path_factory, embedded_path) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("signal") / "llama", embedded_path, words=True)


def response_rows(batch) -> list[list[int]]:
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["response_mask"])]


def test_encode_response_ids_and_truncation(embedded_path):
    from transformers import AutoTokenizer

    from harness.logprobs import encode_response

    tok = AutoTokenizer.from_pretrained(embedded_path)
    eos = tok.eos_token_id
    text_ids = tok("Hello there", add_special_tokens=False)["input_ids"]
    assert encode_response(tok, "Hello there") == text_ids + [eos]
    assert encode_response(tok, "Hello there", truncated=True) == text_ids  # cut before its end: no EOS
    assert encode_response(tok, "ignored", ids=[7, 8, eos]) == [7, 8, eos]  # sampled ids as they are
    with pytest.raises(ValueError, match="vocabulary"):
        encode_response(tok, "x", ids=[len(tok) + 5])


def test_oaif_examples_carry_sampled_ids_and_train_on_them(tmp_path, words_llama):
    import torch

    from judges import make_label_fn
    from judges.registry import load_judge

    from harness.algorithms.oaif import OaifSource, objective_config
    from harness.algorithms.preference import example_batch
    from harness.config import load_config
    from harness.models import load_model
    from harness.sampling import make_sampler
    from harness.store import Store

    cfg = load_config(RULE_CONFIG, [f"model.name={words_llama}", "train.batch_size=8", "sampling.max_new_tokens=12"])
    store = Store(tmp_path / "home")
    model, tok = load_model(cfg.model)
    sampler = make_sampler(cfg.sampling, model, tok, cfg.data)
    sampled = []
    real = sampler.sample
    sampler.sample = lambda prompts, n: sampled.append(real(prompts, n)) or sampled[-1]  # records, samples for real
    prompts = [f"Tell me about thing number {i}." for i in range(8)]
    src = OaifSource(cfg, store, "o", sampler, make_label_fn(load_judge("rule:shorter"), store, "o"), prompts, "toy")
    torch.manual_seed(0)
    examples = src.next(1, model, SimpleNamespace(rank=0, world=1)).examples
    by_ids = {tuple(s.token_ids): s for pair in sampled[0] for s in pair}
    assert examples
    for e in examples:
        for side in ("chosen", "rejected"):
            s = by_ids[tuple(e[f"{side}_ids"])]  # the ids on the example are ids the sampler produced
            assert e[side] == s.text and e[f"{side}_truncated"] == s.truncated
    flags = [e[f"{s}_truncated"] for s in ("chosen", "rejected") for e in examples]
    assert any(flags) and not all(flags), "the test needs truncated and complete samples"
    rows = response_rows(example_batch(tok, examples, objective_config(cfg).data))
    assert rows == [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]  # ids used == sampled
    for row, trunc in zip(rows, [e["chosen_truncated"] for e in examples] + [e["rejected_truncated"] for e in examples]):
        assert (row[-1] in sampler.eos) != trunc  # EOS exactly where one was sampled


def test_offline_pairs_file_truncated_response_trains_without_eos(tmp_path, words_llama):
    """The demo's pairs.jsonl path: `chosen_truncated` / `*_ids` survive the reader and reach the batch."""
    from harness.algorithms import get_builder
    from harness.algorithms.preference import example_batch
    from harness.config import load_config
    from harness.data import DataError, load_preferences
    from harness.models import load_model, make_reference

    rows = [{"prompt": "Say hi.", "chosen": "hi there my good friend and", "rejected": "go away", "p": 0.7,
             "chosen_truncated": True, "rejected_truncated": False},
            {"prompt": "Count.", "chosen": "one two", "rejected": "three", "chosen_ids": [5, 6, 2], "rejected_ids": [7]}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    cfg = load_config(None, [f"model.name={words_llama}", "data.task=quickstart", f"data.path={path}",
                             "data.eval_fraction=0", "train.batch_size=6"])
    model, tok = load_model(cfg.model)
    source, objective = get_builder("dpo")(cfg, None, "r", model, tok, make_reference(model, cfg.model))
    ex = source.next(1, model, SimpleNamespace(world=1, rank=0, shard=lambda xs: list(xs))).examples
    first = next(e for e in ex if e["prompt"] == "Say hi.")
    second = next(e for e in ex if e["prompt"] == "Count.")
    assert first["chosen_truncated"] is True and second["chosen_ids"] == [5, 6, 2]
    got = response_rows(example_batch(tok, [first, second], cfg.data))
    eos = tok.eos_token_id
    assert got[0] == tok("hi there my good friend and", add_special_tokens=False)["input_ids"]  # no EOS
    assert got[2] == tok("go away", add_special_tokens=False)["input_ids"] + [eos]
    assert got[1] == [5, 6, 2] and got[3] == [7]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "chosen_truncated": "yes"}) + "\n")
    with pytest.raises(DataError, match="line 1: field 'chosen_truncated'"):
        load_preferences(str(bad))


# -- item 6: the task's system prompt is in what the objective scores -----------------------------------
@pytest.fixture
def system_task(tmp_path) -> Path:
    d = tmp_path / "systask"
    d.mkdir()
    (d / "task.yaml").write_text(f"name: systask\ndata:\n  prompts: prompts.jsonl\nsystem: {SYSTEM}\n")
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": f"Name fruit {i}.", "split": s}) + "\n"
                                             for i, s in enumerate(["train"] * 4 + ["eval"])))
    return d


def capture_inputs(model, tok) -> list[str]:
    """Decoded rows of every forward through `model`'s decoder (a real hook, nothing replaced)."""
    seen = []
    model.get_decoder().register_forward_pre_hook(
        lambda m, args, kwargs: seen.extend(tok.batch_decode(kwargs["input_ids"])), with_kwargs=True)
    return seen


@pytest.mark.parametrize("algo", ["oaif", "dpo"])
def test_objective_scores_the_task_system_prompt(tmp_path, words_llama, system_task, algo):
    from harness.algorithms import get_builder
    from harness.config import load_config
    from harness.models import load_model, make_reference
    from harness.store import Store

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Name fruit {i}.", "chosen": "apple", "rejected": "a rock"}) + "\n"
                             for i in range(4)))
    over = [f"model.name={words_llama}", f"data.task={system_task}", "train.batch_size=2", "data.eval_fraction=0"]
    cfg = load_config(RULE_CONFIG if algo == "oaif" else None, over + ([f"data.path={pairs}"] if algo == "dpo" else []))
    model, tok = load_model(cfg.model)
    ref = make_reference(model, cfg.model)
    policy_rows, ref_rows = capture_inputs(model, tok), capture_inputs(ref.model, tok)
    source, objective = get_builder(algo)(cfg, Store(tmp_path / "home"), "r", model, tok, ref, tmp_path / "home")
    ctx = SimpleNamespace(cfg=cfg, tokenizer=tok, ref=ref, world=1, rank=0, shard=lambda xs: list(xs), step=1)
    if algo == "dpo":
        examples = source.next(1, model, ctx).examples  # reference log-probs computed here, once
    else:
        examples = [{"prompt": "Name fruit 0.", "chosen": "apple", "rejected": "a rock"}]
    policy_rows.clear()
    objective(model, examples, ctx)
    # every row scored (chosen + rejected per example, more if a metric runs another forward)
    assert len(policy_rows) >= 2 * len(examples) and len(ref_rows) >= 2 * len(examples)
    assert all(SYSTEM in row for row in policy_rows + ref_rows)


def test_oaif_objective_logs_the_kl_from_its_own_two_forwards(tmp_path, words_llama, system_task):
    """On OAIF samples the objective logs kl_nats_per_seq, equal to the standalone estimator
    (harness.evaluation.kl.sequence_k3) on the same batch, with one policy and one reference forward."""
    from harness.algorithms import get_builder
    from harness.algorithms.preference import example_batch
    from harness.config import load_config
    from harness.evaluation.kl import KL_METRIC, sequence_k3
    from harness.models import load_model, make_reference
    from harness.store import Store

    over = [f"model.name={words_llama}", f"data.task={system_task}", "train.batch_size=2", "data.eval_fraction=0",
            "sampling.temperature=1.0"]
    cfg = load_config(RULE_CONFIG, over)
    model, tok = load_model(cfg.model)
    ref = make_reference(model, cfg.model)
    _, objective = get_builder("oaif")(cfg, Store(tmp_path / "home"), "r", model, tok, ref, tmp_path / "home")
    ctx = SimpleNamespace(cfg=cfg, tokenizer=tok, ref=ref, world=1, rank=0, shard=lambda xs: list(xs), step=1)
    examples = [{"prompt": "Name fruit 0.", "chosen": "apple", "rejected": "a rock"},
                {"prompt": "Name fruit 1.", "chosen": "a pear", "rejected": "no"}]
    with torch.no_grad():  # move the policy off the reference, so the KL is not trivially 0
        for prm in model.parameters():
            prm.add_(0.01 * torch.randn_like(prm))
    policy_rows, ref_rows = capture_inputs(model, tok), capture_inputs(ref.model, tok)
    _, metrics = objective(model, examples, ctx)
    assert len(policy_rows) == len(ref_rows) == 2 * len(examples)  # one forward each, the KL included
    batch = example_batch(tok, examples, objective.cfg.data, objective.system)
    expect = float(sequence_k3(model, ref, batch).mean())
    assert metrics[KL_METRIC] > 0 and metrics[KL_METRIC] == pytest.approx(expect, rel=1e-4)
