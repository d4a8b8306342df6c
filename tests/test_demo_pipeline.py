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


def test_demo_prints_verdicts_head_to_head_and_cards(tmp_path, tiny_model, capsys, monkeypatch):
    from harness.commands import eval as ev

    asked = install_card_stub(monkeypatch)
    answered = []
    real = ev.policy_outputs
    monkeypatch.setattr(ev, "policy_outputs", lambda spec, *a, **k: answered.append(spec.name) or real(spec, *a, **k))
    home = tmp_path / "home"
    over = [f"base.model.name={tiny_model}", "base.train.steps=1", "base.train.batch_size=2",
            "base.train.checkpoint_every=0", "base.train.lr=5e-2", "base.sampling.max_new_tokens=8", "annotator=rule:longer",
            "arms=[offline_dpo, oaif]", "evaluation.judge=rule:shorter", "evaluation.n=4",
            "evaluation.max_new_tokens=8", "agreement.pandalm=null"]
    assert main(["--home", str(home), "demo", str(REPO / "configs" / "demo_cpu.yaml"), *over]) == 0
    out = capsys.readouterr().out
    summary = out[out.index("=== summary"):]
    assert "== each arm vs the initial policy" in summary and "95% percentile bootstrap over prompts" in summary
    assert "offline_dpo: " in summary and "the initial policy at n=4 (CI [" in summary
    assert "== head-to-head between the arms" in summary and "oaif at n=4 (CI [" in summary
    assert "validity card, evaluation judge rule:shorter: CARD[rule:shorter]" in summary
    assert "validity card, training annotator rule:longer: CARD[rule:longer]" in summary
    assert {"rule:shorter", "rule:longer"} <= set(asked)

    store = Store(home)
    [demo] = store.results("demo_summary")
    rows = demo["result"]["rows"]
    assert [r["arm"] for r in rows] == ["offline_dpo", "oaif"]
    for r in rows:
        assert r["n"] == 4 and r["w/t/l"].count("/") == 2 and r["ci95"].startswith("[")
        assert r["verdict"].startswith(f"{r['arm']}: ") and "at n=4" in r["verdict"]
        assert "kl" not in r  # the trainers' `kl` metrics are not one quantity across arms (item 9)
    [h2h] = store.results("head_to_head")
    [pair] = h2h["result"]["rows"]
    assert h2h["result"]["policies"] == [r["run_id"] for r in rows]
    assert pair["n"] == 4 and pair["wins"] + pair["ties"] + pair["losses"] == 4 and 0 <= pair["n_identical"] <= 4
    assert demo["result"]["head_to_head"][0]["arm_a"] == "offline_dpo"
    assert demo["result"]["head_to_head_result_id"] == h2h["result_id"]
    # the initial policy and each arm answered the eval prompts once (vs-initial and head-to-head share them)
    assert len(answered) == 3 and sum(n.startswith("initial:") for n in answered) == 1
