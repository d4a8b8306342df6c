"""What every judge backend takes and returns (its own module so the HTTP backend needs no import cycle)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Prompt:
    messages: list[dict]  # chat messages
    prefix: str = ""  # text the assistant's answer starts with


@dataclass
class BackendResult:
    text: str = ""
    probs: dict | None = None  # logprob mode: {label: probability}
    top: list | None = None  # the most likely next tokens, for the raw output
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class BackendSpec:
    """One entry of judges.backends.BACKENDS: what `backend: <name>` in a judge config builds.

    make(judge_cfg, options, where, home) -> the backend (the calls judges/backends.py lists)
    options   the dataclass of the judge config's `<name>:` section (None: the backend has none)
    validate(options, where) raises ConfigError for bad values (None: nothing to check)
    not_in_version  option keys that change how fast or how patiently it runs, not what it answers:
              left out of the judge's version (the label cache key). Every other option is in it,
              and only the chosen backend's section counts, so adding a backend moves no version.
    """
    name: str
    make: Callable
    options: type | None = None
    validate: Callable | None = None
    not_in_version: frozenset = frozenset()
    doc: str = ""
