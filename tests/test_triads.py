"""Cyclic triads and the Bradley-Terry fit's agreement (issue #34 item 5): a hand-worked example and a
brute-force count over every ordering of every triple."""
from __future__ import annotations

from itertools import combinations, permutations

import numpy as np
import pandas as pd
import pytest

from harness.evaluation.bradley_terry import bradley_terry
from harness.evaluation.triads import is_cyclic, triad_table


def labels(votes, annotator="j", kind="llm", subset=None, start=0):
    """votes: [(prompt, winner, loser)] or (prompt, x, y, 'tie'); the listed order alternates."""
    rows = []
    for i, v in enumerate(votes):
        prompt, x, y = v[:3]
        verdict = "tie" if len(v) > 3 else "A"
        a, b = (x, y) if i % 2 == 0 else (y, x)
        if verdict == "A" and a != x:
            verdict = "B"
        rows.append({"label_id": start + i, "item": f"{prompt}:{a}:{b}", "annotator": annotator, "kind": kind,
                     "verdict": verdict, "shown_order": "AB", "policy_a": a, "policy_b": b, "dataset": "d",
                     "subset": subset, "prompt_key": prompt, "len_a": 1, "len_b": 1})
    return pd.DataFrame(rows)


def test_hand_worked_example():
    votes = [("p1", "x", "y"), ("p1", "y", "z"), ("p1", "z", "x"),      # a cycle
             ("p2", "x", "y"), ("p2", "y", "z"), ("p2", "x", "z"),      # transitive
             ("p3", "x", "y"), ("p3", "y", "z", "tie"), ("p3", "x", "z"),  # a tie
             ("p4", "x", "y"), ("p4", "y", "z")]                          # only two of three pairs
    t = triad_table(labels(votes), n_boot=200).iloc[0]
    assert (t["n_triads"], t["n_tied"], t["n_decided"], t["n_cyclic"], t["n_prompts"]) == (3, 1, 2, 1, 3)
    assert t["cyclic_rate"] == pytest.approx(0.5)
    assert 0 <= t["cyclic_ci_low"] <= 0.5 <= t["cyclic_ci_high"] <= 1
    # BT: x beats y 4 times, y beats z 3 times, z beats x once, x beats z twice -> x > y > z; the one
    # decided vote against that order is p1's z > x: 9 of 10 decided votes
    assert (t["n_bt_votes"], t["n_policies"]) == (10, 3)
    assert t["bt_agreement"] == pytest.approx(0.9)


def brute_force(edges: dict, policies) -> tuple[int, int]:
    """(decided triads, cyclic): a triad is cyclic iff no ordering of its three policies agrees with
    all three verdicts."""
    n = cyc = 0
    for tri in combinations(policies, 3):
        pairs = [(a, b) for a, b in combinations(tri, 2)]
        if not all(p in edges for p in pairs) or any(edges[p] == "tie" for p in pairs):
            continue
        n += 1
        winner = {p: (p[0] if edges[p] == "A" else p[1]) for p in pairs}
        ok = any(all(winner[p] == min(p, key=order.index) for p in pairs) for order in permutations(tri))
        cyc += not ok
    return n, cyc


def test_against_a_brute_force_count():
    rng = np.random.default_rng(0)
    policies = [f"m{k}" for k in range(6)]
    rows, total_n, total_c = [], 0, 0
    for p in range(40):
        edges = {}
        for a, b in combinations(policies, 2):
            if rng.random() < 0.8:
                edges[(a, b)] = rng.choice(["A", "B", "A", "B", "tie"])
        n, c = brute_force(edges, policies)
        total_n, total_c = total_n + n, total_c + c
        for (a, b), v in edges.items():
            if v == "tie":
                rows.append((f"q{p}", a, b, "tie"))
            else:
                rows.append((f"q{p}", a, b) if v == "A" else (f"q{p}", b, a))
    t = triad_table(labels(rows), n_boot=0).iloc[0]
    assert (t["n_decided"], t["n_cyclic"]) == (total_n, total_c)
    assert total_c > 20 and total_n > total_c  # the random tournaments have both kinds
    assert t["cyclic_rate"] == pytest.approx(total_c / total_n)


def test_is_cyclic_and_bt_agreement_against_the_fit():
    assert is_cyclic("A", "A", "B") and not is_cyclic("A", "A", "A") and is_cyclic("B", "B", "A")
    rng = np.random.default_rng(1)
    strength = {f"m{k}": k for k in range(5)}
    votes = []
    for p in range(60):
        for a, b in combinations(strength, 2):
            better = rng.random() < 1 / (1 + np.exp(strength[a] - strength[b]))
            votes.append((f"q{p}", b, a) if better else (f"q{p}", a, b))
    lab = labels(votes)
    t = triad_table(lab, n_boot=100).iloc[0]
    battles = pd.DataFrame({"model_a": [v[1] for v in votes], "model_b": [v[2] for v in votes], "winner": "A"})
    r = bradley_terry(battles, n_boot=0).set_index("model")["rating"]
    expected = np.mean([r[w] > r[loser] for _, w, loser in votes])
    assert t["bt_agreement"] == pytest.approx(expected)
    assert t["bt_ci_low"] < t["bt_agreement"] < t["bt_ci_high"]


def test_subsets_pool_without_merging_prompts_and_rows_need_policies():
    a = labels([("p1", "x", "y"), ("p1", "y", "z"), ("p1", "z", "x")], subset="s1")
    b = labels([("p1", "x", "y"), ("p1", "y", "z"), ("p1", "x", "z")], subset="s2", start=10)
    t = triad_table(pd.concat([a, b], ignore_index=True), n_boot=0).set_index("subset")
    assert t.loc["(all)", "n_triads"] == 2 and t.loc["(all)", "n_cyclic"] == 1 and t.loc["s1", "n_cyclic"] == 1
    assert triad_table(a.assign(policy_a=None), n_boot=0).empty
