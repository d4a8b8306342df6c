"""The one served vLLM engine of a test session, and the judge comparison the vLLM tests make.

One `vllm serve` of the embedded SmolLM2-135M (fp32, as the transformers judge on an AVX2 CPU) per
pytest process, started on first use and stopped at exit: an engine start is 1.5-5 minutes of both
cores here. Tests that push other weights into it (the sampler's) mark it dirty; `served()` reloads
the original weights before handing it to a test that needs them (a second, not a restart).
HARNESS_TEST_VLLM_URL (developers): use a server already running on the same model instead.
"""
from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from harness.config import DataConfig
from harness.logprobs import build_batch, token_logprobs
from harness.vllm_server import start_server, vllm_python

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SERVED_NAME = "smollm2-135m-instruct"
LP_TOL = 2e-3  # |engine log-prob - trainer log-prob| per sampled token, fp32 both sides
PROMPTS = ["What is the capital of France?", "Name a colour.", "Write one sentence about rain.", "Count to three."]
_STATE: dict = {}


def skip_without_vllm_env():
    if vllm_python() is None:
        pytest.skip("vLLM's venv is absent (.venv-vllm/bin/.installed): run `make vllm-env` (docs/vllm.md)")


def served(model_path: str, clean: bool = True):
    """The session's server (started once); with `clean`, holding the original SmolLM2 weights."""
    skip_without_vllm_env()
    if "error" in _STATE:
        pytest.fail(f"the session's vllm serve failed to start: {_STATE['error']}")
    if "server" not in _STATE and os.environ.get("HARNESS_TEST_VLLM_URL"):
        _STATE["server"], _STATE["dirty"] = Running(os.environ["HARNESS_TEST_VLLM_URL"].rstrip("/")), True
    if "server" not in _STATE:
        log = Path(tempfile.mkdtemp(prefix="vllm-serve-")) / "serve.log"
        try:
            _STATE["server"] = start_server(model_path, log, served_name=SERVED_NAME, dtype="float32")
        except Exception as e:
            _STATE["error"] = str(e)
            raise
        atexit.register(_STATE["server"].stop)
        _STATE["dirty"] = False
    server = _STATE["server"]
    if clean and _STATE["dirty"]:
        from harness.vllm_sampling import ServedEngine

        engine = ServedEngine(server.url)
        engine.rpc("harness_load_weights", str(Path(model_path) / "model.safetensors"))
        engine.reset_prefix_cache()
        _STATE["dirty"] = False
    return server


class Running:
    def __init__(self, url: str):
        self.url = url if url.endswith("/v1") else url + "/v1"


def mark_dirty() -> None:
    _STATE["dirty"] = True


def judge_yaml(tmp: Path, name: str, overrides: dict, http: dict | None = None) -> Path:
    """judges/configs/<name>.yaml with `overrides` (and `http:` keys) applied, written under tmp."""
    data = yaml.safe_load((REPO / "judges" / "configs" / f"{name}.yaml").read_text())
    data.update(overrides)
    if http:
        data["http"] = {**data["http"], **http}
    path = tmp / f"{name}-test.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def pandalm_pairs(n: int) -> list:
    """The first n distinct pairs of the PandaLM test set."""
    from judges.importers import read_labels

    pairs, _ = read_labels("pandalm", SHARED_DATA / "pandalm_testset", limit=n + 16)
    pairs = list(pairs.values()) if isinstance(pairs, dict) else list(pairs)
    out, seen = [], set()
    for p in pairs:
        if p.pair_id not in seen:
            seen.add(p.pair_id)
            out.append(p)
    assert len(out) >= n, f"only {len(out)} distinct PandaLM pairs in the first {n + 16} records"
    return out[:n]


def compare(served_judge, local_judge, pairs) -> dict:
    """Both judges on the same pairs, both orders: per label, verdict agreement and |p_a diff|."""
    from judges.base import BOTH_ORDERS

    a = [l for ls in served_judge.judge(pairs, BOTH_ORDERS) for l in ls]
    b = [l for ls in local_judge.judge(pairs, BOTH_ORDERS) for l in ls]
    diffs = [abs(x.p_a - y.p_a) for x, y in zip(a, b) if x.p_a is not None and y.p_a is not None]
    return {"labels": len(a), "agree": sum(x.verdict == y.verdict for x, y in zip(a, b)),
            "errors": sum(bool(x.meta.get("error")) for x in a),
            "with_p": len(diffs), "max_p_diff": max(diffs, default=None),
            "same_text": sum(x.raw_output == y.raw_output for x, y in zip(a, b)),
            "verdicts": sorted({x.verdict for x in a}), "served": a, "local": b}


# -- the sync check: the engine's log-probs of its samples against harness/logprobs.py ---------
def trainer_logprobs(model, tok, prompts, samples) -> list[list[float]]:
    """harness/logprobs.py's per-token log-probs of the sampled ids under `model`."""
    flat = [(p, s) for p, per in zip(prompts, samples) for s in per]
    batch = build_batch(tok, [p for p, _ in flat], [s.text for _, s in flat],
                        DataConfig(max_prompt_tokens=64, max_response_tokens=64),
                        truncated=[s.truncated for _, s in flat], response_ids=[s.token_ids for _, s in flat])
    with torch.no_grad():
        lp, mask = token_logprobs(model, batch)
    return [row[m.bool()].tolist() for row, m in zip(lp, mask)]


def one_step(model, tok, lr=1e-3):
    """One AdamW step on the NLL of a sentence: every weight moves, so every log-prob does."""
    model.train()
    if not any(p.requires_grad for p in model.parameters()):  # a copy of the frozen session model
        model.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    ids = tok("The quick brown fox jumps over the lazy dog. " * 4, return_tensors="pt")["input_ids"]
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    model.eval()


def gaps(engine_lps, model_lps) -> list[float]:
    return [abs(a - b) for e, m in zip(engine_lps, model_lps) for a, b in zip(e, m)]


def check_current_not_initial(sampler, policy, initial, tok):
    torch.manual_seed(0)
    samples = sampler.sample(PROMPTS, 2)
    engine = [s.logprobs for per in samples for s in per]
    assert all(len(s.logprobs) == s.n_tokens for per in samples for s in per)
    now = gaps(engine, trainer_logprobs(policy, tok, PROMPTS, samples))
    before = gaps(engine, trainer_logprobs(initial, tok, PROMPTS, samples))
    assert max(now) < LP_TOL, f"the engine's log-probs are not the current policy's: max gap {max(now):.2e}"
    assert sum(before) / len(before) > 20 * LP_TOL, "the step moved nothing the check could see"
    return max(now), sum(before) / len(before)
