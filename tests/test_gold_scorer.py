"""The gold scorer of verifiable tasks (harness/verifiable.py): every constraint type met and broken,
the degenerate guards (empty, loops, off-topic) that keep "say nothing" from winning, the 1 + k/K
score, the prompt composition, and validate_row's errors naming the field."""
from __future__ import annotations

import pytest

from harness.verifiable import (CONSTRAINTS, ConstraintError, compose, degenerate, gold_detail, gold_score,
                                satisfied, sentences, validate_row, words)

TOPIC = ["egg", "boil"]
OK = "Put the egg in boiling water for nine minutes, then cool it."

# (constraint, a response meeting it, a response breaking it): every type in CONSTRAINTS
CASES = [
    ({"type": "max_words", "n": 12}, "Boil the egg for nine minutes.", "Boil the egg for nine minutes and then cool it in a bowl of ice water."),
    ({"type": "min_words", "n": 8}, "Boil the egg in water for nine whole minutes.", "Boil the egg briefly."),
    ({"type": "max_sentences", "n": 1}, "Boil the egg for nine minutes.", "Boil the egg. Then cool it."),
    ({"type": "include_keyword", "word": "water"}, "Boil the egg in Water for nine minutes.", "Boil the egg for nine minutes (watery yolk)."),
    ({"type": "avoid_keyword", "word": "water"}, "Boil the egg for nine minutes (watery yolk).", "Boil the egg in water."),
    ({"type": "lowercase"}, "boil the egg for nine minutes.", "Boil the egg for nine minutes."),
    ({"type": "uppercase"}, "BOIL THE EGG FOR NINE MINUTES.", "BOIL THE EGG for nine minutes."),
    ({"type": "no_commas"}, "Boil the egg and then cool it.", "Boil the egg, then cool it."),
    ({"type": "end_with", "phrase": "Enjoy!"}, "Boil the egg for nine minutes. Enjoy!", "Enjoy! Boil the egg for nine minutes."),
    ({"type": "start_with", "word": "Sure"}, "Sure! Boil the egg for nine minutes.", "Yes, sure: boil the egg for nine minutes."),
    ({"type": "bullets", "n": 2}, "- Boil the egg for nine minutes.\n- Cool it in cold water.",
     "- Boil the egg for nine minutes.\n- Cool it in cold water.\n- Peel it."),
    ({"type": "quoted"}, '"Boil the egg for nine minutes."', 'Boil the egg for "nine" minutes.'),
]


def test_every_constraint_type_has_a_case():
    assert {c["type"] for c, _, _ in CASES} == set(CONSTRAINTS)


@pytest.mark.parametrize("constraint,good,bad", CASES, ids=[c["type"] for c, _, _ in CASES])
def test_constraint_met_and_broken(constraint, good, bad):
    assert satisfied(constraint, good) and not satisfied(constraint, bad)
    # neither response is degenerate: the score is 2 when met, 1 when broken
    assert gold_score(good, [constraint], TOPIC) == 2.0
    assert gold_score(bad, [constraint], TOPIC) == 1.0


def test_edge_cases_of_the_checks():
    # end_with allows a closing quote after the phrase; quoted accepts curly quotes
    assert satisfied({"type": "end_with", "phrase": "Enjoy!"}, '"Boil the egg. Enjoy!"')
    assert satisfied({"type": "quoted"}, "\u201cBoil the egg for nine minutes.\u201d")
    # lowercase / uppercase need at least one letter ("123" is neither)
    assert not satisfied({"type": "lowercase"}, "123 456") and not satisfied({"type": "uppercase"}, "123 456")
    # a sentence ends before a closing quote; an unterminated tail is a sentence too
    assert sentences('He said "stop." Then he left') == 2
    assert words("don't stop-now") == ["don't", "stop", "now"]
    # bullets: "- " or "* " lines only, prose lines do not count
    assert satisfied({"type": "bullets", "n": 2}, "Steps:\n- boil the egg\n* cool the egg\nDone.")


@pytest.mark.parametrize("response,why", [
    ("", "empty"),
    ("egg boil", "empty"),                                   # under MIN_WORDS words
    ("the egg the egg the egg the egg the egg the egg the egg", "repetition"),
    ("Boil the egg now.\nBoil the egg now.\nBoil the egg now.", "repetition"),
    ("Paris is the capital of France and has many museums.", "off-topic"),
])
def test_degenerate_responses_score_zero(response, why):
    assert degenerate(response, TOPIC) == why
    assert gold_score(response, [{"type": "max_words", "n": 50}], TOPIC) == 0.0


def test_saying_nothing_never_wins():
    """An empty answer meets max_words and no_commas, an 'ok ok ok' loop meets lowercase: both 0,
    below an on-topic answer that breaks every constraint (1.0)."""
    cs = [{"type": "max_words", "n": 5}, {"type": "no_commas"}]
    assert all(satisfied(c, "") for c in cs) and gold_score("", cs, TOPIC) == 0.0
    loop = "ok egg " * 10
    assert satisfied({"type": "lowercase"}, loop) and gold_score(loop, [{"type": "lowercase"}], TOPIC) == 0.0
    assert gold_score(OK, cs, TOPIC) == 1.0


def test_score_is_one_plus_share_of_constraints_met():
    cs = [{"type": "max_words", "n": 20}, {"type": "lowercase"}]
    assert gold_score(OK, cs, TOPIC) == 1.5                     # 12 words: met; capital P: broken
    assert gold_score(OK.lower(), cs, TOPIC) == 2.0
    d = gold_detail(OK, cs, TOPIC)
    assert d == {"score": 1.5, "degenerate": None, "satisfied": {"max_words": True, "lowercase": False}}
    assert gold_score(OK, [], TOPIC) == 1.0


def test_compose_writes_each_constraint_into_the_prompt():
    text = compose("Explain how to boil an egg. ", [{"type": "max_words", "n": 30}, {"type": "include_keyword", "word": "water"}])
    assert text == 'Explain how to boil an egg. Answer in at most 30 words. Include the word "water".'


def _row(**over):
    base, cs = "Explain how to boil an egg.", [{"type": "lowercase"}]
    row = {"base": base, "constraints": cs, "topic": TOPIC, "prompt": compose(base, cs),
           "reference": "boil the egg for nine minutes."}
    row.update(over)
    return row


@pytest.mark.parametrize("over,field", [
    ({"prompt": "Explain how to boil an egg."}, "field 'prompt'"),
    ({"reference": "Boil the egg for nine minutes."}, "field 'reference'"),
    ({"constraints": [{"type": "shout"}]}, "constraints.type"),
    ({"constraints": [{"type": "max_words", "n": 0}]}, "constraints.n"),
    ({"constraints": [{"type": "max_words"}]}, "arguments"),
    ({"constraints": []}, "field 'constraints'"),
    ({"topic": "egg"}, "field 'topic'"),
])
def test_validate_row_errors_name_the_field(over, field):
    row = _row(**over)
    with pytest.raises(ConstraintError, match=field) as e:
        validate_row(row, "p.jsonl: line 7:")
    assert "p.jsonl: line 7:" in str(e.value)


def test_validate_row_accepts_a_good_row():
    validate_row(_row(), "p.jsonl: line 1:")
