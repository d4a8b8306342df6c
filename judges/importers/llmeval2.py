"""LLMEval^2 benchmark (AlibabaResearch/DAMO-ConvAI WideDeep): JSON lines
`{query, response1, response2, human: model1|model2|TIE, dataset}`.

Pair: prompt = query (empty in the mt-bench records, whose responses hold the whole dialogue),
response_a/b = response1/2, subset = the record's `dataset` field
(summarizefeedback, mt-bench, webgpt, ...). Label: `llmeval2:human` (human), AB order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair

from .common import Fields, iter_records, make_label

VERDICT = {"model1": "A", "model2": "B", "TIE": "tie"}


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl"))
        if len(files) != 1:
            raise FileNotFoundError(f"{path}: expected one LLMEval2 .json/.jsonl file, found {len(files)}")
        path = files[0]
    annotator = Annotator("human", "llmeval2:human", "llmeval2")
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        human = f.get("human", str, choices=tuple(VERDICT))
        subset = f.get("dataset", str, nonempty=True)
        rid = where.split()[-1]
        # the 275 mt-bench records have an empty query: the whole dialogue is in the responses
        pair = Pair(prompt=f.get("query", str), response_a=f.text("response1"),
                    response_b=f.text("response2"), source="dataset:llmeval2", dataset="llmeval2", subset=subset,
                    record_id=rid)
        yield pair, make_label(pair, annotator, VERDICT[human], f"llmeval2:{rid}", raw_output=human)
