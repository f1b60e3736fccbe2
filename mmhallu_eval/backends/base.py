"""The backend interface (one abstract method) and the name → class table with lazy imports."""
from __future__ import annotations

import abc
import difflib
import hashlib
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import read_json
from ..types import Request, Response

#: backend name → "module:Class"; modules are imported only when that backend is used.
BACKENDS: dict[str, str] = {
    "transformers": "mmhallu_eval.backends.transformers_backend:TransformersBackend",
    "openai": "mmhallu_eval.backends.openai_backend:OpenAIBackend",
    "vllm": "mmhallu_eval.backends.vllm_backend:VLLMBackend",
}

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


class BackendError(UserError):
    """A backend could not be created or used; the message tells the user what to do."""


class Backend(abc.ABC):
    """Turns requests into responses. Batching, caching, retries and progress live in wrappers."""

    name: str = "base"
    #: preferred number of requests per generate() call; None = give it everything at once.
    default_batch_size: int | None = 8
    #: the prompt opens a <think> block that the model closes before answering (see reasoning.split_reasoning)
    opens_reasoning: bool = False

    #: `prepare` does work worth running ahead: the batch loop prepares the next batch while this one generates
    prefetch: bool = False

    @abc.abstractmethod
    def generate(self, requests: list[Request]) -> list[Response]:
        """Responses in the order of `requests`; a failed item carries `error` instead of raising."""

    def generate_stream(self, requests: list[Request]) -> Iterator[list[Response]]:
        """`generate`'s responses in groups, each as soon as it is done (any order, every request once): the caller
        caches and scores finished groups while the engine works on the rest, and a run stopped part-way keeps them."""
        yield self.generate(requests)

    def prepare(self, requests: list[Request]) -> Any:
        """The part of `generate` that needs no model (images decoded, inputs built), for `generate_prepared`.
        Runs in a worker thread while the previous batch generates; may raise (the batch then goes item by item)."""
        return None

    def generate_prepared(self, requests: list[Request], prepared: Any) -> list[Response]:
        """`generate` from `prepare(requests)`'s result: the same responses."""
        return self.generate(requests)

    def fingerprint(self) -> str:
        """Identifies the weights (+ adapter) so cached responses are never reused across models."""
        return "unknown"

    def describe(self) -> dict[str, Any]:
        """What goes into manifest.json about the model (never secrets)."""
        return {"backend": self.name}

    def close(self) -> None:
        pass


def create_backend(name: str, **kwargs: Any) -> Backend:
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=2)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise BackendError(f"unknown backend {name!r}.{hint} Available: {', '.join(BACKENDS)}.")
    module_name, cls_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**kwargs)


def _file_digest(path: Path, head: int = 1 << 22) -> str:
    """Full hash for small files; size + first/last 4 MiB for large weight shards (multi-GB models)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        if size <= 2 * head:
            h.update(fh.read())
        else:
            h.update(fh.read(head))
            fh.seek(size - head)
            h.update(fh.read(head))
    return h.hexdigest()


def model_fingerprint(model: str, revision: str | None = None, adapter: str | None = None, chat_template: str | None = None,
                      adapter_merged: bool = False, generation_config_ignored: dict[str, Any] | None = None,
                      dtype: str | None = None, template_args: dict[str, Any] | None = None) -> str:
    """Content fingerprint of a local model folder, or `hub-id@revision` for a hub id; a user's chat template file
    changes every prompt, so it is part of the fingerprint too (with the variables it is rendered with), and so is an
    adapter merged into the weights (its answers can differ from the unmerged adapter's in floating-point rounding).
    Decoding settings of the checkpoint that a backend leaves out are part of it as well: answers cached while they
    applied are not reused. So is the dtype the weights run in: a run resumed in bfloat16 does not take the float32
    answers it cached."""
    parts: dict[str, Any] = {}
    path = Path(model)
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and (f.suffix in _WEIGHT_SUFFIXES or f.suffix in (".json", ".model", ".txt", ".jinja")):
                parts[str(f.relative_to(path))] = _file_digest(f)
    else:
        parts["hub"] = f"{model}@{revision or 'main'}"
    if adapter:
        apath = Path(adapter)
        parts["adapter"] = {str(f.relative_to(apath)): _file_digest(f) for f in sorted(apath.rglob("*")) if f.is_file()}
    if chat_template:
        parts["chat_template"] = _file_digest(Path(chat_template)) if Path(chat_template).is_file() else chat_template
    if template_args:
        parts["template_args"] = template_args
    if adapter and adapter_merged:
        parts["adapter_merged"] = True
    if generation_config_ignored:
        parts["generation_config_ignored"] = generation_config_ignored
    if dtype:
        parts["dtype"] = dtype
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


#: the weight files of a PEFT adapter folder (PEFT reads the .bin with torch.load(weights_only=True))
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def check_adapter_base(model: str, adapter: str) -> None:
    """Refuse a damaged adapter folder (an unreadable config, no weights: PEFT would look for them on the hub) and an
    adapter trained on another model. Same folder, same weights (content fingerprint) or, when only one
    side is local, the same final name all count as the same model; anything else is an error before any loading."""
    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.is_file():
        raise BackendError(f"--adapter {adapter}: no adapter_config.json there (expected a PEFT adapter folder)")
    config = read_json(cfg_path)
    if not isinstance(config, dict):
        raise BackendError(f"{cfg_path}: not a PEFT adapter config (expected a JSON object); train or copy the adapter again")
    if not any((Path(adapter) / name).is_file() for name in ADAPTER_WEIGHTS):
        raise BackendError(f"--adapter {adapter}: no {' or '.join(ADAPTER_WEIGHTS)} there, so the folder holds no adapter weights; "
                           "train or copy the adapter again")
    base = str(config.get("base_model_name_or_path") or "")
    if not base or base == model:
        return
    model_dir, base_dir = Path(model).expanduser(), Path(base).expanduser()
    if model_dir.is_dir() and base_dir.is_dir():
        if model_dir.resolve() == base_dir.resolve() or model_fingerprint(str(model_dir)) == model_fingerprint(str(base_dir)):
            return
    elif model_dir.name == base_dir.name:
        return
    raise BackendError(
        f"--adapter {adapter} was trained on {base!r} (adapter_config.json base_model_name_or_path) but --model is {model!r}. "
        "Evaluate it on its base model; if that is the same model under another path, fix base_model_name_or_path."
    )


class OutputDecoder:
    """(text, number of generated tokens) from a generation's token ids, decoded the same way for every local
    engine: padding dropped, special tokens skipped, whitespace stripped (so backends compare equal). The pad and
    special ids are read from the tokenizer once: transformers recomputes those properties on every access (3–4 µs),
    which, read per token, cost four times the decoding itself. A reasoning delimiter that is a special token (Gemma
    4's `<|channel>`, `<channel|>`) is kept as its text, or the reasoning would run into the answer."""

    def __init__(self, tokenizer: Any):
        from ..reasoning import BLOCKS

        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.special_ids = frozenset(tokenizer.all_special_ids)
        self.delimiters: dict[int, str] = {}
        for text in (t for pair in BLOCKS for t in pair):
            token = tokenizer.convert_tokens_to_ids(text)
            if isinstance(token, int) and token != tokenizer.unk_token_id and tokenizer.decode([token]) == text \
                    and tokenizer.decode([token], skip_special_tokens=True) == "":
                self.delimiters[token] = text

    def __call__(self, token_ids: list[int]) -> tuple[str, int]:
        pad, special = self.pad_id, self.special_ids
        kept = [t for t in token_ids if t != pad]
        ids = [t for t in kept if t not in special]
        if self.delimiters.keys().isdisjoint(ids):
            return self.tokenizer.decode(ids, skip_special_tokens=True).strip(), len(kept)
        parts, run = [], []
        for t in ids:
            if t in self.delimiters:
                parts += [self.tokenizer.decode(run, skip_special_tokens=True), self.delimiters[t]]
                run = []
            else:
                run.append(t)
        parts.append(self.tokenizer.decode(run, skip_special_tokens=True))
        return "".join(parts).strip(), len(kept)
