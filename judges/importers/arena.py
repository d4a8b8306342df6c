"""Chatbot Arena conversations (lmsys/chatbot_arena_conversations): records
`{question_id, model_a, model_b, winner, judge, conversation_a, conversation_b, turn, anony,
language, tstamp, openai_moderation, toxic_chat_tag}`; winner model_a | model_b | tie |
'tie (bothbad)'. JSON lines, a JSON array, or the dataset's parquet files.

Pair: the whole conversation (common.render_conversations over all `turn` user turns), policies
model_a/b, dataset 'chatbot_arena', subset = language. Label: one per vote, annotator
`arena:<judge>` (each Arena user its own human annotator); model_a was shown on the left (AB).
'tie (bothbad)' is a tie with meta bothbad True.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair

from .common import Fields, iter_records, make_label, render_conversations

WINNER = {"model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie"}
DATASET = "chatbot_arena"


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        qid = f.get("question_id", (str, int))
        model_a, model_b = f.get("model_a", str, nonempty=True), f.get("model_b", str, nonempty=True)
        winner = f.get("winner", str, choices=tuple(WINNER))
        judge = f.get("judge", str, nonempty=True)
        turn = f.get("turn", int)
        prompt, a, b = render_conversations(f, "conversation_a", "conversation_b", turn)
        language = f.get("language", str, required=False)
        meta = {"question_id": qid, "turn": turn, "anony": f.get("anony", bool, required=False),
                "tstamp": f.get("tstamp", (int, float), required=False)}
        pair = Pair(prompt=prompt, response_a=a, response_b=b, source=f"dataset:{DATASET}", dataset=DATASET,
                    subset=language, record_id=str(qid), policy_a=model_a, policy_b=model_b,
                    meta={k: v for k, v in meta.items() if v is not None})
        ann = Annotator("human", f"arena:{judge}", DATASET)
        extra = {"bothbad": True} if winner == "tie (bothbad)" else {}
        yield pair, make_label(pair, ann, WINNER[winner], f"{DATASET}:{qid}", raw_output=winner, **extra)
