"""Preference data: a hub dataset (for users) or a local file, read with `datasets`, into plain dicts.

Formats (detected per dataset, or forced with `fmt`):
- `pairs`: TRL/HF style columns `prompt`, `chosen`, `rejected` (strings, or chat-message lists;
  without a `prompt` column the shared leading messages of chosen and rejected are the prompt).
- `hh`: HH-RLHF transcripts `\\n\\nHuman: ... \\n\\nAssistant: ...` in `chosen`/`rejected`; the shared
  conversation becomes the prompt (as chat messages) and the two final assistant turns the responses.
An optional `p` column (probability that chosen is better) is kept as the soft label. Pairs written
from sampled responses (the demo's `pairs.jsonl`) may carry, per response, `chosen_truncated` /
`rejected_truncated` (bool: sampled without EOS, so no EOS is appended when training) and
`chosen_ids` / `rejected_ids` (the sampled token ids, trained on instead of re-encoding the text).

Every record becomes `{prompt, chosen, rejected, p, id}` (+ those fields where given); a bad record
is an error naming the file, the line (record) and the field.
"""
from __future__ import annotations

import gzip
import json
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterator

LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


class DataError(ValueError):
    """A data file or record that cannot be used; the message names file, line and field."""


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s in (".json", ".jsonl", ".csv", ".parquet", ".gz")]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else path.suffix


def _line_of(path: Path, index: int) -> str:
    """How to name record `index` of a file: a line for json-lines and csv, a record number otherwise."""
    suffix = _suffix(path)
    if suffix == ".jsonl":
        return f"line {index + 1}"
    if suffix == ".csv":
        return f"line {index + 2}"  # after the header
    return f"record {index + 1}"


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a json-lines file (.gz too); a line that is not
    UTF-8 or not a JSON object, a directory, or a corrupt or truncated .gz is a DataError naming the
    file (and the line)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; expected a json-lines file")
    opener = gzip.open if path.name.endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rb") as f:  # bytes, decoded line by line: a bad byte is named by its line
            for n, raw in enumerate(f, 1):
                record = _json_object(path, n, raw)
                if record is not None:  # blank line
                    yield n, record
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: line {n + 1}: corrupt or truncated gzip file ({type(e).__name__}: {e})") from None


def _json_object(path: Path, n: int, raw: bytes) -> dict | None:
    try:
        line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {n}: invalid UTF-8 (byte {raw[e.start]:#04x}); the file must be UTF-8") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: line {n}: expected a JSON object, got {type(record).__name__}")
    return record


def _scan_json_lines(path: Path) -> None:
    """Find the first unreadable line of a json-lines file to name it (datasets only says 'failed')."""
    for _ in json_lines(path):
        pass


def read_rows(source: str, split: str = "train", data_dir: str | None = None) -> tuple[list[dict], str, Path | None]:
    """Rows of a local file or a hub dataset split, via `datasets`. Returns (rows, name, path or None)."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(source).expanduser()
    if path.exists() or source.startswith((".", "/", "~")) or _suffix(path) in LOCAL_BUILDERS:
        if not path.exists():
            raise DataError(f"{path}: data file not found")
        builder = LOCAL_BUILDERS.get(_suffix(path))
        if builder is None:
            raise DataError(f"{path}: unsupported file type (json, jsonl, jsonl.gz, csv, parquet)")
        if builder == "json" and _suffix(path) == ".jsonl":
            _scan_json_lines(path)  # cheap, and names the bad line before datasets fails without one
        try:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as e:  # datasets wraps parse errors in several types
            raise DataError(f"{path}: cannot read ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        return list(ds), str(path), path
    try:
        ds = datasets.load_dataset(source, data_dir=data_dir, split=split)
    except Exception as e:
        raise DataError(f"dataset {source!r} (split {split!r}): cannot load ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}); offline runs need a local file (data.path)") from None
    return list(ds), f"{source}:{split}", None


def parse_hh(text: str) -> list[dict]:
    """`\\n\\nHuman: a\\n\\nAssistant: b ...` -> chat messages [{role, content}] (user/assistant)."""
    messages: list[dict] = []
    rest = text
    while rest:
        h, a = rest.find(HUMAN), rest.find(ASSISTANT)
        starts = [(i, m) for i, m in ((h, HUMAN), (a, ASSISTANT)) if i >= 0]
        if not starts:
            break
        i, marker = min(starts)
        if messages and i > 0:
            messages[-1]["content"] += rest[:i]
        rest = rest[i + len(marker):]
        messages.append({"role": "user" if marker == HUMAN else "assistant", "content": ""})
        nxt = [j for j in (rest.find(HUMAN), rest.find(ASSISTANT)) if j >= 0]
        end = min(nxt) if nxt else len(rest)
        messages[-1]["content"] = rest[:end]
        rest = rest[end:]
    for m in messages:
        m["content"] = m["content"].strip()
    return messages


def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in v)


def _response_text(v: Any, where: str) -> str:
    if isinstance(v, str):
        return v
    if _is_messages(v) and v:
        last = v[-1]
        if last["role"] != "assistant":
            raise DataError(f"{where}: the last message must be the assistant's, got role {last['role']!r}")
        return str(last["content"])
    raise DataError(f"{where}: expected a string or a list of chat messages, got {type(v).__name__}")


def detect_format(row: dict) -> str:
    if "prompt" in row:
        return "pairs"
    chosen = row.get("chosen")
    if isinstance(chosen, str) and HUMAN in chosen:
        return "hh"
    return "pairs"


SAMPLE_FIELDS = ("chosen_truncated", "rejected_truncated", "chosen_ids", "rejected_ids")


def _sample_fields(row: dict, where: str) -> dict:
    """The optional per-response sampling fields of a row, validated; absent or null ones are left out."""
    out = {}
    for key in SAMPLE_FIELDS:
        v = row.get(key)
        if v is None:
            continue
        if key.endswith("_truncated"):
            if not isinstance(v, bool):
                raise DataError(f"{where}: field {key!r}: expected true or false, got {v!r}")
        elif not (isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)):
            raise DataError(f"{where}: field {key!r}: expected a non-empty list of token ids (integers >= 0)")
        out[key] = v
    return out


def convert_record(row: dict, fmt: str, where: str) -> dict | None:
    """One raw row -> {prompt, chosen, rejected, p} (+ the optional SAMPLE_FIELDS); None: a skipped HH record."""
    rec = _convert(row, fmt, where)
    if rec is not None:
        rec.update(_sample_fields(row, where))
    return rec


def _convert(row: dict, fmt: str, where: str) -> dict | None:
    """One raw row -> {prompt, chosen, rejected, p}; None for an HH record whose two transcripts do not
    share a conversation before the final turn (a handful in HH-RLHF; skipped with a warning)."""
    for key in ("chosen", "rejected"):
        if key not in row or row[key] is None:
            raise DataError(f"{where}: field {key!r} is missing")
    p = row.get("p")
    if p is not None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise DataError(f"{where}: field 'p': expected a probability in [0, 1], got {p!r}")
        p = float(p)
    if fmt == "hh":
        out = {}
        for key in ("chosen", "rejected"):
            if not isinstance(row[key], str):
                raise DataError(f"{where}: field {key!r}: expected an HH transcript string, got {type(row[key]).__name__}")
            msgs = parse_hh(row[key])
            if len(msgs) < 2 or msgs[-1]["role"] != "assistant" or msgs[0]["role"] != "user":
                raise DataError(f"{where}: field {key!r}: not an HH transcript (needs '\\n\\nHuman: ...' then "
                                f"a final '\\n\\nAssistant: ...' turn)")
            out[key] = msgs
        if out["chosen"][:-1] != out["rejected"][:-1]:
            return None
        return {"prompt": out["chosen"][:-1], "chosen": out["chosen"][-1]["content"],
                "rejected": out["rejected"][-1]["content"], "p": p}
    if fmt != "pairs":
        raise DataError(f"{where}: unknown data format {fmt!r} (auto, pairs, hh)")
    prompt = row.get("prompt")
    if prompt is None:  # implicit prompt: the shared leading messages
        c, r = row["chosen"], row["rejected"]
        if not (_is_messages(c) and _is_messages(r)):
            raise DataError(f"{where}: field 'prompt' is missing (needed unless chosen/rejected are chat messages)")
        if c[:-1] != r[:-1] or not c[:-1]:
            raise DataError(f"{where}: fields 'chosen'/'rejected': no shared conversation to use as the prompt")
        prompt = c[:-1]
    elif not (isinstance(prompt, str) or _is_messages(prompt)):
        raise DataError(f"{where}: field 'prompt': expected a string or a list of chat messages, got {type(prompt).__name__}")
    if isinstance(prompt, str) and not prompt.strip():
        raise DataError(f"{where}: field 'prompt' is empty")
    chosen = _response_text(row["chosen"], f"{where}: field 'chosen'")
    rejected = _response_text(row["rejected"], f"{where}: field 'rejected'")
    if isinstance(prompt, list):
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt]
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "p": p}


def load_preferences(source: str, split: str = "train", fmt: str = "auto", data_dir: str | None = None,
                     limit: int | None = None) -> list[dict]:
    """Preference records `{prompt, chosen, rejected, p, id}` from a local file or a hub dataset."""
    rows, name, path = read_rows(source, split, data_dir)
    if not rows:
        raise DataError(f"{name}: no records")
    out, skipped = [], []
    for i, row in enumerate(rows):
        where = f"{name}: {_line_of(path, i) if path else f'record {i + 1}'}"
        rec = convert_record(row, detect_format(row) if fmt == "auto" else fmt, where)
        if rec is None:
            skipped.append(where)
            continue
        rec["id"] = i
        out.append(rec)
        if limit is not None and len(out) >= limit:
            break
    if skipped:
        warnings.warn(f"{name}: skipped {len(skipped)} HH record(s) whose chosen and rejected conversations "
                      f"differ before the final turn (first: {skipped[0]})", stacklevel=2)
    return out


# a verifiable task's prompts (harness/verifiable.py): the constraints the gold scorer checks
VERIFIABLE_FIELDS = ("base", "constraints", "topic", "group")


def load_prompts(path: str | Path) -> list[dict]:
    """A prompts file (json-lines `{prompt, reference?, split?, id?}`) -> list of dicts, validated."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: prompts file not found")
    out = []
    for n, rec in json_lines(path):
        unknown = set(rec) - {"prompt", "reference", "split", "id", "category", *VERIFIABLE_FIELDS}
        if unknown:
            raise DataError(f"{path}: line {n}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
            raise DataError(f"{path}: line {n}: field 'prompt': expected a non-empty string")
        if rec.get("reference") is not None and not isinstance(rec["reference"], str):
            raise DataError(f"{path}: line {n}: field 'reference': expected a string")
        if rec.get("split", "train") not in ("train", "eval"):
            raise DataError(f"{path}: line {n}: field 'split': expected train or eval, got {rec['split']!r}")
        rec.setdefault("split", "train")
        rec.setdefault("id", f"{path.parent.name}-{n}")
        if any(f in rec for f in VERIFIABLE_FIELDS):
            from .verifiable import ConstraintError, validate_row

            try:
                validate_row(rec, f"{path}: line {n}:")
            except ConstraintError as e:
                raise DataError(str(e)) from None
        out.append(rec)
    if not out:
        raise DataError(f"{path}: no prompts")
    return out
