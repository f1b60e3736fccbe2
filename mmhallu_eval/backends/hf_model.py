"""Which transformers auto class loads a checkpoint: image-text-to-text first, then the multimodal-LM and causal-LM
mappings (Phi-4-multimodal loads only through those) when the processor can take images; anything else is refused in
one line that names the architecture."""
from __future__ import annotations

from typing import Any

from ..options import is_count
from ..quiet import library_renames_hidden
from .base import BackendError

#: auto classes tried in order, with the transformers mapping that says a model type belongs to each
AUTO_CLASSES = (
    ("AutoModelForImageTextToText", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"),
    ("AutoModelForMultimodalLM", "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES"),
    ("AutoModelForCausalLM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
)


def load_config(model: str, revision: str | None, trust_remote_code: bool) -> Any:
    from pathlib import Path

    from transformers import AutoConfig

    if Path(model).is_dir() and not (Path(model) / "config.json").is_file():
        raise BackendError(f"could not load {model!r}: the folder has no config.json (give a folder written by save_pretrained)")
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # huggingface_hub before 1.0 checks no config fields
        StrictDataclassError = ValueError  # noqa: N806
    try:
        return AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
    except (ValueError, TypeError, StrictDataclassError) as exc:  # StrictDataclassError: a field of the wrong type, or values that do not fit together
        first = " ".join(str(exc).split()) or type(exc).__name__
        if len(first) > 300:  # whole sentences where they fit
            first = first[:300].rsplit(". ", 1)[0] if ". " in first[:300] else first[:300] + "…"
        first = first.rstrip(".")
        hint = (" If the checkpoint ships its own modelling code, add --trust-remote-code." if "trust_remote_code" in str(exc)
                else " Upgrade transformers, or add --trust-remote-code if the checkpoint ships its own modelling code."
                if "does not recognize this architecture" in str(exc) else " Download or save the model again.")
        raise BackendError(f"could not read the config of {model!r}: {first}.{hint}") from None
    except OSError as exc:
        raise BackendError(
            f"could not load {model!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). Give a local folder saved with "
            "save_pretrained, or a hub id when online (HF_HUB_OFFLINE=1 needs it in the local cache)."
        ) from None


def checkpoint_dtype(config: Any) -> Any:
    """The dtype the checkpoint was saved in (config.json's `dtype`, which transformers also reads from the older
    `torch_dtype`; the text config's where the top level has none), as a torch dtype; None where the config does not say."""
    import torch

    for cfg in (config, config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else None):
        value = getattr(cfg, "dtype", None)
        if isinstance(value, str):
            value = getattr(torch, value.removeprefix("torch."), None)
        if isinstance(value, torch.dtype):
            return value
    return None


#: generation-config entries that name tokens: kept, as vLLM keeps the stop tokens (`eos_token_id`) of the checkpoint
#: (the first two an encoder-decoder model's decoder starts with, too)
TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "forced_bos_token_id")
#: entries that change how generate runs, not what it answers: kept
_RUNTIME_KEYS = {"use_cache", "cache_implementation", "cache_config", "max_cache_len", "output_attentions", "output_hidden_states",
                 "output_scores", "output_logits", "return_dict_in_generate", "compile_config", "disable_compile"}
#: the file's own bookkeeping: neither kept nor reported
_BOOKKEEPING_KEYS = {"transformers_version", "_from_model_config"}


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_generation_config(model: str, revision: str | None) -> Any:
    """Read the checkpoint's generation_config.json before an engine loads it. transformers and vLLM both pass over a
    damaged one without a word, and their stop tokens then come from config.json alone, which may name fewer; a token
    id that is not a whole number ends every sample in a TypeError (transformers) or stops vLLM's engine. None for a
    hub model or a folder without the file."""
    from pathlib import Path

    from transformers import GenerationConfig

    local = Path(model).is_dir()
    path = Path(model) / "generation_config.json"
    if local and not path.is_file():
        return None
    where = str(path) if local else f"the generation_config.json of {model!r}"
    try:
        gen = GenerationConfig.from_pretrained(model, revision=revision)
    except OSError as exc:  # unreadable JSON in a folder; on the hub also "there is none"
        if not local:
            return None
        raise BackendError(f"{where}: not a readable JSON file ({str(exc).splitlines()[0][:200]}); download or save the model "
                           "again, or delete the file to take the token ids from config.json") from None
    except (TypeError, ValueError, AttributeError) as exc:  # a JSON list or a value GenerationConfig refuses
        raise BackendError(f"{where}: not a generation config ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                           "download or save the model again") from None
    for key in TOKEN_ID_KEYS:
        value = getattr(gen, key, None)
        ids = value if isinstance(value, list) else [value]
        if value is not None and not all(_is_token_id(i) for i in ids):
            raise BackendError(f"{where}: {key} is {value!r}; it must be a token id (a whole number) or a list of them. "
                               "Download or save the model again, or correct the file")
    return gen


def plain_generation_config(gen: Any, tokenizer_eos: int | None = None) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's generation config cut to its token ids, and what was cut. transformers fills every setting a
    generate call leaves out from the checkpoint's config (Qwen2-VL's asks for `repetition_penalty` 1.05 and
    `top_k` 1), while vLLM, given its sampling settings, applies only the stop tokens: cut the same way, both backends
    decode the same greedy answer. What was cut is written into the manifest. vLLM also stops at the tokenizer's
    end-of-sequence token where the config names another: `tokenizer_eos` joins the stop tokens so."""
    from transformers import GenerationConfig

    diff = gen.to_diff_dict()
    kept = {k: v for k, v in diff.items() if k in TOKEN_ID_KEYS or k in _RUNTIME_KEYS}
    stops = kept.get("eos_token_id")
    stops = [] if stops is None else list(stops) if isinstance(stops, list) else [stops]
    if _is_token_id(tokenizer_eos) and tokenizer_eos not in stops:
        kept["eos_token_id"] = [*stops, tokenizer_eos] if stops else tokenizer_eos
    ignored = {k: v for k, v in diff.items() if k not in TOKEN_ID_KEYS and k not in _RUNTIME_KEYS and k not in _BOOKKEEPING_KEYS}
    return GenerationConfig(**kept), ignored


def context_length(config: Any, tokenizer_max: int | None = None) -> int | None:
    """How many positions, prompt and answer together, the language model was built for: its text config's
    `max_position_embeddings`, times the RoPE factor of a linear or dynamic scaling (which leaves that number
    unscaled; YaRN, Llama 3 and LongRoPE configs state the scaled length), and no more than the tokenizer's
    `model_max_length` where that is set. This is the length vLLM takes as its default `--max-model-len`, so both
    backends stop an answer at the same token. None where the config does not say."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    positions = getattr(text, "max_position_embeddings", None)
    if not is_count(positions):
        return None
    rope = getattr(text, "rope_parameters", None) or getattr(text, "rope_scaling", None) or {}
    layers = list(rope.values()) if rope and all(isinstance(v, dict) for v in rope.values()) else [rope]
    factor = 1.0
    for params in layers:
        if isinstance(params, dict) and params.get("rope_type", params.get("type")) in ("linear", "dynamic"):
            factor = float(params.get("factor") or 1.0)
    context = int(positions * factor)
    if is_count(tokenizer_max):
        context = min(context, tokenizer_max)
    return context


def auto_class_name(config: Any, processor: Any) -> str:
    """The first auto class whose mapping (or the checkpoint's own auto_map) covers the model and can see images."""
    import transformers.models.auto.modeling_auto as mapping

    model_type = getattr(config, "model_type", "")
    auto_map = getattr(config, "auto_map", None) or {}
    takes_images = getattr(processor, "image_processor", None) is not None
    architecture = ", ".join(getattr(config, "architectures", None) or []) or model_type or "unknown"
    if not takes_images:
        raise BackendError(
            f"{architecture} ({model_type}): its processor has no image processor, so it cannot take images; "
            "evaluate an image-text checkpoint (one whose processor_config.json or preprocessor_config.json has an image processor)"
        )
    for name, table in AUTO_CLASSES:
        if name in auto_map or model_type in getattr(mapping, table, {}):
            return name
    raise BackendError(
        f"{architecture} ({model_type}) is not an image-text model transformers can load (not in the image-text-to-text, "
        "multimodal-LM or causal-LM mappings); if the checkpoint ships its own code, add --trust-remote-code"
    )


def load_model(model: str, config: Any, processor: Any, revision: str | None, dtype: Any, trust_remote_code: bool) -> Any:
    import torch
    import transformers
    from safetensors import SafetensorError

    name = auto_class_name(config, processor)
    cls = getattr(transformers, name)
    try:
        return cls.from_pretrained(model, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code)
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        raise out_of_memory(model, exc) from None
    except (OSError, ValueError, SafetensorError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
        # SafetensorError: a weights file that is cut short or not safetensors at all (a failed download); TypeError and
        # the rest: a config.json value the model's code cannot build with (a RoPE factor written as text)
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        damaged = ("; a weights file is damaged or not safetensors: download or save the model again" if isinstance(exc, SafetensorError)
                   else "; config.json holds a value the model cannot be built with: download or save the model again"
                   if isinstance(exc, (TypeError, KeyError, AttributeError)) else "")
        raise BackendError(f"could not load the weights of {model!r} with {name} ({type(exc).__name__}: {first}){damaged}") from None


def out_of_memory(model: str, exc: BaseException, device: str | None = None) -> BackendError:
    """The one-line error for a model that ran out of memory while loading or answering its first question."""
    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    where = f" on {device}" if device else ""
    return BackendError(f"{model} does not fit in memory{where} ({first}); try --dtype bfloat16, another --device, or a machine with more memory")


def load_adapter(peft_model: Any, model: Any, adapter: str, model_name: str) -> Any:
    """`PeftModel.from_pretrained`, its errors in one line: a damaged weights file, or an adapter whose layers or
    shapes do not fit this model (target modules it lacks, another rank than its weights have)."""
    from safetensors import SafetensorError

    try:
        with library_renames_hidden():  # PEFT asks the model with transformers' old name for activation checkpointing
            return peft_model.from_pretrained(model, adapter)
    except SafetensorError as exc:
        raise BackendError(f"--adapter {adapter}: its weights file is damaged or not safetensors ({exc}); train or copy the adapter again") from None
    except (ValueError, RuntimeError, KeyError) as exc:  # PEFT: no matching module; torch: a state dict that does not fit
        first = " ".join(str(exc).split())[:300]
        raise BackendError(f"--adapter {adapter} does not fit {model_name!r} ({type(exc).__name__}: {first}); "
                           "evaluate it on the model it was trained on, or train it again") from None
