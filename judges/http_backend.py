"""The OpenAI-compatible HTTP judge backend (`vllm serve`, llama.cpp, a provider): see judges/backends.py.

Never raises for one bad request: server trouble, a timeout or a broken answer is an error result.
`timeout_s` bounds each whole attempt; 429/503 with `Retry-After` wait as the server asks (capped).
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.config import ConfigError

from .backend_types import BackendResult, Prompt


@dataclass
class HttpBackendConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the name the server knows the model by
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    timeout_s: float = 60.0  # the whole attempt (connect + send + every read), not each read
    max_retries: int = 3  # retries after the first attempt, on timeouts, connection errors, 429/5xx, garbage
    backoff_s: float = 1.0  # wait backoff_s * 2^attempt between attempts
    max_retry_wait_s: float = 60.0  # cap on a server's Retry-After (429/503) before the next attempt
    concurrency: int = 8  # requests in flight at once
    logprobs: bool = True  # logprob mode: ask for top_logprobs; servers without them -> the text is parsed
    top_logprobs: int = 20
    continue_prefix: bool = True  # send answer_prefix as a final assistant turn to continue (vLLM, llama.cpp)


# -- OpenAI-compatible HTTP ------------------------------------------------------------------------
class _Retryable(Exception):
    def __init__(self, msg: str, wait_s: float | None = None):
        super().__init__(msg)
        self.wait_s = wait_s  # the server's Retry-After, already capped; None: exponential back-off


class _Late(Exception):
    pass


class _BadAnswer(ValueError):
    """A 200 answer that must not be read (a NaN logprob, content that is not text)."""


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            secs = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, secs) if math.isfinite(secs) else None


def _logprob(entry: dict) -> float:
    """One top_logprobs entry's logprob, checked: a NaN, an Inf or a positive value is a broken answer,
    never a probability (exp(1000) overflows; exp(nan) made every verdict a tie)."""
    lp = entry["logprob"]
    if isinstance(lp, bool) or not isinstance(lp, (int, float)):
        raise _BadAnswer(f"logprob of token {entry.get('token')!r} is {type(lp).__name__}, not a number")
    if not math.isfinite(lp):
        raise _BadAnswer(f"non-finite logprob {lp!r} for token {entry.get('token')!r}")
    if lp > 1e-6:  # a log-probability is <= 0; tiny positive float noise is allowed and clipped
        raise _BadAnswer(f"logprob {lp!r} for token {entry.get('token')!r} is > 0 (not a log-probability)")
    return min(float(lp), 0.0)


def _count(usage: dict, key: str) -> int | None:
    v = usage.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_choice(data: dict, labels: list[str] | None) -> BackendResult:
    """A /chat/completions answer -> BackendResult(text, probs, top, tokens); raises _BadAnswer
    (or KeyError/TypeError/AttributeError for a wrong shape) instead of reading a broken answer."""
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        usage = {}
    res = BackendResult(tokens_in=_count(usage, "prompt_tokens"), tokens_out=_count(usage, "completion_tokens"))
    choice = data["choices"][0]
    text = (choice.get("message") or {}).get("content")
    if text is None:
        text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise _BadAnswer(f"content is {type(text).__name__} ({text!r:.40}), not a string")
    res.text = text or ""
    if labels is not None:
        content = ((choice.get("logprobs") or {}).get("content")) or []
        if content:
            tops = content[0].get("top_logprobs") or [content[0]]
            checked = [(str(t_["token"]), math.exp(_logprob(t_))) for t_ in tops]
            probs = {l: 0.0 for l in labels}
            for tok, p in checked:
                if tok.strip() in probs:  # "1" and " 1" are the same answer
                    probs[tok.strip()] += p
            res.probs = probs
            res.top = [[tok, round(p, 4)] for tok, p in checked[:3]]
    return res


class HttpBackend:
    name = "http"

    def __init__(self, cfg: HttpBackendConfig, where: str = "judge:"):
        import httpx

        self.cfg = cfg
        headers = {"Content-Type": "application/json"}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"{where} http.api_key_env: environment variable {cfg.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._client = httpx.Client(timeout=httpx.Timeout(cfg.timeout_s), headers=headers)

    def close(self) -> None:
        self._client.close()

    def check_labels(self, labels: list[str], where: str) -> None:
        pass  # the server's tokenizer is not known here; labels are matched on the returned token text

    def truncate(self, text: str, n_tokens: int) -> str:
        # no tokenizer for a remote model: whitespace words stand in for tokens (a word is >= 1 token)
        words = text.split()
        return text if len(words) <= n_tokens else " ".join(words[:n_tokens]) + " [...]"

    def _body(self, p: Prompt, **kw) -> dict:
        messages = list(p.messages)
        body = {"model": self.cfg.model, **kw}
        if p.prefix and self.cfg.continue_prefix:
            messages.append({"role": "assistant", "content": p.prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        return body

    def _send(self, body: dict, deadline: float) -> tuple[int, dict, bytes]:
        """One HTTP exchange; the body is read chunk by chunk so an abandoned attempt stops at its next read."""
        with self._client.stream("POST", self.url, json=body) as r:
            chunks = []
            for c in r.iter_bytes():
                chunks.append(c)
                if time.monotonic() > deadline:
                    raise _Late()
            return r.status_code, {k.lower(): v for k, v in r.headers.items()}, b"".join(chunks)

    def _attempt(self, body: dict) -> tuple[int, dict, bytes]:
        """`_send` bounded as a whole by timeout_s: httpx's timeout is per read, so a server trickling
        a byte a second would hold it forever. The exchange runs in a daemon thread; the caller waits
        at most timeout_s and abandons it (it ends at its next read or at httpx's per-read timeout)."""
        import httpx

        deadline = time.monotonic() + self.cfg.timeout_s
        box: dict = {}

        def run():
            try:
                box["ok"] = self._send(body, deadline)
            except BaseException as e:  # handed to the caller, who decides
                box["err"] = e

        t = threading.Thread(target=run, daemon=True, name="http-judge-request")
        t.start()
        t.join(self.cfg.timeout_s)
        if t.is_alive() or isinstance(box.get("err"), _Late):
            raise httpx.TimeoutException("whole-request deadline")
        if "err" in box:
            raise box["err"]
        return box["ok"]

    def _post(self, body: dict) -> tuple[dict | None, str | None]:
        """One request with retries; (json, None) or (None, error). Never raises for server trouble."""
        import httpx

        err = "no attempt made"
        attempts = self.cfg.max_retries + 1
        wait = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(wait if wait is not None else self.cfg.backoff_s * 2 ** (attempt - 1))
            wait = None
            try:
                status, headers, raw = self._attempt(body)
                if status == 429 or status >= 500:
                    ra = retry_after_s(headers.get("retry-after")) if status in (429, 503) else None
                    raise _Retryable(f"HTTP {status}: {raw[:200]!r}",
                                     None if ra is None else min(ra, self.cfg.max_retry_wait_s))
                if status >= 400:  # our request is wrong: asking again will not help
                    return None, f"HTTP {status}: {raw[:200]!r}"
                try:
                    data = json.loads(raw)
                    data["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    raise _Retryable(f"malformed response: {raw[:200]!r}") from None
                return data, None
            except httpx.TimeoutException:
                err = f"timeout after {self.cfg.timeout_s}s"
            except httpx.TransportError as e:
                err = f"connection error: {type(e).__name__}: {e}"
            except _Retryable as e:
                err, wait = str(e), e.wait_s
        return None, f"{err} (gave up after {attempts} attempts)"

    def _one(self, body: dict, labels: list[str] | None) -> BackendResult:
        t = time.perf_counter()
        try:
            data, err = self._post(body)
            if err is None:
                res = parse_choice(data, labels)
        except _BadAnswer as e:
            err = f"malformed response: {e}"
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, ArithmeticError) as e:
            err = f"malformed response: {type(e).__name__}: {e}"
        except Exception as e:  # one request must never take the batch down with it
            err = f"request failed: {type(e).__name__}: {e}"
        dt = time.perf_counter() - t
        if err is not None:
            return BackendResult(error=err, latency_s=dt)
        res.latency_s = dt
        return res

    def _map(self, bodies: list[dict], labels) -> list[BackendResult]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda b: self._one(b, labels), bodies))

    def logprob(self, prompts: list[Prompt], labels: list[str], batch_size: int = 8) -> list[BackendResult]:
        kw = dict(max_tokens=1, temperature=0.0)
        if self.cfg.logprobs:
            kw.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
        return self._map([self._body(p, **kw) for p in prompts], labels)

    def generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 8) -> list[BackendResult]:
        return self._map([self._body(p, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
                          for p in prompts], None)
