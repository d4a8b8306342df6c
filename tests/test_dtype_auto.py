"""`dtype: auto` follows the CPU in front of it (harness.devices): bf16 only where it is native.

The CPU capability is MOCKED in most tests (devices.cpu_capability / devices.cpu_flags): the machine
that runs the tests is whatever CI has, and each rule must be checked for AVX2-only, AVX512 without
bf16 and AVX512-BF16 CPUs alike. Nothing here loads a model.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from harness import devices

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_JUDGES = ("smollm2-logprob", "smollm2-generate", "smollm2-reasoning")


@pytest.fixture
def cpu_as(monkeypatch):
    """cpu_as(capability, flags): this process sees that CPU (torch's dispatch level + cpuinfo flags)."""
    def set_cpu(capability: str, flags=()):
        monkeypatch.setattr(devices, "cpu_capability", lambda: capability)
        monkeypatch.setattr(devices, "cpu_flags", lambda path="/proc/cpuinfo": set(flags))
    return set_cpu


@pytest.fixture
def threads_restored():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_avx2_only_cpu_auto_is_fp32_for_every_role(cpu_as):
    cpu_as("AVX2", {"avx2", "fma"})
    assert devices.cpu_native(torch.bfloat16)[0] is False
    for role in devices.ROLES:
        dtype, why = devices.resolve_dtype("auto", CPU, role, own=torch.float32)
        assert dtype == torch.float32, (role, why)
    assert devices.resolve_dtype(None, CPU, "judge")[0] == torch.float32  # unset = auto


def test_avx512_bf16_cpu_judge_generation_sampling_bf16_policy_and_measure_fp32(cpu_as):
    cpu_as("AVX512", {"avx2", "avx512f", "avx512_bf16"})
    dtype, why = devices.resolve_dtype("auto", CPU, "judge")
    assert dtype == torch.bfloat16 and "avx512_bf16" in why
    assert devices.resolve_dtype("auto", CPU, "policy")[0] == torch.float32  # AdamW's master weights
    assert devices.resolve_dtype("auto", CPU, "measure")[0] == torch.float32  # log-probs compared with training
    assert devices.resolve_dtype("auto", CPU, "generate")[0] == torch.bfloat16  # eval text, sample-once pairs
    # sampling: auto = a bf16 copy of an fp32 policy (synced every step); a bf16 policy samples itself
    dtype, why = devices.resolve_dtype("auto", CPU, "sampling", own=torch.float32)
    assert dtype == torch.bfloat16 and "copy" in why
    assert devices.resolve_dtype("auto", CPU, "sampling", own=torch.bfloat16)[0] == torch.bfloat16


def test_amx_flag_counts_as_native_bf16(cpu_as):
    cpu_as("AVX512", {"avx512f", "amx_bf16"})
    assert devices.resolve_dtype("auto", CPU, "judge")[0] == torch.bfloat16


def test_avx512_without_bf16_flag_is_fp32(cpu_as):
    cpu_as("AVX512", {"avx2", "avx512f", "avx512bw"})
    dtype, why = devices.resolve_dtype("auto", CPU, "judge")
    assert dtype == torch.float32 and "avx512_bf16" in why


def test_explicit_bf16_on_avx2_warns_and_is_honoured(cpu_as):
    cpu_as("AVX2", {"avx2"})
    with pytest.warns(UserWarning, match="emulated and slowly"):
        dtype, why = devices.resolve_dtype("bf16", CPU, "judge", where="judge dtype")
    assert dtype == torch.bfloat16 and "explicit bf16" in why


def test_explicit_dtype_where_native_does_not_warn(cpu_as):
    cpu_as("AVX512", {"avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert devices.resolve_dtype("bfloat16", CPU, "policy")[0] == torch.bfloat16
        assert devices.resolve_dtype("fp32", CPU, "judge")[0] == torch.float32


@pytest.mark.parametrize("where", ["model.dtype", "sampling.dtype", "judge dtype"])
def test_unknown_dtype_names_the_field(where):
    with pytest.raises(ValueError, match=rf"{where}: unknown dtype 'int3'"):
        devices.resolve_dtype("int3", CPU, "policy", where=where)


def test_unknown_role_raises():
    with pytest.raises(ValueError, match="unknown role"):
        devices.resolve_dtype("auto", CPU, "critic")


def test_pick_dtype_auto_on_cpu_is_fp32():
    """Unmocked, on this machine: a trained (or measured) model on CPU keeps fp32, whatever the CPU."""
    from harness.models import pick_dtype

    assert pick_dtype("auto", CPU) == torch.float32
    assert pick_dtype("auto", CPU, for_training=False) == torch.float32


def test_configure_threads_respects_omp_num_threads(monkeypatch, threads_restored):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    torch.set_num_threads(1)
    monkeypatch.setattr(devices, "available_cores", lambda: 8)
    assert devices.configure_threads() == 1  # an explicit OMP_NUM_THREADS wins: not raised to 8


def test_configure_threads_shares_cores_among_local_processes(monkeypatch, threads_restored):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(devices, "available_cores", lambda: 4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert devices.configure_threads() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert devices.configure_threads() == 1  # never 0
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert devices.configure_threads() == 4


def test_run_dtypes_has_model_and_sampling(cpu_as, threads_restored):
    cpu_as("AVX512", {"avx512_bf16"})
    out = devices.run_dtypes({"model": {"device": "cpu", "dtype": "auto"}, "sampling": {"dtype": "auto"}})
    assert out["model"]["dtype"] == "fp32" and out["model"]["device"] == "cpu" and out["model"]["reason"]
    assert out["sampling"]["dtype"] == "bf16" and "copy" in out["sampling"]["reason"]
    assert out["generate"]["dtype"] == "bf16" and out["mixed_precision"]["mode"] == "bf16"
    assert out["cpu_capability"] == "AVX512" and out["cpu_bf16_native"] is True and out["threads"] >= 1
    cpu_as("AVX2", {"avx2"})  # the same config on an AVX2-only CPU: fp32 everywhere, said why
    out = devices.run_dtypes({"model": {"device": "cpu", "dtype": "auto"}, "sampling": {"dtype": "auto"}})
    assert [out[k]["dtype"] for k in ("model", "sampling", "generate")] == ["fp32"] * 3
    assert out["mixed_precision"]["mode"] == "no" and "policy itself" in out["sampling"]["reason"]
    out = devices.run_dtypes({"model": {"device": "cpu"}, "sampling": {"dtype": "bf16"}})
    assert out["sampling"]["dtype"] == "bf16"


def test_smollm2_judge_configs_say_auto():
    for name in SMOLLM2_JUDGES:
        data = yaml.safe_load((ROOT / "judges" / "configs" / f"{name}.yaml").read_text())
        assert data["dtype"] == "auto", name


def test_no_shipped_cpu_config_hard_codes_bf16():
    """bf16 in a config is for GPUs only (configs/gpu/, and the GPU launch configs configs/accelerate/,
    which say use_cpu: false); a CPU config says auto or nothing."""
    for p in (ROOT / "configs" / "accelerate").glob("*.yaml"):
        assert yaml.safe_load(p.read_text())["use_cpu"] is False, p
    paths = [p for p in (ROOT / "configs").rglob("*.yaml")
             if not {"gpu", "accelerate"} & set(p.relative_to(ROOT / "configs").parts)]
    paths += list((ROOT / "judges" / "configs").glob("*.yaml"))
    for p in paths:
        text = p.read_text()
        assert "bf16" not in yaml.safe_dump(yaml.safe_load(text)), p


class _Tiny(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, dtype=dtype))


def test_transformers_judge_loads_with_role_judge(monkeypatch):
    """The local judge asks load_model for role judge; no real model is loaded (load_model is replaced)."""
    import harness.models
    from judges import backends

    calls = []

    def fake_load(model_cfg, home=None, for_training=True, role=None, **kw):
        calls.append((model_cfg.dtype, for_training, role))
        return _Tiny(torch.bfloat16), None

    monkeypatch.setattr(harness.models, "load_model", fake_load)
    monkeypatch.setattr(backends, "_MODELS", {})
    b = backends.TransformersBackend("fake-judge", "auto", "cpu")
    assert calls == [("auto", False, "judge")]
    assert b.dtype == "bf16"  # what the loaded model computes in: the judge's version holds this


def test_judge_version_holds_the_resolved_dtype(tmp_path):
    """Labels made in bf16 and fp32 never share a cache entry; `auto` resolved to bf16 hashes as the old
    explicit `dtype: bf16` config did (existing versions unchanged on a bf16-native machine)."""
    from judges.llm import LLMJudge, LLMJudgeConfig, read_template

    path, text = read_template("pairwise.txt", "test")

    class Backend:
        def __init__(self, dtype):
            self.dtype = dtype

    def version(cfg_dtype, resolved):
        return LLMJudge("j", LLMJudgeConfig(dtype=cfg_dtype), text, path, "r", Backend(resolved)).annotator.version

    assert version("auto", "bf16") == version("bf16", "bf16")
    assert version("auto", "fp32") == version("fp32", "fp32")
    assert version("auto", "bf16") != version("auto", "fp32")
    # an http judge computes remotely: `auto` keeps the version the old bf16 default gave
    from judges.backends import registry
    from judges.http_backend import HttpBackendConfig

    def http(d):  # the backend as the registry builds it (no request is sent)
        cfg = LLMJudgeConfig(backend="http", dtype=d)
        return LLMJudge("h", cfg, text, path, "r", registry()["http"].make(cfg, HttpBackendConfig(), "t")).annotator.version

    assert http("auto") == http("bf16")
