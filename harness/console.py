"""Printing results: a readable table by default, JSON with `--format json`."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Sequence


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)[:60]
    s = str(v)
    return s if len(s) <= 60 else s[:57] + "..."


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def emit(data: Any, fmt: str = "table", title: str | None = None, columns: Sequence[str] | None = None,
         file=None) -> None:
    """Print `data` (a list of row dicts, or a dict of such lists / scalars) in the chosen format."""
    file = file or sys.stdout
    if fmt == "json":
        print(json.dumps(data, indent=2, default=_json_default), file=file)
        return
    if title:
        print(f"== {title}", file=file)
    if isinstance(data, list):
        print(format_table(data, columns), file=file)
    elif isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                print(f"-- {k}", file=file)
                print(format_table(v), file=file)
            else:
                print(f"{k}: {_cell(v) if not isinstance(v, str) else v}", file=file)
    else:
        print(data, file=file)


def _json_default(v):
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)
