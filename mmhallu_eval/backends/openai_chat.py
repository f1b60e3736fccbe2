"""OpenAI-compatible chat completions with bounded concurrency and retries (OpenAI, `vllm serve`, SGLang, ...).

The `openai` client's own retries are off so that the policy is ours and visible: exponential backoff on
timeouts, connection errors, 429 and 5xx, or the wait a 429 or 503 asks for in `Retry-After` (up to a minute);
other errors (400, 401, 404) fail at once.
"""
from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ..redact import KEY_SHAPED
from ..terminal import warn
from .base import BackendError


@dataclass
class ChatResult:
    text: str | None = None
    error: str | None = None
    n_output_tokens: int | None = None
    n_prompt_tokens: int | None = None
    attempts: int = 0
    #: what a server with a reasoning parser (`vllm serve --reasoning-parser`, SGLang, DeepSeek's API) returns apart
    #: from the answer, and why the answer ended ("length": cut at max_tokens)
    reasoning: str | None = None
    finish_reason: str | None = None


def resolve_api_key(api_key_env: str | None) -> str:
    """The key from the named environment variable. A variable named explicitly must be set; without a name,
    OPENAI_API_KEY or a placeholder for servers without auth. The key itself is never logged or written."""
    if api_key_env is None:
        return os.environ.get("OPENAI_API_KEY") or "EMPTY"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env) or KEY_SHAPED.search(api_key_env):
        raise BackendError("--api-key-env takes the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), "
                           "not the key itself: export the key in a variable and name that")
    if not os.environ.get(api_key_env):
        raise BackendError(f"--api-key-env {api_key_env}: that environment variable is not set (export it, or leave the option out for a server without auth)")
    return os.environ[api_key_env]


#: the longest `Retry-After` honoured; a server asking for more gets the backoff instead (as the openai client does)
MAX_RETRY_AFTER = 60.0


def retry_after(exc: Exception) -> float | None:
    """The seconds a refusal asks the client to wait (`retry-after-ms`, or `retry-after` in seconds or as an HTTP
    date: OpenAI's and Azure's rate limits, a proxy's 503), or None where it asks for nothing usable."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    seconds: float | None = None
    try:
        if headers.get("retry-after-ms") is not None:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after") is not None:
            value = headers["retry-after"].strip()
            try:
                seconds = float(value)
            except ValueError:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    if seconds is None or math.isnan(seconds) or seconds > MAX_RETRY_AFTER:
        return None
    return max(seconds, 0.0)


class ChatClient:
    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key_env: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
        backoff: float = 1.0,
        extra_body: dict[str, Any] | None = None,
    ):
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - openai is a core dependency
            raise BackendError("the openai package is needed: pip install openai") from exc
        self._openai = openai
        self.base_url = base_url
        self.model = model
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff = backoff
        #: fields a server takes beyond OpenAI's own (vLLM's and SGLang's `chat_template_kwargs`)
        self.extra_body = extra_body or None
        self.client = openai.OpenAI(base_url=base_url, api_key=resolve_api_key(api_key_env), max_retries=0, timeout=timeout)
        #: the request field of the answer's token cap: OpenAI's reasoning models (o-series, GPT-5) refuse `max_tokens`
        #: and take `max_completion_tokens`, which older servers do not know; switched once a server refuses the first
        self.tokens_field = "max_tokens"
        #: the server's refusal of a sampling setting (OpenAI's reasoning models take no temperature but their own 1,
        #: and no top_p): from then on requests go without them, so the model samples at its own default, as
        #: lmms-eval and VLMEvalKit send them; None while the server takes them
        self.sampling_refused: str | None = None
        self._note_lock = threading.Lock()

    def check_reachable(self) -> None:
        """Fail fast, naming the URL, when the server cannot be reached at all."""
        try:
            self.client.models.list()
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as exc:
            raise BackendError(f"cannot reach the OpenAI-compatible server at {self.base_url or 'the default OpenAI URL'}: {exc}") from None
        except self._openai.APIStatusError:
            pass  # reachable; some servers do not implement /models

    def _retryable(self, exc: Exception) -> bool:
        o = self._openai
        if isinstance(exc, (o.APITimeoutError, o.APIConnectionError, o.RateLimitError, o.InternalServerError)):
            return True
        return isinstance(exc, o.APIStatusError) and exc.status_code >= 500

    def complete_one(self, messages: list[dict[str, Any]], temperature: float = 0.0, max_tokens: int | None = None, top_p: float | None = None) -> ChatResult:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if top_p is not None and top_p < 1.0:
            kwargs["top_p"] = top_p
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._create(kwargs, max_tokens)
                usage = getattr(resp, "usage", None)
                if not getattr(resp, "choices", None):  # a proxy's or server's reply without an answer in it
                    return ChatResult(error="the server replied without choices (no answer in the reply)", attempts=attempt + 1)
                choice = resp.choices[0]
                # `reasoning_content` (vLLM before 0.11, SGLang, DeepSeek) or `reasoning` (vLLM since): extra fields
                reasoning = getattr(choice.message, "reasoning_content", None) or getattr(choice.message, "reasoning", None)
                return ChatResult(text=choice.message.content or "", n_output_tokens=getattr(usage, "completion_tokens", None),
                                  n_prompt_tokens=getattr(usage, "prompt_tokens", None), attempts=attempt + 1,
                                  reasoning=reasoning if isinstance(reasoning, str) else None, finish_reason=getattr(choice, "finish_reason", None))
            except Exception as exc:  # noqa: BLE001 - classified below
                if not self._retryable(exc) or attempt == self.max_retries:
                    status = getattr(exc, "status_code", None)
                    return ChatResult(error=f"{type(exc).__name__}{f' {status}' if status else ''}: {exc}"[:500], attempts=attempt + 1)
                asked = retry_after(exc)
                time.sleep(asked if asked is not None else min(self.backoff * 2**attempt, 60.0) * (1 + random.random() * 0.1))
        return ChatResult(error="unreachable")  # pragma: no cover

    def sampling(self) -> dict[str, str]:
        """What a run records about sampling when the server refused its settings (nothing while it takes them)."""
        if self.sampling_refused is None:
            return {}
        return {"sampling": f"the model's own default: the server refused the requested sampling settings ({self.sampling_refused}), "
                            "so requests went without temperature and top_p"}

    def _create(self, kwargs: dict[str, Any], max_tokens: int | None) -> Any:
        """One chat completion: the token cap under the field this server takes, and the sampling settings unless the
        server refused them. Each refusal is learnt once (a 400 naming the parameter) and the request sent again."""
        while True:
            sent = dict(kwargs)
            if self.sampling_refused is not None:
                sent.pop("temperature", None)
                sent.pop("top_p", None)
            if max_tokens is not None:
                sent[self.tokens_field] = max_tokens
            try:
                return self.client.chat.completions.create(**sent)
            except self._openai.BadRequestError as exc:
                param = getattr(exc, "param", None)
                if param == "max_tokens" and "max_tokens" in sent:
                    self.tokens_field = "max_completion_tokens"
                elif param in ("temperature", "top_p") and param in sent:
                    self._refuse_sampling(param, exc)
                else:
                    raise

    def _refuse_sampling(self, param: str, exc: Exception) -> None:
        with self._note_lock:
            if self.sampling_refused is not None:
                return
            message = getattr(exc, "body", None)
            message = message.get("message") if isinstance(message, dict) else None
            self.sampling_refused = f"{param}: {message or exc}"[:300]
        warn(f"note: {self.model} refuses {param} ({self.sampling_refused}); its requests now go without temperature and top_p, "
             "so it samples at its own default (recorded in the run's manifest)")

    def complete(self, batch: list[list[dict[str, Any]]], **kwargs: Any) -> list[ChatResult]:
        """Results in input order; at most `concurrency` requests in flight."""
        if not batch:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
            return list(pool.map(lambda m: self.complete_one(m, **kwargs), batch))
