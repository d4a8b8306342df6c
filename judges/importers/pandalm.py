"""PandaLM test set (WeOpenML/PandaLM data/): `testset-v1.json`, a JSON array of
`{idx, motivation_app, cmp_key, instruction, input, response1, response2, annotator1..3}` with
labels 0 (tie), 1, 2; next to it, when present, `gpt-3.5-turbo-testset-v1.json`
(`{idx, gpt_result: "1"|"2"|"Tie"|other}`) and `pandalm-7b-testset-v1.json`
(`{idx, pandalm_result: 0|1|2}`).

PATH is the test set file or the folder holding it. Pair: prompt = instruction + input,
response_a/b = response1/2, policies from cmp_key ('bloom-7b_llama-7b': response1 by bloom-7b), no
subset (motivation_app, 50 small groups, stays in the pair's meta). Labels:
`pandalm:annotator1..3` (human) and, when the result files exist,
`pandalm:gpt-3.5-turbo` and `pandalm:pandalm-7b` (llm); all shown response1 first (AB). A
gpt_result other than 1/2/Tie (the file has 25 "garbage": GPT's own unparseable answers) is stored
as 'unparsed' with the raw text. A pandalm_result other than 0/1/2 is an error naming file, record
and field: the published file holds only 0/1/2, so anything else is a damaged file, not a verdict.
Two records can hold identical text (different models, same answer): they stay two items.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair

from .common import Fields, LabelImportError, iter_records, join_prompt, make_label

TESTSET = "testset-v1.json"
GPT = "gpt-3.5-turbo-testset-v1.json"
PANDALM = "pandalm-7b-testset-v1.json"
HUMAN = {0: "tie", 1: "A", 2: "B"}
VERSION = "pandalm-testset-v1"


def _by_idx(path: Path, field: str, choices: tuple | None = None) -> dict[int, tuple[str, object]]:
    out = {}
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        idx = f.get("idx", int)
        if idx in out:
            raise f.error("idx", f"{idx} appears twice")
        out[idx] = (where, f.get(field, int if choices else (str, int), choices=choices))
    return out


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    testset = path / TESTSET if path.is_dir() else path
    folder = testset.parent
    humans = [Annotator("human", f"pandalm:annotator{i}", VERSION) for i in (1, 2, 3)]
    gpt = _by_idx(folder / GPT, "gpt_result") if (folder / GPT).exists() else None
    panda = _by_idx(folder / PANDALM, "pandalm_result", choices=(0, 1, 2)) if (folder / PANDALM).exists() else None
    gpt_ann = Annotator("llm", "pandalm:gpt-3.5-turbo", VERSION, {"source": GPT})
    panda_ann = Annotator("llm", "pandalm:pandalm-7b", VERSION, {"source": PANDALM})
    seen = set()
    for where, rec in iter_records(testset):
        f = Fields(testset, where, rec)
        idx = f.get("idx", int)
        if idx in seen:
            raise f.error("idx", f"{idx} appears twice")
        seen.add(idx)
        cmp_key = f.get("cmp_key", str, required=False, default="")
        app = f.get("motivation_app", str, required=False)
        pol = cmp_key.split("_", 1) if "_" in cmp_key else [None, None]
        prompt = join_prompt(f.get("instruction", str).strip(), f.get("input", str, required=False))
        if not prompt.strip():
            raise f.error("instruction", "instruction and input are both empty")
        pair = Pair(prompt=prompt,
                    response_a=f.text("response1"), response_b=f.text("response2"),
                    source="dataset:pandalm", dataset="pandalm", record_id=str(idx), policy_a=pol[0], policy_b=pol[1],
                    meta={k: v for k, v in (("cmp_key", cmp_key), ("motivation_app", app)) if v})
        item = f"pandalm:{idx}"
        for i, ann in enumerate(humans, 1):
            v = f.get(f"annotator{i}", int, choices=(0, 1, 2))
            yield pair, make_label(pair, ann, HUMAN[v], item, raw_output=str(v))
        for table, ann, fname in ((gpt, gpt_ann, GPT), (panda, panda_ann, PANDALM)):
            if table is None:
                continue
            if idx not in table:
                raise LabelImportError(folder / fname, "file", "idx", f"no result for idx {idx} of {testset.name}")
            rwhere, raw = table[idx]
            verdict = {"1": "A", "2": "B", "0": "tie", "tie": "tie"}.get(str(raw).strip().lower(), "unparsed")
            yield pair, make_label(pair, ann, verdict, item, raw_output=str(raw), source_record=f"{fname}:{rwhere}")
    for table, fname in ((gpt, GPT), (panda, PANDALM)):
        extra = sorted(set(table or ()) - seen)
        if extra:
            raise LabelImportError(folder / fname, table[extra[0]][0], "idx",
                                   f"idx {extra[0]} is not in {testset.name}")
