"""In-process vLLM (`vllm.LLM`): the `backend: vllm` judge (judges/vllm_backend.py) and the sampler
with `sampling.vllm_url` unset, on one engine of the embedded SmolLM2-135M (fp32).

They need vllm importable, so they run inside vLLM's venv (.venv-vllm: vLLM's torch, transformers
<5.20, the project installed): from the project's venv, the first test runs this file there in a
subprocess and passes when it passes. Skipped, with the reason, where .venv-vllm is absent.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import torch

from harness.config import DataConfig, SamplingConfig
from judges.registry import load_judge
from vllm_helpers import check_current_not_initial, compare, judge_yaml, one_step, pandalm_pairs, skip_without_vllm_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
IN_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not IN_VLLM, reason="needs vllm importable: runs inside .venv-vllm (the test above)")
NO_CUT = {"max_prompt_tokens": 2048, "max_response_tokens": 2048, "dtype": "fp32"}


@pytest.mark.skipif(IN_VLLM, reason="this is vLLM's venv: the tests below are the real ones")
def test_the_in_process_engine_tests_pass_in_the_vllm_venv(model_cache, capsys):
    skip_without_vllm_env()
    from harness.vllm_server import vllm_python

    env = {**os.environ, "HARNESS_MODEL_CACHE": str(model_cache), "VLLM_CPU_KVCACHE_SPACE": "2",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([str(vllm_python()), "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
                           "-W", "ignore::DeprecationWarning", "-s"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    with capsys.disabled():
        print("\n" + "\n".join(l for l in proc.stdout.splitlines() if l.startswith("[")))
    assert proc.returncode == 0, out[-6000:]
    assert "3 passed, 1 skipped" in out, out[-3000:]


@pytest.fixture(scope="module")
def vllm_judges(tmp_path_factory, model_cache):
    """(vllm logprob judge, vllm generate judge): one engine between them (judges/vllm_backend.py)."""
    tmp = tmp_path_factory.mktemp("judges")
    return [load_judge(str(judge_yaml(tmp, f"smollm2-{mode}", {**NO_CUT, "backend": "vllm",
                                                               "vllm": {"max_model_len": 2048}}, None)))
            for mode in ("logprob", "generate")]


@needs_vllm
def test_vllm_judge_agrees_with_the_transformers_judge(tmp_path, vllm_judges):
    pairs = pandalm_pairs(8)
    for judge, mode in zip(vllm_judges, ("logprob", "generate")):
        local = load_judge(str(judge_yaml(tmp_path, f"smollm2-{mode}", NO_CUT)))
        r = compare(judge, local, pairs)
        print(f"[in-process vllm judge vs transformers, {mode}, 8 pairs x 2 orders] verdicts agree "
              f"{r['agree']}/{r['labels']}" + (f", max |P(A) diff| {r['max_p_diff']:.1e}" if r["with_p"] else
                                               f", same text {r['same_text']}/{r['labels']}"))
        assert r["errors"] == 0 and r["agree"] == r["labels"] == 16
        if mode == "logprob":
            assert r["with_p"] == 16 and r["max_p_diff"] < 1e-3
    assert vllm_judges[0].backend.engine is vllm_judges[1].backend.engine


@needs_vllm
def test_in_process_sampler_samples_the_current_policy_lora_merged(vllm_judges, embedded):
    """Pushes into the judges' engine (so after the judge test): full weights, then a LoRA adapter."""
    from harness.config import LoraConfig, ModelConfig
    from harness.models import apply_lora
    from harness.vllm_sampling import VllmSampler

    initial, tok = embedded
    engine = vllm_judges[0].backend.engine
    cfg = SamplingConfig(backend="vllm", max_new_tokens=16, temperature=1.0)
    data = DataConfig(max_prompt_tokens=64, max_response_tokens=64)
    policy = copy.deepcopy(initial)
    s = VllmSampler(cfg, policy, tok, data, engine=engine)
    one_step(policy, tok)
    s.update(policy, 1)
    now, before = check_current_not_initial(s, policy, initial, tok)
    print(f"[in-process sampler, full weights] max |engine - current| {now:.1e}, mean |engine - initial| {before:.3f}")
    lora = apply_lora(copy.deepcopy(initial), ModelConfig(lora=LoraConfig(enabled=True, r=8, alpha=16)))
    s = VllmSampler(cfg, lora, tok, data, engine=engine)
    one_step(lora, tok, lr=2e-2)
    s.update(lora, 1)
    now, before = check_current_not_initial(s, lora, initial, tok)
    print(f"[in-process sampler, LoRA merged] max |engine - current| {now:.1e}, mean |engine - initial| {before:.3f}")


@needs_vllm
def test_in_process_sampler_seeds_repeat(vllm_judges, embedded):
    from harness.vllm_sampling import VllmSampler

    _, tok = embedded
    s = VllmSampler(SamplingConfig(backend="vllm", max_new_tokens=12, temperature=1.0), copy.deepcopy(embedded[0]),
                    tok, DataConfig(max_prompt_tokens=64), engine=vllm_judges[0].backend.engine)
    prompts = ["Name a colour.", "Count to three.", "Say hello."] * 3
    ids = lambda out: [x.token_ids for per in out for x in per]  # noqa: E731
    torch.manual_seed(3)
    a = s.sample(prompts, 2)
    torch.manual_seed(3)
    b = s.sample(prompts[:4], 2) + s.sample(prompts[4:], 2)  # other batches, the same seeds per request
    torch.manual_seed(4)
    c = s.sample(prompts, 2)
    assert ids(a)[:8] == ids(b)[:8]
    assert ids(a) != ids(c)
