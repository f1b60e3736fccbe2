"""Loading a model's own processor the way its checkpoint defines it, in an install without torchvision.

Transformers builds the *video* processor of Qwen-VL, LLaVA-OneVision, InternVL, SmolVLM, GLM-4V and others with
torchvision. Image-only evaluation never calls it, so when torchvision is missing the processor is built from the
same class without its video part: the image processor, tokenizer, chat template and every other setting are the
checkpoint's, so the image path — and the token ids — are what `AutoProcessor` builds where torchvision exists.
Pixtral's processor (Mistral 3) imports the torchvision image processor for one sizing function whose PIL twin is
the same code; that twin stands in (`TORCHVISION_TWINS`).
"""
from __future__ import annotations

import inspect
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import BackendError

#: packages a processor imports for its own use, and the extra that installs them
PROCESSOR_EXTRAS = {"num2words": "smolvlm"}
#: processors whose module imports a torchvision image-processing module only for a function its PIL twin holds as
#: the same code (tests/unit/test_processor_twins.py compares the two): where torchvision is missing, the twin stands in
TORCHVISION_TWINS = {"PixtralProcessor": ("transformers.models.pixtral.processing_pixtral", "transformers.models.pixtral.image_processing_pixtral",
                                          "transformers.models.pixtral.image_processing_pil_pixtral", ("get_resize_output_image_size",))}


def torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        return False
    try:  # PyPI's CUDA torchvision beside a CPU torch imports but its compiled ops do not load
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False
    return True


class VideoUnavailable:
    """Stands in for a checkpoint's video processor where torchvision is missing. Some processors read its settings
    while handling text and images (SmolVLM's frame count); those come from the checkpoint's video config, anything
    else is None, and video input itself is refused."""

    def __init__(self, settings: dict[str, Any] | None = None):
        self._settings = dict(settings or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_settings":
            raise AttributeError(name)
        return self._settings.get(name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise BackendError("video input needs torchvision, which is not installed; install the build that matches your torch")


@lru_cache(maxsize=None)
def image_only(cls: type) -> type:
    """`cls` without its video processor: the same __init__, call and template code; `video_processor` is a stand-in
    that is never saved (see `VideoUnavailable`)."""
    parameters = inspect.signature(cls.__init__).parameters
    position = list(parameters).index("video_processor") - 1  # without self
    required = parameters["video_processor"].default is inspect.Parameter.empty

    from transformers.processing_utils import ProcessorMixin

    class WithoutVideo(ProcessorMixin):
        """Between `cls` and ProcessorMixin: drops the `video_processor` that `cls.__init__` hands on by name
        (Gemma 4's does; others pass it by position, which the attribute list already leaves out)."""

        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.pop("video_processor", None)
            super().__init__(*args, **kwargs)

    class ImageOnly(cls, WithoutVideo):  # type: ignore[misc, valid-type]
        @classmethod
        def get_attributes(klass) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

        @classmethod
        def _get_arguments_from_pretrained(klass, *args: Any, **kwargs: Any) -> list[Any]:
            found = super()._get_arguments_from_pretrained(*args, **kwargs)
            return found[:position] + [None] + found[position:] if required else found  # SmolVLM's is positional

        @classmethod
        def from_dict(klass, processor_dict: dict[str, Any], **kwargs: Any) -> Any:
            if required:  # transformers >= 5.25 builds processors from one dict of parts
                processor_dict = {**processor_dict, "video_processor": None}
            return super().from_dict(processor_dict, **kwargs)

        @property
        def video_processor(self) -> Any:
            return self.__dict__.get("_video_stand_in") or VideoUnavailable()

    ImageOnly.__name__ = cls.__name__
    ImageOnly.__qualname__ = cls.__qualname__
    ImageOnly.__module__ = cls.__module__
    return ImageOnly


def twin_processor_class(name: str) -> type:
    """The processor class `name` of TORCHVISION_TWINS, its torchvision import answered by the PIL twin's functions.
    transformers marks the class as needing torchvision (a placeholder stands at `transformers.<name>`), so it is
    taken from its module."""
    import importlib
    import sys
    import types

    module, needed, twin, functions = TORCHVISION_TWINS[name]
    if needed not in sys.modules:
        try:
            importlib.import_module(needed)
        except ImportError:
            source = importlib.import_module(twin)
            stand_in = types.ModuleType(needed, f"{needed} without torchvision: {', '.join(functions)} from {twin}")
            for function in functions:
                setattr(stand_in, function, getattr(source, function))

            def _rest(attribute: str, _needed: str = needed) -> Any:  # transformers probes for its classes with getattr
                raise AttributeError(f"{_needed}.{attribute} needs torchvision, which is not installed (only {', '.join(functions)} stands in)")

            stand_in.__getattr__ = _rest  # type: ignore[attr-defined]
            sys.modules[needed] = stand_in
    return getattr(importlib.import_module(module), name)


def _processor_class_name(model: str, revision: str | None, trust_remote_code: bool) -> str | None:
    """The processor class a checkpoint names (processor_config.json, then tokenizer_config.json), else the one
    transformers maps its model type to."""
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    folder = Path(model)
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get("processor_class")
            except (OSError, ValueError):
                value = None
            if value:
                return str(value)
    try:
        config = AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return None
    return PROCESSOR_MAPPING_NAMES.get(getattr(config, "model_type", ""))


def load_processor(model: str, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The checkpoint's processor; without torchvision, the same class minus its video processor."""
    import transformers
    from transformers import AutoProcessor

    try:
        if not trust_remote_code and not torchvision_available():
            name = _processor_class_name(model, revision, trust_remote_code)
            if name in TORCHVISION_TWINS:
                return twin_processor_class(name).from_pretrained(model, revision=revision)
            cls = getattr(transformers, name, None) if name else None
            if cls is not None and "video_processor" in cls.get_attributes():
                processor = image_only(cls).from_pretrained(model, revision=revision)
                processor._video_stand_in = VideoUnavailable(_video_settings(model))
                return processor
        return AutoProcessor.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
    except ImportError as exc:
        raise BackendError(_missing_package_message(model, exc)) from None
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
        damaged = _damaged_json(model)
        raised = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if damaged is None and not isinstance(exc, (OSError, ValueError)):
            if _raised_here(exc):
                raise  # a fault of this package, shown whole
            # a value of the wrong type in a file that reads (`model_max_length: "x"`), met deep in transformers' code
            raise BackendError(f"could not load the processor of {model!r} ({raised}): a value in {_processor_files(model)} may be of the "
                               "wrong type; correct it, or download or save the model again") from None
        why = f"{damaged}; download or save the model again" if damaged else raised
        raise BackendError(f"could not load the processor of {model!r}: {why}") from None


def _raised_here(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc` is this package's code (not transformers' reading a checkpoint's values)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(Path(__file__).resolve().parents[1])


def _processor_files(model: str) -> str:
    """The processor and tokenizer files of a model folder, named for an error."""
    names = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json")
    found = [name for name in names if (Path(model) / name).is_file()]
    return f"{model}'s {', '.join(found)}" if found else f"the processor files of {model}"


def _damaged_json(model: str) -> str | None:
    """`files.read_json`'s error for the first JSON file of a model folder that does not read, or that is not a JSON
    object (every JSON file of a checkpoint is one): a loader's own error says only "Expecting value: line 1 column
    1", or "'list' object has no attribute 'get'", not which of the folder's files it was reading."""
    from ..errors import UserError
    from ..files import read_json

    folder = Path(model)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            value = read_json(path)
        except UserError as exc:
            return str(exc)
        if not isinstance(value, dict):
            return f"{path}: not a JSON object (a {type(value).__name__})"
    return None


def _import_failures(exc: BaseException) -> str:
    """The messages of an import error and of the errors behind it: transformers' lazy import says only "Could not
    import module 'Gemma4Processor'", with the missing package in the error it was raised from."""
    seen: list[str] = []
    while exc is not None and len(seen) < 8:
        seen.append(" ".join(str(exc).split()) + (f" (module {exc.name})" if isinstance(exc, ModuleNotFoundError) and exc.name else ""))
        exc = exc.__cause__ or exc.__context__
    return " ← ".join(seen)


def _missing_package_message(model: str, exc: ImportError) -> str:
    text = _import_failures(exc)
    for package, extra in PROCESSOR_EXTRAS.items():
        if package in text:
            return f"the processor of {model} needs the package {package}: pip install 'mmhallu-eval[{extra}]'"
    if "torchvision" in text.lower():
        found = re.search(r"(\w+) requires the \w+ library", text) or re.search(r"Could not import module '(\w+)'", text)
        who = f" ({found.group(1)})" if found else ""
        return (f"the processor of {model}{who} needs torchvision, which is not installed (transformers has no image path "
                "without it for this family in this release): install the torchvision build that matches your torch, or a "
                "newer transformers if its image processor for this family does without it (Gemma 4's since 5.21)")
    return f"the processor of {model} needs a package that is not installed: {text[:200]}"


def _video_settings(model: str) -> dict[str, Any]:
    path = Path(model) / "video_preprocessor_config.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
