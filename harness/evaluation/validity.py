"""Judge validity cards: is a judge's verdict about the content, or about the order and the length?

A card is computed once per annotator version (and per selection: `n_pairs`, the datasets found)
and stored as a result of kind `judge_validity` (name = judge = annotator id, baseline = version);
later calls read it back without asking the judge again. Figures, each {value, n, count, ci_low,
ci_high, method}, over the held-out human-labelled pairs below, every pair asked in BOTH orders:

  position_consistency  pairs whose two per-order verdicts are the same (A/B/tie, both parsed;
                        `Judgement.consistent`, so the judge's tie band applies) / pairs with a
                        parsed verdict in both orders
  p_first               per-order labels preferring the response shown first / decisive per-order
                        labels (A or B)
  p_longer              pairs whose combined verdict (the one training and evaluation use) picks
                        the longer response (whitespace words, as rule:longer counts) / pairs with
                        different word counts and a decisive combined verdict
  agreement[dataset]    with_ties: combined verdict == reference / selected pairs (a judge tie or
                        unparsed answer counts as a disagreement); no_ties: the same over the pairs
                        where the judge's combined verdict is decisive

CIs: 95% Wilson score intervals (statsmodels `proportion_confint(method="wilson")`).

A pointwise judge (`mode: score`, judges/pointwise.py: each response rated alone) is asked in both
orders like any other: its two orders get the same ratings (cached, so the second costs nothing), so
its position consistency is 1 and its P(first) 0.5 by construction; the card measures them anyway
(`card["pointwise"]` says which kind it is). `compare_rows` puts several cards side by side.

Pairs: PandaLM's test set (reference: the plurality of its three human annotators; items whose top
count is shared or is a tie are left out) and LLMBar's Natural + Adversarial subsets (reference: the
benchmark's expert gold label, "gold (LLMBar)"). They are imported into the store when missing
(`judges.importers.import_labels`); a dataset that is not found is skipped with the reason in
`card["skipped"]`. Per dataset the items are sorted, shuffled with a fixed seed, and the first
`n_pairs` with a decisive reference (and a pair text not taken already) are used.
"""
from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ..records import content_hash

KIND = "judge_validity"
CARD_VERSION = "2"  # bump when a figure's definition changes: stored cards are then recomputed
SEED = 0
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WILSON = "Wilson score interval, 95% (statsmodels proportion_confint, method='wilson')"
DECISIVE = ("A", "B")

# dataset -> (import format, folder below the data root, reference label shown, annotator ids of the
# reference, kind of reference). ONE table; a new held-out dataset goes here.
DATASETS: dict[str, dict] = {
    "pandalm": {"format": "pandalm", "folder": "pandalm_testset", "reference": "human-majority",
                "check_annotator": "pandalm:annotator1"},
    "llmbar": {"format": "llmbar", "folder": "llmbar", "reference": "gold (LLMBar)",
               "check_annotator": "llmbar:gold"},
}


# -- statistics ---------------------------------------------------------------------------------
def wilson(count: int, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval of the proportion count/n; (None, None) when n == 0."""
    if n == 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(count, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def proportion(count: int, n: int, method: str) -> dict:
    """A card figure: {value, n, count, ci_low, ci_high, method}; value None when n == 0."""
    lo, hi = wilson(count, n)
    return {"value": count / n if n else None, "n": int(n), "count": int(count), "ci_low": lo, "ci_high": hi,
            "method": f"{method}; CI: {WILSON}"}


def n_words(text: str) -> int:
    return len(text.split())


def figures(judgements) -> dict:
    """Position consistency, P(first), P(longer) of judgements asked in both orders (module docs).

    `judgements`: records.Judgement with labels in the orders (AB, BA)."""
    from .bias import judgement_flags

    # an unparsed order cannot be checked against the other: not counted in consistency
    f = judgement_flags(judgements, length=n_words, unparsed="drop")

    def count(flags):
        kept = flags[~np.isnan(flags)]
        return int(kept.sum()), int(kept.size)

    (agree, both), (first, decisive), (longer, n_longer) = (count(f[k]) for k in ("consistent", "first", "longer"))
    return {
        "position_consistency": proportion(agree, both, "pairs whose AB and BA verdicts agree / pairs with a "
                                                        "parsed verdict in both orders"),
        "p_first": proportion(first, decisive, "per-order labels preferring the response shown first / "
                                               "decisive per-order labels"),
        "p_longer": proportion(longer, n_longer, "decisive combined verdicts preferring the longer response "
                                                 "(whitespace words) / pairs with different word counts and a "
                                                 "decisive combined verdict"),
    }


def agreement(judgements, refs: dict[str, str], reference: str) -> dict:
    """Agreement of combined verdicts with the reference verdict of each pair (module docs)."""
    n = len(judgements)
    if not any(j.verdict != "unparsed" for j in judgements):
        n = 0  # the judge answered none: not measured (n=0), never an agreement of 0.00
    hits = sum(j.verdict == refs[j.pair.pair_id] for j in judgements)
    dec = [j for j in judgements if j.verdict in DECISIVE]
    hits_dec = sum(j.verdict == refs[j.pair.pair_id] for j in dec)
    return {"reference": reference,
            "with_ties": proportion(hits, n, f"combined verdict == {reference} / pairs (a judge tie or unparsed "
                                             "answer counts as a disagreement)"),
            "no_ties": proportion(hits_dec, len(dec), f"combined verdict == {reference} / pairs with a decisive "
                                                      "combined verdict")}


# -- held-out pairs ---------------------------------------------------------------------------
def majority(verdicts) -> str | None:
    """The unique most frequent verdict among A/B/tie, None when the top count is shared or empty."""
    counts = Counter(v for v in verdicts if v in ("A", "B", "tie"))
    if not counts:
        return None
    top = counts.most_common()
    return top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else None


def references(store, name: str) -> dict[str, tuple[str, str]]:
    """item -> (pair_id, reference verdict) of one dataset in the store, decisive references only."""
    import json

    df = store.dataset_labels(name, kind="human")
    if df.empty:
        return {}
    df = df.assign(item=[json.loads(m or "{}").get("item", pid) for m, pid in zip(df["meta_json"], df["pair_id"])])
    if name == "llmbar":  # the benchmark proper (expert gold), not its Processed/* copies of other sets
        df = df[(df["annotator_id"] == "llmbar:gold") & ~df["subset"].fillna("").str.startswith("Processed/")]
    out = {}
    for item, g in df.groupby("item", sort=False):
        # one verdict per human: its first label of the item (imported labels are one per human)
        ref = majority(g.drop_duplicates("annotator_id")["verdict"])
        if ref in DECISIVE:
            out[item] = (g["pair_id"].iloc[0], ref)
    return out


def select(refs: dict[str, tuple[str, str]], n_pairs: int, name: str, seed: int = SEED) -> list[tuple[str, str, str]]:
    """The first `n_pairs` (item, pair_id, ref) in a fixed seeded order, one per distinct pair text."""
    items = sorted(refs)
    random.Random(f"judge-validity:{name}:{seed}").shuffle(items)
    out, seen = [], set()
    for item in items:
        pid, ref = refs[item]
        if pid in seen:
            continue
        seen.add(pid)
        out.append((item, pid, ref))
        if len(out) == n_pairs:
            break
    return out


def ensure_imported(store, name: str, path: Path) -> str | None:
    """Import dataset `name` from `path` unless the store has it; returns why it is skipped, or None."""
    from judges.importers import import_labels

    spec = DATASETS[name]
    if any(a["annotator_id"] == spec["check_annotator"] for a in store.annotators()):
        return None
    if not Path(path).exists():
        return f"{path} not found"
    try:
        import_labels(store, spec["format"], path)
    except (FileNotFoundError, ValueError) as e:
        return f"{path}: {e}"
    return None


def dataset_paths(datasets: dict[str, str] | None = None, data_root: str | Path | None = None) -> dict[str, Path]:
    """name -> folder: `datasets` where given, else `<data_root>/<folder>` (default ../shared/data)."""
    unknown = sorted(set(datasets or {}) - set(DATASETS))
    if unknown:
        raise ValueError(f"judge validity: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}")
    root = Path(data_root) if data_root else DEFAULT_DATA_ROOT
    if datasets:
        return {k: Path(v) for k, v in datasets.items()}
    return {k: root / spec["folder"] for k, spec in DATASETS.items()}


# -- the card -----------------------------------------------------------------------------------
def _card_key(n_pairs: int, names: list[str]) -> str:
    return content_hash(CARD_VERSION, SEED, n_pairs, sorted(names), n=12)


def stored_card(store, annotator, key: str) -> dict | None:
    """The newest stored card of this annotator version and selection key, with its result_id."""
    for row in reversed(store.results(KIND)):
        res = row["result"]
        if row["name"] == annotator.id and row["baseline"] == annotator.version and res.get("key") == key:
            return {**res, "result_id": row["result_id"]}
    return None


def judge_card(store, judge, home=None, *, n_pairs: int = 32, datasets: dict[str, str] | None = None,
               progress: bool = False, data_root: str | Path | None = None) -> dict:
    """Validity card of a LOADED judge (has .annotator with kind/id/version): computed once per
    annotator version and stored as a result of kind "judge_validity" (name = annotator id, judge =
    id, baseline = version); later calls read it back without asking the judge again.

    `datasets`: {name: folder} to use instead of `<data_root>/{pandalm_testset,llmbar}`; `home` is
    accepted for symmetry with the other loaders (the store already knows its home)."""
    from judges.base import BOTH_ORDERS, label_and_store

    if n_pairs < 1:
        raise ValueError(f"judge validity: n_pairs must be >= 1, got {n_pairs}")
    ann = judge.annotator
    paths = dataset_paths(datasets, data_root)
    skipped = {name: why for name, path in paths.items() if (why := ensure_imported(store, name, path))}
    selected: dict[str, list] = {}
    for name in paths:
        if name in skipped:
            continue
        chosen = select(references(store, name), n_pairs, name)
        if chosen:
            selected[name] = chosen
        else:
            skipped[name] = "no pairs with a decisive reference in the store"
    key = _card_key(n_pairs, list(selected))
    cached = stored_card(store, ann, key)
    if cached is not None:
        return cached
    all_j, agree = [], {}
    for name, chosen in list(selected.items()):
        pairs = {p.pair_id: p for p in store.get_pairs([pid for _, pid, _ in chosen])}
        if getattr(judge, "needs_reference", False) and not any(p.reference for p in pairs.values()):
            # a reference-guided judge cannot answer these: "not measured", never a 0.00 of unparsed answers
            skipped[name] = "the judge needs reference answers and these pairs have none"
            continue
        js = label_and_store(judge, [pairs[pid] for _, pid, _ in chosen], store, orders=BOTH_ORDERS,
                             batch_size=16, progress=progress)
        agree[name] = {**agreement(js, {pid: ref for _, pid, ref in chosen}, DATASETS[name]["reference"]),
                       "items": [item for item, _, _ in chosen], "path": str(paths[name])}
        all_j += js
    card = {"annotator_id": ann.id, "annotator_kind": ann.kind, "annotator_version": ann.version,
            "key": key, "card_version": CARD_VERSION, "n_pairs": n_pairs, "seed": SEED,
            "orders": list(BOTH_ORDERS), "pointwise": bool(getattr(judge, "pointwise", False)),
            **figures(all_j), "agreement": agree, "skipped": skipped,
            "created_at": time.time()}
    rid = store.add_result(KIND, card, name=ann.id, judge=ann.id, baseline=ann.version)
    return {**card, "result_id": rid}


# -- showing it -------------------------------------------------------------------------------
def _fmt(fig: dict, label: str) -> str:
    if not fig or fig.get("value") is None:
        return f"{label} n/a (n={fig.get('n', 0) if fig else 0})"
    return f"{label} {fig['value']:.2f} (n={fig['n']}, 95% CI [{fig['ci_low']:.2f}, {fig['ci_high']:.2f}])"


def card_line(card: dict) -> str:
    """1-3 lines of text printed beside a win rate / training summary."""
    if card.get("note"):  # gold scorer / simulated rater: no card, the reason (gold_eval.task_card)
        return card["note"]
    head = f"judge {card['annotator_id']}@{card['annotator_version']} validity: " + "; ".join(
        _fmt(card.get(k), lab) for k, lab in (("position_consistency", "position consistency"),
                                             ("p_first", "P(first shown)"), ("p_longer", "P(longer)")))
    parts = [f"{name} vs {a['reference']}: {_fmt(a['with_ties'], 'agreement')}, "
             f"{_fmt(a['no_ties'], 'without judge ties')}" for name, a in card.get("agreement", {}).items()]
    if card.get("pointwise"):
        head += " (pointwise: each response rated alone, so both orders get the same ratings)"
    lines = [head]
    if parts:
        lines.append("  " + "; ".join(parts))
    if card.get("skipped"):
        lines.append("  skipped: " + "; ".join(f"{k} ({v})" for k, v in card["skipped"].items()))
    return "\n".join(lines)


def card_rows(card: dict) -> list[dict]:
    """Rows {figure, value, n, ci_low, ci_high, reference, dataset}, one per figure of the card."""
    def row(figure, fig, dataset, reference=None):
        fig = fig or {}
        return {"figure": figure, "value": fig.get("value"), "n": fig.get("n", 0), "ci_low": fig.get("ci_low"),
                "ci_high": fig.get("ci_high"), "reference": reference, "dataset": dataset}

    pooled = "+".join(card.get("agreement", {})) or "(none)"
    rows = [row(f, card.get(f), pooled) for f in ("position_consistency", "p_first", "p_longer")]
    for name, a in card.get("agreement", {}).items():
        rows.append(row("agreement", a.get("with_ties"), name, a.get("reference")))
        rows.append(row("agreement_no_ties", a.get("no_ties"), name, a.get("reference")))
    return rows


def _cell(fig: dict | None) -> str:
    if not fig or fig.get("value") is None:
        return f"n/a (n={fig.get('n', 0) if fig else 0})"
    return f"{fig['value']:.2f} [{fig['ci_low']:.2f}, {fig['ci_high']:.2f}] n={fig['n']}"


def compare_rows(cards: list[dict]) -> list[dict]:
    """Several cards side by side: one row per figure (and dataset), one column per judge holding
    "value [95% CI] n=..."; a figure a card lacks (a dataset it skipped) is n/a."""
    names = [f"{c['annotator_id']}@{c['annotator_version']}" for c in cards]
    if len(set(names)) != len(names):
        raise ValueError(f"judge validity: the same judge twice in {names}")
    datasets = list(dict.fromkeys(d for c in cards for d in c.get("agreement", {})))
    rows = []
    for figure, label in (("position_consistency", "position consistency"), ("p_first", "P(first shown)"),
                          ("p_longer", "P(longer)")):
        rows.append({"figure": label, "dataset": "pooled", **{n: _cell(c.get(figure)) for n, c in zip(names, cards)}})
    for d in datasets:
        ref = next(c["agreement"][d]["reference"] for c in cards if d in c.get("agreement", {}))
        for key, label in (("with_ties", "agreement"), ("no_ties", "agreement, judge ties left out")):
            rows.append({"figure": f"{label} vs {ref}", "dataset": d,
                         **{n: _cell(c.get("agreement", {}).get(d, {}).get(key)) for n, c in zip(names, cards)}})
    rows.append({"figure": "pointwise", "dataset": "",
                 **{n: "yes" if c.get("pointwise") else "no" for n, c in zip(names, cards)}})
    return rows


def check_consistency(card: dict, min_consistency: float, allow_biased: bool, where: str) -> None:
    """Raise harness.config.ConfigError when the card's position consistency is below
    `min_consistency` (or could not be measured, for a judge that is not a rule), unless
    `allow_biased`; `where` is the config section named in the message (e.g. "judge")."""
    from ..config import ConfigError

    fig = card.get("position_consistency") or {}
    name = f"judge {card['annotator_id']}@{card['annotator_version']}"
    value = fig.get("value")
    if value is None:
        if card.get("annotator_kind") == "rule":  # rules never see the order: position-free by construction
            return
        problem = (f"{name}: position consistency could not be measured (n=0; skipped: "
                   f"{card.get('skipped') or 'no pair parsed in both orders'})")
    elif value < min_consistency:
        problem = (f"{name}: {_fmt(fig, 'position consistency')} is below {where}.min_consistency "
                   f"{min_consistency:g}: its verdicts follow the order shown, not the content")
    else:
        return
    if allow_biased:
        print(f"warning: {problem}; training anyway ({where}.allow_biased=true)", file=sys.stderr)
        return
    raise ConfigError(f"{problem}; set {where}.allow_biased=true to train with it anyway")


__all__ = ["DATASETS", "KIND", "card_line", "card_rows", "check_consistency", "compare_rows", "figures", "judge_card",
           "majority", "select", "wilson"]
