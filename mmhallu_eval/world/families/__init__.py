"""Tiny random-weight builds of the VLM families people evaluate, each with a locally trained tokenizer carrying the
family's special tokens, a chat template shaped like its published one and the family's own (PIL) image processor.
They let the backends be checked for prompt fidelity, batching and loading on every family, offline, in seconds."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import gemma, idefics, llava, others, qwen


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Path, int], Path]
    #: packages the family's processor cannot do without in this transformers (checked before building)
    needs: tuple[str, ...] = ()
    #: the transformers release from which the family's processor does without torchvision (before it, it needs it)
    torchvision_until: str | None = None


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("llava", llava.build_llava_family),
    Family("llava_next", llava.build_llava_next),
    Family("llava_onevision", llava.build_llava_onevision),
    Family("qwen2_vl", qwen.build_qwen2_vl),
    Family("qwen2_5_vl", qwen.build_qwen2_5_vl),
    Family("qwen3_vl", qwen.build_qwen3_vl),
    Family("qwen3_vl_thinking", qwen.build_qwen3_vl_thinking),
    Family("qwen3_vl_moe", qwen.build_qwen3_vl_moe),
    Family("qwen3_5", qwen.build_qwen3_5),
    Family("qwen3_5_moe", qwen.build_qwen3_5_moe),
    Family("glm4v", qwen.build_glm4v),
    Family("gemma3", gemma.build_gemma3),
    Family("gemma4", gemma.build_gemma4, torchvision_until="5.21"),
    Family("paligemma", gemma.build_paligemma),
    Family("idefics3", idefics.build_idefics3),
    Family("smolvlm", idefics.build_smolvlm, needs=("num2words",)),
    Family("internvl", others.build_internvl),
    Family("mllama", others.build_mllama),
    Family("mistral3", others.build_mistral3),
    Family("aya_vision", others.build_aya_vision),
)}


def missing_packages(name: str) -> list[str]:
    """The packages FAMILIES[name] needs that this install lacks (its processor cannot be built without them)."""
    import importlib.util

    import transformers
    from packaging.version import Version

    from ...backends.hf_processor import torchvision_available

    family = FAMILIES[name]
    needs = list(family.needs)
    if family.torchvision_until and Version(transformers.__version__) < Version(family.torchvision_until):
        needs.append("torchvision")
    return [p for p in needs if not (torchvision_available() if p == "torchvision" else importlib.util.find_spec(p) is not None)]


def build_family(name: str, out: str | Path, seed: int = 0) -> Path:
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name].build(Path(out), seed)
