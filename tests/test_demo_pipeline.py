"""`harness demo` end to end on a tiny random Llama (tests/tiny_llama.py) with rule annotators: the
pipeline, not the model. Every win rate is printed with n, wins/ties/losses, its CI and a verdict,
the arms are compared head-to-head, each policy answers the eval prompts once, and the judges'
validity cards sit beside the tables (the card itself is stubbed: tests/card_stub.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from card_stub import install_card_stub
from harness.cli import main
from harness.store import Store
from tiny_llama import make_tiny_llama

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, embedded_path) -> str:
    # random tokens over the whole vocabulary: answers of different lengths in characters, never empty
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)


def test_demo_prints_verdicts_head_to_head_sources_and_cards(tmp_path, tiny_model, capsys, monkeypatch):
    """The study on the verifiable task: a simulated-human source offline and online, a rule as the
    'AI' source offline; gold first, then a held-out rule judge; every table and verdict printed."""
    from harness.pipelines import evaluate as ev

    asked = install_card_stub(monkeypatch)
    answered = []
    real = ev.policy_outputs
    monkeypatch.setattr(ev, "policy_outputs", lambda spec, *a, **k: answered.append(spec.name) or real(spec, *a, **k))
    home = tmp_path / "home"
    over = [f"base.model.name={tiny_model}", "base.train.steps=1", "base.train.batch_size=4",
            "base.train.checkpoint_every=0", "base.train.lr=5e-2", "base.sampling.max_new_tokens=8",
            "sources.ai.annotator=rule:longer", "arms=[offline_human, oaif_human, offline_ai]",
            "evaluation.judges=[gold, rule:shorter]", "evaluation.n=4", "evaluation.max_new_tokens=8",
            "agreement.pandalm=null"]
    assert main(["--home", str(home), "demo", str(REPO / "configs" / "demo_cpu.yaml"), *over]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("=== summary"):]
    assert "== each arm vs the initial policy" in summary and "95% percentile bootstrap over prompts" in summary
    assert "offline_human (gold): " in summary and "the initial policy at n=4 (CI [" in summary
    assert "oaif_human (rule:shorter): " in summary
    assert "== head-to-head between the arms" in summary and "offline_ai at n=4 (CI [" in summary
    assert "== feedback sources against gold" in summary
    # the simulated rater has no PandaLM card but the reason; the rule 'AI' source and the held-out judge get cards
    assert "validity card, source human: sim-rater-1: judge sim-rater-1@" in summary and "simulated rater" in summary
    assert "validity card, source ai: rule:longer: CARD[rule:longer]" in summary
    assert "validity card, evaluation judge rule:shorter: CARD[rule:shorter]" in summary
    assert "validity card, evaluation judge gold: judge verifiable:gold@" in summary  # the reason, no card
    assert {"rule:shorter", "rule:longer"} <= set(asked) and "sim-rater-1" not in asked
    words = summary[summary.index("=== in words"):]
    assert "policy contrasts resolved (95% CI of the win rate excludes 0.5):" in words
    assert "feedback sources against gold" in words
    assert "== where the time went" in words and "machine: " in words and "bf16 native: " in words

    store = Store(home)
    [demo] = store.results("demo_summary")
    res = demo["result"]
    # the timing table: one row per announced stage, in order, their seconds summing to the demo's own
    stages = [t["stage"] for t in res["timings"]]
    assert stages[1].startswith("sample pairs once") and [s for s in stages if s.startswith("arm ")] == [
        "arm offline_human", "arm oaif_human", "arm offline_ai"]
    assert sum(t["seconds"] for t in res["timings"]) == pytest.approx(res["seconds"], abs=1.0)
    assert sum(t["share"] for t in res["timings"]) == pytest.approx(1.0, abs=0.01)
    assert res["machine"]["model"] == "fp32"  # trained weights stay fp32 (master weights)
    assert res["machine"]["mixed_precision"] == ("bf16" if res["machine"]["bf16_native"] else "no")
    assert [d["arm"] for d in res["design"]] == ["offline_human", "oaif_human", "offline_ai"]
    assert [(d["timing"], d["source"]) for d in res["design"]] == [("offline", "human"), ("oaif", "human"),
                                                                   ("offline", "ai")]
    rows = res["rows"]
    assert [(r["arm"], r["judge"]) for r in rows] == [(a, j) for j in ("gold", "rule:shorter")
                                                      for a in ("offline_human", "oaif_human", "offline_ai")]
    for r in rows:
        assert r["n"] == 4 and r["w/t/l"].count("/") == 2 and r["ci95"].startswith("[")
        assert r["verdict"].startswith(f"{r['arm']} (") and "at n=4" in r["verdict"]
        assert ("gold_diff (ci95)" in r) == (r["judge"] == "gold")
    assert len(res["head_to_head"]) == 6 and {h["judge"] for h in res["head_to_head"]} == {"gold", "rule:shorter"}
    # the sources' labels vs gold: the sampled-once pairs (human, ai) and the OAIF run's own pairs (human)
    src = res["sources"]
    assert [s["source"] for s in src] == ["human", "ai", "human"]
    for s in src:
        assert s["n_labelled"] == 4 and 0 <= s["agree"] <= s["n_gold_decided"] <= 4
        if s["n_gold_decided"]:
            assert s["ci_low"] <= s["accuracy"] <= s["ci_high"] and "agree with gold on" in s["verdict"]
    # the held-out judge against gold on the same comparisons, recounted from the stored results
    [vs] = res["eval_judges_vs_gold"]
    assert vs["judge"] == "rule:shorter" and vs["reference"] == "gold"
    stored = {r["name"]: r["result"] for r in store.results("winrate")}
    h2h = {r["name"]: r["result"] for r in store.results("head_to_head")}
    pairs_of = [(stored[f"{res['group']}:{a} vs initial (gold)"], stored[f"{res['group']}:{a} vs initial (rule:shorter)"])
                for a in ("offline_human", "oaif_human", "offline_ai")]
    pairs_of += list(zip(h2h[f"{res['group']}:head-to-head (gold)"]["rows"],
                         h2h[f"{res['group']}:head-to-head (rule:shorter)"]["rows"]))
    decided = [(g, j) for gr, jr in pairs_of for g, j in zip(gr["verdicts"], jr["verdicts"]) if g in ("A", "B")]
    assert vs["n_gold_decided"] == len(decided) and vs["agree"] == sum(g == j for g, j in decided)
    # one sample, both offline sources: the same pairs, labelled twice
    assert res["pairs"]["human"]["judge/n_pairs"] == res["pairs"]["ai"]["judge/n_pairs"] == 4
    pairs_runs = [r for r in store.list_runs() if r["algo"] == "sample_pairs"]
    assert len(pairs_runs) == 1
    # the OAIF arm logged its annotator's agreement with gold per step
    oaif_run = res["design"][1]["run_id"]
    assert "judge/gold_decided" in store.metrics([oaif_run]).columns
    # the initial policy and each arm answered the eval prompts once (both judges, vs-initial and head-to-head)
    assert len(answered) == 4 and sum(n.startswith("initial:") for n in answered) == 1

    # the dashboard opens on this study: question, findings, arms, win rates, sources, cards, links
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_HOME", str(home))
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Overview"
    page = "\n".join(m.value for m in at.markdown)
    assert res["question"].split()[0] in at.subheader[0].value
    for line in res["findings"]:
        assert line.strip() in page
    frames = [d.value for d in at.dataframe]
    assert list(frames[0]["arm"]) == ["offline_human", "oaif_human", "offline_ai"]
    assert len(frames[1]) == 6 and len(frames[2]) == 6  # each arm x 2 judges; head-to-head 3 pairs x 2 judges
    assert list(frames[3]["source"]) == ["human", "ai", "human"]
    assert list(frames[4]["judge"]) == ["rule:shorter"]
    cards = [t.value for t in at.text]
    assert any("simulated rater" in c for c in cards) and "CARD[rule:shorter]" in cards
    assert len(at.get("vega_lite_chart")) >= 2


def test_an_arm_that_is_not_timing_and_source_is_refused(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "demo", str(REPO / "configs" / "demo_cpu.yaml"), "arms=[online_human]"]) == 2
    err = capsys.readouterr().err
    assert "demo_cpu.yaml:arms: arm 'online_human' is not <timing>_<source>" in err and "sources: human, ai, gold" in err


def test_findings_say_whether_gold_confirms_a_contrast_another_judge_resolves():
    """A held-out judge's resolved contrast is printed with gold's verdict on the same contrast: "gold
    agrees" or "NOT confirmed by gold"; gold's own resolved contrasts carry no note; counts are right."""
    from harness.evaluation.summary import findings

    def row(arm, judge, verdict, gold=False):
        r = {"arm": arm, "judge": judge, "verdict": f"{arm} ({judge}): {verdict}"}
        if gold:
            r.update({"gold_diff (ci95)": "+0.100 [+0.010, +0.200]", "gold_diff_ci": [0.010, 0.200]})
        return r

    better = "better than the initial policy at n=80 (CI [0.55, 0.70] excludes 0.5)"
    same = "not distinguishable from the initial policy at n=80 (CI [0.45, 0.60] contains 0.5)"
    rows = [row("a", "gold", better, True), row("b", "gold", same, True), row("a", "held", better), row("b", "held", better)]
    out = findings(rows, [], [], {})
    assert out[0] == "policy contrasts resolved (95% CI of the win rate excludes 0.5): 3 of 4"
    assert out[1] == f"  a (gold): {better}"
    assert out[2] == f"  a (held): {better} (gold agrees)"
    assert out[3] == f"  b (held): {better} (NOT confirmed by gold: {same})"
    assert "not resolved by gold (CI contains 0.5): b vs initial" in out
    assert "  gold score difference a vs initial: +0.100 [+0.010, +0.200] (paired bootstrap; excludes 0)" in out


def test_an_rlhf_arm_trains_a_reward_model_on_the_sources_labels_then_rloo(tmp_path, tiny_model, capsys, monkeypatch):
    install_card_stub(monkeypatch)
    home = tmp_path / "home"
    over = [f"base.model.name={tiny_model}", "base.train.steps=1", "base.train.batch_size=4",
            "base.train.checkpoint_every=0", "base.sampling.max_new_tokens=8", "arms=[rlhf_human]",
            "reward_model.steps=1", "evaluation.judges=[gold]", "evaluation.n=4", "evaluation.max_new_tokens=8",
            "agreement.pandalm=null"]
    assert main(["--home", str(home), "demo", str(REPO / "configs" / "demo_cpu.yaml"), *over]) == 0
    store = Store(home)
    [demo] = store.results("demo_summary")
    [arm] = demo["result"]["design"]
    runs = {r["run_id"]: r for r in store.list_runs()}
    assert runs[arm["run_id"]]["algo"] == "rlhf" and arm["timing"] == "rlhf" and arm["source"] == "human"
    rm_runs = [r for r in runs.values() if r["algo"] == "reward_model"]
    assert len(rm_runs) == 1 and rm_runs[0]["status"] == "done"
    assert [r["arm"] for r in demo["result"]["rows"]] == ["rlhf_human"]
