"""Unlabelled pairwise battles built from benchmark answer files (FastChat layout), for leaderboards.

A FastChat-style bench folder holds
  question.jsonl                 {question_id, category, turns: [str | {content}], [cluster]}
  model_answer/<model>.jsonl     {question_id, model_id, choices: [{index, turns: [str | {content}]}]}
  reference_answer/<model>.jsonl optional, same shape as an answer (MT-Bench: GPT-4 references
                                 for math, reasoning and coding)
`../shared/data/mt_bench/mt_bench` (80 two-turn questions, 31 models) and
`../shared/data/arena_hard_v0.1` (500 one-turn questions, 3 models) are both this layout.

`build_pairs(sel)` picks questions and model pairs (`PairSelection`, seeded) and returns one
`records.Pair` per (question, model pair): dataset mt_bench | arena_hard, subset = the question's
category (arena-hard: its cluster), record_id '<question_id>:<model_a>:<model_b>', policies
model_a/model_b, reference = the reference answer where the folder has one. Turn 1 is the first
question and each model's first answer; turn 2 lists both questions and each model's two answers as
'[Turn k] ...' (the same rendering as the MT-Bench human-judgment importer).

Errors name the file, the line and the field (judges.importers.common.LabelImportError).
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from judges.importers.common import Fields, LabelImportError, iter_records

from .records import Pair

# format -> (dataset name, question field used as the subset)
FORMATS = {"mt_bench": ("mt_bench", "category"), "arena_hard": ("arena_hard", "cluster")}


@dataclass
class PairSelection:
    """Which questions and model pairs to compare (YAML section `source` of a leaderboard-run config)."""

    format: str = "mt_bench"  # mt_bench | arena_hard
    path: str = "../shared/data/mt_bench/mt_bench"  # the folder holding question.jsonl
    turn: int = 1  # 1: first question only; 2: both turns (multi-turn prompt and answers)
    categories: list[str] = field(default_factory=list)  # only these subsets (empty: all)
    question_ids: list[int | str] = field(default_factory=list)  # only these questions (empty: all)
    questions_per_category: int | None = None  # seeded sample of k questions from each subset
    n_questions: int | None = None  # then a seeded sample of n questions (None: all that are left)
    models: list[str] = field(default_factory=list)  # model_answer/<model>.jsonl files (empty: all)
    pairs_per_question: int | None = None  # None: every model pair on every question
    seed: int = 0


@dataclass
class Question:
    question_id: str
    subset: str | None
    turns: list[str]


def validate_selection(sel: PairSelection, where: str = "source") -> None:
    from .config import ConfigError

    def bad(key, msg):
        raise ConfigError(f"{where}.{key}: {msg}")

    if sel.format not in FORMATS:
        bad("format", f"{sel.format!r} is not one of {', '.join(FORMATS)}")
    if sel.turn not in (1, 2):
        bad("turn", f"must be 1 or 2, got {sel.turn}")
    for key in ("questions_per_category", "n_questions", "pairs_per_question"):
        v = getattr(sel, key)
        if v is not None and v < 1:
            bad(key, f"must be >= 1 (or null), got {v}")
    if sel.models and len(set(sel.models)) < 2:
        bad("models", "needs at least two distinct models")
    if len(set(sel.models)) != len(sel.models):
        bad("models", "lists a model twice")


def _turn_texts(f: Fields, key: str) -> list[str]:
    """A list of turns, each a string or {content: str} (arena-hard writes the latter)."""
    turns = f.get(key, list)
    out = []
    for j, t in enumerate(turns):
        if isinstance(t, dict):
            t = t.get("content")
        if not isinstance(t, str):
            raise f.error(f"{key}[{j}]", f"expected a string or {{content: str}}, got {type(t).__name__}")
        out.append(t)
    if not out:
        raise f.error(key, "is empty")
    return out


def read_questions(path: Path, subset_field: str) -> dict[str, Question]:
    """question.jsonl -> {question_id (as text): Question}, in file order."""
    out: dict[str, Question] = {}
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        qid = str(f.get("question_id", (int, str)))
        if qid in out:
            raise f.error("question_id", f"{qid} occurs twice")
        subset = f.get(subset_field, str, required=False) or f.get("category", str, required=False)
        out[qid] = Question(qid, subset, _turn_texts(f, "turns"))
    if not out:
        raise LabelImportError(path, "file", None, "no questions")
    return out


def read_answers(path: Path, questions: dict[str, Question] | None = None) -> dict[str, list[str]]:
    """model_answer/<model>.jsonl (or a reference file) -> {question_id: [answer per turn]} (first choice)."""
    out: dict[str, list[str]] = {}
    for where, rec in iter_records(path):
        f = Fields(path, where, rec)
        qid = str(f.get("question_id", (int, str)))
        if questions is not None and qid not in questions:
            raise f.error("question_id", f"{qid} is not in question.jsonl")
        if qid in out:
            raise f.error("question_id", f"{qid} answered twice")
        choices = f.get("choices", list)
        if not choices or not isinstance(choices[0], dict):
            raise f.error("choices", "expected a non-empty list of {index, turns}")
        out[qid] = _turn_texts(Fields(path, f"{where}: choices[0]", choices[0]), "turns")
    return out


def available_models(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "model_answer").glob("*.jsonl"))


def _render(turns: list[str], answers: list[str], turn: int) -> tuple[str, str]:
    if turn == 1:
        return turns[0], answers[0]
    prompt = "\n\n".join(f"[Turn {k}] {q}" for k, q in enumerate(turns[:turn], 1))
    return prompt, "\n\n".join(f"[Turn {k}] {a}" for k, a in enumerate(answers[:turn], 1))


def select_questions(questions: dict[str, Question], sel: PairSelection) -> list[Question]:
    """Filters in order: question_ids, categories, questions_per_category, n_questions (seeded)."""
    qs = list(questions.values())
    if sel.question_ids:
        missing = [q for q in sel.question_ids if str(q) not in questions]
        if missing:
            raise ValueError(f"source.question_ids: {missing} not in the question file")
        wanted = {str(q) for q in sel.question_ids}
        qs = [q for q in qs if q.question_id in wanted]
    if sel.categories:
        known = {q.subset for q in qs}
        unknown = sorted(set(sel.categories) - known)
        if unknown:
            raise ValueError(f"source.categories: {unknown} not found; known: {sorted(map(str, known))}")
        qs = [q for q in qs if q.subset in set(sel.categories)]
    qs = [q for q in qs if len(q.turns) >= sel.turn]
    rng = random.Random(sel.seed)
    if sel.questions_per_category is not None:
        by: dict = {}
        for q in qs:
            by.setdefault(q.subset, []).append(q)
        keep = set()
        for sub in sorted(by, key=str):
            group = by[sub]
            keep |= {q.question_id for q in rng.sample(group, min(sel.questions_per_category, len(group)))}
        qs = [q for q in qs if q.question_id in keep]
    if sel.n_questions is not None and sel.n_questions < len(qs):
        keep = {q.question_id for q in rng.sample(qs, sel.n_questions)}
        qs = [q for q in qs if q.question_id in keep]
    return qs


def model_pairs(models: list[str], n_questions: int, per_question: int | None,
                seed: int) -> list[list[tuple[str, str]]]:
    """The model pairs compared on each question.

    All pairs when `per_question` is None. Otherwise a balanced seeded design: the C(m, 2) pairs are
    shuffled once and dealt out cyclically, `per_question` to each question, so every model pair is
    compared about equally often (an independent sample per question would leave some pairs unseen).
    Which model is response A is drawn at random per pair, so a one-order judge's position bias does
    not favour one model."""
    rng = random.Random(seed)
    combos = list(itertools.combinations(sorted(models), 2))
    if per_question is None or per_question >= len(combos):
        dealt = [combos[:] for _ in range(n_questions)]
    else:
        rng.shuffle(combos)
        dealt, pos = [], 0
        for _ in range(n_questions):
            take = [combos[(pos + j) % len(combos)] for j in range(per_question)]
            pos += per_question
            dealt.append(take)
    return [[(b, a) if rng.random() < 0.5 else (a, b) for a, b in q] for q in dealt]


def build_pairs(sel: PairSelection, progress: bool = False) -> list[Pair]:
    """Read, validate and select: one Pair per (question, model pair); see the module docstring."""
    validate_selection(sel)
    root = Path(sel.path)
    if not (root / "question.jsonl").exists():
        raise FileNotFoundError(f"{root / 'question.jsonl'}: no such file (source.path must be a FastChat bench "
                                f"folder with question.jsonl and model_answer/)")
    dataset, subset_field = FORMATS[sel.format]
    questions = read_questions(root / "question.jsonl", subset_field)
    known = available_models(root)
    models = list(sel.models) or known
    unknown = [m for m in models if m not in known]
    if unknown:
        raise FileNotFoundError(f"source.models: no {root / 'model_answer'}/<model>.jsonl for {unknown}; "
                                f"known: {', '.join(known)}")
    if len(models) < 2:
        raise ValueError(f"source: {root / 'model_answer'} holds {len(models)} model(s); a battle needs two")
    it = models
    if progress:
        from tqdm import tqdm

        it = tqdm(models, desc="reading answers", unit="model", disable=None)
    answers = {m: read_answers(root / "model_answer" / f"{m}.jsonl", questions) for m in it}
    references: dict[str, list[str]] = {}
    ref_dir = root / "reference_answer"
    for p in sorted(ref_dir.glob("*.jsonl")) if ref_dir.is_dir() else []:
        for qid, turns in read_answers(p, questions).items():
            references.setdefault(qid, turns)
    qs = select_questions(questions, sel)
    pairs: list[Pair] = []
    for q, mpairs in zip(qs, model_pairs(models, len(qs), sel.pairs_per_question, sel.seed)):
        for ma, mb in mpairs:
            ans = []
            for m in (ma, mb):
                a = answers[m].get(q.question_id)
                if a is None or len(a) < sel.turn:
                    raise LabelImportError(root / "model_answer" / f"{m}.jsonl", f"question {q.question_id}",
                                           "choices[0].turns", f"no answer to turn {sel.turn}")
                ans.append(a)
            prompt, ra = _render(q.turns, ans[0], sel.turn)
            _, rb = _render(q.turns, ans[1], sel.turn)
            ref = references.get(q.question_id)
            reference = _render(q.turns, ref, sel.turn)[1] if ref and len(ref) >= sel.turn else None
            pairs.append(Pair(prompt=prompt, response_a=ra, response_b=rb, source=f"dataset:{dataset}",
                              dataset=dataset, subset=q.subset, record_id=f"{q.question_id}:{ma}:{mb}",
                              policy_a=ma, policy_b=mb, reference=reference,
                              meta={"question_id": q.question_id, "turn": sel.turn}))
    return pairs
