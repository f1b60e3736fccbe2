"""Hugging Face transformers backend: AutoModelForImageTextToText + AutoProcessor, left-padded batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ..data import open_image
from ..types import GenerationConfig, Request, Response
from .base import Backend, BackendError, check_adapter_base, decode_output, model_fingerprint

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


def _pick_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def _pick_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return getattr(torch, dtype)
    except AttributeError:
        raise BackendError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


class TransformersBackend(Backend):
    """Greedy by default; requests with the same generation settings are generated together."""

    name = "transformers"
    default_batch_size = 8

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        adapter: str | None = None,
        dtype: Dtype = "auto",
        device: str = "auto",
        trust_remote_code: bool = False,
        **_: Any,
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        local = Path(model).is_dir()
        if not local and (model.startswith((".", "/", "~")) or Path(model).exists()):
            raise BackendError(f"model path {model} does not exist (or is not a folder)")
        if adapter:
            check_adapter_base(model, adapter)
        self.model_name = model
        self.revision = revision
        self.adapter = adapter
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        try:
            self.processor = AutoProcessor.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(
                model, revision=revision, dtype=self.dtype, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise BackendError(
                f"could not load {model!r} with transformers ({type(exc).__name__}: {exc}). Give a local folder "
                "saved with save_pretrained, or a hub id when online (HF_HUB_OFFLINE=1 needs it in the local cache)."
            ) from exc
        if adapter:
            try:
                from peft import PeftModel
            except ImportError as exc:
                raise BackendError("--adapter needs peft: pip install 'mmhallu-eval[train]'") from exc
            self.model = PeftModel.from_pretrained(self.model, adapter)
        self.model.to(self.device).eval()
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self._torch = torch
        self._fingerprint = model_fingerprint(model, revision, adapter)

    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": self.revision,
            "adapter": self.adapter,
            "model_fingerprint": self._fingerprint,
            "architecture": type(self.model).__name__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": self.device,
        }

    def _gen_kwargs(self, gen: GenerationConfig) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": gen.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if gen.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=gen.temperature, top_p=gen.top_p)
        return kwargs

    def generate(self, requests: list[Request]) -> list[Response]:
        out: dict[str, Response] = {}
        by_gen: dict[GenerationConfig, list[Request]] = {}
        for r in requests:
            by_gen.setdefault(r.generation, []).append(r)
        for gen, batch in by_gen.items():
            for resp in self._generate_batch(batch, gen):
                out[resp.id] = resp
        return [out[r.id] for r in requests]

    def _generate_batch(self, batch: list[Request], gen: GenerationConfig) -> list[Response]:
        texts = [self.processor.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in batch]
        images = [[open_image(im) for im in r.images] for r in batch]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            kwargs["images"] = images
        inputs = self.processor(**kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with self._torch.inference_mode():
            output = self.model.generate(**inputs, **self._gen_kwargs(gen))
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        responses = []
        for r, row in zip(batch, new_tokens.tolist()):
            text, n_tokens = decode_output(self.tokenizer, row)
            responses.append(Response(id=r.id, text=text, n_output_tokens=n_tokens))
        return responses

    def close(self) -> None:
        del self.model
