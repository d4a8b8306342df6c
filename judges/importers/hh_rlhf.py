"""hh-rlhf (Anthropic): JSON lines `{chosen, rejected}`, two transcripts
('\\n\\nHuman: ... \\n\\nAssistant: ...') that share a prefix and differ from some assistant turn on.

Pair: prompt = the shared prefix up to and including the last '\\n\\nAssistant:' inside it;
responses = the two remainders (usually the last assistant turn; in the few records that diverge
earlier, the rest of each transcript). Which remainder is response_a is decided by a hash of the
record, so that about half the pairs have the chosen response as A (a constant 'A' would let a
judge that always says 'A' look perfect); `meta['chosen']` says which it is.
Label: one crowd verdict per record, annotator `hh-rlhf:crowd` (human); the order the crowdworker
saw the two responses in is not published (order_known False).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair, content_hash

from .common import Fields, iter_records, make_label

MARK = "\n\nAssistant:"


def split_transcripts(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen_rest, rejected_rest), or None when they share no assistant turn."""
    k = 0
    limit = min(len(chosen), len(rejected))
    while k < limit and chosen[k] == rejected[k]:
        k += 1
    cut = chosen.rfind(MARK, 0, k)
    if cut < 0:
        return None
    cut += len(MARK)
    return chosen[:cut], chosen[cut:].strip(), rejected[cut:].strip()


def read(path: str | Path, dataset: str = "hh-rlhf", subset: str | None = None, **_) -> Iterator:
    path = Path(path)
    subset = subset or path.name.split(".")[0]
    annotator = Annotator("human", "hh-rlhf:crowd", "hh-rlhf")
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        chosen = f.get("chosen", str, nonempty=True)
        rejected = f.get("rejected", str, nonempty=True)
        if chosen == rejected:
            raise f.error("rejected", "identical to 'chosen'")
        parts = split_transcripts(chosen, rejected)
        if parts is None:
            raise f.error("chosen", "no '\\n\\nAssistant:' turn shared with 'rejected'")
        prompt, c, r = parts  # an empty final turn is real data (line 87 of harmless-base test)
        item = f"{dataset}:{subset}:{where.split()[-1]}"
        chosen_is_a = int(content_hash(chosen, rejected), 16) % 2 == 0
        a, b = (c, r) if chosen_is_a else (r, c)
        pair = Pair(prompt=prompt, response_a=a, response_b=b, source=f"dataset:{dataset}", dataset=dataset,
                    subset=subset, record_id=where.split()[-1], meta={"chosen": "A" if chosen_is_a else "B"})
        yield pair, make_label(pair, annotator, "A" if chosen_is_a else "B", item, order_known=False)
