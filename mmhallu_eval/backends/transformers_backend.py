"""Hugging Face transformers backend: AutoModelForImageTextToText + AutoProcessor, left-padded batches."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from ..types import GenerationConfig, Request, Response, user_message
from .base import Backend, BackendError, OutputDecoder, check_adapter_base, model_fingerprint
from .hf_model import (checkpoint_dtype, context_length, load_adapter, load_config, load_model, out_of_memory, plain_generation_config,
                       read_generation_config)
from .hf_processor import load_processor
from .hf_prompt import encode, prompt_format

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


def _pick_device(device: str) -> str:
    """`auto`: CUDA when there is one, else the CPU; anything else is checked here, before the model loads, so a typo
    or a device this machine lacks is one line, not an error from deep inside `model.to`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise BackendError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendError(f"--device {device}: this machine has no CUDA device this PyTorch can use (torch {torch.__version__}); "
                               "use --device cpu (or auto)")
        if parsed.index is not None and parsed.index >= count:
            raise BackendError(f"--device {device}: there are {count} CUDA device(s), numbered from 0")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise BackendError(f"--device {device}: MPS is not available here; use --device cpu (or auto)")
    return device


#: the dtypes `--dtype` takes besides auto
DTYPES = ("float32", "bfloat16", "float16")


def _pick_dtype(dtype: str, device: str, config: Any = None) -> Any:
    """`auto`: on CUDA a float16 checkpoint runs in float16, as published and as vLLM's `auto` runs it (llava-hf's
    LLaVA-1.5 is saved so; bfloat16 rounds otherwise and can change an answer), anything else in
    bfloat16 where the GPU has it; float32 on other devices."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and checkpoint_dtype(config) == torch.float16:
            return torch.float16
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES[:-1])} or {DTYPES[-1]}")
    return getattr(torch, dtype)


class TransformersBackend(Backend):
    """Greedy by default; requests with the same generation settings are generated together. The prompt ids are the
    processor's own (`hf_prompt.encode`), and each response records how many there were."""

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
        chat_template: str | None = None,
        chat_template_args: dict[str, Any] | None = None,
        prefetch: bool = False,
        merge_adapter: bool = False,
        **_: Any,
    ):
        import torch

        local = Path(model).is_dir()
        if not local and (model.startswith((".", "/", "~")) or Path(model).exists()):
            raise BackendError(f"model path {model} does not exist (or is not a folder)")
        if adapter:
            check_adapter_base(model, adapter)
        self.model_name = model
        self.revision = revision
        self.adapter = adapter
        self.trust_remote_code = trust_remote_code
        self.device = _pick_device(device)
        # encode the next batch in a worker thread while this one generates: opt-in, since it was measured no faster on
        # a 2-core CPU (the model's threads use every core) nor on an H200 (docs/benchmarks.md)
        self.prefetch = prefetch
        config = load_config(model, revision, trust_remote_code)
        self.dtype = _pick_dtype(dtype, self.device, config)
        self.dtype_name = str(self.dtype).replace("torch.", "")
        self.processor = load_processor(model, revision=revision, trust_remote_code=trust_remote_code)
        self.prompt_format = prompt_format(self.processor, model, getattr(config, "model_type", ""), chat_template, chat_template_args)
        self.opens_reasoning = self.prompt_format.opens_reasoning
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise BackendError(f"the tokenizer of {model} has neither a padding nor an end-of-sequence token, so a batch cannot be padded "
                                   "nor an answer end: its tokenizer_config.json is damaged or incomplete; download or save the model again")
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        read_generation_config(model, revision)  # a damaged file is named before the weights load
        self.model = load_model(model, config, self.processor, revision, self.dtype, trust_remote_code)
        # the checkpoint's own decoding settings (penalties, top-k, beams) left out and the tokenizer's end token a stop
        # token, as in vLLM; set before an adapter wraps the model (PEFT generates with the wrapped model's config)
        self.model.generation_config, self.generation_config_ignored = plain_generation_config(self.model.generation_config, tokenizer.eos_token_id)
        if adapter:
            try:
                from peft import PeftModel
            except ImportError as exc:
                raise BackendError("--adapter needs peft: pip install 'mmhallu-eval[train]'") from exc
            self.model = load_adapter(PeftModel, self.model, adapter, model)
            if merge_adapter:  # LoRA weights added into the layers: one matrix product per layer instead of three
                self.model = self.model.merge_and_unload()
        self.adapter_merged = bool(adapter and merge_adapter)
        self.model.to(self.device).eval()
        #: prompt and answer together stop here, as in vLLM: an answer is cut at the context, a longer prompt fails
        self.context = context_length(config, getattr(tokenizer, "model_max_length", None))
        self.decode = OutputDecoder(tokenizer)
        # the next batch is encoded in a worker thread while this one decodes; a Rust tokenizer refuses to be used
        # from two threads at once ("Already borrowed")
        self._tokenizer_lock = threading.Lock()
        self._torch = torch
        self._check_an_image_prompt(model)
        # settings every generate call sets anyway (greedy or sampling) left aside: only those whose dropping changes an
        # answer renew the cache
        set_per_call = {*self._gen_kwargs(GenerationConfig(), 1), *self._gen_kwargs(GenerationConfig(temperature=1.0), 1)}
        changed = {k: v for k, v in self.generation_config_ignored.items() if k not in set_per_call}
        self._fingerprint = model_fingerprint(model, revision, adapter, chat_template, adapter_merged=self.adapter_merged,
                                              generation_config_ignored=changed, dtype=self.dtype_name,
                                              template_args=dict(self.prompt_format.template_args))

    def _check_an_image_prompt(self, model: str) -> None:
        """One plain image and question, encoded and answered with one token before any task runs, as vLLM's start-up
        profiling does with its dummy images: a processor file that does not fit the model (an image size, a patch
        size, a count of image tokens) is one error naming those files, not the same failure on every sample."""
        from PIL import Image

        probe = Request("probe", user_message("What is in the image?"), [Image.new("RGB", (336, 336), (128, 128, 128))], GenerationConfig(max_new_tokens=1))
        try:
            self.generate([probe])
        except (MemoryError, self._torch.cuda.OutOfMemoryError) as exc:
            raise out_of_memory(model, exc, self.device) from None
        except Exception as exc:  # noqa: BLE001 - whatever the processor or model raises, it is the checkpoint's files
            first = " ".join(str(exc).split())[:300]
            raise BackendError(f"{model}: its processor cannot prepare an image prompt this model takes ({type(exc).__name__}: {first}); "
                               "its processor_config.json or preprocessor_config.json may be damaged, or not belong with its "
                               "config.json: download or save the model again") from None

    def fingerprint(self) -> str:
        return self._fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "revision": self.revision,
            "adapter": self.adapter,
            **({"adapter_merged": True} if self.adapter_merged else {}),
            "model_fingerprint": self._fingerprint,
            "architecture": type(self.model).__name__,
            "dtype": self.dtype_name,
            "device": self.device,
            "context": self.context,
            **({"generation_config_ignored": self.generation_config_ignored} if self.generation_config_ignored else {}),
            "prompt_format": self.prompt_format.describe(),
            "trust_remote_code": self.trust_remote_code,
        }

    def _gen_kwargs(self, gen: GenerationConfig, max_new_tokens: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if gen.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=gen.temperature, top_p=gen.top_p, top_k=0)  # no top-k, as in vLLM
        return kwargs

    def generate(self, requests: list[Request]) -> list[Response]:
        return self.generate_prepared(requests, self.prepare(requests))

    def prepare(self, requests: list[Request]) -> list[tuple[GenerationConfig, list[Request], Any]]:
        """Requests grouped by generation settings (each group is generated together), each group encoded."""
        by_gen: dict[GenerationConfig, list[Request]] = {}
        for r in requests:
            by_gen.setdefault(r.generation, []).append(r)
        return [(gen, batch, self.encode(batch)) for gen, batch in by_gen.items()]

    def generate_prepared(self, requests: list[Request], prepared: list[tuple[GenerationConfig, list[Request], Any]]) -> list[Response]:
        out: dict[str, Response] = {}
        for gen, batch, inputs in prepared:
            for resp in self._generate_batch(batch, gen, inputs):
                out[resp.id] = resp
        return [out[r.id] for r in requests]

    def encode(self, batch: list[Request]) -> Any:
        """The model inputs for `batch`, on the model's device, images in the model's dtype."""
        with self._tokenizer_lock:
            inputs = encode(self.processor, self.prompt_format, batch)
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def _generate_batch(self, batch: list[Request], gen: GenerationConfig, inputs: Any) -> list[Response]:
        """One generate call. Each answer stops where its prompt and answer fill the model's context (vLLM's
        length cap): the batch runs to its longest room and each row is cut to its own; a prompt that fills the context
        alone fails, as vLLM refuses it."""
        n_prompt = inputs["attention_mask"].sum(-1).tolist()
        room = [gen.max_new_tokens if self.context is None else min(gen.max_new_tokens, self.context - int(n)) for n in n_prompt]
        rows: list[list[int]] = [[] for _ in batch]
        if max(room) > 0:
            with self._torch.inference_mode():
                output = self.model.generate(**inputs, **self._gen_kwargs(gen, max(room)))
            rows = output[:, inputs["input_ids"].shape[1] :].tolist()
        responses = []
        with self._tokenizer_lock:
            for r, row, n, limit in zip(batch, rows, n_prompt, room):
                if limit <= 0:
                    responses.append(Response(id=r.id, n_prompt_tokens=int(n), error=f"invalid_request: the prompt ({int(n)} tokens) does not "
                                              f"fit the model's context of {self.context} tokens"))
                    continue
                text, n_tokens = self.decode(row[:limit])
                responses.append(Response(id=r.id, text=text, n_output_tokens=n_tokens, n_prompt_tokens=int(n)))
        return responses

    def close(self) -> None:
        del self.model
