"""The pointwise LLM judge (`mode: score`, judges/pointwise.py): rating parsing, the expected rating
from logprobs against a hand computation, pair verdicts from two ratings, no position bias by
construction, the per-response rating cache, config errors that name the file and field, the
version, and an OAIF run with a pointwise annotator on a tiny random model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import judges.pointwise as pw
from harness.config import ConfigError
from harness.records import Pair, combine_orders
from harness.store.filters import LabelFilter
from judges.backend_types import BackendResult
from judges.pointwise import ScoreJudge, expected_score, pair_verdict, parse_score, score_tokens
from judges.registry import load_judge

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RULE_CONFIG = REPO / "configs" / "oaif_quickstart_rule_shorter.yaml"


# -- a scripted backend --------------------------------------------------------------------------
class DigitTok:
    """Splits text into characters, as SmolLM2's tokenizer splits digits ("10" -> "1", "0")."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class FakeBackend:
    """logprob: `first[response]` after the answer prefix, `second[response]` after prefix + "1";
    generate: `texts[response]`. Records every prompt it is asked (response, prefix)."""
    dtype = "fp32"

    def __init__(self, first=None, second=None, texts=None, errors=()):
        self.first, self.second, self.texts, self.errors = first or {}, second or {}, texts or {}, set(errors)
        self.tok = DigitTok()
        self.asked: list[tuple[str, str]] = []

    def check_labels(self, labels, where):
        for l in labels:
            if len(l) != 1:
                raise ConfigError(f"{where} labels: {l!r} is {len(l)} tokens")

    def truncate(self, text, n):
        return text

    @staticmethod
    def _response(p):
        return p.messages[-1]["content"].split("[Response]\n", 1)[1].split("\n\n", 1)[0]

    def logprob(self, prompts, labels, batch_size=8):
        out = []
        for p in prompts:
            r = self._response(p)
            self.asked.append((r, p.prefix))
            if r in self.errors:
                out.append(BackendResult(error="server down"))
                continue
            table = self.second.get(r, {}) if p.prefix.endswith("[[1") else self.first.get(r, {})
            out.append(BackendResult(probs={l: table.get(l, 0.0) for l in labels}, tokens_in=10, latency_s=0.5))
        return out

    def generate(self, prompts, max_new_tokens, temperature=0.0, top_p=1.0, seed=0, batch_size=8):
        out = []
        for p in prompts:
            r = self._response(p)
            self.asked.append((r, p.prefix))
            out.append(BackendResult(text=self.texts[r], tokens_in=10, tokens_out=5, latency_s=0.5))
        return out


def write_config(tmp_path, name="score", **extra) -> Path:
    cfg = {"kind": "llm", "template": "pointwise.txt", "mode": "score", "answer_prefix": "Rating: [[",
           "both_orders": False, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in cfg.items()) + "\n")
    return path


@pytest.fixture
def fake(monkeypatch):
    """Make judges.pointwise build the FakeBackend the test sets in `holder[0]`."""
    holder: list = [FakeBackend()]
    monkeypatch.setattr(pw, "make_backend", lambda cfg, options, where, home=None: holder[0])
    return holder


def judge_with(fake, tmp_path, backend, **extra) -> ScoreJudge:
    fake[0] = backend
    return load_judge(str(write_config(tmp_path, **extra)))


# -- parsing (generate) ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("Rating: [[7]]", 7.0),
    ("The answer is correct and clear. Rating: [[9]]", 9.0),
    ("[[ 7 ]] and once more, [[7]]", 7.0),  # the same rating twice is that rating
    ("Rating: [[7.5]]", 7.5),  # FastChat's pattern takes decimals
    ("Rating: [6]", 6.0),  # FastChat's fallback: single brackets
    ("Rating: [[10]]", 10.0),
    ("Rating: [[7]] or [[8]]", None),  # two ratings: which is the verdict is not ours to guess
    ("I am not sure, maybe [[6]]", None),  # a hedge
    ("It is hard to say. [[5]]", None),
    ("Rating: [[11]]", None),  # outside the scale
    ("Rating: [[0]]", None),
    ("Rating: [[rating]]", None),
    ("A fine answer, I would give it a seven.", None),
    ("", None),
])
def test_parse_score(text, want):
    assert parse_score(text, 1, 10) == want


def test_parse_score_with_a_custom_regex():
    assert parse_score("Score: 4/5", 1, 5, r"Score:\s*(\d)/5") == 4.0
    assert parse_score("Score: 4/5 ... Score: 2/5", 1, 5, r"Score:\s*(\d)/5") is None
    assert parse_score("Score: high", 1, 5, r"Score:\s*(\w+)") is None


# -- the expected rating from logprobs --------------------------------------------------------------
FIRST_GOOD = {"1": 0.2, "5": 0.3, "9": 0.1}  # mass 0.6 on the score tokens
SECOND_GOOD = {"0": 0.5}  # after "[[1": half "10", half the rating 1
FIRST_BAD = {"2": 0.5, "3": 0.3}


def test_expected_rating_against_a_hand_computation(fake, tmp_path):
    backend = FakeBackend(first={"good": FIRST_GOOD, "bad": FIRST_BAD}, second={"good": SECOND_GOOD, "bad": {}})
    judge = judge_with(fake, tmp_path, backend)
    assert judge.tokens.double == {10: ("1", "0")} and judge.tokens.second == {"1": ("0",)}
    [[label]] = judge.judge([Pair(prompt="q", response_a="good", response_b="bad")], ("AB",))
    # by hand: P(1) = 0.2 * (1 - 0.5) = 0.1, P(10) = 0.2 * 0.5 = 0.1, P(5) = 0.3, P(9) = 0.1; mass 0.6
    e_good = (1 * 0.1 + 10 * 0.1 + 5 * 0.3 + 9 * 0.1) / 0.6
    e_bad = (2 * 0.5 + 3 * 0.3) / 0.8  # no "1", so the second pass changes nothing
    assert label.meta["score_a"] == pytest.approx(e_good) and label.meta["score_b"] == pytest.approx(e_bad)
    assert label.meta["answer_mass_a"] == pytest.approx(0.6) and label.meta["answer_mass_b"] == pytest.approx(0.8)
    assert label.p_a == pytest.approx(1 / (1 + math.exp(-(e_good - e_bad))))
    assert label.verdict == "A" and label.shown_order == "AB"
    raw = json.loads(label.raw_output)
    assert raw["a"]["probs"] == {"1": pytest.approx(1 / 6, abs=1e-5), "5": 0.5, "9": pytest.approx(1 / 6, abs=1e-5),
                                 "10": pytest.approx(1 / 6, abs=1e-5), **{str(r): 0.0 for r in (2, 3, 4, 6, 7, 8)}}
    # the second pass reads what follows "1" after the answer prefix
    assert ("good", "Rating: [[1") in backend.asked and ("good", "Rating: [[") in backend.asked
    # the cost of both passes is on the label: 2 responses x 2 passes x 0.5 s, 10 tokens each
    assert label.latency_s == pytest.approx(2.0) and label.tokens_in == 40


def test_expected_score_function_and_no_mass():
    tokens = score_tokens(FakeBackend(), 1, 10, "x:")
    first = {t: 0.0 for t in tokens.first}
    value, probs, mass = expected_score(tokens, {**first, "1": 0.4}, {"1": {"0": 1.0}})
    assert value == 10 and probs[10] == 1.0 and probs[1] == 0.0 and mass == pytest.approx(0.4)
    assert expected_score(tokens, first, {"1": {"0": 0.0}}) == (None, {}, 0.0)


def test_no_mass_on_the_ratings_is_unparsed_and_an_error_is_an_error_label(fake, tmp_path):
    backend = FakeBackend(first={"good": FIRST_GOOD, "none": {}}, second={"good": SECOND_GOOD}, errors={"down"})
    judge = judge_with(fake, tmp_path, backend)
    [none], [down] = judge.judge([Pair(prompt="q", response_a="good", response_b="none"),
                                      Pair(prompt="q", response_a="down", response_b="good")], ("AB",))
    assert none.verdict == "unparsed" and none.p_a is None and none.meta["score_b"] is None
    assert down.verdict == "unparsed" and "response a: server down" in down.meta["error"]
    # a failed rating is not cached: asking again asks the backend again
    n = len(backend.asked)
    judge.judge([Pair(prompt="q", response_a="down", response_b="good")], ("AB",))
    assert [a for a in backend.asked[n:] if a[0] == "down"] and not [a for a in backend.asked[n:] if a[0] == "good"]


# -- pairs from two ratings -----------------------------------------------------------------------
def test_pair_verdict_from_two_ratings():
    assert pair_verdict(7, 5) == ("A", pytest.approx(1 / (1 + math.exp(-2))))
    assert pair_verdict(5, 7) == ("B", pytest.approx(1 / (1 + math.exp(2))))
    assert pair_verdict(6, 6) == ("tie", 0.5)
    # tie_band 0.2 on p: a gap of ln(0.7/0.3) = 0.847 rating points or less is a tie
    assert pair_verdict(6.5, 6.0, 0.2)[0] == "tie" and pair_verdict(6.9, 6.0, 0.2)[0] == "A"
    assert pair_verdict(1, 800) == ("B", 0.0)


def test_generate_mode_votes_and_ties(fake, tmp_path):
    texts = {"x": "Clear and right. Rating: [[8]]", "y": "Rating: [[3]]", "z": "Rating: [[8]]", "h": "not sure [[5]]"}
    judge = judge_with(fake, tmp_path, FakeBackend(texts=texts), score_from="generate", answer_prefix="")
    pairs = [Pair(prompt="q", response_a="x", response_b="y"), Pair(prompt="q", response_a="y", response_b="x"),
             Pair(prompt="q", response_a="x", response_b="z"), Pair(prompt="q", response_a="h", response_b="x")]
    labels = [l for [l] in judge.judge(pairs, ("AB",))]
    assert [l.verdict for l in labels] == ["A", "B", "tie", "unparsed"]
    assert [l.p_a for l in labels] == [None] * 4  # integer ratings are votes, not probabilities
    assert (labels[0].meta["score_a"], labels[0].meta["score_b"]) == (8.0, 3.0)
    assert json.loads(labels[0].raw_output)["a"]["text"] == texts["x"]
    assert judge.score(["q", "q"], ["x", "h"])[0] == 8.0 and math.isnan(judge.score(["q"], ["h"])[0])


# -- no position bias by construction, and the rating cache ------------------------------------------
def test_both_orders_get_identical_ratings_and_each_response_is_rated_once(fake, tmp_path):
    backend = FakeBackend(first={"good": FIRST_GOOD, "bad": FIRST_BAD, "other": {"4": 1.0}},
                          second={"good": SECOND_GOOD})
    judge = judge_with(fake, tmp_path, backend)
    pair = Pair(prompt="q", response_a="good", response_b="bad")
    ab, ba = judge.judge([pair], ("AB", "BA"))[0]
    assert (ab.shown_order, ba.shown_order) == ("AB", "BA")
    assert (ab.verdict, ab.p_a, ab.meta) == (ba.verdict, ba.p_a, ba.meta) and ab.raw_output == ba.raw_output
    assert combine_orders([ab, ba]) == ("A", ab.p_a, True)
    # each response alone: 2 responses x 2 passes, whatever the number of orders
    assert sorted(backend.asked) == sorted([("good", "Rating: [["), ("good", "Rating: [[1"),
                                            ("bad", "Rating: [["), ("bad", "Rating: [[1")])
    assert ab.latency_s > 0 and ba.latency_s == 0 and ba.tokens_in == 0  # the cost is counted once
    # the mirror pair is the mirror verdict with the same ratings; "good" in a new pair is not re-rated
    [[mirror]] = judge.judge([Pair(prompt="q", response_a="bad", response_b="good")], ("AB",))
    [[third]] = judge.judge([Pair(prompt="q", response_a="good", response_b="other")], ("AB",))
    assert mirror.verdict == "B" and mirror.p_a == pytest.approx(1 - ab.p_a)
    assert (mirror.meta["score_a"], mirror.meta["score_b"]) == (ab.meta["score_b"], ab.meta["score_a"])
    assert mirror.latency_s == 0 and third.meta["score_b"] == 4.0
    assert sum(a[0] == "good" for a in backend.asked) == 2 and sum(a[0] == "other" for a in backend.asked) == 2
    assert judge.score(["q"], ["good"]) == [pytest.approx(ab.meta["score_a"])]


def test_validity_card_of_a_pointwise_judge_measures_consistency_one(fake, tmp_path, store, shared_data):
    """The card asks both orders; the pointwise judge's consistency is 1 and P(first) 0.5 by
    construction, and the card says it is pointwise. Ratings: the response's length in words (a
    scripted judge that prefers longer answers, so P(longer) is 1 by construction too)."""
    from harness.evaluation.validity import card_line, judge_card

    class LengthBackend(FakeBackend):
        def logprob(self, prompts, labels, batch_size=8):
            out = []
            for p in prompts:
                r = p.messages[-1]["content"].split("[Response]\n", 1)[1].rsplit("\n\nGrade the response", 1)[0]
                n = len(r.split())
                self.asked.append((r, p.prefix))
                # P(2) grows with the word count: expected rating (1 + 2n) / (n + 1), higher when longer
                table = {"0": 0.0} if p.prefix.endswith("[[1") else {"1": 1 / (n + 1.0), "2": n / (n + 1.0)}
                out.append(BackendResult(probs={l: table.get(l, 0.0) for l in labels}))
            return out

    judge = judge_with(fake, tmp_path, LengthBackend())
    card = judge_card(store, judge, n_pairs=6, datasets={"pandalm": str(SHARED / "pandalm_testset")})
    pc, pf, pl = card["position_consistency"], card["p_first"], card["p_longer"]
    assert card["pointwise"] is True and (pc["value"], pc["n"]) == (1.0, 6)
    assert pf["value"] == 0.5 and pl["value"] == 1.0
    assert "pointwise: each response rated alone" in card_line(card)
    # 6 pairs x 2 responses x 2 passes: the second order cost nothing
    assert len(judge.backend.asked) <= 24


# -- configs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra,field,match", [
    ({"mode": "scroe"}, "mode", "is not one of logprob, generate, score"),
    ({"score_from": "sample"}, "score_from", "is not one of logprob, generate"),
    ({"min_score": 5, "max_score": 3}, "min_score", "min_score < max_score"),
    ({"score_regex": "Rating: \\d"}, "score_regex", "exactly one capturing group"),
    ({"template": "pairwise.txt"}, None, r"for a pointwise \(mode score\) template"),
    ({"max_score": 100}, "max_score", "the rating 100 is 3 tokens"),
    ({"mode": "logprob", "template": "pairwise.txt", "min_score": 0}, "min_score", "only for mode: score"),
])
def test_config_errors_name_the_file_and_field(fake, tmp_path, extra, field, match):
    path = write_config(tmp_path, **extra)
    with pytest.raises(ConfigError, match=match) as e:
        load_judge(str(path))
    msg = str(e.value)
    assert str(path) in msg or "pairwise.txt" in msg
    if field:
        assert f"{path}: {field}:" in msg


def test_pointwise_template_with_a_pairwise_mode_is_an_error(tmp_path):
    path = write_config(tmp_path, mode="logprob")
    with pytest.raises(ConfigError, match=r"pointwise.txt: unknown field\(s\) \['max_score', 'min_score', "
                                          r"'response'\] for a pairwise template"):
        load_judge(str(path))


def test_shipped_score_config_and_the_version(fake, tmp_path):
    from judges.llm import DEFAULT_RUBRIC, LLMJudge, read_llm_judge_config, read_template
    from judges.registry import config_path, read_judge_config

    shipped = load_judge("smollm2-score")  # the fake backend stands in for the model
    cfg = shipped.cfg
    assert (cfg.mode, cfg.score_from, cfg.min_score, cfg.max_score, cfg.answer_prefix) == \
        ("score", "logprob", 1, 10, "Rating: [[")
    assert shipped.orders == ("AB",) and shipped.annotator.id == "smollm2-score"
    # the version moves with the mode's keys and the template text, not with speed settings
    base = judge_with(fake, tmp_path, FakeBackend()).annotator.version
    assert judge_with(fake, tmp_path, FakeBackend(), max_score=9).annotator.version != base
    assert judge_with(fake, tmp_path, FakeBackend(), batch_size=2).annotator.version == base
    tpl = tmp_path / "mine.txt"
    tpl.write_text((REPO / "judges" / "templates" / "pointwise.txt").read_text() + "Be strict.\n")
    assert judge_with(fake, tmp_path, FakeBackend(), template=str(tpl)).annotator.version != base
    # the score keys are not in a pairwise judge's version: smollm2-logprob's cache key did not move
    p = config_path("smollm2-logprob")
    data = read_judge_config(p)
    data.pop("kind")
    pcfg, opts = read_llm_judge_config(data, f"{p}:")
    tp, tt = read_template(pcfg.template, "x")
    pair_judge = LLMJudge("smollm2-logprob", pcfg, tt, tp, DEFAULT_RUBRIC, FakeBackend(), False, opts.get("transformers"))
    assert pair_judge.annotator.version == "37f50404f5bc"  # its version before mode score existed


# -- OAIF with a pointwise annotator ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory, embedded_path) -> str:
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def test_oaif_step_with_a_pointwise_annotator(tmp_path, tiny_path, shared_data):
    """`harness train` (OAIF) with a `mode: score` judge on a tiny random model: the validity gate
    passes (consistency 1 by construction), every pair is labelled from two ratings, stored with
    both ratings and shown_order AB, and the step trains on the decided pairs."""
    from harness.cli import main
    from harness.store import Store

    judge_cfg = write_config(tmp_path, name="tiny-score", model=tiny_path, dtype="fp32", max_prompt_tokens=64,
                             max_response_tokens=32)
    over = [f"model.name={tiny_path}", "train.steps=1", "train.batch_size=2", "train.checkpoint_every=0",
            "sampling.max_new_tokens=6", f"judge.name={judge_cfg}", "judge.validity_pairs=3",
            f"judge.validity_data={SHARED}"]
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", str(RULE_CONFIG), *over, "--run-id", "pw"]) == 0
    store = Store(home)
    assert store.get_run("pw")["status"] == "done"
    [card] = store.results("judge_validity")
    assert card["result"]["pointwise"] and card["result"]["position_consistency"]["value"] == 1.0
    labels = store.labels_df(LabelFilter(run_id="pw"))
    assert len(labels) == 2 and set(labels["annotator_id"]) == {"tiny-score"} and set(labels["shown_order"]) == {"AB"}
    for _, row in labels.iterrows():
        meta = json.loads(row["meta_json"])
        assert 1 <= meta["score_a"] <= 10 and 1 <= meta["score_b"] <= 10
        verdict, p = pair_verdict(meta["score_a"], meta["score_b"])
        assert row["verdict"] == verdict and row["p_a"] == pytest.approx(p)
    m = store.metrics(["pw"])
    decided = int((labels["verdict"].isin(["A", "B"])).sum())
    assert (m["source/n_examples"] == decided).all() and (m["judge/skipped"] == 2 - decided).all()


def test_one_forward_reads_the_same_probabilities_as_two(tiny_path):
    """TransformersBackend.logprob_then (both positions of one forward of prompt + "1") against two
    separate logprob calls, on a tiny random model; a prompt whose tokens merge with the appended
    text ("hel" + "lo") is asked in two forwards and agrees too."""
    from judges.backends import Prompt, TransformersBackend

    backend = TransformersBackend(tiny_path, "fp32", "cpu")
    msgs = [[{"role": "user", "content": f"Rate answer {i}: the cat sat on the mat " * (i + 1)}] for i in range(3)]
    digits = [str(d) for d in range(1, 10)]
    for prefix, token, nxt in (("Rating: [[", "1", ["0"]), ("Say hel", "lo", ["a", "b"])):
        prompts = [Prompt(messages=m, prefix=prefix) for m in msgs]
        both = backend.logprob_then(prompts, digits, token, nxt, batch_size=2)
        first = backend.logprob(prompts, digits, batch_size=2)
        second = backend.logprob([Prompt(messages=m, prefix=prefix + token) for m in msgs], nxt, batch_size=2)
        for (a, b), f, s in zip(both, first, second):
            assert a.probs == pytest.approx(f.probs, rel=1e-4, abs=1e-7)
            assert b.probs == pytest.approx(s.probs, rel=1e-4, abs=1e-7)
            assert a.tokens_in > 0
