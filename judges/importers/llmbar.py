"""LLMBar (princeton-nlp/LLMBar `Dataset/`): every `<subset>/dataset.json` under PATH, a JSON array
of `{input, output_1, output_2, label: 1|2}`, and each `<subset>/evaluators/<LLM>/<strategy>/result.json`
beside it (the same records plus `results[-1]` = {"swap = False": {completion, winner},
"swap = True": {...}}, winner "1"/"2"/null already mapped back to the original order).

Subset: the folder path below `Dataset/` without the leading 'LLMBar/' (so 'Natural',
'Adversarial/GPTInst', 'Processed/MT-Bench', ...). Labels: `llmbar:gold` (kind human: expert gold for
LLMBar, human majority or human labels for Processed/*) and, per evaluator and prompting strategy,
`llmbar:<LLM>/<strategy>` (kind llm) with two labels per record: shown_order AB for "swap = False",
BA for "swap = True"; a null winner is 'unparsed' with the completion kept as raw output.
`strategies` limits which prompting strategies are read (default: all found).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from harness.records import Annotator, Pair

from .common import Fields, LabelImportError, iter_records, make_label

VERSION = "llmbar"
WINNER = {"1": "A", "2": "B"}


def _subset_name(root: Path, folder: Path) -> str:
    rel = folder.relative_to(root).as_posix()
    for prefix in ("Dataset/", "LLMBar/"):
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
    return rel or folder.name


def dataset_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("dataset.json") if "evaluators" not in p.parts)
    if not files:
        raise FileNotFoundError(f"{path}: no dataset.json below it (expected LLMBar's Dataset/ folder)")
    return files


def read(path: str | Path, strategies: Sequence[str] | None = None, **_) -> Iterator:
    path = Path(path)
    root = path if path.is_dir() else path.parent
    gold = Annotator("human", "llmbar:gold", VERSION)
    for ds_file in dataset_files(path):
        folder = ds_file.parent
        subset = _subset_name(root, folder)
        records = list(iter_records(ds_file))
        evaluators = []
        for res in sorted(folder.glob("evaluators/*/*/result.json")):
            llm, strategy = res.parent.parent.name, res.parent.name
            if strategies and strategy not in strategies:
                continue
            rows = list(iter_records(res))
            if len(rows) != len(records):
                raise LabelImportError(res, "file", None, f"{len(rows)} records but {ds_file} has {len(records)}")
            evaluators.append((res, Annotator("llm", f"llmbar:{llm}/{strategy}", VERSION,
                                              {"llm": llm, "strategy": strategy}), rows))
        for i, (where, rec) in enumerate(records):
            f = Fields(ds_file, where, rec)
            pair = Pair(prompt=f.get("input", str, nonempty=True), response_a=f.text("output_1"),
                        response_b=f.text("output_2"), source="dataset:llmbar", dataset="llmbar", subset=subset,
                        record_id=str(i))
            label = f.get("label", int, choices=(1, 2))
            item = f"llmbar:{subset}:{i}"
            yield pair, make_label(pair, gold, WINNER[str(label)], item, raw_output=str(label))
            for res, ann, rows in evaluators:
                rwhere, rrec = rows[i]
                rf = Fields(res, rwhere, rrec)
                for fld in ("input", "output_1", "output_2"):
                    if rrec.get(fld) != rec.get(fld):
                        raise rf.error(fld, f"differs from {ds_file} {where}: result files must follow dataset.json")
                results = rf.get("results", list)
                if not results or not isinstance(results[-1], dict):
                    raise rf.error("results", "expected a list ending with {'swap = False': ..., 'swap = True': ...}")
                for key, order in (("swap = False", "AB"), ("swap = True", "BA")):
                    one = results[-1].get(key)
                    if not isinstance(one, dict) or "winner" not in one:
                        raise rf.error(f"results[-1][{key!r}]", "missing, or without 'winner'")
                    w = one["winner"]
                    if w is not None and str(w) not in WINNER:
                        raise rf.error(f"results[-1][{key!r}].winner", f"{w!r} is not '1', '2' or null")
                    completion = one.get("completion")
                    raw = completion[0] if isinstance(completion, list) and completion else str(completion or "")
                    verdict = "unparsed" if w is None else WINNER[str(w)]
                    yield pair, make_label(pair, ann, verdict, item, shown_order=order, raw_output=str(raw))
