"""`harness dashboard`: start the Streamlit dashboards on the store, bound to 127.0.0.1 by default."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..store import Store, default_home

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


def add_arguments(p):
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the store to the network)")
    p.add_argument("--dry-run", action="store_true", help="print the streamlit command instead of running it")


def command(args) -> tuple[list[str], dict]:
    home = Path(args.home).resolve() if args.home else default_home().resolve()
    if not APP.exists():
        raise FileNotFoundError(f"{APP}: the dashboards app is missing from this install")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: not a port number")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
           "--server.address", args.address, "--server.port", str(args.port),
           "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", "--", "--home", str(home)]
    return cmd, {**os.environ, "HARNESS_HOME": str(home)}


def run(args) -> int:
    cmd, env = command(args)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    Store(env["HARNESS_HOME"])  # create or check the store (schema version) before serving it
    print(f"harness dashboard: http://{args.address}:{args.port}  (store {env['HARNESS_HOME']})", file=sys.stderr,
          flush=True)
    if os.name == "posix":  # become the server: a signal to this PID reaches streamlit itself
        os.execve(cmd[0], cmd, env)
    return serve_child(cmd, env)


def serve_child(cmd: list[str], env: dict) -> int:
    """Where exec is not available: run streamlit as a child and stop it when this process is told
    to stop (SIGTERM, SIGINT), so no server keeps serving after `harness dashboard` is gone."""
    child = subprocess.Popen(cmd, env=env)

    def stop(signum, frame):
        child.terminate()

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if child.poll() is None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
