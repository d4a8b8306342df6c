"""The vLLM sampler's parts that need no engine (they run without .venv-vllm): the weights it pushes
(a LoRA adapter merged as peft's own merge_and_unload merges it, the policy untouched; tied weights
written once each), the per-request seeds, and the clear errors for a server that cannot take them."""
from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch
from safetensors.torch import load_file

from harness.config import DataConfig, LoraConfig, ModelConfig, SamplingConfig
from harness.models import apply_lora, load_model
from harness.sampling import SamplingError
from harness.vllm_sampling import ServedEngine, VllmSampler, merged_state_dict, request_seeds, weights_file
from tiny_llama import make_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, embedded_path):
    path = make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", embedded_path)
    return load_model(ModelConfig(name=path))


def test_lora_merged_as_peft_merges_it_and_the_policy_is_untouched(tiny):
    model, _ = tiny
    lora = apply_lora(copy.deepcopy(model), ModelConfig(lora=LoraConfig(enabled=True, r=4, alpha=8,
                                                                          target_modules=["q_proj", "v_proj"])))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # peft starts B at zero: a zero delta would make any merge look right
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    ours = merged_state_dict(lora)
    assert all(torch.equal(before[k], v) for k, v in lora.state_dict().items())
    reference = copy.deepcopy(lora).merge_and_unload().state_dict()
    assert set(ours) == set(reference)
    assert all(torch.allclose(ours[k], reference[k], atol=1e-6) for k in reference)
    base = dict(model.state_dict())
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(ours[q], base[q], atol=1e-3)  # the delta is in
    assert torch.equal(ours["model.layers.0.self_attn.k_proj.weight"], base["model.layers.0.self_attn.k_proj.weight"])


def test_weights_file_writes_tied_weights_once_each(embedded):
    model, _ = embedded
    state = merged_state_dict(model)
    tied = model.config.tie_word_embeddings
    with weights_file(state) as path:
        back = load_file(path)
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert tied == ("lm_head.weight" in state and
                    state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr())


def test_request_seeds_one_draw_many_seeds():
    a, b = request_seeds(7, 5, 2), request_seeds(7, 8, 2)
    assert a == b[:5]  # a prompt's seed does not depend on how many prompts follow it
    assert len(set(a + [s + 1 for s in a])) == 10  # samples j = seed + j never collide here
    assert request_seeds(8, 5, 2) != a and all(0 <= s < 2**31 - 3 for s in b)


class _FakeServer(BaseHTTPRequestHandler):
    server_info = "device_config=cpu, enable_chunked_prefill=True"

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._send(200, {"data": [{"id": "m"}]})
        if self.path == "/server_info":
            return self._send(200, {"vllm_config": self.server_info})
        return self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(404, {"detail": "Not Found"})

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_url():
    httpd = HTTPServer(("127.0.0.1", 0), _FakeServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_a_cpu_engine_with_chunked_prefill_is_refused(tiny, fake_url):
    model, tok = tiny
    with pytest.raises(SamplingError, match="chunked prefill on, where a seeded request dies.*--no-enable-chunked"):
        VllmSampler(SamplingConfig(backend="vllm", vllm_url=fake_url), model, tok, DataConfig())


def test_a_server_without_dev_mode_is_a_clear_error(fake_url, monkeypatch):
    monkeypatch.setattr(_FakeServer, "server_info", "device_config=cuda, enable_chunked_prefill=True")
    engine = ServedEngine(fake_url)
    assert engine.model == "m"
    engine.check_seedable()  # a GPU engine may chunk: its generators rewind
    with pytest.raises(SamplingError, match="no /collective_rpc: start it with VLLM_SERVER_DEV_MODE=1"):
        engine.rpc("harness_load_weights", "/x.safetensors")


def test_several_processes_on_one_served_engine_are_refused(tiny, monkeypatch, fake_url):
    model, tok = tiny
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SamplingError, match="2 processes would share one engine"):
        VllmSampler(SamplingConfig(backend="vllm", vllm_url=fake_url), model, tok, DataConfig())
