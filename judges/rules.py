"""Rule judges: cheap, deterministic, position-free. Used by tests and controllability checks.

Ids: `rule:shorter`, `rule:longer` (whitespace words), `rule:regex:<pattern>`, `rule:keyword:<word>`
(whole word, case-insensitive), `rule:bleu` (sentence BLEU against the pair's reference answer,
BLEUBERI-style), `rule:instructed[:<rule>|gold:<task>]` (the positive control of controllability: see below).
Each rule scores one response; the pair verdict compares the two scores (equal scores: tie). A rule
gives no probability (`p_a` is None): its verdict is a vote. A rule that cannot score (BLEU without
a reference) gives `unparsed`, never a guess.

`rule:instructed[:<rule>]` is the one rule that takes an instruction, and only one naming a property of
harness/evaluation/controllability.py (its name or exact instruction text; anything else is an error
naming the known ones): where the two responses differ in that property it prefers the one with it,
else it keeps its base verdict (that of `rule:<rule>`, or a tie without one). So its fixed-pair
controllability is 1.0 by construction, a check that the measurement works. The instruction is part
of its id and version (labels are cached by version).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from harness.records import Annotator, Label, Pair, content_hash

RULES_VERSION = "2"  # bump when a rule's labels change, so cached labels are not reused (2: p_a is None)

Scorer = Callable[[str, str, "str | None"], "float | None"]  # (prompt, response, reference) -> score


def n_words(text: str) -> int:
    return len(text.split())


# -- BLEU: sacrebleu's sentence BLEU (13a tokens, 4-grams, brevity penalty, exp smoothing), lowercased --
BLEU_VERSION = "sacrebleu-13a-lc"  # part of rule:bleu's version: labels made by the hand-written BLEU are not reused


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU in [0, 100] from sacrebleu (`sacrebleu.sentence_bleu`, lowercase): zero n-gram
    matches are smoothed ('exp') and a hypothesis shorter than 4 tokens is averaged over the n-gram
    orders it has, so short answers do not all score 0. Empty text scores 0."""
    import sacrebleu

    if not hypothesis.strip() or not reference.strip():
        return 0.0
    return float(sacrebleu.sentence_bleu(hypothesis, [reference], lowercase=True).score)


# -- the rules -----------------------------------------------------------------------------------
def _shorter(prompt, response, reference):
    return -float(n_words(response))


def _longer(prompt, response, reference):
    return float(n_words(response))


def _bleu(prompt, response, reference):
    if not reference:
        return None
    return sentence_bleu(response, reference)


def _regex(pattern: str) -> Scorer:
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"rule:regex:{pattern}: invalid regular expression ({e})") from None
    return lambda prompt, response, reference: 1.0 if rx.search(response) else 0.0


def _keyword(word: str) -> Scorer:
    if not word.strip():
        raise ValueError("rule:keyword: needs a word, e.g. rule:keyword:sorry")
    rx = re.compile(r"(?<!\w)" + re.escape(word.strip()) + r"(?!\w)", re.IGNORECASE)
    return lambda prompt, response, reference: 1.0 if rx.search(response) else 0.0


def _instructed(base: str) -> Scorer:
    """The base verdict of rule:instructed: rule:<base>'s scorer, the gold scorer of a verifiable
    task (`gold:<task>`: an instructed annotator whose content judgement is the truth), or none
    (every pair a tie)."""
    if not base:
        return lambda prompt, response, reference: 0.0
    if base.partition(":")[0] == "instructed":
        raise ValueError("rule:instructed:<rule>: the base rule cannot itself be rule:instructed")
    if base.startswith("gold:"):
        from .gold import make_gold_judge

        gold = make_gold_judge(base.partition(":")[2])
        return lambda prompt, response, reference: gold.score([prompt], [response])[0]
    return make_rule_judge(base).scorer


# name -> (takes an argument, factory). ONE table; `rule:<name>[:<arg>]`.
RULES: dict[str, tuple[bool | None, Callable]] = {
    "shorter": (False, lambda: _shorter),
    "longer": (False, lambda: _longer),
    "bleu": (False, lambda: _bleu),
    "regex": (True, _regex),
    "keyword": (True, _keyword),
    "instructed": (None, _instructed),  # None: the argument (a base rule) is optional
}
INSTRUCTABLE = ("instructed",)  # the rules that take an instruction (judges/registry.py asks)


@dataclass
class RuleJudge:
    spec: str  # e.g. "shorter", "regex:^Sure", "keyword:sorry", "bleu"
    scorer: Scorer
    orders: tuple[str, ...] = ("AB",)  # position-free: a second order would only repeat the answer
    tie_band: float = 0.0
    prefer: str | None = None  # rule:instructed: the property its instruction names
    annotator: Annotator = field(init=False)

    def __post_init__(self):
        ident, parts, config = f"rule:{self.spec}", ["rule", self.spec, RULES_VERSION], {"rule": self.spec}
        if self.spec == "bleu":
            parts.append(BLEU_VERSION)
        if self.spec.startswith("instructed:gold:"):  # the gold scorer's version (its prompts file) too
            from .gold import make_gold_judge

            parts.append(make_gold_judge(self.spec.split(":", 2)[2]).annotator.version)
        if self.prefer:
            from harness.evaluation.controllability import PROPERTIES

            instr = PROPERTIES[self.prefer].instruction
            ident += f"+instr-{self.prefer}"
            parts += [self.prefer, instr]
            config.update(instruction=instr, prefer=self.prefer)
        self.annotator = Annotator(kind="rule", id=ident, version=content_hash(*parts, n=12),
                                   config={**config, "rules_version": RULES_VERSION})

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              references: Sequence[str | None] | None = None) -> list[float | None]:
        refs = list(references) if references is not None else [None] * len(responses)
        return [self.scorer(p, r, ref) for p, r, ref in zip(prompts, responses, refs)]

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        out = []
        for p in pairs:
            t = time.perf_counter()
            sa = self.scorer(p.prompt, p.response_a, p.reference)
            sb = self.scorer(p.prompt, p.response_b, p.reference)
            dt = time.perf_counter() - t
            if sa is None or sb is None:
                verdict, p_a, raw = "unparsed", None, f"rule:{self.spec} cannot score this pair (no reference answer)"
            else:
                verdict = "A" if sa > sb else "B" if sb > sa else "tie"
                p_a = None  # a rule votes; 1.0/0.0 would read as certainty (and defeat the missing-EOS penalty)
                raw = f"score_a={sa:.6g} score_b={sb:.6g}"
                if self.prefer:
                    from harness.evaluation.controllability import favoured

                    fav = favoured(self.prefer, p.response_a, p.response_b)
                    verdict = fav or verdict  # the property decides where it tells the two apart
                    raw += f" prefer={self.prefer} favoured={fav}"
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o, p_a=p_a,
                              raw_output=raw, latency_s=dt, tokens_in=0, tokens_out=0, cost=0.0) for o in orders])
        return out


def make_rule_judge(spec: str, instruction: str | None = None) -> RuleJudge:
    """`spec` without the `rule:` prefix: `shorter`, `regex:<pattern>`, `keyword:<word>`, `bleu`, ...

    `instruction`: only for `instructed` (a property name or its instruction text)."""
    name, _, arg = spec.partition(":")
    if name not in RULES:
        raise ValueError(f"unknown rule judge 'rule:{spec}'; known: "
                         + ", ".join(f"rule:{n}" + {True: ":<arg>", None: "[:<rule>]"}.get(a, "")
                                     for n, (a, _) in RULES.items()))
    takes_arg, factory = RULES[name]
    if takes_arg and not arg:
        raise ValueError(f"rule:{name} needs an argument: rule:{name}:<...>")
    if takes_arg is False and arg:
        raise ValueError(f"rule:{name} takes no argument (got {arg!r})")
    if instruction and name not in INSTRUCTABLE:
        raise ValueError(f"rule:{spec} takes no instruction (only rule:instructed and LLM judges do)")
    prefer = None
    if instruction:
        from harness.evaluation.controllability import resolve

        try:
            prefer = resolve(instruction)
        except ValueError as e:
            raise ValueError(f"rule:{spec}: {e}") from None
    return RuleJudge(spec=spec, scorer=factory(arg) if takes_arg is not False else factory(), prefer=prefer)
