"""Where a pipeline's time goes: wall seconds per stage, a stage running from one announcement to the
next (the demo's timing table; set-up is outside it, the pipeline's own stages inside)."""
from __future__ import annotations

import time
from typing import Callable


class StageClock:
    """Wrap a pipeline's `say(message)`: every call closes the running stage and starts a new one named
    by the message. `rows()` closes the last stage and returns [{stage, seconds, share}]."""

    def __init__(self, say: Callable[[str], None]):
        self.say, self.done, self.current, self.started = say, [], None, time.perf_counter()

    def __call__(self, message: str) -> None:
        self._close()
        self.current, self.started = message, time.perf_counter()
        self.say(message)

    def _close(self) -> None:
        if self.current is not None:
            self.done.append({"stage": self.current, "seconds": time.perf_counter() - self.started})
            self.current = None

    def rows(self) -> list[dict]:
        self._close()
        total = sum(r["seconds"] for r in self.done) or 1.0
        return [{"stage": r["stage"][:72], "seconds": round(r["seconds"], 1), "share": round(r["seconds"] / total, 3)}
                for r in self.done]
