"""Weights vLLM cannot load the way transformers 5 saves them, found from the files' headers before vLLM starts, and
put into the published checkpoints' layout in place (transformers loads either layout to the same weights).

- Names: transformers 5 saves the CLIP or SigLIP tower of a LLaVA, LLaVA-NeXT, LLaVA-OneVision, Gemma 3 or
  PaliGemma model as `vision_tower.embeddings...` (or `model.vision_tower.embeddings...`); vLLM's loaders for them
  (0.26 to 0.33 at least) expect `vision_tower.vision_model.embeddings...` and fail deep inside engine start-up
  ("There is no module or parameter named 'vision_tower.embeddings'").
- Shapes: Qwen3-VL-MoE's fused experts are published as `[experts, hidden, 2 × moe_intermediate]` (`gate_up_proj`)
  and `[experts, moe_intermediate, hidden]` (`down_proj`). transformers 5 holds them transposed and writes them as it
  holds them (its conversion transposes only a tensor whose shape differs from the model's, so saving undoes
  nothing); vLLM's loader transposes them unconditionally and fails at start-up on the shapes."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_write_json, read_json
from .base import BackendError

#: architectures whose vLLM loader wants `vision_tower.vision_model.*` for a CLIP or SigLIP tower
_NESTED_TOWER_ARCHS = {"LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration",
                       "Gemma3ForConditionalGeneration", "PaliGemmaForConditionalGeneration"}
#: the towers that nest their weights under `vision_model` in the published layout (the config's default is CLIP)
_TOWERS = {"clip_vision_model", "siglip_vision_model"}
_PREFIXES = ("model.vision_tower.", "vision_tower.")
#: architectures whose fused expert weights vLLM's loader transposes from the published layout
_TRANSPOSED_EXPERT_ARCHS = {"Qwen3VLMoeForConditionalGeneration"}
_EXPERTS = re.compile(r"(^|\.)mlp\.experts\.(gate_up_proj|down_proj)$")


@dataclass(frozen=True)
class Unpublished:
    """One weight vLLM cannot load as saved: `published` is the name it must have (the same name when only its shape
    is transposed), `shape` its shape as saved and `transpose` whether its last two dimensions must be swapped."""

    key: str
    published: str
    shape: tuple[int, ...] = ()
    transpose: bool = False

    def describe(self) -> str:
        if self.transpose:
            return f"{self.key!r} is saved as {list(self.shape)} (the transformers 5 layout) where vLLM's loader expects {list(self.shape[:-2]) + list(self.shape[:-3:-1])} (the published checkpoints' layout)"
        return f"{self.key!r} is saved under the transformers 5 name where vLLM's loader expects {self.published!r} (the published checkpoints' name)"


def _config(folder: Path) -> dict[str, Any] | None:
    """The folder's config.json as a dict; None without one (not judged here); a damaged one is named."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path}: not a readable JSON config ({exc}); download or save the model again") from None
    if not isinstance(cfg, dict):
        raise BackendError(f"{path}: not a model config (a JSON object); download or save the model again")
    return cfg


def architectures(cfg: dict[str, Any]) -> list[str]:
    """The architecture names a config lists, in its order; whatever else the field holds is left out."""
    names = cfg.get("architectures")
    return [a for a in names if isinstance(a, str)] if isinstance(names, list) else []


def model_architectures(model: str) -> list[str]:
    """`architectures` of a local model folder's config.json, for messages and records: empty for a hub name or a
    config that cannot be read (loading the model names that fault)."""
    path = Path(model) / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return []
    return architectures(cfg) if isinstance(cfg, dict) else []


def _nested_tower(cfg: dict[str, Any]) -> bool:
    """Whether the config names an architecture whose vLLM loader wants the tower nested, with a CLIP or SigLIP tower."""
    vision = cfg.get("vision_config")
    tower = vision.get("model_type", "clip_vision_model") if isinstance(vision, dict) else "clip_vision_model" if vision is None else None
    return bool(_NESTED_TOWER_ARCHS.intersection(architectures(cfg))) and tower in _TOWERS


def _expert_sizes(cfg: dict[str, Any]) -> tuple[int, int] | None:
    """(hidden size, expert intermediate size) of an architecture whose fused experts vLLM transposes, else None."""
    text = cfg.get("text_config")
    if not _TRANSPOSED_EXPERT_ARCHS.intersection(architectures(cfg)) or not isinstance(text, dict):
        return None
    hidden, inter = text.get("hidden_size"), text.get("moe_intermediate_size")
    return (hidden, inter) if isinstance(hidden, int) and isinstance(inter, int) else None


def _published(key: str) -> str:
    """The published name of one weight: `vision_tower.X` → `vision_tower.vision_model.X` (other keys unchanged)."""
    for prefix in _PREFIXES:
        if key.startswith(prefix) and not key[len(prefix):].startswith("vision_model."):
            return prefix + "vision_model." + key[len(prefix):]
    return key


def _transformers_expert_shape(kind: str, shape: tuple[int, ...], hidden: int, inter: int) -> bool:
    """Whether a fused expert weight (`kind` gate_up_proj or down_proj) has transformers' shape rather than the
    published one: `[E, 2I, H]` for gate_up_proj, `[E, H, I]` for down_proj. Square ones (2I = H, I = H) cannot be
    told apart and are left alone."""
    rows, cols = (2 * inter, hidden) if kind == "gate_up_proj" else (hidden, inter)
    return len(shape) == 3 and rows != cols and shape[1:] == (rows, cols)


def unpublished_weights(model: str | Path) -> list[Unpublished]:
    """The weights in MODEL's safetensors files that vLLM cannot load as saved (empty when there is nothing to fix,
    or MODEL is not a local folder of an architecture concerned). Reads the files' headers only."""
    from safetensors import SafetensorError, safe_open

    folder = Path(model)
    cfg = _config(folder) if folder.is_dir() else None
    if cfg is None:
        return []
    tower, experts = _nested_tower(cfg), _expert_sizes(cfg)
    if not tower and experts is None:
        return []
    found: list[Unpublished] = []
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():
                    if tower and _published(key) != key:
                        found.append(Unpublished(key, _published(key)))
                    elif experts is not None and (match := _EXPERTS.search(key)):
                        shape = tuple(fh.get_slice(key).get_shape())
                        if _transformers_expert_shape(match.group(2), shape, *experts):
                            found.append(Unpublished(key, key, shape, transpose=True))
        except (SafetensorError, OSError) as exc:
            raise BackendError(f"{f}: not a readable safetensors file ({exc}); download or save the model again") from None
    return found


def publish_weights(model: str | Path) -> int:
    """Put MODEL's weights into the published layout, in place (safetensors files and their index): tower weights
    renamed, expert weights transposed. Returns how many weights changed; 0 leaves every file untouched."""
    from safetensors.torch import load_file, save_file

    folder = Path(model)
    fixes = {u.key: u for u in unpublished_weights(folder)}
    if not fixes:
        return 0
    index = folder / "model.safetensors.index.json"
    data = read_json(index) if index.exists() else None  # read first: a damaged index stops the fix before any file changes
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("weight_map", {}), dict)):
        raise BackendError(f"{index}: not a safetensors index (no \"weight_map\" object); download or save the model again")
    changed = 0
    for f in sorted(folder.glob("*.safetensors")):
        state = load_file(str(f))
        here = fixes.keys() & state.keys()
        if not here:
            continue
        new = {}
        for key, value in state.items():
            fix = fixes.get(key)
            new[fix.published if fix else key] = value.transpose(-1, -2).contiguous() if fix and fix.transpose else value
        tmp = f.with_name(f.name + ".tmp")
        save_file(new, str(tmp), metadata={"format": "pt"})
        tmp.replace(f)  # a crash mid-write leaves the original file whole
        changed += len(here)
    if data is not None:
        data["weight_map"] = {(fixes[k].published if k in fixes else k): v for k, v in data.get("weight_map", {}).items()}
        atomic_write_json(index, data)
    return changed
