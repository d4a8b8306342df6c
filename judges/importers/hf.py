"""A Hugging Face `datasets` folder (`Dataset.save_to_disk`), such as `harness export --layout long`
writes: one row per label with the columns of the generic format (judges/importers/generic.py), read
with the same rules and errors ('row N' names the row). A `DatasetDict` folder is read split by split
('<split> row N'). Extra columns (item, pair_id, run_id, step, label_id) are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from . import generic
from .common import LabelImportError, _checked


def _rows(path: Path) -> Iterator[tuple[str, dict]]:
    from datasets import DatasetDict, load_from_disk

    if not path.is_dir():
        raise LabelImportError(path, "file", None, "expected a folder written by Dataset.save_to_disk "
                                                   "(e.g. by `harness export --layout long`)")
    try:
        ds = load_from_disk(str(path))
    except FileNotFoundError as e:
        raise LabelImportError(path, "file", None, f"not a saved dataset ({e})") from None
    parts = ds.items() if isinstance(ds, DatasetDict) else [("", ds)]
    for split, part in parts:
        for i, rec in enumerate(part):
            yield _checked(path, f"{split + ' ' if split else ''}row {i}", rec)


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    return generic.read_records(path, _rows(path))
