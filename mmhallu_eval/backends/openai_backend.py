"""Evaluate a model behind an OpenAI-compatible API (`vllm serve`, SGLang, a hosted model): images go as base64
data URLs; concurrency, retries and backoff come from the shared chat client; responses use the run cache."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

from ..data import open_image
from ..reasoning import THINK_CLOSE, THINK_OPEN
from ..redact import redact_url
from ..types import Request, Response
from .base import Backend
from .openai_chat import ChatClient, ChatResult


def data_url(image: Any) -> str:
    buf = io.BytesIO()
    open_image(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def to_openai_messages(request: Request) -> list[dict[str, Any]]:
    """Chat messages with each {"type": "image"} placeholder replaced by the next image as a data URL."""
    images = iter(request.images)
    out = []
    for message in request.messages:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                parts.append({"type": "image_url", "image_url": {"url": data_url(next(images))}})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        out.append({"role": message["role"], "content": parts})
    return out


def _raw_text(reply: ChatResult) -> str:
    """The reply as a local engine would have written it. A server with a reasoning parser hands the reasoning back
    apart from the answer: it goes back inside `<think>…</think>`, so `--reasoning` treats it as for a local model (the
    answer parsed, the reasoning kept in samples.jsonl), and a reply cut at max_tokens before any answer stays an
    open block, counted as unfinished reasoning rather than scored as an empty answer."""
    text = (reply.text or "").strip()
    if reply.reasoning is None:
        return text
    if not text and reply.finish_reason == "length":
        return f"{THINK_OPEN}{reply.reasoning}"
    return f"{THINK_OPEN}{reply.reasoning}{THINK_CLOSE}{text}"


class OpenAIBackend(Backend):
    name = "openai"
    default_batch_size = 64  # requests handed to the client at once; `concurrency` bounds what is in flight

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None, concurrency: int = 8,
                 max_retries: int = 5, timeout: float = 300.0, revision: str | None = None, chat_template_args: dict[str, Any] | None = None,
                 **_: Any):
        self.model_name = model
        self.revision = revision
        #: sent as `chat_template_kwargs`, the field vLLM's and SGLang's servers render the model's template with
        self.template_args = dict(chat_template_args or {})
        self.client = ChatClient(base_url, model, api_key_env, concurrency, max_retries, timeout,
                                 extra_body={"chat_template_kwargs": self.template_args} if self.template_args else None)
        self.client.check_reachable()

    def fingerprint(self) -> str:
        ident = f"openai|{self.client.base_url}|{self.model_name}|{self.revision or ''}"
        if self.template_args:
            ident += "|" + json.dumps(self.template_args, sort_keys=True)
        return hashlib.sha256(ident.encode()).hexdigest()[:32]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "base_url": redact_url(self.client.base_url) if self.client.base_url else None, "revision": self.revision,
                "model_fingerprint": self.fingerprint(), "architecture": "remote",
                **({"chat_template_args": self.template_args} if self.template_args else {}), **self.client.sampling()}

    def generate(self, requests: list[Request]) -> list[Response]:
        by_gen: dict[Any, list[int]] = {}
        for i, r in enumerate(requests):
            by_gen.setdefault(r.generation, []).append(i)
        results: dict[int, Response] = {}
        for gen, idx in by_gen.items():
            batch = [to_openai_messages(requests[i]) for i in idx]
            replies = self.client.complete(batch, temperature=gen.temperature, max_tokens=gen.max_new_tokens, top_p=gen.top_p)
            for i, rep in zip(idx, replies):
                results[i] = Response(id=requests[i].id, text=_raw_text(rep), n_output_tokens=rep.n_output_tokens, n_prompt_tokens=rep.n_prompt_tokens,
                                      error=None if rep.error is None else f"api_error: {rep.error}")
        return [results[i] for i in range(len(requests))]
