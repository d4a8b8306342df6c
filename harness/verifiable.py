"""Verifiable preferences: IFEval-style checkable constraints and a gold scorer built on them.

A verifiable task's prompts file carries, per prompt, the instruction the policy sees, its base
request, the constraints written into it and a few topic words:

    {"id": "vf-001", "base": "Explain how to boil an egg.", "constraints": [{"type": "max_words", "n": 30}],
     "topic": ["egg", "boil"], "prompt": "Explain how to boil an egg. Answer in at most 30 words.",
     "reference": "...", "split": "train", "group": "seen"}

`prompt` must equal `compose(base, constraints)` (checked on load, so the text the policy sees and the
rules the gold scorer applies cannot drift apart). IFEval (Zhou et al. 2023) verifies instruction
following the same way: each instruction is a program, not a judgement.

The gold score of a response (higher is better):
  0.0                 degenerate: empty or under MIN_WORDS words, a repetition loop, or off-topic
                      (none of the prompt's topic words), whatever constraints it meets, so that
                      "satisfy the constraint by saying nothing" never wins;
  1.0 + k / K         otherwise, for k of the prompt's K constraints satisfied.
Equal scores are a tie: the gold verdict of a pair is the comparison of its two scores.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

MIN_WORDS = 3
REPEAT_NGRAM = 3            # a loop: under half of the word 3-grams are distinct ...
REPEAT_MIN_WORDS = 12       # ... in a response of at least this many words,
REPEAT_LINES = 3            # or one non-empty line repeated this many times
GOLD_VERSION = "2"          # bump when a checker or guard changes (labels are cached by version)
                           # 2: words keep accents / curly apostrophes, no quote marks; sentence ends
                           #    before a closing quote; curly quotes for quoted / end_with; wordless
                           #    lines (---, ```) are not a repeated line

# a word: letters/digits (any script), inner apostrophes kept ("don't", "don’t"), quote marks dropped
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# a sentence ends at . ! ? (and any closing quote or bracket after it) before a space or the end
_SENT_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")
_OPEN_QUOTES, _CLOSE_QUOTES = '"“', '"”'


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def sentences(text: str) -> int:
    """Sentences = runs of text ended by . ! ? (a trailing unterminated run counts too)."""
    parts = [p for p in _SENT_END.split(text) if words(p)]
    return len(parts)


def bullet_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"^\s*[-*•]\s+\S", ln)]


def _has_word(text: str, word: str) -> bool:
    return re.search(r"(?<![^\W_])" + re.escape(word) + r"(?![^\W_])", text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Constraint:
    """One constraint type: its arguments, the sentence written into the prompt, and its check."""

    args: tuple[str, ...]
    instruction: str                       # str.format(**args)
    check: Callable[..., bool]             # check(response, **args) -> bool


# THE table of constraint types (name -> Constraint). Adding a type: one entry here + a test case.
CONSTRAINTS: dict[str, Constraint] = {
    "max_words": Constraint(("n",), "Answer in at most {n} words.",
                            lambda r, n: len(words(r)) <= n),
    "min_words": Constraint(("n",), "Use at least {n} words.",
                            lambda r, n: len(words(r)) >= n),
    "max_sentences": Constraint(("n",), "Use at most {n} sentences.",
                                lambda r, n: sentences(r) <= n),
    "include_keyword": Constraint(("word",), 'Include the word "{word}".',
                                  lambda r, word: _has_word(r, word)),
    "avoid_keyword": Constraint(("word",), 'Do not use the word "{word}".',
                                lambda r, word: not _has_word(r, word)),
    "lowercase": Constraint((), "Write everything in lowercase letters.",
                            lambda r: any(c.isalpha() for c in r) and r == r.lower()),
    "uppercase": Constraint((), "Write everything in capital letters.",
                            lambda r: any(c.isalpha() for c in r) and r == r.upper()),
    "no_commas": Constraint((), "Do not use any commas.",
                            lambda r: "," not in r),
    "end_with": Constraint(("phrase",), 'End your response with the exact phrase "{phrase}".',
                           lambda r, phrase: r.rstrip().rstrip(_CLOSE_QUOTES).rstrip().endswith(phrase)),
    "start_with": Constraint(("word",), 'Begin your response with the word "{word}".',
                             lambda r, word: (words(r)[:1] or [""])[0].lower() == word.lower()),
    "bullets": Constraint(("n",), 'Answer with exactly {n} bullet points, each on its own line starting with "- ".',
                          lambda r, n: len(bullet_lines(r)) == n),
    "quoted": Constraint((), "Wrap your entire response in double quotation marks.",
                         lambda r: len(r.strip()) >= 2 and r.strip()[0] in _OPEN_QUOTES and r.strip()[-1] in _CLOSE_QUOTES),
}


class ConstraintError(ValueError):
    pass


def validate_constraint(c: dict, where: str = "") -> None:
    """A constraint dict {type, **args}; errors name `where` (file:line) and the field."""
    if not isinstance(c, dict) or "type" not in c:
        raise ConstraintError(f"{where} constraints: each item needs a 'type' (one of {', '.join(CONSTRAINTS)})")
    spec = CONSTRAINTS.get(c["type"])
    if spec is None:
        raise ConstraintError(f"{where} constraints.type: {c['type']!r} is not one of {', '.join(CONSTRAINTS)}")
    given = set(c) - {"type"}
    if given != set(spec.args):
        raise ConstraintError(f"{where} constraints ({c['type']}): arguments {sorted(given)}, expected {list(spec.args)}")
    for a in spec.args:
        v = c[a]
        ok = (isinstance(v, int) and not isinstance(v, bool) and v > 0) if a == "n" else (isinstance(v, str) and v.strip())
        if not ok:
            raise ConstraintError(f"{where} constraints.{a} ({c['type']}): {v!r} is not a "
                                  f"{'positive integer' if a == 'n' else 'non-empty string'}")


def instruction(c: dict) -> str:
    return CONSTRAINTS[c["type"]].instruction.format(**{a: c[a] for a in CONSTRAINTS[c["type"]].args})


def compose(base: str, constraints: list[dict]) -> str:
    """The prompt the policy sees: the base request, then one sentence per constraint."""
    return " ".join([base.strip(), *(instruction(c) for c in constraints)])


def satisfied(c: dict, response: str) -> bool:
    spec = CONSTRAINTS[c["type"]]
    return bool(spec.check(response, **{a: c[a] for a in spec.args}))


def degenerate(response: str, topic: list[str] | None = None) -> str | None:
    """Why a response is degenerate ('empty', 'repetition', 'off-topic'), or None."""
    ws = [w.lower() for w in words(response)]
    if len(ws) < MIN_WORDS:
        return "empty"
    if len(ws) >= REPEAT_MIN_WORDS:
        grams = [tuple(ws[i:i + REPEAT_NGRAM]) for i in range(len(ws) - REPEAT_NGRAM + 1)]
        if len(set(grams)) < 0.5 * len(grams):
            return "repetition"
    lines = [ln.strip().lower() for ln in response.splitlines() if words(ln)]  # not '---' or '```'
    if lines and max(lines.count(ln) for ln in set(lines)) >= REPEAT_LINES:
        return "repetition"
    if topic and not any(w.startswith(t.lower()) for t in topic for w in ws):
        return "off-topic"
    return None


def score_parts(response: str, constraints: list[dict], topic: list[str] | None = None) -> tuple[float, str | None, list[bool]]:
    """(gold score, why degenerate or None, each constraint met) in one pass: 0 for a degenerate
    response, else 1 + (constraints satisfied) / (constraints)."""
    why = degenerate(response, topic)
    met = [satisfied(c, response) for c in constraints]
    score = 0.0 if why else 1.0 + (sum(met) / len(met) if met else 0.0)
    return score, why, met


def gold_score(response: str, constraints: list[dict], topic: list[str] | None = None) -> float:
    """0 for a degenerate response, else 1 + (constraints satisfied) / (constraints)."""
    return score_parts(response, constraints, topic)[0]


def gold_detail(response: str, constraints: list[dict], topic: list[str] | None = None) -> dict:
    """The score with its parts, for tables and the label's raw output."""
    score, why, met = score_parts(response, constraints, topic)
    return {"score": score, "degenerate": why, "satisfied": {c["type"]: m for c, m in zip(constraints, met)}}


def validate_row(row: dict, where: str) -> None:
    """A verifiable prompts row: base, constraints, topic, prompt == compose(...), reference scores full."""
    for f in ("base", "constraints", "topic"):
        if f not in row:
            raise ConstraintError(f"{where} field '{f}': missing (a verifiable task's prompts need base, constraints, topic)")
    if not isinstance(row["constraints"], list) or not row["constraints"]:
        raise ConstraintError(f"{where} field 'constraints': expected a non-empty list")
    for c in row["constraints"]:
        validate_constraint(c, where)
    if not isinstance(row["topic"], list) or not all(isinstance(t, str) and t.strip() for t in row["topic"]):
        raise ConstraintError(f"{where} field 'topic': expected a list of words")
    expected = compose(row["base"], row["constraints"])
    if row["prompt"] != expected:
        raise ConstraintError(f"{where} field 'prompt': does not match base + constraints; expected {expected!r}")
    ref = row.get("reference")
    if ref is not None:
        d = gold_detail(ref, row["constraints"], row["topic"])
        if d["score"] < 2.0:
            raise ConstraintError(f"{where} field 'reference': does not score full marks under the gold scorer ({d})")
