"""What every label importer shares: reading records, validating fields, building labels.

An importer is a function `read(path, **options) -> Iterator[(Pair, Label)]`. It validates each
record as it reads it and raises `LabelImportError` naming the file, the line or record, and the
field. Every label carries in its meta:
  dedup        the source record id: with the annotator, pair and order it makes the label's
               dedup key, so importing the same file twice adds nothing
  item         what was compared, usually the record id: two source records with identical text
               share a pair_id but stay two items for the statistics (harness.evaluation.frames);
               votes of several annotators on one comparison (Arena, MT-Bench) share the item
  record       only where one record is one vote: that record (for counting records and --limit); such
               a vote listing a pair the other way round joins that pair (judges/importers/__init__.py)
  dataset, subset, policy_a, policy_b   the record's own, for the same reason
  order_known  False where the source does not say in which order the annotator saw the responses
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from pathlib import Path
from typing import Any, Iterator

from harness.records import Annotator, Label, Pair


class LabelImportError(ValueError):
    """Bad input: names the file, the line/record, and the field."""

    def __init__(self, path: str | Path, where: str, field: str | None, message: str):
        self.path, self.where, self.field = str(path), where, field
        loc = f"{path}: {where}" + (f": field {field!r}" if field else "")
        super().__init__(f"{loc}: {message}")


_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def read_text(path: Path) -> str:
    """The whole file as text: .gz decompressed, UTF-8 with or without a BOM (Excel writes one).
    A corrupt or truncated .gz, or invalid UTF-8 (named by line), is a LabelImportError."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except _GZIP_ERRORS as e:
        raise LabelImportError(path, "file", None, f"corrupt or truncated gzip file ({type(e).__name__}: {e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabelImportError(path, f"line {line}", None,
                               f"invalid UTF-8 (byte {data[e.start]:#04x}); the file must be UTF-8") from None


def _nonfinite(v: Any, at: str = "") -> str | None:
    """The field path of the first NaN/Infinity in a record (JSON readers accept them), or None."""
    if isinstance(v, float) and not math.isfinite(v):
        return at or "value"
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        found = _nonfinite(x, f"{at}[{k}]" if isinstance(k, int) else (f"{at}.{k}" if at else str(k)))
        if found:
            return found
    return None


def _checked(path: Path, where: str, rec: Any) -> tuple[str, Any]:
    """A NaN or Infinity never becomes a label or a pair: the store keeps JSON, which has neither."""
    bad = _nonfinite(rec)
    if bad:
        raise LabelImportError(path, where, bad, "NaN or Infinity is not a number a label can keep")
    return where, rec


def iter_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield (where, record) from .json (array, or JSON lines), .jsonl[.gz], .csv/.tsv, .parquet.

    `where` is 'line N' (1-based) for line formats and CSV, 'record N' (0-based index) for a JSON
    array, 'row N' (0-based) for parquet. A record holding NaN or Infinity anywhere is an error
    (in parquet a NaN is pandas' missing value and reads as null).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise LabelImportError(path, "file", None, "is a directory; expected a file of this format")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pandas as pd

        try:
            df = pd.read_parquet(path)
        except ImportError as e:  # no parquet engine installed
            raise LabelImportError(path, "file", None, f"cannot read parquet here ({e}); convert it to JSONL") from e
        for i, rec in enumerate(df.to_dict(orient="records")):
            yield _checked(path, f"row {i}", _plain(rec))
        return
    text = read_text(path)
    if name.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if ".tsv" in name else ",")
        if not reader.fieldnames:
            raise LabelImportError(path, "line 1", None, "no header row")
        for rec in reader:
            if None in rec:
                raise LabelImportError(path, f"line {reader.line_num}", None,
                                       f"{len(rec[None])} more cells than header columns")
            yield f"line {reader.line_num}", rec
        return
    stripped = text.lstrip()
    if name.endswith((".json", ".json.gz")) and stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelImportError(path, f"line {e.lineno}", None, f"invalid JSON: {e.msg}") from e
        for i, rec in enumerate(data):
            yield _checked(path, f"record {i}", rec)
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise LabelImportError(path, f"line {lineno}", None, f"invalid JSON: {e.msg}") from e
        yield _checked(path, f"line {lineno}", rec)


def _plain(v):
    """numpy / pyarrow values from parquet -> plain Python (lists, dicts, str, int)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return _plain(v.tolist())
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and math.isnan(v):
        return None  # pandas' missing value
    return v


class Fields:
    """Typed access to one record's fields; every failure names file, place and field."""

    def __init__(self, path: str | Path, where: str, record: Any):
        self.path, self.where = path, where
        if not isinstance(record, dict):
            raise LabelImportError(path, where, None, f"expected a JSON object, got {type(record).__name__}")
        self.record = record

    def error(self, field: str | None, message: str) -> LabelImportError:
        return LabelImportError(self.path, self.where, field, message)

    def get(self, field: str, types: type | tuple = str, required: bool = True, default: Any = None,
            nonempty: bool = False, choices: tuple | None = None) -> Any:
        if field not in self.record or self.record[field] is None or (
                isinstance(self.record[field], str) and self.record[field] == "" and not required):
            if required:
                raise self.error(field, "missing")
            return default
        v = self.record[field]
        if types is int and isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)  # CSV cells are strings
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
            raise self.error(field, f"expected {_type_names(types)}, got {type(v).__name__} {_short(v)}")
        if nonempty and isinstance(v, str) and not v.strip():
            raise self.error(field, "is empty")
        if choices is not None and v not in choices:
            raise self.error(field, f"{_short(v)} is not one of {', '.join(map(repr, choices))}")
        return v

    def text(self, field: str, nonempty: bool = False) -> str:
        """A text field; a bare JSON scalar is read as its text (PandaLM stores the answer "True"
        as the boolean true in a few records)."""
        v = self.get(field, (str, bool, int, float), nonempty=nonempty)
        return v if isinstance(v, str) else str(v)


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _type_names(t) -> str:
    return " or ".join(x.__name__ for x in _as_tuple(t))


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def make_label(pair: Pair, annotator: Annotator, verdict: str, item: str, shown_order: str = "AB",
               order_known: bool = True, raw_output: str = "", p_a: float | None = None, **meta) -> Label:
    """A label whose meta carries the record id and the record's own dataset/subset/policies."""
    m = {"dedup": item, "item": item, "dataset": pair.dataset, "subset": pair.subset}
    if pair.policy_a is not None or pair.policy_b is not None:
        m.update(policy_a=pair.policy_a, policy_b=pair.policy_b)
    if not order_known:
        m["order_known"] = False
    m.update(meta)
    return Label(pair_id=pair.pair_id, annotator=annotator, verdict=verdict, shown_order=shown_order,
                 p_a=p_a, raw_output=raw_output, meta=m)


def join_prompt(instruction: str, inp: str | None) -> str:
    """Instruction + optional input, the way Alpaca-style test sets pair them."""
    inp = (inp or "").strip()
    return f"{instruction}\n\n{inp}" if inp else instruction


def render_conversations(fields: Fields, field_a: str, field_b: str, turn: int | None = None) -> tuple[str, str, str]:
    """Two chat transcripts (lists of {role, content}) judged at `turn` -> (prompt, response_a, response_b).

    The user turns up to `turn` must be the same in both. Single turn: the user message and the two
    replies. Several turns: the prompt lists the user messages as '[Turn k] ...'; each response lists
    that model's replies as '[Turn k] ...' (each model answered its own earlier turns).
    """
    convs = []
    for field in (field_a, field_b):
        conv = fields.get(field, list)
        users, replies = [], []
        for j, msg in enumerate(conv):
            if not isinstance(msg, dict) or not isinstance(msg.get("content"), str) or msg.get("role") not in (
                    "user", "assistant", "system"):
                raise fields.error(f"{field}[{j}]", "expected {role: user|assistant|system, content: str}")
            if msg["role"] == "user":
                users.append(msg["content"])
            elif msg["role"] == "assistant":
                replies.append(msg["content"])
        convs.append((users, replies))
    n_turns = min(len(convs[0][0]), len(convs[1][0]))
    t = n_turns if turn is None else turn
    if t < 1 or t > n_turns:
        raise fields.error("turn", f"turn {t} but the conversations have {n_turns} user turn(s)")
    if convs[0][0][:t] != convs[1][0][:t]:
        raise fields.error(field_b, f"the user turns differ from {field_a}'s")
    for field, (_, replies) in zip((field_a, field_b), convs):
        if len(replies) < t:
            raise fields.error(field, f"has {len(replies)} assistant repl(y/ies), turn {t} needs {t}")
    users = convs[0][0][:t]
    if t == 1:
        return users[0], convs[0][1][0], convs[1][1][0]
    prompt = "\n\n".join(f"[Turn {k}] {u}" for k, u in enumerate(users, 1))
    resp = ["\n\n".join(f"[Turn {k}] {r}" for k, r in enumerate(replies[:t], 1)) for _, replies in convs]
    return prompt, resp[0], resp[1]
