"""Tasks are data: `tasks/<name>/task.yaml` (+ a prompts file), validated on load.

    name: quickstart
    description: ...
    data:                       # where prompts and preference pairs come from
      prompts: prompts.jsonl    # json-lines {prompt, reference?, split?} beside task.yaml
      hub: Anthropic/hh-rlhf    # a hub dataset of preference pairs (for users) ...
      hub_data_dir: harmless-base
      path: null                # ... or a local file; `data.path` in a run config overrides both
      split: train              # split of the hub dataset to train on
      eval_split: null          # a separate hub split for evaluation; null: hold out eval_fraction
      format: auto              # auto | pairs | hh
    prompt_template: "{prompt}" # applied to plain-text prompts
    system: null                # optional system message
    rubric: |                   # what an annotator is asked to judge
      ...

Unknown keys fail, naming the file. `load_task(name)` finds a task by name under the package's
`tasks/` folder (or takes a path to a task dir or task.yaml).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path


from .config import ConfigError, _build, read_yaml_mapping
from .data import DataError, load_preferences, load_prompts

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"


@dataclass
class TaskData:
    prompts: str | None = None
    hub: str | None = None
    hub_data_dir: str | None = None
    path: str | None = None
    split: str = "train"
    eval_split: str | None = None
    format: str = "auto"


@dataclass
class TaskSpec:
    name: str
    description: str = ""
    data: TaskData = field(default_factory=TaskData)
    prompt_template: str = "{prompt}"
    system: str | None = None
    rubric: str = ""
    license: str | None = None


@dataclass
class Task:
    spec: TaskSpec
    directory: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rubric(self) -> str:
        return self.spec.rubric

    @property
    def has_preferences(self) -> bool:
        d = self.spec.data
        return bool(d.hub or d.path)

    def render(self, prompt):
        """Apply the prompt template to a plain-text prompt (chat-message prompts pass unchanged)."""
        if isinstance(prompt, str) and self.spec.prompt_template != "{prompt}":
            return self.spec.prompt_template.replace("{prompt}", prompt)
        return prompt

    def prompts(self, split: str = "train", path: str | None = None) -> list[dict]:
        """Prompts `{prompt, reference?, id}` of a split (train | eval). Without a prompts file the
        prompts of the preference data are used (deduplicated, same held-out split)."""
        if split not in ("train", "eval"):
            raise ValueError(f"task {self.name}: split must be train or eval, got {split!r}")
        if self.spec.data.prompts and path is None:
            rows = load_prompts(self.directory / self.spec.data.prompts)
            return [{**r, "prompt": self.render(r["prompt"])} for r in rows if r["split"] == split]
        train, evals = self.preference_splits(path=path)
        seen, out = set(), []
        for rec in train if split == "train" else evals:
            key = repr(rec["prompt"])
            if key not in seen:
                seen.add(key)
                out.append({"prompt": rec["prompt"], "reference": rec["chosen"], "id": rec["id"]})
        return out

    def gold_rows(self) -> dict[str, dict]:
        """Prompt text (as the policy sees it) -> its prompts row, for a verifiable task (rows with
        constraints, harness/verifiable.py); {} for any other task."""
        if not self.spec.data.prompts:
            return {}
        rows = load_prompts(self.directory / self.spec.data.prompts)
        return {self.render(r["prompt"]): r for r in rows if "constraints" in r}

    @property
    def verifiable(self) -> bool:
        return bool(self.gold_rows())

    def preference_data(self, path: str | None = None, split: str | None = None, limit: int | None = None) -> list[dict]:
        """Preference records `{prompt, chosen, rejected, p, id}` from `path` (a local file or hub id
        overriding the task's source) or the task's own source."""
        d = self.spec.data
        source = path or (str(self._resolve(d.path)) if d.path else d.hub)
        if not source:
            raise DataError(f"task {self.name}: has no preference data (set data.path to a preference file)")
        recs = load_preferences(source, split=split or d.split, fmt=d.format,
                                data_dir=d.hub_data_dir if source == d.hub else None, limit=limit)
        for r in recs:
            r["prompt"] = self.render(r["prompt"])
        return recs

    def preference_splits(self, path: str | None = None, eval_fraction: float = 0.1, max_train: int | None = None,
                          max_eval: int | None = None, seed: int = 0) -> tuple[list[dict], list[dict]]:
        """(train, eval) preference records. A separate eval split when the task has one on the hub
        and no local file is used; otherwise a fixed, seeded held-out fraction (same for every run)."""
        d = self.spec.data
        if d.eval_split and not path and not d.path:
            train = self.preference_data(split=d.split, limit=max_train)
            evals = self.preference_data(split=d.eval_split, limit=max_eval)
            return train, evals
        recs = self.preference_data(path=path)
        order = list(range(len(recs)))
        random.Random(seed).shuffle(order)
        n_eval = max(1, round(len(recs) * eval_fraction)) if eval_fraction > 0 else 0
        if max_eval is not None:
            n_eval = min(n_eval, max_eval) if eval_fraction > 0 else 0
        evals = [recs[i] for i in order[:n_eval]]
        train = [recs[i] for i in order[n_eval:]]
        if max_train is not None:
            train = train[:max_train]
        return train, evals

    def _resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self.directory / path)


def task_dirs() -> list[Path]:
    return sorted(p.parent for p in TASKS_DIR.glob("*/task.yaml"))


def list_tasks() -> list[str]:
    return [p.name for p in task_dirs()]


def load_task(name: str | Path) -> Task:
    """A task by name (tasks/<name>/task.yaml), or a path to a task dir or a task.yaml file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        file = path
    elif (path / "task.yaml").exists() and (path.is_absolute() or "/" in str(name)):
        file = path / "task.yaml"
    else:
        file = TASKS_DIR / str(name) / "task.yaml"
        if not file.exists():
            raise ConfigError(f"task {name!r}: not found (known: {', '.join(list_tasks()) or 'none'})")
    raw = read_yaml_mapping(file, empty_ok=False)
    if "name" not in raw:
        raise ConfigError(f"{file}: name: missing")
    spec = _build(TaskSpec, raw, f"{file}:")
    if spec.data.format not in ("auto", "pairs", "hh"):
        raise ConfigError(f"{file}: data.format: {spec.data.format!r} is not auto, pairs or hh")
    if "{prompt}" not in spec.prompt_template:
        raise ConfigError(f"{file}: prompt_template: must contain {{prompt}}")
    if not (spec.data.prompts or spec.data.hub or spec.data.path):
        raise ConfigError(f"{file}: data: needs prompts, hub or path")
    if spec.data.prompts and not (file.parent / spec.data.prompts).exists():
        raise ConfigError(f"{file}: data.prompts: {file.parent / spec.data.prompts} not found")
    return Task(spec, file.parent)


def validate_task(name: str | Path, check_data: bool = True) -> dict:
    """Load a task and read its prompts file (every line checked). Returns a summary row."""
    task = load_task(name)
    row = {"task": task.name, "dir": str(task.directory), "rubric_chars": len(task.rubric)}
    if task.spec.data.prompts and check_data:
        rows = load_prompts(task.directory / task.spec.data.prompts)
        row.update(prompts=len(rows), eval_prompts=sum(r["split"] == "eval" for r in rows),
                   with_reference=sum(bool(r.get("reference")) for r in rows))
        if any("constraints" in r for r in rows):
            types = {s: sorted({c["type"] for r in rows if r["split"] == s for c in r["constraints"]})
                     for s in ("train", "eval")}
            row.update(constraint_types_train=",".join(types["train"]),
                       held_out_types=",".join(t for t in types["eval"] if t not in types["train"]))
    row["preference_source"] = task.spec.data.path or task.spec.data.hub
    return row
