"""Annotator controllability on fixed pairs, before any training: does an instruction move the verdicts?

The OAIF paper (Guo et al. 2024, §4.6) steers a policy through its annotator's instruction ("prefer
the shorter response"). Whether that can work depends first on the annotator: if its verdicts on
a fixed set of pairs do not move toward the property the instruction names, training with that
instruction only trains on noise. This measures that, with no policy in the loop.

A property (PROPERTIES) is an instruction text plus a per-response score built on the checkers of
harness/verifiable.py; a pair *distinguishes* the property when its two responses score
differently, and the *favoured* response is the one with the higher score (the one with the
property; for shorter/longer the one with fewer/more whitespace words, as rule:shorter counts).

`measure` labels the fixed pairs once without an instruction (baseline) and once per instruction,
each through `label_and_store` (stored and cached like every label). Per instruction, over the
distinguishing pairs whose combined verdict (records.combine_orders, MT-Bench rule: order
disagreement is a tie; the verdict training uses) parsed in both conditions (`n`; the rest are
`n_unparsed`, never guessed), with a tie or the other response counting as "not favoured":

  baseline_favoured    #(baseline verdict == favoured) / n                               Wilson 95%
  instructed_favoured  #(instructed verdict == favoured) / n                             Wilson 95%
  flip_toward          #(baseline != favoured and instructed == favoured) / #(baseline != favoured)
                                                                                         Wilson 95%
  flip_away            #(baseline == favoured and instructed != favoured) / #(baseline == favoured)
                                                                                         Wilson 95%
  baseline_ties, instructed_ties   combined ties / n (a position-following judge ties everywhere)  Wilson
  net_shift            instructed_favoured - baseline_favoured = mean over the n pairs of
                       1[instructed == fav] - 1[baseline == fav]; CI: paired percentile bootstrap
                       over pairs (harness/evaluation/bootstrap.py; both conditions of a pair stay
                       together)
  p_shift[order]       judges that give p_a only: per presentation order, the mean over pairs of
                       P_instructed(favoured) - P_baseline(favoured), P(favoured) = p_a when A is
                       favoured else 1 - p_a, over the distinguishing pairs with a p_a in that order
                       in both conditions; CI: paired percentile bootstrap over pairs

Wilson intervals: statsmodels `proportion_confint(method="wilson")` (validity.wilson). A
proportion over n = 0 pairs is None, not 0. An annotator that cannot take an instruction is
measured with its uninstructed self (`instruction_delivered: false`): the negative control.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..verifiable import CONSTRAINTS, bullet_lines
from .bootstrap import bootstrap_mean_ci
from .validity import WILSON, proportion

KIND = "controllability_fixed"
BOOTSTRAP = "95% paired percentile bootstrap over pairs (1000 resamples)"


@dataclass(frozen=True)
class Property:
    instruction: str                    # the text given to the annotator
    score: Callable[[str], float]       # per response; higher = more of the property
    test: str                           # what the score measures, in words (for tables and docs)


def _check(name: str) -> Callable[[str], float]:
    spec = CONSTRAINTS[name]  # argument-free constraint checks of the verifiable task
    return lambda r: float(spec.check(r))


# THE table of instructable properties (name -> Property). Adding one: an entry here + a test case.
PROPERTIES: dict[str, Property] = {
    # whitespace words, as rule:shorter / rule:longer and the validity card's p_longer count them
    "shorter": Property("Prefer the shorter response.", lambda r: -float(len(r.split())),
                        "fewer whitespace words"),
    "longer": Property("Prefer the longer response.", lambda r: float(len(r.split())),
                       "more whitespace words"),
    "lowercase": Property("Prefer the response written entirely in lowercase letters.", _check("lowercase"),
                          "all letters lowercase (verifiable constraint 'lowercase')"),
    "uppercase": Property("Prefer the response written entirely in capital letters.", _check("uppercase"),
                          "all letters uppercase (verifiable constraint 'uppercase')"),
    "no_commas": Property("Prefer the response that uses no commas.", _check("no_commas"),
                          "no comma (verifiable constraint 'no_commas')"),
    "bullets": Property("Prefer the response formatted as bullet points.",
                        lambda r: float(bool(bullet_lines(r))),
                        "has a bullet line '- ' / '* ' (harness.verifiable.bullet_lines)"),
}
DEFAULT_PROPERTIES = ("shorter", "longer", "lowercase", "no_commas", "bullets")


def known() -> str:
    return "; ".join(f"{n} ({p.instruction!r})" for n, p in PROPERTIES.items())


def resolve(instruction: str) -> str:
    """The property an instruction names: its name or its instruction text (case and surrounding
    blanks ignored). Anything else is an error naming the known ones: a rule cannot read free text."""
    key = (instruction or "").strip().casefold()
    for name, p in PROPERTIES.items():
        if key in (name.casefold(), p.instruction.casefold()):
            return name
    raise ValueError(f"instruction {instruction!r} names no registered property; known: {known()}")


def find(instruction: str) -> str | None:
    """resolve() without the error: None for an instruction no property test exists for."""
    try:
        return resolve(instruction)
    except ValueError:
        return None


def favoured(name: str, response_a: str, response_b: str) -> str | None:
    """'A' or 'B': the response with more of the property; None when the two score the same."""
    s = PROPERTIES[name].score
    a, b = s(response_a), s(response_b)
    return "A" if a > b else "B" if b > a else None


def _ci(values) -> dict:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"value": None, "n": 0, "ci_low": None, "ci_high": None, "method": BOOTSTRAP}
    lo, hi = bootstrap_mean_ci(v, seed=0)
    return {"value": float(v.mean()), "n": int(v.size), "ci_low": lo, "ci_high": hi, "method": BOOTSTRAP}


def _p_fav(label, fav: str) -> float | None:
    if label.verdict == "unparsed" or label.p_a is None:
        return None
    return label.p_a if fav == "A" else 1.0 - label.p_a


def compare(name: str, baseline, instructed) -> dict:
    """One property's figures from the baseline and instructed Judgements of the same pairs (module docs)."""
    if [j.pair.pair_id for j in baseline] != [j.pair.pair_id for j in instructed]:
        raise ValueError("controllability: baseline and instructed judgements are not of the same pairs")
    used, n_dist, n_unparsed = [], 0, 0
    for b, i in zip(baseline, instructed):
        fav = favoured(name, b.pair.response_a, b.pair.response_b)
        if fav is None:
            continue
        n_dist += 1
        if b.verdict == "unparsed" or i.verdict == "unparsed":
            n_unparsed += 1
            continue
        used.append((fav, b, i))
    base_f = [b.verdict == fav for fav, b, _ in used]
    inst_f = [i.verdict == fav for fav, _, i in used]
    not_before = [g for g, was in zip(inst_f, base_f) if not was]
    before = [g for g, was in zip(inst_f, base_f) if was]
    p_shift = {}
    for order in ("AB", "BA"):
        diffs = []
        for fav, b, i in used:
            lb = next((l for l in b.labels if l.shown_order == order), None)
            li = next((l for l in i.labels if l.shown_order == order), None)
            pb, pi = (_p_fav(lb, fav) if lb else None), (_p_fav(li, fav) if li else None)
            if pb is not None and pi is not None:
                diffs.append(pi - pb)
        if diffs:
            p_shift[order] = _ci(diffs)
    return {
        "property": name, "instruction": PROPERTIES[name].instruction, "test": PROPERTIES[name].test,
        "n_pairs": len(baseline), "n_distinguishing": n_dist, "n_unparsed": n_unparsed, "n": len(used),
        "baseline_favoured": proportion(sum(base_f), len(used), "baseline verdict == favoured / n"),
        "instructed_favoured": proportion(sum(inst_f), len(used), "instructed verdict == favoured / n"),
        "flip_toward": proportion(sum(not_before), len(not_before),
                                  "instructed == favoured / pairs whose baseline verdict was not favoured"),
        "flip_away": proportion(sum(not g for g in before), len(before),
                                "instructed != favoured / pairs whose baseline verdict was favoured"),
        "net_shift": _ci([float(g) - float(w) for g, w in zip(inst_f, base_f)]),
        # a combined tie is never "favoured": an annotator that only follows the position ties everywhere
        "baseline_ties": proportion(sum(b.verdict == "tie" for _, b, _ in used), len(used), "baseline ties / n"),
        "instructed_ties": proportion(sum(i.verdict == "tie" for _, _, i in used), len(used), "instructed ties / n"),
        "p_shift": p_shift or None,
    }


def measure(pairs: Sequence, judge_for: Callable, properties: Sequence, store, run_id: str | None = None) -> list[dict]:
    """Label `pairs` without an instruction and once per property's instruction; one row per property.

    `properties`: names of PROPERTIES, or (name, instruction text) to give the annotator that text
    (e.g. the words a training config uses) while the property's own test scores the responses.
    `judge_for(instruction)` returns the annotator told `instruction` (None: no instruction); each
    labelling goes through `label_and_store`, so the labels are stored and a rerun is served from the
    cache. A judge_for that returns the uninstructed annotator (same id and version) marks the row
    `instruction_delivered: false` (the annotator cannot take an instruction: a negative control)."""
    from judges.base import label_and_store

    pairs = list(pairs)
    asks = []
    for item in properties:
        name, text = (item, None) if isinstance(item, str) else item
        if name not in PROPERTIES:
            raise ValueError(f"controllability: unknown property {name!r}; known: {known()}")
        asks.append((name, text or PROPERTIES[name].instruction))
    base = judge_for(None)
    base_j = label_and_store(base, pairs, store, run_id=run_id)
    rows = []
    for name, text in asks:
        judge = judge_for(text)
        got = label_and_store(judge, pairs, store, run_id=run_id)
        a, b = judge.annotator, base.annotator
        rows.append({"annotator": b.id, "annotator_version": b.version, "annotator_kind": b.kind,
                     "instructed_annotator": a.id, "instructed_version": a.version,
                     "instruction_delivered": (a.id, a.version) != (b.id, b.version),
                     **compare(name, base_j, got), "instruction": text})
    return rows


def _fig(f: dict | None, digits: int = 2) -> str:
    if not f or f.get("value") is None:
        return "n/a (n=0)"
    lo, hi = f.get("ci_low"), f.get("ci_high")
    ci = f"[{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else "[n/a]"
    return f"{f['value']:.{digits}f} {ci}" + (f" ({f['count']}/{f['n']})" if "count" in f else "")


def table(rows: Sequence[dict]) -> list[dict]:
    """Printable rows: per annotator x instruction, n, flip_toward [CI], flip_away [CI], net shift [CI]."""
    out = []
    for r in rows:
        ps = r.get("p_shift") or {}
        out.append({"annotator": r["annotator"] + ("" if r["instruction_delivered"] else " (no instruction taken)"),
                    "property": r["property"], "n_dist": r["n_distinguishing"], "n": r["n"],
                    "base_P(fav)": _fig(r["baseline_favoured"]), "instr_P(fav)": _fig(r["instructed_favoured"]),
                    "flip_toward": _fig(r["flip_toward"]), "flip_away": _fig(r["flip_away"]),
                    "net_shift": _fig(r["net_shift"]),
                    "ties base/instr": "/".join(f"{r[k]['value']:.2f}" if r.get(k) and r[k]["value"] is not None
                                                else "-" for k in ("baseline_ties", "instructed_ties")),
                    "p_shift AB/BA": " / ".join(_fig(ps.get(o)).split(" (")[0] for o in ("AB", "BA")) if ps else "-"})
    return out


def note() -> str:
    """The footnote under every printed table."""
    return ("flip_toward = instructed verdict favours the property / pairs whose uninstructed verdict did not; "
            "flip_away the reverse; over pairs whose two responses differ in the property (n_dist) and whose "
            "combined verdict (both orders, MT-Bench rule) parsed in both conditions (n). "
            f"Proportions: {WILSON}; net_shift = instr_P(fav) - base_P(fav), {BOOTSTRAP}; "
            "p_shift: mean change of P(favoured) per order (judges with p_a).")
