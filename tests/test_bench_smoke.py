"""Benches that cannot rot: every bench/*.py script runs here in its `--smoke` mode (a tiny random Llama
with the embedded model's tokenizer, one step, tiny data, a temp output), as a subprocess, and the
JSON it writes is checked: its keys, finite positive timings, the ratios, and that both sides (TRL
and ours) really took a step (finite loss, weights moved). A bench/*.py script with no entry in
SMOKE fails `test_every_bench_script_has_a_smoke_test`. The GPU shell scripts: `bash -n`, every flag
they pass to a bench script or to `harness train` is one it accepts, every config key they override
exists, and `bench/gpu_check.sh --dry-run` runs the whole check on the CPU. Smoke timings time nothing."""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from harness import devices

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
LIBS = {"bench_common.py", "trl_steps.py"}  # modules the bench scripts import, not scripts
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run(tmp_path: Path, model_cache: Path, argv: list[str], timeout: int = 800) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_MODEL_CACHE": str(model_cache), "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def smoke(tmp_path, model_cache, script: str, *extra: str) -> dict:
    out = tmp_path / f"{Path(script).stem}.json"
    run(tmp_path, model_cache, [sys.executable, str(BENCH / script), "--smoke", "--out", str(out), *extra])
    return json.loads(out.read_text())


def positive(*xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in xs)


def finite(xs) -> bool:
    return bool(xs) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def expected_precision() -> str:
    return "bf16" if devices.cpu_native(torch.bfloat16)[0] else "fp32"


def check_machine(m: dict, precision: str | None = None) -> None:
    assert m["cpu_model"] and set(m["cpu_flags"]) >= {"avx2", "avx512_bf16", "amx_bf16"}
    assert m["cpu_capability"] == devices.cpu_capability() and m["cores"] >= 1
    if precision:
        assert m["precision"] == precision and m["precision_reason"]


def check_side(side: dict, time_key: str = "median_s") -> None:
    assert positive(side[time_key]), side
    assert finite(side["loss"]), side  # a step ran and gave a loss


# -- one checker per bench script: what its smoke JSON must hold ---------------------------------------
def check_dpo(d: dict, precision: str) -> None:
    assert d["bench"] == "dpo_step" and d["smoke"] and d["precision"] == precision
    check_machine(d["machine"], precision)
    for setting in ("ref_each_step", "ref_cached"):
        r = d[setting]
        for side in ("trl", "harness"):
            check_side(r[side])
            assert positive(r[side]["median_cpu_s"], r[side]["response_tokens_per_step"])
        assert positive(r["ratio_trl_over_harness"], r["cpu_ratio_trl_over_harness"])
        assert r["trl"]["weight_change"] > 0  # TRL's optimizer step moved its weights
    assert d["harness_weight_change"] > 0  # and ours
    # the first step of each side starts at policy == reference: the sigmoid DPO loss is log 2 on both.
    # Under bf16 autocast the reference and policy passes round apart (measured on an AMX Xeon: TRL
    # 0.69328, harness 0.69302); 5e-3 is a margin of 0.1 nats at beta 0.1, far below a wrong reference
    tol = 1e-4 if precision == "fp32" else 5e-3
    assert d["ref_each_step"]["trl"]["loss"][0] == pytest.approx(math.log(2), abs=tol)
    assert d["ref_each_step"]["harness"]["loss"][0] == pytest.approx(math.log(2), abs=tol)


def check_oaif(d: dict, precision: str, settings=("rule", "llm")) -> None:
    assert d["bench"] == "oaif_step" and d["smoke"] and d["precision"] == precision
    check_machine(d["machine"], precision)
    for s in settings:
        r = d[s]
        check_side(r["trl"])
        check_side(r["harness"])
        assert positive(r["ratio_trl_over_harness"], r["harness"]["median_sample_s"], r["harness"]["median_train_s"])
        assert r["harness"]["response_tokens_per_step"] == 2 * d["prompts_per_step"] * d["max_new_tokens"]  # EOS held back
        assert r["trl"]["weight_change"] > 0 and r["harness_weight_change"] > 0
        if precision == "bf16":  # the bf16 sampling copy runs only where bf16 is what both sides use
            check_side(r["harness_bf16_sampling"])
            assert positive(r["ratio_trl_over_harness_bf16_sampling"])
        else:
            assert "skipped" in r["harness_bf16_sampling"]


def check_rl(d: dict, precision: str) -> None:
    assert d["bench"] == "rl_step" and d["smoke"] and d["precision"] == precision
    check_machine(d["machine"], precision)
    for side in ("trl", "harness"):
        s = d[side]
        check_side(s, "s_per_step")
        assert positive(s["cpu_s_per_step"], s["gen_tokens_per_step"]) and s["steps_timed"] >= 1
        assert s["weight_change"] > 0
    assert positive(d["ratio_trl_over_harness"], d["ratio_cpu_trl_over_harness"], d["ratio_cpu_per_generated_token"])


def check_judge(d: dict, precision: str) -> None:
    assert d["bench"] == "judge_throughput" and d["smoke"] and d["precision"] == precision
    check_machine(d["machine"], precision)
    assert set(d["results"]) == {f"{m}-{precision}" for m in ("logprob", "generate", "reasoning")} | {
        "logprob-bf16", "logprob-fp32"}
    for name, r in d["results"].items():
        assert positive(r["pairs_per_s"], r["seconds"]), name
    assert d["results"][f"logprob-{precision}"]["parse_rate"] == 1.0  # logprob mode always gives a verdict
    assert positive(d["ratio_logprob_vs_generate"], d["ratio_logprob_vs_reasoning"], d["ratio_bf16_vs_fp32_logprob"])


def check_mixed(d: dict, precision: str) -> None:
    assert d["check"] == "mixed_precision" and d["smoke"] and d["steps"] == 1
    assert d["weights"] == "float32" and d["compute"] == ["torch.bfloat16"]  # bf16 autocast over fp32 weights
    assert d["changed"] > 0.99 and not d["warnings"]
    check_machine(d["machine"])


def check_step_report(d: dict, precision: str) -> None:
    assert d["smoke"] and d["run_id"] == "smoke" and d["steps_timed"] == 1 and d["n_params"] > 10**6
    assert positive(d["step_s"], d["source_s"], d["train_s"], d["response_tokens_per_step"], d["response_tokens_per_s"])
    assert d["mfu_response_tokens"] is None  # no peak on a CPU
    check_machine(d["machine"])


def check_kill(d: dict, precision: str) -> None:
    assert d["bench"] == "kill_matrix" and d["smoke"] and d["all_ok"]
    (case,) = d["cases"]
    assert case["case"] == "oaif" and case["killed_before_end"] and case["kill_rc"] == -9 and case["rerun_rc"] == 0
    assert case["rows_ref"] > 0 and case["rows"] == case["rows_ref"] and case["lost"] == case["duplicated"] == 0
    assert case["max_abs_weight_diff"] == 0.0  # resumed = uninterrupted, exactly
    check_machine(d["machine"])


def check_store_load(d: dict, precision: str) -> None:
    # the bench's --url defaults to HARNESS_TEST_PG: PostgreSQL under `make test`, SQLite without it
    backend = "postgresql" if os.environ.get("HARNESS_TEST_PG") else "sqlite"
    assert d["smoke"] and d["backend"] == backend and d["labels_acknowledged"] > 0
    assert d["labels_stored"] == d["labels_acknowledged"] and d["lost"] == d["duplicated"] == d["write_errors"] == 0
    assert d["import"]["records"] == 999 and d["training_rc"] == 0 and d["training_steps"] == 2
    assert positive(d["write_latency_ms"]["p50"], d["labels_per_s"])
    check_machine(d["machine"])


def check_dashboard(d: dict, precision: str) -> None:
    assert d["smoke"] and d["store"]["labels"] > 0
    pages = ("leaderboard", "training", "controllability", "annotators", "pair_browser", "label")
    for page in pages:
        assert positive(d["apptest"][page]["first_view_s"], d["apptest"][page]["cached_view_s"]), page
    assert positive(*d["apptest"]["interactions_s"].values())
    # read after the interactions: the Label page's click stored one label more
    assert d["naive"]["rows"] == d["store"]["labels"] + 1 and positive(d["naive"]["labels_df_all_s"])
    check_machine(d["machine"])


def check_random_init(d: dict, precision: str) -> None:
    from transformers import AutoModelForCausalLM

    assert d["smoke"] and set(d["models"]) == {"tiny"} and d["models"]["tiny"]["n_params"] > 10**6
    model = AutoModelForCausalLM.from_pretrained(d["models"]["tiny"]["path"])
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32


def check_vllm_oaif(d: dict, precision: str) -> None:
    # both OAIF runs trained (harness train returned 0 inside the bench) and timed their sampling
    assert d["smoke"] and d["steps_timed"] == 1 and d["max_new_tokens"] == 8
    for side in ("transformers", "vllm_served"):
        assert positive(d[side]["step_s"], d[side]["sample_s"], d[side]["train_s"]), side
    assert d["vllm_server_start_s"] > 0
    check_machine(d["machine"])


# script -> (checker, needs TRL)
SMOKE = {
    "dpo_step.py": (check_dpo, True),
    "oaif_step.py": (check_oaif, True),
    "rl_step.py": (check_rl, True),
    "judge_throughput.py": (check_judge, False),
    "mixed_precision_check.py": (check_mixed, False),
    "step_report.py": (check_step_report, False),
    "kill_matrix.py": (check_kill, False),
    "store_load.py": (check_store_load, False),
    "dashboard_pages.py": (check_dashboard, False),
    "random_init_models.py": (check_random_init, False),
    "vllm_oaif_step.py": (check_vllm_oaif, False),  # needs .venv-vllm (make vllm-env), as tests/test_vllm_*.py
}


def test_every_bench_script_has_a_smoke_test():
    scripts = {p.name for p in BENCH.glob("*.py")} - LIBS
    assert scripts == set(SMOKE), f"bench scripts without a smoke test: {sorted(scripts - set(SMOKE))}"
    for name in scripts:  # and a --smoke flag its docstring shows
        assert "--smoke" in flags(BENCH / name) and "--smoke" in ast.get_docstring(ast.parse((BENCH / name).read_text()))


@pytest.mark.parametrize("script", [pytest.param(s, marks=[pytest.mark.bench] if trl else []) for s, (_, trl)
                                    in SMOKE.items()])
def test_bench_smoke(script, tmp_path, model_cache, embedded_path, shared_data):
    check, needs_trl = SMOKE[script]
    if needs_trl:
        pytest.importorskip("trl")
    if script == "vllm_oaif_step.py":
        from vllm_helpers import skip_without_vllm_env

        skip_without_vllm_env()
    if script == "random_init_models.py":  # --out is a directory of models
        run(tmp_path, model_cache, [sys.executable, str(BENCH / script), "--smoke", "--out", str(tmp_path / "models")])
        d = json.loads((tmp_path / "models" / "random_init_models.json").read_text())
    else:
        d = smoke(tmp_path, model_cache, script)
    check(d, expected_precision())


@pytest.mark.bench
def test_oaif_bench_bf16_on_both_sides(tmp_path, model_cache, embedded_path, shared_data):
    """The bf16 path (where it is native): TRL bf16=True, ours bf16 autocast, plus the bf16 sampling copy.
    Forced here, emulated on a CPU without it: the tiny model makes that seconds too."""
    pytest.importorskip("trl")
    d = smoke(tmp_path, model_cache, "oaif_step.py", "--precision", "bf16", "--settings", "rule")
    check_oaif(d, "bf16", settings=("rule",))
    assert d["machine"]["precision_reason"] == "explicit bf16"


def test_auto_precision_follows_the_capability(monkeypatch):
    """`--precision auto` is bf16 exactly where harness.devices says bf16 is native (mocked both ways)."""
    sys.path.insert(0, str(BENCH))
    from bench_common import pick_precision

    monkeypatch.setattr(devices, "cpu_native", lambda dtype: (False, "cpu capability AVX2 has no native bf16"))
    assert pick_precision("auto") == ("fp32", "auto: cpu capability AVX2 has no native bf16")
    monkeypatch.setattr(devices, "cpu_native", lambda dtype: (True, "cpu capability AVX512 with avx512_bf16"))
    assert pick_precision("auto")[0] == "bf16" and pick_precision("fp32")[0] == "fp32"
    with pytest.raises(ValueError, match="--precision"):
        pick_precision("fp8")


# -- the GPU shell scripts --------------------------------------------------------------------------------
GPU_SCRIPTS = sorted(BENCH.glob("gpu_*.sh"))


def flags(script: Path) -> set[str]:
    """The --flags a script's argparse accepts, read from its add_argument calls (no import)."""
    out = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            out |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")}
    return out


def commands(sh: Path) -> list[str]:
    """The script's command lines, continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", sh.read_text())
    return [line.split(" #")[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def config_keys(cls=None, prefix="") -> set[str]:
    """Every dotted key of the run config (model.name, train.steps, ...)."""
    from harness.config import RunConfig

    cls = cls or RunConfig
    hints, out = typing.get_type_hints(cls), set()
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            out |= config_keys(kind, f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


@pytest.mark.parametrize("sh", GPU_SCRIPTS, ids=lambda p: p.name)
def test_gpu_script_parses_and_passes_only_accepted_flags(sh):
    assert shutil.which("bash")
    proc = subprocess.run(["bash", "-n", str(sh)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    calls = 0
    for line in commands(sh):
        for m in re.finditer(r"python3 (bench/\w+\.py)([^|&;>]*)", line):
            script = REPO / m.group(1)
            assert script.exists(), f"{sh.name} calls {m.group(1)}, which does not exist"
            passed = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", m.group(2)))
            assert passed <= flags(script), f"{sh.name}: {m.group(1)} does not accept {sorted(passed - flags(script))}"
            calls += 1
        for m in re.finditer(r"(?:\$H|harness\.cli [^|&;>]*?) train (\S+)([^|&;>]*)", line):
            config = m.group(1)
            if config.startswith("$"):  # RULE=..., DPO=... assignments in the same script
                config = re.search(rf"^{config[1:]}=(\S+)", sh.read_text(), re.M).group(1)
            assert (REPO / config).exists(), f"{sh.name}: no config {config}"
            passed = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", m.group(2)))
            assert passed <= {"--run-id", "--group"}, f"{sh.name}: harness train does not accept {passed}"
            calls += 1
    assert calls >= 3, f"{sh.name}: found only {calls} calls to check"
    keys = set(re.findall(r"(?<![\w.$/-])([a-z_]+(?:\.[a-z_]+)+)=", sh.read_text()))
    assert keys and keys <= config_keys(), f"{sh.name}: unknown config keys {sorted(keys - config_keys())}"


def test_gpu_check_dry_run_on_cpu(tmp_path, model_cache, embedded_path, shared_data):
    """bench/gpu_check.sh --dry-run: the whole GPU check with the 2-layer `tiny` arch on the CPU."""
    env_work = tmp_path / "work"
    proc = run(tmp_path, model_cache, ["env", f"WORK={env_work}", "bash", str(BENCH / "gpu_check.sh"), "--dry-run"])
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    by = {(d["check"], d.get("weights")): d for d in lines}
    assert not [d for d in lines if "error" in d], (lines, (env_work / "log").read_text()[-4000:])
    assert by[("mixed_precision", "float32")]["changed"] > 0.99  # fp32 master weights + bf16 autocast learn
    assert by[("mixed_precision", "bfloat16")]["changed"] < 0.10  # pure bf16 rounds the updates away
    for check in ("oaif_step_tiny", "dpo_step_tiny"):
        assert positive(by[(check, None)]["step_s"], by[(check, None)]["train_s"]), by[(check, None)]
    assert "skipped" in by[("ddp_2gpu_oaif", None)]
