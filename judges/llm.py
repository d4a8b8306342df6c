"""The LLM judge, configured as data: `judges/configs/<name>.yaml` + `judges/templates/<file>`.

The task's rubric and an optional free-text instruction (the OAIF paper's controllability knob, e.g.
"prefer the shorter response") are inserted into the prompt. Two pairwise modes:
  logprob   one forward pass; the next-token probabilities of the two answer labels ("1"/"2" or
            "A"/"B") after `answer_prefix`, normalised to P(first shown better). No generation.
  generate  sample a verdict (optionally after reasoning) and parse it; what cannot be parsed is
            `unparsed`, never guessed (a hedge or "1 or 2" is unparsed too: see parse_verdict).
`both_orders: true` asks with response A shown first and with B shown first; the combined verdict
(records.combine_orders: verdicts that differ between the orders are a tie, MT-Bench's rule, in both
modes alike) and the disagreement between the two are recorded (Judgement.consistent). `tie_band`
applies to each order's p_a.
A third mode, `score`, is pointwise (MT-Bench single-answer grading): each response is rated alone on
`min_score..max_score` and a pair's verdict compares the two ratings; it lives in judges/pointwise.py
(built from here: `mode: score` in the same config format, with a pointwise template).
"""
from __future__ import annotations

import importlib
import json
import math
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from harness.config import ConfigError, JudgeRef, _build, where_join
from harness.records import Annotator, Label, Pair, content_hash

from .backends import BackendResult, Prompt, backend_spec, make_backend, registry
from .base import BOTH_ORDERS, error_label

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_FIELDS = {"rubric", "instruction", "prompt", "response_1", "response_2", "label_1", "label_2"}
REQUIRED_FIELDS = {"prompt", "response_1", "response_2"}
# a pointwise (mode score) template shows one response
SCORE_TEMPLATE_FIELDS = {"rubric", "instruction", "prompt", "response", "min_score", "max_score"}
SCORE_REQUIRED_FIELDS = {"prompt", "response"}
DEFAULT_RUBRIC = "Pick the response that is more helpful, correct and follows the request better."


@dataclass
class LLMJudgeConfig:
    description: str = ""
    backend: str = "transformers"  # a name in judges.backends.registry(); its options: the `<backend>:` section
    model: str = "smollm2-135m-instruct"  # transformers/vllm: embedded name, hub id or local dir
    dtype: str = "auto"  # auto: bf16 where native (AVX512-BF16/AMX CPU, GPU), else fp32 (bf16 is ~25x slower on AVX2)
    device: str = "auto"
    template: str = "pairwise.txt"  # a file in judges/templates/ (or a path)
    system_prompt: str | None = None  # None: the chat template's own default
    answer_prefix: str = ""  # appended after the assistant turn starts, e.g. "The better response is Response "
    labels: list[str] = field(default_factory=lambda: ["1", "2"])  # names of the shown responses = answer tokens
    mode: str = "logprob"  # logprob | generate
    both_orders: bool = True
    instruction: str | None = None
    instruction_format: str = "Also follow this instruction when judging: {instruction}\n"
    rubric: str | None = None  # used when no task rubric is given; neither: DEFAULT_RUBRIC
    max_prompt_tokens: int = 256  # the request is truncated to this many tokens in the judge prompt
    max_response_tokens: int = 192  # each response likewise (keeps prompts, and tests, short)
    batch_size: int = 8
    max_new_tokens: int = 48  # generate mode
    temperature: float = 0.0  # generate mode; 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    verdict_regex: str | None = None  # generate mode: one group capturing a label or "tie"
    tie_band: float = 0.0  # |p - 0.5| <= tie_band is a tie
    # mode score only (judges/pointwise.py); left out of the version of pairwise judges
    score_from: str = "logprob"  # logprob: expected rating over the score tokens after answer_prefix; generate: parse [[N]]
    min_score: int = 1
    max_score: int = 10
    score_regex: str | None = None  # score_from generate: one group capturing the rating (default [[N]], then [N])


# Settings that change how fast or where a judge runs, not what it answers: not in the version hash.
NOT_IN_VERSION = {"description", "both_orders", "batch_size", "device"}
PAIRWISE_MODES = ("logprob", "generate")
MODES = (*PAIRWISE_MODES, "score")
SCORE_FROM = ("logprob", "generate")
# the keys of mode score: not in a pairwise judge's version (adding them moved no existing label's cache key)
SCORE_KEYS = ("score_from", "min_score", "max_score", "score_regex")


def _validate(cfg: LLMJudgeConfig, where: str) -> None:
    def bad(key, msg):
        raise ConfigError(f"{where} {key}: {msg}")

    backend_spec(cfg.backend, where)
    if cfg.mode not in MODES:
        bad("mode", f"{cfg.mode!r} is not one of {', '.join(MODES)}")
    _validate_score(cfg, bad)
    if len(cfg.labels) != 2 or len(set(cfg.labels)) != 2 or not all(cfg.labels):
        bad("labels", f"needs two distinct non-empty labels, got {cfg.labels!r}")
    for key in ("max_prompt_tokens", "max_response_tokens", "batch_size", "max_new_tokens"):
        if getattr(cfg, key) < 1:
            bad(key, "must be >= 1")
    if not 0.0 <= cfg.tie_band < 0.5:
        bad("tie_band", "must be in [0, 0.5)")
    if cfg.temperature < 0:
        bad("temperature", "must be >= 0")
    if "{instruction}" not in cfg.instruction_format:
        bad("instruction_format", "must contain {instruction}")
    _check_regex(cfg.verdict_regex, "verdict_regex", "the label or 'tie'", bad)


def _check_regex(text: str | None, key: str, what: str, bad) -> None:
    if text is None:
        return
    try:
        rx = re.compile(text)
    except re.error as e:
        bad(key, f"invalid regular expression ({e})")
    if rx.groups != 1:
        bad(key, f"needs exactly one capturing group ({what})")


def _validate_score(cfg: LLMJudgeConfig, bad) -> None:
    """The keys of mode score; set in a pairwise config they are an error, not silence."""
    if cfg.mode != "score":
        default = LLMJudgeConfig()
        for key in SCORE_KEYS:
            if getattr(cfg, key) != getattr(default, key):
                bad(key, f"only for mode: score (this judge's mode is {cfg.mode})")
        return
    if cfg.score_from not in SCORE_FROM:
        bad("score_from", f"{cfg.score_from!r} is not one of {', '.join(SCORE_FROM)}")
    if not 0 <= cfg.min_score < cfg.max_score <= 100:
        bad("min_score", f"needs 0 <= min_score < max_score <= 100, got {cfg.min_score}..{cfg.max_score}")
    _check_regex(cfg.score_regex, "score_regex", "the rating", bad)


def read_llm_judge_config(data: dict, where: str) -> tuple[LLMJudgeConfig, dict]:
    """The judge config and the options of each backend section it has ({name: options}), validated.
    A section of a backend not chosen is checked too (a typo there is an error, not silence)."""
    data = dict(data)
    sections = {name: data.pop(name) for name in list(registry()) if name in data}
    cfg = _build(LLMJudgeConfig, data, where)
    _validate(cfg, where)
    options = {}
    for name in sorted({*sections, cfg.backend}):
        spec = backend_spec(name, where)
        if spec.options is None:
            if name in sections:
                raise ConfigError(f"{where} {name}: the {name} backend takes no options section")
            continue
        raw = sections.get(name) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} {name}: expected a mapping of options, got {type(raw).__name__}")
        options[name] = _build(spec.options, raw, where_join(where, name))
        if spec.validate is not None:
            spec.validate(options[name], where)
    return cfg, options


def read_template(name: str, where: str, mode: str | None = None) -> tuple[Path, str]:
    """(path, text) of a template, its fields checked for `mode` (None: pointwise when it shows
    one {response}, else pairwise)."""
    path = Path(name) if ("/" in name) else TEMPLATE_DIR / name
    if not path.exists():
        raise ConfigError(f"{where} template: {path} not found")
    text = path.read_text()
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as e:
        raise ConfigError(f"{path}: bad template ({e}); write literal braces as {{{{ and }}}}") from None
    pointwise = mode == "score" if mode is not None else "response" in fields
    known, required = ((SCORE_TEMPLATE_FIELDS, SCORE_REQUIRED_FIELDS) if pointwise
                       else (TEMPLATE_FIELDS, REQUIRED_FIELDS))
    kind = "a pointwise (mode score)" if pointwise else "a pairwise"
    unknown = fields - known
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)} for {kind} template; known: {sorted(known)}")
    missing = required - fields
    if missing:
        raise ConfigError(f"{path}: {kind} template lacks {sorted(missing)}")
    return path, text


# -- parsing generated verdicts ---------------------------------------------------------------------
def _verdict_patterns(labels: Sequence[str]) -> list[re.Pattern]:
    alt = "|".join(re.escape(l) for l in labels) + "|tie"
    return [
        re.compile(r"\[\[\s*(" + alt + r")\s*\]\]", re.IGNORECASE),  # MT-Bench style [[1]]
        re.compile(r"(?:verdict|answer|output|winner)\s*(?:is)?\s*[:=\-]?\s*\**\s*(?:response\s*)?\(?\[?(" + alt
                   + r")(?![\w])", re.IGNORECASE),
        re.compile(r"better\s+(?:response|answer|one)\s+is\s*:?\s*(?:response\s*)?\(?\[?(" + alt + r")(?![\w])",
                   re.IGNORECASE),
        re.compile(r"(?:^|\n)\s*(?:response\s*)?\(?(" + alt + r")\)?\s*\.?\s*$", re.IGNORECASE),  # a bare label alone
    ]


# A hedge anywhere makes the text ambiguous, whatever label it also names ("neither" is not "either").
_HEDGE = re.compile(r"\b(?:can(?:no|['\u2019])?t|could\s*n[o'\u2019]?t|unable\s+to)\s+(?:really\s+|honestly\s+)?"
                    r"(?:tell|decide|say|choose|determine|distinguish)\b"
                    r"|\bnot\s+(?:sure|certain)\b|\bunsure\b|\buncertain\b"
                    # "either" only as a verdict ("either is fine", "could go either way"): reasoning text
                    # says "either response covers X, but ..." and still decides
                    r"|\beither\s+(?:one\s+)?(?:is|would|works|could|will)\b|\beither\s+way\b"
                    r"|\b(?:hard|difficult|impossible)\s+to\s+(?:say|tell|decide|choose)\b", re.IGNORECASE)


def _alternatives(labels: Sequence[str]) -> re.Pattern:
    """The two labels offered as alternatives: "1 or 2", "Response (b) or (a)", "A/B"."""
    def one(l):
        return r"(?:(?:response|output|answer|assistant)\s*)?[(\[*]*\s*" + re.escape(l) + r"\s*[)\]*]*"

    a, b = labels
    pair = r"(?<![\w])(?:{0}\s*(?:\bor\b|/)\s*{1}|{1}\s*(?:\bor\b|/)\s*{0})(?![\w])".format(one(a), one(b))
    return re.compile(pair, re.IGNORECASE)


def hedged(text: str) -> bool:
    """A hedge anywhere ("cannot tell", "not sure", "hard to say", "either way")."""
    return bool(_HEDGE.search(text))


def ambiguous(text: str, labels: Sequence[str]) -> bool:
    """A hedge ("cannot tell", "not sure", "either") or both labels offered as alternatives ("1 or 2")."""
    return bool(_HEDGE.search(text) or _alternatives(labels).search(text))


def parse_verdict(text: str, labels: Sequence[str], verdict_regex: str | None = None) -> str:
    """'first' | 'second' | 'tie' | 'unparsed'; never a guess. The rules, in order:
    1. ambiguous text is unparsed, whatever label it also names: a hedge ("cannot tell", "not sure",
       "hard to say", "either") or the two labels offered as alternatives ("1 or 2", "A/B");
    2. the first pattern family that matches decides (MT-Bench [[1]], "verdict/answer/output/winner
       ... 1", "the better response is 1", a label alone on a line; or `verdict_regex`);
    3. if that family names both labels ("Verdict: 1 ... Verdict: 2", "Output (a) ... Output (b) is
       better") the text is unparsed: which mention is the verdict is not ours to guess."""
    if ambiguous(text, labels):
        return "unparsed"
    patterns = [re.compile(verdict_regex, re.IGNORECASE)] if verdict_regex else _verdict_patterns(labels)
    lower = [l.lower() for l in labels]
    for rx in patterns:
        found = {m.group(1).strip().lower() for m in rx.finditer(text)}
        found = {f for f in found if f in lower or f == "tie"}
        if len(found) == 1:
            (f,) = found
            return "tie" if f == "tie" else ("first" if f == lower[0] else "second")
        if len(found) > 1:
            return "unparsed"
    return "unparsed"


def _to_canonical(which: str, order: str) -> str:
    if which in ("tie", "unparsed"):
        return which
    first_is_a = order == "AB"
    return "A" if (which == "first") == first_is_a else "B"


# -- the judge ---------------------------------------------------------------------------------------
def judge_annotator(name: str, cfg: LLMJudgeConfig, template_text: str, template_path: Path, rubric: str, backend,
                    mode_overridden: bool = False, options=None) -> Annotator:
    """The Annotator of an LLM judge (pairwise or pointwise): version = hash of what changes its answers
    (config less NOT_IN_VERSION, mode included; the template text; the rubric; the resolved dtype)."""
    d = asdict(cfg)
    drop = NOT_IN_VERSION | (set(SCORE_KEYS) if cfg.mode in PAIRWISE_MODES else set())
    semantic = {k: v for k, v in d.items() if k not in drop}
    spec = backend_spec(cfg.backend, f"judge {name}:")
    if spec.options is not None:
        # only the chosen backend's section is in the version, less what changes speed, not answers
        # (so a new backend, or a new speed option, moves no existing label's cache key)
        d[cfg.backend] = asdict(options if options is not None else spec.options())
        semantic[cfg.backend] = {k: v for k, v in d[cfg.backend].items() if k not in spec.not_in_version}
    # the RESOLVED dtype (labels made in bf16 and in fp32 never share a cache entry); `auto` that
    # resolves to bf16 hashes as the explicit bf16 configs did before. A backend computing
    # elsewhere (http) sets the dtype it has always hashed.
    semantic["dtype"] = getattr(backend, "dtype", None) or cfg.dtype
    version = content_hash(semantic, template_text, rubric, n=12)
    ann_id = name
    if mode_overridden:
        ann_id += f"/{cfg.mode}"
    if cfg.instruction:
        ann_id += f"+instr-{content_hash(cfg.instruction, n=6)}"
    return Annotator(kind="llm", id=ann_id, version=version,
                     config={**d, "template_file": str(template_path.name), "rubric": rubric})


class LLMJudge:
    def __init__(self, name: str, cfg: LLMJudgeConfig, template_text: str, template_path: Path, rubric: str,
                 backend, mode_overridden: bool = False, options=None):
        """`options`: the chosen backend's options section (None: its defaults)."""
        self.name, self.cfg, self.template, self.rubric, self.backend = name, cfg, template_text, rubric, backend
        self.orders = BOTH_ORDERS if cfg.both_orders else ("AB",)
        self.tie_band = cfg.tie_band
        self.annotator = judge_annotator(name, cfg, template_text, template_path, rubric, backend, mode_overridden,
                                         options)

    def build_prompt(self, pair: Pair, order: str) -> Prompt:
        cfg = self.cfg
        first, second = (pair.response_a, pair.response_b) if order == "AB" else (pair.response_b, pair.response_a)
        instr = cfg.instruction_format.format(instruction=cfg.instruction) if cfg.instruction else ""
        text = self.template.format(
            rubric=self.rubric, instruction=instr, label_1=cfg.labels[0], label_2=cfg.labels[1],
            prompt=self.backend.truncate(pair.prompt, cfg.max_prompt_tokens),
            response_1=self.backend.truncate(first, cfg.max_response_tokens),
            response_2=self.backend.truncate(second, cfg.max_response_tokens))
        messages = ([{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []) + \
                   [{"role": "user", "content": text}]
        return Prompt(messages=messages, prefix=cfg.answer_prefix)

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        asks = [(p, o) for p in pairs for o in orders]
        prompts = [self.build_prompt(p, o) for p, o in asks]
        if self.cfg.mode == "logprob":
            results = self.backend.logprob(prompts, list(self.cfg.labels), self.cfg.batch_size)
        else:
            results = self.backend.generate(prompts, self.cfg.max_new_tokens, self.cfg.temperature, self.cfg.top_p,
                                            self.cfg.seed, self.cfg.batch_size)
        labels = [self._label(p, o, r) for (p, o), r in zip(asks, results)]
        k = len(orders)
        return [labels[i * k:(i + 1) * k] for i in range(len(pairs))]

    def _label(self, pair: Pair, order: str, r: BackendResult) -> Label:
        """One answer -> one label; an answer that cannot be read is an error label, never a verdict,
        and never stops the other answers of the batch."""
        if r.error is not None:
            return error_label(pair, self.annotator, order, r.error, r.latency_s)
        try:
            return self._read(pair, order, r)
        except _Unreadable as e:
            return error_label(pair, self.annotator, order, str(e), r.latency_s)
        except Exception as e:  # a malformed answer from any backend (e.g. content that is not text)
            return error_label(pair, self.annotator, order, f"unreadable answer: {type(e).__name__}: {e}", r.latency_s)

    def _read(self, pair: Pair, order: str, r: BackendResult) -> Label:
        meta = {"mode": self.cfg.mode, "backend": self.cfg.backend}
        p_a = None
        if r.probs is not None:  # logprob mode with probabilities
            p1, p2 = (r.probs.get(l, 0.0) for l in self.cfg.labels)
            if not all(isinstance(p, (int, float)) and math.isfinite(p) and p >= 0 for p in (p1, p2)):
                # a NaN compares false both ways and became a tie; an Inf poisoned the stored JSON
                raise _Unreadable(f"non-finite logprob: P({self.cfg.labels[0]})={p1!r}, P({self.cfg.labels[1]})={p2!r}")
            mass = p1 + p2
            raw = json.dumps({"p_" + self.cfg.labels[0]: p1, "p_" + self.cfg.labels[1]: p2, "mass": mass,
                              **({"top": r.top} if r.top else {})})
            if mass <= 0:  # neither answer token among the returned probabilities: nothing to read
                verdict = "unparsed"
            else:
                p_first = p1 / mass
                p_a = p_first if order == "AB" else 1.0 - p_first
                verdict = "tie" if abs(p_a - 0.5) <= self.cfg.tie_band and self.cfg.tie_band > 0 else (
                    "A" if p_a > 0.5 else "B" if p_a < 0.5 else "tie")
            meta["answer_mass"] = mass
        else:  # generated text (generate mode, or an HTTP server that returned no logprobs)
            if not isinstance(r.text, str):
                raise _Unreadable(f"malformed answer: text is {type(r.text).__name__}, not a string")
            raw = r.text
            which = parse_verdict(self.cfg.answer_prefix + r.text, self.cfg.labels, self.cfg.verdict_regex)
            verdict = _to_canonical(which, order)
            if self.cfg.mode == "logprob":
                meta["no_logprobs"] = True
        return Label(pair_id=pair.pair_id, annotator=self.annotator, verdict=verdict, shown_order=order, p_a=p_a,
                     raw_output=raw, latency_s=r.latency_s, tokens_in=r.tokens_in, tokens_out=r.tokens_out,
                     cost=None, meta=meta)


class _Unreadable(ValueError):
    """An answer that arrived but cannot be read as a verdict (recorded as an error label)."""


def build_llm_judge(name: str, data: dict, path: Path, ref: JudgeRef | None = None, home=None,
                    device: str | None = None, rubric: str | None = None) -> LLMJudge:
    """Validate `data` (the YAML of judges/configs/<name>.yaml) and build the judge and its backend."""
    where = f"{path}:"
    cfg, options = read_llm_judge_config(data, where)
    mode_overridden = False
    if ref is not None:
        if ref.instruction is not None:
            cfg.instruction = ref.instruction or None
        if ref.mode is not None and ref.mode != cfg.mode:
            cfg.mode, mode_overridden = ref.mode, True
        if ref.both_orders is not None:
            cfg.both_orders = ref.both_orders
    if device is not None:
        cfg.device = device
    _validate(cfg, where)
    template_path, template_text = read_template(cfg.template, where, cfg.mode)
    if cfg.mode in OTHER_MODES:
        module, factory = OTHER_MODES[cfg.mode]
        build = getattr(importlib.import_module(module), factory)
        return build(name, cfg, options, template_path, template_text, where, home, rubric, mode_overridden)
    backend = make_backend(cfg, options.get(cfg.backend), where, home)
    if cfg.mode == "logprob":
        backend.check_labels(list(cfg.labels), where)
    return LLMJudge(name, cfg, template_text, template_path, rubric or cfg.rubric or DEFAULT_RUBRIC, backend,
                    mode_overridden, options.get(cfg.backend))


# mode -> (module, factory) of the judges built elsewhere; imported on use, as judges.registry does
# (judges/pointwise.py imports this module)
OTHER_MODES = {"score": ("judges.pointwise", "build_score_judge")}
