"""LLM judges for open-ended answers (MMHal-Bench): any OpenAI-compatible server, or a local model through a
backend. Replies are cached per run (same judge + same prompt → no new call); failures are not cached."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import ResponseCache
from ..types import GenerationConfig, Request, Response
from ..options import TaskOptions, opt
from ..redact import redact_url
from .base import Backend, BackendError, create_backend
from .openai_chat import ChatClient


@dataclass
class Verdict:
    reply: str | None
    error: str | None = None
    cached: bool = False


class Judge:
    """Text in, text out, temperature 0 (where an OpenAI server refuses it, the model's own default, in describe())."""

    kind = "judge"

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _ask(self, prompts: list[str], max_tokens: int) -> list[Verdict]:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What a verdict's cache key holds: the judge, not what is learnt of its server while it runs."""
        return self.describe()

    def key(self, prompt: str) -> str:
        ident = json.dumps({"judge": self.identity(), "prompt": prompt}, sort_keys=True)
        return hashlib.sha256(ident.encode()).hexdigest()

    def judge(self, prompts: list[str], cache: ResponseCache | None = None, max_tokens: int = 1024) -> list[Verdict]:
        keys = [self.key(p) for p in prompts]
        hits = cache.get_many(keys) if cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in hits]
        fresh = self._ask([prompts[i] for i in todo], max_tokens) if todo else []
        if cache is not None:
            cache.put_many((keys[i], Response(id=str(i), text=v.reply)) for i, v in zip(todo, fresh) if v.error is None and v.reply is not None)
        out: list[Verdict] = [Verdict(hits[k].text, cached=True) if k in hits else Verdict(None) for k in keys]
        for i, v in zip(todo, fresh):
            out[i] = v
        return out


class OpenAIJudge(Judge):
    kind = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None, concurrency: int = 8, max_retries: int = 5, timeout: float = 120.0, backoff: float = 1.0):
        self.client = ChatClient(base_url, model, api_key_env, concurrency, max_retries, timeout, backoff)
        self.client.check_reachable()

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.client.model, "base_url": redact_url(self.client.base_url) if self.client.base_url else None}

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), **self.client.sampling()}

    def _ask(self, prompts: list[str], max_tokens: int) -> list[Verdict]:
        results = self.client.complete([[{"role": "user", "content": p}] for p in prompts], temperature=0.0, max_tokens=max_tokens)
        return [Verdict(r.text, r.error) for r in results]


class BackendJudge(Judge):
    """A local model as the judge (e.g. `--judge-backend transformers --judge-model PATH`), greedy."""

    kind = "local"

    def __init__(self, backend: Backend, model: str):
        self.backend = backend
        self.model = model

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.backend.name, "model": self.model, "fingerprint": self.backend.fingerprint()}

    def _ask(self, prompts: list[str], max_tokens: int) -> list[Verdict]:
        gen = GenerationConfig(max_new_tokens=max_tokens)
        reqs = [Request(id=str(i), messages=[{"role": "user", "content": [{"type": "text", "text": p}]}], images=[], generation=gen) for i, p in enumerate(prompts)]
        out = []
        size = self.backend.default_batch_size or len(reqs)
        for start in range(0, len(reqs), size):
            out += [Verdict(r.text if r.error is None else None, r.error) for r in self.backend.generate(reqs[start : start + size])]
        return out


@dataclass
class JudgeOptions(TaskOptions):
    """The options of a task whose answers an LLM judge rates (MMHal-Bench, HallusionBench)."""

    judge_backend: str = opt("openai", "openai (any OpenAI-compatible server) or a backend name (transformers) for a local judge model")
    judge_model: str | None = opt(None, "judge model name (e.g. gpt-4o) or local path")
    judge_base_url: str | None = opt(None, "OpenAI-compatible base URL (e.g. http://localhost:8000/v1 for vllm serve)")
    judge_api_key_env: str | None = opt(None, "environment variable holding the API key (default OPENAI_API_KEY)")
    judge_concurrency: int = opt(8, "judge requests in flight", flag="concurrency")
    judge_max_retries: int = opt(5, "retries on timeouts, 429 and 5xx", flag="max-retries")
    judge_timeout: float = opt(120.0, "seconds per judge request", flag="timeout")
    judge_backoff: float = opt(1.0, "first retry delay in seconds, doubled each retry", flag="backoff")
    judge_cache: str | None = opt(None, "SQLite file caching judge replies (mmhallu run uses <run>/judge_cache.sqlite)")
    judge_replies: str | None = opt(None, "saved judge replies to score without calling a judge")


def create_judge(options: JudgeOptions) -> Judge:
    """The judge the options name: an OpenAI-compatible server, or a local model through a backend."""
    if not options.judge_model:
        raise BackendError("a judge model is needed: --judge-model NAME (with --judge-base-url URL for a local server)")
    if options.judge_backend == "openai":
        return OpenAIJudge(
            options.judge_model, options.judge_base_url, options.judge_api_key_env, concurrency=options.judge_concurrency,
            max_retries=options.judge_max_retries, timeout=options.judge_timeout, backoff=options.judge_backoff,
        )
    return BackendJudge(create_backend(options.judge_backend, model=options.judge_model), options.judge_model)


def judge_cache(path: str | Path | None) -> ResponseCache | None:
    return ResponseCache(path) if path else None
