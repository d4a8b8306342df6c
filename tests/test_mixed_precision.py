"""Mixed precision trains where pure bf16 does not (issue #15): at the OAIF paper's lr (5e-7) an AdamW
update (~lr per weight) is ~100x below half of bf16's spacing for a weight of 0.02 (~6e-5), so on
bf16 weights it rounds away. The trainer keeps fp32 master weights and autocasts the compute
(`train.mixed_precision: bf16`, through accelerate). Each run is its own process: accelerate's state
is a per-process singleton that fixes the mixed-precision mode once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import devices
from harness.config import load_config

REPO = Path(__file__).resolve().parents[1]

SCRIPT = REPO / "bench" / "mixed_precision_check.py"  # the check bench/gpu_check.sh runs on a GPU


def run(tmp_path: Path, weights_dtype: str, mixed: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--weights", weights_dtype, "--mixed", mixed,
                           "--home", str(tmp_path / f"home-{weights_dtype}-{mixed}")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_bf16_mixed_precision_moves_every_weight_pure_bf16_does_not(tmp_path):
    mixed = run(tmp_path, "float32", "bf16")
    assert mixed["compute"] == ["torch.bfloat16"]  # autocast really computed in bf16 ...
    assert mixed["weights"] == "float32"  # ... over fp32 master weights
    assert mixed["changed"] > 0.99, mixed  # measured: 1.00

    pure = run(tmp_path, "bfloat16", "no")
    assert pure["compute"] == ["torch.bfloat16"] and pure["weights"] == "bfloat16"
    assert pure["changed"] < 0.10, pure  # measured: ~0.01 (the issue measured 0.96% on the same setup)
    assert pure["warnings"] and not mixed["warnings"]  # the trainer says why and what to do  # the trainer says why and what to do


def test_trained_weights_fp32_and_autocast_bf16_on_gpu_with_native_bf16(monkeypatch):
    """`dtype: auto` for a trained policy is fp32 everywhere, also on CUDA (the old rule gave bf16 there
    and AdamW stepped bf16 weights); `mixed_precision: auto` is bf16 where bf16 is native (a GPU, an
    avx512_bf16 CPU), no elsewhere. The GPU and the CPU's flags are mocked (CI's CPU is whatever it is)."""
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(devices, "cuda_native", lambda dtype: (True, "cuda has native bf16"))
    cuda = torch.device("cuda")
    assert devices.resolve_dtype("auto", cuda, "policy")[0] == torch.float32
    assert devices.resolve_dtype("auto", cuda, "judge")[0] == torch.bfloat16  # frozen: bf16 where native
    assert devices.resolve_mixed_precision("auto", cuda)[0] == "bf16"
    monkeypatch.setattr(devices, "cuda_native", lambda dtype: (False, "cuda has no native bf16"))
    assert devices.resolve_mixed_precision("auto", cuda)[0] == "no"
    monkeypatch.setattr(devices, "cpu_native", lambda dtype: (False, "cpu capability AVX2 has no native bf16"))
    assert devices.resolve_mixed_precision("auto", torch.device("cpu"))[0] == "no"
    monkeypatch.setattr(devices, "cpu_native", lambda dtype: (True, "cpu capability AVX512 with avx512_bf16"))
    mode, why = devices.resolve_mixed_precision("auto", torch.device("cpu"))
    assert mode == "bf16" and "avx512_bf16" in why and "fp32 master weights" in why
    assert devices.resolve_mixed_precision("bf16", torch.device("cpu"))[0] == "bf16"  # explicit wins
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # an accelerate launch config's choice
    assert devices.resolve_mixed_precision("auto", cuda)[0] == "fp16"
    with pytest.raises(ValueError, match="train.mixed_precision"):
        devices.resolve_mixed_precision("int8", cuda)


def test_config_rejects_unknown_mixed_precision_and_schedule():
    from harness.config import ConfigError

    with pytest.raises(ConfigError, match="train.mixed_precision.*known: auto, no, bf16, fp16"):
        load_config(None, ["train.mixed_precision=tf32"])
    with pytest.raises(ConfigError, match="train.schedule.*known: linear, cosine, constant"):
        load_config(None, ["train.schedule=step"])


def test_an_accelerator_made_earlier_in_the_process_with_another_mode_does_not_decide_ours(monkeypatch):
    """accelerate fixes one mixed-precision mode per process; a TRL trainer (default bf16) made first
    in a notebook or test session would otherwise make the harness's Accelerator refuse to start."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from harness.trainer import make_accelerator

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    AcceleratorState._reset_state()  # earlier tests in this session fixed "no": start as a fresh process
    assert Accelerator(cpu=True, mixed_precision="bf16").mixed_precision == "bf16"
    native = devices.cpu_native(torch.bfloat16)[0]  # auto on CPU follows the CPU in front of it
    assert make_accelerator(load_config(None, [])).mixed_precision == ("bf16" if native else "no")
