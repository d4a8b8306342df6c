"""MT-Bench's vote-pair agreement (issue #34 item 2): a hand-worked example, and FastChat's
fastchat/llm_judge/compute_agreement.py on a synthetic MT-Bench vote file (its definition restated
below as the reference, and FastChat's own module where fschat is importable)."""
from __future__ import annotations

import json
import random
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from harness.evaluation.agreement_defs import DEFINITIONS, definitions_table
from harness.evaluation.comparisons import add_features, canonical
from harness.evaluation.frames import label_frame
from harness.evaluation.vote_pairs import vote_pair_agreement, vote_pair_tables
from judges.importers import import_labels


def _label(i, item, ann, kind, verdict, pa, pb, subset="turn1", order="AB", prompt="q1"):
    return {"label_id": i, "item": item, "annotator": ann, "kind": kind, "verdict": verdict, "shown_order": order,
            "policy_a": pa, "policy_b": pb, "dataset": "mt", "subset": subset, "prompt_key": prompt,
            "order_known": False, "len_a": 10, "len_b": 20}


def hand_frame() -> pd.DataFrame:
    """C1 = (q1, m1 vs m2, turn1), C2 = (q2, m1 vs m3, turn1); some records list the models swapped."""
    rows = [
        # C1: GPT-4 saw (m2, m1) and chose model_b = m1
        _label(1, "c1-swapped", "mt:gpt-4/pair-v2", "llm", "B", "m2", "m1"),
        _label(2, "c1", "mt:expert_1", "human", "A", "m1", "m2"),           # m1
        _label(3, "c1", "mt:expert_2", "human", "tie", "m1", "m2"),
        _label(4, "c1-swapped", "mt:expert_3", "human", "A", "m2", "m1"),   # m2
        _label(5, "c1", "mt:author_0", "human", "A", "m1", "m2"),           # m1, not an expert
        # C2: GPT-4 tie; expert_1 tie, expert_2 m3
        _label(6, "c2", "mt:gpt-4/pair-v2", "llm", "tie", "m1", "m3", prompt="q2"),
        _label(7, "c2", "mt:expert_1", "human", "tie", "m1", "m3", prompt="q2"),
        _label(8, "c2", "mt:expert_2", "human", "B", "m1", "m3", prompt="q2"),
    ]
    return pd.DataFrame(rows)


def _row(t, judge, setup, subset="turn1"):
    r = t[(t["judge_1"] == judge) & (t["setup"] == setup) & (t["subset"] == subset)]
    assert len(r) == 1, r
    return r.iloc[0]


def test_canonical_turns_swapped_records_into_one_comparison():
    f = canonical(hand_frame())
    c1 = f[f["prompt_key"] == "q1"]
    assert c1["item"].nunique() == 1
    # the comparison keeps its first label's order (GPT-4's, m2 first); the others are turned around
    assert set(zip(c1["policy_a"], c1["policy_b"])) == {("m2", "m1")}
    e1 = c1[c1["annotator"] == "mt:expert_1"].iloc[0]
    assert (e1["verdict"], e1["shown_order"], e1["len_a"], e1["len_b"], e1["flipped"]) == ("B", "BA", 20, 10, True)
    assert c1.loc[c1["annotator"] == "mt:gpt-4/pair-v2", "verdict"].item() == "B"
    assert c1.loc[c1["annotator"] == "mt:expert_3", "verdict"].item() == "A"  # listed (m2, m1) already
    assert c1.loc[c1["annotator"] == "mt:expert_2", "verdict"].item() == "tie"


def test_hand_worked_example_experts_only():
    t = vote_pair_agreement(hand_frame(), experts_only=True, n_boot=200)
    # GPT-4 vs experts, S1: C1 (m1 vs m1, tie, m2) 1/3; C2 (tie vs tie, m3) 1/2 -> 2/5
    g1 = _row(t, "mt:gpt-4/pair-v2", "S1 (with ties)")
    assert (g1["agree"], g1["n"], g1["n_comparisons"]) == (2, 5, 2)
    assert g1["agreement"] == pytest.approx(0.4)
    # S2: C1 without the tie vote: (m1, m1), (m1, m2) -> 1/2; C2: GPT-4 says tie -> nothing
    g2 = _row(t, "mt:gpt-4/pair-v2", "S2 (without ties)")
    assert (g2["agree"], g2["n"], g2["n_comparisons"]) == (1, 2, 1)
    # experts with each other, S1: C1 three pairs none equal, C2 (tie, m3) -> 0/4; S2: C1 (m1, m2) -> 0/1
    h1, h2 = _row(t, "human vs human", "S1 (with ties)"), _row(t, "human vs human", "S2 (without ties)")
    assert (h1["agree"], h1["n"], h2["agree"], h2["n"]) == (0, 4, 0, 1)
    assert set(t["humans"]) == {"expert_*"}
    assert g1["ci_low"] <= g1["agreement"] <= g1["ci_high"]


def test_hand_worked_example_all_humans_and_both_panels():
    t = vote_pair_agreement(hand_frame(), experts_only=False, n_boot=0)
    # author_0 (m1 on C1) joins: GPT-4 S1 3/6, humans S1: C1 has 4 votes m1, tie, m2, m1 -> 1 of 6 pairs
    assert tuple(_row(t, "mt:gpt-4/pair-v2", "S1 (with ties)")[["agree", "n"]]) == (3, 6)
    assert tuple(_row(t, "human vs human", "S1 (with ties)")[["agree", "n"]]) == (1, 7)
    both = vote_pair_tables(hand_frame(), n_boot=0)
    assert set(both["humans"]) == {"human", "expert_*"}
    # one subset only: its '(all)' is not added, the subset is reported as it is
    assert set(both["subset"]) == {"turn1"}


def test_no_row_without_vote_pairs():
    one_vote = hand_frame()
    one_vote = one_vote[~one_vote["annotator"].isin(["mt:expert_2", "mt:expert_3", "mt:author_0"])]
    t = vote_pair_agreement(one_vote, n_boot=0)  # expert_1 alone: no human-human pair, GPT-4 vs expert_1 only
    assert set(t["judge_1"]) == {"mt:gpt-4/pair-v2"} and (t["n"] > 0).all()
    assert tuple(_row(t, "mt:gpt-4/pair-v2", "S1 (with ties)")[["agree", "n"]]) == (2, 2)


def test_unparsed_options():
    f = hand_frame()
    f.loc[f["label_id"] == 6, "verdict"] = "unparsed"
    wrong = vote_pair_agreement(f, "wrong", experts_only=True, n_boot=0)
    # C2: unparsed against tie and m3 -> two disagreeing pairs in S1 and the m3 one in S2
    assert tuple(_row(wrong, "mt:gpt-4/pair-v2", "S1 (with ties)")[["agree", "n"]]) == (1, 5)
    assert tuple(_row(wrong, "mt:gpt-4/pair-v2", "S2 (without ties)")[["agree", "n"]]) == (1, 3)
    drop = vote_pair_agreement(f, "drop", experts_only=True, n_boot=0)
    assert tuple(_row(drop, "mt:gpt-4/pair-v2", "S1 (with ties)")[["agree", "n"]]) == (1, 3)


# -- FastChat's definition on a synthetic vote file ----------------------------------------------------

MODELS = ["alpaca-13b", "gpt-3.5-turbo", "gpt-4", "llama-13b", "vicuna-13b"]


def synthetic_votes(seed=0, n_questions=12):
    """MT-Bench-format records: GPT-4 votes once per judged comparison (as FastChat asserts), experts
    and authors 0-3 times, models listed in either order, winners incl. 'tie (bothbad)'."""
    rng = random.Random(seed)
    human, gpt4 = [], []
    for q in range(81, 81 + n_questions):
        users = [f"question {q} turn 1", f"question {q} turn 2"]
        for ma, mb in combinations(MODELS, 2):
            for turn in (1, 2):
                if rng.random() < 0.35:
                    continue

                def rec(judge):
                    a, b = (ma, mb) if rng.random() < 0.5 else (mb, ma)
                    conv = {m: [x for t, u in enumerate(users) for x in
                                ({"role": "user", "content": u},
                                 {"role": "assistant", "content": f"{m} answers {q}.{t + 1}"})] for m in (a, b)}
                    winner = rng.choice(["model_a", "model_b", "model_a", "model_b", "tie", "tie (bothbad)"])
                    return {"question_id": q, "model_a": a, "model_b": b, "winner": winner, "judge": judge,
                            "conversation_a": conv[a], "conversation_b": conv[b], "turn": turn}

                if rng.random() < 0.8:
                    gpt4.append(rec(["gpt-4", "pair-v2"]))
                judges = rng.sample(["expert_0", "expert_1", "expert_2", "author_0", "author_1"], rng.randint(0, 3))
                if judges and rng.random() < 0.15:
                    judges.append(judges[0])  # one judge voting twice on the comparison
                human += [rec(j) for j in judges]
    return human, gpt4


def fastchat_reference(vote_lists, judge1, judge2, turn, ban):
    """FastChat's compute_agreement.py, restated: votes keyed by (question_id, sorted models) per turn,
    a swapped vote reverted; 'expert*' judges are "human", GPT-4 pair judges "gpt4-pair"; judge vs
    human counts (judge vote, each human vote) pairs, human vs human every i < j pair of votes on a
    key; a vote containing 'tie' is banned by ban=['tie'], and two tie votes are equal."""
    def name(judge):
        if isinstance(judge, list):
            return "gpt4-pair" if judge[0] == "gpt-4" and judge[1].startswith("pair") else None
        return "human" if judge.startswith("expert") else "author" if judge.startswith("author") else None

    swap = {"model_a": "model_b", "model_b": "model_a"}
    data = {}
    for votes in vote_lists:
        for v in votes:
            if v["turn"] != turn:
                continue
            ordered = v["model_a"] < v["model_b"]
            key = (v["question_id"], *sorted((v["model_a"], v["model_b"])))
            winner = v["winner"] if ordered else swap.get(v["winner"], v["winner"])
            data.setdefault(key, {}).setdefault(name(v["judge"]), []).append(winner)
    tie = lambda x: "tie" if "tie" in x else x  # noqa: E731
    same = lambda x, y: ("tie" in x and "tie" in y) or x == y  # noqa: E731
    agree = total = 0
    for votes in data.values():
        if judge1 == "human":
            hv = votes.get("human", [])
            for i, j in combinations(range(len(hv)), 2):
                if tie(hv[i]) in ban or tie(hv[j]) in ban:
                    continue
                total += 1
                agree += same(hv[i], hv[j])
        elif judge1 in votes and judge2 in votes:
            assert len(votes[judge1]) == 1
            if tie(votes[judge1][0]) in ban:
                continue
            for h in votes[judge2]:
                if tie(h) in ban:
                    continue
                total += 1
                agree += same(votes[judge1][0], h)
    return agree, total


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from harness.store import Store

    tmp = tmp_path_factory.mktemp("votes")
    human, gpt4 = synthetic_votes()
    path = tmp / "votes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in human + gpt4))
    store = Store(tmp / "home")
    import_labels(store, "mtbench-human", path)
    labels = add_features(label_frame(store), store)
    return human, gpt4, vote_pair_agreement(labels, experts_only=True, n_boot=0), tmp / "home"


@pytest.mark.parametrize("turn", [1, 2])
@pytest.mark.parametrize("setup,ban", [("S1 (with ties)", []), ("S2 (without ties)", ["tie"])])
def test_matches_fastchat_definition_on_a_synthetic_vote_file(synthetic, turn, setup, ban):
    human, gpt4, table, _ = synthetic
    got = _row(table, "mtbench-human:gpt-4/pair-v2", setup, f"turn{turn}")
    assert (got["agree"], got["n"]) == fastchat_reference([human, gpt4], "gpt4-pair", "human", turn, ban)
    hh = _row(table, "human vs human", setup, f"turn{turn}")
    assert (hh["agree"], hh["n"]) == fastchat_reference([human], "human", "human", turn, ban)
    assert got["n"] > 20 and hh["n"] > 10  # the file exercises both


def test_pooled_subset_sums_the_turns(synthetic):
    _, _, t, _ = synthetic
    for judge in ("mtbench-human:gpt-4/pair-v2", "human vs human"):
        per_turn = sum(_row(t, judge, "S1 (with ties)", f"turn{k}")["n"] for k in (1, 2))
        assert _row(t, judge, "S1 (with ties)", "(all)")["n"] == per_turn


def test_matches_fastchats_own_module_where_installed(synthetic):
    # fschat 0.2.36 (no dependencies needed for this module); the restatement above runs everywhere
    ca = pytest.importorskip("fastchat.llm_judge.compute_agreement")
    human, gpt4, table, _ = synthetic
    data = ca.get_mt_bench_votes_data([human, gpt4])
    for turn in (1, 2):
        for setup, ban in (("S1 (with ties)", []), ("S2 (without ties)", ["tie"])):
            got = _row(table, "mtbench-human:gpt-4/pair-v2", setup, f"turn{turn}")
            assert (got["agree"], got["n"]) == ca.get_mt_bench_agreement(data[turn - 1], "gpt4-pair", "human", ban)
            hh = _row(table, "human vs human", setup, f"turn{turn}")
            hdata = ca.get_mt_bench_votes_data([human])
            assert (hh["agree"], hh["n"]) == ca.get_mt_bench_agreement(hdata[turn - 1], "human", "human", ban)


# -- the registry ----------------------------------------------------------------------------------

def test_registry_names_and_one_table():
    assert set(DEFINITIONS) == {"majority", "loo", "vote-pairs"}
    f = hand_frame()
    t = definitions_table(f, ["majority", "loo", "vote-pairs"], n_boot=50)
    assert set(t["definition"]) == {"majority", "loo", "vote-pairs"}
    for col in ("n", "agreement", "ci_low", "ci_high", "versus", "ties"):
        assert col in t.columns
    vp = t[(t["definition"] == "vote-pairs") & (t["annotator"] == "mt:gpt-4/pair-v2") & (t["humans"] == "expert_*")]
    assert sorted(vp["agreement"].round(4)) == [0.4, 0.5]
    assert set(t["versus"]) >= {"humans", "human vs human"}
    with pytest.raises(ValueError, match="unknown agreement definition"):
        definitions_table(f, ["kappa"])
    assert np.isfinite(t["n"]).all()


def test_agreement_command_prints_and_stores_vote_pairs(synthetic, capsys):
    from harness.cli import main
    from harness.store import Store

    human, gpt4, _, home = synthetic
    assert main(["--home", str(home), "agreement", "--definition", "vote-pairs", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "== agreement by definition (vote-pairs)" in out and "== annotator table (alpaca_eval" in out
    agree, total = fastchat_reference([human, gpt4], "gpt4-pair", "human", 1, [])
    line = next(ln for ln in out.splitlines() if ln.startswith("vote-pairs") and "turn1" in ln
                and "gpt-4/pair-v2" in ln and "expert_*" in ln and "S1" in ln)
    assert f" {total} " in line and f"{agree / total:.4g}" in line
    result = Store(home).results("agreement")[-1]["result"]
    assert {"vote_pairs", "definitions", "annotator_table", "triads"} <= set(result)
    assert {r["definition"] for r in result["definitions"]} == {"majority", "loo", "vote-pairs"}
    with pytest.raises(SystemExit):  # argparse: not a registered definition
        main(["--home", str(home), "agreement", "--definition", "kappa"])


def test_two_votes_listed_both_ways_are_two_votes_not_an_order_flip():
    """Where the order shown is unknown (MT-Bench human judgments), one judge's two votes on a comparison
    listed both ways are averaged as votes; the flips-with-the-order-is-a-tie rule needs a known order."""
    from harness.evaluation.items import per_item_verdicts

    rows = [_label(1, "c", "mt:expert_1", "human", "A", "m1", "m2", order="AB"),
            _label(2, "c", "mt:expert_1", "human", "tie", "m1", "m2", order="BA"),
            _label(3, "c", "mt:expert_1", "human", "A", "m1", "m2", order="BA")]
    unknown = per_item_verdicts(pd.DataFrame(rows))
    assert unknown["verdict"].tolist() == ["A"] and unknown["value"].tolist() == [pytest.approx(2.5 / 3)]
    known = per_item_verdicts(pd.DataFrame(rows).assign(order_known=True))  # a judge asked both orders
    assert known["verdict"].tolist() == ["tie"]  # v_AB = A, v_BA = tie: it flips with the order
