"""A stand-in for the judge validity card (harness/evaluation/validity.py) in tests of the commands
that PRINT it: the real card labels PandaLM / LLMBar pairs with the judge, which these tests are not
about (tests/test_validity_*.py test the card itself). The stub records which judges were asked."""
from __future__ import annotations

import sys
import types


def install_card_stub(monkeypatch) -> list[str]:
    """Replace judge_card / card_line (or provide them while validity.py does not exist yet)."""
    asked: list[str] = []

    def judge_card(store, judge, home=None, **kw):
        asked.append(judge.annotator.id)
        fig = {"value": 1.0, "n": 0, "ci_low": 1.0, "ci_high": 1.0, "method": "stub"}
        return {"result_id": 0, "annotator_id": judge.annotator.id, "annotator_kind": judge.annotator.kind,
                "annotator_version": judge.annotator.version, "position_consistency": fig,
                "p_first": {**fig, "value": 0.5}, "p_longer": {**fig, "value": 0.5}, "agreement": {}}

    def card_line(card):
        return f"CARD[{card['annotator_id']}]"

    try:
        import harness.evaluation.validity as mod
    except ImportError:
        mod = types.ModuleType("harness.evaluation.validity")
        monkeypatch.setitem(sys.modules, "harness.evaluation.validity", mod)
    monkeypatch.setattr(mod, "judge_card", judge_card, raising=False)
    monkeypatch.setattr(mod, "card_line", card_line, raising=False)
    return asked
