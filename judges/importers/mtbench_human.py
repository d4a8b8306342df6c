"""MT-Bench human judgments (lmsys/mt_bench_human_judgments, splits `human` and `gpt4_pair`):
records `{question_id, model_a, model_b, winner, judge, conversation_a, conversation_b, turn}`,
conversations as lists of {role, content}; winner model_a | model_b | tie (also 'tie (bothbad)',
'tie (inconsistent)'). JSON lines, a JSON array, or the dataset's parquet files.

Pair: the conversations judged at `turn` (common.render_conversations: turn 1 is the question and
the two answers; turn 2 lists both questions and each model's two answers), policies model_a/b,
dataset 'mt_bench_human', subset 'turn1'/'turn2'. Label: one per record, annotator
`mtbench-human:<judge>`; kind llm for GPT-4 judges (judge containing 'gpt'), human otherwise. The
order in which a judge saw the two models is not in the data (order_known False). The item is
'mt_bench_human:<question_id>:<turn>:<model>:<model>', the two models sorted: records listing the
same comparison with model_a/model_b swapped are one item, and one pair (read_labels puts a swapped
record onto the pair first read, its verdict flipped: a vote for a model stays a vote for it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair, unordered_item

from .common import Fields, iter_records, make_label, render_conversations

WINNER = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie", "tie (inconsistent)": "tie"}
DATASET = "mt_bench_human"


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    annotators: dict[str, Annotator] = {}
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        qid = f.get("question_id", (int, str))
        model_a, model_b = f.get("model_a", str, nonempty=True), f.get("model_b", str, nonempty=True)
        winner = f.get("winner", str, choices=tuple(WINNER))
        judge = f.get("judge", (str, list))
        judge = "/".join(map(str, judge)) if isinstance(judge, list) else judge
        turn = f.get("turn", int, choices=(1, 2))
        prompt, a, b = render_conversations(f, "conversation_a", "conversation_b", turn)
        pair = Pair(prompt=prompt, response_a=a, response_b=b, source=f"dataset:{DATASET}", dataset=DATASET,
                    subset=f"turn{turn}", record_id=str(qid), policy_a=model_a, policy_b=model_b,
                    meta={"question_id": qid, "turn": turn})
        if judge not in annotators:
            kind = "llm" if "gpt" in judge.lower() else "human"
            annotators[judge] = Annotator(kind, f"mtbench-human:{judge}", DATASET)
        # the comparison, whichever model the record lists first (FastChat's compute_agreement keys
        # votes the same way: question, turn and the two models sorted)
        item = unordered_item(f"{DATASET}:{qid}:{turn}", model_a, model_b)
        # one judge may vote on the same question/turn/models more than once: keep each vote
        yield pair, make_label(pair, annotators[judge], WINNER[winner], item, order_known=False, raw_output=winner,
                               dedup=f"{item}:{where}", record=f"{path.name}:{where}")
