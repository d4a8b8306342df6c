"""The pointwise LLM judge (`mode: score` in a judges/configs/*.yaml; template judges/templates/pointwise.txt).

As in MT-Bench's single-answer grading, each response is rated ALONE on `min_score..max_score` (1-10),
so the order a pair is shown in cannot move its verdict: there is no order to show.

Reading a rating (`score_from`):
  logprob   the EXPECTED rating from the next-token probabilities after `answer_prefix` (e.g.
            "Rating: [["): P(r) for every rating r on the scale, normalised over the scale; the
            label records the mass the scale got before normalising. A rating of two tokens
            ("10" is "1","0" for SmolLM2's digit-splitting tokenizer) is read after prefix + its
            first token (the transformers backend reads both positions from one forward):
            P(10) = P("1") * P("0" | "1"), and the rest of the "1" mass, P("1") * (1 - P("0" | "1")),
            is the rating 1 (what follows a lone "1" is "]]"). Three tokens or more: a config error.
  generate  the rating written in the answer (prefix + generated text): "[[N]]" (FastChat's
            pattern), else "[N]"; a hedge ("not sure", "hard to say"), two different ratings, or
            one outside the scale is unparsed, never guessed.

A pair from two ratings s_a, s_b (expected or parsed): p = sigmoid(s_a - s_b) (one rating point is
one Bradley-Terry logit, as judges/reward_model.py reads two rewards); the verdict is A when
s_a > s_b, B when s_a < s_b, and a tie when they are equal or |p - 0.5| <= `tie_band` (a band of
b is a rating gap of ln((0.5 + b) / (0.5 - b))). p_a = p in logprob mode; generate mode's
integer ratings give a vote, p_a None (records.combine_orders: a vote is not a probability).

shown_order: a pointwise judge shows each response alone, so a label's shown_order is only the
order the pair was ASKED in: "AB" by default (`both_orders: false`); asked "BA" (the validity card
asks both) it gets the same two ratings, so position consistency is 1 by construction and still
measured. Each label carries both ratings in meta (score_a, score_b).

Ratings are cached per (prompt, response) in the judge (one version per judge object): a response
in several pairs, or a pair asked in both orders, is rated once; its cost (latency, tokens) is on
the first label that used it, 0 on the others.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from harness.config import ConfigError
from harness.records import Annotator, Label, Pair, content_hash, prompt_text

from .backends import BackendResult, Prompt, make_backend
from .base import BOTH_ORDERS, error_label
from .llm import LLMJudgeConfig, hedged, judge_annotator

POINTWISE_RUBRIC = "Judge how helpful and correct the response is, and how well it does what the request asks."
# FastChat's llm_judge reads `[[N]]`, then `[N]`, with decimals allowed
SCORE_PATTERNS = (re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]"), re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]"))
MAX_CACHED = 100_000  # ratings kept per judge object (a long OAIF run sees new responses every step)


@dataclass
class Score:
    """One response's rating: value None when it cannot be read (error: the backend failed)."""
    value: float | None = None
    probs: dict | None = None  # logprob: {rating: P(rating)} normalised over the scale
    mass: float | None = None  # logprob: next-token mass on the ratings, before normalising
    text: str | None = None  # generate: the answer
    error: str | None = None
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0

    def raw(self) -> dict:
        out = {"score": self.value}
        if self.probs is not None:
            out.update(probs={str(k): round(v, 5) for k, v in self.probs.items()}, mass=self.mass)
        if self.text is not None:
            out["text"] = self.text
        if self.error is not None:
            out["error"] = self.error
        return out


# -- reading ratings ---------------------------------------------------------------------------------
def parse_score(text: str, lo: float, hi: float, score_regex: str | None = None) -> float | None:
    """The rating written in `text`, or None: a hedge, no rating, two different ratings (in the first
    pattern that matches), or a rating outside lo..hi. Never a guess."""
    if hedged(text):
        return None
    patterns = (re.compile(score_regex),) if score_regex else SCORE_PATTERNS
    for rx in patterns:
        found = set()
        for m in rx.finditer(text):
            try:
                found.add(float(m.group(1)))
            except (TypeError, ValueError):  # a custom regex that captured something else
                return None
        if len(found) > 1:
            return None
        if found:
            (v,) = found
            return v if lo <= v <= hi else None
    return None


@dataclass(frozen=True)
class ScoreTokens:
    """How the ratings are read as tokens: the first pass asks `first`; `second[t]` (the second
    tokens after first token t) are asked after prefix + t."""
    single: dict  # rating -> its one token
    double: dict  # rating -> (first token, second token)
    first: tuple
    second: dict  # first token -> tuple of second tokens


def token_pieces(backend, text: str) -> list[str]:
    """`text` as the backend's tokenizer splits it; a backend without one (http) sees one token."""
    tok = getattr(backend, "tok", None)
    if tok is None:
        return [text]
    return [tok.decode([i]) for i in tok.encode(text, add_special_tokens=False)]


def score_tokens(backend, lo: int, hi: int, where: str) -> ScoreTokens:
    single, double = {}, {}
    for r in range(lo, hi + 1):
        pieces = token_pieces(backend, str(r))
        if len(pieces) == 1:
            single[r] = pieces[0]
        elif len(pieces) == 2:
            double[r] = tuple(pieces)
        else:
            raise ConfigError(f"{where} max_score: the rating {r} is {len(pieces)} tokens {pieces} for this "
                              "tokenizer; logprob mode reads ratings of one or two tokens")
    first = tuple(dict.fromkeys([*single.values(), *(t for t, _ in double.values())]))
    second: dict = {}
    for t1, t2 in double.values():
        second.setdefault(t1, ())
        second[t1] = tuple(dict.fromkeys([*second[t1], t2]))
    backend.check_labels(list(first), where)
    for conts in second.values():
        backend.check_labels(list(conts), where)
    return ScoreTokens(single=single, double=double, first=first, second=second)


def _probs(r: BackendResult, labels: Sequence[str]) -> dict:
    ps = {l: (r.probs or {}).get(l, 0.0) for l in labels}
    if not all(isinstance(p, (int, float)) and math.isfinite(p) and 0 <= p <= 1 for p in ps.values()):
        raise ValueError(f"non-finite or out-of-range probabilities {ps}")
    return ps


def expected_score(tokens: ScoreTokens, first: dict, second: dict) -> tuple[float | None, dict, float]:
    """(expected rating, {rating: P} normalised over the scale, mass on the scale) from the first
    pass's {token: P} and the second passes' {first token: {second token: P}} (module docs)."""
    raw = {r: first[t] for r, t in tokens.single.items()}
    for r, (t1, t2) in tokens.double.items():
        raw[r] = first[t1] * second[t1][t2]
    for r, t in tokens.single.items():
        if t in tokens.second:  # "1" that is not followed by "0": the rating 1
            raw[r] = first[t] * max(0.0, 1.0 - sum(second[t].values()))
    mass = sum(raw.values())
    if mass <= 0:
        return None, {}, 0.0
    probs = {r: p / mass for r, p in sorted(raw.items())}
    return sum(r * p for r, p in probs.items()), probs, mass


def pair_verdict(score_a: float, score_b: float, tie_band: float = 0.0) -> tuple[str, float]:
    """(verdict, p) of a pair from its two ratings: p = sigmoid(score_a - score_b); a tie when the
    ratings are equal or |p - 0.5| <= tie_band."""
    d = score_a - score_b
    p = 1.0 / (1.0 + math.exp(-d)) if abs(d) < 700 else (1.0 if d > 0 else 0.0)
    if d == 0 or (tie_band > 0 and abs(p - 0.5) <= tie_band):
        return "tie", p
    return ("A" if d > 0 else "B"), p


# -- the judge ---------------------------------------------------------------------------------------
class ScoreJudge:
    """A pointwise judge: `.judge(pairs, orders)` as every judge, and `.score(prompts, responses)`
    (the ratings: usable as a scalar reward)."""
    pointwise = True

    def __init__(self, cfg: LLMJudgeConfig, template_text: str, rubric: str, backend, annotator: Annotator,
                 tokens: ScoreTokens | None):
        self.cfg, self.template, self.rubric, self.backend, self.annotator = cfg, template_text, rubric, backend, annotator
        self.tokens = tokens
        self.orders = BOTH_ORDERS if cfg.both_orders else ("AB",)
        self.tie_band = cfg.tie_band
        self._cache: dict[str, Score] = {}

    def build_prompt(self, prompt: str, response: str) -> Prompt:
        cfg = self.cfg
        instr = cfg.instruction_format.format(instruction=cfg.instruction) if cfg.instruction else ""
        text = self.template.format(
            rubric=self.rubric, instruction=instr, min_score=cfg.min_score, max_score=cfg.max_score,
            prompt=self.backend.truncate(prompt, cfg.max_prompt_tokens),
            response=self.backend.truncate(response, cfg.max_response_tokens))
        messages = ([{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []) + \
                   [{"role": "user", "content": text}]
        return Prompt(messages=messages, prefix=cfg.answer_prefix)

    # ratings --------------------------------------------------------------------------------------
    def _rate(self, items: list[tuple[str, str]]) -> list[Score]:
        """Ask the backend for the ratings of (prompt, response) items (no cache)."""
        cfg = self.cfg
        prompts = [self.build_prompt(p, r) for p, r in items]
        if cfg.score_from == "generate":
            results = self.backend.generate(prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed,
                                            cfg.batch_size)
            return [self._read_text(r) for r in results]
        both = getattr(self.backend, "logprob_then", None)
        if both is not None and len(self.tokens.second) == 1:  # "1" then "0": one forward of prefix + "1"
            ((t, conts),) = self.tokens.second.items()
            pairs = both(prompts, list(self.tokens.first), t, list(conts), cfg.batch_size)
            first, second = [a for a, _ in pairs], {t: [b for _, b in pairs]}
        else:
            first = self.backend.logprob(prompts, list(self.tokens.first), cfg.batch_size)
            second = {t: self.backend.logprob([replace(pr, prefix=pr.prefix + t) for pr in prompts], list(conts),
                                              cfg.batch_size)
                      for t, conts in self.tokens.second.items()}
        return [self._read_probs(first[i], {t: rs[i] for t, rs in second.items()}) for i in range(len(items))]

    @staticmethod
    def _cost(results: Sequence[BackendResult]) -> dict:
        return {"latency_s": sum(r.latency_s or 0.0 for r in results), "tokens_in": sum(r.tokens_in or 0 for r in results),
                "tokens_out": sum(r.tokens_out or 0 for r in results)}

    def _read_text(self, r: BackendResult) -> Score:
        if r.error is not None:
            return Score(error=r.error, **self._cost([r]))
        if not isinstance(r.text, str):
            return Score(error=f"malformed answer: text is {type(r.text).__name__}, not a string", **self._cost([r]))
        cfg = self.cfg
        value = parse_score(cfg.answer_prefix + r.text, cfg.min_score, cfg.max_score, cfg.score_regex)
        return Score(value=value, text=r.text, **self._cost([r]))

    def _read_probs(self, r1: BackendResult, r2: dict) -> Score:
        results = [r1, *r2.values()]
        cost = self._cost(results)
        failed = [r.error for r in results if r.error is not None]
        if failed:
            return Score(error=failed[0], **cost)
        if r1.probs is None:  # a server that returned no logprobs: nothing to take an expectation of
            return Score(text=r1.text if isinstance(r1.text, str) else None, error="no logprobs returned", **cost)
        try:
            first = _probs(r1, self.tokens.first)
            second = {t: _probs(r2[t], conts) for t, conts in self.tokens.second.items()}
        except ValueError as e:
            return Score(error=str(e), **cost)
        value, probs, mass = expected_score(self.tokens, first, second)
        return Score(value=value, probs=probs, mass=mass, **cost)

    def ratings(self, items: Sequence[tuple[str, str]]) -> tuple[list[Score], set[str]]:
        """The Score of each (prompt, response), from the cache where rated before; and the keys rated
        now (their cost is new). A failed rating is not cached: asking again retries."""
        keys = [content_hash(p, r) for p, r in items]
        todo = {k: it for k, it in zip(keys, items) if k not in self._cache}
        fresh = dict(zip(todo, self._rate(list(todo.values())))) if todo else {}
        for k, s in fresh.items():
            if s.error is None:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[k] = s
        return [fresh.get(k) or self._cache[k] for k in keys], set(fresh)

    def score(self, prompts: Sequence, responses: Sequence[str], references=None) -> list[float]:
        """One rating per response (NaN where it cannot be read)."""
        scores, _ = self.ratings([(prompt_text(p), r) for p, r in zip(prompts, responses)])
        return [s.value if s.value is not None and s.error is None else math.nan for s in scores]

    # pairs ----------------------------------------------------------------------------------------
    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        items = [(p.prompt, r) for p in pairs for r in (p.response_a, p.response_b)]
        scores, fresh = self.ratings(items)
        charged: set[str] = set()
        out = []
        for i, pair in enumerate(pairs):
            a, b = scores[2 * i], scores[2 * i + 1]
            ka, kb = (content_hash(*items[2 * i]), content_hash(*items[2 * i + 1]))
            labels = []
            for order in orders:
                # a rating's cost goes on the first label that used it
                new = [s for k, s in {ka: a, kb: b}.items() if k in fresh and k not in charged]
                charged |= {k for k in (ka, kb) if k in fresh}
                labels.append(self._label(pair, order, a, b, new))
            out.append(labels)
        return out

    def _label(self, pair: Pair, order: str, a: Score, b: Score, new: list[Score]) -> Label:
        latency = sum(s.latency_s for s in new)
        errors = [f"response {side}: {s.error}" for side, s in (("a", a), ("b", b)) if s.error is not None]
        if errors:
            return error_label(pair, self.annotator, order, "; ".join(errors), latency)
        meta = {"mode": "score", "backend": self.cfg.backend, "score_from": self.cfg.score_from,
                "score_a": a.value, "score_b": b.value}
        if self.cfg.score_from == "logprob":
            meta.update(answer_mass_a=a.mass, answer_mass_b=b.mass)
        verdict, p_a = "unparsed", None
        if a.value is not None and b.value is not None:
            verdict, p = pair_verdict(a.value, b.value, self.tie_band)
            p_a = p if self.cfg.score_from == "logprob" else None
        return Label(pair_id=pair.pair_id, annotator=self.annotator, verdict=verdict, shown_order=order, p_a=p_a,
                     raw_output=json.dumps({"a": a.raw(), "b": b.raw()}), latency_s=latency,
                     tokens_in=sum(s.tokens_in for s in new), tokens_out=sum(s.tokens_out for s in new),
                     cost=None, meta=meta)


def build_score_judge(name: str, cfg: LLMJudgeConfig, options: dict, template_path: Path, template_text: str,
                      where: str, home=None, rubric: str | None = None, mode_overridden: bool = False) -> ScoreJudge:
    """The pointwise judge of a validated `mode: score` config (called by judges.llm.build_llm_judge)."""
    backend = make_backend(cfg, options.get(cfg.backend), where, home)
    tokens = score_tokens(backend, cfg.min_score, cfg.max_score, where) if cfg.score_from == "logprob" else None
    rubric = rubric or cfg.rubric or POINTWISE_RUBRIC
    annotator = judge_annotator(name, cfg, template_text, template_path, rubric, backend, mode_overridden,
                                options.get(cfg.backend))
    return ScoreJudge(cfg, template_text, rubric, backend, annotator, tokens)


__all__ = ["POINTWISE_RUBRIC", "Score", "ScoreJudge", "ScoreTokens", "build_score_judge", "expected_score",
           "pair_verdict", "parse_score", "score_tokens"]
