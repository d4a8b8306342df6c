"""Issue #17, judging: never a verdict from a NaN, never a lost chunk, never an unbounded wait, never a guess.

Each case is a real local HTTP server (tests/test_http_backend.serve, or a raw socket server for the
trickling one) answering what the probe saw; pairs come from ../shared/data (PandaLM test set).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from harness.records import Annotator, Label, Pair
from harness.store import StoreError
from harness.store.filters import LabelFilter
from tests.test_http_backend import _ok_logprob, serve, write_cfg


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    from judges.importers import read_labels

    pairs, _ = read_labels("pandalm", shared_data / "pandalm_testset")
    # distinct prompts (the servers below tell pairs apart by the prompt) and responses that differ at once
    out, seen = [], set()
    for p in pairs:
        key = p.prompt[:60]
        if key not in seen and p.response_a[:40] != p.response_b[:40] and min(len(p.response_a), len(p.response_b)) >= 40:
            seen.add(key)
            out.append(p)
    assert len(out) >= 4
    return out[:4]


def _logprob_answer(lp1, lp2=-1.5, content="1"):
    """A 200 answer whose label tokens carry these logprobs (json.dumps writes nan as NaN, as servers do)."""
    return json.dumps({"choices": [{"message": {"content": content}, "logprobs": {"content": [
        {"token": "1", "logprob": lp1, "top_logprobs": [{"token": "1", "logprob": lp1}, {"token": "2", "logprob": lp2}]}]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1}}).encode()


def _by_pair(answers: dict, default: bytes):
    """respond(): the answer for the first pair whose prompt text appears in the request."""
    def respond(body, srv):
        text = json.dumps(body["messages"])
        for key, payload in answers.items():
            if json.dumps(key[:60])[1:-1] in text:
                return 200, payload(body) if callable(payload) else payload
        return 200, default
    return respond


# -- item 1: NaN / Inf ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logprob_is_an_error_label_never_a_tie(tmp_path, store, real_pairs, bad):
    from judges import label_and_store, load_judge

    poisoned, fine = real_pairs[0], real_pairs[1]
    with serve(_by_pair({poisoned.prompt: _logprob_answer(bad)}, _ok_logprob())) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, [poisoned, fine], store)
        bad_j, good_j = out
        assert all(l.verdict == "unparsed" and l.p_a is None for l in bad_j.labels)
        assert all("non-finite logprob" in l.meta["error"] for l in bad_j.labels)
        assert bad_j.verdict == "unparsed"  # not the "tie"/"B" a NaN comparison gave
        assert good_j.verdict in ("A", "B", "tie") and all(l.p_a is not None for l in good_j.labels)
        # nothing non-finite reached meta_json: SQLite's JSON functions read every row, and judging
        # the same pairs again (which queries meta_json) works
        assert store.query("SELECT COUNT(*) AS n FROM labels WHERE json_valid(meta_json)")[0]["n"] == 4
        again = label_and_store(judge, [poisoned, fine], store)
    assert again[0].verdict == "unparsed" and again[1].labels[0].cached


def test_one_order_non_finite_makes_the_pair_unparsed(tmp_path, store, real_pairs):
    from judges import label_and_store, load_judge

    def respond(body, srv):  # the BA order (response_b shown first) answers NaN
        shown_first_b = body["messages"][-2 if body.get("continue_final_message") else -1]["content"]
        first = shown_first_b.find(real_pairs[0].response_b[:40])
        second = shown_first_b.find(real_pairs[0].response_a[:40])
        return 200, _logprob_answer(float("nan")) if 0 <= first < second else _ok_logprob()

    with serve(respond) as (srv, url):
        out = label_and_store(load_judge(write_cfg(tmp_path, url)), real_pairs[:1], store)
    ab, ba = out[0].labels
    assert ab.verdict == "A" and ba.verdict == "unparsed" and "non-finite logprob" in ba.meta["error"]
    assert out[0].verdict == "unparsed" and out[0].p_a is None


def test_store_refuses_non_finite_meta_and_p_a(store, real_pairs):
    ann = Annotator(kind="human", id="probe", version="1")
    pair = real_pairs[0]
    bad_meta = Label(pair_id=pair.pair_id, annotator=ann, verdict="A", shown_order="AB", meta={"confidence": float("nan")})
    with pytest.raises(StoreError, match=r"non-finite number meta\.confidence=nan"):
        store.add_labels([bad_meta], [pair])
    bad_p = Label(pair_id=pair.pair_id, annotator=ann, verdict="A", shown_order="AB", p_a=float("inf"))
    with pytest.raises(StoreError, match="p_a=inf is not finite"):
        store.add_labels([bad_p], [pair])
    nested = Pair(prompt="p", response_a="a", response_b="b", meta={"scores": [1.0, float("-inf")]})
    with pytest.raises(StoreError, match=r"meta\.scores\.1=-inf"):
        store.add_pairs([nested])
    # all-or-nothing: neither the labels nor their pair were written
    assert store.counts()["labels"] == 0 and store.count_pairs() == 0


class _PickyJudge:
    """A judge (the documented interface) that raises on one pair and returns a NaN p_a on another."""
    annotator = Annotator(kind="rule", id="picky", version="1")
    orders = ("AB",)

    def __init__(self, raise_on, nan_on):
        self.raise_on, self.nan_on = raise_on, nan_on

    def judge(self, pairs, orders):
        out = []
        for p in pairs:
            if p.pair_id == self.raise_on:
                raise TypeError("unsupported operand type(s) for +: 'str' and 'int'")
            p_a = float("nan") if p.pair_id == self.nan_on else 0.9
            out.append([Label(pair_id=p.pair_id, annotator=self.annotator, verdict="A", shown_order=o, p_a=p_a)
                        for o in orders])
        return out


def test_one_raising_pair_and_one_nan_label_cost_only_their_own_labels(store, real_pairs):
    from judges import label_and_store

    judge = _PickyJudge(raise_on=real_pairs[1].pair_id, nan_on=real_pairs[2].pair_id)
    out = label_and_store(judge, real_pairs, store, batch_size=4)
    verdicts = [j.verdict for j in out]
    assert verdicts == ["A", "unparsed", "unparsed", "A"]
    assert "judge raised TypeError" in out[1].labels[0].meta["error"]
    assert out[2].labels[0].meta["error"] == "non-finite p_a=nan"
    assert len(store.labels_df()) == 4  # the whole chunk is stored, the two failures as error labels


# -- item 2: one malformed answer -------------------------------------------------------------------------
def test_malformed_answers_are_error_labels_and_the_rest_is_stored(tmp_path, store, real_pairs):
    from judges import label_and_store, load_judge

    overflow, int_content, missing, fine = real_pairs
    answers = {
        overflow.prompt: _logprob_answer(1000.0),  # math.exp(1000): OverflowError aborted the run
        int_content.prompt: json.dumps({"choices": [{"message": {"content": 5}}]}).encode(),  # TypeError
        missing.prompt: json.dumps({"choices": [{"message": {"content": "1"}, "logprobs": {"content": [
            {"token": "1", "top_logprobs": [{"token": "1"}]}]}}]}).encode(),  # no logprob field
    }
    with serve(_by_pair(answers, _ok_logprob())) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url))
        out = label_and_store(judge, real_pairs, store, batch_size=4)
    errors = [[l.meta.get("error") for l in j.labels] for j in out]
    assert all("is > 0 (not a log-probability)" in e for e in errors[0])
    assert all("content is int" in e for e in errors[1])
    assert all("malformed response" in e and "logprob" in e for e in errors[2])
    assert errors[3] == [None, None] and out[3].verdict in ("A", "B", "tie")
    assert len(store.labels_df()) == 8


def _pairs_file(tmp_path, pairs):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p.prompt, "response_a": p.response_a,
                                        "response_b": p.response_b}) + "\n" for p in pairs))
    return str(path)


def test_harness_judge_exits_nonzero_with_counts_when_every_request_failed(tmp_path, real_pairs, capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))  # main() sets it from --home; restored after
    home, pairs = str(tmp_path / "home"), _pairs_file(tmp_path, real_pairs[:2])
    with serve(lambda body, srv: (500, b"down")) as (srv, url):
        cfg = write_cfg(tmp_path, url, max_retries=0)
        rc = main(["--home", home, "judge", "--judge", cfg, "--file", pairs])
    err = capsys.readouterr().err
    assert rc == 1 and "4 requests, 4 failed" in err and "every request failed" in err
    with serve(lambda body, srv: (200, _ok_logprob())) as (srv, url):
        rc = main(["--home", home, "judge", "--judge", write_cfg(tmp_path, url, max_retries=0), "--file", pairs])
    assert rc == 0 and "4 requests, 0 failed" in capsys.readouterr().err


# -- item 4: bounded waits ---------------------------------------------------------------------------------
@contextmanager
def trickle_server(headers_first: bool):
    """A raw socket server answering one byte every 0.25 s (a 40-byte answer: 10 s in all); with
    headers_first the status line and headers come at once and only the body trickles."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    stop = threading.Event()
    body = _ok_logprob()
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()

    def handle(conn):
        with conn:
            conn.recv(65536)
            slow = body[:40] if headers_first else head + body
            try:
                if headers_first:
                    conn.sendall(head)
                for i in range(len(slow)):
                    if stop.wait(0.25):
                        return
                    conn.sendall(slow[i:i + 1])
            except OSError:  # the client gave up
                return

    def accept():
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{lsock.getsockname()[1]}/v1"
    finally:
        stop.set()
        lsock.close()


@pytest.mark.parametrize("headers_first", [True, False], ids=["body-trickles", "headers-trickle"])
def test_timeout_bounds_the_whole_request_not_each_read(tmp_path, store, real_pairs, headers_first):
    from judges import label_and_store, load_judge

    with trickle_server(headers_first) as url:
        judge = load_judge(write_cfg(tmp_path, url, timeout_s=1.0, max_retries=0))
        t = time.monotonic()
        out = label_and_store(judge, real_pairs[:1], store, orders=("AB",))
        waited = time.monotonic() - t
    lab = out[0].labels[0]
    # per-read timeouts never fired (a byte every 0.25 s): the old backend waited the full 10 s
    assert lab.verdict == "unparsed" and "timeout after 1.0s" in lab.meta["error"]
    assert waited < 3.0


def _gaps(srv):
    ts = [r["t"] for r in srv.requests]
    return [b - a for a, b in zip(ts, ts[1:])]


def _busy_then_ok(status, retry_after):
    def respond(body, srv):
        with srv.lock:
            n = srv.state["n"] = srv.state.get("n", 0) + 1
        return (status, b'{"error": "busy"}', {"Retry-After": retry_after}) if n == 1 else (200, _ok_logprob())
    return respond


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(tmp_path, store, real_pairs, status):
    from judges import label_and_store, load_judge

    with serve(_busy_then_ok(status, "1")) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url, backoff_s=0.01, concurrency=1))
        out = label_and_store(judge, real_pairs[:1], store, orders=("AB",))
    assert out[0].labels[0].verdict == "A"
    assert len(srv.requests) == 2 and _gaps(srv)[0] >= 0.95  # not backoff_s (0.01 s)


def test_retry_after_is_capped_by_max_retry_wait(tmp_path, store, real_pairs):
    from judges import label_and_store, load_judge

    with serve(_busy_then_ok(429, "3600")) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url, backoff_s=0.01, concurrency=1, max_retry_wait_s=0.3))
        out = label_and_store(judge, real_pairs[:1], store, orders=("AB",))
    assert out[0].labels[0].verdict == "A" and 0.25 <= _gaps(srv)[0] < 2.0


def test_a_long_retry_after_waits_the_cap_not_the_clients_own_back_off(tmp_path, store, real_pairs):
    """Our Retry-After override is in effect: the openai client alone ignores a wait over 60 s and
    falls back to its own back-off (~0.5-1 s); capped at 1.2 s, the wait must be the cap."""
    from judges import label_and_store, load_judge

    with serve(_busy_then_ok(429, "3600")) as (srv, url):
        judge = load_judge(write_cfg(tmp_path, url, backoff_s=0.01, concurrency=1, max_retry_wait_s=1.2))
        out = label_and_store(judge, real_pairs[:1], store, orders=("AB",))
    assert out[0].labels[0].verdict == "A" and len(srv.requests) == 2
    assert 1.1 <= _gaps(srv)[0] < 3.0


def test_retry_after_http_date_and_garbage():
    from email.utils import formatdate

    from judges.http_backend import retry_after_s

    now = 1_700_000_000.0
    assert retry_after_s(formatdate(now + 7, usegmt=True), now=now) == pytest.approx(7.0)
    assert retry_after_s(formatdate(now - 7, usegmt=True), now=now) == 0.0  # a date in the past: now
    assert retry_after_s(" 2 ") == 2.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None and retry_after_s("nan") is None


def test_negative_retry_wait_is_a_config_error(tmp_path):
    from harness.config import ConfigError
    from judges import load_judge

    with pytest.raises(ConfigError, match="max_retry_wait_s >= 0"):
        load_judge(write_cfg(tmp_path, "http://127.0.0.1:9/v1", max_retry_wait_s=-1))


# -- item 5: the verdict parser never guesses ----------------------------------------------------------------
PREFIX = "The better response is Response "


@pytest.mark.parametrize("text, expect", [
    # the probe's case: both labels offered, and a hedge (parsed as "1" before)
    (PREFIX + "1 or 2, I honestly cannot tell which", "unparsed"),
    (PREFIX + "1 or Response 2.", "unparsed"),
    (PREFIX + "2/1", "unparsed"),
    ("[[1]] but I am not sure", "unparsed"),
    ("I can't tell. [[2]]", "unparsed"),
    ("I can\u2019t decide. Verdict: 2", "unparsed"),
    ("Hard to say. Verdict: 1", "unparsed"),
    ("Either is fine. Verdict: 1", "unparsed"),
    ("It could go either way. [[2]]", "unparsed"),
    ("Either response covers the facts, but Response 1 is clearer. [[1]]", "first"),  # reasoning, then a verdict
    ("Output (1) is fluent. Output (2) is better.", "unparsed"),  # both labels in the deciding family
    # clear cases stay parsed ("neither" is not "either"; "or" between other words is no alternative)
    (PREFIX + "1, which is correct.", "first"),
    ("Neither is perfect, but Verdict: 1", "first"),
    ("Verdict: 2 (Response 1 is too long)", "second"),
    ("Option 1 or option 3 were both off. Verdict: [[2]]", "second"),
    ("[[tie]]", "tie"),
])
def test_parser_never_guesses(text, expect):
    from judges.llm import parse_verdict

    assert parse_verdict(text, ["1", "2"]) == expect


def test_parser_rules_apply_to_letters_and_custom_regex():
    from judges.llm import parse_verdict

    assert parse_verdict("Answer: A or B", ["A", "B"]) == "unparsed"
    assert parse_verdict("Answer: (b)", ["a", "b"]) == "second"
    assert parse_verdict("WINNER=<2>, not sure though", ["1", "2"], r"WINNER=<(\w+)>") == "unparsed"


def test_cache_hit_copies_are_not_counted_twice_in_statistics(store):
    """Asking the same judge again (a re-run after a kill, another step) stores a cached=1 copy per
    answer; the label frame behind every agreement / bias table must count each answer once."""
    from harness.evaluation import label_frame
    from harness.records import Pair
    from judges import label_and_store, load_judge

    judge = load_judge("rule:shorter")
    pairs = [Pair(prompt=f"q{i}", response_a="short", response_b="a much longer answer " * (i + 1), dataset="toy")
             for i in range(3)]
    label_and_store(judge, pairs, store, run_id=None, step=1, orders=("AB", "BA"))
    label_and_store(judge, pairs, store, run_id=None, step=2, orders=("AB", "BA"))  # all cache hits
    assert len(store.labels_df(LabelFilter(annotators=["rule:shorter"]))) == 12  # 6 answers + 6 cache copies
    frame = label_frame(store, dataset="toy")
    assert len(frame) == 6 and sorted(frame["shown_order"].value_counts().tolist()) == [3, 3]
