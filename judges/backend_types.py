"""What every judge backend takes and returns (its own module so the HTTP backend needs no import cycle)."""
from __future__ import annotations

from dataclasses import dataclass


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
