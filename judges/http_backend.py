"""The OpenAI-compatible HTTP judge backend (`vllm serve`, llama.cpp, a provider) on the `openai` client.

The client sends the request, retries (timeouts, connection errors, 408/409/429/5xx) with jittered
exponential back-off or the server's `Retry-After`, and types the answer (`ChatCompletion`, its
logprobs included). What is ours, on top of it:
- `timeout_s` bounds each WHOLE attempt, not each read (`_WholeAttempt`, the client's transport): a
  server trickling a byte a second is cut off at timeout_s, and the client retries;
- a 200 whose body is not a chat completion (not JSON, no choices) is a failed attempt, retried;
- `Retry-After` (seconds, milliseconds or an HTTP date) is honoured on any retried answer, capped by
  `max_retry_wait_s` (the client alone ignores waits over 2 minutes and then does not retry at all);
  without it the wait is `backoff_s * 2^retry`, less up to 25 % jitter;
- the API key comes from the environment variable `api_key_env` names (never stored or logged); no
  other environment variable is read (OPENAI_API_KEY, OPENAI_ORG_ID, ... are not sent to the server);
- answers are checked before they are read: a non-finite or positive logprob, a non-string content or
  a missing field is an error result, never a number or a verdict. Never raises for one bad request.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from random import random

from harness.config import ConfigError

from .backend_types import BackendResult, BackendSpec, Prompt


@dataclass
class HttpBackendConfig:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the name the server knows the model by
    api_key_env: str | None = None  # name of the environment variable holding the key (never the key)
    timeout_s: float = 60.0  # the whole attempt (connect + send + every read), not each read
    max_retries: int = 3  # retries after the first attempt, on timeouts, connection errors, 408/409/429/5xx, garbage
    backoff_s: float = 1.0  # wait backoff_s * 2^retry (less up to 25 % jitter) between attempts
    max_retry_wait_s: float = 60.0  # cap on a server's Retry-After before the next attempt
    concurrency: int = 8  # requests in flight at once
    logprobs: bool = True  # logprob mode: ask for top_logprobs; servers without them -> the text is parsed
    top_logprobs: int = 20
    continue_prefix: bool = True  # send answer_prefix as a final assistant turn to continue (vLLM, llama.cpp)


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


def _server_wait_s(headers) -> float | None:
    """The wait a response's headers ask for: `retry-after-ms` (OpenAI's), else `Retry-After`."""
    if headers is None:
        return None
    ms = retry_after_s(headers.get("retry-after-ms"))
    return ms / 1000 if ms is not None else retry_after_s(headers.get("retry-after"))


def _get(obj, key: str):
    """A field of a typed answer part, or of a dict where the client kept one it could not type."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _logprob(entry) -> float:
    """One top_logprobs entry's logprob, checked: missing, a NaN, an Inf or a positive value is a broken
    answer, never a probability (exp(1000) overflows; exp(nan) made every verdict a tie)."""
    lp, tok = _get(entry, "logprob"), _get(entry, "token")
    if lp is None:
        raise _BadAnswer(f"no logprob for token {tok!r}")
    if isinstance(lp, bool) or not isinstance(lp, (int, float)):
        raise _BadAnswer(f"logprob of token {tok!r} is {type(lp).__name__}, not a number")
    if not math.isfinite(lp):
        raise _BadAnswer(f"non-finite logprob {lp!r} for token {tok!r}")
    if lp > 1e-6:  # a log-probability is <= 0; tiny positive float noise is allowed and clipped
        raise _BadAnswer(f"logprob {lp!r} for token {tok!r} is > 0 (not a log-probability)")
    return min(float(lp), 0.0)


def _count(usage, key: str) -> int | None:
    v = _get(usage, key) if usage is not None and not isinstance(usage, (list, str, int, float)) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def parse_choice(completion, labels: list[str] | None) -> BackendResult:
    """A `ChatCompletion` (or its JSON as a dict) -> BackendResult(text, probs, top, tokens); raises
    _BadAnswer (or KeyError/TypeError/AttributeError for a wrong shape) instead of reading a broken answer."""
    usage = _get(completion, "usage")
    res = BackendResult(tokens_in=_count(usage, "prompt_tokens"), tokens_out=_count(usage, "completion_tokens"))
    choice = _get(completion, "choices")[0]
    message = _get(choice, "message")
    text = _get(message, "content") if message is not None else None
    if text is None:
        text = _get(choice, "text")  # a /completions-style answer
    if text is not None and not isinstance(text, str):
        raise _BadAnswer(f"content is {type(text).__name__} ({text!r:.40}), not a string")
    res.text = text or ""
    if labels is not None:
        logprobs = _get(choice, "logprobs")
        content = (_get(logprobs, "content") if logprobs is not None else None) or []
        if content:
            tops = _get(content[0], "top_logprobs") or [content[0]]
            checked = [(str(_get(t_, "token")), math.exp(_logprob(t_))) for t_ in tops]
            probs = {l: 0.0 for l in labels}
            for tok, p in checked:
                if tok.strip() in probs:  # "1" and " 1" are the same answer
                    probs[tok.strip()] += p
            res.probs = probs
            res.top = [[tok, round(p, 4)] for tok, p in checked[:3]]
    return res


def _looks_like_completion(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    choices = data.get("choices") if isinstance(data, dict) else None
    return isinstance(choices, list) and bool(choices) and isinstance(choices[0], dict)


@lru_cache(maxsize=None)
def _client_classes():
    """The transport and client classes, built on first use (openai is imported only by an http judge)."""
    import httpx2
    import openai

    class Malformed(httpx2.DecodingError):
        """A 2xx whose body is not a chat completion: a failed attempt (the client retries it)."""

    class WholeAttempt(httpx2.BaseTransport):
        """One attempt bounded as a whole by timeout_s: the exchange runs in a daemon thread; the
        caller waits at most timeout_s and abandons it (it ends at its next read, or at the per-read
        timeout), raising a timeout the client retries. 2xx bodies must be chat completions."""

        def __init__(self, timeout_s: float):
            self.timeout_s = timeout_s
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            deadline = time.monotonic() + self.timeout_s
            box: dict = {}

            def run():
                try:
                    r = self.inner.handle_request(request)
                    try:
                        chunks = []
                        for c in r.stream:
                            chunks.append(c)
                            if time.monotonic() > deadline:
                                box["late"] = True
                                return
                    finally:
                        r.close()
                    box["ok"] = (r, b"".join(chunks))
                except BaseException as e:  # handed to the caller, who raises it
                    box["err"] = e

            t = threading.Thread(target=run, daemon=True, name="http-judge-request")
            t.start()
            t.join(self.timeout_s)
            if t.is_alive() or box.get("late"):
                raise httpx2.ReadTimeout(f"no whole answer within {self.timeout_s}s", request=request)
            if "err" in box:
                raise box["err"]
            r, raw = box["ok"]
            out = httpx2.Response(r.status_code, headers=r.headers, content=raw, request=request,
                                  extensions=r.extensions)
            if 200 <= out.status_code < 300:
                body = out.read()  # decoded (gzip and the like)
                if not _looks_like_completion(body):
                    raise Malformed(f"malformed response: {body[:200]!r}", request=request)
            return out

        def close(self):
            self.inner.close()

    class Client(openai.OpenAI):
        """The client with our wait rule: the server's wait capped by max_retry_wait_s, else
        backoff_s * 2^retry with jitter (hooks of the client's own retry loop)."""

        backoff_s = 1.0
        max_retry_wait_s = 60.0

        def _should_retry(self, response) -> bool:
            flag = response.headers.get("x-should-retry")
            if flag in ("true", "false"):
                return flag == "true"
            return response.status_code in (408, 409, 429) or response.status_code >= 500

        def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None) -> float:
            wait = _server_wait_s(response_headers)
            if wait is not None:
                return min(wait, self.max_retry_wait_s)
            n = min(options.get_max_retries(self.max_retries) - remaining_retries, 60)
            return self.backoff_s * 2.0 ** n * (1 - 0.25 * random())

    return openai, httpx2, Malformed, WholeAttempt, Client


class HttpBackend:
    name = "http"

    def __init__(self, cfg: HttpBackendConfig, where: str = "judge:"):
        openai, httpx2, self._Malformed, WholeAttempt, Client = _client_classes()
        self._openai = openai
        self.cfg = cfg
        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(f"{where} http.api_key_env: environment variable {cfg.api_key_env} is not set")
        # no key: the Authorization header is left out per request (the placeholder the client insists
        # on is never sent; OPENAI_API_KEY from the environment is never read)
        self._headers = {} if key else {"Authorization": openai.Omit()}
        self._client = Client(base_url=cfg.base_url, api_key=key or "no-key-sent", max_retries=cfg.max_retries,
                              timeout=cfg.timeout_s,
                              http_client=httpx2.Client(transport=WholeAttempt(cfg.timeout_s), timeout=cfg.timeout_s))
        # nothing else from the environment reaches the server (OPENAI_ORG_ID, OPENAI_PROJECT_ID, ...)
        self._client.organization = self._client.project = None
        if hasattr(self._client, "admin_api_key"):
            self._client.admin_api_key = None
        self._client.backoff_s, self._client.max_retry_wait_s = cfg.backoff_s, cfg.max_retry_wait_s

    def close(self) -> None:
        self._client.close()

    def check_labels(self, labels: list[str], where: str) -> None:
        pass  # the server's tokenizer is not known here; labels are matched on the returned token text

    def truncate(self, text: str, n_tokens: int) -> str:
        # no tokenizer for a remote model: whitespace words stand in for tokens (a word is >= 1 token)
        words = text.split()
        return text if len(words) <= n_tokens else " ".join(words[:n_tokens]) + " [...]"

    def _request(self, p: Prompt, **kw) -> dict:
        """The arguments of one chat.completions.create call."""
        messages = list(p.messages)
        req = {"model": self.cfg.model, **kw}
        if p.prefix and self.cfg.continue_prefix:
            messages.append({"role": "assistant", "content": p.prefix})
            req["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        req["messages"] = messages
        return req

    def _error(self, e: Exception) -> str:
        """The client's exception -> the error a label records."""
        o = self._openai
        gave_up = f" (gave up after {self.cfg.max_retries + 1} attempts)"
        if isinstance(e, o.APIStatusError):
            retried = self._client._should_retry(e.response)
            return f"HTTP {e.status_code}: {e.response.content[:200]!r}" + (gave_up if retried else "")
        if isinstance(e, o.APITimeoutError):
            return f"timeout after {self.cfg.timeout_s}s{gave_up}"
        if isinstance(e, o.APIConnectionError):
            cause = e.__cause__
            if isinstance(cause, self._Malformed):
                return f"{cause}{gave_up}"
            return f"connection error: {type(cause or e).__name__}: {cause or e}{gave_up}"
        return f"request failed: {type(e).__name__}: {e}"

    def _one(self, req: dict, labels: list[str] | None) -> BackendResult:
        t = time.perf_counter()
        err = None
        try:
            completion = self._client.chat.completions.create(extra_headers=self._headers, **req)
            res = parse_choice(completion, labels)
        except _BadAnswer as e:
            err = f"malformed response: {e}"
        except self._openai.OpenAIError as e:
            err = self._error(e)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, ArithmeticError) as e:
            err = f"malformed response: {type(e).__name__}: {e}"
        except Exception as e:  # one request must never take the batch down with it
            err = f"request failed: {type(e).__name__}: {e}"
        dt = time.perf_counter() - t
        if err is not None:
            return BackendResult(error=err, latency_s=dt)
        res.latency_s = dt
        return res

    def _map(self, reqs: list[dict], labels) -> list[BackendResult]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda r: self._one(r, labels), reqs))

    def logprob(self, prompts: list[Prompt], labels: list[str], batch_size: int = 8) -> list[BackendResult]:
        kw = dict(max_tokens=1, temperature=0.0)
        if self.cfg.logprobs:
            kw.update(logprobs=True, top_logprobs=self.cfg.top_logprobs)
        return self._map([self._request(p, **kw) for p in prompts], labels)

    def generate(self, prompts: list[Prompt], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, batch_size: int = 8) -> list[BackendResult]:
        return self._map([self._request(p, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
                          for p in prompts], None)


# -- the registry entry (judges/backends.py finds every judges/*_backend.py and reads its BACKEND) --------
def _validate(h: HttpBackendConfig, where: str) -> None:
    if (h.max_retries < 0 or h.concurrency < 1 or not h.timeout_s > 0 or not h.backoff_s >= 0
            or not h.max_retry_wait_s >= 0):
        raise ConfigError(f"{where} http: max_retries >= 0, concurrency >= 1, timeout_s > 0, backoff_s >= 0 and "
                          "max_retry_wait_s >= 0 are required")


def _make(judge_cfg, options: HttpBackendConfig, where: str, home=None) -> HttpBackend:
    backend = HttpBackend(options, where)
    # the server's dtype is not ours: an http judge's version keeps the dtype it always hashed
    backend.dtype = "bf16" if judge_cfg.dtype == "auto" else judge_cfg.dtype
    return backend


BACKEND = BackendSpec(
    name="http", make=_make, options=HttpBackendConfig, validate=_validate,
    # settings that change how fast or how patiently it asks, not what it answers: not in the version
    not_in_version=frozenset({"api_key_env", "timeout_s", "max_retries", "backoff_s", "max_retry_wait_s",
                              "concurrency"}),
    doc="any OpenAI-compatible /chat/completions endpoint (vllm serve, llama.cpp, a provider)")
