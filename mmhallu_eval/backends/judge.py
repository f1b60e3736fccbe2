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
from .base import Backend, BackendError, create_backend
from .openai_chat import ChatClient


@dataclass
class Verdict:
    reply: str | None
    error: str | None = None
    cached: bool = False


class Judge:
    """Text in, text out, temperature 0."""

    kind = "judge"

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _ask(self, prompts: list[str], max_tokens: int) -> list[Verdict]:
        raise NotImplementedError

    def key(self, prompt: str) -> str:
        ident = json.dumps({"judge": self.describe(), "prompt": prompt}, sort_keys=True)
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

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.client.model, "base_url": self.client.base_url}

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


def create_judge(options: dict[str, str]) -> Judge:
    """From task options: judge_backend (openai | transformers | ...), judge_model, judge_base_url, judge_api_key_env."""
    kind = options.get("judge_backend", "openai")
    model = options.get("judge_model")
    if not model:
        raise BackendError("a judge model is needed: --judge-model NAME (with --judge-base-url URL for a local server)")
    if kind == "openai":
        return OpenAIJudge(
            model, options.get("judge_base_url"), options.get("judge_api_key_env"),
            concurrency=int(options.get("judge_concurrency", "8")), max_retries=int(options.get("judge_max_retries", "5")),
            timeout=float(options.get("judge_timeout", "120")), backoff=float(options.get("judge_backoff", "1.0")),
        )
    return BackendJudge(create_backend(kind, model=model), model)


def judge_cache(path: str | Path | None) -> ResponseCache | None:
    return ResponseCache(path) if path else None
