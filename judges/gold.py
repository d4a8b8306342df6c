"""The gold annotator of a verifiable task: `gold:<task>` (harness/verifiable.py).

It looks each pair's prompt up in the task's prompts file, scores both responses with the gold
scorer (constraints satisfied, degenerate text scores 0) and votes for the higher score; equal
scores are a tie. A prompt the task does not have is `unparsed`, never a guess. Position-free, so
one order is asked. The annotator is kind `rule` with id `<task>:gold` (the ':gold' suffix is what
`harness agreement --reference gold` looks for) and a version that changes with the prompts file.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Sequence

from harness.records import Annotator, Label, Pair, content_hash
from harness.verifiable import GOLD_VERSION, gold_detail


@dataclass
class GoldJudge:
    task: str
    rows: dict[str, dict]              # prompt text -> prompts row (constraints, topic)
    version_tag: str
    orders: tuple[str, ...] = ("AB",)
    tie_band: float = 0.0
    annotator: Annotator = field(init=False)

    def __post_init__(self):
        self.annotator = Annotator(kind="rule", id=f"{self.task}:gold",
                                   version=content_hash("gold", self.task, GOLD_VERSION, self.version_tag, n=12),
                                   config={"gold": self.task, "gold_version": GOLD_VERSION})

    def row(self, prompt: str) -> dict | None:
        return self.rows.get(prompt)

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              references: Sequence[str | None] | None = None) -> list[float | None]:
        out = []
        for p, r in zip(prompts, responses):
            row = self.row(p)
            out.append(None if row is None else gold_detail(r, row["constraints"], row["topic"])["score"])
        return out

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        out = []
        for p in pairs:
            t = time.perf_counter()
            row = self.row(p.prompt)
            if row is None:
                verdict, raw = "unparsed", f"{self.task}:gold: prompt not in task {self.task}"
            else:
                da = gold_detail(p.response_a, row["constraints"], row["topic"])
                db = gold_detail(p.response_b, row["constraints"], row["topic"])
                verdict = "A" if da["score"] > db["score"] else "B" if db["score"] > da["score"] else "tie"
                raw = json.dumps({"a": da, "b": db}, sort_keys=True)
            dt = time.perf_counter() - t
            # a vote, like every rule: p_a stays None
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o,
                              raw_output=raw, latency_s=dt, tokens_in=0, tokens_out=0, cost=0.0) for o in orders])
        return out


def make_gold_judge(task_name: str) -> GoldJudge:
    """`task_name`: a verifiable task (tasks/<name>/ with constraints in its prompts file)."""
    from harness.tasks import load_task

    task = load_task(task_name)
    rows = task.gold_rows()
    if not rows:
        raise ValueError(f"gold:{task_name}: task {task.name} is not verifiable (its prompts carry no constraints)")
    prompts_file = task.directory / task.spec.data.prompts
    return GoldJudge(task=task.name, rows=rows, version_tag=content_hash(prompts_file.read_text(), n=12))
