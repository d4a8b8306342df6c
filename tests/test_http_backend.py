"""The OpenAI-compatible HTTP judge backend against REAL local servers on 127.0.0.1 started here.

- `model` server: a small /v1/chat/completions backed by the embedded SmolLM2 (top_logprobs of the
  next token after the continued assistant prefix, or greedy generation), like `vllm serve`.
- failure servers: a tiny deterministic responder (no model) that is slow, answers 500 a set
  number of times, always 500, or answers 200 with garbage. The backend must survive all of them:
  retries, then `unparsed` labels carrying the error, no crash, nothing lost.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.config import ConfigError, JudgeRef
from harness.records import Pair

SECRET = "sk-test-SECRET-never-stored"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve(respond):
    """Run `respond(body_dict, server) -> (status, bytes[, extra headers])` behind POST /v1/chat/completions.
    Each request is recorded in `server.requests` with its arrival time `t` (time.monotonic)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with srv.lock:
                srv.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "raw": raw,
                                     "t": time.monotonic()})
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            status, payload, *extra = respond(body, srv)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (extra[0] if extra else {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, *a):
            pass

    srv = _Server(("127.0.0.1", 0), Handler)
    srv.lock, srv.requests, srv.state = threading.Lock(), [], {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _ok_logprob(p1=0.7, p2=0.2):
    import math

    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "1"},
                                    "logprobs": {"content": [{"token": "1", "logprob": math.log(p1), "top_logprobs": [
                                        {"token": "1", "logprob": math.log(p1)}, {"token": "2", "logprob": math.log(p2)}]}]}}],
                       "usage": {"prompt_tokens": 50, "completion_tokens": 1}}).encode()


def write_cfg(tmp_path, url, **http):
    """A judge config file pointing at the test server (fast retries for the tests)."""
    import yaml

    cfg = {"kind": "llm", "backend": "http", "mode": http.pop("mode", "logprob"), "both_orders": True,
           "answer_prefix": "The better response is Response ", "max_new_tokens": http.pop("max_new_tokens", 8),
           "http": {"base_url": url, "model": "smollm2", "timeout_s": 2.0, "max_retries": 2, "backoff_s": 0.01,
                    "concurrency": 4, **http}}
    path = tmp_path / "http-test.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


PAIRS = [Pair(prompt="What is 2+2?", response_a="4", response_b="5", dataset="t"),
         Pair(prompt="Name a colour.", response_a="Blue.", response_b="A colour is blue or red or green.", dataset="t")]


def _stored(store):
    return store.labels_df()


# -- the embedded-model server -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_server(embedded):
    import torch

    model, tok = embedded
    lock = threading.Lock()

    def respond(body, srv):
        msgs = body["messages"]
        if body.get("continue_final_message"):
            text = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True) + msgs[-1]["content"]
        else:
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        n_in = ids["input_ids"].shape[1]
        with lock, torch.inference_mode():
            if body.get("logprobs"):
                logp = model(**ids).logits[0, -1].float().log_softmax(-1)
                top = logp.topk(body.get("top_logprobs", 5))
                toks = [{"token": tok.decode([i]), "logprob": v} for v, i in zip(top.values.tolist(), top.indices.tolist())]
                choice = {"message": {"role": "assistant", "content": toks[0]["token"]},
                          "logprobs": {"content": [{**toks[0], "top_logprobs": toks}]}}
                n_out = 1
            else:
                out = model.generate(**ids, max_new_tokens=body.get("max_tokens", 16), do_sample=False,
                                     pad_token_id=tok.pad_token_id)[0, n_in:]
                choice = {"message": {"role": "assistant", "content": tok.decode(out, skip_special_tokens=True)}}
                n_out = len(out)
        return 200, json.dumps({"choices": [{"index": 0, **choice}],
                                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}}).encode()

    with serve(respond) as (srv, url):
        yield srv, url


@pytest.mark.slow
def test_logprob_mode_against_model_server_matches_local(model_server, tmp_path, store, embedded, monkeypatch):
    from judges import label_and_store, load_judge
    from judges.backends import TransformersBackend
    from judges.llm import LLMJudge

    srv, url = model_server
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    judge = load_judge(write_cfg(tmp_path, url, api_key_env="JUDGE_TEST_KEY", timeout_s=300))
    out = label_and_store(judge, PAIRS, store)
    assert len(srv.requests) == 4  # 2 pairs x 2 orders, no retries needed
    assert all(r["auth"] == f"Bearer {SECRET}" for r in srv.requests)
    for j in out:
        assert [l.shown_order for l in j.labels] == ["AB", "BA"]
        assert all(l.verdict in ("A", "B") and 0.0 <= l.p_a <= 1.0 for l in j.labels)
        assert j.consistent is not None
    # the same prompts through the local backend with the same fp32 weights give the same probabilities
    model, tok = embedded
    local = LLMJudge("local", judge.cfg, judge.template, tmp_path / "t.txt", judge.rubric,
                     TransformersBackend("x", "fp32", "cpu", model=model, tokenizer=tok))
    # the HTTP backend truncates by words, the local one by tokens: nothing here is long enough to be cut
    local_labels = local.judge(PAIRS, ("AB", "BA"))
    for j, labs in zip(out, local_labels):
        for a, b in zip(j.labels, labs):
            assert a.p_a == pytest.approx(b.p_a, abs=2e-3)
    df = _stored(store)
    assert len(df) == 4 and set(df["verdict"]) <= {"A", "B"}
    assert df["tokens_in"].min() > 20
    # the key is only ever sent, never stored
    dump = json.dumps(store.query("SELECT * FROM labels")) + json.dumps(store.query("SELECT * FROM annotators"))
    assert SECRET not in dump and "JUDGE_TEST_KEY" in dump


@pytest.mark.slow
def test_generate_mode_against_model_server(model_server, tmp_path, store):
    from judges import label_and_store, load_judge

    srv, url = model_server
    judge = load_judge(JudgeRef(name=write_cfg(tmp_path, url, timeout_s=300), mode="generate", both_orders=False))
    out = label_and_store(judge, PAIRS[:1], store)
    lab = out[0].labels[0]
    assert lab.p_a is None and lab.raw_output  # generated text kept as raw output
    assert lab.verdict in ("A", "B", "tie", "unparsed")
    assert lab.tokens_out >= 1
    assert "logprobs" not in json.loads(srv.requests[-1]["raw"])


# -- failure servers (tiny deterministic responder, no model) ---------------------------------------------
def test_500_then_success_is_retried(tmp_path, store):
    from judges import label_and_store, load_judge

    def respond(body, srv):
        key = json.dumps(body["messages"], sort_keys=True) + body["messages"][0]["content"]
        with srv.lock:
            n = srv.state[key] = srv.state.get(key, 0) + 1
        return (500, b'{"error": "overloaded"}') if n <= 2 else (200, _ok_logprob())

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))  # max_retries 2: the third attempt succeeds
        out = label_and_store(judge, PAIRS, store)
    assert len(srv.requests) == 4 * 3
    assert all(l.verdict in ("A", "B") and l.p_a is not None for j in out for l in j.labels)
    lab = out[0].labels[0]
    assert lab.p_a == pytest.approx(0.7 / 0.9) and lab.tokens_in == 50


def test_retry_after_is_honoured_up_to_max_retry_wait_s(tmp_path, store):
    """A 429 with `Retry-After: 3600` waits max_retry_wait_s (1.2 s), not an hour, and not the client's
    own sub-second backoff (what the client alone does with a wait over a minute)."""
    from judges import label_and_store, load_judge

    def respond(body, srv):
        key = json.dumps(body["messages"], sort_keys=True)
        with srv.lock:
            n = srv.state[key] = srv.state.get(key, 0) + 1
        if n == 1:
            return 429, b'{"error": "slow down"}', {"Retry-After": "3600"}
        return 200, _ok_logprob()

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url, max_retry_wait_s=1.2))
        out = label_and_store(judge, PAIRS[:1], store)
    by_key = {}
    for r in srv.requests:
        by_key.setdefault(json.dumps(json.loads(r["raw"])["messages"], sort_keys=True), []).append(r["t"])
    assert len(by_key) == 2 and all(len(ts) == 2 for ts in by_key.values())  # both orders, one retry each
    gaps = [ts[1] - ts[0] for ts in by_key.values()]
    assert all(1.1 <= g < 10 for g in gaps), gaps
    assert all(l.verdict in ("A", "B") for j in out for l in j.labels)


def test_always_500_gives_unparsed_with_error_then_recovers(tmp_path, store):
    from judges import label_and_store, load_judge

    def respond(body, srv):
        return (500, b"internal error") if srv.state.get("down", True) else (200, _ok_logprob())

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, PAIRS, store)
        assert len(srv.requests) == 4 * 3  # every label tried 1 + max_retries times
        labels = [l for j in out for l in j.labels]
        assert all(l.verdict == "unparsed" and l.p_a is None for l in labels)
        assert all("HTTP 500" in l.raw_output and "gave up after 3 attempts" in l.raw_output for l in labels)
        assert [j.verdict for j in out] == ["unparsed", "unparsed"]
        df = _stored(store)
        assert len(df) == 4 and set(df["verdict"]) == {"unparsed"}  # nothing lost: every ask is recorded
        # the server comes back: errors are not answers, so the cache asks again and stores the real labels
        srv.state["down"] = False
        out2 = label_and_store(judge, PAIRS, store)
    assert all(l.verdict == "A" and not l.cached for j in out2 for l in j.labels if l.shown_order == "AB")
    df = _stored(store)
    assert len(df) == 8 and (df["verdict"] == "unparsed").sum() == 4
    # and a third call is served from the cache (the good answers, not the errors)
    out3 = label_and_store(judge, PAIRS, store)
    assert all(l.cached and l.verdict != "unparsed" for j in out3 for l in j.labels)


def test_slow_server_times_out_then_unparsed(tmp_path, store):
    import time

    from judges import label_and_store, load_judge

    def respond(body, srv):
        time.sleep(1.5)
        return 200, _ok_logprob()

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url, timeout_s=0.2, max_retries=1))
        out = label_and_store(judge, PAIRS[:1], store)
    labels = out[0].labels
    assert len(labels) == 2 and all(l.verdict == "unparsed" for l in labels)
    assert all("timeout after 0.2s" in l.raw_output and "after 2 attempts" in l.raw_output for l in labels)
    assert len(_stored(store)) == 2


def test_garbage_responses_give_unparsed(tmp_path, store):
    from judges import label_and_store, load_judge

    garbage = [b"<html>not json</html>", b'{"choices": []}', b'{"no": "choices"}', b'[1, 2, 3]']

    def respond(body, srv):
        with srv.lock:
            i = srv.state["i"] = srv.state.get("i", -1) + 1
        return 200, garbage[i % len(garbage)]

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, PAIRS, store)
    labels = [l for j in out for l in j.labels]
    assert len(labels) == 4 and all(l.verdict == "unparsed" for l in labels)
    assert all("malformed response" in l.raw_output for l in labels)
    assert len(srv.requests) == 12 and len(_stored(store)) == 4


def test_server_without_logprobs_falls_back_to_the_text(tmp_path, store):
    from judges import label_and_store, load_judge

    def respond(body, srv):
        return 200, json.dumps({"choices": [{"message": {"content": "2"}}]}).encode()

    with serve(respond) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, PAIRS[:1], store)
    ab, ba = out[0].labels
    # "2" read as the text after the prefix: second shown wins -> B when AB, A when BA; no probability invented
    assert (ab.verdict, ba.verdict) == ("B", "A") and ab.p_a is None and ab.meta.get("no_logprobs")
    assert out[0].consistent is False


def test_client_errors_are_not_retried_and_missing_key_is_clear(tmp_path, store, monkeypatch):
    from judges import label_and_store, load_judge

    with serve(lambda body, srv: (400, b'{"error": "bad model"}')) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, PAIRS[:1], store, orders=("AB",))
    assert len(srv.requests) == 1 and out[0].labels[0].verdict == "unparsed"
    assert "HTTP 400" in out[0].labels[0].raw_output
    monkeypatch.delenv("JUDGE_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="JUDGE_MISSING_KEY is not set"):
        load_judge(write_cfg(tmp_path, "http://127.0.0.1:9/v1", api_key_env="JUDGE_MISSING_KEY"))


def test_connection_refused_gives_unparsed(tmp_path, store):
    from judges import label_and_store, load_judge

    with serve(lambda b, s: (200, b"")) as (srv, url):
        pass  # the server is gone: its port refuses connections now
    judge = load_judge(write_cfg(tmp_path, url, max_retries=1))
    out = label_and_store(judge, PAIRS[:1], store)
    assert all(l.verdict == "unparsed" and "connection error" in l.raw_output for l in out[0].labels)
