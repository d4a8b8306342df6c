"""Rule judges: cheap, deterministic, position-free. Used by tests and controllability checks.

Ids: `rule:shorter`, `rule:longer` (whitespace words), `rule:regex:<pattern>`, `rule:keyword:<word>`
(whole word, case-insensitive), `rule:bleu` (sentence BLEU against the pair's reference answer,
BLEUBERI-style). Each rule scores one response; the pair verdict compares the two scores (equal
scores: tie). A rule gives no probability (`p_a` is None): its verdict is a vote. A rule that
cannot score (BLEU without a reference) gives `unparsed`, never a guess.
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

from harness.records import Annotator, Label, Pair, content_hash

RULES_VERSION = "2"  # bump when a rule's labels change, so cached labels are not reused (2: p_a is None)

Scorer = Callable[[str, str, "str | None"], "float | None"]  # (prompt, response, reference) -> score


def n_words(text: str) -> int:
    return len(text.split())


# -- BLEU (sacrebleu-compatible in spirit: 13a-like tokens, 4-grams, brevity penalty, exp smoothing) --
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def bleu_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


def sentence_bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU in [0, 100], as sacrebleu's sentence_bleu computes it: zero n-gram matches are
    smoothed ('exp': the k-th empty precision counts as 1/2^k matches) and a hypothesis shorter than
    4 tokens is averaged over the n-gram orders it has, so short answers do not all score 0."""
    hyp, ref = bleu_tokens(hypothesis), bleu_tokens(reference)
    if not hyp or not ref:
        return 0.0
    log_p, k, order = 0.0, 1, 0
    for n in range(1, max_n + 1):
        h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        total = sum(h.values())
        if total == 0:  # hypothesis shorter than n: average over the orders it has (effective order)
            break
        order += 1
        match = sum(min(c, r[g]) for g, c in h.items())
        if match == 0:
            k *= 2
            log_p += math.log(1.0 / (k * total))
        else:
            log_p += math.log(match / total)
    bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return 100.0 * bp * math.exp(log_p / order)


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


# name -> (takes an argument, factory). ONE table; `rule:<name>[:<arg>]`.
RULES: dict[str, tuple[bool, Callable]] = {
    "shorter": (False, lambda: _shorter),
    "longer": (False, lambda: _longer),
    "bleu": (False, lambda: _bleu),
    "regex": (True, _regex),
    "keyword": (True, _keyword),
}


@dataclass
class RuleJudge:
    spec: str  # e.g. "shorter", "regex:^Sure", "keyword:sorry", "bleu"
    scorer: Scorer
    orders: tuple[str, ...] = ("AB",)  # position-free: a second order would only repeat the answer
    tie_band: float = 0.0
    annotator: Annotator = field(init=False)

    def __post_init__(self):
        self.annotator = Annotator(kind="rule", id=f"rule:{self.spec}",
                                   version=content_hash("rule", self.spec, RULES_VERSION, n=12),
                                   config={"rule": self.spec, "rules_version": RULES_VERSION})

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
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o, p_a=p_a,
                              raw_output=raw, latency_s=dt, tokens_in=0, tokens_out=0, cost=0.0) for o in orders])
        return out


def make_rule_judge(spec: str) -> RuleJudge:
    """`spec` without the `rule:` prefix: `shorter`, `regex:<pattern>`, `keyword:<word>`, `bleu`, ..."""
    name, _, arg = spec.partition(":")
    if name not in RULES:
        raise ValueError(f"unknown rule judge 'rule:{spec}'; known: "
                         + ", ".join(f"rule:{n}" + (":<arg>" if a else "") for n, (a, _) in RULES.items()))
    takes_arg, factory = RULES[name]
    if takes_arg and not arg:
        raise ValueError(f"rule:{name} needs an argument: rule:{name}:<...>")
    if not takes_arg and arg:
        raise ValueError(f"rule:{name} takes no argument (got {arg!r})")
    return RuleJudge(spec=spec, scorer=factory(arg) if takes_arg else factory())
