"""OpenAI "Learning to summarize from human feedback" comparisons (openaipublic
summarize-from-feedback/dataset/comparisons/batch*.json, JSON lines): `{info: {id, post, title,
subreddit, site, article}, summaries: [{text, policy, note}, {text, policy, note}], choice: 0|1,
worker, batch, split, extra: {confidence}}`.

Pair: prompt in the paper's format ('SUBREDDIT: r/...\\nTITLE: ...\\nPOST: ...\\n\\nTL;DR:', or
'ARTICLE: ...\\n\\nTL;DR:' for CNN/DM records that carry `article`), response_a/b = the two
summaries, policies from `policy`, dataset 'summarize_from_feedback', subset = batch. Label: one
per comparison, annotator `summarize-feedback:<worker>` (human); confidence in meta; the display
order is not in the data (order_known False).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.records import Annotator, Pair

from .common import Fields, iter_records, make_label

DATASET = "summarize_from_feedback"


def _prompt(f: Fields, info: dict) -> str:
    sub = Fields(f.path, f.where, info)
    article = sub.get("article", str, required=False)
    post = sub.get("post", str, required=False)
    if post:
        head = []
        if sub.get("subreddit", str, required=False):
            head.append(f"SUBREDDIT: r/{info['subreddit']}")
        if sub.get("title", str, required=False):
            head.append(f"TITLE: {info['title']}")
        return "\n".join(head + [f"POST: {post}"]) + "\n\nTL;DR:"
    if article:
        return f"ARTICLE: {article}\n\nTL;DR:"
    raise f.error("info.post", "neither info.post nor info.article is given")


def read(path: str | Path, **_) -> Iterator:
    path = Path(path)
    files = sorted(path.glob("*.json")) + sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    for file in files:
        for where, rec in iter_records(file):
            f = Fields(file, where, rec)
            info = f.get("info", dict)
            summaries = f.get("summaries", list)
            if len(summaries) != 2:
                raise f.error("summaries", f"expected 2 summaries, got {len(summaries)}")
            texts, policies = [], []
            for j, s in enumerate(summaries):
                if not isinstance(s, dict) or not isinstance(s.get("text"), str):
                    raise f.error(f"summaries[{j}].text", "missing or not a string")
                texts.append(s["text"].strip())
                policies.append(s.get("policy"))
            choice = f.get("choice", int, choices=(0, 1))
            worker = f.get("worker", str, nonempty=True)
            batch = f.get("batch", str, required=False)
            extra = f.get("extra", dict, required=False, default={})
            post_id = Fields(file, where, info).get("id", str, nonempty=True)
            pair = Pair(prompt=_prompt(f, info), response_a=texts[0], response_b=texts[1],
                        source=f"dataset:{DATASET}", dataset=DATASET, subset=batch, record_id=post_id,
                        policy_a=policies[0], policy_b=policies[1],
                        meta={k: v for k, v in (("split", rec.get("split")), ("post_id", post_id)) if v is not None})
            ann = Annotator("human", f"summarize-feedback:{worker}", DATASET)
            # the comparison is the item (so several workers on it can be compared); each vote its own label
            item = f"{DATASET}:{pair.pair_id}"
            yield pair, make_label(pair, ann, "A" if choice == 0 else "B", item, order_known=False,
                                   raw_output=str(choice), confidence=(extra or {}).get("confidence"),
                                   dedup=f"{item}:{file.name}:{where}", record=f"{file.name}:{where}")
