"""What the harness adds to vLLM's worker (`worker_extension_cls=harness.vllm_worker.HarnessWorker`).

vLLM mixes this class into its worker; the harness calls its methods through `collective_rpc`: an
in-process `vllm.LLM` directly, a served engine through `POST /collective_rpc` (the server runs with
VLLM_SERVER_DEV_MODE=1), where every argument arrives as a string.

It runs inside vLLM's process (vLLM's torch and transformers): it imports nothing from the harness.
"""
from __future__ import annotations

from safetensors.torch import load_file


class HarnessWorker:
    def harness_load_weights(self, source) -> int:
        """Load full weights (names as the checkpoint's) in place: `source` is a safetensors file's path
        (over HTTP) or, in the same process, the {name: tensor} dict. vLLM re-derives what it computes
        from them (fused or repacked layouts). Returns the tensor count."""
        weights = load_file(source) if isinstance(source, str) else source
        self.model_runner.reload_weights(weights_iterator=iter(weights.items()))
        return len(weights)
