"""Checkpoints of a run: staged in a temp dir, renamed into place and marked COMPLETE (atomic), the
newest `keep` kept; optimizer state dropped once a run is done.

A mixin of `Store` (it uses `run_dir` and `get_run`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from .schema import StoreError

# a checkpoint's optimizer state: accelerate's (optimizer.bin, optimizer_1.bin, ...) and, in checkpoints
# written before the accelerate loop, the harness's own
OPTIMIZER_FILES = ("optimizer*.bin", "optimizer.safetensors")


def _complete_by_step(root: Path) -> list[Path]:
    """The checkpoints under `root` marked COMPLETE, oldest step first (none if `root` is absent)."""
    return sorted((p for p in root.glob("step-*") if (p / "COMPLETE").exists()),
                  key=lambda p: int(p.name.split("-")[1]))


class Checkpoints:
    def checkpoints_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoints"

    def latest_checkpoint(self, run_id: str) -> Path | None:
        done = _complete_by_step(self.checkpoints_dir(run_id))
        return done[-1] if done else None

    def drop_optimizer_state(self, run_id: str) -> int:
        """Delete the optimizer state of a DONE run's checkpoints (the weights stay, so it can still be
        evaluated or used as init_from, not resumed). Returns the bytes freed."""
        if self.get_run(run_id)["status"] != "done":
            raise StoreError(f"run {run_id}: not done; its optimizer state is what a resume needs")
        return self._drop_optimizer_files(run_id)

    def _drop_optimizer_files(self, run_id: str) -> int:
        freed = 0
        for pattern in OPTIMIZER_FILES:
            for f in self.checkpoints_dir(run_id).glob(f"step-*/{pattern}"):
                freed += f.stat().st_size
                f.unlink()
        return freed

    @contextlib.contextmanager
    def writing_checkpoint(self, run_id: str, step: int, keep: int = 2) -> Iterator[Path]:
        """Yield a temp dir to fill; on success it is renamed into place and marked COMPLETE."""
        tmp = self.checkpoint_staging_dir(run_id, step, f"-{os.getpid()}")
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a failed write (disk full) leaves no half checkpoint
            raise
        self.commit_checkpoint(run_id, step, tmp, keep)

    def checkpoint_staging_dir(self, run_id: str, step: int, suffix: str = "") -> Path:
        """A fresh, empty dir for checkpoint `step` (the trainer's processes all write into the same one,
        so no pid in its name there); nothing reads it until commit_checkpoint."""
        root = self.checkpoints_dir(run_id)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".tmp-step-{step}{suffix}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return tmp

    def commit_checkpoint(self, run_id: str, step: int, staging: Path, keep: int = 2) -> Path:
        """Mark `staging` COMPLETE, rename it into place (atomic), keep the newest `keep` checkpoints."""
        root = self.checkpoints_dir(run_id)
        (staging / "COMPLETE").write_text(str(step))
        final = root / f"step-{step}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        done = _complete_by_step(root)
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def drop_resume_state(self, run_id: str) -> int:
        """A finished run is never resumed: delete its checkpoints' optimizer states (AdamW's are twice
        the weights). Weights, scheduler and RNG stay. Returns the bytes freed."""
        return self._drop_optimizer_files(run_id)
