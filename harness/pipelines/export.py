"""Labels leave the store as a Hugging Face `datasets` dataset (`harness export`).

Two layouts:
  trl   TRL's preference format, one row per compared item: `prompt`, `chosen`, `rejected` (plain
        strings, or with `conversational=True` lists of {role, content} messages, as
        `trl.DPOTrainer` reads both), plus `item`, `pair_id`, `dataset`, `subset`, `label_source`
        and `n_votes`. Which response is chosen comes from ONE `label_source`:
          'human-majority'  the unique plurality of the human annotators' per-item verdicts;
          an annotator id   that annotator's verdict combined over the orders it was asked in
                            (harness/evaluation/agreement.per_item_verdicts: a verdict that flips with
                            the order is a tie); `both_orders=True` keeps only items it was asked in
                            both orders and answered the same way.
        Ties, unparsed verdicts and items without a unique majority have no chosen side: they are
        left out and counted (`dropped`).
  long  every label actually asked (cache-hit copies left out, as in every statistic), one row each,
        with its pair and provenance: annotator kind / id / version, shown order, p_a, raw output,
        run and step. The columns are those `import-labels --source-format generic` reads, so
        `import-labels --source-format hf DIR` reads an exported folder back with the same labels.

Filters as in the dashboards: dataset, annotators (ids), annotator kinds, task (pairs whose dataset
is the task or that a run of the task sampled).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..store import Store

LAYOUTS = ("trl", "long")
HUMAN_MAJORITY = "human-majority"
LONG_COLUMNS = ["prompt", "response_a", "response_b", "label", "annotator", "annotator_kind", "annotator_version",
                "shown_order", "order_known", "p_a", "record_id", "dataset", "subset", "policy_a", "policy_b",
                "reference", "raw_output", "item", "pair_id", "run_id", "step", "label_id"]


@dataclass
class ExportFilter:
    """Which labels to export; None means all."""

    dataset: str | None = None
    annotators: list[str] | None = None  # annotator ids (or id@version)
    kinds: list[str] | None = None  # annotator kinds
    task: str | None = None

    def describe(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Export:
    rows: list[dict]
    layout: str
    counts: dict = field(default_factory=dict)


def filtered_labels(store: Store, flt: ExportFilter) -> pd.DataFrame:
    """label_frame rows (one per asked label) joined with their pair texts and label provenance."""
    from ..evaluation.frames import label_frame

    frame = label_frame(store, dataset=flt.dataset, annotators=flt.annotators, kinds=flt.kinds)
    if frame.empty:
        return frame
    pairs = {p.pair_id: p for p in store.get_pairs(sorted(set(frame["pair_id"])))}
    if flt.task is not None:
        run_tasks = {r["run_id"]: r.get("task") for r in store.list_runs()}
        keep = {pid for pid, p in pairs.items()
                if p.dataset == flt.task or (p.run_id is not None and run_tasks.get(p.run_id) == flt.task)}
        frame = frame[frame["pair_id"].isin(keep)]
    extra = store.label_provenance(frame["label_id"].tolist())
    frame = frame.assign(
        prompt=[pairs[p].prompt for p in frame["pair_id"]],
        response_a=[pairs[p].response_a for p in frame["pair_id"]],
        response_b=[pairs[p].response_b for p in frame["pair_id"]],
        reference=[pairs[p].reference for p in frame["pair_id"]],
        record_id=[None if i == p else _record_id(i, d) for i, p, d in zip(frame["item"], frame["pair_id"], frame["dataset"])],
        raw_output=[extra[i]["raw_output"] for i in frame["label_id"]],
        run_id=[extra[i]["run_id"] for i in frame["label_id"]],
        step=[extra[i]["step"] for i in frame["label_id"]])
    return frame.reset_index(drop=True)


def _record_id(item: str, dataset) -> str:
    """The item's id inside its dataset ('pandalm:17' -> '17'), so a re-import rebuilds the same item
    (a label whose item is its pair's hash, none of its own, gets none: the import uses the hash again)."""
    prefix = f"{dataset}:"
    return item[len(prefix):] if isinstance(dataset, str) and item.startswith(prefix) else item


def long_rows(frame: pd.DataFrame) -> list[dict]:
    from ..evaluation.frames import to_records

    out = []
    for r in to_records(frame):  # NaN -> None, numpy scalars -> Python
        row = {**r, "label": r["verdict"], "annotator": r["annotator_id"], "annotator_kind": r["kind"],
               "step": None if r["step"] is None else int(r["step"]), "order_known": bool(r["order_known"])}
        out.append({c: row.get(c) for c in LONG_COLUMNS})
    return out


def item_verdicts(frame: pd.DataFrame, label_source: str, both_orders: bool = False) -> pd.DataFrame:
    """One row per item with columns item, pair_id, verdict (A / B / tie / unparsed / None), n_votes."""
    from ..evaluation.agreement import human_majority, per_item_verdicts

    items = per_item_verdicts(frame, unparsed="wrong", keep=("pair_id",))
    if label_source == HUMAN_MAJORITY:
        if both_orders:
            raise ValueError("both_orders applies to one annotator, not to the human majority")
        humans = items[items["kind"] == "human"]
        if humans.empty:
            raise ValueError("label source human-majority: no human labels match the filter")
        majority = human_majority(humans)
        first = humans.drop_duplicates("item").set_index("item")
        return majority.assign(pair_id=first.loc[majority["item"], "pair_id"].to_numpy())
    mine = items[(items["annotator"] == label_source) | (items["annotator"].str.split("@").str[0] == label_source)]
    if mine.empty:
        known = ", ".join(sorted(items["annotator"].unique())) or "none"
        raise ValueError(f"label source {label_source!r}: no labels of that annotator match the filter "
                         f"(annotators here: {known}; or use {HUMAN_MAJORITY})")
    if mine["annotator"].nunique() > 1:
        raise ValueError(f"label source {label_source!r} has several versions here "
                         f"({', '.join(sorted(mine['annotator'].unique()))}); name one as id@version")
    verdict = mine["verdict"].astype(object)
    if both_orders:
        agree = mine["v_AB"].isin(["A", "B"]) & (mine["v_AB"] == mine["v_BA"])
        verdict = verdict.where(agree, None)
    return pd.DataFrame({"item": mine["item"].to_numpy(), "pair_id": mine["pair_id"].to_numpy(),
                         "verdict": verdict.to_numpy(), "n_votes": mine["n_labels"].to_numpy()})


def as_messages(prompt: str) -> list[dict]:
    """A stored prompt as chat messages: chat JSON is kept (harness.records.prompt_text), text is one
    user turn."""
    try:
        msgs = json.loads(prompt)
    except ValueError:
        msgs = None
    if isinstance(msgs, list) and msgs and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in msgs):
        return [{"role": m["role"], "content": m["content"]} for m in msgs]
    return [{"role": "user", "content": prompt}]


def trl_rows(frame: pd.DataFrame, label_source: str, both_orders: bool = False,
             conversational: bool = False) -> tuple[list[dict], dict]:
    verdicts = item_verdicts(frame, label_source, both_orders)
    texts = frame.drop_duplicates("pair_id").set_index("pair_id")
    meta = frame.drop_duplicates("item").set_index("item")
    rows, dropped = [], {"tie": 0, "unparsed": 0, "no majority / not both orders": 0}
    for v in verdicts.to_dict(orient="records"):
        if v["verdict"] not in ("A", "B"):
            key = v["verdict"] if v["verdict"] in ("tie", "unparsed") else "no majority / not both orders"
            dropped[key] += 1
            continue
        t = texts.loc[v["pair_id"]]
        chosen, rejected = (t["response_a"], t["response_b"]) if v["verdict"] == "A" else (t["response_b"], t["response_a"])
        prompt = t["prompt"]
        if conversational:
            prompt, chosen, rejected = (as_messages(prompt), [{"role": "assistant", "content": chosen}],
                                        [{"role": "assistant", "content": rejected}])
        m = meta.loc[v["item"]]
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "item": v["item"],
                     "pair_id": v["pair_id"], "dataset": m["dataset"], "subset": m["subset"],
                     "label_source": label_source, "n_votes": int(v["n_votes"])})
    return rows, {"items": len(verdicts), "exported": len(rows), "dropped": dropped}


def build_export(store: Store, layout: str = "trl", label_source: str = HUMAN_MAJORITY,
                 flt: ExportFilter | None = None, both_orders: bool = False, conversational: bool = False) -> Export:
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    flt = flt or ExportFilter()
    frame = filtered_labels(store, flt)
    if frame.empty:
        raise ValueError(f"no labels match the filter {flt.describe() or '(none)'}")
    if layout == "long":
        rows = long_rows(frame)
        return Export(rows, layout, {"labels": len(rows), "items": int(frame["item"].nunique()),
                                     "annotators": int(frame["annotator"].nunique())})
    rows, counts = trl_rows(frame, label_source, both_orders, conversational)
    if not rows:
        raise ValueError(f"label source {label_source!r}: no item has a chosen side ({counts['dropped']})")
    return Export(rows, layout, counts)


def save_export(export: Export, out: str | Path, push_to_hub: str | None = None, filters: dict | None = None) -> dict:
    """`Dataset.save_to_disk(out)` plus `export.json` (layout, counts, filters); optionally pushed."""
    from datasets import Dataset

    out = Path(out)
    ds = Dataset.from_list(export.rows)
    ds.save_to_disk(str(out))
    info = {"layout": export.layout, "rows": len(ds), "columns": ds.column_names, "counts": export.counts,
            "filters": filters or {}}
    (out / "export.json").write_text(json.dumps(info, indent=2))
    if push_to_hub:
        ds.push_to_hub(push_to_hub)  # needs a network and a token: never in tests
        info["pushed_to"] = push_to_hub
    return {**info, "path": str(out)}
