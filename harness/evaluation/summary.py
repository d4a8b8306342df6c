"""The demo's summary as rows and sentences: each arm vs the initial policy, head-to-head between
arms, which contrasts the CIs resolve, and which judges to distrust (docs/validity.md). Shared by
`harness demo`, its stored `demo_summary` result and the tests."""
from __future__ import annotations


def _gold_diff(res: dict) -> dict:
    """{text column: '+m [lo, hi]', gold_diff_ci: [lo, hi]} for a gold-judged result, else {}."""
    d = (res.get("gold") or {}).get("diff")
    if not d or d.get("mean") is None or d["mean"] != d["mean"]:
        return {}
    return {"text": f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]", "gold_diff_ci": [d["ci_low"], d["ci_high"]]}


def source_label(name: str, src) -> str:
    """How a feedback source is named in every table: `<name>: <annotator>[ + 'instruction']`."""
    return f"{name}: {src.annotator}" + (f" + {src.instruction!r}" if src.instruction else "")


def arm_rows(arms: dict, evals: dict, judge: str, kls: dict | None = None) -> list[dict]:
    """One row per trained arm: its win rate vs the initial policy under `judge`, with n, W/T/L, CI,
    verdict, and for the gold judge the paired gold-score difference."""
    from .verdicts import ci_text, lc_text, verdict_line, wtl

    rows = []
    for arm, ev in evals.items():
        info = arms[arm]
        row = {"arm": arm, "judge": judge, "run_id": info["run_id"], "source": info["annotator"],
               "n": ev["n"], "w/t/l": wtl(ev), "identical": ev.get("n_identical"), "win_rate": ev["win_rate"],
               "ci95": ci_text(ev["ci_low"], ev["ci_high"]), "ci_low": ev["ci_low"], "ci_high": ev["ci_high"],
               "lc_win_rate (ci95)": lc_text(ev),
               "chars_policy": ev.get("mean_chars_policy"), "chars_initial": ev.get("mean_chars_baseline")}
        if g := _gold_diff(ev):
            row.update({"gold_diff (ci95)": g["text"], "gold_diff_ci": g["gold_diff_ci"]})
        kl = (kls or {}).get(arm) or {}
        if "kl_nats_per_seq" in kl:
            row["kl_nats_per_seq"] = kl["kl_nats_per_seq"]
            row["kl_ci95"] = ci_text(kl.get("ci_low"), kl.get("ci_high"))
        row["verdict"] = f"{arm} ({judge}): " + verdict_line(ev, "the initial policy")
        rows.append(row)
    return rows


def head_to_head_rows(h2h: dict, names: dict[str, str], judge: str = "") -> list[dict]:
    """Rows of the head-to-head table, policies named by arm."""
    from .verdicts import ci_text, lc_text, verdict_line, wtl

    out = []
    for r in h2h["rows"]:
        a, b = names.get(r["policy"], r["policy"]), names.get(r["baseline"], r["baseline"])
        row = {"arm_a": a, "arm_b": b, "judge": judge, "n": r["n"], "w/t/l (a)": wtl(r),
               "identical": r["n_identical"], "win_rate_a": r["win_rate"], "ci95": ci_text(r["ci_low"], r["ci_high"]),
               "ci_low": r["ci_low"], "ci_high": r["ci_high"],
               "lc_win_rate_a (ci95)": lc_text(r)}
        if g := _gold_diff(r):
            row.update({"gold_diff_a (ci95)": g["text"], "gold_diff_ci": g["gold_diff_ci"]})
        row["verdict"] = f"{a} ({judge}): " + verdict_line(r, b)
        out.append(row)
    return out


def _contrast_name(row: dict) -> str:
    return f"{row['arm']} vs initial" if "arm" in row else f"{row['arm_a']} vs {row['arm_b']}"


def findings(rows: list[dict], h2h_rows: list[dict], sources: list[dict], cards: dict[str, dict],
             min_consistency: float = 0.5, reward_models: dict | None = None,
             judges_vs_gold: list[dict] | None = None) -> list[str]:
    """The summary in words: which policy contrasts the CIs resolve and which not (per judge), what each
    feedback source's labels are worth against gold, and which judges to distrust."""
    from .validity import wilson

    contrasts = [r for r in rows + h2h_rows if r.get("verdict")]
    resolved = [r for r in contrasts if "excludes 0.5" in r["verdict"]]
    unresolved = [r for r in contrasts if "excludes 0.5" not in r["verdict"]]
    out = [f"policy contrasts resolved (95% CI of the win rate excludes 0.5): {len(resolved)} of {len(contrasts)}"
           + ("" if resolved else "; none at this budget")]
    gold_judge = next((r["judge"] for r in rows + h2h_rows if r.get("gold_diff_ci")), None)
    gold_verdicts = {_contrast_name(r): r["verdict"] for r in rows + h2h_rows if r.get("judge") == gold_judge}
    for r in resolved:
        g = gold_verdicts.get(_contrast_name(r)) if r["judge"] != gold_judge else None
        note = "" if g is None else (" (gold agrees)" if "excludes 0.5" in g else
                                     f" (NOT confirmed by gold: {g.split(': ', 1)[1]})")
        out.append(f"  {r['verdict']}{note}")
    by_judge = {}
    for r in unresolved:
        by_judge.setdefault(r["judge"], []).append(_contrast_name(r))
    for judge, names in by_judge.items():
        out.append(f"not resolved by {judge} (CI contains 0.5): {', '.join(names)}")
    for r in rows + h2h_rows:
        lo, hi = r.get("gold_diff_ci") or (None, None)
        if lo is not None and (lo > 0 or hi < 0):
            text = r.get("gold_diff (ci95)") or r.get("gold_diff_a (ci95)")
            out.append(f"  gold score difference {_contrast_name(r)}: {text} (paired bootstrap; excludes 0)")
    for j in judges_vs_gold or []:
        if j.get("accuracy") is not None:
            out.append(f"evaluation judge {j['judge']} agrees with {j['reference']} on {j['agree']}/{j['n_gold_decided']} = "
                       f"{j['accuracy']:.2f} of the eval comparisons gold decides (95% Wilson CI [{j['ci_low']:.2f}, "
                       f"{j['ci_high']:.2f}]); where they disagree, the judge is what is wrong")
    if sources:
        out.append("feedback sources against gold (the labels each source gave, on the pairs it labelled):")
        out += [f"  {s['verdict']}" for s in sources if s.get("verdict")]
        out += [f"  {s['source']}: gold decided none of its pairs ({s['pairs']})" for s in sources
                if not s.get("verdict")]
    for who, card in cards.items():
        if (card or {}).get("note"):
            continue
        pc = (card or {}).get("position_consistency") or {}
        if pc.get("value") is None:
            out.append(f"{who}: position consistency not measured on human-labelled pairs (n=0): unchecked there")
        elif pc["value"] < min_consistency:
            out.append(f"{who}: position consistency {pc['value']:.2f} (n={pc['n']}, 95% CI [{pc['ci_low']:.2f}, "
                       f"{pc['ci_high']:.2f}]) is below {min_consistency}: its labels follow the order shown, not the "
                       "content, so what was trained on them is not evidence about AI feedback")
    for arm, rm in (reward_models or {}).items():
        if rm.get("eval/n_pairs"):
            n, k = int(rm["eval/n_pairs"]), int(rm.get("eval/n_correct", 0))
            lo, hi = wilson(k, n)
            out.append(f"{arm} reward model: held-out accuracy {k}/{n} (95% CI [{lo:.2f}, {hi:.2f}]) on its source's "
                       "own labels")
    return out


def source_rows(sources: dict, pairs: dict, arms: dict) -> list[dict]:
    """Each source's labels against gold, on the pairs it labelled (stage 1 and/or its OAIF run):
    accuracy = same verdict as gold / pairs gold decides (ties and unparsed wrong), Wilson 95%."""
    from ..evaluation.validity import wilson

    rows = []
    where = [(f"initial-policy pairs ({n})", n, pairs[n]) for n in pairs]
    where += [(f"{a['arm']} (its own samples)", a["source"], a["labels"]) for a in arms.values() if a.get("labels")]
    for on, name, m in where:
        src = sources[name]
        if src.kind == "gold":
            continue
        n, k = int(m.get("judge/gold_decided", 0)), int(m.get("judge/gold_agree", 0))
        row = {"source": name, "kind": src.kind, "annotator": source_label(name, src), "pairs": on,
               "n_labelled": int(m.get("judge/n_pairs", 0)), "n_gold_decided": n, "agree": k}
        if n:
            lo, hi = wilson(k, n)
            row.update(accuracy=k / n, ci_low=lo, ci_high=hi,
                       verdict=f"{name} labels agree with gold on {k}/{n} = {k / n:.2f} of the pairs gold decides "
                               f"(95% Wilson CI [{lo:.2f}, {hi:.2f}]; " + (
                                   "better than a coin)" if lo > 0.5 else "worse than a coin)" if hi < 0.5 else
                                   "not distinguishable from a coin)") + f", on {on}")
        rows.append(row)
    return rows


def judges_vs_gold(evaluation: dict) -> list[dict]:
    """Each non-gold evaluation judge against the gold judge on the same eval comparisons (every arm
    vs the initial policy, every head-to-head): on prompts gold decides, the share where the judge
    gives gold's verdict (its tie counts as wrong), Wilson 95%; and its both-orders agreement."""
    from ..evaluation.validity import wilson

    def comparisons(ev):
        return list(ev["evals"].values()) + list((ev.get("head_to_head") or {}).get("rows", []))

    gold = next((j for j, ev in evaluation.items() if any("gold" in r for r in comparisons(ev))), None)
    if gold is None:
        return []
    out = []
    for judge, ev in evaluation.items():
        if judge == gold:
            continue
        n = k = judged = consistent = 0
        for g, r in zip(comparisons(evaluation[gold]), comparisons(ev)):
            for gv, jv in zip(g.get("verdicts") or [], r.get("verdicts") or []):
                if gv in ("A", "B"):
                    n += 1
                    k += gv == jv
            m = r["n"] - (r.get("n_identical") or 0)
            if r.get("consistency") == r.get("consistency") and r.get("consistency") is not None:
                judged += m
                consistent += round(r["consistency"] * m)
        row = {"judge": judge, "reference": gold, "n_gold_decided": n, "agree": k}
        if n:
            lo, hi = wilson(k, n)
            row.update(accuracy=k / n, ci_low=lo, ci_high=hi)
        if judged:
            clo, chi = wilson(consistent, judged)
            row.update(consistency=consistent / judged, consistency_n=judged, consistency_ci_low=clo,
                       consistency_ci_high=chi)
        out.append(row)
    return out


def demo_summary(demo, budget, task: str, group: str, arms: dict, pairs: dict, evaluation: dict, kls: dict, cards: dict,
                 sources: list[dict], agreement: dict | None, judges_vs_gold: list[dict] | None = None) -> dict:
    """The `demo_summary` result: the study, its design, every table, and the findings in words."""
    from .verdicts import CI_METHOD

    design = [{"arm": a, "timing": i["timing"], "source": i["source"], "kind": i["source_kind"],
               "annotator": i["annotator"], "run_id": i.get("run_id"), "train_s": round(i.get("seconds", 0)),
               "final_loss": (i.get("final") or {}).get("loss"), "skipped": i.get("skipped")} for a, i in arms.items()]
    names = {i["run_id"]: a for a, i in arms.items() if i.get("run_id")}
    rows, h2h_rows, h2h_ids = [], [], {}
    for judge, ev in evaluation.items():
        rows += arm_rows(arms, ev["evals"], judge, kls)
        if ev.get("head_to_head"):
            h2h_rows += head_to_head_rows(ev["head_to_head"], names, judge)
            h2h_ids[judge] = ev["head_to_head"].get("result_id")
    agreement_rows = None
    if agreement:
        tab = agreement["tables"]["agreement"]
        shown = tab[tab["subset"] == "(all)"] if "subset" in tab else tab
        agreement_rows = shown[agreement_columns(shown.columns)].to_dict("records")
    reward_models = {a: i["reward_model"] for a, i in arms.items() if i.get("reward_model")}
    return {"group": group, "question": demo.question, "task": task, "design": design,
            "budget": {"steps": budget.steps, "prompts_per_step": budget.batch_size},
            "eval_judges": list(evaluation), "eval_n": demo.evaluation.n, "ci_method": CI_METHOD,
            "rows": rows, "head_to_head": h2h_rows, "head_to_head_result_ids": h2h_ids, "sources": sources,
            "eval_judges_vs_gold": judges_vs_gold or [],
            "pairs": {k: {kk: v for kk, v in p.items() if kk != "path"} for k, p in pairs.items()},
            "agreement_pandalm": agreement_rows, "findings": findings(rows, h2h_rows, sources, cards,
                                                                      reward_models=reward_models,
                                                                      judges_vs_gold=judges_vs_gold)}


def agreement_columns(columns) -> list[str]:
    """Agreement-table columns to print: every figure with its n and CI columns where present."""
    wanted = ("annotator", "reference", "n", "agreement", "agreement_ci_low", "agreement_ci_high", "n_no_ties",
              "agreement_no_ties", "agreement_no_ties_ci_low", "agreement_no_ties_ci_high", "kappa",
              "kappa_ci_low", "kappa_ci_high", "p_first", "p_longer")
    return [c for c in wanted if c in columns]
