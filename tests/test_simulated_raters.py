"""Simulated human raters (judges/simulated.py): measured statistics match the configured rates,
labels are deterministic, and kind simulated-human never mixes with kind human.

The pairs are synthetic, on a tiny verifiable task built in tmp_path (one include_keyword
constraint per prompt), in four groups whose gold verdict and word lengths are fixed by
construction. Every tolerance is 4 standard errors at the expected rate, counted over pairs, not
labels: the two labels of a pair share the rater's opinion, so sqrt(p(1-p)/n_pairs) bounds the
standard error of the per-label rate. The strong rater's checks also assert their own power: the
prediction with that parameter set to 0 lies outside the tolerance, so a rater that ignored the
parameter would fail.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.config import ConfigError
from harness.evaluation import agreement as ag
from harness.evaluation.frames import label_frame
from harness.evaluation.reports import agreement_report
from harness.records import ANNOTATOR_KINDS, Annotator, Label, Pair
from harness.verifiable import compose, words
from judges.base import label_and_store
from judges.registry import CONFIG_DIR, JUDGE_KINDS, load_judge, read_judge_config
from judges.simulated import RATES, SimulatedRater, build_simulated_judge, parse_config

N_PROMPTS = 50
PER_GROUP = {"eq": 300, "long_win": 200, "long_lose": 200, "tie": 200}
DATASET = "vf-sim"
STRONG = {"flip_rate": 0.2, "position_bias": 0.3, "length_bias": 0.4, "tie_rate": 0.7, "seed": 5}


# -- the tiny task and the pairs ------------------------------------------------------------------
def _prompt(i: int) -> dict:
    base = f"Describe garden bed number {i}."
    cons = [{"type": "include_keyword", "word": f"kw{i}"}]
    return {"id": f"vf-{i}", "base": base, "constraints": cons, "topic": ["garden"], "prompt": compose(base, cons)}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tinyvf")
    (d / "task.yaml").write_text("name: tinyvf\ndescription: tiny verifiable task for tests\n"
                                 "data:\n  prompts: prompts.jsonl\n")
    (d / "prompts.jsonl").write_text("".join(json.dumps(_prompt(i)) + "\n" for i in range(N_PROMPTS)))
    return d


def _text(i: int, j: int, n_words: int, keyword: bool, tag: str) -> str:
    """An on-topic response of exactly n_words words; with the prompt's keyword or without it."""
    head = ["garden", f"kw{i}" if keyword else "plants", f"{tag}{j}"]
    return " ".join(head + [f"f{k}" for k in range(n_words - len(head))]) + "."


def make_pairs() -> dict[str, list[Pair]]:
    """eq: gold decided, equal lengths; long_win / long_lose: the longer response is the gold
    winner / loser; tie: both meet the constraint, equal lengths. Gold winner on side A or B alternately."""
    out = {}
    for g, n in PER_GROUP.items():
        pairs = []
        for j in range(n):
            i = j % N_PROMPTS
            lw, ll = {"eq": (8, 8), "long_win": (14, 8), "long_lose": (8, 14), "tie": (9, 9)}[g]
            win = _text(i, j, lw, True, f"{g}w")
            lose = _text(i, j, ll, g == "tie", f"{g}l")
            a, b = (win, lose) if j % 2 == 0 else (lose, win)
            pairs.append(Pair(prompt=_prompt(i)["prompt"], response_a=a, response_b=b, source=f"dataset:{DATASET}",
                              dataset=DATASET, meta={"group": g}))
        out[g] = pairs
    return out


@pytest.fixture(scope="module")
def pairs() -> dict[str, list[Pair]]:
    return make_pairs()


def rater(task_dir: Path, name: str = "sim-test", **params) -> SimulatedRater:
    return build_simulated_judge(name, {"task": str(task_dir), **params}, Path(f"{name}.yaml"))


def shipped(task_dir: Path, name: str) -> SimulatedRater:
    path = CONFIG_DIR / f"{name}.yaml"
    data = read_judge_config(path)
    assert data.pop("kind") == "simulated_human"
    data["task"] = str(task_dir)  # tasks/verifiable may not exist yet: the same rates on the tmp task
    return build_simulated_judge(name, data, path)


# -- the statistics of the module docstring ---------------------------------------------------------
def predicted(params: dict) -> dict[str, float]:
    p, l, f, t = (params.get(k, 0.0) for k in ("position_bias", "length_bias", "flip_rate", "tie_rate"))
    return {"first_eq": (1 + p) / 2, "err_eq": p / 2 + (1 - p) * f,
            "longer_win": p / 2 + (1 - p) * (l + (1 - l) * (1 - f)),
            "longer_lose": p / 2 + (1 - p) * (l + (1 - l) * f),
            "tie_tie": (1 - p) * t, "first_tie": p + (1 - p) * (1 - t) / 2}


def measured(r: SimulatedRater, pairs: dict[str, list[Pair]]) -> dict[str, tuple[float, int]]:
    """(rate over the per-order labels, n pairs) of each statistic, from the labels and the known gold."""
    def labels(g):
        out = []
        for p, labs in zip(pairs[g], r.judge(pairs[g], ("AB", "BA"))):
            gold = json.loads(labs[0].raw_output)["gold"]
            assert gold in ("A", "B", "tie")
            na, nb = len(words(p.response_a)), len(words(p.response_b))
            for lab in labs:
                first = "A" if lab.shown_order == "AB" else "B"
                out.append((lab.verdict, gold, first, None if na == nb else ("A" if na > nb else "B")))
        return out

    def rate(rows, hit):  # two labels (orders) per pair
        return (sum(map(hit, rows)) / len(rows), len(rows) // 2)

    eq, lw, ll, tie = (labels(g) for g in ("eq", "long_win", "long_lose", "tie"))
    return {"first_eq": rate(eq, lambda x: x[0] == x[2]), "err_eq": rate(eq, lambda x: x[0] != x[1]),
            "longer_win": rate(lw, lambda x: x[0] == x[3]), "longer_lose": rate(ll, lambda x: x[0] == x[3]),
            "tie_tie": rate(tie, lambda x: x[0] == "tie"), "first_tie": rate(tie, lambda x: x[0] == x[2])}


def tol(p: float, n_pairs: int) -> float:
    return 4 * math.sqrt(max(p * (1 - p), 0.25 / n_pairs) / n_pairs)


# which parameter each statistic is meant to detect (the power check zeroes it)
# (longer_win is checked but detects little: there the bias mostly agrees with gold)
DETECTS = {"first_eq": "position_bias", "err_eq": "flip_rate", "longer_lose": "length_bias", "tie_tie": "tie_rate"}


def test_groups_have_the_gold_and_lengths_they_claim(task_dir, pairs):
    gold = rater(task_dir).gold
    for g, ps in pairs.items():
        verdicts = [labs[0].verdict for labs in gold.judge(ps)]
        assert set(verdicts) == ({"tie"} if g == "tie" else {"A", "B"}), g
        assert len({p.pair_id for p in ps}) == len(ps)


def test_strong_rater_matches_every_parameter_and_each_check_has_power(task_dir, pairs):
    r = rater(task_dir, **STRONG)
    m, exp = measured(r, pairs), predicted(STRONG)
    for stat, (value, n) in m.items():
        assert abs(value - exp[stat]) <= tol(exp[stat], n), (stat, value, exp[stat], n)
        if stat in DETECTS:  # a rater ignoring this parameter would land outside the tolerance
            without = predicted({**STRONG, DETECTS[stat]: 0.0})[stat]
            assert abs(without - exp[stat]) > tol(exp[stat], n), (stat, "test has no power")


@pytest.mark.parametrize("name", ["sim-rater-1", "sim-rater-2", "sim-rater-3"])
def test_shipped_raters_match_their_configured_rates(task_dir, pairs, name):
    r = shipped(task_dir, name)
    params = {k: getattr(r.cfg, k) for k in RATES}
    m, exp = measured(r, pairs), predicted(params)
    report = {s: (round(v, 3), round(exp[s], 3), n) for s, (v, n) in m.items()}
    print(name, params, report)  # measured, configured, n (pytest -s shows it)
    for stat, (value, n) in m.items():
        assert abs(value - exp[stat]) <= tol(exp[stat], n), (name, stat, value, exp[stat], n)
    # agreement with gold on the decided pairs, per label, as agreement_table's acc_avg would count it
    n_dec = sum(m[s][1] for s in ("err_eq", "longer_win", "longer_lose"))
    agree = (m["err_eq"][1] * (1 - m["err_eq"][0]) + m["longer_win"][1] * m["longer_win"][0]
             + m["longer_lose"][1] * (1 - m["longer_lose"][0])) / n_dec
    exp_agree = (m["err_eq"][1] * (1 - exp["err_eq"]) + m["longer_win"][1] * exp["longer_win"]
                 + m["longer_lose"][1] * (1 - exp["longer_lose"])) / n_dec
    assert abs(agree - exp_agree) <= tol(exp_agree, n_dec)
    assert 0.6 <= exp_agree <= 0.85  # the human range the configs were chosen for (their comments)


def test_the_three_raters_differ_as_documented():
    cfgs = {n: parse_config({k: v for k, v in read_judge_config(CONFIG_DIR / f"{n}.yaml").items() if k != "kind"},
                            CONFIG_DIR / f"{n}.yaml") for n in ("sim-rater-1", "sim-rater-2", "sim-rater-3")}
    c1, c2, c3 = cfgs.values()
    assert c1.flip_rate < min(c2.flip_rate, c3.flip_rate)              # low noise
    assert c2.length_bias == max(c.length_bias for c in cfgs.values())  # length-biased
    assert c3.position_bias == max(c.position_bias for c in cfgs.values())  # position-biased
    for c in cfgs.values():  # the plausible human ranges of the YAML comments
        assert 0.2 <= c.flip_rate <= 0.25 and c.position_bias <= 0.075 and c.length_bias <= 0.27
        assert c.task == "verifiable" and c.both_orders


# -- determinism, versions, config errors ----------------------------------------------------------
def test_labels_are_deterministic_and_seeded(task_dir, pairs):
    ps = pairs["eq"][:100] + pairs["tie"][:100]
    v = lambda r: [l.verdict for labs in r.judge(ps, ("AB", "BA")) for l in labs]
    first = v(rater(task_dir, **STRONG))
    assert v(rater(task_dir, **STRONG)) == first                       # a new instance, same answers
    assert v(rater(task_dir, **{**STRONG, "seed": 6})) != first          # another seed, other draws
    assert v(rater(task_dir, name="other", **STRONG)) != first           # another rater id, other draws
    # the same uniforms for the other parameters: more flips only ever change gold answers to flips
    low, high = (rater(task_dir, flip_rate=x).judge(pairs["eq"], ("AB",)) for x in (0.1, 0.3))
    assert all(a[0].verdict == b[0].verdict or json.loads(a[0].raw_output)["by"] == "gold" for a, b in zip(low, high))


def test_orders_disagree_only_through_position_bias(task_dir, pairs):
    r = rater(task_dir, **STRONG)
    p = STRONG["position_bias"]
    for group, expected in (("eq", p), ("long_lose", p), ("tie", None)):
        labs = r.judge(pairs[group], ("AB", "BA"))
        if expected is None:  # the opinion is a tie with prob (1-p) t, else a side; P(disagree) mixes both
            t = STRONG["tie_rate"]
            expected = t * p * (2 - p) + (1 - t) * p
        rate = sum(a.verdict != b.verdict for a, b in labs) / len(labs)
        assert abs(rate - expected) <= tol(expected, len(labs)), (group, rate, expected)
    assert all(a.verdict == b.verdict for a, b in rater(task_dir, flip_rate=0.3, length_bias=0.4).judge(
        pairs["long_lose"], ("AB", "BA")))  # no position bias: the two orders always agree


def test_annotator_kind_id_version_and_cache(task_dir, pairs, store):
    r = rater(task_dir, **STRONG)
    assert (r.annotator.kind, r.annotator.id, r.orders) == ("simulated-human", "sim-test", ("AB", "BA"))
    assert r.annotator.version != rater(task_dir, **{**STRONG, "flip_rate": 0.21}).annotator.version
    assert r.annotator.config["gold"] == "tinyvf:gold" and not r.annotator.id.endswith(":gold")
    first = label_and_store(r, pairs["eq"][:20], store)
    again = label_and_store(rater(task_dir, **STRONG), pairs["eq"][:20], store)
    assert all(l.cached for j in again for l in j.labels)
    assert [j.verdict for j in again] == [j.verdict for j in first]
    assert all(l.p_a is None for j in first for l in j.labels)            # a vote, like the gold rule


def test_registry_loads_a_simulated_human_yaml(task_dir, tmp_path):
    assert JUDGE_KINDS["simulated_human"][1:] == ("judges.simulated", "build_simulated_judge")
    path = tmp_path / "my-rater.yaml"
    path.write_text(f"kind: simulated_human\ntask: {task_dir}\nflip_rate: 0.1\nboth_orders: false\n")
    j = load_judge(str(path))
    assert isinstance(j, SimulatedRater) and j.annotator.id == "my-rater" and j.orders == ("AB",)
    assert j.cfg.flip_rate == 0.1 and j.cfg.position_bias == 0.0


@pytest.mark.parametrize("body, field", [
    ("flip_rate: 0.2\nflip_rat: 0.3\n", "flip_rat"),        # unknown key
    ("flip_rate: 1.5\n", "flip_rate"),                       # not a probability
    ("position_bias: -0.1\n", "position_bias"),
    ("length_bias: lots\n", "length_bias"),                  # not a number
    ("seed: 1.5\n", "seed"),
])
def test_invalid_config_names_file_and_field(task_dir, tmp_path, body, field):
    path = tmp_path / "bad-rater.yaml"
    path.write_text(f"kind: simulated_human\ntask: {task_dir}\n{body}")
    with pytest.raises(ConfigError) as e:
        load_judge(str(path))
    assert str(path) in str(e.value) and field in str(e.value)


def test_a_task_without_constraints_fails_naming_the_file(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "task.yaml").write_text("name: plain\ndata:\n  prompts: prompts.jsonl\n")
    (d / "prompts.jsonl").write_text(json.dumps({"prompt": "Say hi."}) + "\n")
    path = tmp_path / "r.yaml"
    path.write_text(f"kind: simulated_human\ntask: {d}\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: task: .*not verifiable"):
        load_judge(str(path))


# -- kinds never mix ------------------------------------------------------------------------------
HUMANS = 3
N_HUMAN_PAIRS = 60


def _human_file(tmp_path: Path, ps: list[Pair]) -> Path:
    """Three real-looking human annotators on the first pairs, through the generic importer."""
    rng = np.random.default_rng(0)
    rows = []
    for p in ps[:N_HUMAN_PAIRS]:
        for h in range(HUMANS):
            rows.append({"prompt": p.prompt, "response_a": p.response_a, "response_b": p.response_b,
                         "label": str(rng.choice(["A", "B", "tie"], p=[0.45, 0.45, 0.1])),
                         "annotator": f"crowd:{h}", "dataset": DATASET})
    path = tmp_path / "humans.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def mixed(task_dir, pairs, store, tmp_path):
    """A store with gold labels, three simulated raters and three human annotators on the same pairs."""
    from judges.importers import import_labels

    ps = [p for g in ("eq", "long_win", "long_lose", "tie") for p in pairs[g]]
    import_labels(store, "generic", _human_file(tmp_path, ps))
    raters = [shipped(task_dir, f"sim-rater-{k}") for k in (1, 2, 3)]
    for r in raters:
        label_and_store(r, ps, store)
    label_and_store(raters[0].gold, ps, store)
    return store, ps, raters


def test_human_majority_and_ceiling_ignore_simulated_raters(mixed):
    store, ps, raters = mixed
    frame = label_frame(store, dataset=DATASET)
    assert set(frame["kind"]) == {"human", "simulated-human", "rule"}
    humans_only = frame[frame["kind"] != "simulated-human"]
    with_sim = agreement_report(frame, "human-majority", n_boot=50)
    without = agreement_report(humans_only, "human-majority", n_boot=50)
    rel = with_sim["human_reliability"]
    assert rel["n_humans"].tolist() == [HUMANS] and rel["n_items"].tolist() == [N_HUMAN_PAIRS]
    assert rel["ceiling"].tolist() == without["human_reliability"]["ceiling"].tolist()
    agr = with_sim["agreement"].set_index("annotator")
    for r in raters:  # scored against the humans like any non-human annotator
        assert agr.loc[r.annotator.id, "reference_used"] == ag.REF_HUMAN_MAJORITY
    cols = ["n", "agreement", "kappa", "reference_used"]
    hum = [f"crowd:{h}" for h in range(HUMANS)]
    assert agr.loc[hum, cols].equals(without["agreement"].set_index("annotator").loc[hum, cols])
    loo = with_sim["loo"].set_index("annotator")
    assert loo.loc[hum, "loo_agreement"].tolist() == without["loo"].set_index("annotator").loc[hum, "loo_agreement"].tolist()
    assert set(with_sim["pairwise_kappa"][["annotator_1", "annotator_2"]].stack()) == set(hum)


def _combined_dist(r: SimulatedRater, p: Pair) -> dict[str, float]:
    """Exact distribution of a rater's combined verdict on one pair under the documented model: an
    opinion drawn once per pair, the position pull per order, orders that disagree combine to a tie."""
    c = r.cfg
    gold = r.gold.judge([p])[0][0].verdict
    na, nb = len(words(p.response_a)), len(words(p.response_b))
    opinion = {"A": 0.0, "B": 0.0, "tie": 0.0}
    rest = 1.0
    if na != nb:
        opinion["A" if na > nb else "B"] += c.length_bias
        rest = 1 - c.length_bias
    if gold == "tie":
        opinion["tie"] += rest * c.tie_rate
        opinion["A"] += rest * (1 - c.tie_rate) / 2
        opinion["B"] += rest * (1 - c.tie_rate) / 2
    else:
        opinion[gold] += rest * (1 - c.flip_rate)
        opinion["B" if gold == "A" else "A"] += rest * c.flip_rate
    q = c.position_bias
    # AB shows A first, BA shows B first: an opinion A survives a position pull in AB, B one in BA
    out = {"A": opinion["A"] * (1 - q), "B": opinion["B"] * (1 - q), "tie": opinion["tie"] * (1 - q) ** 2}
    out["tie"] += 1 - sum(out.values())
    return out


def _loo_credit(v: str, others: list[str]) -> float:
    counts = {k: others.count(k) for k in ("A", "B", "tie")}
    top = max(counts.values())
    modes = [k for k, n in counts.items() if n == top]
    return (v in modes) / len(modes)


def test_simulated_ceiling_is_computed_among_simulated_raters_only(mixed):
    store, ps, raters = mixed
    frame = label_frame(store, dataset=DATASET)
    sim = ag.human_reliability(frame, n_boot=50, kinds=("simulated-human",))
    assert sim["n_humans"].tolist() == [3] and sim["n_items"].tolist() == [len(ps)]
    pk = ag.pairwise_kappa(frame, kinds=("simulated-human",))
    assert set(pk[["annotator_1", "annotator_2"]].stack()) == {r.annotator.id for r in raters} and len(pk) == 3
    loo = ag.human_loo_agreement(frame, n_boot=50, kinds=("simulated-human",)).set_index("annotator")
    assert {r.annotator.id for r in raters} <= set(loo.index) and "tinyvf:gold" in loo.index
    # the exact expectation of the leave-one-out ceiling under the documented model, item by item
    means, variances = [], []
    for p in ps:
        dists = [_combined_dist(r, p) for r in raters]
        e = e2 = 0.0
        for vs in itertools.product(("A", "B", "tie"), repeat=3):
            prob = math.prod(d[v] for d, v in zip(dists, vs))
            credit = sum(_loo_credit(v, [w for k, w in enumerate(vs) if k != i]) for i, v in enumerate(vs)) / 3
            e, e2 = e + prob * credit, e2 + prob * credit ** 2
        means.append(e)
        variances.append(e2 - e ** 2)
    expected, se = float(np.mean(means)), math.sqrt(sum(variances)) / len(ps)
    ceiling = float(sim["ceiling"].iloc[0])
    print(f"simulated ceiling {ceiling:.3f} (95% CI {sim['ceiling_ci_low'].iloc[0]:.3f}-"
          f"{sim['ceiling_ci_high'].iloc[0]:.3f}, n={len(ps)} items), expected {expected:.3f} +- {se:.3f}")
    assert abs(ceiling - expected) <= 4 * se
    # the default stays the human panel: 3 humans on their 60 pairs
    assert ag.human_reliability(frame, n_boot=50)["n_humans"].tolist() == [HUMANS]


def test_dashboard_filters_treat_simulated_human_as_its_own_kind(mixed):
    from dashboards import queries as Q

    store, ps, raters = mixed
    assert "simulated-human" in Q.KINDS and set(Q.KINDS) == set(ANNOTATOR_KINDS)
    count = lambda **kw: store.count_pairs(Q.PairFilter(**kw))
    assert count(kind="simulated-human") == len(ps)
    assert count(kind="human") == N_HUMAN_PAIRS
    assert count(kind="rule") == len(ps)
    with pytest.raises(ValueError):
        store.count_pairs(Q.PairFilter(kind="humans"))
    # the label page's "disagree" source: only AI annotators count, and the simulated raters (who
    # disagree with themselves across orders by design) are not AI annotators; the gold rule alone
    # never disagrees, so nothing is queued
    flt = Q.source_filter("disagree", "human:someone")
    assert store.count_pairs(flt) == 0
    # a second AI annotator that disagrees with gold on one pair queues exactly that pair
    other = Annotator("rule", "rule:other", "1")
    store.add_labels([Label(pair_id=ps[0].pair_id, annotator=other,
                            verdict="B" if raters[0].gold.judge([ps[0]])[0][0].verdict == "A" else "A")])
    assert store.count_pairs(flt) == 1


def test_generic_import_never_produces_simulated_human(tmp_path, store):
    from judges.importers import import_labels
    from judges.importers.common import LabelImportError

    row = {"prompt": "p", "response_a": "a", "response_b": "b", "label": "A"}
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(row) + "\n")
    rep = import_labels(store, "generic", path)
    assert [a["kind"] for a in rep["annotators"]] == ["human"]         # the default stays human
    bad = tmp_path / "sim.jsonl"
    bad.write_text(json.dumps({**row, "annotator_kind": "simulated-human"}) + "\n")
    with pytest.raises(LabelImportError, match="annotator_kind.*not imported"):
        import_labels(store, "generic", bad)
    assert set(store.query_df("SELECT DISTINCT annotator_kind FROM labels")["annotator_kind"]) == {"human"}


def test_a_simulated_rater_takes_no_instruction_and_no_mode():
    """Refused where every non-LLM config kind is (registry.load_judge), naming the file."""
    from harness.config import ConfigError, JudgeRef
    from judges.registry import load_judge

    with pytest.raises(ConfigError, match=r"sim-rater-1.yaml: a simulated_human judge takes no instruction"):
        load_judge(JudgeRef(name="sim-rater-1", instruction="prefer the shorter response"))
    with pytest.raises(ConfigError, match="has no mode"):
        load_judge(JudgeRef(name="sim-rater-1", mode="generate"))
    assert load_judge(JudgeRef(name="sim-rater-1", both_orders=False)).orders == ("AB",)


def test_oaif_gold_metrics_count_agreement_with_gold(task_dir, pairs):
    """OAIF on a verifiable task logs the annotator's agreement with gold per step (counts that sum
    over steps to a Wilson CI): a rater with no noise agrees on every decided pair, gold's ties are
    not counted, and a tie by the annotator on a decided pair counts as wrong."""
    from harness.algorithms.oaif import gold_metrics
    from harness.records import Judgement
    from judges.gold import make_gold_judge

    gold = make_gold_judge(str(task_dir))
    sample = pairs["eq"][:10] + pairs["tie"][:4]
    truth = [labs[0].verdict for labs in gold.judge(sample)]
    assert truth[:10].count("tie") == 0 and truth[10:] == ["tie"] * 4
    perfect = [Judgement(pair=p, verdict=t, p_a=None, labels=[]) for p, t in zip(sample, truth)]
    m = gold_metrics(gold, perfect)
    assert (m["judge/gold_decided"], m["judge/gold_agree"], m["judge/gold_accuracy"]) == (10.0, 10.0, 1.0)
    # flip 3 decided verdicts, tie 2 more: 5 of 10 right
    wrong = {0: "flip", 1: "flip", 2: "flip", 3: "tie", 4: "tie"}
    mixed = [Judgement(pair=p, verdict=({"A": "B", "B": "A"}[t] if wrong.get(i) == "flip" else
                                        "tie" if wrong.get(i) == "tie" else t), p_a=None, labels=[])
             for i, (p, t) in enumerate(zip(sample, truth))]
    m = gold_metrics(gold, mixed)
    assert (m["judge/gold_decided"], m["judge/gold_agree"], m["judge/gold_accuracy"]) == (10.0, 5.0, 0.5)
    assert gold_metrics(None, mixed) == {}


def test_a_simulated_rater_gets_no_pandalm_card_but_the_reason(task_dir):
    """PandaLM/LLMBar pairs are not a simulated rater's prompts (every label would be unparsed): the
    OAIF gate and `harness eval` print why, instead of an all-n/a card that stops training."""
    from harness.evaluation.gold_eval import task_card
    from harness.evaluation.validity import card_line
    from judges.gold import make_gold_judge

    card, line = task_card(rater(task_dir, flip_rate=0.1))
    assert card["simulated"] and card["annotator_kind"] == "simulated-human"
    assert "simulated rater of task" in line and "accuracy against gold" in line and card_line(card) == line
    gold_card, _ = task_card(make_gold_judge(str(task_dir)))
    assert gold_card["gold"] and "truth by construction" in card_line(gold_card)
