"""The demo's summary as rows and sentences: each arm vs the initial policy, head-to-head between
arms, which contrasts the CIs resolve, and which judges to distrust (docs/validity.md). Shared by
`harness demo`, its stored `demo_summary` result and the tests."""
from __future__ import annotations


def summary_rows(arms: dict, evals: dict, kls: dict | None = None) -> list[dict]:
    """One row per arm: its training, and its win rate vs the initial policy with n, W/T/L, CI, verdict."""
    from .verdicts import ci_text, lc_text, verdict_line, wtl

    rows = []
    for arm, info in arms.items():
        ev = evals.get(arm)
        final = info["final"]
        row = {"arm": arm, "run_id": info["run_id"], "annotator": info["annotator"],
               "train_s": round(info["seconds"]), "final_loss": final.get("loss")}
        kl = (kls or {}).get(arm) or {}
        if "kl_nats_per_seq" in kl:
            row["kl_nats_per_seq"] = kl["kl_nats_per_seq"]
            row["kl_ci95"] = ci_text(kl.get("ci_low"), kl.get("ci_high"))
        if ev:
            row.update({"n": ev["n"], "w/t/l": wtl(ev), "identical": ev.get("n_identical"),
                        "win_rate": ev["win_rate"], "ci95": ci_text(ev["ci_low"], ev["ci_high"]),
                        "lc_win_rate (ci95)": lc_text(ev), "chars_policy": ev.get("mean_chars_policy"),
                        "chars_initial": ev.get("mean_chars_baseline"),
                        "verdict": f"{arm}: " + verdict_line(ev, "the initial policy")})
        rows.append(row)
    return rows


def head_to_head_rows(h2h: dict, names: dict[str, str]) -> list[dict]:
    """Rows of the head-to-head table, policies named by arm."""
    from .verdicts import ci_text, lc_text, verdict_line, wtl

    out = []
    for r in h2h["rows"]:
        a, b = names.get(r["policy"], r["policy"]), names.get(r["baseline"], r["baseline"])
        out.append({"arm_a": a, "arm_b": b, "n": r["n"], "w/t/l (a)": wtl(r), "identical": r["n_identical"],
                    "win_rate_a": r["win_rate"], "ci95": ci_text(r["ci_low"], r["ci_high"]),
                    "lc_win_rate_a (ci95)": lc_text(r), "verdict": f"{a}: " + verdict_line(r, b)})
    return out


def findings(rows: list[dict], h2h_rows: list[dict] | None, cards: dict[str, dict], min_consistency: float = 0.5,
             evals: dict | None = None, reward_model: dict | None = None) -> list[str]:
    """The summary in words: which contrasts the CIs resolve, which not, and which judges to distrust."""
    from .validity import wilson
    resolved = [r["verdict"] for r in rows + (h2h_rows or []) if r.get("verdict") and "not distinguishable" not in r["verdict"]]
    unresolved = [r["verdict"].split(":")[0] + (f" vs {r['arm_b']}" if "arm_b" in r else " vs initial")
                  for r in rows + (h2h_rows or []) if r.get("verdict") and "not distinguishable" in r["verdict"]]
    out = [f"resolved (95% CI excludes 0.5): {len(resolved)} contrast(s)" + ("" if resolved else "; none")]
    out += [f"  {v}" for v in resolved]
    out.append(f"not resolved (CI contains 0.5): {', '.join(unresolved) if unresolved else 'none'}")
    judged = [(e.get("consistency"), e["n"] - (e.get("n_identical") or 0)) for e in (evals or {}).values()]
    judged = [(c, n) for c, n in judged if n and c is not None and c == c]
    for who, card in cards.items():
        pc = (card or {}).get("position_consistency") or {}
        if pc.get("value") is None and who.startswith("evaluation judge") and judged:
            k, n = round(sum(c * n for c, n in judged)), sum(n for _, n in judged)
            lo, hi = wilson(k, n)
            out.append(f"{who}: not measured on human-labelled pairs ({'; '.join(dict.fromkeys((card or {}).get('skipped', {}).values())) or 'n=0'}); "
                       f"on this demo's eval pairs both orders agreed on {k}/{n} (95% CI [{lo:.2f}, {hi:.2f}]); its "
                       "agreement with humans on this task is unknown")
        elif pc.get("value") is None:
            out.append(f"{who}: position consistency not measured (n=0): its verdicts are unchecked")
        elif pc["value"] < min_consistency:
            out.append(f"{who}: position consistency {pc['value']:.2f} (n={pc['n']}, 95% CI [{pc['ci_low']:.2f}, "
                       f"{pc['ci_high']:.2f}]) is below {min_consistency}: its labels follow the order shown, not the "
                       "content, so what was trained on them is not evidence about AI feedback")
    if reward_model and reward_model.get("eval/n_pairs"):
        n, k = int(reward_model["eval/n_pairs"]), int(reward_model.get("eval/n_correct", 0))
        lo, hi = wilson(k, n)
        out.append(f"RLAIF reward model: held-out accuracy {k}/{n} (95% CI [{lo:.2f}, {hi:.2f}]) on the annotator's "
                   "own soft labels: RLOO optimised a reward that is not known to track quality")
    return out


def agreement_columns(columns) -> list[str]:
    """Agreement-table columns to print: every figure with its n and CI columns where present."""
    wanted = ("annotator", "reference", "n", "agreement", "agreement_ci_low", "agreement_ci_high", "n_no_ties",
              "agreement_no_ties", "agreement_no_ties_ci_low", "agreement_no_ties_ci_high", "kappa",
              "kappa_ci_low", "kappa_ci_high", "p_first", "p_longer")
    return [c for c in wanted if c in columns]
